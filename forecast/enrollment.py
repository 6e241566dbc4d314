"""A generic grade-progression enrollment forecaster with rolling-origin backtests and calibrated intervals.

Usable for any school system: China's grades 1–9 (entry at age 6) as well as an English reception–year-6
primary (entry at age 4).  The model is the classic grade-progression (cohort-survival) method:

* **entry grade** in school year ``t`` = ``driver[t] × entry ratio``, where the driver is the births or the
  population at the entry age already *aligned* to the school year it feeds (births of year ``t − lag``;
  :func:`align_driver` does the lag);
* **later grade** ``g`` in year ``t`` = ``pupils[g − 1, t − 1] × GPR[g]`` (grade-progression ratio).

The ratios observed in the history are smoothed and carried forward by one of :data:`METHODS`:

* ``"mean<k>"`` (``mean1``, ``mean3``, ``mean5``, any ``k``): the mean of the last ``k`` observed ratios;
* ``"ses"``: single exponential smoothing, ``l_t = α y_t + (1 − α) l_{t−1}`` started at the first
  observation, forecast ``l_T`` flat; ``α`` fitted per series by least one-step squared error over a grid
  (vectorised), or fixed;
* ``"ets"``: Holt's additive damped-trend exponential smoothing, ETS(A,Ad,N) point forecasts, fitted per series
  with statsmodels ``ExponentialSmoothing`` (needs at least :data:`ETS_MIN_OBS` observed ratios, else missing).

**Method choice by backtest.**  For every ratio series (area × grade) and every origin, the method is the one
with the least mean absolute log error of its ratio forecasts (horizons 1..``select_horizon``) over the
earlier origins whose targets are already observed — so the choice at an origin only uses data up to it.
With ``prefer_simple`` (default in :func:`run_backtest_arrays` and :func:`forecast_grades`) near-ties go to the
simpler method (:data:`METHODS` order) by the one-standard-error rule (:func:`select_methods`).

**Rolling-origin backtest.**  :func:`run_backtest` launches a forecast from every origin year of the history
(the chosen methods, the actual future driver) and scores it against the actuals by horizon: MAPE, MedAPE,
signed bias (mean percent error, forecast − actual), and the share of actuals inside the nominal interval.

**Calibrated intervals.**  Log errors ``log(actual / forecast)`` of the backtest forecasts are pooled across
series and grades by horizon and by *cohort class* — ``"new"`` cohorts (grade index ``g < h``: not yet enrolled
at the origin, so they carry the entry-ratio error) and ``"enrolled"`` cohorts (``g ≥ h``).  The interval of a
forecast is ``forecast × exp(q)`` with ``q`` quantiles of that pool.  The errors of one origin share the shocks
of their target years (a policy change, a pandemic year), so a pool of thousands of cells holds only as many
independent shocks as origins.  Two ways to take that into account:

* ``"block"`` (default, :func:`compute_block_quantiles`): error = shock + residual; the shock of a new year is
  predicted from the origins' mean errors with a Student-t (few origins → wide), its spread weighted towards
  the latest observed shocks (``ρ^age``; ``recency="auto"`` picks ρ by the one-step predictive score of the past
  shocks, :func:`choose_recency` — shocks come in runs), the residual drawn from the pooled within-origin
  residuals;
* ``"conformal"`` (:func:`compute_conformal_quantile`): split-conformal order statistics of the pool, the
  finite-sample widening computed with the pool's *effective* size (Kish design effect from the intraclass
  correlation within origins, :func:`compute_effective_size`) rather than its cell count.

A pool with fewer than ``min_pool`` errors or ``min_blocks`` origins borrows the errors of the longest
well-filled horizon of its class scaled by ``(h / h_ref)^k`` (``k`` fitted from the well-filled horizons,
1 — persistent ratio errors — when there are too few).  With ``scale_by_grade`` each pool's errors are divided
by their grade's relative scale (shrunk towards 1, :func:`compute_grade_scale`) and the quantiles multiplied
back per grade.  Inside a backtest the calibration at an origin (pools, ρ, grade scales) only uses the
forecasts of earlier origins whose targets are observed by then: coverage is measured out of sample.
For contrast :func:`run_backtest` also builds a *plain bootstrap* interval (resampling the last ratios of each
series and averaging — the uncertainty of the smoothed ratio only), which under-covers.

Arrays: ``S`` series (areas or schools), ``Y`` history years, ``G`` grades in order (index 0 = entry grade),
``H`` horizons (1..H years after the origin), ``M`` methods, ``O`` origins, optional leading draw axes ``...``.
Years are school years named by the calendar year in which they start (1 Sep in China; 2015 = 2015/16).
Pupils are head counts (persons).
"""
from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from forecast.errors import ForecastError, Problem, format_rows, raise_if_problems
from forecast.stochastic import QUANTILES

METHODS: tuple[str, ...] = ("mean1", "mean3", "mean5", "ses", "ets")
ETS_MIN_OBS = 5
SES_ALPHA_GRID = np.linspace(0.1, 1.0, 10)
COHORT_CLASSES = ("new", "enrolled")
INTERVAL_METHOD = "block"
RECENCY: float | str = "auto"
PREFER_SIMPLE = True
DEFAULT_QUANTILES = QUANTILES
_MEAN_RE = re.compile(r"^mean(\d+)$")


