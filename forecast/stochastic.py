"""Uncertainty: AR(1) scale factors on TFR and migration, seeded draws, quantiles, and a
memory-lean driver that projects many draws × many units in one vectorised pass.

Random numbers come from one ``numpy.random.Generator`` seeded by the caller: the same
seed gives the same numbers, whatever the chunk size.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from forecast.ccmpp import FEMALE, advance_one_step
from forecast.errors import ForecastError, Problem, raise_if_problems

QUANTILES = (0.05, 0.10, 0.50, 0.90, 0.95)


@dataclass(frozen=True)
class AR1:
    """Zero-mean AR(1) ``e_t = phi · e_{t−1} + sigma · z_t`` (``z`` standard normal, ``e_0 = 0``)."""

    phi: float
    sigma: float

    @property
    def stationary_sd(self) -> float:
        return self.sigma / np.sqrt(1.0 - self.phi ** 2) if abs(self.phi) < 1 else float("inf")


# Fitted by fit_tfr_ar1 on UN WPP 2024 China TFR estimates 1991-2023 (log TFR minus its
# Hodrick-Prescott trend, lambda 1600): phi 0.904, sigma 0.052 (stationary sd 0.12, i.e. a
# 90 % band of about ±20 % around the TFR path at long horizons).  tests/forecast re-fit it.
DEFAULT_TFR_AR1 = AR1(phi=0.90, sigma=0.052)
# An assumption, not a fit (no migration history by year for the district): net migration
# scaled by exp(e), e AR(1) with phi 0.5 and sigma 0.15 (stationary sd 0.17).
DEFAULT_MIGRATION_AR1 = AR1(phi=0.5, sigma=0.15)


def fit_ar1(series) -> AR1:
    """Fit a zero-mean AR(1) by maximum likelihood (statsmodels ``ARIMA(1, 0, 0)``, no trend)."""
    from statsmodels.tsa.arima.model import ARIMA

    x = np.asarray(series, dtype=float)
    if x.ndim != 1 or x.size < 10 or not np.all(np.isfinite(x)):
        raise ForecastError("cannot fit AR(1)", [Problem("series", f"{x.size} values (need >= 10 finite, 1-D)",
                                                         "pass a longer annual series")])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = ARIMA(x, order=(1, 0, 0), trend="n").fit()
    phi, variance = (float(v) for v in fit.params)
    return AR1(phi=phi, sigma=float(np.sqrt(variance)))


def fit_tfr_ar1(years, tfr, start_year: int = 1991, trend_lambda: float = 1600.0) -> AR1:
    """Fit the TFR scale AR(1) on history: log TFR minus its Hodrick-Prescott trend (statsmodels).

    ``years`` (Y,), ``tfr`` (Y,); only years ≥ ``start_year`` are used (after China's
    fertility transition).  The AR(1) then describes persistent deviations around a path.
    """
    from statsmodels.tsa.filters.hp_filter import hpfilter

    years = np.asarray(years)
    tfr = np.asarray(tfr, dtype=float)
    keep = years >= start_year
    if np.any(tfr[keep] <= 0):
        raise ForecastError("cannot fit TFR AR(1)", [Problem("tfr", "non-positive TFR", "TFR must be > 0")])
    cycle, _trend = hpfilter(np.log(tfr[keep]), lamb=trend_lambda)
    return fit_ar1(np.asarray(cycle))


def simulate_ar1(params: AR1, n_draws: int, n_steps: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_draws, n_steps)`` AR(1) paths starting from ``e_0 = 0`` (step 1 is the first random value)."""
    shocks = rng.standard_normal((n_draws, n_steps)) * params.sigma
    return lfilter([1.0], [1.0, -params.phi], shocks, axis=1)


def calculate_quantiles(values, probs=QUANTILES, axis: int = 0) -> np.ndarray:
    """Quantiles over the draw axis: returns ``(len(probs), ...)`` (numpy's linear method)."""
    return np.quantile(np.asarray(values, dtype=float), probs, axis=axis)


