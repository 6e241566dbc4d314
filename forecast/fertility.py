"""Fertility inputs: single-year ASFR from a TFR path × an age schedule, and policy TFR variants.

Arrays carry a leading step/year axis ``T`` when they vary over time; age is last.
``asfr`` is births per woman per year by completed age of the mother, so for
single-year ages ``asfr.sum(-1) == tfr``; for ``width``-year groups
``width · asfr.sum(-1) == tfr``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.interpolate import PchipInterpolator

from forecast.errors import ForecastError, Problem, raise_if_problems


def graduate_asfr_schedule(percent, group_start, width: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Graduate a grouped fertility age schedule to single years of age.

    ``percent`` ``(..., G)``: share of fertility in each ``width``-year age group of the
    mother starting at ``group_start`` (G,) (e.g. WPP percent ASFR, 10-14 … 50-54; any
    scale: it is normalised to sum 1).  Returns ``(ages, proportions)`` with ``ages``
    ``(G·width,)`` single years from ``group_start[0]`` and ``proportions``
    ``(..., G·width)`` ≥ 0, summing to 1 and preserving every group's share exactly.

    Method: the cumulative share at the group boundaries is interpolated with a
    monotone cubic (PCHIP, Fritsch-Carlson), and single-year shares are its differences;
    monotonicity gives non-negative values, the knots at the boundaries keep the group
    sums, and the C1 cumulative gives a smooth schedule without the steps of a uniform split.
    """
    percent = np.asarray(percent, dtype=float)
    group_start = np.asarray(group_start)
    problems = []
    if group_start.ndim != 1 or percent.shape[-1:] != group_start.shape:
        problems.append(Problem("percent", f"last axis {percent.shape[-1:]} does not match group_start {group_start.shape}",
                                "one share per age group, age group last"))
    elif np.any(np.diff(group_start) != width):
        problems.append(Problem("group_start", f"groups must be contiguous and {width} years wide: {group_start.tolist()}",
                                "pass consecutive group starts, e.g. 10,15,...,50"))
    if np.any(~np.isfinite(percent)) or np.any(percent < 0):
        problems.append(Problem("percent", "negative or non-finite shares", "shares must be >= 0"))
    elif percent.size and np.any(percent.sum(-1) <= 0):
        problems.append(Problem("percent", "a schedule sums to 0", "each schedule needs some fertility"))
    raise_if_problems(problems, "cannot graduate the fertility schedule", ForecastError)
    share = percent / percent.sum(axis=-1, keepdims=True)
    bounds = np.append(group_start, group_start[-1] + width).astype(float)
    cumulative = np.concatenate([np.zeros(share.shape[:-1] + (1,)), np.cumsum(share, axis=-1)], axis=-1)
    cumulative[..., -1] = 1.0
    ages = np.arange(group_start[0], group_start[-1] + width)
    spline = PchipInterpolator(bounds, cumulative, axis=-1)
    at = spline(np.append(ages, ages[-1] + 1).astype(float))
    at = np.maximum.accumulate(at, axis=-1)  # guard against rounding below the previous value
    proportions = np.diff(at, axis=-1)
    proportions = np.maximum(proportions, 0.0)
    return ages, proportions


def build_asfr(tfr, proportions, ages, n_ages: int = 101, width: int = 1) -> np.ndarray:
    """ASFR on the projection's age axis from a TFR path and an age schedule.

    ``tfr`` ``(T, ...)`` (children per woman); ``proportions`` ``(T, ..., K)`` or ``(K,)``
    shares summing to 1 over ``ages`` ``(K,)`` (single years when ``width == 1``, group
    starts otherwise).  Returns ``(T, ..., n_ages)`` births per woman per year: for age
    group ``a`` of width ``width`` ``asfr = tfr · share / width``, zero outside ``ages``.
    For ``width > 1``, ``n_ages`` counts groups and ``ages`` must be multiples of ``width``.
    """
    tfr = np.asarray(tfr, dtype=float)
    proportions = np.asarray(proportions, dtype=float)
    ages = np.asarray(ages)
    index = ages // width
    problems = []
    if np.any(tfr < 0) or not np.all(np.isfinite(tfr)):
        problems.append(Problem("tfr", "negative or non-finite TFR", "TFR must be >= 0"))
    if proportions.shape[-1:] != ages.shape:
        problems.append(Problem("proportions", f"last axis {proportions.shape[-1:]} != ages {ages.shape}",
                                "one share per age"))
    if np.any(ages % width) or np.any(index < 1) or np.any(index >= n_ages):
        problems.append(Problem("ages", f"fertile ages {ages.min()}..{ages.max()} do not fit the projection's age axis",
                                f"ages must be multiples of {width}, above the first group and below the open group"))
    raise_if_problems(problems, "cannot build ASFR", ForecastError)
    values = tfr[..., None] * proportions / width
    out = np.zeros(values.shape[:-1] + (n_ages,))
    out[..., index] = values
    return out


@dataclass(frozen=True)
class TfrPolicy:
    """A multiplicative policy effect on the TFR path.

    From ``start_year`` the TFR is multiplied by ``1 + effect · ramp``, ``ramp`` rising
    linearly from ``1/ramp_years`` in ``start_year`` to 1 after ``ramp_years`` years
    (e.g. three-child policy or a childcare subsidy: ``effect = 0.05`` = +5 % at full effect).
    """

    name: str
    effect: float
    start_year: int
    ramp_years: int = 3


def calculate_policy_multiplier(years, policies: Sequence[TfrPolicy]) -> np.ndarray:
    """Product of the policies' multipliers for each year in ``years`` (T,); returns (T,)."""
    years = np.asarray(years, dtype=float)
    problems = []
    for p in policies:
        if p.ramp_years < 1:
            problems.append(Problem(f"policy {p.name}", f"ramp_years={p.ramp_years}", "use ramp_years >= 1"))
        if p.effect <= -1:
            problems.append(Problem(f"policy {p.name}", f"effect={p.effect} would make the TFR <= 0",
                                    "effects are relative changes > -1"))
    raise_if_problems(problems, "bad TFR policy", ForecastError)
    multiplier = np.ones_like(years)
    for p in policies:
        ramp = np.clip((years - p.start_year + 1) / p.ramp_years, 0.0, 1.0)
        multiplier *= 1.0 + p.effect * ramp
    return multiplier


def apply_tfr_policies(tfr, years, policies: Sequence[TfrPolicy]) -> np.ndarray:
    """TFR path ``(T, ...)`` with policy effects applied along the leading year axis ``years`` (T,)."""
    tfr = np.asarray(tfr, dtype=float)
    multiplier = calculate_policy_multiplier(years, policies)
    return tfr * multiplier.reshape((-1,) + (1,) * (tfr.ndim - 1))
