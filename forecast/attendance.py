"""Where pupils live versus where they study: the unit → school attendance matrix and the allocation.

An attendance matrix ``A`` (``(U, S)``, or per year ``(Y, U, S)``, or per year and grade ``(Y, G, U, S)``)
holds the share of the pupils living in residential unit ``u`` who attend school ``s``; every row with a
school to go to sums to 1, so allocating conserves pupils exactly: ``Σ_s school_pupils = Σ_u unit_pupils`` per
grade, year and draw (:func:`allocate_pupils`).

Building ``A``:

* from **observed flows** (pupils of unit ``u`` at school ``s``), row-normalised, with a fallback seed for
  units without observed pupils (:func:`build_attendance_from_flows`);
* from **current shares** when only school rolls and unit pupils are known: a seed (e.g. a distance-decay
  gravity ``exp(−d/scale)`` over the schools serving the grade, :func:`build_gravity_seed`) balanced by
  iterative proportional fitting so that rows give the unit pupils and columns the schools' current pupils
  (:func:`calibrate_attendance`);
* **trends**: rural children moving to town schools (进城上学) — a yearly share of each rural unit's
  attendance at non-town schools moves to town schools (:func:`shift_to_town`);
* **migrant children** (随迁子女) in addition to the resident projection (:func:`add_migrant_children`);
* **boarding** (寄宿) by grade and area (:func:`compute_boarders`).

Arrays: ``...`` leading axes (draws), ``Y`` years, ``U`` units, ``S`` schools, ``G`` grades; unit pupils are
``(..., Y, U, G)`` as produced by :mod:`forecast.levels`; school pupils come back as ``(..., Y, S, G)``.
Quantiles are taken after allocation, per draw (:func:`summarise_draws`), since quantiles do not add up.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from forecast.errors import ForecastError, Problem, format_rows, raise_if_problems
from forecast.stochastic import QUANTILES, calculate_quantiles


def _check_stochastic(attendance: np.ndarray, source: str, atol: float = 1e-9) -> list[Problem]:
    problems = []
    if (attendance < 0).any() or not np.isfinite(attendance).all():
        problems.append(Problem(source, "negative or non-finite shares", "shares are fractions ≥ 0"))
    rows = attendance.sum(axis=-1)
    bad = np.abs(rows - 1) > atol
    if bad.any():
        idx = np.argwhere(bad)
        problems.append(Problem(source, f"{bad.sum()} rows do not sum to 1 (e.g. {rows[bad][:3].round(6).tolist()})",
                                "normalise each unit's shares over schools (a unit with no school must get one)",
                                format_rows([tuple(int(i) for i in r) for r in idx])))
    return problems


def build_gravity_seed(distance_m: np.ndarray, scale_m: float, serves: np.ndarray | None = None,
                       max_distance_m: float | None = None) -> np.ndarray:
    """Seed weights ``exp(−distance/scale)`` ``(U, S)``, zero where the school does not serve the grade
    (``serves`` ``(S,)`` bool) or lies beyond ``max_distance_m``.  ``distance_m``: ``(U, S)`` metres
    (e.g. road or river-aware travel distance from :mod:`layout`)."""
    d = np.asarray(distance_m, dtype=float)
    if scale_m <= 0:
        raise ForecastError("bad gravity scale", [Problem("scale_m", f"{scale_m}", "a positive distance in metres")])
    w = np.exp(-d / scale_m)
    if serves is not None:
        w = w * np.asarray(serves, dtype=bool)[None, :]
    if max_distance_m is not None:
        w = np.where(d <= max_distance_m, w, 0.0)
    return w


def build_attendance_from_flows(flows: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Row-normalised observed flows ``(U, S)``; units with no observed pupil use the row-normalised
    ``fallback`` seed ``(U, S)`` (e.g. :func:`build_gravity_seed`)."""
    flows = np.asarray(flows, dtype=float)
    fallback = np.asarray(fallback, dtype=float)
    problems = []
    if flows.shape != fallback.shape:
        problems.append(Problem("fallback", f"shape {fallback.shape} != flows {flows.shape}", "same (U, S) shape"))
    if (flows < 0).any():
        problems.append(Problem("flows", "negative flows", "flows are pupil counts ≥ 0"))
    raise_if_problems(problems, "attendance flows", ForecastError)
    rows = flows.sum(axis=1)
    fb_rows = fallback.sum(axis=1)
    empty = (rows <= 0) & (fb_rows <= 0)
    if empty.any():
        raise ForecastError("units with nowhere to go", [Problem(
            "fallback", f"{empty.sum()} units have neither flows nor a fallback school",
            "widen the fallback seed (distance limit, schools serving the grade)", format_rows(np.flatnonzero(empty)))])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((rows > 0)[:, None], flows / rows[:, None], fallback / fb_rows[:, None])


