"""Current catchments, attendance shares, pupils per school and the service-radius check.

A *catchment* maps every residential unit, for every grade, to the school(s) its pupils attend:
either the nearest school teaching that grade by travel distance (from a
:class:`~layout.travel.TravelCosts`), or a given attendance-zone table.  Shares are CSR
matrices (n_units × n_sites) per grade whose rows sum to 1 (0 for a unit with no reachable
school), so pupils per school × grade × year are sparse products, conserving pupils exactly.

The service-radius check uses the GB 50180-2018 life-circle walking distances in urban areas
(kindergarten ≤ 300 m, primary ≤ 500 m, junior ≤ 1000 m) and longer rural limits (parameters).
Pupils beyond the radius need transport; rural pupils whose one-way trip exceeds
``max_commute_min`` (and who are old enough) need a boarding bed instead.  Distances are the
travel distances (metres along the route), not straight lines.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from forecast.errors import Problem, format_rows, raise_if_problems
from layout.capacity import level_of_grade
from layout.errors import LayoutError
from layout.travel import TravelCosts, TravelParams, compute_travel_minutes

__all__ = [
    "ServiceParams",
    "Catchment",
    "ServiceReport",
    "find_eligible_sites",
    "assign_catchments",
    "Allocation",
    "allocate_pupils",
    "assess_service_radius",
]


def _urban_radius() -> dict[str, float]:
    return {"kindergarten": 300.0, "primary": 500.0, "junior": 1000.0}


def _rural_radius() -> dict[str, float]:
    # assumptions (rural practice in provincial standards): 1.5 km / 2.5 km / 5 km
    return {"kindergarten": 1500.0, "primary": 2500.0, "junior": 5000.0}


def _max_commute() -> dict[str, float | None]:
    # one-way minutes above which a rural pupil boards; kindergarten children never board
    return {"kindergarten": None, "primary": 40.0, "junior": 50.0, "senior": 60.0}


@dataclass(frozen=True)
class ServiceParams:
    """Service radii and boarding rule.

    radius_urban_m / radius_rural_m: level -> metres of travel; a level missing here is not assessed.
    max_commute_min: level -> one-way minutes beyond which a rural pupil beyond the radius boards
        (``None``: never boards, e.g. kindergarten).
    boarding_min_grade: youngest grade that may board (younger pupils get transport instead).
    max_trip_min: a pupil who does not board but travels longer than this one way is reported
        (a unit with no school within any acceptable limit).
    """

    radius_urban_m: Mapping[str, float] = field(default_factory=_urban_radius)
    radius_rural_m: Mapping[str, float] = field(default_factory=_rural_radius)
    max_commute_min: Mapping[str, float | None] = field(default_factory=_max_commute)
    boarding_min_grade: int = 1
    max_trip_min: float = 60.0


@dataclass
class Catchment:
    """Where each unit's pupils of each grade go.

    grades: (n_g,); unit_ids (n_u,); site_ids (n_s,).
    shares: tuple of n_g CSR (n_u, n_s); row sums 1, or 0 for a unit with no school for that grade.
    distance_m: tuple of n_g CSR, same pattern as ``shares``: travel metres of each pair.
    main_site: (n_u, n_g) int, the site with the largest share (-1: none); main_distance_m likewise (NaN).
    findings: units without a reachable school, zone gaps filled by the nearest school, ...
    """

    grades: np.ndarray
    unit_ids: np.ndarray
    site_ids: np.ndarray
    shares: tuple
    distance_m: tuple
    main_site: np.ndarray
    main_distance_m: np.ndarray
    findings: list[Problem]


def find_eligible_sites(grade_min: np.ndarray, grade_max: np.ndarray, grades: Sequence[int],
                        mask: np.ndarray | None = None) -> np.ndarray:
    """(n_sites, n_g) bool: site teaches the grade (grade_min <= g <= grade_max) and ``mask`` (e.g. public)."""
    grades = np.asarray(grades)
    ok = (np.asarray(grade_min)[:, None] <= grades[None, :]) & (grades[None, :] <= np.asarray(grade_max)[:, None])
    if mask is not None:
        ok &= np.asarray(mask, dtype=bool)[:, None]
    return ok


def _row_argmin(d: sp.csr_matrix, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the column with the smallest stored value among allowed columns: (col or -1, value or nan)."""
    n = d.shape[0]
    rows = np.repeat(np.arange(n), np.diff(d.indptr))
    vals = np.where(allowed[d.indices], d.data, np.inf)
    order = np.lexsort((d.indices, vals, rows))        # by row, then value, then column (stable ties)
    first = np.full(n, -1)
    nonempty = np.diff(d.indptr) > 0
    first[nonempty] = order[d.indptr[:-1][nonempty]]
    col = np.full(n, -1)
    val = np.full(n, np.nan)
    ok = first >= 0
    ok[ok] = np.isfinite(vals[first[ok]])
    col[ok] = d.indices[first[ok]]
    val[ok] = vals[first[ok]]
    return col, val


