"""Travel costs: river barriers, bridges, sparsity, modes, CRS checks, bad input — on hand-made geometry."""
from __future__ import annotations

import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import scipy.sparse as sp
import shapely

from layout.errors import LayoutError
from layout.geo import METRIC_CRS, check_metric_crs, extract_point_xy, find_points_outside, project_to_metric
from layout.travel import (TravelParams, build_travel_costs, compute_travel_costs, compute_travel_minutes,
                           select_travel_modes)

ROOT = Path(__file__).resolve().parents[2]
DET = 1.3
# a straight river along y = 0 across a 6 km square district, one bridge at x = 2000
RIVER = [shapely.LineString([(-3000, 0), (3000, 0)])]
DISTRICT = shapely.box(-3000, -3000, 3000, 3000)
BRIDGE = np.array([[2000.0, 0.0]])
FINE = TravelParams(lattice_spacing_m=100.0, lattice_margin_m=300.0, k_nearest=10)


def test_trip_across_river_goes_via_the_bridge():
    units = np.array([[0.0, -500.0], [0.0, -100.0], [1500.0, -2000.0]])
    sites = np.array([[0.0, 500.0], [300.0, -300.0]])
    tc = compute_travel_costs(units, sites, rivers=RIVER, bridge_xy=BRIDGE, district=DISTRICT, params=FINE)
    d = tc.to_dense()
    b = BRIDGE[0]
    via = lambda u, s: (np.hypot(*(u - b)) + np.hypot(*(s - b))) * DET  # noqa: E731
    for i in range(3):
        assert d[i, 0] == pytest.approx(via(units[i], sites[0]), rel=1e-9)
        assert d[i, 1] == pytest.approx(np.hypot(*(units[i] - sites[1])) * DET, rel=1e-12)
    # the straight 1000 m trip across the river costs ~5.4 km, not 1.3 km
    assert d[0, 0] > 5 * 1000
    dense_cross = np.zeros((3, 2), bool)
    dense_cross[:, 0] = True
    rows = np.repeat(np.arange(3), np.diff(tc.distance_m.indptr))
    assert (tc.crosses_river == dense_cross[rows, tc.distance_m.indices]).all()
    assert tc.straight_m[0] == pytest.approx(1000.0)
    assert tc.findings == []


def test_straight_trip_costs_straight_times_detour():
    rng = np.random.default_rng(3)
    units = rng.uniform(-2500, -200, (30, 2))            # all south of the river
    sites = rng.uniform(-2500, -200, (12, 2))
    p = TravelParams(detour_factor=1.25, lattice_spacing_m=200, k_nearest=12)
    tc = compute_travel_costs(units, sites, rivers=RIVER, bridge_xy=BRIDGE, district=DISTRICT, params=p)
    straight = np.sqrt(((units[:, None] - sites[None]) ** 2).sum(axis=2))
    np.testing.assert_allclose(tc.to_dense(), straight * 1.25, rtol=1e-12)
    assert not tc.crosses_river.any()


def test_trip_round_the_end_of_a_river_without_bridge():
    # a river that ends inside the district: the trip goes round its end, no bridge needed
    river = [shapely.LineString([(0, -5000), (0, 1000)])]      # ends at (0, 1000), well inside
    district = shapely.box(-4000, -4000, 4000, 4000)
    units = np.array([[-600.0, 0.0]])
    sites = np.array([[600.0, 0.0]])
    p = TravelParams(detour_factor=1.0, lattice_spacing_m=50, lattice_margin_m=200, k_nearest=1)
    tc = compute_travel_costs(units, sites, rivers=river, district=district, params=p)
    exact = 2 * np.hypot(600, 1000)                             # geodesic via the river end
    got = tc.to_dense()[0, 0]
    assert exact <= got <= exact * 1.03                          # 16-neighbour lattice: <= 2.7 % longer
    assert tc.crosses_river[0]


def test_river_without_bridge_makes_the_other_bank_unreachable_finding_not_crash():
    units = np.array([[0.0, -500.0], [100.0, -800.0]])
    sites = np.array([[0.0, 500.0]])
    tc = compute_travel_costs(units, sites, rivers=RIVER, district=DISTRICT, params=FINE, unit_ids=["U1", "U2"])
    assert tc.distance_m.nnz == 0
    assert np.isinf(tc.to_dense()).all()
    msg = " ".join(f.format() for f in tc.findings)
    assert "cannot reach any site" in msg and "U1" in msg and "U2" in msg


def test_bridge_off_the_river_is_reported_and_opens_nothing():
    units = np.array([[0.0, -500.0]])
    sites = np.array([[0.0, 500.0]])
    tc = compute_travel_costs(units, sites, rivers=RIVER, bridge_xy=np.array([[0.0, 2000.0]]), bridge_ids=["B9"],
                              district=DISTRICT, params=FINE)
    msg = " ".join(f.format() for f in tc.findings)
    assert "B9" in msg and "from any river" in msg
    assert np.isinf(tc.to_dense()[0, 0])


