"""Sub-area control: fit unit populations to district totals by sex × age (and unit totals).

Iterative proportional fitting (IPF, raking) on arrays ``(..., U, 2, A)``: leading axes
(draws, years) are fitted independently in one vectorised pass.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from forecast.errors import ForecastError, Problem, format_rows, raise_if_problems


class IpfResult(NamedTuple):
    """``population`` (..., U, 2, A) controlled; ``iterations`` used; ``max_error`` the largest
    absolute margin gap left (persons)."""

    population: np.ndarray
    iterations: int
    max_error: float


def control_to_totals(population, sex_age_totals, unit_totals=None, *, tol: float = 1e-6,
                      max_iter: int = 500) -> IpfResult:
    """Scale unit populations so that they add up to the district totals.

    ``population`` ``(..., U, 2, A)`` seed (≥ 0, e.g. projected units);
    ``sex_age_totals`` ``(..., 2, A)`` district persons by sex and age (the control);
    ``unit_totals`` ``(..., U)`` optional persons per unit.  Without unit totals each
    sex × age cell is scaled once (exact).  With them, IPF alternates the two margins
    until every margin is met within ``tol`` persons (absolute), or raises
    :class:`ForecastError` after ``max_iter`` sweeps.  Zeros in the seed stay zero.

    Errors (all collected): negative/non-finite input; margins that disagree (grand
    totals differ by more than ``tol`` + 1e-9 relative); a positive control with an
    all-zero seed row/column (nothing to scale).
    """
    seed = np.asarray(population, dtype=float)
    target = np.asarray(sex_age_totals, dtype=float)
    problems: list[Problem] = []
    if seed.ndim < 3 or seed.shape[-2] != 2:
        problems.append(Problem("population", f"shape {seed.shape}", "shape (..., U, 2, A)"))
        raise_if_problems(problems, "cannot control sub-areas", ForecastError)
    lead = seed.shape[:-3]
    if target.shape != lead + seed.shape[-2:]:
        problems.append(Problem("sex_age_totals", f"shape {target.shape}, expected {lead + seed.shape[-2:]}",
                                "district totals by (sex, age) for each leading slice"))
    for name, arr in (("population", seed), ("sex_age_totals", target)):
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            problems.append(Problem(name, "negative or non-finite values", "counts must be finite and >= 0"))
    raise_if_problems(problems, "cannot control sub-areas", ForecastError)

    col_seed = seed.sum(axis=-3)
    empty_cells = (col_seed == 0) & (target > 0)
    if empty_cells.any():
        idx = np.argwhere(empty_cells)
        problems.append(Problem("population", f"{len(idx)} sex × age cells have a positive control but no persons "
                                "in any unit", "seed those cells (e.g. from a neighbouring age) or fix the totals",
                                rows=format_rows([tuple(int(v) for v in i) for i in idx])))
    units = None
    if unit_totals is not None:
        units = np.asarray(unit_totals, dtype=float)
        if units.shape != seed.shape[:-2]:
            problems.append(Problem("unit_totals", f"shape {units.shape}, expected {seed.shape[:-2]}",
                                    "one total per unit and leading slice"))
        elif not np.all(np.isfinite(units)) or np.any(units < 0):
            problems.append(Problem("unit_totals", "negative or non-finite totals", "counts >= 0"))
        else:
            grand_a = target.sum(axis=(-2, -1))
            grand_b = units.sum(axis=-1)
            gap = np.abs(grand_a - grand_b)
            bad = gap > tol + 1e-9 * np.maximum(grand_a, grand_b)
            if bad.any():
                problems.append(Problem("unit_totals", f"margins are inconsistent: unit totals add to "
                                        f"{grand_b[bad].ravel()[:3].tolist()} but sex × age totals to "
                                        f"{grand_a[bad].ravel()[:3].tolist()}", "both margins must have the same "
                                        "grand total", rows=format_rows(np.argwhere(np.atleast_1d(bad)).ravel().tolist())))
            empty_units = (seed.sum(axis=(-2, -1)) == 0) & (units > 0)
            if empty_units.any():
                problems.append(Problem("population", "units with a positive total but no persons in the seed",
                                        "seed those units or set their total to 0",
                                        rows=format_rows(np.argwhere(empty_units)[:, -1].tolist())))
    raise_if_problems(problems, "cannot control sub-areas", ForecastError)

    def scale_columns(x):
        col = x.sum(axis=-3, keepdims=True)
        factor = np.divide(target[..., None, :, :], col, out=np.zeros_like(col), where=col > 0)
        return x * factor

    fitted = scale_columns(seed)
    if units is None:
        return IpfResult(fitted, 1, float(np.abs(fitted.sum(axis=-3) - target).max(initial=0.0)))
    for iteration in range(1, max_iter + 1):
        rows = fitted.sum(axis=(-2, -1))
        factor = np.divide(units, rows, out=np.zeros_like(rows), where=rows > 0)
        fitted = fitted * factor[..., None, None]
        fitted = scale_columns(fitted)
        error = max(float(np.abs(fitted.sum(axis=(-2, -1)) - units).max(initial=0.0)),
                    float(np.abs(fitted.sum(axis=-3) - target).max(initial=0.0)))
        if error <= tol:
            return IpfResult(fitted, iteration, error)
    raise ForecastError("IPF did not converge", [Problem(
        "population", f"after {max_iter} sweeps the margins are still {error:.3g} persons off (tol {tol})",
        "the seed's zero pattern may make the margins incompatible; check structural zeros, "
        "raise max_iter or loosen tol")])