def _one_hot(col: np.ndarray, dist: np.ndarray, n_s: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    n = len(col)
    ok = col >= 0
    r = np.flatnonzero(ok)
    shares = sp.csr_matrix((np.ones(r.size), (r, col[ok])), shape=(n, n_s))
    d = sp.csr_matrix((dist[ok], (r, col[ok])), shape=(n, n_s))
    return shares, d


def assign_catchments(travel: TravelCosts, eligible: np.ndarray, grades: Sequence[int], *,
                      zones: pd.DataFrame | None = None) -> Catchment:
    """Catchments per grade: the nearest eligible site by travel distance, or a zone table.

    eligible: (n_sites, n_g) bool (see :func:`find_eligible_sites`).
    zones: optional attendance-zone table with columns ``unit_code``, ``school_id`` (the travel
        matrix's site ids), ``level`` (kindergarten/primary/junior/senior) and optional ``share``
        (default: split equally).  Zone rows override the nearest-school rule for that unit and
        level; units without a zone row keep the nearest school (a finding says how many).
    Units with no eligible site among their kept pairs are findings (their pupils stay unallocated).
    """
    grades = np.asarray(grades)
    levels = level_of_grade(grades)
    n_u, n_s = travel.shape
    eligible = np.asarray(eligible, dtype=bool)
    if eligible.shape != (n_s, len(grades)):
        raise LayoutError("eligible has the wrong shape", [Problem(
            "eligible", f"shape {eligible.shape}, expected (n_sites, n_grades) = {(n_s, len(grades))}",
            "one flag per site and grade")])
    d = travel.distance_m.tocsr()
    findings: list[Problem] = []
    zone_by_level = _read_zones(zones, travel, eligible, grades, levels) if zones is not None else {}
    shares, dists = [], []
    main = np.full((n_u, len(grades)), -1)
    main_d = np.full((n_u, len(grades)), np.nan)
    cache: dict[bytes, tuple] = {}
    for gi, g in enumerate(grades):
        key = eligible[:, gi].tobytes()
        if key not in cache:
            col, val = _row_argmin(d, eligible[:, gi])
            cache[key] = (col, val, *_one_hot(col, val, n_s))
        col, val, A, D = cache[key]
        if levels[gi] in zone_by_level:
            zA, zD, has = zone_by_level[levels[gi]]
            keep = sp.diags((~has).astype(float))
            A = (keep @ A + zA).tocsr()
            D = (keep @ D + zD).tocsr()
            col, val = _main_of(A, D)
        shares.append(A)
        dists.append(D)
        main[:, gi], main_d[:, gi] = col, val
    for lvl in dict.fromkeys(levels):
        gi = np.flatnonzero(levels == lvl)
        none = (main[:, gi] < 0).any(axis=1)
        if none.any():
            findings.append(Problem(
                "units", f"{none.sum()} unit(s) have no reachable {lvl} school among their kept travel pairs "
                "(river without a bridge, no school of that level nearby, or k_nearest too small); "
                "their pupils are left unallocated", "add a bridge or school, or raise TravelParams.k_nearest",
                format_rows(travel.unit_ids[none].tolist())))
        if lvl in zone_by_level:
            missing = ~zone_by_level[lvl][2]
            if missing.any():
                findings.append(Problem("zones", f"{missing.sum()} unit(s) have no {lvl} zone; the nearest school "
                                        "is used", "add their zone rows if they have a zone",
                                        format_rows(travel.unit_ids[missing].tolist())))
    return Catchment(grades, np.asarray(travel.unit_ids), np.asarray(travel.site_ids), tuple(shares), tuple(dists),
                     main, main_d, findings)


def _main_of(A: sp.csr_matrix, D: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    n = A.shape[0]
    col = np.full(n, -1)
    val = np.full(n, np.nan)
    nonempty = np.diff(A.indptr) > 0
    if A.nnz:
        rows = np.repeat(np.arange(n), np.diff(A.indptr))
        order = np.lexsort((-A.data, rows))
        first = order[A.indptr[:-1][nonempty]]
        col[nonempty] = A.indices[first]
        val[nonempty] = D.data[first]
    return col, val


def _read_zones(zones: pd.DataFrame, travel: TravelCosts, eligible, grades, levels):
    """Validate a zone table; return level -> (shares CSR, distance CSR, has_zone (n_u,) bool)."""
    problems = []
    need = [c for c in ("unit_code", "school_id", "level") if c not in zones.columns]
    if need:
        raise LayoutError("zones table is incomplete", [Problem("zones", f"missing columns {need}",
                                                                "give unit_code, school_id, level (and share)")])
    z = zones.copy()
    z["unit_code"] = z["unit_code"].astype(str)
    z["school_id"] = z["school_id"].astype(str)
    u_pos = pd.Series(np.arange(len(travel.unit_ids)), index=np.asarray(travel.unit_ids).astype(str))
    s_pos = pd.Series(np.arange(len(travel.site_ids)), index=np.asarray(travel.site_ids).astype(str))
    bad_u = ~z["unit_code"].isin(u_pos.index)
    bad_s = ~z["school_id"].isin(s_pos.index)
    if bad_u.any():
        problems.append(Problem("zones", "unknown unit_code", "use codes of the units layer",
                                format_rows(z.loc[bad_u, "unit_code"].unique().tolist())))
    if bad_s.any():
        problems.append(Problem("zones", "unknown school_id", "use ids of the schools layer",
                                format_rows(z.loc[bad_s, "school_id"].unique().tolist())))
    known = set(levels)
    bad_l = ~z["level"].isin(known)
    if bad_l.any():
        problems.append(Problem("zones", f"level not among the grades' levels {sorted(known)}",
                                "use kindergarten/primary/junior/senior", format_rows(np.flatnonzero(bad_l).tolist())))
    raise_if_problems(problems, "bad attendance zones", LayoutError)
    if "share" not in z.columns:
        z["share"] = 1.0 / z.groupby(["unit_code", "level"])["school_id"].transform("size")
    z["share"] = pd.to_numeric(z["share"], errors="coerce")
    sums = z.groupby(["unit_code", "level"])["share"].sum()
    off = sums[(sums - 1.0).abs() > 1e-6]
    if z["share"].isna().any() or (z["share"] < 0).any():
        problems.append(Problem("zones", "share is missing or negative", "give shares in [0, 1]",
                                format_rows(np.flatnonzero(z["share"].isna() | (z["share"] < 0)).tolist())))
    if len(off):
        problems.append(Problem("zones", "shares of a unit and level do not sum to 1", "make them sum to 1",
                                format_rows([f"{u}/{lv}" for u, lv in off.index])))
    ui = u_pos[z["unit_code"]].to_numpy()
    si = s_pos[z["school_id"]].to_numpy()
    dist = travel.lookup(ui, si)
    gap = np.isnan(dist)
    if gap.any():
        problems.append(Problem("zones", f"{gap.sum()} zone pair(s) are not among the kept travel pairs, so their "
                                "distance is unknown", "raise TravelParams.k_nearest or cutoff_m",
                                format_rows((z["unit_code"][gap] + "->" + z["school_id"][gap]).tolist())))
    grade_idx = {lvl: np.flatnonzero(levels == lvl) for lvl in known}
    lv = z["level"].to_numpy()
    teaches = np.array([eligible[s, grade_idx[l]].all() for s, l in zip(si, lv)], dtype=bool)
    if (~teaches).any():
        problems.append(Problem("zones", "zone school does not teach (every grade of) the level",
                                "assign a school of that level", format_rows(
                                    (z["school_id"][~teaches] + "/" + z["level"][~teaches]).unique().tolist())))
    raise_if_problems(problems, "bad attendance zones", LayoutError)
    n_u, n_s = travel.shape
    out = {}
    for lvl in z["level"].unique():
        m = lv == lvl
        A = sp.csr_matrix((z["share"].to_numpy()[m], (ui[m], si[m])), shape=(n_u, n_s))
        D = sp.csr_matrix((dist[m], (ui[m], si[m])), shape=(n_u, n_s))
        has = np.zeros(n_u, dtype=bool)
        has[ui[m]] = True
        out[lvl] = (A, D, has)
    return out


@dataclass
class Allocation:
    """pupils_site (n_s, n_g, n_y) attending each school; unallocated (n_u, n_g, n_y) pupils of units
    without a school for their grade.  pupils_site.sum() + unallocated.sum() == pupils_unit.sum()."""

    pupils_site: np.ndarray
    unallocated: np.ndarray

    def to_frame(self, catchment: Catchment, years: Sequence[int]) -> pd.DataFrame:
        """Long table school_id, grade, year, pupils (rows with pupils only)."""
        s, g, y = np.nonzero(self.pupils_site)
        return pd.DataFrame({"school_id": catchment.site_ids[s], "grade": catchment.grades[g],
                             "year": np.asarray(years)[y], "pupils": self.pupils_site[s, g, y]})


def allocate_pupils(catchment: Catchment, pupils_unit: np.ndarray) -> Allocation:
    """Pupils per school × grade × year = Σ_units share × pupils, from pupils_unit (n_u, n_g, n_y)."""
    P = np.asarray(pupils_unit, dtype=float)
    n_u, n_s = len(catchment.unit_ids), len(catchment.site_ids)
    if P.ndim != 3 or P.shape[:2] != (n_u, len(catchment.grades)):
        raise LayoutError("pupils_unit has the wrong shape", [Problem(
            "pupils_unit", f"shape {P.shape}, expected (units, grades, years) with units={n_u}, "
            f"grades={len(catchment.grades)}", "align the forecast to the catchment's units and grades")])
    bad = ~np.isfinite(P) | (P < 0)
    if bad.any():
        raise LayoutError("pupils_unit has negative or missing counts", [Problem(
            "pupils_unit", f"{int(bad.sum())} cell(s)", "pass counts >= 0",
            format_rows(catchment.unit_ids[np.flatnonzero(bad.any(axis=(1, 2)))].tolist()))])
    out = np.zeros((n_s, len(catchment.grades), P.shape[2]))
    unalloc = np.zeros_like(P)
    for gi, A in enumerate(catchment.shares):
        out[:, gi, :] = A.T @ P[:, gi, :]
        row = np.asarray(A.sum(axis=1)).ravel()
        unalloc[:, gi, :] = P[:, gi, :] * (1.0 - row)[:, None]
    return Allocation(out, unalloc)


@dataclass
class ServiceReport:
    """Pupils beyond the service radius.

    beyond_site / transport_site / boarding_site: (n_s, n_g, n_y) pupils attending each school from
    beyond the radius, of whom those needing transport / a boarding bed (beyond = transport + boarding).
    beyond_unit: (n_u, n_g, n_y) pupils of each unit beyond the radius.
    summary: long table level × urban × year: pupils, within, transport, boarding, unallocated, share_beyond.
    """

    beyond_site: np.ndarray
    transport_site: np.ndarray
    boarding_site: np.ndarray
    beyond_unit: np.ndarray
    summary: pd.DataFrame
    findings: list[Problem]


def assess_service_radius(catchment: Catchment, pupils_unit: np.ndarray, unit_urban: np.ndarray,
                          years: Sequence[int], *, service: ServiceParams | None = None,
                          travel_params: TravelParams | None = None) -> ServiceReport:
    """Share of pupils beyond the service radius, and who needs transport or boarding.

    pupils_unit (n_u, n_g, n_y); unit_urban (n_u,) bool; minutes use the travel mode of
    ``travel_params.mode_by_level`` for (level, urban).  Levels without a radius are skipped.
    """
    service = service or ServiceParams()
    travel_params = travel_params or TravelParams()
    alloc = allocate_pupils(catchment, pupils_unit)        # validates shapes and values
    P = np.asarray(pupils_unit, dtype=float)
    urban = np.asarray(unit_urban, dtype=bool)
    n_u, n_g, n_y = P.shape
    n_s = len(catchment.site_ids)
    if urban.shape != (n_u,):
        raise LayoutError("unit_urban has the wrong shape", [Problem(
            "unit_urban", f"shape {urban.shape}, expected ({n_u},)", "one flag per unit")])
    levels = level_of_grade(catchment.grades)
    beyond_site = np.zeros((n_s, n_g, n_y))
    board_site = np.zeros((n_s, n_g, n_y))
    beyond_unit = np.zeros((n_u, n_g, n_y))
    board_unit = np.zeros((n_u, n_g, n_y))
    assessed = np.zeros(n_g, dtype=bool)
    too_far = np.zeros(n_u, dtype=bool)
    for gi, g in enumerate(catchment.grades):
        lvl = levels[gi]
        if lvl not in service.radius_urban_m or lvl not in service.radius_rural_m:
            continue
        assessed[gi] = True
        A, D = catchment.shares[gi], catchment.distance_m[gi]
        rows = np.repeat(np.arange(n_u), np.diff(A.indptr))
        radius = np.where(urban, service.radius_urban_m[lvl], service.radius_rural_m[lvl])
        beyond = D.data > radius[rows] + 1e-9
        minutes = compute_travel_minutes(D, urban, lvl, travel_params).data
        limit = service.max_commute_min.get(lvl)
        board = beyond & ~urban[rows] & (int(g) >= service.boarding_min_grade) & \
            (minutes > (np.inf if limit is None else limit))
        too_far[rows[beyond & ~board & (minutes > service.max_trip_min) & (P[rows, gi, :].max(axis=1) > 0)]] = True
        for flag, site_out, unit_out in ((beyond, beyond_site, beyond_unit), (board, board_site, board_unit)):
            F = sp.csr_matrix((A.data * flag, A.indices, A.indptr), shape=A.shape)
            site_out[:, gi, :] = F.T @ P[:, gi, :]
            unit_out[:, gi, :] = np.asarray(F.sum(axis=1)).ravel()[:, None] * P[:, gi, :]
    transport_site = beyond_site - board_site
    records = []
    for lvl in dict.fromkeys(levels[assessed]):
        gi = np.flatnonzero((levels == lvl) & assessed)
        for is_urban in (True, False):
            m = urban == is_urban
            tot = P[m][:, gi].sum(axis=(0, 1))
            bey = beyond_unit[m][:, gi].sum(axis=(0, 1))
            brd = board_unit[m][:, gi].sum(axis=(0, 1))
            una = alloc.unallocated[m][:, gi].sum(axis=(0, 1))
            for yi, y in enumerate(years):
                records.append({"level": lvl, "urban": is_urban, "year": y, "pupils": tot[yi],
                                "within_radius": tot[yi] - bey[yi] - una[yi], "transport": bey[yi] - brd[yi],
                                "boarding": brd[yi], "unallocated": una[yi],
                                "share_beyond": (bey[yi] / (tot[yi] - una[yi])) if tot[yi] - una[yi] > 0 else np.nan})
    findings = list(catchment.findings)
    if too_far.any():
        findings.append(Problem(
            "units", f"{too_far.sum()} unit(s) have pupils who cannot board and travel more than "
            f"{service.max_trip_min:.0f} min one way (no school within any acceptable limit)",
            "add a school or kindergarten nearer to them, or a transport service", format_rows(
                catchment.unit_ids[too_far].tolist())))
    return ServiceReport(beyond_site, transport_site, board_site, beyond_unit, pd.DataFrame.from_records(records),
                         findings)
