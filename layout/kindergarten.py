"""Kindergarten siting and the preschool targets (issue 7).

The plan (专栏2/4) wants 16 new residential-complex kindergartens (小区配套园), a three-year
gross enrollment rate (学前三年毛入园率) of at least 98 %, an inclusive (普惠) share of 98 % and a
public share of enrolled children (公办园在园幼儿占比) of at least 65 % by 2025, while births fall.
This module holds the numerical cores (arrays in, dataclasses of arrays out) and thin
DataFrame adapters:

* :func:`count_kindergarten_seats`, :func:`split_kindergarten_classes` — seats from classes by
  type (小班 25 / 中班 30 / 大班 35 children per class).
* :func:`compute_kindergarten_demand` — children aged 3–5 × target enrollment rate.
* :func:`compute_walking_radius_m` — 300 m urban (GB 50180-2018), a rural parameter.
* :func:`solve_kindergarten_coverage` — a capacitated maximal covering location model
  (HiGHS MILP): choose new sites and conversions of private kindergartens to maximise the
  children served within walking distance, or (``objective="min_sites"``) the fewest new
  sites that reach coverage / enrollment / inclusive / public targets.
* :func:`allocate_kindergarten_enrollment` — per year (and per quantile), children to
  kindergartens by a capacitated nearest-seat transport LP; seats short / idle by township,
  utilisation per kindergarten.
* :func:`check_preschool_targets` — gross enrollment rate, inclusive and public shares per year.
* :func:`plan_kindergartens`, :func:`project_kindergarten_years` — DataFrame adapters.

Model conventions (shared by every function here)
-------------------------------------------------
* Timing: ``children_3to5`` of school year *y* are the children aged 3, 4 and 5 on 1 Sep of
  year *y* (the school year starting then); the caller passes them from the forecast.
* A *unit* (residential unit, index ``i``) has demand ``d_i = children_i × enrollment_rate``
  children, located at one point; ``distance_m[i, j]`` is the travel (or straight-line)
  distance in metres from unit ``i`` to kindergarten ``j``.
* A unit's children are *covered* (served within walking distance) by kindergarten ``j`` when
  ``distance_m[i, j] <= radius_m[i]`` (boundary included, as PySAL spopt's MCLP); the radius is
  the unit's (urban / rural) one. A unit's children may be split over several kindergartens.
* Children who are not covered still *enroll* at a kindergarten with free seats in their own
  township (rural children are taken by parents or board), so
  ``enrolled = covered + township-pool enrollment`` and enrollment never exceeds demand.
* Public kindergartens count as inclusive (公办园 are 普惠性资源): inclusive share =
  enrolled in public or inclusive-private kindergartens / enrolled.
* Conversions of a private kindergarten — to inclusive private (认定普惠) or bought into the public
  system (转公办, which also makes it inclusive) — change the shares, never coverage or seats.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from forecast.errors import format_rows, raise_if_problems
from layout.errors import InfeasibleError, LayoutError, Problem
from layout.milp import solve_milp

__all__ = [
    "CLASS_SEATS",
    "SITE_KINDS",
    "ExistingKindergartens",
    "CandidateSites",
    "KindergartenCoverage",
    "KindergartenUse",
    "KindergartenPlan",
    "KindergartenYears",
    "PLAN_TARGETS",
    "PreschoolTargetCheck",
    "count_kindergarten_seats",
    "split_kindergarten_classes",
    "compute_kindergarten_demand",
    "compute_walking_radius_m",
    "solve_kindergarten_coverage",
    "allocate_kindergarten_enrollment",
    "check_preschool_targets",
    "plan_kindergartens",
    "project_kindergarten_years",
    "convert_for_public_share",
]

#: children per class: 小班 (age 3), 中班 (age 4), 大班 (age 5)
CLASS_SEATS = (25, 30, 35)
#: kinds of candidate sites for a new kindergarten
SITE_KINDS = ("kindergarten_complex", "closed_school")
#: plan targets for 2025 (专栏2): gross enrollment rate, inclusive share, public share
PLAN_TARGETS = {"ger_min": 0.98, "inclusive_share_min": 0.98, "public_share_min": 0.65}
OBJECTIVES = ("max_coverage", "min_sites")


# --------------------------------------------------------------------------------------
# small validation helpers
# --------------------------------------------------------------------------------------
def _rows_where(mask: np.ndarray, labels: Sequence | None = None) -> str:
    idx = np.flatnonzero(np.asarray(mask).reshape(np.asarray(mask).shape[0], -1).any(axis=1))
    if labels is not None:
        labels = list(labels)
        return format_rows([labels[i] for i in idx])
    return format_rows(idx.tolist())


def _as_float(values, name: str, problems: list, shape: tuple | None = None) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        problems.append(Problem(name, "values are not numbers", "pass numeric values"))
        return np.zeros(shape or (0,))
    if shape is not None and arr.shape != shape:
        problems.append(Problem(name, f"has shape {arr.shape}, expected {shape}",
                                "pass one value per row in the documented order"))
        return np.zeros(shape)
    return arr


def _check_nonneg(arr: np.ndarray, name: str, problems: list, labels=None, what="values") -> None:
    bad = ~np.isfinite(arr) | (arr < 0)
    if arr.size and bad.any():
        problems.append(Problem(name, f"{int(bad.sum())} {what} are negative or missing",
                                "give counts >= 0 (use 0, not NaN, for none)", _rows_where(bad, labels)))


def _as_bool(values, name: str, problems: list, n: int, default: bool) -> np.ndarray:
    if values is None:
        return np.full(n, default)
    arr = np.asarray(values)
    if arr.shape != (n,):
        problems.append(Problem(name, f"has shape {arr.shape}, expected ({n},)", "pass one flag per row"))
        return np.full(n, default)
    if arr.dtype != bool:
        try:
            ok = np.isin(arr.astype(np.float64), (0.0, 1.0))
        except (TypeError, ValueError):
            ok = np.zeros(n, dtype=bool)
        if not ok.all():
            problems.append(Problem(name, "flags must be true/false (or 1/0)", "fix the flag values",
                                    _rows_where(~ok)))
            return np.full(n, default)
        arr = arr.astype(np.float64) > 0.5
    return arr


def _as_labels(values, name: str, problems: list, n: int) -> np.ndarray:
    """(n,) township labels as strings; a wrong shape is a problem."""
    arr = np.asarray(values)
    if arr.shape != (n,):
        problems.append(Problem(name, f"has shape {arr.shape}, expected ({n},)", "pass one township code per row"))
        return np.zeros(n, dtype=str)
    return arr.astype(str)


def _as_radius(values, name: str, problems: list, n: int, labels=None) -> np.ndarray:
    """(n,) walking radii in metres, each > 0."""
    radius = _as_float(values, name, problems, (n,))
    bad = ~np.isfinite(radius) | (radius <= 0)
    if bad.any():
        problems.append(Problem(name, f"{int(bad.sum())} walking radii are <= 0 or missing",
                                "give each unit a radius > 0 metres (compute_walking_radius_m)",
                                _rows_where(bad, labels)))
    return radius


def _check_fraction(value, name: str, problems: list) -> float | None:
    if value is None:
        return None
    v = float(value)
    if not (np.isfinite(v) and 0.0 < v <= 1.0):
        problems.append(Problem(name, f"is {value!r}, must be a fraction in (0, 1]",
                                "write shares as fractions, e.g. 0.98 for 98 %"))
        return None
    return v


# --------------------------------------------------------------------------------------
# seats, demand, radius
# --------------------------------------------------------------------------------------
def count_kindergarten_seats(classes_small, classes_middle, classes_large, seats_per_class=CLASS_SEATS) -> np.ndarray:
    """Seats of each kindergarten from its classes by type.

    ``classes_small/middle/large``: arrays of the same shape (classes of 小班/中班/大班, counts ≥ 0).
    ``seats_per_class``: children per class of each type (default 25, 30, 35).
    Returns ``25·small + 30·middle + 35·large`` (same shape, float children).
    """
    problems: list[Problem] = []
    arrays = []
    for name, v in (("classes_small", classes_small), ("classes_middle", classes_middle),
                    ("classes_large", classes_large)):
        a = _as_float(v, name, problems)
        _check_nonneg(a, name, problems, what="class counts")
        arrays.append(a)
    if len({a.shape for a in arrays}) > 1:
        problems.append(Problem("classes_small/middle/large", f"shapes differ: {[a.shape for a in arrays]}",
                                "pass one value per kindergarten in each array"))
    raise_if_problems(problems, "cannot count kindergarten seats", LayoutError)
    caps = np.asarray(seats_per_class, dtype=np.float64)
    return caps[0] * arrays[0] + caps[1] * arrays[1] + caps[2] * arrays[2]


def split_kindergarten_classes(classes_total) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split a kindergarten's class count into 小/中/大班 for a balanced three-year intake.

    ``classes_total``: integer array (any shape) ≥ 0. Each type gets ``total // 3`` classes; a
    remainder goes first to 小班, then to 中班 (so seats are never over-stated). Returns three
    integer arrays of the input's shape that sum to ``classes_total``.
    """
    problems: list[Problem] = []
    total = _as_float(classes_total, "classes_total", problems)
    _check_nonneg(total, "classes_total", problems, what="class counts")
    if total.size and np.isfinite(total).all() and np.any(total != np.round(total)):
        problems.append(Problem("classes_total", "class counts are not whole numbers", "round the class counts",
                                _rows_where(total != np.round(total))))
    raise_if_problems(problems, "cannot split kindergarten classes", LayoutError)
    t = total.astype(np.int64)
    base, rem = np.divmod(t, 3)
    return base + (rem >= 1), base + (rem >= 2), base


def compute_kindergarten_demand(children_3to5, enrollment_rate) -> np.ndarray:
    """Children wanting a kindergarten place: ``children_3to5 × enrollment_rate``.

    ``children_3to5``: array of any shape, e.g. (units,), (units, years) or (units, years,
    quantiles): children aged 3–5 on 1 Sep of the school year. ``enrollment_rate``: scalar or an
    array broadcastable to it (target gross enrollment rate, e.g. 0.98; in (0, 1.5]).
    """
    problems: list[Problem] = []
    children = _as_float(children_3to5, "children_3to5", problems)
    _check_nonneg(children, "children_3to5", problems, what="child counts")
    rate = np.asarray(enrollment_rate, dtype=np.float64)
    if not np.all(np.isfinite(rate) & (rate > 0) & (rate <= 1.5)):
        problems.append(Problem("enrollment_rate", f"must be in (0, 1.5], got {enrollment_rate!r}",
                                "give the target gross enrollment rate as a fraction, e.g. 0.98"))
    raise_if_problems(problems, "cannot compute kindergarten demand", LayoutError)
    try:
        return children * rate
    except ValueError as exc:  # shapes do not broadcast
        raise LayoutError("cannot compute kindergarten demand", [Problem(
            "enrollment_rate", f"shape {rate.shape} does not broadcast to children_3to5 {children.shape}: {exc}",
            "pass a scalar or one rate per trailing dimension")]) from None


