"""Migration inputs: Rogers-Castro age schedules, net totals by age and sex, flows between
units (rural → urban) and the housing pipeline.

Arrays follow :mod:`forecast.ccmpp`: ``(..., sex, age)`` with sex order ``(female, male)``,
a leading step axis ``T`` for anything that varies over time, units on the axis
just before sex when present ``(..., U, 2, A)``.  Counts are persons per step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from forecast.ccmpp import FEMALE, MALE
from forecast.errors import ForecastError, Problem, raise_if_problems


@dataclass(frozen=True)
class RogersCastro:
    """Rogers-Castro (1981) model migration schedule, with the child component tied to the parents'.

    ``m(x) = a1·exp(−α1·x) + a2·exp(−α2(x−μ2) − exp(−λ2(x−μ2))) + a3·exp(−α3(x−μ3) − exp(−λ3(x−μ3))) + c``

    Children move with their parents: the pre-labour-force (child) component is tied to
    the labour-force component by the two regularities Rogers & Castro observed across
    schedules, ``a1 = child_ratio · a2`` (child dependency, about 1/3) and ``α1 = α2``
    (the children's curve falls at the rate the parents' curve falls).  Defaults are
    the "fundamental" schedule (a2 = 0.06, α2 = 0.1, μ2 = 20, λ2 = 0.4, c = 0.003,
    a1 = 0.02, α1 = 0.1; as in Rogers & Castro 1981 and e.g. the R package migest);
    the retirement component is off (``a3 = 0``).
    """

    a2: float = 0.06
    alpha2: float = 0.1
    mu2: float = 20.0
    lambda2: float = 0.4
    c: float = 0.003
    child_ratio: float = 1.0 / 3.0
    a3: float = 0.0
    alpha3: float = 0.5
    mu3: float = 65.0
    lambda3: float = 0.5

    @property
    def a1(self) -> float:
        return self.child_ratio * self.a2

    @property
    def alpha1(self) -> float:
        return self.alpha2

    def evaluate(self, x) -> np.ndarray:
        """The schedule at exact ages ``x`` (any shape)."""
        x = np.asarray(x, dtype=float)
        child = self.a1 * np.exp(-self.alpha1 * x)
        labour = self.a2 * np.exp(-self.alpha2 * (x - self.mu2) - np.exp(-self.lambda2 * (x - self.mu2)))
        retire = self.a3 * np.exp(-self.alpha3 * (x - self.mu3) - np.exp(-self.lambda3 * (x - self.mu3)))
        return child + labour + retire + self.c


# new residential complexes: young couples (peak near 27) and their children; little older movement
YOUNG_FAMILY = RogersCastro(a2=0.08, alpha2=0.12, mu2=24.0, lambda2=0.35, c=0.0005, child_ratio=0.45)


def calculate_age_schedule(params: RogersCastro = RogersCastro(), n_ages: int = 101, width: int = 1) -> np.ndarray:
    """Shares by age group (sum 1) from a Rogers-Castro schedule; shape ``(n_ages,)``.

    Groups ``[a·width, (a+1)·width)``; the schedule is evaluated at single-year
    mid-points and summed within groups; the last group (open) gets ``width`` years of
    its starting value (the schedule is flat, ``≈ c``, at high ages).
    """
    single = params.evaluate(np.arange(n_ages * width) + 0.5)
    grouped = single.reshape(n_ages, width).sum(axis=1)
    return grouped / grouped.sum()


def split_net_migration(total, schedule, female_share: float = 0.5) -> np.ndarray:
    """Split net migrant totals by sex and age.

    ``total`` ``(T, ...)`` net persons per step (negative = net out-migration);
    ``schedule`` ``(A,)`` or ``(2, A)`` age shares (each sex's row normalised to 1);
    ``female_share`` of the total that is female.  Returns ``(T, ..., 2, A)`` whose
    sum over sex and age equals ``total`` exactly (up to rounding).
    """
    total = np.asarray(total, dtype=float)
    schedule = np.asarray(schedule, dtype=float)
    problems = []
    if schedule.ndim not in (1, 2) or (schedule.ndim == 2 and schedule.shape[0] != 2):
        problems.append(Problem("schedule", f"shape {schedule.shape}", "shape (A,) or (2, A) (female, male)"))
    elif np.any(schedule < 0) or np.any(schedule.sum(-1) <= 0):
        problems.append(Problem("schedule", "negative shares or an empty schedule", "shares must be >= 0, sum > 0"))
    if not 0 <= female_share <= 1:
        problems.append(Problem("female_share", f"got {female_share}", "a fraction in [0, 1]"))
    raise_if_problems(problems, "cannot split net migration", ForecastError)
    schedule = np.broadcast_to(schedule, (2, schedule.shape[-1]))
    shares = schedule / schedule.sum(-1, keepdims=True)
    shares = shares * np.array([female_share, 1.0 - female_share])[:, None]
    return total[..., None, None] * shares


class TransferResult(NamedTuple):
    """Result of :func:`transfer_persons`; arrays ``(..., U, 2, A)``."""

    population: np.ndarray  # after the moves
    outflow: np.ndarray  # realised leavers by origin unit
    inflow: np.ndarray  # arrivals by destination unit
    unmet: np.ndarray  # requested leavers who were not there (>= 0)


def transfer_persons(population, requested, destination_share) -> TransferResult:
    """Move persons between units (e.g. rural → urban), vectorised, conserving persons.

    ``population`` ``(..., U, 2, A)``; ``requested`` ``(..., U, 2, A)`` leavers wanted from
    each origin unit (≥ 0); ``destination_share`` ``(U, U)``: row ``o`` gives the shares
    of origin ``o``'s leavers going to each destination (rows with any request must sum
    to 1; the diagonal must be 0).  Leavers are capped at the persons present, so no unit
    goes negative; the shortfall is returned as ``unmet``.  ``inflow.sum() ==
    outflow.sum()`` and the total population is unchanged (up to rounding).
    """
    population = np.asarray(population, dtype=float)
    requested = np.asarray(requested, dtype=float)
    share = np.asarray(destination_share, dtype=float)
    problems = []
    if population.ndim < 3 or population.shape[-2] != 2:
        problems.append(Problem("population", f"shape {population.shape}", "shape (..., U, 2, A)"))
    U = population.shape[-3] if population.ndim >= 3 else 0
    if share.shape != (U, U):
        problems.append(Problem("destination_share", f"shape {share.shape}, expected {(U, U)}", "a U×U matrix"))
    if np.any(requested < 0) or not np.all(np.isfinite(requested)):
        problems.append(Problem("requested", "negative or non-finite leavers", "requests are counts >= 0"))
    if share.shape == (U, U):
        if np.any(share < 0) or np.any(np.diag(share) != 0):
            problems.append(Problem("destination_share", "negative shares or moves to the same unit",
                                    "shares >= 0 with a zero diagonal"))
        try:
            wanted = np.broadcast_to(requested, np.broadcast_shapes(requested.shape, population.shape))
            sends = wanted.reshape(-1, U, wanted.shape[-2] * wanted.shape[-1]).sum(axis=(0, 2)) > 0 \
                if wanted.ndim >= 3 else np.zeros(U, bool)
            bad = np.flatnonzero(sends & ~np.isclose(share.sum(axis=1), 1.0))
            if bad.size:
                problems.append(Problem("destination_share", "rows of origins with leavers do not sum to 1",
                                        "normalise each sending origin's row", rows=f"origins {bad[:10].tolist()}"))
        except ValueError:
            problems.append(Problem("requested", f"shape {requested.shape} does not broadcast with {population.shape}",
                                    "same shape as population"))
    raise_if_problems(problems, "cannot transfer persons between units", ForecastError)
    outflow = np.minimum(requested, population)
    unmet = requested - outflow
    inflow = np.einsum("...osa,od->...dsa", outflow, share)
    return TransferResult(population - outflow + inflow, outflow, inflow, unmet)


def build_destination_shares(origin, destination, weight, group=None) -> np.ndarray:
    """Destination shares ``(U, U)`` for :func:`transfer_persons`.

    ``origin`` (U,) bool: units that send (e.g. rural); ``destination`` (U,) bool: units
    that receive (e.g. urban); ``weight`` (U,) attractiveness (e.g. population);
    ``group`` (U,) optional labels (e.g. township_code): leavers go to destinations of
    their own group when there is one, otherwise to all destinations.
    """
    origin = np.asarray(origin, bool)
    destination = np.asarray(destination, bool)
    weight = np.asarray(weight, dtype=float)
    U = origin.size
    problems = []
    if destination.shape != (U,) or weight.shape != (U,):
        problems.append(Problem("destination/weight", "must have one value per unit", "arrays of shape (U,)"))
    elif not np.any(destination & (weight > 0)):
        problems.append(Problem("destination", "no destination unit with positive weight", "mark receiving units"))
    raise_if_problems(problems, "cannot build destination shares", ForecastError)
    w = np.where(destination, weight, 0.0)
    base = np.broadcast_to(w, (U, U)).copy()
    if group is not None:
        group = np.asarray(group)
        same = group[:, None] == group[None, :]
        local = np.where(same, base, 0.0)
        np.fill_diagonal(local, 0.0)
        has_local = local.sum(axis=1) > 0
        base = np.where(has_local[:, None], local, base)
    np.fill_diagonal(base, 0.0)
    base[~origin] = 0.0
    total = base.sum(axis=1, keepdims=True)
    return np.divide(base, total, out=np.zeros_like(base), where=total > 0)


def calculate_rural_urban_migration(population, urban, rate, *, schedule=None, group=None,
                                    weight=None) -> np.ndarray:
    """Net migration by unit from rural → urban moves, ``(T, ..., U, 2, A)`` persons per step.

    ``population`` ``(..., U, 2, A)`` (e.g. the base); ``urban`` (U,) bool; ``rate`` ``(T,)``
    annual share of each rural unit's population that leaves for town; ``schedule`` (A,)
    age propensity (default Rogers-Castro fundamental: young adults with their children);
    destinations: urban units of the same ``group`` (township) when there are any, else
    all urban units, in proportion to ``weight`` (default: their population).  Each rural
    unit sends ``rate · persons`` split by ``population × schedule``; the result is
    inflow − outflow, so it sums to zero over units (persons are conserved).  Rates are
    applied to the population given (a documented approximation when it is the base);
    the engine clips any emigration a shrinking unit cannot supply.
    """
    pop = np.asarray(population, dtype=float)
    urban = np.asarray(urban, bool)
    rate = np.atleast_1d(np.asarray(rate, dtype=float))
    problems = []
    if pop.ndim < 3 or pop.shape[-2] != 2 or urban.shape != pop.shape[-3:-2]:
        problems.append(Problem("population/urban", f"shapes {pop.shape} and {urban.shape}",
                                "population (..., U, 2, A) and urban (U,)"))
    if rate.ndim != 1 or np.any((rate < 0) | (rate > 1)):
        problems.append(Problem("rate", "must be a (T,) path of shares in [0, 1]", "e.g. 0.01 = 1 % a year"))
    raise_if_problems(problems, "cannot build rural-urban migration", ForecastError)
    A = pop.shape[-1]
    propensity = calculate_age_schedule(RogersCastro(), A) if schedule is None else np.asarray(schedule, float)
    weighted = pop * propensity
    norm = weighted.sum(axis=(-2, -1), keepdims=True)
    unit_total = pop.sum(axis=(-2, -1), keepdims=True)
    per_rate = np.divide(weighted * unit_total, norm, out=np.zeros_like(weighted), where=norm > 0)
    per_rate *= (~urban)[:, None, None]  # only rural units send
    w = pop.sum(axis=(-2, -1)).reshape(-1, urban.size).sum(0) if weight is None else np.asarray(weight, float)
    share = build_destination_shares(~urban, urban, w, group)
    # flows per unit of rate, linear in the rate (no cap here: at real rates a cell cannot run dry)
    net_per_rate = np.einsum("...osa,od->...dsa", per_rate, share) - per_rate
    return rate.reshape((-1,) + (1,) * pop.ndim) * net_per_rate


def calculate_housing_in_movers(dwellings, persons_per_dwelling, age_profile) -> np.ndarray:
    """In-movers by age and sex from the housing pipeline.

    ``dwellings`` ``(T, ..., U)`` dwellings delivered (occupied) in each step and unit;
    ``persons_per_dwelling`` scalar or broadcastable to ``dwellings``; ``age_profile``
    ``(2, A)`` shares of the movers by sex and age summing to 1 (see
    :func:`build_young_family_profile`).  Returns ``(T, ..., U, 2, A)`` persons.
    """
    dwellings = np.asarray(dwellings, dtype=float)
    profile = np.asarray(age_profile, dtype=float)
    ppd = np.asarray(persons_per_dwelling, dtype=float)
    problems = []
    if np.any(dwellings < 0):
        problems.append(Problem("dwellings", "negative deliveries", "counts >= 0"))
    if np.any(ppd < 0):
        problems.append(Problem("persons_per_dwelling", "negative", "persons per dwelling >= 0 (about 2.5-3)"))
    if profile.ndim != 2 or profile.shape[0] != 2 or not np.isclose(profile.sum(), 1.0) or np.any(profile < 0):
        problems.append(Problem("age_profile", "must be (2, A) shares >= 0 summing to 1",
                                "use build_young_family_profile()"))
    raise_if_problems(problems, "cannot compute housing in-movers", ForecastError)
    persons = dwellings * ppd
    return persons[..., None, None] * profile


def build_young_family_profile(n_ages: int = 101, female_share: float = 0.5,
                               params: RogersCastro = YOUNG_FAMILY, width: int = 1) -> np.ndarray:
    """Sex × age shares ``(2, n_ages)`` (sum 1) of households moving into new dwellings.

    A Rogers-Castro schedule with a labour-force peak in the mid/late twenties and a
    strong tied child component (young couples with children), :data:`YOUNG_FAMILY`.
    """
    shares = calculate_age_schedule(params, n_ages, width)
    out = np.empty((2, n_ages))
    out[FEMALE] = female_share * shares
    out[MALE] = (1.0 - female_share) * shares
    return out


def offset_internal_movers(in_movers, origin_population, origin_mask) -> np.ndarray:
    """Net migration ``(T, ..., U, 2, A)`` for in-movers who come from elsewhere in the district.

    ``in_movers`` ``(T, ..., U, 2, A)`` persons arriving per step (e.g. the district-internal part of the housing
    pipeline); ``origin_population`` ``(..., U, 2, A)`` where they leave from; ``origin_mask`` (U,) bool: units that
    can send (e.g. rural units).  Each step's arrivals of a sex × age are taken from the origin units in proportion
    to their persons of that sex × age, so the result sums to zero over units for every sex and age (persons are
    conserved; the district total is unchanged).
    """
    movers = np.asarray(in_movers, dtype=float)
    pop = np.asarray(origin_population, dtype=float)
    mask = np.asarray(origin_mask, bool)
    problems = []
    if pop.ndim < 3 or mask.shape != pop.shape[-3:-2] or movers.shape[1:] != pop.shape:
        problems.append(Problem("in_movers/origin_population/origin_mask",
                                f"shapes {movers.shape}, {pop.shape}, {mask.shape}",
                                "in_movers (T, ..., U, 2, A), origin_population (..., U, 2, A), origin_mask (U,)"))
    elif not mask.any():
        problems.append(Problem("origin_mask", "no unit can send movers", "mark at least one origin unit"))
    raise_if_problems(problems, "cannot offset internal movers", ForecastError)
    origin = pop * mask[:, None, None]
    share = np.divide(origin, origin.sum(axis=-3, keepdims=True), out=np.zeros_like(origin),
                      where=origin.sum(axis=-3, keepdims=True) > 0)
    arriving = movers.sum(axis=-3, keepdims=True)  # (T, ..., 1, 2, A)
    return movers - arriving * share