@dataclass(frozen=True)
class StochasticProjection:
    """What :func:`project_draws` keeps (``N`` draws, ``T`` steps, ``U`` units, ``K`` kept ages).

    * ``school_age`` (N, T+1, U, K): persons by unit and single age in ``kept_ages``, both
      sexes summed (what the enrollment stage needs);
    * ``births`` (N, T, U): births per step by unit (both sexes);
    * ``district`` (N, T+1, 2, A): all units summed, by sex and age;
    * ``unit_totals`` (N, T+1, U): persons per unit;
    * ``unmet_emigration`` (N, T): emigrants who could not leave, summed over units;
    * ``tfr_scale``, ``migration_scale`` (N, T): the multiplicative draws applied.
    Index ``[:, 0]`` of the (T+1) arrays is the base population.
    """

    school_age: np.ndarray
    births: np.ndarray
    district: np.ndarray
    unit_totals: np.ndarray
    unmet_emigration: np.ndarray
    tfr_scale: np.ndarray
    migration_scale: np.ndarray
    kept_ages: np.ndarray
    seed: int
    chunk_draws: int = 0

    def quantiles(self, field: str, probs=QUANTILES) -> np.ndarray:
        """Quantiles over draws of one field: returns ``(len(probs),) + field.shape[1:]``."""
        return calculate_quantiles(getattr(self, field), probs, axis=0)


def draw_scales(n_draws: int, n_steps: int, seed: int, tfr_ar1: AR1 | None = DEFAULT_TFR_AR1,
                migration_ar1: AR1 | None = DEFAULT_MIGRATION_AR1) -> tuple[np.ndarray, np.ndarray]:
    """Seeded multiplicative scales ``exp(e)`` for TFR and net migration, each ``(n_draws, n_steps)``.

    TFR shocks are drawn first, migration second, from ``np.random.default_rng(seed)``;
    a ``None`` process gives scale 1 (no uncertainty) and draws nothing.
    """
    rng = np.random.default_rng(seed)
    tfr = np.exp(simulate_ar1(tfr_ar1, n_draws, n_steps, rng)) if tfr_ar1 else np.ones((n_draws, n_steps))
    mig = np.exp(simulate_ar1(migration_ar1, n_draws, n_steps, rng)) if migration_ar1 else np.ones((n_draws, n_steps))
    return tfr, mig