def compute_walking_radius_m(urban, rural_radius_m: float = 2000.0, urban_radius_m: float = 300.0) -> np.ndarray:
    """Walking radius (metres) of each unit: ``urban_radius_m`` (GB 50180-2018 kindergarten
    service radius, 300 m) for urban units, ``rural_radius_m`` for rural ones.

    The rural radius is a planning parameter (no national standard; rural kindergartens sit in
    township seats and villages, children are walked or driven); 2000 m is only a default.
    ``urban``: bool array (units,). Returns float array (units,).
    """
    problems: list[Problem] = []
    for name, r in (("urban_radius_m", urban_radius_m), ("rural_radius_m", rural_radius_m)):
        if not (np.isfinite(r) and r > 0):
            problems.append(Problem(name, f"is {r!r}; a radius must be > 0 metres",
                                    "give the walking radius in metres, e.g. 300"))
    flags = np.asarray(urban)
    if flags.ndim != 1:
        problems.append(Problem("urban", f"has shape {flags.shape}, expected (units,)", "pass one flag per unit"))
    u = _as_bool(flags.reshape(-1), "urban", problems, flags.size, True)
    raise_if_problems(problems, "cannot compute walking radii", LayoutError)
    return np.where(u, float(urban_radius_m), float(rural_radius_m))


# --------------------------------------------------------------------------------------
# inputs of the coverage model
# --------------------------------------------------------------------------------------
@dataclass
class _FacilityRows:
    """Rows of facilities: ``township`` (n,) labels and ``seats`` (n,) children."""

    township: np.ndarray
    seats: np.ndarray

    @property
    def size(self) -> int:
        return int(np.asarray(self.seats).shape[0]) if np.ndim(self.seats) else 0


@dataclass
class ExistingKindergartens(_FacilityRows):
    """Existing kindergartens (K rows); they are always open.

    ``township``: (K,) township labels; ``seats``: (K,) children (see :func:`count_kindergarten_seats`);
    ``public``, ``inclusive``: (K,) bool (a public kindergarten counts as inclusive whatever its flag);
    ``cost_to_inclusive_cny`` / ``cost_to_public_cny``: (K,) one-off cost of recognising a private
    kindergarten as inclusive / buying it into the public system; NaN (or None for all) = not possible.
    Costs given for kindergartens that are already inclusive / public are ignored.
    ``ids``: optional (K,) labels used in error messages and tables.
    """

    public: np.ndarray
    inclusive: np.ndarray
    cost_to_inclusive_cny: np.ndarray | None = None
    cost_to_public_cny: np.ndarray | None = None
    ids: np.ndarray | None = None


@dataclass
class CandidateSites(_FacilityRows):
    """Candidate sites for a new kindergarten (S rows).

    ``kind``: (S,) one of :data:`SITE_KINDS` — ``"kindergarten_complex"`` (land reserved in a
    residential complex, 小区配套园) or ``"closed_school"`` (building of a primary school closed by
    the consolidation; the caller gives its seats). ``township``: (S,); ``seats``: (S,) children;
    ``public`` / ``inclusive``: (S,) bool, default True (new 配套园 are run as public or inclusive);
    ``cost_cny``: (S,) optional opening cost (a tie-breaker after coverage and enrollment);
    ``must_open``: (S,) bool, sites already decided. ``ids``: optional labels.
    """

    kind: np.ndarray
    public: np.ndarray | None = None
    inclusive: np.ndarray | None = None
    cost_cny: np.ndarray | None = None
    must_open: np.ndarray | None = None
    ids: np.ndarray | None = None


@dataclass
class KindergartenCoverage:
    """Result of :func:`solve_kindergarten_coverage` (children are fractional counts).

    Shapes: I units, K existing kindergartens, S candidate sites. Facility index ``j`` runs over
    existing kindergartens ``0..K-1`` then candidates ``K..K+S-1``.
    """

    site_open: np.ndarray            # (S,) bool: new site chosen
    covered_existing: np.ndarray     # (K,) children served within walking distance
    covered_candidate: np.ndarray    # (S,)
    enrolled_existing: np.ndarray    # (K,) covered + township-pool children
    enrolled_candidate: np.ndarray   # (S,)
    demand_by_unit: np.ndarray       # (I,) children × enrollment rate
    covered_by_unit: np.ndarray      # (I,) children of the unit served within walking distance
    arc_unit: np.ndarray             # (P,) walking assignments: unit index
    arc_facility: np.ndarray         # (P,) facility index j
    arc_children: np.ndarray         # (P,) children assigned (> 0)
    convert_to_inclusive: np.ndarray  # (K,) bool
    convert_to_public: np.ndarray    # (K,) bool
    children: float                  # Σ children aged 3–5
    demand: float                    # Σ demand
    covered: float                   # Σ covered, with the new sites
    enrolled: float                  # Σ enrolled, with the new sites
    enrolled_inclusive: float
    enrolled_public: float
    covered_without_new: float       # Σ covered by existing kindergartens alone
    enrolled_without_new: float
    conversion_cost_cny: float
    site_cost_cny: float
    objective: str
    status: str
    seconds: float
    gap: float
    stage_values: dict = field(default_factory=dict)

    @property
    def n_new_sites(self) -> int:
        return int(self.site_open.sum())

    @property
    def coverage_rate(self) -> float:
        return self.covered / self.demand if self.demand > 0 else float("nan")

    @property
    def coverage_rate_without_new(self) -> float:
        return self.covered_without_new / self.demand if self.demand > 0 else float("nan")

    @property
    def gross_enrollment_rate(self) -> float:
        return self.enrolled / self.children if self.children > 0 else float("nan")

    @property
    def inclusive_share(self) -> float:
        return self.enrolled_inclusive / self.enrolled if self.enrolled > 0 else float("nan")

    @property
    def public_share(self) -> float:
        return self.enrolled_public / self.enrolled if self.enrolled > 0 else float("nan")


# --------------------------------------------------------------------------------------
# validation of the coverage inputs
# --------------------------------------------------------------------------------------
def _validate_coverage_inputs(children_3to5, enrollment_rate, unit_township, radius_m,
                              distance_existing_m, distance_candidate_m, existing, candidates,
                              n_new_sites, objective, targets, unit_ids):
    problems: list[Problem] = []
    children = _as_float(children_3to5, "children_3to5", problems)
    if children.ndim != 1:
        problems.append(Problem("children_3to5", f"has shape {children.shape}, expected (units,)",
                                "pass one year (and one quantile) at a time"))
        children = np.zeros(0)
    n_units = children.shape[0]
    labels = list(unit_ids) if unit_ids is not None and len(unit_ids) == n_units else None
    _check_nonneg(children, "children_3to5", problems, labels, what="child counts")
    rate = np.asarray(enrollment_rate, dtype=np.float64)
    if rate.shape not in ((), (n_units,)) or not np.all(np.isfinite(rate) & (rate > 0) & (rate <= 1.5)):
        problems.append(Problem("enrollment_rate", f"must be a scalar (or one per unit) in (0, 1.5], got {enrollment_rate!r}",
                                "give the target gross enrollment rate as a fraction, e.g. 0.98"))
        rate = np.float64(1.0)
    radius = _as_radius(radius_m, "radius_m", problems, n_units, labels)
    town_u = _as_labels(unit_township, "unit_township", problems, n_units)

    k, s = existing.size, candidates.size
    ex = {}
    ex["seats"] = _as_float(existing.seats, "existing.seats", problems, (k,))
    _check_nonneg(ex["seats"], "existing.seats", problems, existing.ids, what="seat counts")
    ex["township"] = _as_labels(existing.township, "existing.township", problems, k)
    ex["public"] = _as_bool(existing.public, "existing.public", problems, k, False)
    ex["inclusive"] = _as_bool(existing.inclusive, "existing.inclusive", problems, k, False) | ex["public"]
    for name in ("cost_to_inclusive_cny", "cost_to_public_cny"):
        v = getattr(existing, name)
        arr = np.full(k, np.nan) if v is None else _as_float(v, f"existing.{name}", problems, (k,))
        neg = np.isfinite(arr) & (arr < 0)
        if neg.any():
            problems.append(Problem(f"existing.{name}", "costs are negative", "give costs >= 0 (NaN = not possible)",
                                    _rows_where(neg, existing.ids)))
        ex[name] = arr

    ca = {}
    ca["seats"] = _as_float(candidates.seats, "candidates.seats", problems, (s,))
    _check_nonneg(ca["seats"], "candidates.seats", problems, candidates.ids, what="seat counts")
    ca["township"] = _as_labels(candidates.township, "candidates.township", problems, s)
    kind = np.asarray(candidates.kind).astype(str) if np.ndim(candidates.kind) else np.zeros(0, dtype=str)
    if kind.shape != (s,):
        problems.append(Problem("candidates.kind", f"has shape {kind.shape}, expected ({s},)", "pass one kind per site"))
    else:
        unknown = ~np.isin(kind, SITE_KINDS)
        if unknown.any():
            problems.append(Problem("candidates.kind", f"unknown site kinds {sorted(set(kind[unknown]))}",
                                    f"use one of {list(SITE_KINDS)}", _rows_where(unknown, candidates.ids)))
    ca["public"] = _as_bool(candidates.public, "candidates.public", problems, s, True)
    ca["inclusive"] = _as_bool(candidates.inclusive, "candidates.inclusive", problems, s, True) | ca["public"]
    ca["must_open"] = _as_bool(candidates.must_open, "candidates.must_open", problems, s, False)
    ca["cost_cny"] = (np.zeros(s) if candidates.cost_cny is None
                      else _as_float(candidates.cost_cny, "candidates.cost_cny", problems, (s,)))
    _check_nonneg(ca["cost_cny"], "candidates.cost_cny", problems, candidates.ids, what="costs")

    dist = []
    for name, d, m in (("distance_existing_m", distance_existing_m, k), ("distance_candidate_m", distance_candidate_m, s)):
        arr = _as_float(d, name, problems, (n_units, m)) if d is not None or m else np.zeros((n_units, 0))
        bad = np.isnan(arr) | (arr < 0)  # +inf = unreachable is allowed
        if bad.any():
            problems.append(Problem(name, f"{int(bad.sum())} distances are negative or missing",
                                    "use np.inf for unreachable pairs, never NaN", _rows_where(bad, labels)))
        dist.append(arr)

    if objective not in OBJECTIVES:
        problems.append(Problem("objective", f"is {objective!r}", f"use one of {list(OBJECTIVES)}"))
    if not isinstance(n_new_sites, (int, np.integer)) or isinstance(n_new_sites, bool) or n_new_sites < 0:
        problems.append(Problem("n_new_sites", f"is {n_new_sites!r}; must be a whole number >= 0",
                                "give the number of new kindergartens, e.g. 16"))
    elif n_new_sites > s:
        problems.append(Problem("n_new_sites", f"is {n_new_sites} but only {s} candidate sites were given",
                                f"lower n_new_sites to at most {s}, or add candidate sites (residential-complex "
                                "land, closed school buildings)"))
    elif int(ca["must_open"].sum()) > n_new_sites:
        problems.append(Problem("candidates.must_open", f"{int(ca['must_open'].sum())} sites must open but "
                                f"n_new_sites is {n_new_sites}", "raise n_new_sites or clear must_open flags",
                                _rows_where(ca["must_open"], candidates.ids)))
    tg = {key: _check_fraction(targets.get(key), key, problems)
          for key in ("coverage_min", "ger_min", "inclusive_share_min", "public_share_min")}
    unknown_t = set(targets) - set(tg)
    if unknown_t:
        problems.append(Problem("targets", f"unknown keys {sorted(unknown_t)}", f"use {sorted(tg)}"))
    if objective == "min_sites" and all(v is None for v in tg.values()):
        problems.append(Problem("targets", "objective='min_sites' needs at least one target",
                                "give coverage_min, ger_min, inclusive_share_min or public_share_min"))
    raise_if_problems(problems, "invalid input to the kindergarten coverage model", LayoutError)
    return children, rate, radius, town_u, ex, ca, dist[0], dist[1], tg


