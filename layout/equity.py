"""校际差异系数 — the inter-school difference coefficient of the 优质均衡 (quality-balanced) assessment.

For one indicator X over the schools of one level, with Pᵢ pupils at school i and P = ΣPᵢ:

    X̄ = Σ PᵢXᵢ / P,   S = √( Σ (Pᵢ/P)(Xᵢ − X̄)² ),   CV = S / X̄

(an enrollment-weighted coefficient of variation).  Targets: CV ≤ 0.50 primary, ≤ 0.45 junior.
The seven indicators are per-pupil or per-100-pupil ratios of a school's resources, so when
schools merge the receiving school's indicator is its pooled resources over its pooled pupils:
X_j' = Σ_{i→j} XᵢPᵢ / P_j' (the per-100 scale cancels).  A nine-year school counts in both
levels with its primary-grade and junior-grade pupils as weights and its one set of indicators.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from forecast.errors import Problem, format_rows, raise_if_problems
from layout.capacity import GRADE_LEVELS
from layout.errors import LayoutError

__all__ = [
    "EQUITY_INDICATORS",
    "CV_TARGETS",
    "compute_difference_coefficient",
    "merge_school_indicators",
    "merge_schools_frame",
    "assess_equity",
    "compare_equity",
]

#: The seven 优质均衡 resource indicators (columns of schools.geojson).
EQUITY_INDICATORS: tuple[str, ...] = (
    "qualified_teachers_per100",
    "key_teachers_per100",
    "pe_arts_teachers_per100",
    "teaching_space_m2_per_pupil",
    "sports_space_m2_per_pupil",
    "equipment_cny_per_pupil",
    "multimedia_rooms_per100",
)

#: Level -> the CV every indicator must stay at or below.
CV_TARGETS: dict[str, float] = {"primary": 0.50, "junior": 0.45}


def _validate(values: np.ndarray, pupils: np.ndarray, ids: Sequence | None, what: str) -> None:
    problems = []
    n = len(pupils)
    ids = np.asarray(ids if ids is not None else np.arange(n))
    if values.shape[0] != n:
        raise LayoutError(f"{what}: values and pupils disagree", [Problem(
            what, f"{values.shape[0]} schools of values but {n} of pupils", "give one row per school")])
    badp = ~np.isfinite(pupils) | (pupils < 0)
    if badp.any():
        problems.append(Problem(f"{what} pupils", "negative or missing pupil counts", "pass counts >= 0",
                                format_rows(ids[badp].tolist())))
    weighted = pupils > 0
    badx = (~np.isfinite(values) | (values < 0)) & weighted[:, None]
    if badx.any():
        rows = np.flatnonzero(badx.any(axis=1))
        problems.append(Problem(f"{what} indicators", "negative or missing indicator values at schools with pupils",
                                "fill them (a school's resources are >= 0)", format_rows(ids[rows].tolist())))
    raise_if_problems(problems, f"cannot compute the 校际差异系数 ({what})", LayoutError)


def compute_difference_coefficient(values: np.ndarray, pupils: np.ndarray, *, ids: Sequence | None = None):
    """Enrollment-weighted CV of each indicator: values (n,) or (n, k), pupils (n,) -> float or (k,).

    Schools with no pupils carry no weight.  NaN when there are no pupils or the mean is 0.
    """
    x = np.asarray(values, dtype=float)
    one = x.ndim == 1
    x2 = x[:, None] if one else x
    p = np.asarray(pupils, dtype=float).ravel()
    _validate(x2, p, ids, "values")
    total = p.sum()
    if total <= 0:
        cv = np.full(x2.shape[1], np.nan)
    else:
        w = p / total
        xw = np.where(w[:, None] > 0, x2, 0.0)          # no-weight rows may hold NaN
        mean = w @ xw
        s = np.sqrt(w @ (xw - mean[None, :]) ** 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            cv = np.where(mean > 0, s / mean, np.nan)
    return float(cv[0]) if one else cv


def merge_school_indicators(values: np.ndarray, pupils: np.ndarray, receiver: np.ndarray,
                            pupils_after: np.ndarray | None = None,
                            stays: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Indicators after schools merge: pooled resources / pooled pupils.

    values (n, k) per-pupil / per-100 indicators measured with pupils (n,); receiver (n,) index of
    the school that absorbs school i (itself when it stays open).  pupils_after (n,) optional head
    counts after the change (default: the pooled pupils Σ_{i→j} Pᵢ; closed schools get 0).
    stays (k,) bool, optional: indicators whose resources stay with the building (e.g. space)
    and are *not* pooled — the receiving school keeps its own resources for those.
    Returns (values_after (n, k), NaN for closed schools; pupils_after (n,)).
    """
    x = np.asarray(values, dtype=float)
    x = x[:, None] if x.ndim == 1 else x
    p = np.asarray(pupils, dtype=float).ravel()
    r = np.asarray(receiver, dtype=np.int64).ravel()
    n, k = x.shape
    problems = []
    if r.shape != (n,) or ((r < 0) | (r >= n)).any():
        problems.append(Problem("receiver", "must give, for every school, the index of a school (0..n-1)",
                                "use the school's own index when it stays open"))
    else:
        open_ = r == np.arange(n)
        bad = np.flatnonzero(~open_[r])
        if bad.size:
            problems.append(Problem("receiver", "some schools are sent to a school that itself closes",
                                    "send them to the final receiving school", format_rows(bad.tolist())))
    raise_if_problems(problems, "bad merge", LayoutError)
    _validate(x, p, None, "values")
    resources = np.where(p[:, None] > 0, x * p[:, None], 0.0)
    pooled = np.zeros((n, k))
    np.add.at(pooled, r, resources)
    pooled_p = np.bincount(r, weights=p, minlength=n)
    if stays is not None:
        st = np.asarray(stays, dtype=bool)
        pooled[:, st] = resources[:, st] * (r == np.arange(n))[:, None]
    p_after = pooled_p if pupils_after is None else np.asarray(pupils_after, dtype=float).ravel()
    closed = r != np.arange(n)
    if (p_after[closed] > 0).any():
        raise LayoutError("bad merge", [Problem("pupils_after", "closed schools still have pupils",
                                                "give closed schools 0 pupils",
                                                format_rows(np.flatnonzero(closed & (p_after > 0)).tolist()))])
    with np.errstate(divide="ignore", invalid="ignore"):
        after = np.where(p_after[:, None] > 0, pooled / p_after[:, None], x)
    after[closed] = np.nan
    return after, np.where(closed, 0.0, p_after)