def test_tributary_stopping_short_of_its_river_is_joined_and_reported():
    # the tributary ends 200 m short of the main river: without the join, trips would slip through
    trib = shapely.LineString([(-1000, 3000 + 300), (-1000, 200)])
    units = np.array([[-1500.0, 1000.0]])
    sites = np.array([[-500.0, 1000.0]])
    tc = compute_travel_costs(units, sites, rivers=RIVER + [trib], bridge_xy=np.array([[-1000.0, 2500.0]]),
                              district=DISTRICT, params=FINE)
    assert any("joined" in f.message for f in tc.findings)
    b = np.array([-1000.0, 2500.0])
    expected = (np.hypot(*(units[0] - b)) + np.hypot(*(sites[0] - b))) * DET
    assert tc.to_dense()[0, 0] == pytest.approx(expected, rel=1e-9)


def test_k_nearest_per_group_and_cutoff_are_exact_and_sparse():
    rng = np.random.default_rng(7)
    units = rng.uniform(-2800, 2800, (60, 2))
    sites = rng.uniform(-2800, 2800, (25, 2))
    bridges = np.array([[-1500.0, 0.0], [1500.0, 0.0]])
    full = compute_travel_costs(units, sites, rivers=RIVER, bridge_xy=bridges, district=DISTRICT,
                                params=TravelParams(lattice_spacing_m=100, k_nearest=25)).to_dense()
    # analytic geodesic: same bank -> straight; other bank -> best bridge
    straight = np.sqrt(((units[:, None] - sites[None]) ** 2).sum(axis=2))
    via = np.min(np.sqrt(((units[:, None, :] - bridges[None]) ** 2).sum(axis=2))[:, None, :]
                 + np.sqrt(((sites[:, None, :] - bridges[None]) ** 2).sum(axis=2))[None, :, :], axis=2)
    other_bank = np.sign(units[:, 1])[:, None] != np.sign(sites[:, 1])[None, :]
    # (a straight line through a bridge's 40 m gap counts as crossing there: up to a few metres shorter)
    np.testing.assert_allclose(full, np.where(other_bank, via, straight) * DET, rtol=1e-3)
    assert (full <= np.where(other_bank, via, straight) * DET + 1e-6).all()
    groups = {"even": np.arange(25) % 2 == 0, "odd": np.arange(25) % 2 == 1}
    p = TravelParams(lattice_spacing_m=100, k_nearest=3, cutoff_m=1500.0)
    tc = compute_travel_costs(units, sites, rivers=RIVER, bridge_xy=bridges, district=DISTRICT, params=p,
                              site_groups=groups)
    assert sp.isspmatrix_csr(tc.distance_m) or isinstance(tc.distance_m, sp.csr_matrix)
    kept = np.isfinite(tc.to_dense())
    within = full <= 1500.0
    for mask in groups.values():
        sub = full[:, mask]
        kth = np.sort(sub, axis=1)[:, [2]]
        assert (kept[:, mask] | (sub > kth)).all()                 # the 3 nearest of each group are kept
        assert (kept[:, mask] <= ((sub <= kth) | within[:, mask])).all()   # and nothing else beyond the cut-off
    np.testing.assert_allclose(tc.to_dense()[kept], full[kept], rtol=1e-9)   # kept costs equal all-pairs costs
    assert (kept | ~within).all()                      # everything within the cut-off is kept
    assert tc.distance_m.nnz < full.size


def test_unit_on_a_site_keeps_an_explicit_zero():
    tc = compute_travel_costs(np.array([[100.0, -100.0]]), np.array([[100.0, -100.0], [400.0, -100.0]]),
                              rivers=RIVER, bridge_xy=BRIDGE, district=DISTRICT, params=FINE)
    assert tc.distance_m.nnz == 2
    assert tc.to_dense()[0, 0] == 0.0
    assert tc.lookup([0, 0], [0, 1]).tolist() == [0.0, pytest.approx(300 * DET)]


def test_road_network_shortest_path():
    # a 1 km square loop of roads; a unit near one corner, a site near the opposite corner
    sq = [(0, 0), (1000, 0), (1000, 1000), (0, 1000)]
    roads = [shapely.LineString([sq[i], sq[(i + 1) % 4]]) for i in range(4)]
    units = np.array([[0.0, -10.0]])
    sites = np.array([[1010.0, 1000.0], [500.0, 0.0]])
    p = TravelParams(detour_factor=1.5, k_nearest=2, connectors=1)
    tc = compute_travel_costs(units, sites, road_edges=roads, params=p)
    assert tc.method == "roads"
    d = tc.to_dense()
    assert d[0, 0] == pytest.approx(10 * 1.5 + 2000 + 10 * 1.5)
    # the mid-edge site reaches the network at its nearest junction (a corner 500 m away)
    assert d[0, 1] == pytest.approx(10 * 1.5 + 0 + 500 * 1.5)