# --------------------------------------------------------------------------------------
# the coverage MILP
# --------------------------------------------------------------------------------------
@dataclass
class _Model:
    A: sp.csr_matrix
    row_lower: np.ndarray
    row_upper: np.ndarray
    col_lower: np.ndarray
    col_upper: np.ndarray
    integrality: np.ndarray
    obj: dict            # name -> cost vector (minimise)
    cols: dict           # name -> slice
    arc_unit: np.ndarray
    arc_fac: np.ndarray
    ME: sp.csr_matrix    # (J, ncol) enrollment at each facility
    inc_row: sp.csr_matrix
    pub_row: sp.csr_matrix
    conv_u: np.ndarray   # existing indices with a to-inclusive option
    conv_w: np.ndarray   # existing indices with a to-public option


def _walking_arcs(radius: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unit, facility) pairs with ``dist <= radius`` (boundary included)."""
    return np.nonzero(dist <= radius[:, None])


def _build_coverage_model(demand, children, radius, town_u, ex, ca, dist_ex, dist_ca,
                          n_new_sites, objective, tg) -> _Model:
    n_units, k, s = demand.shape[0], ex["seats"].shape[0], ca["seats"].shape[0]
    n_fac = k + s
    _, town_idx = np.unique(np.concatenate([town_u.astype(str), ex["township"].astype(str),
                                            ca["township"].astype(str)]), return_inverse=True)
    n_town = int(town_idx.max()) + 1 if town_idx.size else 0
    town_unit, town_fac = town_idx[:n_units], town_idx[n_units:]
    dist = np.hstack([dist_ex, dist_ca])
    arc_unit, arc_fac = _walking_arcs(radius, dist)
    keep = demand[arc_unit] > 0
    arc_unit, arc_fac = arc_unit[keep], arc_fac[keep]
    n_arc = arc_unit.size

    private = ~ex["public"]
    conv_u = np.flatnonzero(private & ~ex["inclusive"] & np.isfinite(ex["cost_to_inclusive_cny"]))
    conv_w = np.flatnonzero(private & np.isfinite(ex["cost_to_public_cny"]))
    conv_h = np.union1d(conv_u, conv_w[~ex["inclusive"][conv_w]])
    soft = objective == "max_coverage"
    n_sig = 2 if soft else 0

    sizes = {"x": s, "a": n_arc, "n": n_fac, "u": conv_u.size, "w": conv_w.size, "h": conv_h.size,
             "g": conv_w.size, "sig": n_sig}
    cols, start = {}, 0
    for name, size in sizes.items():
        cols[name] = slice(start, start + size)
        start += size
    ncol = start

    def block(rows, col_idx, vals, n_rows):
        return sp.csr_matrix((np.asarray(vals, dtype=np.float64),
                              (np.asarray(rows, dtype=np.int64), np.asarray(col_idx, dtype=np.int64))),
                             shape=(n_rows, ncol))

    a0, n0, x0 = cols["a"].start, cols["n"].start, cols["x"].start
    arc_cols = a0 + np.arange(n_arc)
    # enrollment at each facility: E_j = Σ_{arcs to j} a + n_j
    ME = block(np.concatenate([arc_fac, np.arange(n_fac)]), np.concatenate([arc_cols, n0 + np.arange(n_fac)]),
               np.ones(n_arc + n_fac), n_fac)
    blocks, lo, hi = [], [], []

    def add(mat, lower, upper):
        blocks.append(sp.csr_matrix(mat))
        lo.append(np.broadcast_to(np.asarray(lower, dtype=np.float64), (mat.shape[0],)))
        hi.append(np.broadcast_to(np.asarray(upper, dtype=np.float64), (mat.shape[0],)))

    # 1. a unit's covered children <= its demand
    add(block(arc_unit, arc_cols, np.ones(n_arc), n_units), -np.inf, demand)
    # 2. a township's covered + pool-enrolled children <= its demand
    demand_town = np.bincount(town_unit, weights=demand, minlength=n_town)
    add(block(np.concatenate([town_unit[arc_unit], town_fac]), np.concatenate([arc_cols, n0 + np.arange(n_fac)]),
              np.ones(n_arc + n_fac), n_town), -np.inf, demand_town)
    # 3. capacity: existing E_j <= seats; candidate E_j - seats_j x_j <= 0
    cap_new = block(k + np.arange(s), x0 + np.arange(s), -ca["seats"], n_fac)
    add(ME + cap_new, -np.inf, np.concatenate([ex["seats"], np.zeros(s)]))
    # 3b. strong linking (tightens the LP relaxation): a_ij <= d_i x_j on arcs to candidates
    cand_arc = np.flatnonzero(arc_fac >= k)
    if cand_arc.size:
        m = cand_arc.size
        add(block(np.r_[np.arange(m), np.arange(m)], np.r_[arc_cols[cand_arc], x0 + arc_fac[cand_arc] - k],
                  np.r_[np.ones(m), -demand[arc_unit[cand_arc]]], m), -np.inf, 0.0)
    # 4. number of new sites
    if s:
        site_row = block(np.zeros(s, dtype=int), x0 + np.arange(s), np.ones(s), 1)
        add(site_row, n_new_sites if soft else 0, n_new_sites)
    # 5. conversions: at most one option per kindergarten
    u_of = {int(kk): cols["u"].start + i for i, kk in enumerate(conv_u)}
    w_of = {int(kk): cols["w"].start + i for i, kk in enumerate(conv_w)}
    both = [kk for kk in u_of if kk in w_of]
    if both:
        add(block(np.repeat(np.arange(len(both)), 2), [c for kk in both for c in (u_of[kk], w_of[kk])],
                  np.ones(2 * len(both)), len(both)), -np.inf, 1.0)
    # 6. inclusive-counted enrollment h_k <= E_k and h_k <= seats_k (u_k + w_k)
    if conv_h.size:
        h_cols = cols["h"].start + np.arange(conv_h.size)
        add(block(np.arange(conv_h.size), h_cols, np.ones(conv_h.size), conv_h.size) - ME[conv_h], -np.inf, 0.0)
        r, c, v = list(range(conv_h.size)), list(h_cols), [1.0] * conv_h.size
        for i, kk in enumerate(conv_h):
            for col in (u_of.get(int(kk)), w_of.get(int(kk))):
                if col is not None:
                    r.append(i), c.append(col), v.append(-ex["seats"][kk])
        add(block(r, c, v, conv_h.size), -np.inf, 0.0)
    # 7. public-counted enrollment g_k <= E_k and g_k <= seats_k w_k
    if conv_w.size:
        g_cols = cols["g"].start + np.arange(conv_w.size)
        add(block(np.arange(conv_w.size), g_cols, np.ones(conv_w.size), conv_w.size) - ME[conv_w], -np.inf, 0.0)
        m = conv_w.size
        add(block(np.concatenate([np.arange(m), np.arange(m)]),
                  np.concatenate([g_cols, cols["w"].start + np.arange(m)]),
                  np.concatenate([np.ones(m), -ex["seats"][conv_w]]), m), -np.inf, 0.0)
    # shares: INC = Σ_{inclusive j} E_j + Σ h ; PUB = Σ_{public j} E_j + Σ g
    incl_fixed = np.concatenate([ex["inclusive"], ca["inclusive"]]).astype(np.float64)
    pub_fixed = np.concatenate([ex["public"], ca["public"]]).astype(np.float64)
    ones_h = block(np.zeros(conv_h.size, dtype=int), cols["h"].start + np.arange(conv_h.size), np.ones(conv_h.size), 1)
    ones_g = block(np.zeros(conv_w.size, dtype=int), cols["g"].start + np.arange(conv_w.size), np.ones(conv_w.size), 1)
    inc_row = sp.csr_matrix(incl_fixed @ ME) + ones_h
    pub_row = sp.csr_matrix(pub_fixed @ ME) + ones_g
    tot_row = sp.csr_matrix(np.ones(n_fac) @ ME)
    cover_row = block(np.zeros(n_arc, dtype=int), arc_cols, np.ones(n_arc), 1)
    # 8. targets: soft shares in max_coverage (shortfall variables), hard in min_sites
    for i, (key, row) in enumerate((("inclusive_share_min", inc_row), ("public_share_min", pub_row))):
        tau = tg.get(key)
        if tau is None:
            continue
        if soft:
            sig = block([0], [cols["sig"].start + i], [1.0], 1)
            add(tau * tot_row - row - sig, -np.inf, 0.0)
        else:
            add(row - tau * tot_row, 0.0, np.inf)
    if not soft:
        if tg.get("coverage_min") is not None:
            add(cover_row, tg["coverage_min"] * demand.sum() - 1e-9, np.inf)
        if tg.get("ger_min") is not None:
            add(tot_row, tg["ger_min"] * children.sum() - 1e-9, np.inf)

    A = sp.vstack(blocks, format="csr")
    col_lower = np.zeros(ncol)
    col_upper = np.full(ncol, np.inf)
    col_upper[cols["x"]] = 1.0
    col_lower[cols["x"]] = ca["must_open"].astype(np.float64)
    col_upper[cols["u"]] = 1.0
    col_upper[cols["w"]] = 1.0
    integrality = np.zeros(ncol, dtype=np.int8)
    for name in ("x", "u", "w"):
        integrality[cols[name]] = 1

    def vec(pairs):
        c = np.zeros(ncol)
        for sl, v in pairs:
            c[sl] += v
        return c

    obj = {
        "sites": vec([(cols["x"], 1.0)]),
        "covered": -cover_row.toarray().ravel(),
        "enrolled": -tot_row.toarray().ravel(),
        "share_shortfall": vec([(cols["sig"], 1.0)]),
        "site_cost_cny": vec([(cols["x"], ca["cost_cny"])]),
        "conversion_cost_cny": vec([(cols["u"], ex["cost_to_inclusive_cny"][conv_u]),
                                    (cols["w"], ex["cost_to_public_cny"][conv_w])]),
    }
    return _Model(A, np.concatenate(lo), np.concatenate(hi), col_lower, col_upper, integrality, obj, cols,
                  arc_unit, arc_fac, ME, inc_row, pub_row, conv_u, conv_w)


@dataclass
class _StagedSolution:
    x: np.ndarray | None
    values: dict
    status: str
    seconds: float
    gap: float
    failed_stage: str | None


def _solve_stages(model: _Model, stages: Sequence[str], time_limit_s: float = 60.0,
                  fix_sites_after: str | None = None) -> _StagedSolution:
    """Lexicographic optimisation: each stage minimises its objective, then holds it (within a
    tolerance) while the next stages are optimised. After stage ``fix_sites_after`` the site
    columns are fixed at their values (later stages choose conversions and allocations only)."""
    col_lower, col_upper = model.col_lower.copy(), model.col_upper.copy()
    extra, extra_hi = [], []
    integrality = model.integrality if model.integrality.any() else None
    z, values, seconds, gap, status = None, {}, 0.0, 0.0, "Optimal"
    for name in stages:
        c = model.obj[name]
        A = sp.vstack([model.A] + extra, format="csr") if extra else model.A
        res = solve_milp(c, A, np.concatenate([model.row_lower, np.full(len(extra), -np.inf)]),
                         np.concatenate([model.row_upper, extra_hi]), col_lower, col_upper, integrality,
                         time_limit_s=time_limit_s)
        seconds += res.seconds
        if not res.has_solution:
            return _StagedSolution(None, values, res.status, seconds, gap, name)
        if not res.optimal:
            status = res.status
        gap = max(gap, res.gap if np.isfinite(res.gap) else 0.0)
        values[name] = float(c @ res.x)
        extra.append(sp.csr_matrix(c.reshape(1, -1)))
        # hold the stage's optimum with a relative tolerance too: 1e-9 relative on objectives of thousands of children
        # is below HiGHS's feasibility tolerance on that row and can make the next stage spuriously infeasible
        extra_hi.append(values[name] + 1e-7 + 1e-8 * abs(values[name]))
        z = res.x
        if name == fix_sites_after:
            col_lower[model.cols["x"]] = col_upper[model.cols["x"]] = np.round(z[model.cols["x"]])
    return _StagedSolution(z, values, status, seconds, gap, None)


def _diagnose_infeasible(build_args, tg, ex, ca, town_u, demand, n_new_sites, time_limit_s):
    """Which targets cannot be reached even alone, and which townships lack seats."""
    problems, diagnosis = [], {"targets": {}}
    for key, value in tg.items():
        if value is None:
            continue
        alone = {k2: (value if k2 == key else None) for k2 in tg}
        model = _build_coverage_model(*build_args, n_new_sites, "min_sites", alone)
        sol = _solve_stages(model, ["sites"], time_limit_s=time_limit_s)
        diagnosis["targets"][key] = sol.x is not None
        if sol.x is None:
            problems.append(Problem(key, f"target {value:.3f} cannot be reached even alone with up to "
                                    f"{n_new_sites} new sites and every allowed conversion",
                                    "lower the target, allow more new sites (n_new_sites), add candidate sites "
                                    "or conversion options"))
    # best achievable coverage / enrollment with every candidate open
    full = _build_coverage_model(*build_args, ca["seats"].shape[0], "max_coverage", {k: None for k in tg})
    best = _solve_stages(full, ["covered", "enrolled"], time_limit_s=time_limit_s)
    if best.x is not None:
        diagnosis["max_coverage_rate_all_sites"] = -best.values["covered"] / max(demand.sum(), 1e-12)
        diagnosis["max_enrolled_all_sites"] = -best.values["enrolled"]
    towns = np.unique(np.concatenate([town_u.astype(str), ex["township"].astype(str), ca["township"].astype(str)]))
    seats_t = pd.Series(np.concatenate([ex["seats"], ca["seats"]]),
                        index=np.concatenate([ex["township"].astype(str), ca["township"].astype(str)])
                        ).groupby(level=0).sum().reindex(towns, fill_value=0.0)
    demand_t = pd.Series(demand, index=town_u.astype(str)).groupby(level=0).sum().reindex(towns, fill_value=0.0)
    short = (demand_t - seats_t)
    short = short[short > 1e-9].sort_values(ascending=False)
    diagnosis["township_seats_short_all_sites"] = short.to_dict()
    if len(short):
        problems.append(Problem("townships", f"{len(short)} townships lack seats even with every candidate open "
                                f"({short.sum():.0f} children short)",
                                "add candidate sites or classes there", format_rows(
                                    [f"{t}: {v:.0f}" for t, v in short.items()])))
    return problems, diagnosis


def solve_kindergarten_coverage(
    children_3to5,
    unit_township,
    radius_m,
    distance_existing_m,
    distance_candidate_m,
    existing: ExistingKindergartens,
    candidates: CandidateSites,
    *,
    enrollment_rate: float = 0.98,
    n_new_sites: int = 16,
    objective: str = "max_coverage",
    targets: dict | None = None,
    unit_ids: Sequence | None = None,
    time_limit_s: float = 60.0,
) -> KindergartenCoverage:
    """Choose new kindergarten sites and conversions (capacitated maximal covering, HiGHS).

    Arrays (I units, K existing kindergartens, S candidate sites):

    * ``children_3to5`` (I,): children aged 3–5 on 1 Sep of the planning year (one year, one
      quantile); demand = ``children_3to5 × enrollment_rate``.
    * ``unit_township`` (I,): township label of each unit; ``radius_m`` (I,): walking radius (m).
    * ``distance_existing_m`` (I, K), ``distance_candidate_m`` (I, S): metres (``np.inf`` =
      unreachable, e.g. across a river without a bridge).
    * ``existing``: :class:`ExistingKindergartens`; ``candidates``: :class:`CandidateSites`.

    Variables: ``x_s`` (open site, binary), ``a_ij`` ≥ 0 children of unit *i* served by *j* within
    walking distance, ``n_j`` ≥ 0 children of *j*'s township enrolled at *j* beyond walking
    distance, conversion binaries. Constraints: Σ_j a_ij ≤ d_i; township: Σ a + Σ n ≤ township
    demand; seats: Σ_i a_ij + n_j ≤ seats_j (× x_j for a candidate).

    Lexicographic stages, each held (to 1e-7 children) while the next is optimised:
    ``objective="max_coverage"``: exactly ``n_new_sites`` new sites; maximise covered children,
    then enrolled children, then (when ``candidates.cost_cny`` is given) minimise the sites'
    cost; the sites are then fixed, and conversions (with the township-pool allocation) minimise
    the shortfall from the share targets (``targets["inclusive_share_min"]``,
    ``["public_share_min"]``, soft), then the conversion cost. ``objective="min_sites"``: minimise
    the number of new sites (at most ``n_new_sites``) subject to hard targets ``coverage_min``
    (covered / demand), ``ger_min`` (enrolled / children), ``inclusive_share_min``,
    ``public_share_min`` (enrolled shares); then maximise coverage, enrollment, minimise site cost;
    sites fixed, minimise conversion cost. Unreachable targets raise
    :class:`InfeasibleError` whose ``diagnosis`` names the targets and the townships short of seats.

    The result also holds coverage and enrollment of the existing kindergartens alone
    (``covered_without_new``), solved as an LP with every new site closed.
    """
    targets = dict(targets or {})
    children, rate, radius, town_u, ex, ca, dist_ex, dist_ca, tg = _validate_coverage_inputs(
        children_3to5, enrollment_rate, unit_township, radius_m, distance_existing_m, distance_candidate_m,
        existing, candidates, n_new_sites, objective, targets, unit_ids)
    demand = children * rate
    build_args = (demand, children, radius, town_u, ex, ca, dist_ex, dist_ca)
    model = _build_coverage_model(*build_args, n_new_sites, objective, tg)
    stages = ["covered", "enrolled"] if objective == "max_coverage" else ["sites", "covered", "enrolled"]
    if np.any(ca["cost_cny"] > 0):
        stages.append("site_cost_cny")
    fix_after = stages[-1]
    stages += (["share_shortfall"] if objective == "max_coverage" else []) + ["conversion_cost_cny"]
    sol = _solve_stages(model, stages, time_limit_s=time_limit_s, fix_sites_after=fix_after)
    if sol.x is None:
        if objective == "min_sites" and sol.failed_stage == "sites" and sol.status == "Infeasible":
            problems, diagnosis = _diagnose_infeasible(build_args, tg, ex, ca, town_u, demand, n_new_sites,
                                                       time_limit_s)
            raise InfeasibleError(f"the kindergarten targets cannot be reached with at most {n_new_sites} new sites",
                                  problems, diagnosis=diagnosis)
        raise InfeasibleError(f"the kindergarten coverage model found no solution ({sol.status} in stage "
                              f"{sol.failed_stage!r})", [Problem("time_limit_s", f"HiGHS status {sol.status}",
                                                                 "raise time_limit_s or simplify the instance")])
    # existing kindergartens alone: every new site closed, conversions irrelevant to coverage
    base_model = _build_coverage_model(*build_args, 0, "max_coverage", {key: None for key in tg})
    base_model.col_lower[base_model.cols["x"]] = 0.0
    base_model.col_upper[base_model.cols["x"]] = 0.0
    base = _solve_stages(base_model, ["covered", "enrolled"], time_limit_s=time_limit_s)

    z = np.where(np.abs(sol.x) < 1e-9, 0.0, sol.x)
    cols = model.cols
    k, s = ex["seats"].shape[0], ca["seats"].shape[0]
    a = z[cols["a"]]
    enrolled_fac = model.ME @ z
    covered_fac = np.bincount(model.arc_fac, weights=a, minlength=k + s)
    site_open = z[cols["x"]] > 0.5
    to_inc = np.zeros(k, dtype=bool)
    to_inc[model.conv_u] = z[cols["u"]] > 0.5
    to_pub = np.zeros(k, dtype=bool)
    to_pub[model.conv_w] = z[cols["w"]] > 0.5
    # shares evaluated from the decisions (not from the linearised h/g columns)
    inc_flag = np.concatenate([ex["inclusive"] | to_inc | to_pub, ca["inclusive"]])
    pub_flag = np.concatenate([ex["public"] | to_pub, ca["public"]])
    used = a > 0
    conv_cost = float(np.nansum(ex["cost_to_inclusive_cny"][to_inc]) + np.nansum(ex["cost_to_public_cny"][to_pub]))
    return KindergartenCoverage(
        site_open=site_open,
        covered_existing=covered_fac[:k], covered_candidate=covered_fac[k:],
        enrolled_existing=enrolled_fac[:k], enrolled_candidate=enrolled_fac[k:],
        demand_by_unit=demand,
        covered_by_unit=np.bincount(model.arc_unit, weights=a, minlength=demand.shape[0]),
        arc_unit=model.arc_unit[used], arc_facility=model.arc_fac[used], arc_children=a[used],
        convert_to_inclusive=to_inc, convert_to_public=to_pub,
        children=float(children.sum()), demand=float(demand.sum()),
        covered=float(a.sum()), enrolled=float(enrolled_fac.sum()),
        enrolled_inclusive=float(enrolled_fac[inc_flag].sum()), enrolled_public=float(enrolled_fac[pub_flag].sum()),
        covered_without_new=0.0 - base.values.get("covered", np.nan),
        enrolled_without_new=0.0 - base.values.get("enrolled", np.nan),
        conversion_cost_cny=conv_cost, site_cost_cny=float(ca["cost_cny"][site_open].sum()),
        objective=objective, status=sol.status, seconds=sol.seconds + base.seconds, gap=sol.gap,
        stage_values=sol.values,
    )


# --------------------------------------------------------------------------------------
# per-year enrollment: children to kindergartens (capacitated nearest-seat transport LP)
# --------------------------------------------------------------------------------------
@dataclass
class KindergartenUse:
    """Result of :func:`allocate_kindergarten_enrollment`.

    Shapes: J kindergartens, I units, T townships, and ``...`` the trailing dimensions of the
    demand (e.g. years, or years × quantiles). Children are fractional counts.
    """

    enrolled: np.ndarray              # (J, ...) children enrolled at each kindergarten
    covered: np.ndarray               # (J, ...) of which living within walking distance
    seats: np.ndarray                 # (J, ...)
    unmet_by_unit: np.ndarray         # (I, ...) demand without a reachable seat
    townships: np.ndarray             # (T,) labels, sorted
    demand_by_township: np.ndarray    # (T, ...) by residence
    seats_by_township: np.ndarray     # (T, ...) by kindergarten location
    enrolled_by_township: np.ndarray  # (T, ...) by kindergarten location
    short_by_township: np.ndarray     # (T, ...) residents' demand without a seat
    idle_by_township: np.ndarray      # (T, ...) seats left empty
    seconds: float

    @property
    def utilisation(self) -> np.ndarray:
        """(J, ...) enrolled / seats (NaN where a kindergarten has no seats)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.seats > 0, self.enrolled / np.where(self.seats > 0, self.seats, 1.0), np.nan)

    def underused(self, threshold: float = 0.5) -> np.ndarray:
        """(J, ...) bool: kindergartens with seats running below ``threshold`` utilisation."""
        u = self.utilisation
        return np.isfinite(u) & (u < threshold)