def merge_schools_frame(schools: pd.DataFrame, receiver: Mapping[str, str], *,
                        indicators: Sequence[str] = EQUITY_INDICATORS, stays: Sequence[str] = ()) -> pd.DataFrame:
    """The schools table after closures: ``receiver`` maps a closing school_id to the school_id that takes
    its pupils (per grade) and its resources (pooled, except indicators listed in ``stays``).

    Returns the remaining schools with pooled ``pupils_g<k>`` and recomputed indicators, ready for
    :func:`assess_equity`.  Unknown ids, or a receiver that itself closes, raise :class:`LayoutError`.
    """
    ids = schools["school_id"].astype(str).to_numpy()
    pos = {s: i for i, s in enumerate(ids)}
    unknown = [f"{a}->{b}" for a, b in receiver.items() if str(a) not in pos or str(b) not in pos]
    if unknown:
        raise LayoutError("bad merge", [Problem("receiver", "unknown school ids", "use ids of the schools table",
                                                format_rows(unknown))])
    r = np.arange(len(ids))
    for a, b in receiver.items():
        r[pos[str(a)]] = pos[str(b)]
    pcols = [c for c in schools.columns if c.startswith("pupils_g")]
    by_grade = schools[pcols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    x = schools[list(indicators)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    stays_mask = np.isin(list(indicators), list(stays))
    after, _ = merge_school_indicators(x, by_grade.sum(axis=1), r, stays=stays_mask)
    pooled = np.zeros_like(by_grade)
    np.add.at(pooled, r, by_grade)
    out = schools.copy()
    out[pcols] = pooled
    out[list(indicators)] = after
    return out[r == np.arange(len(ids))].reset_index(drop=True)


def _level_pupils(schools: pd.DataFrame, level_grades: Mapping[str, Sequence[int]]) -> dict[str, np.ndarray]:
    out = {}
    for lvl, grades in level_grades.items():
        cols = [f"pupils_g{g}" for g in grades if f"pupils_g{g}" in schools.columns]
        if not cols:
            raise LayoutError("schools table has no pupil columns", [Problem(
                "schools", f"no pupils_g<k> columns for {lvl}", "add pupils_g1..pupils_g9")])
        out[lvl] = schools[cols].apply(pd.to_numeric, errors="coerce").fillna(-1).to_numpy(dtype=float).sum(axis=1)
    return out


def assess_equity(schools: pd.DataFrame, *, indicators: Sequence[str] = EQUITY_INDICATORS,
                  targets: Mapping[str, float] = CV_TARGETS, include: np.ndarray | None = None) -> pd.DataFrame:
    """CV of each indicator for primary and junior: long table level, indicator, schools, pupils, weighted_mean, cv,
    target, meets_target.

    A school counts for a level with its pupils in that level's grades (pupils_g1..6 / g7..9) as weight;
    ``include`` (n,) bool restricts the schools (e.g. exclude teaching points or private schools).
    """
    missing = [c for c in list(indicators) + ["school_id"] if c not in schools.columns]
    if missing:
        raise LayoutError("schools table lacks equity columns", [Problem(
            "schools", f"missing columns {missing}", "add the seven 优质均衡 indicators")])
    pupils = _level_pupils(schools, {lvl: GRADE_LEVELS[lvl] for lvl in targets})
    x = schools[list(indicators)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    inc = np.ones(len(schools), bool) if include is None else np.asarray(include, dtype=bool)
    ids = schools["school_id"].astype(str).to_numpy()
    rows = []
    for lvl, p in pupils.items():
        w = np.where(inc, p, 0.0)
        cv = compute_difference_coefficient(x, w, ids=ids)
        tot = w.sum()
        mean = (w @ np.where(w[:, None] > 0, x, 0.0)) / tot if tot > 0 else np.full(x.shape[1], np.nan)
        for j, name in enumerate(indicators):
            rows.append({"level": lvl, "indicator": name, "schools": int((w > 0).sum()), "pupils": tot,
                         "weighted_mean": mean[j], "cv": cv[j], "target": targets[lvl],
                         "meets_target": bool(cv[j] <= targets[lvl]) if np.isfinite(cv[j]) else False})
    return pd.DataFrame(rows)


def compare_equity(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Join two :func:`assess_equity` tables: level, indicator, cv_before, cv_after, change, target, meets_after."""
    b = before.set_index(["level", "indicator"])
    a = after.set_index(["level", "indicator"])
    out = pd.DataFrame({"cv_before": b["cv"], "cv_after": a["cv"]})
    out["change"] = out["cv_after"] - out["cv_before"]
    out["target"] = a["target"]
    out["meets_after"] = a["meets_target"]
    return out.reset_index()
