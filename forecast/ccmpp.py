"""Cohort-component projection (CCMPP), two sexes, vectorised over leading axes.

Array layout (see ``forecast/README.md`` for the full statement):

* population ``(..., sex, age)``: leading axes are free (units, draws, …) and
  broadcast; ``sex`` has length 2 in the order :data:`SEXES` = ``("female", "male")``
  (:data:`FEMALE` = 0, :data:`MALE` = 1); ``age`` has ``A`` groups of equal width ``n``
  (single years: ``n = 1``; five-year groups: ``n = 5``), the **last group is open**
  (e.g. 100+ or 85+).  One step lasts ``step_years = n`` years, so a cohort moves up
  exactly one age group per step.
* per-step inputs carry a leading **step axis** ``T`` (length ``T`` or 1):
  ``survival (T, ..., 2, A)``, ``asfr (T, ..., A)``, ``srb (T, ...)``,
  ``net_migration (T, ..., 2, A)``; their middle axes broadcast against the
  population's leading axes (numpy rules, aligned on the right).

Timing conventions of one step ``t → t+n``:

* ``survival[..., s, 0]``: births during the step → age group 0 at the end
  (``nL0 / (n·l0)``); ``survival[..., s, a]``, ``0 < a < A−1``: group ``a−1`` at the
  start → group ``a`` at the end (``nL_a / nL_{a−1}``); ``survival[..., s, A−1]``:
  groups ``A−2`` and ``A−1`` (open) at the start → open group at the end
  (``T_{A−1} / T_{A−2}``).  See :func:`forecast.lifetable.calculate_survival_ratios`.
* net migration ``M[..., s, a]`` counts persons over the whole step, indexed by the
  age group they are in **when they move**; ``migration_timing``: ``'even'`` adds half
  at the start (those migrants are then exposed to mortality and fertility like
  residents) and half at the end (UN / Preston convention); ``'start'`` adds all at the
  start; ``'end'`` all at the end.  Migrants added at the end at age 0 are children born
  elsewhere during the step.
* births: ``B = n · Σ_x asfr_x · (F_x(start) + F_x(end)) / 2`` with ``F(start)`` the
  female population after start-of-step migrants and ``F(end)`` after end-of-step
  migrants (mean female exposure, Preston et al. 2001 eq. 6.3); ``asfr`` is births per
  woman per year by age of mother; female births ``B / (1 + srb)``, male
  ``B · srb / (1 + srb)``; they enter age group 0 after survival ``survival[..., 0]``.
  ``asfr[..., 0]`` must be 0 (mothers in the newborn group would make births circular).
* out-migration never makes a count negative: where a start- or end-of-step addition of
  (negative) migrants would leave fewer than zero persons, the cell is set to 0 and the
  shortfall is returned in ``unmet_emigration`` (persons who could not leave, ≥ 0).

Balance (exact up to float rounding, by construction):
``P(t+n).sum(sex, age) = P(t).sum + births.sum(sex) − deaths.sum + migrants.sum``
where ``deaths`` and ``migrants`` are the *realised* flows.  ``deaths[..., s, a]`` are
the deaths of the cohort that ends the step in group ``a`` (``a = 0``: births of the
step); ``migrants[..., s, a]`` are realised net migrants by age group at the move
(``migrants = requested + unmet_emigration``: the shortfall of an emigration that
could not happen is added back).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from forecast.errors import ForecastError, Problem, raise_if_problems

SEXES = ("female", "male")
FEMALE = 0
MALE = 1
MIGRATION_TIMINGS = ("even", "start", "end")


class StepResult(NamedTuple):
    """One projection step; arrays have the broadcast leading shape ``(...)`` of the inputs.

    ``population`` (..., 2, A) at the end of the step; ``births`` (..., 2) by sex of the
    child; ``births_by_mother_age`` (..., A) both sexes (None unless components);
    ``deaths`` (..., 2, A) by age group at the end (None unless components);
    ``migrants`` (..., 2, A) realised net migrants (None unless components);
    ``unmet_emigration`` (..., 2, A) or None when nothing was clipped (also None when
    ``dense_unmet=False``); ``unmet_total`` (...) unmet summed over sex and age, or None.
    """

    population: np.ndarray
    births: np.ndarray
    births_by_mother_age: np.ndarray | None
    deaths: np.ndarray | None
    migrants: np.ndarray | None
    unmet_emigration: np.ndarray | None
    unmet_total: np.ndarray | None = None


def _add_and_clip(counts: np.ndarray, added: np.ndarray):
    """Add ``added`` to ``counts`` **in place** and floor at 0.

    Returns None when nothing went negative, else ``(index, shortfall)``: the index tuple
    of the clipped cells and the persons (> 0) that could not leave there.  Sparse, so a
    rare clip costs little on large arrays.
    """
    np.add(counts, added, out=counts)
    if counts.size == 0 or counts.min() >= 0:
        return None
    flat = np.flatnonzero(counts < 0)  # contiguous boolean mask: much faster than an N-d nonzero
    index = np.unravel_index(flat, counts.shape)
    shortfall = -counts[index]
    counts[index] = 0
    return index, shortfall


def _survive_cohorts(start: np.ndarray, survival: np.ndarray, out: np.ndarray) -> None:
    """``out[..., a] = start[..., a−1]·S[a]`` (0 < a < A−1), ``out[..., A−1] = (start[A−2] + start[A−1])·S[A−1]``.

    ``out[..., 0]`` is left undefined (births go there).  For C-contiguous full-size
    arrays the shift is done on the flattened trailing block (one long inner loop instead
    of one per (unit, sex) row, several times faster on large batches); values that the
    flat shift writes into age 0 are overwritten by the caller.
    """
    A = out.shape[-1]
    full = out.shape
    if start.shape == full and start.flags.c_contiguous and out.flags.c_contiguous and start.size:
        varying = survival.ndim
        while varying > 2 and survival.shape[survival.ndim - varying] == 1:
            varying -= 1  # leading length-1 axes of survival do not vary
        k = max(varying, 2)
        while k < len(full) and int(np.prod(full[-k - 1:])) <= 1 << 18:
            k += 1  # a block of up to 256k values keeps the materialised ratios in cache
        block = full[len(full) - k:]
        ratios = np.ascontiguousarray(np.broadcast_to(survival, block)).reshape(-1)
        flat_in = start.reshape(-1, ratios.size)
        flat_out = out.reshape(-1, ratios.size)
        np.multiply(flat_in[:, :-1], ratios[1:], out=flat_out[:, 1:])
        out[..., A - 1] += start[..., A - 1] * survival[..., A - 1]
        return
    np.multiply(start[..., :A - 2], survival[..., 1:A - 1], out=out[..., 1:A - 1])
    np.multiply(start[..., A - 2] + start[..., A - 1], survival[..., A - 1], out=out[..., A - 1])


def advance_one_step(population, survival, asfr, srb, net_migration=None, *, step_years: float = 1.0,
                     migration_timing: str = "even", components: bool = False, migration_scale=None,
                     overwrite_population: bool = False, dense_unmet: bool = True) -> StepResult:
    """Advance a population by one step (no input validation: :func:`project` validates).

    ``population`` (..., 2, A); ``survival`` (..., 2, A); ``asfr`` (..., A);
    ``srb`` (...); ``net_migration`` (..., 2, A) or None; ``migration_scale`` (...) or
    None multiplies the net migration (e.g. one factor per stochastic draw, shape
    ``(draws, 1)`` against units) without materialising the product twice.  Leading axes
    broadcast.  With ``overwrite_population=True`` the population array (if it already
    has the full broadcast shape and dtype) is reused as a work buffer: memory-lean
    drivers pass the previous step's result.  ``dense_unmet=False`` skips building the
    full ``unmet_emigration`` array (``unmet_total`` is always given).  The output dtype follows numpy promotion
    of the inputs (all float32 gives float32).  See the module docstring for the timing
    conventions.
    """
    pop = np.asarray(population)
    survival = np.asarray(survival)
    asfr = np.asarray(asfr)
    srb = np.asarray(srb)
    A = pop.shape[-1]
    mig = None if net_migration is None else np.asarray(net_migration)
    scale = None if (mig is None or migration_scale is None) else np.asarray(migration_scale)
    lead = np.broadcast_shapes(pop.shape[:-2], survival.shape[:-2], asfr.shape[:-1], srb.shape,
                               () if mig is None else mig.shape[:-2], () if scale is None else scale.shape)
    full = lead + (2, A)
    dtype = np.result_type(pop, survival, asfr, srb, *(() if mig is None else (mig,)),
                           *(() if scale is None else (scale,)))
    if mig is not None:
        factor = dtype.type(0.5 if migration_timing == "even" else 1.0)
        if scale is not None:
            mig_shape = np.broadcast_shapes(mig.shape[:-2], scale.shape) + mig.shape[-2:]
            moved = np.multiply(mig, (scale * factor)[..., None, None], out=np.empty(mig_shape, dtype=dtype))
            if components:
                mig = np.multiply(mig, scale[..., None, None], dtype=dtype)
        else:
            moved = mig * factor if factor != 1 else mig
    m_start = m_end = None
    if mig is not None:
        if migration_timing in ("even", "start"):
            m_start = moved
        if migration_timing in ("even", "end"):
            m_end = moved

    shortfalls = []  # (index tuple into the full (..., 2, A) shape, persons)
    if m_start is not None:
        if overwrite_population and pop.shape == full and pop.dtype == dtype and pop.flags.writeable:
            start = pop
        else:
            start = np.empty(full, dtype=dtype)
            start[...] = pop
        clipped = _add_and_clip(start, m_start)
        if clipped is not None:
            shortfalls.append((clipped[0], clipped[1]))
    else:
        start = pop

    # survive every cohort one group up; the open group receives groups
    new = np.empty(full, dtype=dtype)
    _survive_cohorts(start, survival, new)

    survived = None
    if m_end is not None:
        new[..., 0] = -m_end[..., 0]  # age 0 is set after births: make the full-array add leave it at exactly 0
        if components:
            survived = new.copy()
        clipped = _add_and_clip(new, m_end)
        if clipped is not None:
            shortfalls.append(clipped)
    elif components:
        survived = new  # no end-of-step migrants: the survivors are the end population

    # births from the mean female exposure over the step (fertile ages only)
    nonzero = np.flatnonzero(np.any(asfr.reshape(-1, A) != 0, axis=0))
    by_age = None
    if nonzero.size:
        lo, hi = int(nonzero[0]), int(nonzero[-1]) + 1
        by_age = start[..., FEMALE, lo:hi] + new[..., FEMALE, lo:hi]
        by_age *= asfr[..., lo:hi]
        by_age *= dtype.type(0.5 * step_years)
        total_births = by_age.sum(axis=-1)
    else:
        lo = hi = 0
        total_births = np.zeros(lead, dtype=dtype)
    births = np.empty(lead + (2,), dtype=dtype)
    births[..., FEMALE] = total_births / (dtype.type(1) + srb)
    births[..., MALE] = total_births - births[..., FEMALE]
    np.multiply(births, survival[..., 0], out=new[..., 0])
    if survived is not None and survived is not new:
        survived[..., 0] = new[..., 0]
    if m_end is not None:
        clipped = _add_and_clip(new[..., 0], m_end[..., 0])
        if clipped is not None:
            index, persons = clipped
            shortfalls.append((index + (np.zeros_like(index[0]),), persons))

    unmet = unmet_total = None
    if shortfalls:
        unmet_total = np.zeros(lead, dtype=dtype)
        if dense_unmet or components:
            unmet = np.zeros(full, dtype=dtype)
        for index, persons in shortfalls:
            if lead:
                cells = np.ravel_multi_index(index[:-2], lead)
                unmet_total += np.bincount(cells, weights=persons, minlength=unmet_total.size).reshape(lead)
            else:
                unmet_total += persons.sum()
            if unmet is not None:
                np.add.at(unmet, index, persons)

    by_mother = deaths = migrants = None
    if components:
        by_mother = np.zeros(lead + (A,), dtype=dtype)
        if by_age is not None:
            by_mother[..., lo:hi] = by_age
        inflow = np.empty(full, dtype=dtype)
        inflow[..., 0] = births
        inflow[..., 1:A - 1] = start[..., :A - 2]
        inflow[..., A - 1] = start[..., A - 2] + start[..., A - 1]
        deaths = inflow - survived
        migrants = np.zeros(full, dtype=dtype) if mig is None else np.broadcast_to(mig, full).astype(dtype, copy=True)
        if unmet is not None:
            migrants += unmet
    return StepResult(new, births, by_mother, deaths, migrants, unmet if dense_unmet else None, unmet_total)


@dataclass(frozen=True)
class ProjectionResult:
    """Output of :func:`project`; ``T`` steps, leading shape ``(...)`` = broadcast of the inputs.

    ``population`` (T+1, ..., 2, A): ``[0]`` the base, ``[k]`` after ``k`` steps.
    ``unmet_emigration`` (T, ..., 2, A): emigrants who could not leave (≥ 0).
    With ``return_components=True`` also ``births`` (T, ..., 2) by sex of the child,
    ``births_by_mother_age`` (T, ..., A) both sexes, ``deaths`` (T, ..., 2, A) by age group
    at the end of the step (index 0: deaths of the step's births), ``migrants``
    (T, ..., 2, A) realised net migrants by age at the move; otherwise these are None.
    """

    population: np.ndarray
    unmet_emigration: np.ndarray
    births: np.ndarray | None = None
    births_by_mother_age: np.ndarray | None = None
    deaths: np.ndarray | None = None
    migrants: np.ndarray | None = None
    step_years: float = 1.0
    migration_timing: str = "even"
    sexes: tuple[str, str] = SEXES

    def balance_residual(self) -> np.ndarray:
        """Max |P(t+1) − P(t) − births + deaths − migrants| over steps, per leading cell (needs components)."""
        if self.births is None:
            raise ForecastError("no components", [Problem("return_components", "the balance needs births, deaths and "
                                                          "migrants", "call project(..., return_components=True)")])
        total = self.population.sum(axis=(-2, -1))
        flows = self.births.sum(-1) - self.deaths.sum(axis=(-2, -1)) + self.migrants.sum(axis=(-2, -1))
        return np.abs(total[1:] - total[:-1] - flows).max(axis=0)


def _check_step_input(name: str, arr: np.ndarray, T: int, tail_ndim: int, lead_pop: tuple, tail: tuple,
                      problems: list[Problem]) -> None:
    if arr.ndim < 1 + tail_ndim:
        problems.append(Problem(name, f"has shape {arr.shape}; needs a leading step axis and {tail_ndim} trailing axes",
                                f"shape (T, ..., {', '.join(map(str, tail)) or 'nothing'}) with T steps"))
        return
    if arr.shape[0] not in (1, T):
        problems.append(Problem(name, f"has {arr.shape[0]} steps but survival has {T}", "give one slice per step or 1"))
    if tail_ndim and arr.shape[arr.ndim - tail_ndim:] != tail:
        problems.append(Problem(name, f"trailing shape {arr.shape[arr.ndim - tail_ndim:]} != {tail}",
                                "the last axes must be (sex=2, age) or (age,) as documented"))
    try:
        np.broadcast_shapes(arr.shape[1:arr.ndim - tail_ndim], lead_pop)
    except ValueError:
        problems.append(Problem(name, f"leading axes {arr.shape[1:arr.ndim - tail_ndim]} do not broadcast with the "
                                f"population's {lead_pop}", "align the unit/draw axes (numpy broadcasting, right-aligned)"))
    if not np.all(np.isfinite(arr)):
        problems.append(Problem(name, f"{int((~np.isfinite(arr)).sum())} values are not finite", "replace NaN/inf"))


def _lead_index(arr: np.ndarray, step: int) -> np.ndarray:
    return arr[0] if arr.shape[0] == 1 else arr[step]


def project(population, survival, asfr, srb, net_migration=None, *, step_years: float = 1.0,
            migration_timing: str = "even", return_components: bool = False) -> ProjectionResult:
    """Project a two-sex population over ``T`` steps (``T = survival.shape[0]``).

    Parameters (``A`` age groups, last open; sex order :data:`SEXES` = female, male):

    * ``population``: ``(..., 2, A)`` persons at the start (≥ 0).
    * ``survival``: ``(T, ..., 2, A)`` survival ratios in [0, 1], indexed by the age group
      at the end of the step (``[..., 0]`` births → group 0; ``[..., A−1]`` groups A−2 and
      A−1 → open group); from :func:`forecast.lifetable.calculate_survival_ratios`.
    * ``asfr``: ``(T, ..., A)`` births per woman per year by age group of the mother at
      the start/end of the step (mean exposure); ``asfr[..., 0]`` must be 0.
    * ``srb``: ``(T, ...)`` or ``(T,)`` male births per female birth.
    * ``net_migration``: ``(T, ..., 2, A)`` net migrants over the whole step, or None.
    * ``step_years``: length of a step = width of an age group (1 or 5).
    * ``migration_timing``: ``'even'`` (half start, half end), ``'start'`` or ``'end'``.

    Leading axes ``...`` broadcast across inputs (e.g. population ``(draws, units, 2, A)``
    with survival ``(T, 1, 1, 2, A)`` or ``(T, 2, A)``).  See the module docstring for every
    timing convention and the balance identity.  Returns a :class:`ProjectionResult`.
    """
    pop = np.asarray(population)
    survival = np.asarray(survival)
    asfr = np.asarray(asfr)
    srb = np.asarray(srb)
    mig = None if net_migration is None else np.asarray(net_migration)
    problems: list[Problem] = []
    if pop.ndim < 2 or pop.shape[-2] != 2 or pop.shape[-1] < 3:
        problems.append(Problem("population", f"has shape {pop.shape}",
                                "shape (..., 2, A): sex (female, male) then at least 3 age groups, the last open"))
        raise_if_problems(problems, "cannot project", ForecastError)
    A = pop.shape[-1]
    if not np.all(np.isfinite(pop)) or np.any(pop < 0):
        problems.append(Problem("population", "has negative or non-finite counts", "persons must be finite and >= 0"))
    if survival.ndim < 3:
        problems.append(Problem("survival", f"has shape {survival.shape}", "shape (T, ..., 2, A) with a step axis"))
        raise_if_problems(problems, "cannot project", ForecastError)
    T = survival.shape[0]
    lead_pop = pop.shape[:-2]
    _check_step_input("survival", survival, T, 2, lead_pop, (2, A), problems)
    if np.any((survival < 0) | (survival > 1)):
        problems.append(Problem("survival", "ratios outside [0, 1]", "survival ratios are probabilities"))
    _check_step_input("asfr", asfr, T, 1, lead_pop, (A,), problems)
    if asfr.ndim >= 2 and asfr.shape[-1] == A:
        if np.any(asfr < 0):
            problems.append(Problem("asfr", "negative fertility rates", "rates must be >= 0"))
        if np.any(asfr[..., 0] != 0):
            problems.append(Problem("asfr", "age group 0 has non-zero fertility",
                                    "set asfr[..., 0] = 0 (births to the newborn group are not defined)"))
    if srb.ndim == 0:
        srb = srb.reshape(1)
    _check_step_input("srb", srb, T, 0, lead_pop, (), problems)
    if np.any(srb <= 0):
        problems.append(Problem("srb", "sex ratio at birth must be > 0", "male births per female birth, about 1.05"))
    if mig is not None:
        _check_step_input("net_migration", mig, T, 2, lead_pop, (2, A), problems)
    if migration_timing not in MIGRATION_TIMINGS:
        problems.append(Problem("migration_timing", f"got {migration_timing!r}", f"use one of {MIGRATION_TIMINGS}"))
    if not step_years > 0:
        problems.append(Problem("step_years", f"got {step_years}", "a positive step length in years (1 or 5)"))
    raise_if_problems(problems, "cannot project", ForecastError)

    states = [pop]
    steps: list[StepResult] = []
    current = pop
    for k in range(T):
        res = advance_one_step(current, _lead_index(survival, k), _lead_index(asfr, k), _lead_index(srb, k),
                               None if mig is None else _lead_index(mig, k), step_years=step_years,
                               migration_timing=migration_timing, components=return_components)
        steps.append(res)
        current = res.population
        states.append(current)
    full = np.broadcast_shapes(*(s.shape for s in states))
    dtype = states[-1].dtype
    population_out = np.empty((T + 1,) + full, dtype=dtype)
    for k, s in enumerate(states):
        population_out[k] = s
    unmet = np.zeros((T,) + full, dtype=dtype)
    for k, s in enumerate(steps):
        if s.unmet_emigration is not None:
            unmet[k] = s.unmet_emigration
    extra = {}
    if return_components:
        def stack(field, shape):
            out = np.empty((T,) + shape, dtype=dtype)
            for k, s in enumerate(steps):
                out[k] = getattr(s, field)
            return out
        extra = dict(births=stack("births", full[:-2] + (2,)),
                     births_by_mother_age=stack("births_by_mother_age", full[:-2] + (A,)),
                     deaths=stack("deaths", full), migrants=stack("migrants", full))
    return ProjectionResult(population=population_out, unmet_emigration=unmet, step_years=float(step_years),
                            migration_timing=migration_timing, **extra)