def allocate_kindergarten_enrollment(
    demand_children,
    unit_township,
    radius_m,
    distance_m,
    seats,
    facility_township,
    *,
    unit_ids: Sequence | None = None,
    facility_ids: Sequence | None = None,
    time_limit_s: float = 60.0,
) -> KindergartenUse:
    """Enroll children at the nearest kindergarten with room, per year (and quantile).

    ``demand_children`` (I, ...): children wanting a place (e.g. (units, years) or (units, years,
    quantiles)); ``unit_township`` (I,); ``radius_m`` (I,) walking radius; ``distance_m`` (I, J)
    metres (``np.inf`` unreachable); ``seats`` (J,) or (J, ...) — a leading-aligned prefix of the
    demand's trailing shape broadcasts (e.g. (J, years) with demand (I, years, quantiles)); zero
    seats before a kindergarten opens; ``facility_township`` (J,).

    A unit's children may attend a kindergarten within their walking radius or anywhere reachable
    in their own township. For each trailing index an LP first maximises the children enrolled,
    then (holding that) minimises the total distance travelled — the capacitated nearest-seat
    allocation. Returns a :class:`KindergartenUse`.
    """
    problems: list[Problem] = []
    demand = _as_float(demand_children, "demand_children", problems)
    if demand.ndim < 1:
        problems.append(Problem("demand_children", "is a scalar", "pass an array (units, ...)"))
        demand = np.zeros((0,))
    n_units, extra = demand.shape[0], demand.shape[1:]
    _check_nonneg(demand, "demand_children", problems, unit_ids, what="child counts")
    radius = _as_radius(radius_m, "radius_m", problems, n_units, unit_ids)
    n_fac = np.shape(facility_township)[0] if np.ndim(facility_township) == 1 else 0
    town_f = _as_labels(facility_township, "facility_township", problems, n_fac)
    dist = _as_float(distance_m, "distance_m", problems, (n_units, n_fac))
    badd = np.isnan(dist) | (dist < 0)
    if badd.any():
        problems.append(Problem("distance_m", f"{int(badd.sum())} distances are negative or missing",
                                "use np.inf for unreachable pairs, never NaN", _rows_where(badd, unit_ids)))
    town_u = _as_labels(unit_township, "unit_township", problems, n_units)
    seat_arr = _as_float(seats, "seats", problems)
    if seat_arr.ndim < 1 or seat_arr.shape[0] != n_fac or seat_arr.shape[1:] != extra[:seat_arr.ndim - 1]:
        problems.append(Problem("seats", f"has shape {seat_arr.shape}; expected ({n_fac},) or ({n_fac}, ...) aligned "
                                f"with the demand's trailing shape {extra}", "pass one seat count per kindergarten"))
        seat_arr = np.zeros((n_fac,))
    _check_nonneg(seat_arr, "seats", problems, facility_ids, what="seat counts")
    raise_if_problems(problems, "invalid input to the kindergarten enrollment allocation", LayoutError)

    seat_full = np.broadcast_to(seat_arr.reshape(seat_arr.shape + (1,) * (demand.ndim - seat_arr.ndim)),
                                (n_fac,) + extra)
    n_col = int(np.prod(extra)) if extra else 1
    dem2 = demand.reshape(n_units, n_col)
    seat2 = np.ascontiguousarray(seat_full).reshape(n_fac, n_col)
    town_u_s, town_f_s = town_u.astype(str), town_f.astype(str)
    walk = dist <= radius[:, None]
    same = (town_u_s[:, None] == town_f_s[None, :]) & np.isfinite(dist)
    arc_u, arc_f = np.nonzero(walk | same)
    arc_walk = walk[arc_u, arc_f]
    arc_d = dist[arc_u, arc_f]
    n_arc = arc_u.size
    ar = np.arange(n_arc)
    A = sp.vstack([sp.csr_matrix((np.ones(n_arc), (arc_u, ar)), shape=(n_units, n_arc)),
                   sp.csr_matrix((np.ones(n_arc), (arc_f, ar)), shape=(n_fac, n_arc))], format="csr")
    enrolled = np.zeros((n_fac, n_col))
    covered = np.zeros((n_fac, n_col))
    unmet = dem2.copy()
    seconds = 0.0
    zeros, infs = np.zeros(n_arc), np.full(n_arc, np.inf)
    for c in range(n_col):
        if n_arc == 0:
            break
        lo = np.full(n_units + n_fac, -np.inf)
        hi = np.concatenate([dem2[:, c], seat2[:, c]])
        first = solve_milp(-np.ones(n_arc), A, lo, hi, zeros, infs, time_limit_s=time_limit_s)
        total = -first.objective
        A2 = sp.vstack([A, sp.csr_matrix(np.ones((1, n_arc)))], format="csr")
        second = solve_milp(arc_d, A2, np.concatenate([lo, [total - 1e-7 - 1e-9 * total]]),
                            np.concatenate([hi, [np.inf]]), zeros, infs, time_limit_s=time_limit_s)
        seconds += first.seconds + second.seconds
        if not second.has_solution:
            raise LayoutError("the kindergarten enrollment allocation failed", [Problem(
                "time_limit_s", f"HiGHS status {second.status} at trailing index {c}", "raise time_limit_s")])
        f = np.where(second.x > 1e-9, second.x, 0.0)
        enrolled[:, c] = np.bincount(arc_f, weights=f, minlength=n_fac)
        covered[:, c] = np.bincount(arc_f, weights=f * arc_walk, minlength=n_fac)
        unmet[:, c] = dem2[:, c] - np.bincount(arc_u, weights=f, minlength=n_units)
    unmet[unmet < 1e-6] = 0.0  # solver tolerance (1e-7 children per row), not a shortage
    towns, t_idx = np.unique(np.concatenate([town_u_s, town_f_s]), return_inverse=True)
    tu, tf = t_idx[:n_units], t_idx[n_units:]

    def by_town(idx, values):
        out = np.zeros((towns.size, n_col))
        np.add.at(out, idx, values)
        return out.reshape((towns.size,) + extra)

    seats_t = by_town(tf, seat2)
    enrolled_t = by_town(tf, enrolled)
    return KindergartenUse(
        enrolled=enrolled.reshape((n_fac,) + extra), covered=covered.reshape((n_fac,) + extra),
        seats=seat2.reshape((n_fac,) + extra), unmet_by_unit=unmet.reshape((n_units,) + extra),
        townships=towns, demand_by_township=by_town(tu, dem2), seats_by_township=seats_t,
        enrolled_by_township=enrolled_t, short_by_township=by_town(tu, unmet),
        idle_by_township=np.where(seats_t - enrolled_t < 1e-6, 0.0, seats_t - enrolled_t), seconds=seconds)


