"""CRS checks and projection helpers for the layout package.

Every distance in `layout` is computed in a metric, projected CRS — by default
EPSG:4545 (CGCS2000 / 3-degree Gauss–Krüger CM 108E, metres), which covers
Fuling (106.9–107.7 E).  GeoJSON on disk is EPSG:4326 (lon/lat degrees); the
adapters here project it.  A layer with no CRS, or with a geographic CRS where
metres are needed, is a :class:`~layout.errors.LayoutError` that names the
layer and the fix.  Points outside the district are *findings*
(:class:`~forecast.errors.Problem` records returned to the caller, not raised):
a unit just across the boundary is still routable.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import shapely
from pyproj import CRS, Transformer

from forecast.errors import Problem, format_rows, raise_if_problems
from layout.errors import LayoutError

__all__ = [
    "METRIC_CRS",
    "check_metric_crs",
    "project_to_metric",
    "transform_lonlat_to_metric",
    "extract_point_xy",
    "extract_district_polygon",
    "find_points_outside",
    "label_river_sides",
]

#: The metric CRS used for computation (CGCS2000 / 3-degree Gauss–Krüger CM 108E, metres).
METRIC_CRS = "EPSG:4545"


def _crs_problem(gdf, layer: str, *, need_metric: bool) -> Problem | None:
    crs = getattr(gdf, "crs", None)
    if crs is None:
        return Problem(
            layer, "has no CRS, so its coordinates cannot be read as metres or degrees",
            "declare the CRS it was written in (GeoJSON: gdf.set_crs('EPSG:4326')), then project with "
            f"layout.geo.project_to_metric(gdf, '{layer}') ({METRIC_CRS})")
    crs = CRS.from_user_input(crs)
    if need_metric and crs.is_geographic:
        return Problem(
            layer, f"is in a geographic CRS ({crs.to_string()}, degrees) where metres are needed",
            f"project it first: layout.geo.project_to_metric(gdf, '{layer}') (or gdf.to_crs('{METRIC_CRS}'))")
    if need_metric:
        units = {ax.unit_name for ax in crs.axis_info}
        if not units <= {"metre", "meter"}:
            return Problem(layer, f"is in a projected CRS whose axis unit is not the metre ({sorted(units)})",
                           f"project it to a metric CRS: gdf.to_crs('{METRIC_CRS}')")
    return None


def check_metric_crs(layers: dict) -> CRS:
    """Check that every GeoDataFrame in ``layers`` (name -> gdf, ``None`` skipped) is in one metric CRS.

    Returns that CRS.  Raises :class:`LayoutError` listing every layer with no
    CRS, a geographic (degree) CRS, a non-metre projected CRS, or a CRS that
    differs from the others.
    """
    problems: list[Problem] = []
    crss: dict[str, CRS] = {}
    for name, gdf in layers.items():
        if gdf is None:
            continue
        p = _crs_problem(gdf, name, need_metric=True)
        if p is not None:
            problems.append(p)
        else:
            crss[name] = CRS.from_user_input(gdf.crs)
    if crss and not problems:
        first_name, first = next(iter(crss.items()))
        for name, crs in crss.items():
            if crs != first:
                problems.append(Problem(
                    name, f"is in {crs.to_string()} but '{first_name}' is in {first.to_string()}",
                    f"project every layer to the same metric CRS, e.g. gdf.to_crs('{METRIC_CRS}')"))
    raise_if_problems(problems, "layers cannot be measured in metres", LayoutError)
    if not crss:
        raise LayoutError("no layer given to check_metric_crs")
    return next(iter(crss.values()))


def project_to_metric(gdf, layer: str, crs: str = METRIC_CRS):
    """Return ``gdf`` projected to the metric CRS ``crs`` (default EPSG:4545).

    The layer must declare its CRS (GeoJSON is EPSG:4326); a missing CRS is a
    :class:`LayoutError` naming ``layer`` and the fix.  Empty or missing
    geometries are reported too (row numbers), since they cannot be measured.
    """
    problems: list[Problem] = []
    p = _crs_problem(gdf, layer, need_metric=False)
    if p is not None:
        problems.append(p)
    geom = np.asarray(gdf.geometry.values, dtype=object)
    bad = np.flatnonzero(shapely.is_missing(geom) | shapely.is_empty(geom))
    if bad.size:
        problems.append(Problem(layer, f"{bad.size} row(s) have no geometry", "give every row a geometry or drop it",
                                format_rows(bad.tolist())))
    raise_if_problems(problems, f"cannot project layer '{layer}' to {crs}", LayoutError)
    return gdf.to_crs(crs)


def transform_lonlat_to_metric(lon, lat, crs=METRIC_CRS) -> np.ndarray:
    """Project lon/lat degrees (EPSG:4326) to ``crs``; returns an (n, 2) array of x, y in metres."""
    tr = Transformer.from_crs("EPSG:4326", CRS.from_user_input(crs), always_xy=True)
    x, y = tr.transform(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    return np.column_stack([np.asarray(x, dtype=float), np.asarray(y, dtype=float)])


def extract_point_xy(gdf, layer: str, lonlat_columns: Sequence[str] | None = ("pop_lon", "pop_lat")) -> np.ndarray:
    """The travel point of each row of a metric layer, as an (n, 2) array of x, y metres.

    When ``lonlat_columns`` are present (units carry a population-weighted
    point ``pop_lon``/``pop_lat`` in EPSG:4326 degrees) they are projected to
    the layer's CRS; otherwise points are used as they are and polygons give
    their representative point.  Rows whose point is missing or not finite
    raise a :class:`LayoutError` listing them.
    """
    crs = check_metric_crs({layer: gdf})
    if lonlat_columns is not None and all(c in gdf.columns for c in lonlat_columns):
        lon = np.asarray(gdf[lonlat_columns[0]], dtype=float)
        lat = np.asarray(gdf[lonlat_columns[1]], dtype=float)
        xy = transform_lonlat_to_metric(lon, lat, crs)
        source = f"{layer} columns {lonlat_columns[0]}/{lonlat_columns[1]}"
    else:
        geom = np.asarray(gdf.geometry.values, dtype=object)
        ok = ~(shapely.is_missing(geom) | shapely.is_empty(geom))
        pts = np.empty(len(geom), dtype=object)
        pts[ok] = shapely.point_on_surface(geom[ok])
        xy = np.full((len(geom), 2), np.nan)
        if ok.any():
            xy[ok] = shapely.get_coordinates(pts[ok])
        source = f"{layer} geometry"
    bad = np.flatnonzero(~np.isfinite(xy).all(axis=1))
    if bad.size:
        raise LayoutError(f"{layer}: {bad.size} row(s) have no usable location", [
            Problem(source, "missing or non-finite coordinates", "give every row a point (or pop_lon/pop_lat)",
                    format_rows(bad.tolist()))])
    return xy


def extract_district_polygon(district) -> shapely.Geometry:
    """One (multi)polygon from a district layer (metric GeoDataFrame) or a shapely geometry."""
    if district is None:
        return None
    if isinstance(district, shapely.Geometry):
        geom = district
    else:
        check_metric_crs({"district": district})
        geom = shapely.union_all(np.asarray(district.geometry.values, dtype=object))
    if geom is None or shapely.is_empty(geom) or shapely.get_type_id(geom) not in (3, 6):
        raise LayoutError("district outline is not a polygon", [
            Problem("district", "has no polygon geometry", "pass the district outline (Polygon/MultiPolygon)")])
    return geom


def find_points_outside(xy: np.ndarray, ids: Sequence, district, layer: str,
                        tolerance_m: float = 1.0) -> list[Problem]:
    """Findings (not errors) for points lying outside the district polygon.

    ``xy`` is (n, 2) metres in the district's CRS; a point within
    ``tolerance_m`` of the boundary counts as inside.  Returns an empty list
    when all are inside or ``district`` is None; otherwise one
    :class:`Problem` naming the ids and the farthest distance outside.
    """
    if district is None or len(xy) == 0:
        return []
    poly = extract_district_polygon(district)
    shapely.prepare(poly)
    xy = np.asarray(xy, dtype=float)
    inside = shapely.contains_xy(poly, xy[:, 0], xy[:, 1])
    out = np.flatnonzero(~inside)
    if out.size == 0:
        return []
    d = shapely.distance(poly, shapely.points(xy[out]))
    far = d > tolerance_m
    out, d = out[far], d[far]
    if out.size == 0:
        return []
    ids = np.asarray(ids)
    return [Problem(layer, f"{out.size} point(s) lie outside the district (up to {d.max():.0f} m outside); "
                           "they are still routed but may be mis-coded",
                    "check their coordinates and township codes, or extend the district outline",
                    format_rows(ids[out].tolist()))]


def label_river_sides(xy: np.ndarray, district, rivers: Sequence, *, gap_m: float = 1.0) -> np.ndarray:
    """Label of the river-bounded part of the district each point lies in, ``(n,)`` int.

    The district polygon is cut by the river lines (buffered by ``gap_m``); parts are numbered by decreasing
    area.  A point on a river line or outside the district takes the label of the nearest part.  Used to keep
    at least one school on every bank that has pupils (bridges let pupils cross, but a bank without a school
    is not a layout the plan accepts).
    """
    poly = extract_district_polygon(district)
    cut = poly
    for line in rivers:
        cut = shapely.difference(cut, shapely.buffer(line, gap_m))
    parts = sorted(shapely.get_parts(cut), key=lambda p: -shapely.area(p))
    xy = np.asarray(xy, dtype=float)
    pts = shapely.points(xy)
    dist = np.column_stack([shapely.distance(p, pts) for p in parts]) if parts else np.zeros((len(xy), 1))
    return np.argmin(dist, axis=1)