def project_draws(population, survival, asfr, srb, net_migration=None, *, n_draws: int, seed: int,
                  tfr_ar1: AR1 | None = DEFAULT_TFR_AR1, migration_ar1: AR1 | None = DEFAULT_MIGRATION_AR1,
                  kept_ages=range(0, 18), chunk_draws: int | None = None, dtype=np.float32, step_years: float = 1.0,
                  migration_timing: str = "even") -> StochasticProjection:
    """Project ``n_draws`` stochastic draws of many units, keeping only what is needed.

    Inputs as :func:`forecast.ccmpp.project` with units as the leading axis:
    ``population`` (U, 2, A); ``survival`` (T, 2, A) or (T, U, 2, A); ``asfr`` (T, A) or
    (T, U, A) (the path: draw ``d`` uses ``asfr · tfr_scale[d, t]``); ``srb`` (T,) or
    (T, U); ``net_migration`` (T, U, 2, A) or None (draw ``d`` uses
    ``net_migration · migration_scale[d, t]``).  Draws are processed ``chunk_draws`` at a
    time (default: enough draws for about 2^19 cells, a block that stays in cache) in ``dtype`` (float32 by default: counts carry about 7 significant digits, ample
    for persons; pass ``np.float64`` for exact comparisons).  Memory is dominated by
    ``school_age``: ``N·(T+1)·U·K`` values.  Same ``seed`` → same numbers.
    """
    pop = np.asarray(population)
    survival = np.asarray(survival)
    asfr = np.asarray(asfr)
    srb = np.asarray(srb)
    kept = np.asarray(list(kept_ages))
    problems = []
    if pop.ndim != 3 or pop.shape[1] != 2:
        problems.append(Problem("population", f"shape {pop.shape}", "shape (U, 2, A)"))
        raise_if_problems(problems, "cannot project draws", ForecastError)
    U, _, A = pop.shape
    T = survival.shape[0]
    if chunk_draws is None:
        chunk_draws = int(np.clip((1 << 19) // (U * 2 * A), 1, 64))
    if n_draws < 1 or chunk_draws < 1:
        problems.append(Problem("n_draws/chunk_draws", f"{n_draws}/{chunk_draws}", "both must be >= 1"))
    if kept.size == 0 or kept.min() < 0 or kept.max() >= A:
        problems.append(Problem("kept_ages", f"{kept.tolist()[:5]}…", f"ages within 0..{A - 1}"))
    for name, arr, unit_axis_ndim in (("survival", survival, 4), ("asfr", asfr, 3), ("srb", srb, 2),
                                      ("net_migration", None if net_migration is None else np.asarray(net_migration), 4)):
        if arr is not None and arr.ndim == unit_axis_ndim and arr.shape[1] != U:
            problems.append(Problem(name, f"has {arr.shape[1]} units on axis 1, population has {U}",
                                    "one slice per unit, in the population's unit order"))
    raise_if_problems(problems, "cannot project draws", ForecastError)
    # validate shapes and values once, on a single deterministic draw of one unit-slice
    from forecast.ccmpp import project as _validate_only
    _validate_only(pop[:1], survival if survival.ndim == 3 else survival[:, :1], asfr if asfr.ndim == 2 else asfr[:, :1],
                   srb if srb.ndim <= 1 else srb[:, :1], None if net_migration is None else np.asarray(net_migration)[:, :1],
                   step_years=step_years, migration_timing=migration_timing)

    tfr_scale, mig_scale = draw_scales(n_draws, T, seed, tfr_ar1, migration_ar1)
    school = np.empty((n_draws, T + 1, U, kept.size), dtype=dtype)
    births = np.empty((n_draws, T, U), dtype=dtype)
    district = np.empty((n_draws, T + 1, 2, A), dtype=np.float64)
    totals = np.empty((n_draws, T + 1, U), dtype=np.float64)
    unmet_total = np.zeros((n_draws, T), dtype=np.float64)

    surv_t = survival.astype(dtype)
    asfr_t = asfr.astype(dtype)
    srb_t = srb.astype(dtype)
    mig_t = None if net_migration is None else np.asarray(net_migration).astype(dtype)
    base = pop.astype(dtype)
    for lo in range(0, n_draws, chunk_draws):
        hi = min(lo + chunk_draws, n_draws)
        c = hi - lo
        current = np.broadcast_to(base, (c, U, 2, A))
        _record(current, 0, lo, hi, kept, school, district, totals)
        for t in range(T):
            scale_f = tfr_scale[lo:hi, t].astype(dtype)
            step_asfr = asfr_t[t] * scale_f.reshape((c,) + (1,) * (asfr_t.ndim - 1))
            if asfr_t.ndim == 2:  # (A,) path → (c, 1, A) to broadcast over units
                step_asfr = step_asfr[:, None, :]
            res = advance_one_step(current, surv_t[t], step_asfr, srb_t[t], None if mig_t is None else mig_t[t],
                                   step_years=step_years, migration_timing=migration_timing,
                                   migration_scale=mig_scale[lo:hi, t].astype(dtype)[:, None],
                                   overwrite_population=t > 0, dense_unmet=False)
            current = res.population
            births[lo:hi, t] = res.births.sum(axis=-1)
            if res.unmet_total is not None:
                unmet_total[lo:hi, t] = res.unmet_total.sum(axis=-1, dtype=np.float64)
            _record(current, t + 1, lo, hi, kept, school, district, totals)
    return StochasticProjection(school_age=school, births=births, district=district, unit_totals=totals,
                                unmet_emigration=unmet_total, tfr_scale=tfr_scale, migration_scale=mig_scale,
                                kept_ages=kept, seed=seed, chunk_draws=chunk_draws)


def _record(current, k, lo, hi, kept, school, district, totals) -> None:
    """Store the kept summaries of one state ``current`` (c, U, 2, A) at time index ``k``."""
    contiguous = kept.size == kept[-1] - kept[0] + 1 and np.all(np.diff(kept) == 1)
    ages = current[..., kept[0]:kept[-1] + 1] if contiguous else current[..., kept]
    np.add(ages[..., FEMALE, :], ages[..., 1 - FEMALE, :], out=school[lo:hi, k])
    c, U, two, A = current.shape
    rows = current.reshape(c, U, two * A)
    # matrix-vector products (BLAS) are several times faster than strided numpy reductions here
    district[lo:hi, k] = np.matmul(np.ones(U, dtype=current.dtype), rows).reshape(c, two, A)
    totals[lo:hi, k] = np.matmul(rows, np.ones(two * A, dtype=current.dtype))


__all__ = ["AR1", "DEFAULT_MIGRATION_AR1", "DEFAULT_TFR_AR1", "QUANTILES", "StochasticProjection",
           "calculate_quantiles", "draw_scales", "fit_ar1", "fit_tfr_ar1", "project_draws", "simulate_ar1"]