# --------------------------------------------------------------------------------------
# targets per year
# --------------------------------------------------------------------------------------
@dataclass
class PreschoolTargetCheck:
    """Plan indicators per year (arrays (Y, ...)) and whether each meets its target.

    ``due`` marks the years from ``target_year`` on, when the targets apply.
    """

    years: np.ndarray
    gross_enrollment_rate: np.ndarray
    inclusive_share: np.ndarray
    public_share: np.ndarray
    ger_met: np.ndarray
    inclusive_met: np.ndarray
    public_met: np.ndarray
    due: np.ndarray
    targets: dict

    @property
    def all_met_when_due(self) -> bool:
        due = np.broadcast_to(self.due.reshape(self.due.shape + (1,) * (self.ger_met.ndim - 1)), self.ger_met.shape)
        ok = self.ger_met & self.inclusive_met & self.public_met
        return bool(np.all(ok | ~due))

    def to_frame(self) -> pd.DataFrame:
        """Long table: year, level, area, variable, unit, value, target, met, due (one row per year and
        indicator; trailing dimensions, if any, become a ``draw`` column)."""
        frames = []
        for variable, value, met, key in (
            ("gross_enrollment_rate", self.gross_enrollment_rate, self.ger_met, "ger_min"),
            ("inclusive_share", self.inclusive_share, self.inclusive_met, "inclusive_share_min"),
            ("public_share", self.public_share, self.public_met, "public_share_min"),
        ):
            v = value.reshape(value.shape[0], -1)
            m = met.reshape(met.shape[0], -1)
            for d in range(v.shape[1]):
                frame = pd.DataFrame({"year": self.years, "level": "kindergarten", "area": "district",
                                      "variable": variable, "unit": "fraction", "value": v[:, d],
                                      "target": self.targets[key], "met": m[:, d], "due": self.due})
                if v.shape[1] > 1:
                    frame["draw"] = d
                frames.append(frame)
        return pd.concat(frames, ignore_index=True)


