"""Travel-cost matrices between residential units and school sites, respecting river barriers.

Distances are metres in a metric CRS (EPSG:4545 by default, see :mod:`layout.geo`);
minutes follow from a travel mode chosen by school level and urban/rural.

Two ways to measure a trip:

* **Road network given** (``road_edges``): shortest paths on the network
  (``scipy.sparse.csgraph.dijkstra``); each point reaches the network by a
  straight access leg (length × ``detour_factor``) to one of its nearest network
  nodes, never across a river.
* **No network** (default): a *barrier-respecting lattice*.  A regular grid of
  nodes covers the district plus a margin (spacing chosen so the grid has about
  ``lattice_target_nodes`` nodes), each node linked to its 16 neighbours
  (steps (1,0), (1,1), (2,1) and their symmetric variants, so lattice paths are
  at most ~2.7 % longer than the straight line).  Every lattice edge that
  intersects a river is removed (river ends near the district edge are prolonged
  so that trips cannot slip round them in the margin); each bridge, snapped onto
  its river, is a graph node linked to its nearest lattice nodes on both banks,
  and opens a gap of ``2 × bridge_half_width_m`` in its river for straight trips.
  Edge weights are length × ``detour_factor``.  The cost of a pair is then

  - ``straight × detour_factor`` when the straight segment crosses no river
    (the straight line is the shortest path in the plane);
  - otherwise the best trip through a bridge, min over bridges b of
    leg(unit, b) + leg(b, site), each leg straight × detour when clear, else the
    lattice cost from one Dijkstra run per bridge;
  - and, for a pair on the same bank whose straight line still crosses a river
    (a meander, a river that ends), also the lattice cost from a Dijkstra run from
    that site.

  Pairs are examined lazily, nearest lower bound first, so only the pairs that
  can be kept are tested and Dijkstra runs from the bridges and a handful of
  sites, not from every site (``scipy.sparse.csgraph.dijkstra``; the unit side
  reads its costs through its access links by a vectorised min).

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
from scipy.sparse.csgraph import connected_components, dijkstra
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
    lattice_margin_m: the lattice extends this far beyond the district (or the points' envelope), so
        units just outside stay routable.
    bridge_snap_m: a bridge farther than this from every river is reported and ignored.
    bridge_half_width_m: half the width of the gap a bridge opens in its river.
    confluence_snap_m: a river end this close to another river is joined to it (reported).
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
    lattice_target_nodes: int = 12_000
    lattice_margin_m: float = 1_000.0
    bridge_snap_m: float = 300.0
    bridge_half_width_m: float = 20.0
    confluence_snap_m: float = 500.0
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

    def minutes(self, level: str, unit_urban: np.ndarray, params: "TravelParams | None" = None) -> sp.csr_matrix:
        """Travel minutes of every kept pair for pupils of ``level`` (see :func:`compute_travel_minutes`)."""
        return compute_travel_minutes(self.distance_m, unit_urban, level, params)

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


def _crossing(tree: shapely.STRtree | None, a_xy: np.ndarray, b_xy: np.ndarray, chunk: int = 200_000,
              trim_m: float = 0.0) -> np.ndarray:
    """(n,) bool: does the segment a_i–b_i intersect any barrier segment in ``tree``?

    ``trim_m`` > 0 shortens each segment by that much at both ends, so a trip that merely starts or
    ends on a river line (a unit whose point lies on the river) is not counted as crossing it.
    Lattice edges and access links are never trimmed (a node on a river must not join its banks).
    """
    n = len(a_xy)
    out = np.zeros(n, dtype=bool)
    if tree is None or n == 0:
        return out
    for lo in range(0, n, chunk):
        a, b = a_xy[lo:lo + chunk], b_xy[lo:lo + chunk]
        if trim_m > 0:
            d = b - a
            length = np.hypot(d[:, 0], d[:, 1])
            f = np.where(length > 2 * trim_m, trim_m / np.maximum(length, 1e-300), 0.5)[:, None]
            a, b = a + d * f, b - d * f
        geoms = np.empty(len(a), dtype=object)
        degenerate = (a == b).all(axis=1)
        if (~degenerate).any():
            geoms[~degenerate] = shapely.linestrings(np.stack([a[~degenerate], b[~degenerate]], axis=1))
        if degenerate.any():
            geoms[degenerate] = shapely.points(a[degenerate])
        hit = tree.query(geoms, predicate="intersects")[0]
        out[lo + hit] = True
    return out


_TRIM_M = 0.01      # trips may start or end on a river line (see _crossing)


@dataclass
class _Barrier:
    full: shapely.STRtree | None     # rivers without gaps: lattice edges and access links never cross them
    gapped: shapely.STRtree | None   # rivers with a gap at each bridge: straight trips and bridge links
    bridge_xy: np.ndarray            # portals, (b, 2): snapped bridges, then points just beyond free river ends
    findings: list[Problem]
    n_bridges: int = 0               # how many of the portals are bridges


def _extend_river_ends(lines: Sequence, core, spacing: float, reach: float,
                       confluence_m: float) -> tuple[list, list[str]]:
    """Close the river network where the data leave gaps.

    * An end within ``confluence_m`` of *another* river is joined to it (a tributary that stops
      short of its confluence would let trips slip between the rivers).
    * Any other end not well inside ``core`` is prolonged straight outwards by ``reach`` metres,
      so that a river clipped at the district boundary still cuts the lattice margin.
    A river that really ends inside the district keeps its end: trips may go round it.
    Returns the new lines and a note per joined end.
    """
    inner = shapely.buffer(core, -spacing)
    parts = shapely.get_parts(np.asarray(list(lines), dtype=object))
    parts = parts[shapely.get_type_id(parts) == 1]
    out, notes = [], []
    for i, part in enumerate(parts):
        c = shapely.get_coordinates(part)
        if len(c) < 2:
            continue
        others = shapely.union_all(np.delete(parts, i)) if len(parts) > 1 else None
        new = [c]
        for end, prev, at_start in ((c[0], c[1], True), (c[-1], c[-2], False)):
            add = None
            pt = shapely.points(end)
            if others is not None and not shapely.is_empty(others):
                gap = shapely.distance(pt, others)
                if 0 < gap <= confluence_m:
                    add = shapely.get_coordinates(shapely.get_point(shapely.shortest_line(pt, others), 1))
                    notes.append(f"a river end {gap:.0f} m short of another river was joined to it")
                elif gap == 0:
                    continue
            if add is None and (shapely.is_empty(inner) or not shapely.contains_xy(inner, end[0], end[1])):
                d = end - prev
                norm = np.hypot(*d)
                if norm > 0:
                    add = (end + d / norm * reach)[None, :]
            if add is not None:
                new = [add] + new if at_start else new + [add]
        out.append(shapely.linestrings(np.vstack(new)))
    return out, notes


def _free_ends(lines, extent, offset: float = 0.5) -> np.ndarray:
    """Points ``offset`` m beyond every river end that touches no other river and lies in ``extent``:
    trips round the end of a river turn there, so they become graph nodes like bridges."""
    parts = shapely.get_parts(shapely.line_merge(lines))
    parts = parts[shapely.get_type_id(parts) == 1]
    if parts.size == 0:
        return np.empty((0, 2))
    starts = shapely.get_coordinates(shapely.get_point(parts, 0))
    ends = shapely.get_coordinates(shapely.get_point(parts, -1))
    seconds = shapely.get_coordinates(shapely.get_point(parts, 1))
    penults = shapely.get_coordinates(shapely.get_point(parts, -2))
    tips = np.vstack([starts, ends])
    prev = np.vstack([seconds, penults])
    # an end shared with another piece (a confluence, noded by the union) is not free
    key = np.round(tips, 3)
    _, inv, count = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    free = (count[inv.ravel()] == 1) & shapely.contains_xy(extent, tips[:, 0], tips[:, 1])
    if not free.any():
        return np.empty((0, 2))
    d = tips[free] - prev[free]
    return tips[free] + d / np.hypot(d[:, 0], d[:, 1])[:, None] * offset


def _build_barrier(rivers: Sequence | None, bridge_xy: np.ndarray | None, bridge_ids, params: TravelParams,
                   core=None, spacing: float | None = None, extent=None) -> _Barrier:
    findings: list[Problem] = []
    if rivers is None or len(rivers) == 0:
        if bridge_xy is not None and len(bridge_xy):
            findings.append(Problem("bridges", f"{len(bridge_xy)} bridge(s) given but no river", "pass the rivers too"))
        return _Barrier(None, None, np.empty((0, 2)), findings)
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
    if core is not None and spacing is not None:
        lines, notes = _extend_river_ends(rivers, core, spacing, 4.0 * (params.lattice_margin_m + spacing),
                                          params.confluence_snap_m)
        river_union = shapely.union_all(np.asarray(lines, dtype=object))
        if notes:
            findings.append(Problem("rivers", "; ".join(notes), "draw tributaries up to the river they join"))
    full_segs = _segments_of([river_union])
    full = shapely.STRtree(full_segs) if full_segs.size else None
    gapped = full
    if len(snapped):
        gaps = shapely.union_all(shapely.buffer(shapely.points(snapped), params.bridge_half_width_m))
        segs = _segments_of([shapely.difference(river_union, gaps)])
        gapped = shapely.STRtree(segs) if segs.size else None
    ends = _free_ends(river_union, extent) if extent is not None else np.empty((0, 2))
    return _Barrier(full, gapped, np.vstack([snapped, ends]), findings, n_bridges=len(snapped))


def _lattice(extent, spacing: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Nodes (N, 2) of a square grid inside ``extent`` and its 16-neighbour edges (i, j) with lengths."""
    xmin, ymin, xmax, ymax = shapely.bounds(extent)
    nx = int(np.floor((xmax - xmin) / spacing)) + 1
    ny = int(np.floor((ymax - ymin) / spacing)) + 1
    X, Y = np.meshgrid(xmin + spacing * np.arange(nx), ymin + spacing * np.arange(ny))     # (ny, nx)
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
    idx = np.where(valid, idx, 0).astype(np.int64)
    rows, cols = np.nonzero(valid)
    cross = _crossing(barrier, points[rows], node_xy[idx[rows, cols]])
    dist[rows[cross], cols[cross]] = np.inf
    return idx, dist