# --------------------------------------------------------------------------------------------- ratios
def compute_ratios(pupils: np.ndarray, driver: np.ndarray) -> np.ndarray:
    """Observed entry and grade-progression ratios.

    ``pupils``: ``(S, Y, G)``; ``driver``: ``(S, Y)`` aligned to the school year of entry.
    Returns ``(S, Y, G)``: ``[:, t, 0] = pupils[:, t, 0] / driver[:, t]`` (entry ratio) and
    ``[:, t, g] = pupils[:, t, g] / pupils[:, t − 1, g − 1]`` for ``t ≥ 1, g ≥ 1`` (GPR); NaN where undefined
    (``t = 0`` for ``g ≥ 1``, zero denominators).
    """
    pupils = np.asarray(pupils, dtype=float)
    driver = np.asarray(driver, dtype=float)
    ratios = np.full(pupils.shape, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios[:, :, 0] = np.where(driver > 0, pupils[:, :, 0] / driver, np.nan)
        prev = pupils[:, :-1, :-1]
        ratios[:, 1:, 1:] = np.where(prev > 0, pupils[:, 1:, 1:] / prev, np.nan)
    return ratios


def _count_observed(history: np.ndarray) -> np.ndarray:
    """Count of observed (non-NaN) values per row of ``(N, L)``."""
    return np.sum(np.isfinite(history), axis=1)


def smooth_exponential(history: np.ndarray, alpha: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Single exponential smoothing of ``(N, L)`` series (NaN = not observed, skipped).

    ``alpha`` scalar or ``(N,)``.  The level starts at the first observation; at each later observation
    ``l = α y + (1 − α) l``.  Returns ``(level (N,), sse (N,))``: the final level (the flat forecast) and the
    sum of squared one-step errors ``y_t − l_{t−1}``.
    """
    history = np.asarray(history, dtype=float)
    alpha = np.broadcast_to(np.asarray(alpha, dtype=float), history.shape[:1])
    level = np.full(history.shape[0], np.nan)
    sse = np.zeros(history.shape[0])
    for t in range(history.shape[1]):
        y = history[:, t]
        seen = np.isfinite(y)
        started = np.isfinite(level)
        err = np.where(seen & started, y - level, 0.0)
        sse += err**2
        level = np.where(seen & started, level + alpha * err, np.where(seen, y, level))
    return level, sse


def fit_ses_alpha(history: np.ndarray, grid: np.ndarray = SES_ALPHA_GRID) -> np.ndarray:
    """Per series ``α`` of :func:`smooth_exponential` minimising the one-step squared error over ``grid``
    (first grid value on ties, e.g. for series with fewer than three observations).  ``(N, L) → (N,)``."""
    history = np.asarray(history, dtype=float)
    n = history.shape[0]
    stacked = np.tile(history, (len(grid), 1))
    _, sse = smooth_exponential(stacked, np.repeat(grid, n))
    return grid[np.argmin(sse.reshape(len(grid), n), axis=0)]


def _forecast_ets(series: np.ndarray, horizon: int, ets_params: Mapping[str, float] | None) -> np.ndarray:
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    y = series[np.isfinite(series)]
    if ets_params is not None:
        params = dict(ets_params)
        model = ExponentialSmoothing(
            y, trend="add", damped_trend=True, initialization_method="known",
            initial_level=params.pop("initial_level"), initial_trend=params.pop("initial_trend"))
        fit = model.fit(optimized=False, **params)
    else:
        model = ExponentialSmoothing(y, trend="add", damped_trend=True,
                                     initialization_method="legacy-heuristic")
        # TNC rather than the default L-BFGS-B: same optimum on these short series, and scipy's L-BFGS-B
        # runs ~10x slower when multi-threaded OpenBLAS competes for the two cores
        fit = model.fit(use_brute=False, method="TNC")
    return np.asarray(fit.forecast(horizon), dtype=float)


def forecast_ratio_series(history: np.ndarray, method: str, horizon: int, *,
                          ses_alpha: float | None = None,
                          ets_params: Mapping[str, float] | None = None) -> np.ndarray:
    """Carry ``(N, L)`` ratio series (NaN = not observed) forward ``horizon`` years by ``method``.

    Returns ``(N, horizon)``; NaN for a series with no observation (and, for ``"ets"``, fewer than
    :data:`ETS_MIN_OBS`).  ``ses_alpha`` fixes ``α`` (default: fitted per series);
    ``ets_params`` fixes the ETS parameters (``smoothing_level``, ``smoothing_trend``, ``damping_trend``,
    ``initial_level``, ``initial_trend``) instead of fitting them.
    """
    history = np.atleast_2d(np.asarray(history, dtype=float))
    n = history.shape[0]
    out = np.full((n, horizon), np.nan)
    match = _MEAN_RE.match(method)
    if match:
        k = int(match.group(1))
        if k < 1:
            raise ForecastError("bad smoothing method", [Problem("method", f"{method!r}: k must be ≥ 1", "use mean1, mean3, …")])
        # mean of the last k observed values of each row
        obs = np.isfinite(history)
        rank_from_end = np.cumsum(obs[:, ::-1], axis=1)[:, ::-1]
        take = obs & (rank_from_end <= k)
        cnt = take.sum(axis=1)
        with np.errstate(invalid="ignore"):
            level = np.where(cnt > 0, np.where(take, history, 0.0).sum(axis=1) / np.maximum(cnt, 1), np.nan)
        out[:] = level[:, None]
    elif method == "ses":
        alpha = fit_ses_alpha(history) if ses_alpha is None else ses_alpha
        level, _ = smooth_exponential(history, alpha)
        out[:] = level[:, None]
    elif method == "ets":
        enough = _count_observed(history) >= ETS_MIN_OBS
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for i in np.flatnonzero(enough):
                out[i] = _forecast_ets(history[i], horizon, ets_params)
    else:
        raise ForecastError("unknown smoothing method", [Problem(
            "method", f"{method!r} is not a ratio smoothing method", f"use one of mean<k>, ses, ets (default {METHODS})")])
    return out


# ------------------------------------------------------------------------------------------ projection
def project_pupils(last_pupils: np.ndarray, driver_future: np.ndarray, ratios: np.ndarray) -> np.ndarray:
    """Grade-progression projection.

    ``last_pupils``: ``(..., S, G)`` pupils in the origin year; ``driver_future``: ``(..., S, H)`` the entry
    driver aligned to school years origin+1..origin+H; ``ratios``: ``(..., S, H, G)`` with ``[..., h, 0]`` the
    entry ratio and ``[..., h, g ≥ 1]`` the GPR applying in year origin+h+1 (index ``h`` = horizon ``h + 1``).
    Leading axes broadcast (e.g. population draws).  Returns pupils ``(..., S, H, G)``.
    """
    last_pupils = np.asarray(last_pupils, dtype=float)
    driver_future = np.asarray(driver_future, dtype=float)
    ratios = np.asarray(ratios, dtype=float)
    horizon = driver_future.shape[-1]
    lead = np.broadcast_shapes(last_pupils.shape[:-2], driver_future.shape[:-2], ratios.shape[:-3])
    n_series, n_grades = last_pupils.shape[-2:]
    out = np.empty(lead + (n_series, horizon, n_grades))
    prev = np.broadcast_to(last_pupils, lead + (n_series, n_grades))
    for h in range(horizon):
        cur = np.empty(lead + (n_series, n_grades))
        cur[..., 0] = driver_future[..., h] * ratios[..., h, 0]
        cur[..., 1:] = prev[..., :-1] * ratios[..., h, 1:]
        out[..., h, :] = cur
        prev = cur
    return out


def classify_cohorts(horizon: int, n_grades: int) -> np.ndarray:
    """Cohort class of every (horizon, grade) cell, ``(H, G)`` int: 0 = ``"new"`` (grade index ``g < h``: the
    cohort enters after the origin and carries the entry-ratio error), 1 = ``"enrolled"`` (``g ≥ h``)."""
    h = np.arange(1, horizon + 1)[:, None]
    g = np.arange(n_grades)[None, :]
    return (g >= h).astype(int)


# ------------------------------------------------------------------------------------ interval helpers
def compute_effective_size(errors: np.ndarray, blocks: np.ndarray) -> float:
    """Effective number of independent errors when errors come in blocks sharing a common shock.

    Kish design effect ``n / (1 + (m̄ − 1) ρ)`` with ``m̄`` the mean block size and ``ρ`` the one-way ANOVA
    intraclass correlation of the errors within blocks (clipped to [0, 1]).  ``n`` when there is a single
    block or no between-block variance.
    """
    errors = np.asarray(errors, dtype=float)
    blocks = np.asarray(blocks)
    n = errors.size
    labels, inv, counts = np.unique(blocks, return_inverse=True, return_counts=True)
    k = labels.size
    if n == 0 or k < 2 or k == n:
        return float(n)
    means = np.bincount(inv, weights=errors) / counts
    grand = errors.mean()
    msb = np.sum(counts * (means - grand) ** 2) / (k - 1)
    msw = np.sum((errors - means[inv]) ** 2) / (n - k)
    m0 = (n - np.sum(counts**2) / n) / (k - 1)
    denom = msb + (m0 - 1) * msw
    rho = 0.0 if denom <= 0 else float(np.clip((msb - msw) / denom, 0.0, 1.0))
    return float(n / (1 + (n / k - 1) * rho))


def compute_conformal_quantile(errors: np.ndarray, p: float, n_eff: float | None = None) -> float:
    """Split-conformal quantile of a pool of errors at level ``p``.

    With ``n`` errors, upper levels (``p > 0.5``) take the ``⌈(n + 1)p⌉``-th smallest, lower levels the
    ``⌊(n + 1)p⌋``-th (clipped to the pool), the median the plain median: a finite pool is widened so that a
    new exchangeable error falls inside ``[q(p_lo), q(p_hi)]`` with probability ≥ ``p_hi − p_lo``.
    With ``n_eff < n`` (errors correlated in blocks, see :func:`compute_effective_size`) the level is widened
    with ``n_eff`` instead — ``p' = min(1, (n_eff + 1) p / n_eff)`` for upper levels and symmetrically for lower
    ones — and read off the pool by linear interpolation.  NaN for an empty pool.
    """
    e = np.sort(np.asarray(errors, dtype=float)[np.isfinite(errors)])
    n = e.size
    if n == 0:
        return float("nan")
    if p == 0.5:
        return float(np.median(e))
    if n_eff is not None and n_eff < n:
        m = max(float(n_eff), 1.0)
        adj = min(1.0, (m + 1) * p / m) if p > 0.5 else max(0.0, 1.0 - (m + 1) * (1 - p) / m)
        return float(np.quantile(e, adj))
    k = math.ceil((n + 1) * p) if p > 0.5 else math.floor((n + 1) * p)
    return float(e[min(max(k, 1), n) - 1])


def compute_block_quantiles(errors: np.ndarray, blocks: np.ndarray, levels: Sequence[float],
                            n_grid: int = 99, n_resid: int = 200, *, ages: np.ndarray | None = None,
                            recency: float | str = 1.0) -> np.ndarray:
    """Predictive quantiles of a new error = common shock + idiosyncratic residual.

    The errors of one block (one origin: every series and grade forecast from it shares the shocks of its
    target years) are split into the block mean ``μ_b`` and residuals ``e − μ_b``.  The shock of a new block
    is predicted from the ``k`` block means as ``m + s·sqrt(1 + 1/k')·t_{k'−1}`` (Student t: few blocks, wide
    intervals) with ``m`` the plain mean of the block means and ``s`` their spread about ``m``; the residual is
    drawn from the pooled residuals; the quantiles of the sum are read off the convolution of ``n_grid`` t
    quantiles with ``n_resid`` residual quantiles.

    ``ages`` (flat, one per error; equal within a block) is how many years before the launch the block's
    target year was observed (0 = the latest).  With ``recency`` ``ρ < 1`` the spread is an exponentially
    weighted mean square, block weight ``ρ^age`` (shocks come in runs — a pandemic, a wave of arrivals — so the
    latest shocks say most about the next one), and ``k'`` is the Kish effective number of blocks
    ``(Σw)² / Σw²``; ``ρ = 1`` is the plain estimate.  ``recency="auto"`` picks ``ρ`` from
    :data:`RECENCY_GRID` by the one-step-ahead predictive log score of the block means themselves (each block
    mean predicted from the older ones only, :func:`choose_recency`).  With fewer than two blocks:
    :func:`compute_conformal_quantile` of the pool.  Returns ``(len(levels),)``.
    """
    from scipy import stats

    errors = np.asarray(errors, dtype=float)
    levels = np.asarray(levels, dtype=float)
    if errors.size == 0:
        return np.full(levels.size, np.nan)
    labels, inv, counts = np.unique(np.asarray(blocks), return_inverse=True, return_counts=True)
    k = labels.size
    if k < 2:
        return np.array([compute_conformal_quantile(errors, p) for p in levels])
    means = np.bincount(inv, weights=errors) / counts
    block_age = (np.bincount(inv, weights=np.asarray(ages, dtype=float)) / counts if ages is not None
                 else np.zeros(k))
    rho = choose_recency(means, block_age) if isinstance(recency, str) else float(recency)
    center, spread, k_eff = _weigh_shocks(means, block_age, rho)
    resid = errors - means[inv]
    grid = (np.arange(n_grid) + 0.5) / n_grid
    shock = center + spread * math.sqrt(1 + 1 / k_eff) * stats.t.ppf(grid, df=max(k_eff - 1, 1.0))
    resid_q = np.quantile(resid, (np.arange(n_resid) + 0.5) / n_resid)
    return np.quantile((shock[:, None] + resid_q[None, :]).ravel(), levels)


RECENCY_GRID: tuple[float, ...] = (1.0, 0.7, 0.5)


def _weigh_shocks(means: np.ndarray, ages: np.ndarray, rho: float) -> tuple[float, float, float]:
    """Centre (plain mean), recency-weighted spread (weights ``ρ^age``, unbiased for the effective size) and
    Kish effective number of the block means ``means (k,)``."""
    w = rho ** np.asarray(ages, dtype=float)
    k_eff = float(w.sum() ** 2 / np.sum(w**2))
    center = float(means.mean())
    ms = float(np.sum(w * (means - center) ** 2) / w.sum())
    spread = math.sqrt(ms * k_eff / max(k_eff - 1, 1e-9)) if k_eff > 1 else float(np.std(means, ddof=1))
    return center, spread, k_eff


def choose_recency(means: np.ndarray, ages: np.ndarray, grid: Sequence[float] = RECENCY_GRID,
                   min_history: int = 3) -> float:
    """Recency weight ``ρ`` from ``grid`` with the best one-step-ahead predictive log score of a sequence of
    block means ``means (k,)`` observed ``ages (k,)`` years before the launch: every block from the
    ``min_history + 1``-th oldest on is predicted (Student t of :func:`compute_block_quantiles`) from the older
    blocks only, ages counted from that block.  The first grid value (no down-weighting) when fewer than two
    blocks can be scored or on ties."""
    from scipy import stats

    order = np.argsort(-np.asarray(ages, dtype=float), kind="stable")
    m, a = np.asarray(means, dtype=float)[order], np.asarray(ages, dtype=float)[order]
    if m.size - min_history < 2:
        return float(grid[0])
    best, best_score = float(grid[0]), -np.inf
    for rho in grid:
        score = 0.0
        for t in range(min_history, m.size):
            center, spread, k_eff = _weigh_shocks(m[:t], a[:t] - a[t], rho)
            scale = max(spread * math.sqrt(1 + 1 / k_eff), 1e-12)
            score += float(stats.t.logpdf(m[t], df=max(k_eff - 1, 1.0), loc=center, scale=scale))
        if score > best_score + 1e-12:
            best, best_score = float(rho), score
    return best


@dataclass(frozen=True)
class ErrorModel:
    """Calibrated log-error quantiles by horizon and cohort class.

    ``levels``: ``(Q,)`` probability levels; ``quantiles``: ``(Q, H, 2)`` quantiles of the log error
    ``log(actual / forecast)`` for horizon ``h + 1`` and class ``c`` (0 = new, 1 = enrolled; NaN where no
    errors could be borrowed); ``pool_size``: ``(H, 2)`` errors behind each cell; ``effective_size``:
    ``(H, 2)`` their effective number (:func:`compute_effective_size`); ``borrowed_from``: ``(H, 2)`` the
    horizon (1-based) whose errors were used (scaled by ``(h / h_ref)^growth``), 0 where none;
    ``growth``: ``(2,)`` the exponent used per class; ``grade_scale``: ``(H, G)`` or None — a per-grade
    multiplier of the quantiles of the cell's (horizon, class) pool (the grade's error scale relative to its
    pool, shrunk towards 1 where the grade has few errors; :func:`calibrate_errors` with ``grades``).
    """

    levels: np.ndarray
    quantiles: np.ndarray
    pool_size: np.ndarray
    effective_size: np.ndarray
    borrowed_from: np.ndarray
    growth: np.ndarray = field(default_factory=lambda: np.ones(2))
    grade_scale: np.ndarray | None = None

    def log_quantile(self, level: float, horizon: int, n_grades: int) -> np.ndarray:
        """Log-error quantile ``(H, G)`` at a calibrated ``level``."""
        i = int(np.argmin(np.abs(self.levels - level)))
        if abs(self.levels[i] - level) > 1e-9:
            raise ForecastError("quantile level not calibrated", [Problem(
                "level", f"{level} is not among the calibrated levels {list(self.levels)}", "calibrate with this level")])
        if horizon > self.quantiles.shape[1]:
            raise ForecastError("horizon not calibrated", [Problem(
                "horizon", f"{horizon} > calibrated {self.quantiles.shape[1]}", "calibrate for the full horizon")])
        cls = classify_cohorts(horizon, n_grades)
        return self.quantiles[i, :horizon][np.arange(horizon)[:, None], cls] * self.scale_grades(horizon, n_grades)

    def scale_grades(self, horizon: int, n_grades: int) -> np.ndarray:
        """Per-grade multiplier ``(H, G)`` of the pooled quantiles (ones without a grade scale)."""
        if self.grade_scale is None:
            return np.ones((horizon, n_grades))
        if self.grade_scale.shape[1] != n_grades:
            raise ForecastError("grades not calibrated", [Problem(
                "point", f"{n_grades} grades, the error model was calibrated for {self.grade_scale.shape[1]}",
                "apply the model to forecasts of the grades it was calibrated on")])
        return self.grade_scale[:horizon]

    def apply(self, point: np.ndarray, level: float) -> np.ndarray:
        """Quantile ``level`` of forecasts ``point`` ``(..., S, H, G)``: ``point × exp(q(level, h, class))``."""
        horizon, n_grades = point.shape[-2:]
        return point * np.exp(self.log_quantile(level, horizon, n_grades))


def _estimate_growth(pools: dict, full: list[int], cls: int, default: float = 1.0) -> float:
    """Exponent ``k`` of the error growth ``spread(h) ∝ h^k`` of one class, fitted (log–log least squares
    of the mean absolute error) over its well-filled horizons ``full``; ``default`` with fewer than two;
    clipped to [0.5, 1.5]."""
    if len(full) < 2:
        return default
    x = np.log(np.array(full, dtype=float) + 1)
    y = np.log([np.mean(np.abs(pools[(h, cls)])) for h in full])
    if not np.isfinite(y).all():
        return default
    slope = np.polyfit(x, y, 1)[0]
    return float(np.clip(slope, 0.5, 1.5))


def compute_grade_scale(errors: np.ndarray, grades: np.ndarray, n_grades: int, shrinkage: float) -> np.ndarray:
    """Error scale of each grade relative to its pool, shrunk towards 1.

    ``errors``, ``grades`` (indices ``0..n_grades − 1``): flat arrays of one pool.  Raw ratio
    ``r_g = mean|e_g| / mean|e|``; shrunk ``(n_g r_g + shrinkage) / (n_g + shrinkage)`` with ``n_g`` the grade's
    errors (a grade with few errors keeps the pool's scale).  Returns ``(n_grades,)`` (1 for absent grades).
    """
    errors = np.asarray(errors, dtype=float)
    grades = np.asarray(grades, dtype=int)
    scale = np.ones(n_grades)
    pooled = np.mean(np.abs(errors)) if errors.size else 0.0
    if pooled <= 0:
        return scale
    n_g = np.bincount(grades, minlength=n_grades).astype(float)
    sum_abs = np.bincount(grades, weights=np.abs(errors), minlength=n_grades)
    with np.errstate(invalid="ignore", divide="ignore"):
        raw = np.where(n_g > 0, sum_abs / np.maximum(n_g, 1) / pooled, 1.0)
    weight = n_g + shrinkage
    return np.where(weight > 0, (n_g * raw + shrinkage) / np.where(weight > 0, weight, 1.0), 1.0)


def calibrate_errors(log_errors: np.ndarray, cohort_class: np.ndarray, horizon_index: np.ndarray, horizon: int,
                     levels: Sequence[float], *, min_pool: int = 20, min_blocks: int = 3,
                     blocks: np.ndarray | None = None, growth_exponent: float | None = None,
                     method: str = INTERVAL_METHOD, ages: np.ndarray | None = None, recency: float | str = 1.0,
                     grades: np.ndarray | None = None, n_grades: int | None = None,
                     grade_shrinkage: float | None = None) -> ErrorModel:
    """Build an :class:`ErrorModel` from pooled backtest log errors ``log(actual / forecast)``.

    ``log_errors``, ``cohort_class`` (0/1), ``horizon_index`` (0-based) and ``blocks`` (e.g. the origin of each
    error: the errors of one origin share that year's shock) are flat arrays of equal length.  A
    (horizon, class) pool with fewer than ``min_pool`` errors or ``min_blocks`` blocks borrows the errors of the
    longest horizon below it of the same class that has enough (or else the largest pool of that class), scaled
    by ``(h / h_ref)^k``: ``k = growth_exponent``, or estimated from the well-filled horizons
    (:func:`_estimate_growth`: ½ for independent yearly ratio errors, 1 for persistent ones).
    Quantiles at ``levels``: ``method="block"`` (:func:`compute_block_quantiles`, with ``ages`` — flat, years
    between each error's target year and the launch — and ``recency``) or ``"conformal"`` (split-conformal,
    widened with the effective pool size: :func:`compute_conformal_quantile`, :func:`compute_effective_size`).

    ``grades`` (flat grade indices ``0..n_grades − 1``): the errors of each pool are divided by their grade's
    relative scale (:func:`compute_grade_scale`, shrinkage ``grade_shrinkage`` errors, default ``min_pool``)
    before the quantiles are taken, and the model multiplies them back per grade (``ErrorModel.grade_scale``).
    """
    levels = np.asarray(levels, dtype=float)
    log_errors = np.asarray(log_errors, dtype=float)
    ok = np.isfinite(log_errors)
    log_errors, cohort_class, horizon_index = log_errors[ok], np.asarray(cohort_class)[ok], np.asarray(horizon_index)[ok]
    blocks = np.arange(log_errors.size) if blocks is None else np.asarray(blocks)[ok]
    ages = None if ages is None else np.asarray(ages, dtype=float)[ok]
    by_grade = grades is not None
    if by_grade:
        grades = np.asarray(grades, dtype=int)[ok]
        n_grades = int(grades.max()) + 1 if n_grades is None and grades.size else int(n_grades or 1)
        shrink = float(min_pool if grade_shrinkage is None else grade_shrinkage)
        grade_scale = np.ones((horizon, n_grades))
        cell_class = classify_cohorts(horizon, n_grades)
    quant = np.full((levels.size, horizon, 2), np.nan)
    size = np.zeros((horizon, 2), dtype=int)
    eff = np.zeros((horizon, 2))
    src = np.zeros((horizon, 2), dtype=int)
    sel = {(h, c): (horizon_index == h) & (cohort_class == c) for h in range(horizon) for c in (0, 1)}
    pools = {k: log_errors[v] for k, v in sel.items()}
    enough = {k: v.sum() >= min_pool and np.unique(blocks[v]).size >= min_blocks for k, v in sel.items()}
    growth = np.full(2, np.nan)
    for c in (0, 1):
        full = [hh for hh in range(horizon) if enough[(hh, c)]]
        sizes = [pools[(hh, c)].size for hh in range(horizon)]
        growth[c] = _estimate_growth(pools, full, c) if growth_exponent is None else growth_exponent
        for h in range(horizon):
            ref = h
            if not enough[(h, c)]:
                below = [hh for hh in full if hh < h]
                if below:
                    ref = max(below)
                elif full:
                    ref = min(full)
                else:
                    ref = int(np.argmax(sizes)) if max(sizes) > 0 else -1
            if ref < 0 or pools[(ref, c)].size == 0:
                continue
            pool = pools[(ref, c)] * ((h + 1) / (ref + 1)) ** growth[c]
            pool_blocks = blocks[sel[(ref, c)]]
            if by_grade:
                scale = compute_grade_scale(pool, grades[sel[(ref, c)]], n_grades, shrink)
                pool = pool / scale[grades[sel[(ref, c)]]]
                in_class = cell_class[h] == c
                grade_scale[h, in_class] = scale[in_class]
            ne = compute_effective_size(pool, pool_blocks)
            size[h, c], eff[h, c], src[h, c] = pool.size, ne, ref + 1
            if method == "block":
                pool_ages = None if ages is None else ages[sel[(ref, c)]]
                quant[:, h, c] = compute_block_quantiles(pool, pool_blocks, levels, ages=pool_ages, recency=recency)
            elif method == "conformal":
                quant[:, h, c] = [compute_conformal_quantile(pool, p, n_eff=ne) for p in levels]
            else:
                raise ForecastError("unknown interval method", [Problem(
                    "interval_method", f"{method!r}", "use 'block' or 'conformal'")])
    return ErrorModel(levels, quant, size, eff, src, growth, grade_scale if by_grade else None)


# ------------------------------------------------------------------------------------ method selection
def _default_index(methods: Sequence[str], default_method: str) -> int:
    """Index of ``default_method`` in ``methods`` (the first method when it is not among them)."""
    methods = list(methods)
    return methods.index(default_method) if default_method in methods else 0


def select_methods(abs_log_errors: np.ndarray, methods: Sequence[str], default_method: str,
                   min_scored: int = 2, prefer_simple: bool = False) -> np.ndarray:
    """Choose a method per series from ratio backtest errors.

    ``abs_log_errors``: ``(M, N, K)`` absolute log errors of method ``m`` for series ``n`` over ``K`` scored
    (origin, horizon) pairs (NaN = not available).  Methods with fewer than ``min_scored`` errors are not
    eligible; eligible methods are compared on the pairs where all of them are available, the least mean error
    wins (earlier method on ties); with nothing to compare, ``default_method`` (or the first method when it is
    not in ``methods``).  With ``prefer_simple`` (methods listed simplest first) the *one-standard-error rule*
    breaks near-ties: the first eligible method whose mean error exceeds the best one's by at most one standard
    error of their paired differences wins (a noisy backtest does not pick a more complex method for a
    difference it cannot resolve).  Returns ``(N,)`` method indices.
    """
    m_count, n_series, _ = abs_log_errors.shape
    avail = np.isfinite(abs_log_errors)
    counts = avail.sum(axis=2)  # (M, N)
    eligible = counts >= min_scored
    common = np.all(avail | ~eligible[:, :, None], axis=0) & eligible.any(axis=0)[:, None]  # (N, K)
    scored = np.where(common[None] & eligible[:, :, None], abs_log_errors, 0.0).sum(axis=2)
    n_common = common.sum(axis=1)
    score = np.where(eligible & (n_common >= min_scored)[None], scored / np.maximum(n_common, 1)[None], np.inf)
    choice = np.argmin(score, axis=0)
    if prefer_simple:
        best = np.take_along_axis(abs_log_errors, choice[None, :, None], axis=0)  # (1, N, K)
        diff = np.where(common[None], abs_log_errors - best, np.nan)  # (M, N, K)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            se = np.nanstd(diff, axis=2, ddof=1) / np.sqrt(np.maximum(n_common, 1))[None]
        with np.errstate(invalid="ignore"):
            close = np.isfinite(score) & (score - score.min(axis=0)[None] <= np.nan_to_num(se, nan=0.0) + 1e-15)
        choice = np.argmax(close, axis=0)
    none = ~np.isfinite(score.min(axis=0))
    choice[none] = _default_index(methods, default_method)
    return choice


# ------------------------------------------------------------------------------------------- backtest
@dataclass
class Backtest:
    """Everything a rolling-origin backtest produced.

    ``origins``: ``(O,)`` origin years; ``horizon`` H; arrays over origin ``o``, series ``s``, horizon ``h``
    (index ``h`` = ``h + 1`` years ahead), grade ``g``: ``forecast``, ``actual``, ``lower``/``upper`` (the
    calibrated nominal interval), ``naive_lower``/``naive_upper`` (plain bootstrap) — all ``(O, S, H, G)``,
    NaN where the target year is beyond the history (or no calibration errors were available yet);
    ``chosen``: ``(O, S, G)`` index into ``methods`` of the ratio method used at each origin.
    """

    origins: np.ndarray
    years: np.ndarray
    grades: tuple
    keys: np.ndarray
    methods: tuple[str, ...]
    level: float
    forecast: np.ndarray
    actual: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    naive_lower: np.ndarray
    naive_upper: np.ndarray
    chosen: np.ndarray
    log_errors: dict = field(repr=False, default_factory=dict)

    def score(self, grades: Sequence | None = None, by: str = "horizon", launch_years: Sequence[int] | None = None) -> pd.DataFrame:
        """Scores by horizon (``by="horizon"``) or by launch year and horizon (``by="launch"``).

        Columns: ``n`` (forecast cells with an actual), ``mape_pct``, ``medape_pct``, ``bias_pct`` (mean of
        100·(forecast − actual)/actual), ``n_interval``, ``coverage`` (share of actuals inside the calibrated
        nominal interval), ``coverage_naive`` (inside the plain bootstrap interval).  ``grades`` restricts
        to some grades (labels), ``launch_years`` to some origins.
        """
        return score_backtest(self, grades=grades, by=by, launch_years=launch_years)


def score_backtest(bt: Backtest, grades: Sequence | None = None, by: str = "horizon",
                   launch_years: Sequence[int] | None = None) -> pd.DataFrame:
    """See :meth:`Backtest.score`."""
    g_idx = np.arange(len(bt.grades)) if grades is None else np.array([list(bt.grades).index(g) for g in grades])
    o_idx = np.arange(bt.origins.size) if launch_years is None else np.flatnonzero(np.isin(bt.origins, launch_years))
    sl = np.ix_(o_idx, np.arange(bt.keys.size), np.arange(bt.forecast.shape[2]), g_idx)
    f, a = bt.forecast[sl], bt.actual[sl]
    lo, up, nlo, nup = bt.lower[sl], bt.upper[sl], bt.naive_lower[sl], bt.naive_upper[sl]
    rows = []
    horizon = f.shape[2]
    groups = [(None, h) for h in range(horizon)] if by == "horizon" else [(o, h) for o in range(len(o_idx)) for h in range(horizon)]
    for o, h in groups:
        osl = slice(None) if o is None else slice(o, o + 1)
        ff, aa = f[osl, :, h].ravel(), a[osl, :, h].ravel()
        ok = np.isfinite(ff) & np.isfinite(aa) & (aa > 0)
        if not ok.any():
            continue
        pe = 100.0 * (ff[ok] - aa[ok]) / aa[ok]
        ll, uu = lo[osl, :, h].ravel()[ok], up[osl, :, h].ravel()[ok]
        iv = np.isfinite(ll) & np.isfinite(uu)
        nll, nuu = nlo[osl, :, h].ravel()[ok], nup[osl, :, h].ravel()[ok]
        niv = np.isfinite(nll) & np.isfinite(nuu)
        act = aa[ok]
        row = {"horizon": h + 1, "n": int(ok.sum()), "mape_pct": float(np.mean(np.abs(pe))),
               "medape_pct": float(np.median(np.abs(pe))), "bias_pct": float(np.mean(pe)),
               "n_interval": int(iv.sum()),
               "coverage": float(np.mean((act[iv] >= ll[iv]) & (act[iv] <= uu[iv]))) if iv.any() else float("nan"),
               "coverage_naive": float(np.mean((act[niv] >= nll[niv]) & (act[niv] <= nuu[niv]))) if niv.any() else float("nan")}
        if o is not None:
            row = {"launch_year": int(bt.origins[o_idx[o]]), **row}
        rows.append(row)
    return pd.DataFrame(rows)


def _forecast_cube(ratios: np.ndarray, methods: Sequence[str], origins: np.ndarray, horizon: int,
                   ses_alpha: float | None) -> np.ndarray:
    """Ratio forecasts ``(M, O, S, H, G)`` from every origin index in ``origins`` by every method."""
    n_series, _, n_grades = ratios.shape
    cube = np.full((len(methods), origins.size, n_series, horizon, n_grades), np.nan)
    for j, o in enumerate(origins):
        hist = ratios[:, : o + 1, :].transpose(0, 2, 1).reshape(n_series * n_grades, o + 1)
        for m, method in enumerate(methods):
            fc = forecast_ratio_series(hist, method, horizon, ses_alpha=ses_alpha)
            cube[m, j] = fc.reshape(n_series, n_grades, horizon).transpose(0, 2, 1)
    return cube


def _future_block(values: np.ndarray, o: int, horizon: int) -> np.ndarray:
    """``values[:, o+1 : o+1+horizon, ...]`` padded with NaN to ``horizon`` along axis 1."""
    block = values[:, o + 1: o + 1 + horizon]
    pad = horizon - block.shape[1]
    if pad > 0:
        block = np.concatenate([block, np.full((block.shape[0], pad) + block.shape[2:], np.nan)], axis=1)
    return block


def forecast_ratios_by_backtest(history: np.ndarray, horizon: int, *, methods: Sequence[str] = METHODS,
                                default_method: str = "mean3", select_horizon: int = 3,
                                ses_alpha: float | None = None,
                                prefer_simple: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Carry ratio series forward with the method each one's own rolling-origin backtest prefers.

    ``history``: ``(N, L)`` ratio series (NaN = not observed).  Every column from the second to the
    last-but-one is an origin; the method with the least mean absolute log error at horizons
    ≤ ``select_horizon`` wins (:func:`select_methods`).  Returns ``forecast (N, horizon)``,
    ``choice (N,)`` (index into ``methods``) and ``backtest (O, N, L − 2)``: the chosen method's forecasts from
    origins ``1 .. L − 2`` (for calibrating errors; empty when ``L < 3``).
    """
    history = np.atleast_2d(np.asarray(history, dtype=float))
    n, length = history.shape
    methods = tuple(methods)
    origins = np.arange(1, length - 1)
    backtest = np.empty((0, n, max(length - 2, 0)))
    if origins.size:
        cube = _forecast_cube(history[:, :, None], methods, origins, length - 2, ses_alpha)[..., 0]  # (M, O, N, Hb)
        actual = np.stack([_future_block(history, o, length - 2) for o in origins])  # (O, N, Hb)
        err = np.abs(np.log(cube / actual[None]))[..., :select_horizon]
        choice = select_methods(err.transpose(0, 2, 1, 3).reshape(len(methods), n, -1), methods, default_method,
                                prefer_simple=prefer_simple)
        backtest = np.take_along_axis(cube, choice[None, None, :, None], axis=0)[0]
    else:
        choice = np.full(n, _default_index(methods, default_method))
    out = np.full((n, horizon), np.nan)
    for m, method in enumerate(methods):
        sel = choice == m
        if sel.any():
            out[sel] = forecast_ratio_series(history[sel], method, horizon, ses_alpha=ses_alpha)
    return out, choice, backtest


def run_backtest_arrays(pupils: np.ndarray, driver: np.ndarray, *, years: Sequence[int], grades: Sequence,
                        keys: Sequence | None = None, methods: Sequence[str] = METHODS,
                        default_method: str = "mean3", select_horizon: int = 3, level: float = 0.8,
                        min_pool: int = 20, n_bootstrap: int = 200, bootstrap_window: int = 3,
                        ses_alpha: float | None = None, first_origin: int = 1, seed: int = 0,
                        interval_method: str = INTERVAL_METHOD, select_by: str = "series",
                        recency: float | str = RECENCY, scale_by_grade: bool = True,
                        prefer_simple: bool = PREFER_SIMPLE) -> Backtest:
    """Rolling-origin backtest on arrays.

    ``pupils``: ``(S, Y, G)`` for consecutive ``years``; ``driver``: ``(S, Y + E)`` aligned to school years
    ``years[0] .. years[-1] + E`` (``E ≥ 0`` future years of known driver, e.g. births already observed).
    Every year index from ``first_origin`` to ``Y − 2`` is an origin; forecasts run to the end of the history
    (horizon ``H = Y − 1 − first_origin``).  At each origin the ratio method of each series is chosen from the
    earlier origins (:func:`select_methods`, horizons ≤ ``select_horizon``), the interval calibrated from the
    earlier origins' log errors (:func:`calibrate_errors`, nominal ``level``), and a plain bootstrap interval
    built by resampling the last ``bootstrap_window`` ratios of each series ``n_bootstrap`` times (seeded).
    """
    pupils = np.asarray(pupils, dtype=float)
    driver = np.asarray(driver, dtype=float)
    n_series, n_years, n_grades = pupils.shape
    years = np.asarray(years)
    methods = tuple(methods)
    horizon = n_years - 1 - first_origin
    if horizon < 1:
        raise ForecastError("history too short for a backtest", [Problem(
            "pupils", f"{n_years} years with first origin index {first_origin}", "supply at least three years of history")])
    ratios_full = compute_ratios(pupils, driver[:, :n_years])
    origins = np.arange(first_origin, n_years - 1)
    cube = _forecast_cube(ratios_full, methods, origins, horizon, ses_alpha)  # (M, O, S, H, G)
    # ratio actuals per origin/horizon
    ratio_act = np.stack([_future_block(ratios_full, o, horizon) for o in origins])  # (O, S, H, G)
    abs_err = np.abs(np.log(cube / ratio_act[None]))  # (M, O, S, H, G)
    target = origins[:, None] + 1 + np.arange(horizon)[None, :]  # (O, H) target year index

    n_o = origins.size
    chosen = np.zeros((n_o, n_series, n_grades), dtype=int)
    fc = np.full((n_o, n_series, horizon, n_grades), np.nan)
    act = np.full_like(fc, np.nan)
    lower, upper = np.full_like(fc, np.nan), np.full_like(fc, np.nan)
    nlo, nup = np.full_like(fc, np.nan), np.full_like(fc, np.nan)
    cls = classify_cohorts(horizon, n_grades)
    lo_p, hi_p = (1 - level) / 2, 1 - (1 - level) / 2
    rng = np.random.default_rng(seed)
    log_err_store = np.full_like(fc, np.nan)
    for j, o in enumerate(origins):
        # method choice from earlier origins whose targets are observed by o
        usable = (np.arange(n_o)[:, None] < j) & (target <= o) & (np.arange(horizon)[None, :] < select_horizon)
        errs = abs_err.transpose(0, 1, 3, 2, 4)[:, usable, :, :]  # (M, K, S, G)
        if select_by == "grade":  # one choice per grade, errors pooled over series
            errs = errs.transpose(0, 3, 2, 1).reshape(len(methods), n_grades, -1)
            chosen[j] = np.broadcast_to(select_methods(errs, methods, default_method, prefer_simple=prefer_simple),
                                        (n_series, n_grades))
        else:
            errs = errs.transpose(0, 2, 3, 1).reshape(len(methods), n_series * n_grades, -1)
            chosen[j] = select_methods(errs, methods, default_method,
                                       prefer_simple=prefer_simple).reshape(n_series, n_grades)
        ratio_fc = np.take_along_axis(cube[:, j], chosen[j][None, :, None, :], axis=0)[0]  # (S, H, G)
        drv = _future_block(driver, o, horizon)
        fc[j] = project_pupils(pupils[:, o], drv, ratio_fc)
        act[j] = _future_block(pupils, o, horizon)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_err_store[j] = np.log(act[j] / fc[j])
        # calibration from earlier origins
        use = (np.arange(n_o)[:, None] < j) & (target <= o)  # (O, H)
        if use[:j].any():
            e = log_err_store[:j]  # (j, S, H, G)
            mask = np.broadcast_to(use[:j, None, :, None], e.shape)
            hh = np.broadcast_to(np.arange(horizon)[None, None, :, None], e.shape)
            cc = np.broadcast_to(cls[None, None], e.shape)
            bb = np.broadcast_to(np.arange(j)[:, None, None, None], e.shape)
            aa = np.broadcast_to((o - target[:j])[:, None, :, None], e.shape)  # years since the target was seen
            gg = np.broadcast_to(np.arange(n_grades)[None, None, None, :], e.shape)
            model = calibrate_errors(e[mask], cc[mask], hh[mask], horizon, (lo_p, hi_p), min_pool=min_pool,
                                     blocks=bb[mask], method=interval_method, ages=aa[mask], recency=recency,
                                     grades=gg[mask] if scale_by_grade else None, n_grades=n_grades)
            lower[j], upper[j] = model.apply(fc[j], lo_p), model.apply(fc[j], hi_p)
        # plain bootstrap of the averaged ratio (last `bootstrap_window` ratios, resampled)
        hist = ratios_full[:, max(0, o + 1 - bootstrap_window): o + 1, :]  # (S, W, G)
        width = hist.shape[1]
        pick = rng.integers(0, width, size=(n_bootstrap, width))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows (GPR at the first year)
            boot = np.nanmean(hist[:, pick, :], axis=2)  # (S, B, G)
        boot = np.moveaxis(boot, 1, 0)  # (B, S, G)
        boot_ratios = np.broadcast_to(boot[:, :, None, :], (n_bootstrap, n_series, horizon, n_grades))
        sims = project_pupils(pupils[:, o], drv, boot_ratios)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            nlo[j], nup[j] = np.nanquantile(sims, lo_p, axis=0), np.nanquantile(sims, hi_p, axis=0)
    beyond = ~np.isfinite(act)
    for arr in (fc, lower, upper, nlo, nup):
        arr[beyond] = np.nan
    bt = Backtest(origins=years[origins], years=years, grades=tuple(grades),
                  keys=np.asarray(keys if keys is not None else np.arange(n_series)), methods=methods,
                  level=level, forecast=fc, actual=act, lower=lower, upper=upper, naive_lower=nlo,
                  naive_upper=nup, chosen=chosen, log_errors={"log_error": log_err_store})
    return bt


# ----------------------------------------------------------------------------------------- forecasting
@dataclass
class EnrollmentForecast:
    """A grade-progression forecast.

    ``years``: ``(H,)`` forecast school years; ``grades``; ``keys``: ``(S,)``; ``point``: ``(..., S, H, G)``
    pupils (leading axes = driver draws); ``ratios``: ``(S, H, G)`` the carried-forward entry ratio / GPRs;
    ``methods``: ``(S, G)`` the chosen method names; ``errors``: the calibrated :class:`ErrorModel`.
    """

    years: np.ndarray
    grades: tuple
    keys: np.ndarray
    point: np.ndarray
    ratios: np.ndarray
    methods: np.ndarray
    errors: ErrorModel

    def quantile(self, level: float) -> np.ndarray:
        """Quantile ``level`` ``(..., S, H, G)`` around each point (ratio/model uncertainty only)."""
        return self.errors.apply(self.point, level)

    def to_long_table(self, *, key_name: str = "unit_code", level: str | Sequence[str] = "", scenario: str = "",
                      levels: Sequence[float] | None = None) -> pd.DataFrame:
        """Long table of the point forecast (quantile ``"point"``) and the calibrated quantiles ``levels``
        (default: all calibrated levels); for a ``point`` without a draw axis."""
        levels = list(self.errors.levels) if levels is None else list(levels)
        stack = np.stack([self.point] + [self.quantile(p) for p in levels])  # (Q, S, H, G)
        return to_long_table(stack.transpose(0, 2, 1, 3), years=self.years, grades=self.grades, keys=self.keys,
                             key_name=key_name, level=level, scenario=scenario, quantiles=["point"] + levels)

    def sample(self, n_draws: int | None = None, seed: int = 0) -> np.ndarray:
        """Draws ``(D, S, H, G)`` combining driver draws and calibrated model error.

        With a leading draw axis on ``point`` (``(D, S, H, G)``) each population draw gets one uniform
        ``u``; without one, ``n_draws`` draws of the point.  The log error of every cell is the error quantile
        at ``u`` for its horizon and class (interpolated over the calibrated levels) — one ``u`` per draw, so
        errors are fully correlated across series and grades within a draw (sums stay consistent).
        """
        point = self.point
        if point.ndim == 3:
            if n_draws is None:
                raise ForecastError("no draws", [Problem("n_draws", "point forecast has no draw axis", "pass n_draws")])
            point = np.broadcast_to(point, (n_draws,) + point.shape)
        elif point.ndim != 4:
            raise ForecastError("bad point shape", [Problem("point", f"shape {point.shape}", "expected (S,H,G) or (D,S,H,G)")])
        n = point.shape[0]
        rng = np.random.default_rng(seed)
        u = rng.uniform(self.errors.levels.min(), self.errors.levels.max(), size=n)
        horizon, n_grades = point.shape[-2:]
        cls = classify_cohorts(horizon, n_grades)
        q = self.errors.quantiles[:, :horizon]  # (Q, H, 2)
        qe = np.empty((n, horizon, 2))
        for h in range(horizon):
            for c in (0, 1):
                col = q[:, h, c]
                qe[:, h, c] = np.interp(u, self.errors.levels, col) if np.isfinite(col).all() else 0.0
        err = qe[:, np.arange(horizon)[:, None], cls] * self.errors.scale_grades(horizon, n_grades)[None]  # (D, H, G)
        return point * np.exp(err[:, None, :, :])


def forecast_grades(pupils: np.ndarray, driver: np.ndarray, driver_future: np.ndarray, *, years: Sequence[int],
                    grades: Sequence, keys: Sequence | None = None, methods: Sequence[str] = METHODS,
                    default_method: str = "mean3", select_horizon: int = 3, min_pool: int = 20,
                    levels: Sequence[float] = DEFAULT_QUANTILES, ses_alpha: float | None = None,
                    interval_method: str = INTERVAL_METHOD, recency: float | str = RECENCY,
                    scale_by_grade: bool = True, prefer_simple: bool = PREFER_SIMPLE) -> EnrollmentForecast:
    """Forecast every grade ``H`` years past the history.

    ``pupils``: ``(S, Y, G)`` for consecutive ``years``; ``driver``: ``(S, Y)`` aligned history driver;
    ``driver_future``: ``(..., S, H)`` aligned driver for years ``years[-1] + 1 ..`` (leading axes = draws).
    Methods are chosen per series by a rolling-origin backtest over the whole history; the error model is
    calibrated from all of its forecasts (conformal quantiles at ``levels``).
    """
    pupils = np.asarray(pupils, dtype=float)
    driver_future = np.asarray(driver_future, dtype=float)
    n_series, n_years, n_grades = pupils.shape
    horizon = driver_future.shape[-1]
    methods = tuple(methods)
    ratios = compute_ratios(pupils, np.asarray(driver, dtype=float))
    hist = ratios.transpose(0, 2, 1).reshape(n_series * n_grades, n_years)
    fut, choice, back = forecast_ratios_by_backtest(hist, horizon, methods=methods, default_method=default_method,
                                                    select_horizon=select_horizon, ses_alpha=ses_alpha,
                                                    prefer_simple=prefer_simple)
    fut = fut.reshape(n_series, n_grades, horizon).transpose(0, 2, 1)
    choice = choice.reshape(n_series, n_grades)
    log_err = hh = cc = aa = np.empty(0)
    bb = gg = np.empty(0, dtype=int)
    origins = np.arange(1, n_years - 1)
    if origins.size:
        # errors of the procedure with the final choice, for calibration
        bt_h = n_years - 2
        ratio_fc = back.reshape(origins.size, n_series, n_grades, bt_h).transpose(0, 1, 3, 2)  # (O, S, H, G)
        fc = np.stack([project_pupils(pupils[:, o], _future_block(driver, o, bt_h), ratio_fc[j])
                       for j, o in enumerate(origins)])
        act = np.stack([_future_block(pupils, o, bt_h) for o in origins])
        with np.errstate(divide="ignore", invalid="ignore"):
            e = np.log(act / fc)
        cls = np.broadcast_to(classify_cohorts(bt_h, n_grades)[None, None], e.shape)
        hidx = np.broadcast_to(np.arange(bt_h)[None, None, :, None], e.shape)
        bidx = np.broadcast_to(np.arange(origins.size)[:, None, None, None], e.shape)
        age = (n_years - 1) - (origins[:, None] + 1 + np.arange(bt_h)[None, :])  # years since each target
        aidx = np.broadcast_to(age[:, None, :, None], e.shape)
        gidx = np.broadcast_to(np.arange(n_grades)[None, None, None, :], e.shape)
        log_err, cc, hh, bb, aa, gg = e.ravel(), cls.ravel(), hidx.ravel(), bidx.ravel(), aidx.ravel(), gidx.ravel()
    errors = calibrate_errors(log_err, cc, hh, horizon, levels, min_pool=min_pool, blocks=bb, method=interval_method,
                              ages=aa if log_err.size else None, recency=recency,
                              grades=gg if scale_by_grade and log_err.size else None, n_grades=n_grades)
    point = project_pupils(pupils[:, -1], driver_future, fut)
    years = np.asarray(years)
    return EnrollmentForecast(years=years[-1] + 1 + np.arange(horizon), grades=tuple(grades),
                              keys=np.asarray(keys if keys is not None else np.arange(n_series)), point=point,
                              ratios=fut, methods=np.asarray(methods)[choice], errors=errors)


# ------------------------------------------------------------------------------------------ adapters
@dataclass(frozen=True)
class Panel:
    """Arrays from a history table: ``keys (S,)``, ``years (Y,)``, ``grades``, ``pupils (S, Y, G)``,
    ``driver (S, Y + E)`` aligned to school years ``years[0] .. years[-1] + E``."""

    keys: np.ndarray
    years: np.ndarray
    grades: tuple
    pupils: np.ndarray
    driver: np.ndarray


def align_driver(driver: pd.DataFrame, lag: int, years: Sequence[int], *, key: str | None = None,
                 keys: Sequence | None = None, value: str = "value", source: str = "driver") -> np.ndarray:
    """Aligned entry driver ``(S, len(years))``: row ``s``, column ``t`` = ``driver`` value of year
    ``years[t] − lag`` (e.g. births of 12 months to 1 July ``Y`` enter reception in school year ``Y + 4``:
    ``lag = 4``; a population at the entry age counted in the school year itself: ``lag = 0``).
    NaN where the table has no value."""
    need = {"year", value} | ({key} if key else set())
    missing = need - set(driver.columns)
    if missing:
        raise ForecastError("driver table is missing columns", [Problem(
            source, f"missing columns {sorted(missing)}", f"provide columns {sorted(need)}")])
    keys = [None] if key is None else list(keys)
    table = driver.groupby([key, "year"] if key else ["year"])[value].sum()
    out = np.full((len(keys), len(years)), np.nan)
    for s, k in enumerate(keys):
        for t, y in enumerate(years):
            idx = (k, int(y) - lag) if key else int(y) - lag
            if idx in table.index:
                out[s, t] = table.loc[idx]
    return out


def build_panel(history: pd.DataFrame, grades: Sequence, driver: pd.DataFrame, lag: int, *, key: str | None = None,
                pupils_column: str = "pupils", driver_value: str = "value", future_years: int = 0,
                source: str = "history") -> Panel:
    """Validate a history table (``year, grade, pupils`` [+ ``key``]) and a driver table (``year, value``
    [+ ``key``]) and turn them into a :class:`Panel`.  Every (key, year, grade) cell of consecutive years must
    be present exactly once and non-negative; the driver must cover every history year (and ``future_years``
    more, where known: missing future values stay NaN)."""
    problems: list[Problem] = []
    need = {"year", "grade", pupils_column} | ({key} if key else set())
    missing = need - set(history.columns)
    if missing:
        raise ForecastError("history table is missing columns", [Problem(
            source, f"missing columns {sorted(missing)}", f"provide columns {sorted(need)}")])
    grades = list(grades)
    bad_grade = ~history["grade"].isin(grades)
    if bad_grade.any():
        problems.append(Problem(source, f"grades {sorted(history.loc[bad_grade, 'grade'].astype(str).unique())} "
                                f"are not in the grade list {grades}", "drop them or add them to `grades`",
                                format_rows(history.index[bad_grade])))
    h = history.loc[~bad_grade]
    cols = ([key] if key else []) + ["year", "grade"]
    dup = h.duplicated(cols, keep=False)
    if dup.any():
        problems.append(Problem(source, "duplicate (key, year, grade) rows", "keep one row per cell",
                                format_rows(h.index[dup])))
    neg = ~(h[pupils_column] >= 0)
    if neg.any():
        problems.append(Problem(source, f"negative or missing {pupils_column}", "pupils are head counts ≥ 0",
                                format_rows(h.index[neg])))
    years = np.arange(int(h["year"].min()), int(h["year"].max()) + 1) if len(h) else np.array([], int)
    keys = np.array(sorted(h[key].unique())) if key else np.array([None])
    if len(years) < 2:
        problems.append(Problem(source, "fewer than two school years", "supply a history of several years"))
    raise_if_problems(problems, f"{source}: cannot build the enrollment panel", ForecastError)
    full = pd.MultiIndex.from_product(([keys] if key else []) + [years, grades], names=cols)
    table = h.groupby(cols)[pupils_column].sum().reindex(full)
    gaps = table.index[table.isna()]
    if len(gaps):
        problems.append(Problem(source, f"{len(gaps)} (key, year, grade) cells are missing",
                                "supply every grade for every year (0 where a grade had no pupils)",
                                format_rows([str(g) for g in gaps])))
    drv = align_driver(driver, lag, np.arange(years[0], years[-1] + 1 + future_years), key=key,
                       keys=keys, value=driver_value, source="driver")
    gap = ~np.isfinite(drv[:, : len(years)]) | (drv[:, : len(years)] <= 0)
    if gap.any():
        s, t = np.nonzero(gap)
        problems.append(Problem("driver", f"no positive driver for {gap.sum()} history cells (lag {lag})",
                                "supply the driver for every history year minus the lag",
                                format_rows([f"{keys[i]}:{years[j] - lag}" for i, j in zip(s, t)])))
    raise_if_problems(problems, f"{source}: cannot build the enrollment panel", ForecastError)
    pupils = table.to_numpy(dtype=float).reshape(len(keys), len(years), len(grades))
    return Panel(keys=keys, years=years, grades=tuple(grades), pupils=pupils, driver=drv)


def run_backtest(history: pd.DataFrame, grades: Sequence, driver: pd.DataFrame, lag: int, *, key: str | None = None,
                 pupils_column: str = "pupils", driver_value: str = "value", **kwargs) -> Backtest:
    """Rolling-origin backtest from tables (see :func:`build_panel` and :func:`run_backtest_arrays`)."""
    panel = build_panel(history, grades, driver, lag, key=key, pupils_column=pupils_column, driver_value=driver_value)
    return run_backtest_arrays(panel.pupils, panel.driver, years=panel.years, grades=panel.grades, keys=panel.keys, **kwargs)


def forecast_enrollment(history: pd.DataFrame, grades: Sequence, driver: pd.DataFrame, lag: int, horizon: int, *,
                        key: str | None = None, pupils_column: str = "pupils", driver_value: str = "value",
                        **kwargs) -> EnrollmentForecast:
    """Forecast from tables: history to ``horizon`` years ahead; the driver table must cover the history and
    the forecast years (minus the lag).  Keyword arguments go to :func:`forecast_grades`."""
    panel = build_panel(history, grades, driver, lag, key=key, pupils_column=pupils_column,
                        driver_value=driver_value, future_years=horizon)
    n_years = panel.years.size
    fut = panel.driver[:, n_years:]
    if not np.isfinite(fut).all():
        s, t = np.nonzero(~np.isfinite(fut))
        raise ForecastError("driver does not cover the forecast", [Problem(
            "driver", f"no driver for {len(s)} forecast cells", "extend the driver (births or population) table",
            format_rows([f"{panel.keys[i]}:{panel.years[-1] + 1 + j - lag}" for i, j in zip(s, t)]))])
    return forecast_grades(panel.pupils, panel.driver[:, :n_years], fut, years=panel.years, grades=panel.grades,
                           keys=panel.keys, **kwargs)


def to_long_table(values: np.ndarray, *, years: Sequence[int], grades: Sequence, keys: Sequence,
                  key_name: str = "unit_code", level: str | Sequence[str] = "", scenario: str = "",
                  quantiles: Sequence[float | str] | None = None, value_name: str = "pupils") -> pd.DataFrame:
    """Long table ``scenario, year, level, grade, <key_name>, quantile, pupils`` from an array.

    ``values``: ``(Y, K, G)`` (one quantile: the ``quantile`` column is ``quantiles[0]`` or ``"point"``) or
    ``(Q, Y, K, G)`` with ``quantiles`` of length ``Q`` (e.g. 0.1, 0.5, 0.9, or labels such as ``"mean"``);
    ``K`` = units (``key_name="unit_code"``) or schools (``"school_id"``).  ``level`` is one string or one per
    grade.  Pupils are persons (head counts).
    """
    values = np.asarray(values, dtype=float)
    if values.ndim == 3:
        values = values[None]
        quantiles = list(quantiles) if quantiles is not None else ["point"]
    quantiles = list(quantiles) if quantiles is not None else list(range(values.shape[0]))
    problems = []
    if values.ndim != 4:
        raise ForecastError("cannot build the long table", [Problem("values", f"shape {values.shape}", "(Q, Y, K, G) or (Y, K, G)")])
    n_q, n_y, n_k, n_g = values.shape
    for name, expect, got in (("quantiles", n_q, len(quantiles)), ("keys", n_k, len(keys)),
                              ("years", n_y, len(years)), ("grades", n_g, len(grades))):
        if expect != got:
            problems.append(Problem(name, f"length {got} does not match the array axis ({expect})",
                                    "pass labels for every position of the (Q, Y, K, G) array"))
    levels = [level] * n_g if isinstance(level, str) else list(level)
    if len(levels) != n_g:
        problems.append(Problem("level", f"{len(levels)} levels for {n_g} grades", "one level per grade or one string"))
    raise_if_problems(problems, "cannot build the long table", ForecastError)
    qi, yi, ki, gi = (ix.ravel() for ix in np.meshgrid(np.arange(n_q), np.arange(n_y), np.arange(n_k), np.arange(n_g),
                                                       indexing="ij"))
    return pd.DataFrame({
        "scenario": scenario,
        "year": np.asarray(years)[yi],
        "level": np.asarray(levels, dtype=object)[gi],
        "grade": np.asarray(list(grades), dtype=object)[gi],
        key_name: np.asarray(list(keys), dtype=object)[ki],
        "quantile": np.asarray(quantiles, dtype=object)[qi],
        value_name: values.ravel(),
    })