def check_preschool_targets(
    years,
    children_3to5,
    enrolled,
    enrolled_inclusive,
    enrolled_public,
    *,
    ger_min: float = PLAN_TARGETS["ger_min"],
    inclusive_share_min: float = PLAN_TARGETS["inclusive_share_min"],
    public_share_min: float = PLAN_TARGETS["public_share_min"],
    target_year: int = 2025,
) -> PreschoolTargetCheck:
    """Gross enrollment rate, inclusive share and public share per year against the plan.

    ``years`` (Y,) school years (starting 1 Sep); ``children_3to5`` (Y, ...) children aged 3–5 on
    1 Sep; ``enrolled`` (Y, ...) children enrolled in any kindergarten (in the district, wherever
    they live); ``enrolled_inclusive`` (Y, ...) of which in public or inclusive private
    kindergartens; ``enrolled_public`` (Y, ...) of which in public ones.

    GER = enrolled / children (may exceed 1); inclusive share = enrolled_inclusive / enrolled;
    public share = enrolled_public / enrolled. Plan 专栏2 (2025): GER ≥ 98 %, 普惠率 ≥ 98 %, 公办园在园
    幼儿占比 ≥ 65 % (the plan's "达…以上" read as ≥). A target is met when the indicator reaches it.
    """
    problems: list[Problem] = []
    yrs = np.asarray(years)
    n_years = yrs.shape[0] if yrs.ndim == 1 else 0
    if yrs.ndim != 1:
        problems.append(Problem("years", f"has shape {yrs.shape}, expected (years,)", "pass a 1-d array of years"))
    arrays = {}
    for name, v in (("children_3to5", children_3to5), ("enrolled", enrolled),
                    ("enrolled_inclusive", enrolled_inclusive), ("enrolled_public", enrolled_public)):
        a = _as_float(v, name, problems)
        if a.ndim < 1 or a.shape[0] != n_years:
            problems.append(Problem(name, f"has shape {a.shape}, expected ({n_years}, ...)", "pass one row per year"))
            a = np.zeros((n_years,))
        _check_nonneg(a, name, problems, list(yrs) if yrs.ndim == 1 else None)
        arrays[name] = a
    if len({a.shape for a in arrays.values()}) > 1:
        problems.append(Problem("children_3to5/enrolled/enrolled_inclusive/enrolled_public",
                                f"shapes differ: {[a.shape for a in arrays.values()]}", "pass arrays of one shape"))
    else:
        tol = 1e-6 * np.maximum(1.0, arrays["enrolled"])
        for name, small, big in (("enrolled_inclusive", "enrolled_inclusive", "enrolled"),
                                 ("enrolled_public", "enrolled_public", "enrolled_inclusive")):
            over = arrays[small] > arrays[big] + tol
            if over.any():
                problems.append(Problem(name, f"exceeds {big} (public kindergartens count as inclusive)",
                                        f"pass {small} <= {big}", _rows_where(over, list(yrs))))
    targets = {"ger_min": ger_min, "inclusive_share_min": inclusive_share_min, "public_share_min": public_share_min}
    for key, value in targets.items():
        if key == "ger_min":
            if not (np.isfinite(value) and 0 < value <= 1.5):
                problems.append(Problem(key, f"is {value!r}", "give the rate as a fraction, e.g. 0.98"))
        else:
            _check_fraction(value, key, problems)
    raise_if_problems(problems, "invalid input to the preschool target check", LayoutError)
    with np.errstate(invalid="ignore", divide="ignore"):
        ger = arrays["enrolled"] / arrays["children_3to5"]
        inc = arrays["enrolled_inclusive"] / arrays["enrolled"]
        pub = arrays["enrolled_public"] / arrays["enrolled"]
    eps = 1e-9
    return PreschoolTargetCheck(
        years=yrs, gross_enrollment_rate=ger, inclusive_share=inc, public_share=pub,
        ger_met=np.nan_to_num(ger, nan=0.0) >= ger_min - eps,
        inclusive_met=np.nan_to_num(inc, nan=0.0) >= inclusive_share_min - eps,
        public_met=np.nan_to_num(pub, nan=0.0) >= public_share_min - eps,
        due=yrs >= target_year, targets=targets)


# --------------------------------------------------------------------------------------
# DataFrame adapters
# --------------------------------------------------------------------------------------
_KG_CLASS_COLUMNS = ("classes_g-3", "classes_g-2", "classes_g-1")  # 小班, 中班, 大班


def _require_columns(frame: pd.DataFrame, name: str, columns: Sequence[str], problems: list) -> bool:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        problems.append(Problem(name, f"missing columns {missing}", f"provide columns {list(columns)}"))
    return not missing


def _kindergarten_arrays(kindergartens: pd.DataFrame, problems: list) -> tuple[pd.DataFrame, ExistingKindergartens]:
    """Existing kindergartens table -> :class:`ExistingKindergartens` (seats from classes by type,
    or a ``seats`` column)."""
    kg = kindergartens
    if "level" in kg.columns:
        kg = kg[kg["level"] == "kindergarten"]
    kg = kg.reset_index(drop=True)
    ok = _require_columns(kg, "kindergartens", ["school_id", "township_code", "public", "inclusive"], problems)
    if "seats" in kg.columns:
        seats = kg["seats"].to_numpy(dtype=np.float64)
    elif all(c in kg.columns for c in _KG_CLASS_COLUMNS):
        try:
            seats = count_kindergarten_seats(*(kg[c].fillna(0).to_numpy() for c in _KG_CLASS_COLUMNS))
        except LayoutError as exc:
            problems.extend(Problem("kindergartens." + p.source, p.message, p.fix, p.rows) for p in exc.problems)
            seats = np.zeros(len(kg))
    else:
        problems.append(Problem("kindergartens", f"neither seats nor {list(_KG_CLASS_COLUMNS)} are given",
                                "add a seats column (children) or the classes by type (小/中/大班)"))
        seats = np.zeros(len(kg))
    if not ok:
        return kg, ExistingKindergartens(np.zeros(0), np.zeros(0), np.zeros(0, bool), np.zeros(0, bool))
    dup = kg["school_id"].duplicated()
    if dup.any():
        problems.append(Problem("kindergartens.school_id", "duplicated ids", "make school_id unique",
                                format_rows(kg.loc[dup, "school_id"].tolist())))

    def opt(col):
        return kg[col].to_numpy(dtype=np.float64) if col in kg.columns else None

    return kg, ExistingKindergartens(
        township=kg["township_code"].astype(str).to_numpy(), seats=seats,
        public=kg["public"].to_numpy(), inclusive=kg["inclusive"].to_numpy(),
        cost_to_inclusive_cny=opt("cost_to_inclusive_cny"), cost_to_public_cny=opt("cost_to_public_cny"),
        ids=kg["school_id"].astype(str).to_numpy())


def _candidate_arrays(candidates: pd.DataFrame, problems: list) -> tuple[pd.DataFrame, CandidateSites]:
    """Candidate table -> :class:`CandidateSites`. Rows of kind ``"school"`` (land for new schools in
    ``data/candidate_sites.geojson``) are not kindergarten sites and are left out."""
    ca = candidates
    if "kind" in ca.columns:
        ca = ca[ca["kind"] != "school"]
    ca = ca.reset_index(drop=True)
    ok = _require_columns(ca, "candidates", ["site_id", "kind", "township_code"], problems)
    if "seats" in ca.columns:
        seats = ca["seats"].to_numpy(dtype=np.float64)
    elif "capacity_classes" in ca.columns:
        try:
            seats = count_kindergarten_seats(*split_kindergarten_classes(ca["capacity_classes"].to_numpy()))
        except LayoutError as exc:
            problems.extend(Problem("candidates.capacity_classes", p.message, p.fix, p.rows) for p in exc.problems)
            seats = np.zeros(len(ca))
    else:
        problems.append(Problem("candidates", "neither seats nor capacity_classes is given",
                                "add a seats column (children) or capacity_classes (classes)"))
        seats = np.zeros(len(ca))
    if not ok:
        return ca, CandidateSites(np.zeros(0), np.zeros(0), np.zeros(0, dtype=str))
    dup = ca["site_id"].duplicated()
    if dup.any():
        problems.append(Problem("candidates.site_id", "duplicated ids", "make site_id unique",
                                format_rows(ca.loc[dup, "site_id"].tolist())))

    def opt(col, dtype=None):
        return ca[col].to_numpy(dtype=dtype) if col in ca.columns else None

    return ca, CandidateSites(
        township=ca["township_code"].astype(str).to_numpy(), seats=seats, kind=ca["kind"].astype(str).to_numpy(),
        public=opt("public"), inclusive=opt("inclusive"), cost_cny=opt("cost_cny", np.float64),
        must_open=opt("must_open"), ids=ca["site_id"].astype(str).to_numpy())


