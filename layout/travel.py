"""Travel-cost matrices between residential units and school sites, respecting river barriers.

Distances are metres in a metric CRS (EPSG:4545 by default, see :mod:`layout.geo`);
minutes follow from a travel mode chosen by school level and urban/rural.

Two ways to measure a trip:

* **Road network given** (``road_edges``): shortest paths on the network
  (``scipy.sparse.csgraph.dijkstra``); each point reaches the network by a
  straight access leg (length × ``detour_factor``) to one of its nearest network
  nodes, never across a river.
* **No network** (default): a *barrier-respecting lattice*.  A regular grid of
  nodes covers the district (spacing chosen so the grid has about
  ``lattice_target_nodes`` nodes), each node linked to its 16 neighbours
  (steps (1,0), (1,1), (2,1) and their symmetric variants, so paths bend at most
  ~2.7 % off a straight line).  Every lattice edge that intersects a river is
  removed; each bridge (snapped onto its river) opens a gap of
  ``2 × bridge_half_width_m`` and becomes a graph node joined to its nearest
  lattice nodes on both banks.  Edge weights are length × ``detour_factor``.
  Dijkstra runs from the smaller of the two point sets (sites usually), in
  chunks; the other set reads its cost through its access links (a vectorised
  min over each point's nearest lattice nodes).  When the straight segment
  between a unit and a site does **not** intersect a river, the cost is exactly
  ``straight distance × detour_factor`` (the straight line is the shortest path
  in the plane); otherwise the lattice cost, which goes via a bridge.

Output is sparse: for every unit only the ``k_nearest`` sites (per site group,
e.g. per level) and/or the sites within ``cutoff_m`` are kept, in a CSR matrix.
No Python loop runs over unit–site pairs.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import scipy.sparse as sp
import shapely
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from forecast.errors import Problem, format_rows, raise_if_problems
from layout.errors import LayoutError
from layout.geo import check_metric_crs, extract_district_polygon, extract_point_xy, find_points_outside

__all__ = [
    "TravelMode",
    "TravelParams",
    "TravelCosts",
    "build_travel_costs",
    "compute_travel_costs",
    "compute_travel_minutes",
    "select_travel_modes",
]


@dataclass(frozen=True)
class TravelMode:
    """A way of travelling: door-to-door speed and a fixed time per trip (waiting, walking to the stop)."""

    speed_m_per_min: float
    fixed_min: float = 0.0


def _default_modes() -> dict[str, TravelMode]:
    return {
        # children walking, often escorted: 4 km/h
        "walk": TravelMode(speed_m_per_min=4000.0 / 60.0, fixed_min=0.0),
        # parent by e-bike / motorbike (接送) on rural roads: 15 km/h + 2 min to set off / park
        "escort": TravelMode(speed_m_per_min=15000.0 / 60.0, fixed_min=2.0),
        # school or public bus on mountain roads: 20 km/h door-to-door + 10 min walk to stop and wait
        "bus": TravelMode(speed_m_per_min=20000.0 / 60.0, fixed_min=10.0),
    }


def _default_mode_by_level() -> dict[tuple[str, bool], str]:
    # key: (pupil level, urban?) -> mode name
    return {
        ("kindergarten", True): "walk", ("kindergarten", False): "escort",
        ("primary", True): "walk", ("primary", False): "bus",
        ("junior", True): "walk", ("junior", False): "bus",
        ("senior", True): "bus", ("senior", False): "bus",
    }


@dataclass(frozen=True)
class TravelParams:
    """Every assumption of the travel model (defaults are stated assumptions, not measurements).

    detour_factor: network distance / straight distance on a trip that crosses no river (1.3:
        typical circuity of roads in hilly terrain; applied to lattice edges and access legs).
    lattice_spacing_m: grid spacing of the no-network lattice; ``None`` = chosen so the grid over
        the district (buffered by ``lattice_margin_m``) has about ``lattice_target_nodes`` nodes.
    lattice_margin_m: the lattice extends this far beyond the district (or the points' hull).
    bridge_snap_m: a bridge farther than this from every river is reported and ignored.
    bridge_half_width_m: half the width of the gap a bridge opens in its river.
    connectors: how many nearest graph nodes each point (unit, site, bridge) may link to.
    k_nearest: keep this many nearest sites per unit (per site group); ``None`` = no K rule.
    cutoff_m: also keep every site within this travel distance; ``None`` = no cut-off.
    road_snap_m: road-edge end points closer than this are the same junction.
    road_access_warn_m: access legs to the road network longer than this are reported.
    source_chunk: Dijkstra sources per batch (memory ~ source_chunk × graph nodes × 8 bytes).
    modes: mode name -> :class:`TravelMode`.
    mode_by_level: (pupil level, urban) -> mode name; levels kindergarten, primary, junior, senior.
    """

    detour_factor: float = 1.3
    lattice_spacing_m: float | None = None
    lattice_target_nodes: int = 20_000
    lattice_margin_m: float = 2_000.0
    bridge_snap_m: float = 300.0
    bridge_half_width_m: float = 20.0
    connectors: int = 8
    k_nearest: int | None = 20
    cutoff_m: float | None = None
    road_snap_m: float = 1.0
    road_access_warn_m: float = 2_000.0
    source_chunk: int = 64
    modes: Mapping[str, TravelMode] = field(default_factory=_default_modes)
    mode_by_level: Mapping[tuple[str, bool], str] = field(default_factory=_default_mode_by_level)

    def validate(self) -> None:
        """Raise :class:`LayoutError` listing every impossible parameter value."""
        problems = []
        if not (self.detour_factor >= 1.0):
            problems.append(Problem("TravelParams.detour_factor", f"is {self.detour_factor}; a trip cannot be "
                                    "shorter than the straight line", "use a value >= 1 (e.g. 1.3)"))
        if self.lattice_spacing_m is not None and not self.lattice_spacing_m > 0:
            problems.append(Problem("TravelParams.lattice_spacing_m", "must be positive", "use e.g. 300"))
        if self.k_nearest is None and self.cutoff_m is None:
            problems.append(Problem("TravelParams", "neither k_nearest nor cutoff_m is set: the matrix would be "
                                    "dense", "set k_nearest (e.g. 20) and/or cutoff_m"))
        if self.k_nearest is not None and self.k_nearest < 1:
            problems.append(Problem("TravelParams.k_nearest", "must be >= 1", "use e.g. 20"))
        if self.connectors < 1 or self.source_chunk < 1:
            problems.append(Problem("TravelParams", "connectors and source_chunk must be >= 1", "use 8 and 64"))
        for key, name in self.mode_by_level.items():
            if name not in self.modes:
                problems.append(Problem("TravelParams.mode_by_level", f"{key} uses unknown mode '{name}'",
                                        f"use one of {sorted(self.modes)}"))
        for name, m in self.modes.items():
            if not m.speed_m_per_min > 0 or m.fixed_min < 0:
                problems.append(Problem(f"TravelParams.modes[{name!r}]", "speed must be > 0 and fixed time >= 0",
                                        "fix the mode definition"))
        raise_if_problems(problems, "invalid travel parameters", LayoutError)


@dataclass
class TravelCosts:
    """Sparse travel distances from units (rows) to sites (columns).

    unit_ids: (n_units,); site_ids: (n_sites,).
    distance_m: CSR (n_units, n_sites), metres.  The stored pattern is the set of kept pairs;
        a stored value can be 0.0 (a unit whose point coincides with a site) and is kept as an
        explicit entry — use :meth:`to_dense` / :meth:`lookup`, which mark absent pairs.
    straight_m: (nnz,) straight-line metres of each stored pair (aligned with ``distance_m.data``).
    crosses_river: (nnz,) bool, True when the pair's straight segment intersects a river away
        from a bridge (the trip goes round via a bridge).
    method: "lattice" or "roads".
    findings: reported problems that did not stop the computation (points outside the district,
        bridges off their river, unreachable units, ...).
    info: lattice spacing, node and edge counts, seconds.
    """

    unit_ids: np.ndarray
    site_ids: np.ndarray
    distance_m: sp.csr_matrix
    straight_m: np.ndarray
    crosses_river: np.ndarray
    method: str
    findings: list[Problem]
    info: dict

    @property
    def shape(self) -> tuple[int, int]:
        return self.distance_m.shape

    def to_dense(self, fill: float = np.inf) -> np.ndarray:
        """Dense (n_units, n_sites) metres with ``fill`` where a pair was not kept."""
        out = np.full(self.shape, fill, dtype=float)
        d = self.distance_m
        rows = np.repeat(np.arange(d.shape[0]), np.diff(d.indptr))
        out[rows, d.indices] = d.data
        return out

    def lookup(self, unit_index, site_index) -> np.ndarray:
        """Distances (metres) of the given (unit, site) index pairs; NaN where the pair was not kept."""
        u = np.asarray(unit_index, dtype=np.int64).ravel()
        s = np.asarray(site_index, dtype=np.int64).ravel()
        d = self.distance_m
        key = np.repeat(np.arange(d.shape[0], dtype=np.int64), np.diff(d.indptr)) * d.shape[1] + d.indices
        want = u * d.shape[1] + s
        pos = np.searchsorted(key, want)
        pos_c = np.minimum(pos, max(len(key) - 1, 0))
        found = (pos < len(key)) & (key[pos_c] == want) if len(key) else np.zeros(len(want), bool)
        out = np.full(len(want), np.nan)
        out[found] = d.data[pos_c[found]]
        return out


# --------------------------------------------------------------------------- geometry helpers

def _segments_of(lines: Sequence) -> np.ndarray:
    """Explode (multi)linestrings into an array of 2-point LineStrings (tight STRtree leaves)."""
    parts = shapely.get_parts(np.asarray([g for g in lines if g is not None and not shapely.is_empty(g)],
                                         dtype=object))
    parts = parts[shapely.get_type_id(parts) == 1]
    if parts.size == 0:
        return np.empty(0, dtype=object)
    coords, idx = shapely.get_coordinates(parts, return_index=True)
    same = idx[:-1] == idx[1:]
    a, b = coords[:-1][same], coords[1:][same]
    keep = (a != b).any(axis=1)
    return shapely.linestrings(np.stack([a[keep], b[keep]], axis=1))


def _crossing(tree: shapely.STRtree | None, a_xy: np.ndarray, b_xy: np.ndarray, chunk: int = 200_000) -> np.ndarray:
    """(n,) bool: does the segment a_i–b_i intersect any barrier segment in ``tree``?"""
    n = len(a_xy)
    out = np.zeros(n, dtype=bool)
    if tree is None or n == 0:
        return out
    for lo in range(0, n, chunk):
        a, b = a_xy[lo:lo + chunk], b_xy[lo:lo + chunk]
        geoms = np.empty(len(a), dtype=object)
        degenerate = (a == b).all(axis=1)
        if (~degenerate).any():
            geoms[~degenerate] = shapely.linestrings(np.stack([a[~degenerate], b[~degenerate]], axis=1))
        if degenerate.any():
            geoms[degenerate] = shapely.points(a[degenerate])
        hit = tree.query(geoms, predicate="intersects")[0]
        out[lo + hit] = True
    return out


@dataclass
class _Barrier:
    tree: shapely.STRtree | None
    bridge_xy: np.ndarray          # snapped bridges actually used, (b, 2)
    findings: list[Problem]


def _build_barrier(rivers: Sequence | None, bridge_xy: np.ndarray | None, bridge_ids, params: TravelParams) -> _Barrier:
    findings: list[Problem] = []
    if rivers is None or len(rivers) == 0:
        if bridge_xy is not None and len(bridge_xy):
            findings.append(Problem("bridges", f"{len(bridge_xy)} bridge(s) given but no river", "pass the rivers too"))
        return _Barrier(None, np.empty((0, 2)), findings)
    river_union = shapely.union_all(np.asarray(list(rivers), dtype=object))
    snapped = np.empty((0, 2))
    if bridge_xy is not None and len(bridge_xy):
        pts = shapely.points(np.asarray(bridge_xy, dtype=float))
        d = shapely.distance(pts, river_union)
        far = d > params.bridge_snap_m
        if far.any():
            ids = np.asarray(bridge_ids if bridge_ids is not None else np.arange(len(pts)))
            findings.append(Problem(
                "bridges", f"{far.sum()} bridge(s) lie more than {params.bridge_snap_m:.0f} m from any river "
                f"(up to {d[far].max():.0f} m); they open no crossing", "move them onto their river",
                format_rows(ids[far].tolist())))
        near = pts[~far]
        if near.size:
            snapped = shapely.get_coordinates(shapely.get_point(shapely.shortest_line(near, river_union), 1))
    barrier = river_union
    if len(snapped):
        gaps = shapely.union_all(shapely.buffer(shapely.points(snapped), params.bridge_half_width_m))
        barrier = shapely.difference(river_union, gaps)
    segs = _segments_of([barrier])
    tree = shapely.STRtree(segs) if segs.size else None
    return _Barrier(tree, snapped, findings)


def _lattice(extent, spacing: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nodes (N, 2) of a square grid inside ``extent`` and its 16-neighbour edges (i, j) with lengths."""
    xmin, ymin, xmax, ymax = shapely.bounds(extent)
    nx = int(np.floor((xmax - xmin) / spacing)) + 1
    ny = int(np.floor((ymax - ymin) / spacing)) + 1
    gx = xmin + spacing * np.arange(nx)
    gy = ymin + spacing * np.arange(ny)
    X, Y = np.meshgrid(gx, gy)                      # (ny, nx)
    shapely.prepare(extent)
    inside = shapely.contains_xy(extent, X, Y)
    label = np.full((ny, nx), -1, dtype=np.int64)
    label[inside] = np.arange(inside.sum())
    nodes = np.column_stack([X[inside], Y[inside]])
    ii, jj, ll = [], [], []
    for dx, dy in ((1, 0), (0, 1), (1, 1), (1, -1), (2, 1), (1, 2), (2, -1), (1, -2)):
        ys0, ys1 = (slice(0, ny - dy), slice(dy, ny)) if dy >= 0 else (slice(-dy, ny), slice(0, ny + dy))
        a = label[ys0, 0:nx - dx]
        b = label[ys1, dx:nx]
        ok = (a >= 0) & (b >= 0)
        ii.append(a[ok])
        jj.append(b[ok])
        ll.append(np.full(ok.sum(), spacing * np.hypot(dx, dy)))
    return nodes, np.concatenate(ii), np.concatenate(jj), np.concatenate(ll)


def _connect(points: np.ndarray, node_xy: np.ndarray, tree: cKDTree, k: int, max_len: float,
             barrier: shapely.STRtree | None) -> tuple[np.ndarray, np.ndarray]:
    """Access links of each point to up to k nearest nodes within max_len not crossing the barrier.

    Returns (n, k) node indices (0 where absent) and (n, k) lengths (inf where absent).
    """
    n = len(points)
    k = min(k, len(node_xy))
    if n == 0 or k == 0:
        return np.zeros((n, max(k, 1)), dtype=np.int64), np.full((n, max(k, 1)), np.inf)
    dist, idx = tree.query(points, k=k, distance_upper_bound=max_len)
    dist = np.asarray(dist, dtype=float).reshape(n, k)
    idx = np.asarray(idx).reshape(n, k)
    valid = np.isfinite(dist)
    idx = np.where(valid, idx, 0)
    rows, cols = np.nonzero(valid)
    cross = _crossing(barrier, points[rows], node_xy[idx[rows, cols]])
    dist[rows[cross], cols[cross]] = np.inf
    return idx.astype(np.int64), dist


def _symmetric_csr(i, j, w, n) -> sp.csr_matrix:
    g = sp.coo_matrix((np.concatenate([w, w]), (np.concatenate([i, j]), np.concatenate([j, i]))), shape=(n, n))
    g = g.tocsr()          # duplicates summed: avoid them upstream (edges are unique by construction)
    return g


def _graph_costs(graph: sp.csr_matrix, source_nodes: np.ndarray, target_idx: np.ndarray, target_len: np.ndarray,
                 chunk: int) -> np.ndarray:
    """(n_sources, n_targets) shortest costs: Dijkstra from graph nodes, targets read via access links."""
    n_s, n_t = len(source_nodes), len(target_idx)
    out = np.full((n_s, n_t), np.inf)
    if n_s == 0 or n_t == 0:
        return out
    for lo in range(0, n_s, chunk):
        D = dijkstra(graph, directed=True, indices=source_nodes[lo:lo + chunk])
        # (chunk, n_t, k) -> min over the access links
        out[lo:lo + chunk] = np.min(D[:, target_idx] + target_len[None, :, :], axis=2)
    return out


def _select_pairs(T: np.ndarray, lower: np.ndarray | None, groups: Sequence[np.ndarray], k: int | None,
                  cutoff: float | None) -> np.ndarray:
    """Boolean (n_u, n_s): the k smallest finite values of T per row within each group, plus T <= cutoff.

    When ``lower`` is given (a lower bound of the final cost, with T an upper bound), the returned
    mask is the *candidate* set: every pair that could end up kept once T is refined.
    """
    n_u, n_s = T.shape
    keep = np.zeros((n_u, n_s), dtype=bool)
    ref = T if lower is None else lower
    for cols in groups:
        cols = np.flatnonzero(cols)
        if cols.size == 0:
            continue
        sub = T[:, cols]
        if k is not None:
            if k >= cols.size:
                thr = np.full(n_u, np.inf)
                if lower is None:
                    keep[:, cols] |= np.isfinite(sub)
                    continue
            else:
                thr = np.partition(sub, k - 1, axis=1)[:, k - 1]
            if lower is None:
                # exactly k per row (ties broken by position), finite only
                part = np.argpartition(sub, k - 1, axis=1)[:, :k]
                rows = np.repeat(np.arange(n_u), k)
                c = cols[part.ravel()]
                ok = np.isfinite(T[rows, c])
                keep[rows[ok], c[ok]] = True
            else:
                if cutoff is not None:
                    thr = np.maximum(thr, cutoff)
                keep[:, cols] |= ref[:, cols] <= thr[:, None]
        elif cutoff is not None and lower is not None:
            keep[:, cols] |= ref[:, cols] <= cutoff
    if cutoff is not None:
        keep |= ref <= cutoff
    return keep & np.isfinite(ref)


# --------------------------------------------------------------------------- the core

def compute_travel_costs(unit_xy: np.ndarray, site_xy: np.ndarray, *, rivers: Sequence | None = None,
                         bridge_xy: np.ndarray | None = None, district=None, road_edges: Sequence | None = None,
                         params: TravelParams | None = None, site_groups: Mapping[str, np.ndarray] | None = None,
                         unit_ids: Sequence | None = None, site_ids: Sequence | None = None,
                         bridge_ids: Sequence | None = None) -> TravelCosts:
    """Sparse unit × site travel distances (metres) on a barrier-respecting graph.

    unit_xy: (n_units, 2) and site_xy: (n_sites, 2), metres in one metric CRS.
    rivers: shapely (Multi)LineStrings (barriers); bridge_xy: (n_bridges, 2) crossing points.
    district: shapely (Multi)Polygon; bounds the lattice and reports points outside it.
    road_edges: shapely LineStrings of a road network; when given, trips follow it.
    site_groups: name -> (n_sites,) bool; ``k_nearest`` is applied within each group (e.g. one
        group per level), so every unit keeps its K nearest sites of every level.  Default: one group.
    Returns :class:`TravelCosts`.  Unreachable units and the other reported findings are in
    ``.findings``; bad arguments raise :class:`LayoutError`.
    """
    t0 = time.perf_counter()
    params = params or TravelParams()
    params.validate()
    unit_xy = np.asarray(unit_xy, dtype=float).reshape(-1, 2)
    site_xy = np.asarray(site_xy, dtype=float).reshape(-1, 2)
    n_u, n_s = len(unit_xy), len(site_xy)
    unit_ids = np.asarray(unit_ids if unit_ids is not None else np.arange(n_u))
    site_ids = np.asarray(site_ids if site_ids is not None else np.arange(n_s))
    problems = []
    for name, xy, ids in (("unit_xy", unit_xy, unit_ids), ("site_xy", site_xy, site_ids)):
        bad = np.flatnonzero(~np.isfinite(xy).all(axis=1))
        if bad.size:
            problems.append(Problem(name, "non-finite coordinates", "give every point finite metric coordinates",
                                    format_rows(ids[bad].tolist())))
        if len(ids) != len(xy):
            problems.append(Problem(name, f"{len(xy)} points but {len(ids)} ids", "pass one id per point"))
    groups = [np.ones(n_s, dtype=bool)]
    if site_groups:
        groups = []
        for name, mask in site_groups.items():
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != (n_s,):
                problems.append(Problem(f"site_groups[{name!r}]", f"has shape {mask.shape}, expected ({n_s},)",
                                        "give one boolean per site"))
            else:
                groups.append(mask)
    raise_if_problems(problems, "cannot compute travel costs", LayoutError)
    findings: list[Problem] = []
    poly = extract_district_polygon(district) if district is not None else None
    findings += find_points_outside(unit_xy, unit_ids, poly, "units")
    findings += find_points_outside(site_xy, site_ids, poly, "sites")

    barrier = _build_barrier(rivers, bridge_xy, bridge_ids, params)
    findings += barrier.findings
    info: dict = {}
    if n_u == 0 or n_s == 0:
        empty = sp.csr_matrix((n_u, n_s))
        return TravelCosts(unit_ids, site_ids, empty, np.empty(0), np.empty(0, bool),
                           "roads" if road_edges is not None else "lattice", findings, info)

    det = params.detour_factor
    if road_edges is not None:
        method = "roads"
        node_xy, gi, gj, gw, road_findings = _road_graph(road_edges, params, barrier)
        findings += road_findings
        spacing = None
        max_access = np.inf
    else:
        method = "lattice"
        if poly is not None:
            extent = shapely.buffer(poly, params.lattice_margin_m)
        else:
            pts = shapely.multipoints(np.vstack([unit_xy, site_xy]))
            extent = shapely.buffer(shapely.envelope(pts), params.lattice_margin_m)
        spacing = params.lattice_spacing_m or max(25.0, float(np.sqrt(shapely.area(extent)
                                                                        / params.lattice_target_nodes)))
        node_xy, gi, gj, gl = _lattice(extent, spacing)
        cross = _crossing(barrier.tree, node_xy[gi], node_xy[gj])
        gi, gj, gw = gi[~cross], gj[~cross], gl[~cross] * det
        max_access = 3.0 * spacing
    info.update(method=method, spacing_m=spacing, graph_nodes=len(node_xy), graph_edges=len(gi))

    kd = cKDTree(node_xy) if len(node_xy) else None
    n_nodes = len(node_xy)
    # bridges become graph nodes joined to both banks (lattice only: a road network has its own bridges)
    extra_i, extra_j, extra_w = [], [], []
    n_bridge = 0
    if method == "lattice" and len(barrier.bridge_xy) and kd is not None:
        bidx, blen = _connect(barrier.bridge_xy, node_xy, kd, params.connectors, max_access, barrier.tree)
        n_bridge = len(barrier.bridge_xy)
        r, c = np.nonzero(np.isfinite(blen))
        extra_i.append(n_nodes + r)
        extra_j.append(bidx[r, c])
        extra_w.append(blen[r, c] * det)
    # Dijkstra from the smaller point set; the other reads costs through its access links
    sources_are_sites = n_s <= n_u
    src_xy, tgt_xy = (site_xy, unit_xy) if sources_are_sites else (unit_xy, site_xy)
    if kd is not None:
        sidx, slen = _connect(src_xy, node_xy, kd, params.connectors, max_access, barrier.tree)
        tidx, tlen = _connect(tgt_xy, node_xy, kd, params.connectors, max_access, barrier.tree)
    else:
        sidx = np.zeros((len(src_xy), 1), np.int64); slen = np.full((len(src_xy), 1), np.inf)
        tidx = np.zeros((len(tgt_xy), 1), np.int64); tlen = np.full((len(tgt_xy), 1), np.inf)
    base = n_nodes + n_bridge
    r, c = np.nonzero(np.isfinite(slen))
    extra_i.append(base + r)
    extra_j.append(sidx[r, c])
    extra_w.append(slen[r, c] * det)
    n_graph = base + len(src_xy)
    graph = _symmetric_csr(np.concatenate([gi] + extra_i), np.concatenate([gj] + extra_j),
                           np.concatenate([gw] + extra_w), n_graph)
    if method == "roads":
        for name, ln, ids in (("sites" if sources_are_sites else "units", slen, site_ids if sources_are_sites else unit_ids),
                              ("units" if sources_are_sites else "sites", tlen, unit_ids if sources_are_sites else site_ids)):
            far = ln.min(axis=1) > params.road_access_warn_m
            if far.any():
                findings.append(Problem(name, f"{far.sum()} point(s) are more than {params.road_access_warn_m:.0f} m "
                                        "from the road network (or only reach it across a river)",
                                        "check the road network covers them", format_rows(ids[far].tolist())))
    G = _graph_costs(graph, np.arange(base, n_graph), tidx, tlen * det, params.source_chunk)
    if sources_are_sites:
        G = G.T                                           # (n_u, n_s)
    G = np.ascontiguousarray(G)
    t_graph = time.perf_counter()

    straight = np.sqrt(((unit_xy[:, None, :] - site_xy[None, :, :]) ** 2).sum(axis=2))   # (n_u, n_s)
    if method == "lattice":
        lower = straight * det
        cand = _select_pairs(G, lower, groups, params.k_nearest, params.cutoff_m)
        cu, cs = np.nonzero(cand)
        clear = ~_crossing(barrier.tree, unit_xy[cu], site_xy[cs])
        T = G
        T[cu[clear], cs[clear]] = lower[cu[clear], cs[clear]]
        if n_bridge:
            # exact single-crossing trips: straight (or lattice) leg to a bridge, then on to the site
            xu, xs = cu[~clear], cs[~clear]
            via = _via_bridge_costs(graph, n_nodes, n_bridge, base, n_graph, tidx, tlen * det, sources_are_sites,
                                    unit_xy, site_xy, barrier, det, xu, xs)
            T[xu, xs] = np.minimum(T[xu, xs], via)
        crosses = np.zeros((n_u, n_s), dtype=bool)
        crosses[cu[~clear], cs[~clear]] = True
    else:
        T = G
        crosses = None
    keep = _select_pairs(T, None, groups, params.k_nearest, params.cutoff_m)
    ku, ks = np.nonzero(keep)
    dist = sp.csr_matrix((T[ku, ks], (ku, ks)), shape=(n_u, n_s))
    dist.sort_indices()
    # csr_matrix from COO keeps explicit zeros; recover row/col order of .data
    rows = np.repeat(np.arange(n_u), np.diff(dist.indptr))
    straight_k = straight[rows, dist.indices]
    if crosses is None:
        crosses_k = _crossing(barrier.tree, unit_xy[rows], site_xy[dist.indices])
    else:
        crosses_k = crosses[rows, dist.indices]

    for gname, cols in zip(site_groups.keys() if site_groups else ["all sites"], groups):
        if not cols.any():
            continue
        none = ~np.isfinite(T[:, cols]).any(axis=1)
        if none.any():
            findings.append(Problem(
                "units", f"{none.sum()} unit(s) cannot reach any site of '{gname}' "
                "(a river with no bridge between them, or no access to the network)",
                "add the missing bridge or road, or a site on their side", format_rows(unit_ids[none].tolist())))
    info.update(seconds_graph=t_graph - t0, seconds=time.perf_counter() - t0, kept_pairs=int(dist.nnz),
                sources="sites" if sources_are_sites else "units", bridges=int(n_bridge))
    return TravelCosts(unit_ids, site_ids, dist, straight_k, crosses_k, method, findings, info)


def _via_bridge_costs(graph, n_nodes, n_bridge, base, n_graph, tidx, tlen, sources_are_sites, unit_xy, site_xy,
                      barrier: _Barrier, det: float, xu: np.ndarray, xs: np.ndarray, chunk: int = 100_000) -> np.ndarray:
    """(len(xu),) cost of the best trip unit xu[i] -> one bridge -> site xs[i].

    Each leg is the straight line × detour when it crosses no river, else the lattice cost from
    Dijkstra run once from every bridge node.  Always a real path, so an upper bound of the true cost.
    """
    if len(xu) == 0:
        return np.empty(0)
    D = dijkstra(graph, directed=True, indices=np.arange(n_nodes, n_nodes + n_bridge))     # (B, n_graph)
    c_src = D[:, base:n_graph]                                                             # (B, n_src)
    c_tgt = np.min(D[:, tidx] + tlen[None, :, :], axis=2)                                  # (B, n_tgt)
    c_site, c_unit = (c_src, c_tgt) if sources_are_sites else (c_tgt, c_src)
    bxy = barrier.bridge_xy

    def legs(xy, graph_cost):                       # (B, n) best leg cost point <-> bridge
        n = len(xy)
        a = np.repeat(xy, n_bridge, axis=0)
        b = np.tile(bxy, (n, 1))
        clear = ~_crossing(barrier.tree, a, b).reshape(n, n_bridge).T
        straight = np.sqrt(((xy[None, :, :] - bxy[:, None, :]) ** 2).sum(axis=2)) * det
        return np.where(clear, straight, graph_cost)

    need_u, inv_u = np.unique(xu, return_inverse=True)
    need_s, inv_s = np.unique(xs, return_inverse=True)
    leg_u = legs(unit_xy[need_u], c_unit[:, need_u]).T         # (n_need_u, B)
    leg_s = legs(site_xy[need_s], c_site[:, need_s]).T         # (n_need_s, B)
    out = np.empty(len(xu))
    for lo in range(0, len(xu), chunk):
        sl = slice(lo, lo + chunk)
        out[sl] = np.min(leg_u[inv_u[sl]] + leg_s[inv_s[sl]], axis=1)
    return out


def _road_graph(road_edges: Sequence, params: TravelParams, barrier: _Barrier):
    """Junction nodes and weighted edges of a road network given as LineStrings (metres)."""
    geoms = np.asarray([g for g in road_edges], dtype=object)
    problems = []
    bad = np.flatnonzero(shapely.is_missing(geoms) | shapely.is_empty(geoms) | (shapely.get_type_id(geoms) != 1))
    if bad.size:
        problems.append(Problem("roads", "rows are not LineStrings", "give each road edge as a LineString "
                                "(explode MultiLineStrings)", format_rows(bad.tolist())))
    raise_if_problems(problems, "cannot build the road graph", LayoutError)
    start = shapely.get_coordinates(shapely.get_point(geoms, 0))
    end = shapely.get_coordinates(shapely.get_point(geoms, -1))
    ends = np.round(np.vstack([start, end]) / params.road_snap_m).astype(np.int64)
    uniq, inv = np.unique(ends, axis=0, return_inverse=True)
    inv = inv.ravel()
    node_xy = uniq.astype(float) * params.road_snap_m
    m = len(geoms)
    i, j = inv[:m], inv[m:]
    w = shapely.length(geoms)
    ok = i != j
    i, j, w = i[ok], j[ok], w[ok]
    # keep the shortest of parallel edges
    a, b = np.minimum(i, j), np.maximum(i, j)
    order = np.lexsort((w, b, a))
    a, b, w = a[order], b[order], w[order]
    first = np.r_[True, (a[1:] != a[:-1]) | (b[1:] != b[:-1])]
    a, b, w = a[first], b[first], w[first]
    findings = []
    if barrier.tree is not None:
        cross = np.flatnonzero(_crossing(barrier.tree, node_xy[a], node_xy[b]))
        if cross.size:
            findings.append(Problem("roads", f"{cross.size} road edge(s) cross a river away from any bridge; they are "
                                    "kept as crossings (the network is taken as given)",
                                    "add the bridges to bridges.geojson, or fix the road geometry"))
    return node_xy, a, b, w, findings


# --------------------------------------------------------------------------- minutes

def select_travel_modes(level: str, unit_urban: np.ndarray, params: TravelParams | None = None) -> list[str]:
    """Mode name per unit for pupils of ``level`` (kindergarten/primary/junior/senior)."""
    params = params or TravelParams()
    urban = np.asarray(unit_urban, dtype=bool)
    missing = [(level, u) for u in (True, False) if (level, u) not in params.mode_by_level]
    if missing:
        raise LayoutError("no travel mode for a level", [Problem(
            "TravelParams.mode_by_level", f"has no entry for {missing}", "add (level, urban) -> mode entries")])
    return [params.mode_by_level[(level, bool(u))] for u in urban]


def compute_travel_minutes(distance_m: sp.csr_matrix, unit_urban: np.ndarray, level: str,
                           params: TravelParams | None = None) -> sp.csr_matrix:
    """Travel minutes with the same sparsity pattern as ``distance_m`` (n_units, n_sites).

    minutes = distance_m / speed(mode) + fixed_min(mode), the mode chosen per unit by
    ``params.mode_by_level[(level, unit_urban)]``.
    """
    params = params or TravelParams()
    urban = np.asarray(unit_urban, dtype=bool)
    if urban.shape != (distance_m.shape[0],):
        raise LayoutError("unit_urban does not match the travel matrix", [Problem(
            "unit_urban", f"has shape {urban.shape}, expected ({distance_m.shape[0]},)", "give one flag per unit")])
    select_travel_modes(level, np.array([True, False]), params)    # raises when a (level, urban) has no mode
    rural, town = (params.modes[params.mode_by_level[(level, u)]] for u in (False, True))
    speed = np.where(urban, town.speed_m_per_min, rural.speed_m_per_min)
    fixed = np.where(urban, town.fixed_min, rural.fixed_min)
    d = distance_m.tocsr()
    rows = np.repeat(np.arange(d.shape[0]), np.diff(d.indptr))
    out = d.copy()
    out.data = d.data / speed[rows] + fixed[rows]
    return out


# --------------------------------------------------------------------------- GeoDataFrame adapter

def _line_geoms(gdf, layer: str) -> list:
    geoms = np.asarray(gdf.geometry.values, dtype=object)
    bad = np.flatnonzero(shapely.is_missing(geoms) | shapely.is_empty(geoms)
                         | ~np.isin(shapely.get_type_id(geoms), (1, 5)))
    if bad.size:
        raise LayoutError(f"{layer}: not all rows are lines", [Problem(
            layer, "rows without a (Multi)LineString geometry", "give every row a LineString", format_rows(bad.tolist()))])
    return list(geoms)


def _check_ids(gdf, column: str, layer: str) -> np.ndarray:
    if column not in gdf.columns:
        raise LayoutError(f"{layer}: no id column", [Problem(layer, f"has no column '{column}'",
                                                             f"add the id column '{column}'")])
    ids = np.asarray(gdf[column])
    s = gdf[column].astype(str)
    dup = s[s.duplicated(keep=False)].unique().tolist()
    if dup:
        raise LayoutError(f"{layer}: duplicate ids", [Problem(layer, f"{column} is not unique",
                                                              "give every row its own id", format_rows(dup))])
    return ids


def build_travel_costs(units, sites, *, rivers=None, bridges=None, district=None, roads=None,
                       params: TravelParams | None = None, site_groups: Mapping[str, np.ndarray] | None = None,
                       unit_id: str = "unit_code", site_id: str | None = None) -> TravelCosts:
    """GeoDataFrame adapter of :func:`compute_travel_costs`.

    All layers must be in one metric CRS (project with :func:`layout.geo.project_to_metric`);
    a missing or geographic CRS is a :class:`LayoutError` naming the layer.  Units travel from
    ``pop_lon``/``pop_lat`` (EPSG:4326 degrees, projected here) when present, else from a point
    on their polygon; sites from their point.  ``site_id`` defaults to ``school_id`` or ``site_id``.
    ``site_groups`` values may be boolean arrays or column names of ``sites`` (boolean columns).
    """
    check_metric_crs({"units": units, "sites": sites, "rivers": rivers, "bridges": bridges,
                      "district": district, "roads": roads})
    if site_id is None:
        site_id = "school_id" if "school_id" in sites.columns else "site_id"
    u_ids = _check_ids(units, unit_id, "units")
    s_ids = _check_ids(sites, site_id, "sites")
    unit_xy = extract_point_xy(units, "units")
    site_xy = extract_point_xy(sites, "sites", lonlat_columns=None)
    river_lines = _line_geoms(rivers, "rivers") if rivers is not None else None
    bridge_xy, bridge_ids = None, None
    if bridges is not None:
        bridge_xy = extract_point_xy(bridges, "bridges", lonlat_columns=None)
        bridge_ids = np.asarray(bridges["bridge_id"]) if "bridge_id" in bridges.columns else None
    road_lines = None
    if roads is not None:
        road_lines = list(shapely.get_parts(np.asarray(_line_geoms(roads, "roads"), dtype=object)))
    groups = None
    if site_groups:
        groups = {k: (np.asarray(sites[v], dtype=bool) if isinstance(v, str) else np.asarray(v, dtype=bool))
                  for k, v in site_groups.items()}
    return compute_travel_costs(unit_xy, site_xy, rivers=river_lines, bridge_xy=bridge_xy, district=district,
                                road_edges=road_lines, params=params, site_groups=groups, unit_ids=u_ids,
                                site_ids=s_ids, bridge_ids=bridge_ids)