def test_road_crossing_a_river_away_from_bridges_is_reported():
    roads = [shapely.LineString([(0, -500), (0, 500)])]
    tc = compute_travel_costs(np.array([[0.0, -500.0]]), np.array([[0.0, 500.0]]), road_edges=roads,
                              rivers=RIVER, params=TravelParams(k_nearest=1))
    assert any("cross a river away from any bridge" in f.message for f in tc.findings)
    assert tc.to_dense()[0, 0] == pytest.approx(1000.0)


def test_minutes_by_level_and_urban():
    d = sp.csr_matrix(np.array([[1000.0, 2000.0], [3000.0, 0.0]]))
    d.eliminate_zeros()
    urban = np.array([True, False])
    p = TravelParams()
    m = compute_travel_minutes(d, urban, "primary", p).toarray()
    assert m[0, 0] == pytest.approx(1000 / (4000 / 60))             # urban primary walks at 4 km/h
    assert m[1, 0] == pytest.approx(3000 / (20000 / 60) + 10.0)      # rural primary by bus: 20 km/h + 10 min
    assert select_travel_modes("junior", urban, p) == ["walk", "bus"]
    tc = compute_travel_costs(np.array([[0.0, 0.0]]), np.array([[0.0, 1000.0]]), params=TravelParams(k_nearest=1))
    assert tc.minutes("junior", np.array([False])).toarray()[0, 0] == pytest.approx(1300 / (20000 / 60) + 10)
    assert select_travel_modes("kindergarten", urban, p) == ["walk", "escort"]
    with pytest.raises(LayoutError, match="mode_by_level"):
        compute_travel_minutes(d, urban, "university", p)


def test_bad_parameters_and_inputs_raise_layout_errors():
    with pytest.raises(LayoutError, match="detour_factor"):
        compute_travel_costs(np.zeros((1, 2)), np.ones((1, 2)), params=TravelParams(detour_factor=0.9))
    with pytest.raises(LayoutError, match="dense"):
        compute_travel_costs(np.zeros((1, 2)), np.ones((1, 2)), params=TravelParams(k_nearest=None))
    with pytest.raises(LayoutError, match="non-finite") as e:
        compute_travel_costs(np.array([[np.nan, 0.0]]), np.ones((1, 2)), unit_ids=["U7"])
    assert "U7" in str(e.value)
    with pytest.raises(LayoutError, match="site_groups"):
        compute_travel_costs(np.zeros((1, 2)), np.ones((2, 2)), site_groups={"x": np.array([True])})
    empty = compute_travel_costs(np.zeros((0, 2)), np.ones((3, 2)))
    assert empty.shape == (0, 3) and empty.distance_m.nnz == 0


# ---------------------------------------------------------------------------- CRS and GeoDataFrame adapter

def _gdfs(crs):
    units = gpd.GeoDataFrame({"unit_code": ["A", "B"]}, geometry=[shapely.box(-100, -700, 100, -300),
                                                                 shapely.box(-100, 300, 100, 700)], crs=crs)
    sites = gpd.GeoDataFrame({"school_id": ["S1"]}, geometry=[shapely.Point(0, 600)], crs=crs)
    rivers = gpd.GeoDataFrame({"river_id": ["r"]}, geometry=RIVER, crs=crs)
    bridges = gpd.GeoDataFrame({"bridge_id": ["B1"]}, geometry=[shapely.Point(2000, 0)], crs=crs)
    district = gpd.GeoDataFrame({"d": [1]}, geometry=[DISTRICT], crs=crs)
    return units, sites, rivers, bridges, district


def test_adapter_on_metric_geodataframes():
    units, sites, rivers, bridges, district = _gdfs(METRIC_CRS)
    tc = build_travel_costs(units, sites, rivers=rivers, bridges=bridges, district=district, params=FINE)
    assert list(tc.unit_ids) == ["A", "B"] and list(tc.site_ids) == ["S1"]
    d = tc.to_dense()[:, 0]
    assert d[1] == pytest.approx(100 * DET)                      # same bank: straight
    assert d[0] == pytest.approx((np.hypot(2000, 500) + np.hypot(2000, 600)) * DET)