def _unit_arrays(units: pd.DataFrame, problems: list) -> pd.DataFrame:
    ok = _require_columns(units, "units", ["unit_code", "township_code", "urban"], problems)
    if ok and units["unit_code"].duplicated().any():
        problems.append(Problem("units.unit_code", "duplicated unit codes", "make unit_code unique",
                                format_rows(units.loc[units["unit_code"].duplicated(), "unit_code"].tolist())))
    return units.reset_index(drop=True)


def _children_cube(children_3to5: pd.DataFrame, unit_codes: np.ndarray, years, quantiles, problems: list):
    """Long table (unit_code, year, [quantile,] children) -> array (units, years, quantiles)."""
    if not _require_columns(children_3to5, "children_3to5", ["unit_code", "year", "children"], problems):
        return np.zeros((len(unit_codes), len(years), len(quantiles)))
    ch = children_3to5.copy()
    ch["unit_code"] = ch["unit_code"].astype(str)
    if "quantile" not in ch.columns:
        ch["quantile"] = np.nan
    keys = ["unit_code", "year", "quantile"]
    if ch.duplicated(keys).any():
        problems.append(Problem("children_3to5", "duplicated (unit_code, year, quantile) rows",
                                "sum ages 3–5 into one row per unit, year and quantile",
                                format_rows(ch.index[ch.duplicated(keys)].tolist())))
        ch = ch.drop_duplicates(keys)
    full = pd.MultiIndex.from_product([unit_codes, list(years), list(quantiles)], names=keys)
    series = ch.set_index(keys)["children"].astype(np.float64)
    cube = series.reindex(full)
    missing = cube.isna()
    if missing.any():
        miss = cube.index[missing.to_numpy()]
        problems.append(Problem("children_3to5", f"{int(missing.sum())} (unit_code, year, quantile) rows are missing",
                                "give children aged 3–5 for every unit and year (0 when none)",
                                format_rows([f"{u}/{y}" + ("" if pd.isna(q) else f"/q{q}") for u, y, q in miss])))
    return cube.fillna(0.0).to_numpy().reshape(len(unit_codes), len(years), len(quantiles))


def _distance_block(distance_m, unit_codes, facility_ids, problems: list) -> np.ndarray:
    """Distance table (index unit_code, columns facility ids) -> (units, facilities) metres."""
    if not isinstance(distance_m, pd.DataFrame):
        arr = np.asarray(distance_m, dtype=np.float64)
        if arr.shape != (len(unit_codes), len(facility_ids)):
            problems.append(Problem("distance_m", f"has shape {arr.shape}, expected "
                                    f"({len(unit_codes)}, {len(facility_ids)}): units × (kindergartens, then sites)",
                                    "pass a DataFrame indexed by unit_code with one column per school_id / site_id"))
            return np.zeros((len(unit_codes), len(facility_ids)))
        return arr
    d = distance_m.copy()
    d.index = d.index.astype(str)
    d.columns = d.columns.astype(str)
    miss_u = [u for u in unit_codes if u not in d.index]
    miss_f = [f for f in facility_ids if f not in d.columns]
    if miss_u:
        problems.append(Problem("distance_m", "units missing from the index", "add a row per unit_code",
                                format_rows(miss_u)))
    if miss_f:
        problems.append(Problem("distance_m", "kindergartens / sites missing from the columns",
                                "add a column per school_id and site_id", format_rows(miss_f)))
    if miss_u or miss_f:
        return np.zeros((len(unit_codes), len(facility_ids)))
    return d.loc[list(unit_codes), list(facility_ids)].to_numpy(dtype=np.float64)


@dataclass
class KindergartenPlan:
    """Tables of a kindergarten siting run (:func:`plan_kindergartens`)."""

    coverage: KindergartenCoverage
    sites: pd.DataFrame           # one row per candidate site
    kindergartens: pd.DataFrame   # one row per existing kindergarten
    units: pd.DataFrame           # one row per unit
    assignments: pd.DataFrame     # walking assignments: unit_code, facility_id, children
    summary: pd.DataFrame         # variable, unit, value


def _prepare_inputs(units, kindergartens, candidates, distance_m, problems):
    un = _unit_arrays(units, problems)
    kg, existing = _kindergarten_arrays(kindergartens, problems)
    ca, cands = _candidate_arrays(candidates, problems)
    unit_codes = un["unit_code"].astype(str).to_numpy() if "unit_code" in un.columns else np.zeros(0, str)
    fac_ids = np.concatenate([np.asarray(existing.ids if existing.ids is not None else [], dtype=str),
                              np.asarray(cands.ids if cands.ids is not None else [], dtype=str)])
    dist = _distance_block(distance_m, unit_codes, fac_ids, problems)
    return un, kg, existing, ca, cands, unit_codes, dist


def plan_kindergartens(
    units: pd.DataFrame,
    kindergartens: pd.DataFrame,
    candidates: pd.DataFrame,
    children_3to5: pd.DataFrame,
    distance_m,
    *,
    year: int,
    quantile: float | None = None,
    enrollment_rate: float = 0.98,
    urban_radius_m: float = 300.0,
    rural_radius_m: float = 2000.0,
    n_new_sites: int = 16,
    objective: str = "max_coverage",
    targets: dict | None = None,
    time_limit_s: float = 60.0,
) -> KindergartenPlan:
    """Site new kindergartens for one school year from tables (thin adapter over
    :func:`solve_kindergarten_coverage`).

    * ``units``: unit_code, township_code, urban (bool).
    * ``kindergartens``: school_id, township_code, public, inclusive and either ``seats`` or
      ``classes_g-3/-2/-1`` (小/中/大班); optional cost_to_inclusive_cny, cost_to_public_cny. Rows
      whose ``level`` is not ``kindergarten`` are ignored (so ``data/schools.geojson`` can be passed).
    * ``candidates``: site_id, kind (``kindergarten_complex`` | ``closed_school``; ``school`` rows are
      ignored), township_code, and ``seats`` or ``capacity_classes``; optional public, inclusive,
      cost_cny, must_open. Closed primary schools are appended by the caller as ``closed_school``
      rows with their seats.
    * ``children_3to5``: long table unit_code, year, children [, quantile] — children aged 3–5 on
      1 Sep of ``year``; with a quantile column, ``quantile`` selects one.
    * ``distance_m``: DataFrame indexed by unit_code with a column per school_id and site_id (or an
      array (units, kindergartens + sites) in table order), metres.

    ``targets`` default: the plan's inclusive (0.98) and public (0.65) shares as soft targets
    for ``max_coverage``; give them explicitly (and ``coverage_min`` / ``ger_min``) for ``min_sites``.
    """
    problems: list[Problem] = []
    un, kg, existing, ca, cands, unit_codes, dist = _prepare_inputs(units, kindergartens, candidates, distance_m,
                                                                    problems)
    quantiles = [np.nan]
    if isinstance(children_3to5, pd.DataFrame) and "quantile" in children_3to5.columns:
        available = sorted(children_3to5["quantile"].dropna().unique())
        if quantile is None and len(available) != 1:
            problems.append(Problem("quantile", f"children_3to5 has quantiles {available}", "choose one, e.g. 0.5"))
        quantiles = [quantile if quantile is not None else (available[0] if available else np.nan)]
    children = _children_cube(children_3to5, unit_codes, [year], quantiles, problems)[:, 0, 0]
    raise_if_problems(problems, "invalid tables for the kindergarten siting", LayoutError)
    if targets is None:
        targets = ({"inclusive_share_min": PLAN_TARGETS["inclusive_share_min"],
                    "public_share_min": PLAN_TARGETS["public_share_min"]} if objective == "max_coverage" else {})
    radius = compute_walking_radius_m(un["urban"].to_numpy(), rural_radius_m=rural_radius_m,
                                      urban_radius_m=urban_radius_m)
    k = existing.size
    cov = solve_kindergarten_coverage(
        children, un["township_code"].astype(str).to_numpy(), radius, dist[:, :k], dist[:, k:], existing, cands,
        enrollment_rate=enrollment_rate, n_new_sites=n_new_sites, objective=objective, targets=targets,
        unit_ids=unit_codes, time_limit_s=time_limit_s)

    sites = pd.DataFrame({"site_id": cands.ids, "kind": cands.kind, "township_code": cands.township,
                          "seats": cands.seats, "open": cov.site_open, "covered_children": cov.covered_candidate,
                          "enrolled_children": cov.enrolled_candidate})
    kgs = pd.DataFrame({"school_id": existing.ids, "township_code": existing.township, "seats": existing.seats,
                        "public": np.asarray(existing.public, bool), "inclusive": np.asarray(existing.inclusive, bool),
                        "covered_children": cov.covered_existing, "enrolled_children": cov.enrolled_existing,
                        "convert_to_inclusive": cov.convert_to_inclusive, "convert_to_public": cov.convert_to_public})
    unit_table = pd.DataFrame({"unit_code": unit_codes, "township_code": un["township_code"].astype(str).to_numpy(),
                               "children_3to5": children, "demand_children": cov.demand_by_unit,
                               "covered_children": cov.covered_by_unit, "radius_m": radius})
    fac_ids = np.concatenate([existing.ids, cands.ids]).astype(str)
    assignments = pd.DataFrame({"unit_code": unit_codes[cov.arc_unit], "facility_id": fac_ids[cov.arc_facility],
                                "new_site": cov.arc_facility >= k, "children": cov.arc_children})
    summary = pd.DataFrame([
        ("year", "year", year),
        ("children_3to5", "children", cov.children),
        ("demand", "children", cov.demand),
        ("covered_without_new_sites", "children", cov.covered_without_new),
        ("covered_with_new_sites", "children", cov.covered),
        ("coverage_rate_without_new_sites", "fraction", cov.coverage_rate_without_new),
        ("coverage_rate_with_new_sites", "fraction", cov.coverage_rate),
        ("enrolled_without_new_sites", "children", cov.enrolled_without_new),
        ("enrolled_with_new_sites", "children", cov.enrolled),
        ("gross_enrollment_rate", "fraction", cov.gross_enrollment_rate),
        ("inclusive_share", "fraction", cov.inclusive_share),
        ("public_share", "fraction", cov.public_share),
        ("new_sites", "sites", cov.n_new_sites),
        ("conversions_to_inclusive", "kindergartens", int(cov.convert_to_inclusive.sum())),
        ("conversions_to_public", "kindergartens", int(cov.convert_to_public.sum())),
        ("conversion_cost", "cny", cov.conversion_cost_cny),
        ("solve_time", "s", cov.seconds),
    ], columns=["variable", "unit", "value"])
    return KindergartenPlan(cov, sites, kgs, unit_table, assignments, summary)