def calibrate_attendance(unit_pupils: np.ndarray, school_pupils: np.ndarray, seed: np.ndarray, *,
                         max_iter: int = 2000, tol: float = 1e-8) -> tuple[np.ndarray, dict]:
    """Current attendance shares by iterative proportional fitting (Furness balancing).

    ``unit_pupils``: ``(U,)`` pupils by unit of residence; ``school_pupils``: ``(S,)`` current pupils by school
    (rescaled to the unit total if they differ); ``seed``: ``(U, S)`` ≥ 0 prior weights (zero = not allowed).
    Returns ``(A (U, S) row-stochastic, info)``: the fitted flows ``A × unit_pupils`` have the unit totals as
    rows and (when the seed's pattern allows it) the school totals as columns; ``info`` has ``iterations``,
    ``max_column_error`` (pupils) and ``converged``.  Units without pupils keep their normalised seed row.
    """
    u = np.asarray(unit_pupils, dtype=float)
    s = np.asarray(school_pupils, dtype=float)
    w = np.asarray(seed, dtype=float)
    problems = []
    if w.shape != (u.size, s.size):
        problems.append(Problem("seed", f"shape {w.shape}", f"({u.size}, {s.size}) = (units, schools)"))
    if (u < 0).any() or (s < 0).any() or (w < 0).any():
        problems.append(Problem("unit_pupils/school_pupils/seed", "negative values", "counts and weights ≥ 0"))
    raise_if_problems(problems, "attendance calibration", ForecastError)
    no_school = (u > 0) & (w.sum(axis=1) <= 0)
    no_unit = (s > 0) & (w.sum(axis=0) <= 0)
    if no_school.any():
        problems.append(Problem("seed", f"{no_school.sum()} units with pupils reach no school",
                                "allow at least one school per unit (distance limit, grades served)",
                                format_rows(np.flatnonzero(no_school))))
    if no_unit.any():
        problems.append(Problem("seed", f"{no_unit.sum()} schools with pupils are reached by no unit",
                                "allow some units to reach every school that has pupils",
                                format_rows(np.flatnonzero(no_unit))))
    raise_if_problems(problems, "attendance calibration", ForecastError)
    if s.sum() > 0 and u.sum() > 0:
        s = s * (u.sum() / s.sum())
    flow = w.copy()
    err = np.inf
    it = 0
    for it in range(1, max_iter + 1):
        rs = flow.sum(axis=1)
        flow *= np.divide(u, rs, out=np.zeros_like(u), where=rs > 0)[:, None]
        cs = flow.sum(axis=0)
        flow *= np.divide(s, cs, out=np.zeros_like(s), where=cs > 0)[None, :]
        rs = flow.sum(axis=1)
        err = float(np.max(np.abs(rs - u))) if u.size else 0.0
        if err <= tol * max(1.0, u.max(initial=0.0)):
            break
    rs = flow.sum(axis=1)
    seed_rows = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        att = np.where((rs > 0)[:, None], flow / rs[:, None],
                       np.where((seed_rows > 0)[:, None], w / seed_rows[:, None], 0.0))
    col_err = float(np.max(np.abs((att * u[:, None]).sum(axis=0) - s))) if s.size else 0.0
    return att, {"iterations": it, "max_column_error": col_err, "converged": err <= tol * max(1.0, u.max(initial=0.0))}