def test_missing_and_geographic_crs_are_errors_naming_layer_and_fix():
    units, sites, rivers, bridges, district = _gdfs(None)
    with pytest.raises(LayoutError) as e:
        build_travel_costs(units, sites, rivers=rivers)
    text = str(e.value)
    assert "units" in text and "sites" in text and "rivers" in text and "no CRS" in text and "set_crs" in text
    geo = gpd.GeoDataFrame({"unit_code": ["A"]}, geometry=[shapely.Point(107.4, 29.7)], crs="EPSG:4326")
    with pytest.raises(LayoutError, match="geographic") as e:
        check_metric_crs({"units": geo})
    assert "project_to_metric" in str(e.value)
    with pytest.raises(LayoutError, match="no CRS"):
        project_to_metric(units, "units")
    mixed = _gdfs(METRIC_CRS)[1].to_crs("EPSG:32648")
    with pytest.raises(LayoutError, match="EPSG:32648|32648"):
        check_metric_crs({"units": _gdfs(METRIC_CRS)[0], "sites": mixed})


def test_project_and_pop_point_columns():
    geo = gpd.GeoDataFrame({"unit_code": ["A"], "pop_lon": [107.39], "pop_lat": [29.70]},
                           geometry=[shapely.Point(107.4, 29.7).buffer(0.01)], crs="EPSG:4326")
    m = project_to_metric(geo, "units")
    xy = extract_point_xy(m, "units")
    # CM 108E, false easting 500 km: 107.39E is ~59 km west of the meridian at 29.7N
    assert 430_000 < xy[0, 0] < 450_000 and 3_280_000 < xy[0, 1] < 3_300_000
    poly_xy = extract_point_xy(m.drop(columns=["pop_lon", "pop_lat"]), "units")
    assert m.geometry.iloc[0].contains(shapely.Point(poly_xy[0]))


def test_points_outside_the_district_are_findings():
    xy = np.array([[0.0, 0.0], [3500.0, 0.0], [3000.5, 0.0]])
    found = find_points_outside(xy, ["in", "out", "edge"], DISTRICT, "units")
    assert len(found) == 1 and "out" in found[0].rows and "edge" not in found[0].rows
    tc = compute_travel_costs(xy, np.array([[100.0, 100.0]]), district=DISTRICT, params=FINE,
                              unit_ids=["in", "out", "edge"])
    assert any("outside the district" in f.message for f in tc.findings)
    assert np.isfinite(tc.to_dense()).all()                      # still routed


# ---------------------------------------------------------------------------- Fuling

def _fuling_layers():
    need = [ROOT / "data/population/units.geojson", ROOT / "data/schools.geojson"]
    if not all(p.exists() for p in need):
        pytest.skip("data/population/units.geojson or data/schools.geojson not built yet")
    read = lambda rel, name: project_to_metric(gpd.read_file(ROOT / rel), name)  # noqa: E731
    layers = {"units": read("data/population/units.geojson", "units"), "schools": read("data/schools.geojson", "schools")}
    for rel, name in (("data/rivers.geojson", "rivers"), ("data/bridges.geojson", "bridges"),
                      ("data/district.geojson", "district")):
        layers[name] = read(rel, name) if (ROOT / rel).exists() else None
    return layers


def test_fuling_travel_costs():
    L = _fuling_layers()
    s = L["schools"]
    groups = {"primary": ((s.grade_min <= 1) & (s.grade_max >= 1)).to_numpy(),
              "junior": ((s.grade_min <= 7) & (s.grade_max >= 7)).to_numpy()}
    t = time.perf_counter()
    tc = build_travel_costs(L["units"], s, rivers=L["rivers"], bridges=L["bridges"], district=L["district"],
                            site_groups=groups)
    assert time.perf_counter() - t < 20
    d = tc.distance_m
    assert d.shape == (len(L["units"]), len(s))
    assert (d.data >= tc.straight_m * TravelParams().detour_factor - 1e-6).all()
    for mask in groups.values():
        assert (np.isfinite(tc.to_dense()[:, mask]).sum(axis=1) >= min(20, mask.sum())).all()
    if L["rivers"] is not None:
        assert tc.crosses_river.any()                            # the Yangtze splits the district
        # a crossing trip is never shorter than the straight line through the nearest bridge gap allows
        assert (d.data[tc.crosses_river] > tc.straight_m[tc.crosses_river] * 1.3).all()


def test_unit_on_the_river_line_reaches_both_banks_straight():
    units = np.array([[500.0, 0.0]])                 # exactly on the river
    sites = np.array([[500.0, 400.0], [500.0, -300.0]])
    tc = compute_travel_costs(units, sites, rivers=RIVER, bridge_xy=BRIDGE, district=DISTRICT, params=FINE,
                              unit_ids=["on_river"])
    assert tc.to_dense()[0].tolist() == pytest.approx([400 * DET, 300 * DET])
    assert any("no link to the travel lattice" in f.message and "on_river" in f.rows for f in tc.findings)