def convert_for_public_share(plan: KindergartenPlan, enrolled: np.ndarray, total_enrolled: float, share: float,
                             target: float, cost_to_public_cny: np.ndarray,
                             cost_to_inclusive_cny: np.ndarray | None = None) -> tuple[KindergartenPlan, np.ndarray]:
    """Private kindergartens bought into the public system (转公办) until the public share of enrolled children
    reaches ``target``, cheapest per enrolled child first.

    The siting model meets its share targets partly by steering children between kindergartens of a township; the
    yearly check (:func:`allocate_kindergarten_enrollment`, nearest free seat) cannot be steered.  Given the
    children ``enrolled`` (K,) at each existing kindergarten in that check, ``total_enrolled`` and its public
    ``share``, this converts private kindergartens (not public, not converted yet, with a finite
    ``cost_to_public_cny`` and children enrolled) in order of cost per enrolled child (ties by order) until the
    converted children cover ``(target - share) × total_enrolled``; a conversion to public replaces one to
    inclusive.  The check's allocation does not depend on who runs a kindergarten, so the share then reaches the
    target in that year (or as far as conversions allow).  Returns the updated plan and the indices converted.
    """
    cov = plan.coverage
    enrolled = np.asarray(enrolled, dtype=np.float64)
    cost = np.asarray(cost_to_public_cny, dtype=np.float64)
    k = cov.convert_to_public.shape[0]
    if enrolled.shape != (k,) or cost.shape != (k,):
        raise LayoutError("public-share conversions need one value per existing kindergarten", [Problem(
            "enrolled/cost_to_public_cny", f"shapes {enrolled.shape}, {cost.shape}; expected ({k},)",
            "pass arrays in the order of plan.kindergartens")])
    need = (float(target) - float(share)) * float(total_enrolled)
    public = plan.kindergartens["public"].to_numpy(bool)
    eligible = np.flatnonzero(~public & ~cov.convert_to_public & np.isfinite(cost) & (enrolled > 1e-9))
    if need <= 0 or not eligible.size:
        return plan, np.zeros(0, dtype=np.int64)
    order = eligible[np.argsort(cost[eligible] / enrolled[eligible], kind="stable")]
    take = order[:int(np.searchsorted(np.cumsum(enrolled[order]), need - 1e-9)) + 1]
    to_pub = cov.convert_to_public.copy()
    to_pub[take] = True
    to_inc = cov.convert_to_inclusive & ~to_pub
    inc_cost = np.zeros(k) if cost_to_inclusive_cny is None else np.asarray(cost_to_inclusive_cny, dtype=np.float64)
    inclusive = plan.kindergartens["inclusive"].to_numpy(bool)
    was_inc = inclusive | cov.convert_to_inclusive
    new_cov = replace(
        cov, convert_to_public=to_pub, convert_to_inclusive=to_inc,
        conversion_cost_cny=float(np.nansum(inc_cost[to_inc]) + np.nansum(cost[to_pub])),
        enrolled_public=cov.enrolled_public + float(cov.enrolled_existing[take].sum()),
        enrolled_inclusive=cov.enrolled_inclusive + float(cov.enrolled_existing[take][~was_inc[take]].sum()))
    kgs = plan.kindergartens.assign(convert_to_inclusive=to_inc, convert_to_public=to_pub)
    summary = plan.summary.copy()
    values = {"inclusive_share": new_cov.inclusive_share, "public_share": new_cov.public_share,
              "conversions_to_inclusive": int(to_inc.sum()), "conversions_to_public": int(to_pub.sum()),
              "conversion_cost": new_cov.conversion_cost_cny}
    for key, v in values.items():
        summary.loc[summary["variable"] == key, "value"] = v
    return replace(plan, coverage=new_cov, kindergartens=kgs, summary=summary), take


@dataclass
class KindergartenYears:
    """Tables of :func:`project_kindergarten_years` (one row per year [and quantile])."""

    use: KindergartenUse
    check: PreschoolTargetCheck
    by_kindergarten: pd.DataFrame  # facility_id, kind, township_code, year, [quantile,] seats, enrolled, utilisation, below_half
    by_township: pd.DataFrame      # township_code, year, [quantile,] demand, seats, enrolled, short, idle
    targets: pd.DataFrame          # long table of check_preschool_targets


def project_kindergarten_years(
    plan: KindergartenPlan | None,
    units: pd.DataFrame,
    kindergartens: pd.DataFrame,
    candidates: pd.DataFrame,
    children_3to5: pd.DataFrame,
    distance_m,
    *,
    years: Sequence[int],
    open_year: int = 2025,
    enrollment_rate: float = 0.98,
    urban_radius_m: float = 300.0,
    rural_radius_m: float = 2000.0,
    target_year: int = 2025,
    underused_below: float = 0.5,
    targets: dict | None = None,
) -> KindergartenYears:
    """Per school year (and quantile): children to kindergartens, seats short / idle by township,
    utilisation per kindergarten and the plan targets.

    The new sites chosen in ``plan`` (``None`` = none) and its conversions take effect from the
    school year ``open_year``. Tables as in :func:`plan_kindergartens`; ``children_3to5`` may hold
    several quantiles (all are projected, with a ``quantile`` column in the outputs).
    ``by_kindergarten.below_half`` flags utilisation below ``underused_below`` (default 50 %).
    """
    problems: list[Problem] = []
    un, kg, existing, ca, cands, unit_codes, dist = _prepare_inputs(units, kindergartens, candidates, distance_m,
                                                                    problems)
    years = [int(y) for y in years]
    quantiles = [np.nan]
    if isinstance(children_3to5, pd.DataFrame) and "quantile" in children_3to5.columns:
        quantiles = sorted(children_3to5["quantile"].dropna().unique()) or [np.nan]
    children = _children_cube(children_3to5, unit_codes, years, quantiles, problems)
    if plan is not None:
        if list(plan.sites["site_id"]) != list(cands.ids) or list(plan.kindergartens["school_id"]) != list(existing.ids):
            problems.append(Problem("plan", "was made from other kindergarten / candidate tables",
                                    "pass the same kindergartens and candidates as to plan_kindergartens"))
    raise_if_problems(problems, "invalid tables for the kindergarten projection", LayoutError)
    k, s = existing.size, cands.size
    yr = np.asarray(years)
    active = yr >= open_year
    site_open = plan.coverage.site_open if plan is not None else np.zeros(s, bool)
    to_inc = plan.coverage.convert_to_inclusive if plan is not None else np.zeros(k, bool)
    to_pub = plan.coverage.convert_to_public if plan is not None else np.zeros(k, bool)
    seats = np.vstack([np.repeat(np.asarray(existing.seats, np.float64)[:, None], len(yr), axis=1),
                       np.asarray(cands.seats, np.float64)[:, None] * (site_open[:, None] & active[None, :])])
    pub0 = np.asarray(existing.public, bool)
    inc0 = np.asarray(existing.inclusive, bool) | pub0
    ca_pub = np.ones(s, bool) if cands.public is None else np.asarray(cands.public, bool)
    ca_inc = (np.ones(s, bool) if cands.inclusive is None else np.asarray(cands.inclusive, bool)) | ca_pub
    pub = np.vstack([pub0[:, None] | (to_pub[:, None] & active[None, :]), np.repeat(ca_pub[:, None], len(yr), 1)])
    inc = np.vstack([inc0[:, None] | ((to_inc | to_pub)[:, None] & active[None, :]),
                     np.repeat(ca_inc[:, None], len(yr), 1)])
    radius = compute_walking_radius_m(un["urban"].to_numpy(), rural_radius_m=rural_radius_m,
                                      urban_radius_m=urban_radius_m)
    demand = compute_kindergarten_demand(children, enrollment_rate)
    fac_ids = np.concatenate([existing.ids, cands.ids]).astype(str)
    use = allocate_kindergarten_enrollment(
        demand, un["township_code"].astype(str).to_numpy(), radius, dist, seats,
        np.concatenate([existing.township, cands.township]).astype(str), unit_ids=unit_codes, facility_ids=fac_ids)
    enrolled = use.enrolled                                      # (J, Y, Q)
    check = check_preschool_targets(
        yr, children.sum(axis=0), enrolled.sum(axis=0), (enrolled * inc[:, :, None]).sum(axis=0),
        (enrolled * pub[:, :, None]).sum(axis=0), target_year=target_year, **(targets or {}))
    n_q = len(quantiles)
    grid_j = pd.MultiIndex.from_product([fac_ids, yr, quantiles], names=["facility_id", "year", "quantile"])
    by_kg = grid_j.to_frame(index=False)
    by_kg["kind"] = np.repeat(np.concatenate([np.full(k, "existing"), np.asarray(cands.kind, str)]), len(yr) * n_q)
    by_kg["township_code"] = np.repeat(np.concatenate([existing.township, cands.township]).astype(str), len(yr) * n_q)
    by_kg["seats"] = use.seats.ravel()
    by_kg["enrolled"] = enrolled.ravel()
    by_kg["covered"] = use.covered.ravel()
    by_kg["public"] = np.repeat(pub[:, :, None], n_q, axis=2).ravel()
    by_kg["inclusive"] = np.repeat(inc[:, :, None], n_q, axis=2).ravel()
    by_kg["utilisation"] = use.utilisation.ravel()
    by_kg["below_half"] = use.underused(underused_below).ravel()
    grid_t = pd.MultiIndex.from_product([use.townships, yr, quantiles], names=["township_code", "year", "quantile"])
    by_t = grid_t.to_frame(index=False)
    for col, arr in (("demand", use.demand_by_township), ("seats", use.seats_by_township),
                     ("enrolled", use.enrolled_by_township), ("short", use.short_by_township),
                     ("idle", use.idle_by_township)):
        by_t[col] = arr.ravel()
    target_table = check.to_frame()
    if n_q > 1 or not np.isnan(quantiles[0]):
        target_table["quantile"] = np.asarray(quantiles)[target_table.get("draw", pd.Series(0, index=target_table.index))
                                                         .to_numpy()]
        target_table = target_table.drop(columns=["draw"], errors="ignore")
    else:
        by_kg = by_kg.drop(columns=["quantile"])
        by_t = by_t.drop(columns=["quantile"])
    return KindergartenYears(use, check, by_kg, by_t, target_table)