def shift_to_town(attendance: np.ndarray, rural_unit: np.ndarray, town_school: np.ndarray, rate: np.ndarray,
                  town_seed: np.ndarray | None = None) -> np.ndarray:
    """Attendance per year with rural children moving to town schools (进城上学).

    ``attendance``: ``(U, S)`` base-year shares; ``rural_unit``: ``(U,)`` bool; ``town_school``: ``(S,)`` bool
    (schools in the urban area / town seats); ``rate``: ``(Y,)`` share of a rural unit's *remaining* attendance
    at non-town schools that moves in year ``t`` (``rate[0]`` = 0 keeps the base year).  The moved share goes to
    the unit's town schools in proportion to its current town shares, or — for a unit with none — to
    ``town_seed`` ``(U, S)`` (e.g. a gravity seed over town schools).  Returns ``(Y, U, S)``, rows still sum to 1.
    """
    a = np.asarray(attendance, dtype=float)
    rural = np.asarray(rural_unit, dtype=bool)
    town = np.asarray(town_school, dtype=bool)
    rate = np.asarray(rate, dtype=float)
    problems = _check_stochastic(a, "attendance", atol=1e-6)
    if (rate < 0).any() or (rate > 1).any():
        problems.append(Problem("rate", f"{rate.round(4).tolist()}", "yearly fractions in [0, 1]"))
    raise_if_problems(problems, "town-shift inputs", ForecastError)
    target = a * town[None, :]
    tsum = target.sum(axis=1)
    if town_seed is not None:
        seed = np.asarray(town_seed, dtype=float) * town[None, :]
        ssum = seed.sum(axis=1)
        target = np.where((tsum > 0)[:, None], target, seed)
        tsum = np.where(tsum > 0, tsum, ssum)
    movable = rural & (tsum > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        target = np.where((tsum > 0)[:, None], target / tsum[:, None], 0.0)
    keep = np.cumprod(1 - rate)  # (Y,) remaining fraction of non-town attendance
    out = np.broadcast_to(a, (rate.size,) + a.shape).copy()
    non_town = a * (~town)[None, :]
    moved = non_town.sum(axis=1)[None, :] * (1 - keep)[:, None]  # (Y, U)
    out[:, movable] = (a[movable] * town[None, :] + non_town[movable] * keep[:, None, None]
                       + moved[:, movable, None] * target[movable][None])
    return out


def add_migrant_children(unit_pupils: np.ndarray, share: np.ndarray, receiving: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Add migrant children (随迁子女) not counted in the resident projection.

    ``unit_pupils``: ``(..., Y, U, G)``; ``share``: ``(Y,)`` extra pupils as a fraction of all resident pupils
    of the grade (0 when the population base already counts them at their place of residence, as the census
    does); ``receiving``: ``(U,)`` weights ≥ 0 of the units where they live (e.g. urban units' housing).
    Returns ``(pupils incl. migrants, migrants)`` both ``(..., Y, U, G)``.
    """
    p = np.asarray(unit_pupils, dtype=float)
    share = np.asarray(share, dtype=float)
    w = np.asarray(receiving, dtype=float)
    problems = []
    if share.shape != (p.shape[-3],) or (share < 0).any():
        problems.append(Problem("share", f"shape {share.shape}", f"({p.shape[-3]},) fractions ≥ 0"))
    if w.shape != (p.shape[-2],) or (w < 0).any() or w.sum() <= 0:
        problems.append(Problem("receiving", f"shape {w.shape}, sum {w.sum() if w.size else 0}",
                                f"({p.shape[-2]},) weights ≥ 0 with a positive sum"))
    raise_if_problems(problems, "migrant-children inputs", ForecastError)
    total = p.sum(axis=-2, keepdims=True)  # (..., Y, 1, G)
    migrants = total * share[:, None, None] * (w / w.sum())[:, None]
    return p + migrants, migrants


def allocate_pupils(unit_pupils: np.ndarray, attendance: np.ndarray, check: bool = True) -> np.ndarray:
    """Pupils by school: ``school[..., y, s, g] = Σ_u unit[..., y, u, g] · A[y, g, u, s]``.

    ``unit_pupils``: ``(..., Y, U, G)``; ``attendance``: ``(U, S)``, ``(Y, U, S)`` or ``(Y, G, U, S)``,
    row-stochastic (checked unless ``check=False``).  Returns ``(..., Y, S, G)``; totals over schools equal
    totals over units per year, grade and draw.
    """
    p = np.asarray(unit_pupils, dtype=float)
    a = np.asarray(attendance, dtype=float)
    n_y, n_u, n_g = p.shape[-3:]
    problems = []
    if a.ndim not in (2, 3, 4) or a.shape[-2] != n_u:
        problems.append(Problem("attendance", f"shape {a.shape}", f"(U, S), (Y, U, S) or (Y, G, U, S) with U = {n_u}"))
    elif (a.ndim >= 3 and a.shape[0] != n_y) or (a.ndim == 4 and a.shape[1] != n_g):
        problems.append(Problem("attendance", f"shape {a.shape}", f"years {n_y}, grades {n_g} as in unit_pupils"))
    if not problems and check:
        problems += _check_stochastic(a, "attendance", atol=1e-6)
    raise_if_problems(problems, "cannot allocate pupils", ForecastError)
    moved = np.swapaxes(p, -1, -2)  # (..., Y, G, U)
    if a.ndim == 2:
        out = moved @ a  # (..., Y, G, S)
    else:
        a4 = a[:, None] if a.ndim == 3 else a  # (Y, 1|G, U, S)
        out = (moved[..., None, :] @ a4)[..., 0, :]  # (..., Y, G, 1, U) @ (Y, G, U, S)
    return np.swapaxes(out, -1, -2)


def build_boarding_rates(rate_by_grade_area: np.ndarray, unit_area: np.ndarray) -> np.ndarray:
    """Boarding rates ``(G, U)`` from a ``(G, K)`` table of rates by grade and area class (e.g. K = 2:
    urban, rural) and each unit's area class ``unit_area`` ``(U,)`` (ints in 0..K−1)."""
    table = np.asarray(rate_by_grade_area, dtype=float)
    area = np.asarray(unit_area, dtype=int)
    if (table < 0).any() or (table > 1).any() or area.min(initial=0) < 0 or area.max(initial=0) >= table.shape[1]:
        raise ForecastError("bad boarding rates", [Problem("rate_by_grade_area/unit_area",
                                                           "rates must be fractions and area classes index the table",
                                                           "rates in [0, 1]; unit_area in 0..K−1")])
    return table[:, area]


def compute_boarders(unit_pupils: np.ndarray, attendance: np.ndarray, rates: np.ndarray,
                     eligible: np.ndarray | None = None) -> np.ndarray:
    """Boarders by school ``(..., Y, S, G)``: ``Σ_u unit[y, u, g] · A[u, s] · rate[g, u] · E[u, s]``.

    ``rates``: ``(G, U)`` (:func:`build_boarding_rates`) or ``(Y, G, U)``; ``eligible``: optional ``(U, S)``
    0/1 (e.g. only pupils living beyond a travel-time limit board).  Boarders ≤ pupils in every cell.
    """
    p = np.asarray(unit_pupils, dtype=float)
    r = np.asarray(rates, dtype=float)
    weighted = p * np.swapaxes(r, -1, -2)  # rates as (U, G) or (Y, U, G) against (…, Y, U, G)
    a = np.asarray(attendance, dtype=float)
    if eligible is not None:
        a = a * np.asarray(eligible, dtype=float)
    problems = _check_stochastic(np.asarray(attendance, dtype=float), "attendance", atol=1e-6)
    if (r < 0).any() or (r > 1).any():
        problems.append(Problem("rates", "boarding rates outside [0, 1]", "use fractions"))
    raise_if_problems(problems, "cannot compute boarders", ForecastError)
    return allocate_pupils(weighted, a, check=False)


def summarise_draws(values: np.ndarray, quantiles: Sequence[float] = QUANTILES) -> np.ndarray:
    """Quantiles over the leading draw axis: ``(D, ...)`` → ``(Q, ...)`` (after allocation, never before)."""
    return calculate_quantiles(values, tuple(quantiles), axis=0)