def _symmetric_csr(i, j, w, n) -> sp.csr_matrix:
    """Undirected weighted graph as a symmetric CSR (edges are unique by construction)."""
    return sp.coo_matrix((np.concatenate([w, w]), (np.concatenate([i, j]), np.concatenate([j, i]))),
                         shape=(n, n)).tocsr()


def _gather(D: np.ndarray, idx: np.ndarray, length: np.ndarray) -> np.ndarray:
    """(n_src, n_pts): cost from each Dijkstra source to each point through its access links."""
    return np.min(D[:, idx] + length[None, :, :], axis=2)


def _graph_costs(graph: sp.csr_matrix, source_nodes: np.ndarray, target_idx: np.ndarray, target_len: np.ndarray,
                 chunk: int) -> np.ndarray:
    """(n_sources, n_targets) shortest costs: Dijkstra from graph nodes, targets read via access links."""
    out = np.full((len(source_nodes), len(target_idx)), np.inf)
    if len(source_nodes) == 0 or len(target_idx) == 0:
        return out
    for lo in range(0, len(source_nodes), chunk):
        D = dijkstra(graph, directed=True, indices=source_nodes[lo:lo + chunk])
        out[lo:lo + chunk] = _gather(D, target_idx, target_len)
    return out


def _select_pairs(T: np.ndarray, groups: Sequence[np.ndarray], k: int | None, cutoff: float | None) -> np.ndarray:
    """Boolean (n_u, n_s): per row the k smallest finite values of T within each group, plus T <= cutoff."""
    n_u, n_s = T.shape
    keep = np.zeros((n_u, n_s), dtype=bool)
    if k is not None:
        for cols in groups:
            cols = np.flatnonzero(cols)
            if cols.size == 0:
                continue
            if k >= cols.size:
                keep[:, cols] = True
                continue
            part = np.argpartition(T[:, cols], k - 1, axis=1)[:, :k]     # ties broken by position
            keep[np.repeat(np.arange(n_u), k), cols[part.ravel()]] = True
    if cutoff is not None:
        keep |= T <= cutoff
    return keep & np.isfinite(T)


