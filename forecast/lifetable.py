"""Life tables from death rates, survival ratios for projection, and mortality over time.

Numerical core: arrays in, arrays out.  Every function is vectorised over any
leading axes; the **last axis is age**.  Ages are the *start* of each age
interval (completed years), the last age is an **open** interval (e.g. 100+).

Conventions (also in ``forecast/README.md``):

* ``n`` (interval width) comes from ``np.diff(age_start)``; the open interval has
  no width.
* ``ax`` (average person-years lived in the interval by those dying in it):
  age 0 by Andreev & Kingkade (2015) (default, the HMD convention) or
  Coale & Demeny as tabulated in Preston, Heuveline & Guillot (2001, Table 3.3);
  ages 1-4 of an abridged table by Coale & Demeny ``4a1`` (Andreev-Kingkade give
  no ``4a1``); other closed intervals ``n/2`` (deaths uniform within the interval);
  the open interval ``1/m``.
* ``qx = n·m / (1 + (n − a)·m)``; the open interval has ``q = 1`` and ``L = l/m``.
  Where uniform deaths would give ``qx ≥ 1`` (only when ``n·m ≥ 2``: the 95-99 group of
  an abridged table at very high old-age mortality) that interval uses a constant
  hazard instead: ``qx = 1 − e^{−nm}``, ``ax = 1/m − n·e^{−nm}/(1 − e^{−nm})``, so
  ``lx`` stays positive up to the open age.
* ``radix`` ``l0`` defaults to 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from forecast.errors import ForecastError, Problem, raise_if_problems

SEXES = ("female", "male")  # same order as forecast.ccmpp.SEXES
A0_METHODS = ("andreev_kingkade", "coale_demeny")
ABRIDGED_AGES = np.array([0, 1] + list(range(5, 101, 5)))  # WPP abridged: 0, 1-4, 5-9, ..., 95-99, 100+


@dataclass(frozen=True)
class LifeTable:
    """A period life table; arrays have shape ``(..., age)``.

    ``age_start`` (age,) start of each interval, ``width`` (age,) with ``inf``
    for the open interval; ``mx`` central death rate per person-year; ``ax``
    years lived in the interval by those who die in it; ``qx`` probability of
    dying in the interval; ``lx`` survivors at exact age ``x`` (radix at age 0);
    ``dx`` deaths; ``Lx`` person-years lived in the interval; ``Tx`` person-years
    above ``x``; ``ex`` life expectancy at ``x`` (years).
    """

    age_start: np.ndarray
    width: np.ndarray
    mx: np.ndarray
    ax: np.ndarray
    qx: np.ndarray
    lx: np.ndarray
    dx: np.ndarray
    Lx: np.ndarray
    Tx: np.ndarray
    ex: np.ndarray
    radix: float

    @property
    def e0(self) -> np.ndarray:
        """Life expectancy at birth, shape ``(...)``, years."""
        return self.ex[..., 0]


def _sex_is_female(sex, leading_shape: tuple[int, ...]) -> np.ndarray:
    """Boolean array broadcastable to ``leading_shape`` (the shape of ``mx[..., 0]``)."""
    if isinstance(sex, str):
        return np.full(leading_shape, sex == "female")
    if sex is None:  # axis -2 of mx (i.e. the last leading axis) is sex, in SEXES order
        return np.broadcast_to(np.array([True, False]), leading_shape)
    return np.asarray(sex) == "female"


def calculate_a0(m0: np.ndarray, is_female: np.ndarray, method: str = "andreev_kingkade") -> np.ndarray:
    """Person-years lived in [0, 1) by infants who die, from the infant death rate ``m0``.

    ``andreev_kingkade``: Andreev & Kingkade (2015), piecewise linear in ``1m0``
    (the Human Mortality Database convention since its protocol v6).
    ``coale_demeny``: Coale & Demeny West, as given in terms of ``1m0`` by
    Preston, Heuveline & Guillot (2001), Table 3.3.
    """
    m0 = np.asarray(m0, dtype=float)
    if method == "andreev_kingkade":
        male = np.where(m0 < 0.02300, 0.14929 - 1.99545 * m0,
                        np.where(m0 < 0.08307, 0.02832 + 3.26021 * m0, 0.29915))
        female = np.where(m0 < 0.01724, 0.14903 - 2.05527 * m0,
                          np.where(m0 < 0.06891, 0.04667 + 3.88089 * m0, 0.31411))
    elif method == "coale_demeny":
        male = np.where(m0 >= 0.107, 0.330, 0.045 + 2.684 * m0)
        female = np.where(m0 >= 0.107, 0.350, 0.053 + 2.800 * m0)
    else:
        raise ForecastError("unknown a0 method", [Problem("a0_method", f"got {method!r}", f"use one of {A0_METHODS}")])
    return np.where(is_female, female, male)


def calculate_4a1(m0: np.ndarray, is_female: np.ndarray) -> np.ndarray:
    """Coale-Demeny ``4a1`` (years lived in [1, 5) by those dying there) from ``1m0`` (Preston et al. Table 3.3)."""
    m0 = np.asarray(m0, dtype=float)
    male = np.where(m0 >= 0.107, 1.352, 1.651 - 2.816 * m0)
    female = np.where(m0 >= 0.107, 1.361, 1.522 - 1.518 * m0)
    return np.where(is_female, female, male)


def _check_mx(mx: np.ndarray, age_start: np.ndarray, name: str = "mx") -> list[Problem]:
    problems = []
    if age_start.ndim != 1 or age_start.size < 2 or age_start[0] != 0 or np.any(np.diff(age_start) <= 0):
        problems.append(Problem("age_start", f"must start at 0 and increase strictly; got {age_start.tolist()}",
                                "pass the start of each age interval, e.g. 0,1,5,...,100 or 0..100"))
    if mx.shape[-1:] != age_start.shape:
        problems.append(Problem(name, f"last axis has {mx.shape[-1:]} ages but age_start has {age_start.size}",
                                "the last axis of mx must be age, aligned with age_start"))
    bad = ~np.isfinite(mx) | (mx < 0)
    if bad.any():
        problems.append(Problem(name, f"{int(bad.sum())} rates are negative or not finite",
                                "death rates must be finite and >= 0"))
    elif mx.shape[-1:] == age_start.shape and np.any(mx[..., -1] <= 0):
        problems.append(Problem(name, "the open age group has a zero death rate", "the open group needs mx > 0"))
    return problems


def build_life_table(mx, age_start=None, sex="female", *, a0_method: str = "andreev_kingkade",
                     radix: float = 1.0) -> LifeTable:
    """Build period life tables from central death rates.

    ``mx`` shape ``(..., age)``; ``age_start`` (age,) defaults to single years
    ``0..A-1``; the last age is open.  ``sex``: ``"female"``/``"male"`` for all
    tables, or ``None`` when axis ``-2`` of ``mx`` is sex in order
    ``SEXES = ("female", "male")``.  Age 0 must be a one-year interval (needed by the
    ``a0`` formulas); an abridged table may have a 1-4 interval (Coale-Demeny ``4a1``).
    """
    mx = np.asarray(mx, dtype=float)
    age_start = np.arange(mx.shape[-1]) if age_start is None else np.asarray(age_start)
    problems = _check_mx(mx, age_start)
    if not problems and age_start[1] != 1:
        problems.append(Problem("age_start", "age 0 must be a one-year interval", "use single years or 0,1,5,10,..."))
    if a0_method not in A0_METHODS:
        problems.append(Problem("a0_method", f"got {a0_method!r}", f"use one of {A0_METHODS}"))
    raise_if_problems(problems, "cannot build a life table", ForecastError)

    width = np.append(np.diff(age_start).astype(float), np.inf)
    n_closed = width[:-1]
    is_female = _sex_is_female(sex, mx.shape[:-1])
    ax = np.broadcast_to(width * 0.5, mx.shape).copy()
    ax[..., 0] = calculate_a0(mx[..., 0], is_female, a0_method)
    if age_start.size > 2 and age_start[1] == 1 and age_start[2] == 5:
        ax[..., 1] = calculate_4a1(mx[..., 0], is_female)
    open_m = mx[..., -1]
    ax[..., -1] = 1.0 / open_m

    m_closed = mx[..., :-1]
    qx = np.empty_like(mx)
    q_uniform = n_closed * m_closed / (1.0 + (n_closed - ax[..., :-1]) * m_closed)
    extreme = (q_uniform >= 1.0) & (m_closed > 0)
    if extreme.any():  # constant hazard where uniform deaths break down
        e = np.exp(-n_closed * m_closed)
        with np.errstate(invalid="ignore", divide="ignore"):
            a_hazard = 1.0 / m_closed - n_closed * e / (1.0 - e)
        ax[..., :-1] = np.where(extreme, a_hazard, ax[..., :-1])
        q_uniform = np.where(extreme, 1.0 - e, q_uniform)
    qx[..., :-1] = q_uniform
    qx[..., -1] = 1.0
    survive = np.cumprod(1.0 - qx[..., :-1], axis=-1)
    lx = np.empty_like(mx)
    lx[..., 0] = radix
    lx[..., 1:] = radix * survive
    dx = lx * qx
    Lx = np.empty_like(mx)
    Lx[..., :-1] = n_closed * lx[..., 1:] + ax[..., :-1] * dx[..., :-1]
    Lx[..., -1] = lx[..., -1] / open_m
    Tx = np.cumsum(Lx[..., ::-1], axis=-1)[..., ::-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        ex = np.where(lx > 0, Tx / np.where(lx > 0, lx, 1.0), 0.0)
    return LifeTable(age_start=age_start, width=width, mx=mx, ax=ax, qx=qx, lx=lx, dx=dx, Lx=Lx, Tx=Tx, ex=ex,
                     radix=float(radix))


def calculate_survival_ratios(life_table: LifeTable, step_years: int = 1) -> np.ndarray:
    """Survival ratios for a cohort-component projection with ``step_years``-wide age groups and steps.

    Returns shape ``(..., G)`` where ``G`` is the number of projection age groups
    ``0, n, 2n, …`` up to the life table's open age (the last group is open), indexed
    by the age group **at the end** of the step, as ``forecast.ccmpp.project`` expects:

    * ``[0]`` births → age group 0: ``nL0 / (n · l0)``;
    * ``[g]``, ``0 < g < G−1``: group ``g−1`` → ``g``: ``nL_g / nL_{g−1}``;
    * ``[G−1]`` the open group: groups ``G−2`` and ``G−1`` (open) together → open:
      ``T_{G−1} / T_{G−2}``.

    The life table's interval boundaries must include every multiple of ``step_years``
    below its open age (single-year tables work for any step; abridged ones for 5).
    """
    age = life_table.age_start
    open_age = int(age[-1])
    n = int(step_years)
    starts = np.arange(0, open_age, n)
    problems = []
    if n < 1 or open_age % n:
        problems.append(Problem("step_years", f"{step_years} does not divide the open age {open_age}",
                                "use a step that divides the open age (1 or 5)"))
    elif not np.isin(starts, age).all():
        problems.append(Problem("life_table", f"age boundaries {age.tolist()} do not contain every multiple of {n}",
                                "build the life table on single years or on groups aligned with the step"))
    raise_if_problems(problems, "cannot compute survival ratios", ForecastError)

    group = np.searchsorted(starts, age[:-1], side="right") - 1  # projection group of each closed interval
    n_groups = starts.size + 1
    L = np.zeros(life_table.Lx.shape[:-1] + (n_groups,))
    for g in range(starts.size):  # small loop over age groups, vectorised over leading axes
        L[..., g] = life_table.Lx[..., :-1][..., group == g].sum(axis=-1)
    L[..., -1] = life_table.Lx[..., -1]
    T = np.cumsum(L[..., ::-1], axis=-1)[..., ::-1]
    ratios = np.empty_like(L)
    ratios[..., 0] = L[..., 0] / (n * life_table.radix)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios[..., 1:-1] = np.where(L[..., :-2] > 0, L[..., 1:-1] / np.where(L[..., :-2] > 0, L[..., :-2], 1), 0.0)
        ratios[..., -1] = np.where(T[..., -2] > 0, T[..., -1] / np.where(T[..., -2] > 0, T[..., -2], 1), 0.0)
    return ratios


def interpolate_mx_to_single_years(mx, age_start=ABRIDGED_AGES) -> np.ndarray:
    """Graduate abridged death rates to single years of age, log-linearly.

    ``mx`` shape ``(..., G)`` on intervals ``age_start`` (e.g. WPP 0, 1-4, 5-9, …,
    95-99, 100+); returns ``(..., open_age + 1)`` for ages ``0 … open_age`` (last open).
    Age 0 and the open group keep their rates.  For the other single ages, ``log m``
    is interpolated linearly between interval mid-points (``a + n/2``) at the age's
    own mid-point ``x + 0.5``, extrapolated with the neighbouring slope at the ends
    (ages 1-2 and 98-99); then each interval's single-year rates are rescaled so their
    mean equals the interval's rate (keeps the interval's deaths per person-year).
    """
    mx = np.asarray(mx, dtype=float)
    age_start = np.asarray(age_start)
    problems = _check_mx(mx, age_start)
    if not problems and (np.any(mx[..., 1:-1] <= 0)):
        problems.append(Problem("mx", "zero rates cannot be interpolated on the log scale", "pass positive rates"))
    if not problems and age_start[1] != 1:
        problems.append(Problem("age_start", "age 0 must be a one-year interval", "use 0,1,5,10,..."))
    raise_if_problems(problems, "cannot interpolate death rates", ForecastError)

    open_age = int(age_start[-1])
    width = np.diff(age_start)
    mids = age_start[1:-1] + width[1:] / 2.0  # mid-points of the closed intervals after age 0
    log_m = np.log(mx[..., 1:-1])
    single_ages = np.arange(1, open_age)
    x = single_ages + 0.5
    # index of the left mid-point of the segment used for each single age (clamped to ends: extrapolation)
    k = np.clip(np.searchsorted(mids, x, side="right") - 1, 0, mids.size - 2)
    t = (x - mids[k]) / (mids[k + 1] - mids[k])
    log_single = log_m[..., k] * (1.0 - t) + log_m[..., k + 1] * t
    single = np.exp(log_single)
    owner = np.searchsorted(age_start, single_ages, side="right") - 1  # interval index (>=1) of each single age
    for g in range(1, age_start.size - 1):
        sel = owner == g
        single[..., sel] *= (mx[..., g] / single[..., sel].mean(axis=-1))[..., None]
    out = np.empty(mx.shape[:-1] + (open_age + 1,))
    out[..., 0] = mx[..., 0]
    out[..., 1:open_age] = single
    out[..., open_age] = mx[..., -1]
    return out


def interpolate_mx_over_time(mx_periods, period_start, times, period_years: float = 5.0) -> np.ndarray:
    """Mortality improvement year by year: log-linear interpolation between period rates.

    ``mx_periods`` shape ``(P, ..., age)``: rates for the periods starting at
    ``period_start`` (P,) and lasting ``period_years`` (WPP: 2020-2025, …).  Each period's
    rates are placed at its mid-point (``start + period_years/2``, e.g. 2022.5) and
    ``log mx`` is interpolated linearly to ``times`` (T,) (decimal years, normally the
    mid-points of the projection steps); times outside the mid-points take the first or
    last period's rates (no extrapolated improvement).  Returns ``(T, ..., age)``.
    """
    mx_periods = np.asarray(mx_periods, dtype=float)
    period_start = np.asarray(period_start, dtype=float)
    times = np.atleast_1d(np.asarray(times, dtype=float))
    problems = []
    if period_start.ndim != 1 or period_start.size != mx_periods.shape[0]:
        problems.append(Problem("period_start", f"{period_start.size} periods for {mx_periods.shape[0]} rate sets",
                                "give one start year per leading slice of mx_periods"))
    elif np.any(np.diff(period_start) <= 0):
        problems.append(Problem("period_start", "periods must increase", "sort the periods"))
    if not np.all(np.isfinite(mx_periods)) or np.any(mx_periods <= 0):
        problems.append(Problem("mx_periods", "rates must be positive and finite", "check the mortality table"))
    raise_if_problems(problems, "cannot interpolate mortality over time", ForecastError)
    mids = period_start + period_years / 2.0
    if mids.size == 1:
        return np.broadcast_to(mx_periods, (times.size,) + mx_periods.shape[1:]).copy()
    tc = np.clip(times, mids[0], mids[-1])
    k = np.clip(np.searchsorted(mids, tc, side="right") - 1, 0, mids.size - 2)
    w = (tc - mids[k]) / (mids[k + 1] - mids[k])
    w = w.reshape((-1,) + (1,) * (mx_periods.ndim - 1))
    log_m = np.log(mx_periods)
    return np.exp(log_m[k] * (1.0 - w) + log_m[k + 1] * w)