def _point_component(idx: np.ndarray, length: np.ndarray, comp: np.ndarray) -> np.ndarray:
    """Lattice component of each point (that of its nearest usable link), -1 when it has none."""
    best = np.argmin(length, axis=1)
    ok = np.isfinite(length[np.arange(len(idx)), best])
    return np.where(ok, comp[idx[np.arange(len(idx)), best]], -1)


def _lattice_costs(unit_xy, site_xy, poly, barrier_args, params: TravelParams, groups, info, unit_ids, site_ids):
    """Exact-where-possible travel metres (n_u, n_s) on the barrier lattice; returns (V, state, findings).

    V holds final costs for every pair that can be kept; state: 1 straight trip clear of rivers,
    2 the straight line crosses a river (cost via bridges / round the river), 0 never needed.
    """
    det = params.detour_factor
    n_u, n_s = len(unit_xy), len(site_xy)
    core = poly if poly is not None else shapely.envelope(shapely.multipoints(np.vstack([unit_xy, site_xy])))
    extent = shapely.buffer(core, params.lattice_margin_m)
    spacing = params.lattice_spacing_m or max(25.0, float(np.sqrt(shapely.area(extent) / params.lattice_target_nodes)))
    barrier = _build_barrier(*barrier_args, params, core=core, spacing=spacing, extent=extent)
    findings = list(barrier.findings)
    node_xy, ei, ej, el = _lattice(extent, spacing)
    cross = _crossing(barrier.full, node_xy[ei], node_xy[ej])
    ei, ej, ew = ei[~cross], ej[~cross], el[~cross] * det
    n_nodes, n_b = len(node_xy), len(barrier.bridge_xy)
    _, comp = connected_components(_symmetric_csr(ei, ej, ew, n_nodes), directed=False)
    kd = cKDTree(node_xy)
    max_link = 3.0 * spacing
    uidx, ulen = _connect(unit_xy, node_xy, kd, params.connectors, max_link, barrier.full)
    sidx, slen = _connect(site_xy, node_xy, kd, params.connectors, max_link, barrier.full)
    bidx, blen = _connect(barrier.bridge_xy, node_xy, kd, params.connectors, max_link, barrier.gapped)
    ulen, slen, blen = ulen * det, slen * det, blen * det
    comp_u, comp_s = _point_component(uidx, ulen, comp), _point_component(sidx, slen, comp)
    for name, c, ids in (("units", comp_u, unit_ids), ("sites", comp_s, site_ids)):
        if (c < 0).any():
            findings.append(Problem(name, f"{(c < 0).sum()} point(s) have no link to the travel lattice (on a river, "
                                    "in a pocket between rivers, or far outside the district); only straight trips "
                                    "and bridges serve them", "check their coordinates",
                                    format_rows(ids[c < 0].tolist())))
    # graph: lattice nodes, then bridge nodes, then site nodes (leaves); units are read via their links
    base_s = n_nodes + n_b
    rb, cb = np.nonzero(np.isfinite(blen))
    rs, cs_ = np.nonzero(np.isfinite(slen))
    graph = _symmetric_csr(np.concatenate([ei, n_nodes + rb, base_s + rs]),
                           np.concatenate([ej, bidx[rb, cb], sidx[rs, cs_]]),
                           np.concatenate([ew, blen[rb, cb], slen[rs, cs_]]), base_s + n_s)
    info.update(spacing_m=spacing, graph_nodes=n_nodes, graph_edges=len(ei), bridges=barrier.n_bridges,
                river_ends=n_b - barrier.n_bridges, components=int(comp.max() + 1))

    # trips through at least one portal (bridge or river end): legs point <-> portal, straight when
    # clear, else the lattice
    via = np.full((n_u, n_s), np.inf)
    if n_b:
        D = dijkstra(graph, directed=True, indices=np.arange(n_nodes, n_nodes + n_b))     # (B, n_graph)
        leg_u = _legs(unit_xy, barrier, _gather(D, uidx, ulen), det)                      # (n_u, B)
        leg_s = _legs(site_xy, barrier, _gather(D, sidx, slen), det)                      # (n_s, B)
        step = max(1, 4_000_000 // max(1, n_s * n_b))
        for lo in range(0, n_u, step):
            via[lo:lo + step] = np.min(leg_u[lo:lo + step, None, :] + leg_s[None, :, :], axis=2)
    lower = np.sqrt(((unit_xy[:, None, :] - site_xy[None, :, :]) ** 2).sum(axis=2)) * det
    same = (comp_u[:, None] == comp_s[None, :]) & (comp_u[:, None] >= 0)
    V = lower.copy()
    state = np.zeros((n_u, n_s), dtype=np.int8)
    # known banks that differ, and no portal reachable from both: no trip at all
    dead = (comp_u[:, None] >= 0) & (comp_s[None, :] >= 0) & ~same & ~np.isfinite(via)
    V[dead] = np.inf
    state[dead] = 2
    G = np.full((n_u, n_s), np.nan)             # lattice columns, computed only for sites that need one
    have_col = np.zeros(n_s, dtype=bool)
    rounds = tested = 0
    rows = np.arange(n_u)              # rows whose selection may contain untested pairs
    while rows.size:
        todo = _select_pairs(V[rows], groups, params.k_nearest, params.cutoff_m) & (state[rows] == 0)
        tr, ts = np.nonzero(todo)
        tu = rows[tr]
        if tu.size == 0:
            break
        rounds += 1
        tested += tu.size
        clear = ~_crossing(barrier.gapped, unit_xy[tu], site_xy[ts], trim_m=_TRIM_M)
        state[tu[clear], ts[clear]] = 1
        xu, xs = tu[~clear], ts[~clear]
        state[xu, xs] = 2
        V[xu, xs] = via[xu, xs]
        hard = same[xu, xs]                      # same bank, straight line crosses a river (meander, river end)
        if hard.any():
            hu, hs = xu[hard], xs[hard]
            need = np.unique(hs[~have_col[hs]])
            if need.size:
                G[:, need] = _graph_costs(graph, base_s + need, uidx, ulen, params.source_chunk).T
                have_col[need] = True
            V[hu, hs] = np.minimum(V[hu, hs], G[hu, hs])
        rows = np.unique(xu)           # only rows where a cost rose above its lower bound can re-select
    info.update(rounds=rounds, pairs_tested=int(tested), lattice_sources=int(have_col.sum()))
    return V, state, findings


def _legs(xy: np.ndarray, barrier: _Barrier, graph_cost: np.ndarray, det: float) -> np.ndarray:
    """(n, B) cost point -> bridge: straight × detour when the segment crosses no river, else lattice."""
    n, b = len(xy), len(barrier.bridge_xy)
    a = np.repeat(xy, b, axis=0)
    c = np.tile(barrier.bridge_xy, (n, 1))
    clear = ~_crossing(barrier.gapped, a, c, trim_m=_TRIM_M).reshape(n, b)
    straight = np.sqrt(((xy[:, None, :] - barrier.bridge_xy[None, :, :]) ** 2).sum(axis=2)) * det
    return np.where(clear, straight, graph_cost.T)


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

    Lattice method: Dijkstra runs once from every bridge (trips via bridges) and only from the
    few sites that have a same-bank pair whose straight line crosses a river; every other kept
    pair is a straight trip × detour.  Pairs are examined lazily, nearest first, until each
    unit's K nearest per group (and those within the cut-off) are exact.
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
        if len(ids) != len(xy):
            problems.append(Problem(name, f"{len(xy)} points but {len(ids)} ids", "pass one id per point"))
            continue
        bad = np.flatnonzero(~np.isfinite(xy).all(axis=1))
        if bad.size:
            problems.append(Problem(name, "non-finite coordinates", "give every point finite metric coordinates",
                                    format_rows(ids[bad].tolist())))
    names, groups = ["all sites"], [np.ones(n_s, dtype=bool)]
    if site_groups:
        names, groups = [], []
        for name, mask in site_groups.items():
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != (n_s,):
                problems.append(Problem(f"site_groups[{name!r}]", f"has shape {mask.shape}, expected ({n_s},)",
                                        "give one boolean per site"))
            elif not any((mask == g).all() for g in groups):       # identical groups select the same pairs
                names.append(name)
                groups.append(mask)
    raise_if_problems(problems, "cannot compute travel costs", LayoutError)
    poly = extract_district_polygon(district) if district is not None else None
    findings: list[Problem] = []
    findings += find_points_outside(unit_xy, unit_ids, poly, "units")
    findings += find_points_outside(site_xy, site_ids, poly, "sites")
    method = "roads" if road_edges is not None else "lattice"
    info: dict = {"method": method}
    if n_u == 0 or n_s == 0:
        return TravelCosts(unit_ids, site_ids, sp.csr_matrix((n_u, n_s)), np.empty(0), np.empty(0, bool),
                           method, findings, info)
    barrier_args = (rivers, bridge_xy, bridge_ids)
    if method == "roads":
        barrier = _build_barrier(*barrier_args, params)
        findings += barrier.findings
        V, road_findings = _road_costs(unit_xy, site_xy, unit_ids, site_ids, road_edges, barrier, params, info)
        findings += road_findings
        state = None
    else:
        V, state, lattice_findings = _lattice_costs(unit_xy, site_xy, poly, barrier_args, params, groups, info,
                                                    unit_ids, site_ids)
        findings += lattice_findings
        barrier = None
    keep = _select_pairs(V, groups, params.k_nearest, params.cutoff_m)
    ku, ks = np.nonzero(keep)                    # row-major: already CSR order
    indptr = np.concatenate([[0], np.cumsum(np.bincount(ku, minlength=n_u))])
    dist = sp.csr_matrix((V[ku, ks], ks, indptr), shape=(n_u, n_s))   # explicit zeros are kept
    straight_k = np.sqrt(((unit_xy[ku] - site_xy[ks]) ** 2).sum(axis=1))
    if state is None:
        crosses_k = _crossing(barrier.gapped, unit_xy[ku], site_xy[ks], trim_m=_TRIM_M)
    else:
        crosses_k = state[ku, ks] == 2
    for gname, cols in zip(names, groups):
        if not cols.any():
            continue
        none = ~np.isfinite(V[:, cols]).any(axis=1)
        if none.any():
            findings.append(Problem(
                "units", f"{none.sum()} unit(s) cannot reach any site of '{gname}' "
                "(a river with no bridge between them, or no access to the network)",
                "add the missing bridge or road, or a site on their side", format_rows(unit_ids[none].tolist())))
    info.update(seconds=time.perf_counter() - t0, kept_pairs=int(dist.nnz))
    return TravelCosts(unit_ids, site_ids, dist, straight_k, crosses_k, method, findings, info)


def _road_costs(unit_xy, site_xy, unit_ids, site_ids, road_edges, barrier: _Barrier, params: TravelParams, info):
    """(n_u, n_s) shortest road-network metres: access legs × detour + network path."""
    det = params.detour_factor
    node_xy, gi, gj, gw, findings = _road_graph(road_edges, params, barrier)
    n_nodes = len(node_xy)
    info.update(graph_nodes=n_nodes, graph_edges=len(gi))
    kd = cKDTree(node_xy)
    sources_are_sites = len(site_xy) <= len(unit_xy)
    src_xy, tgt_xy = (site_xy, unit_xy) if sources_are_sites else (unit_xy, site_xy)
    src_ids, tgt_ids = (site_ids, unit_ids) if sources_are_sites else (unit_ids, site_ids)
    sidx, slen = _connect(src_xy, node_xy, kd, params.connectors, np.inf, barrier.full)
    tidx, tlen = _connect(tgt_xy, node_xy, kd, params.connectors, np.inf, barrier.full)
    for name, ln, ids in (("sources", slen, src_ids), ("targets", tlen, tgt_ids)):
        label = ("sites" if sources_are_sites else "units") if name == "sources" else \
            ("units" if sources_are_sites else "sites")
        far = ln.min(axis=1) > params.road_access_warn_m
        if far.any():
            findings.append(Problem(label, f"{far.sum()} point(s) are more than {params.road_access_warn_m:.0f} m "
                                    "from the road network (or only reach it across a river)",
                                    "check the road network covers them", format_rows(ids[far].tolist())))
    r, c = np.nonzero(np.isfinite(slen))
    graph = _symmetric_csr(np.concatenate([gi, n_nodes + r]), np.concatenate([gj, sidx[r, c]]),
                           np.concatenate([gw, slen[r, c] * det]), n_nodes + len(src_xy))
    G = _graph_costs(graph, n_nodes + np.arange(len(src_xy)), tidx, tlen * det, params.source_chunk)
    info.update(sources="sites" if sources_are_sites else "units")
    return np.ascontiguousarray(G.T if sources_are_sites else G), findings


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
    if barrier.gapped is not None:
        cross = np.flatnonzero(_crossing(barrier.gapped, node_xy[a], node_xy[b]))
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
