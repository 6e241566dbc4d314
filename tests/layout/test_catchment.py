"""Catchments, attendance shares, pupils per school and the service-radius check on hand-made cases."""
from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from layout.catchment import (ServiceParams, allocate_pupils, assess_service_radius, assign_catchments,
                              find_eligible_sites)
from layout.errors import LayoutError
from layout.travel import TravelParams, compute_travel_costs

ROOT = Path(__file__).resolve().parents[2]
RIVER = [shapely.LineString([(-20000, 0), (20000, 0)])]
DISTRICT = shapely.box(-20000, -20000, 20000, 20000)
EXACT = TravelParams(detour_factor=1.0, lattice_spacing_m=500.0, k_nearest=10)


def _travel(units, sites, **kw):
    kw.setdefault("params", EXACT)
    return compute_travel_costs(np.asarray(units, float), np.asarray(sites, float), district=DISTRICT, **kw)


def test_nearest_school_by_travel_not_by_straight_line():
    # the school across the river is 600 m away in a straight line, but the bridge is 5 km off
    units = [[0, -300]]
    sites = [[0, 300], [1500, -300]]
    tc = _travel(units, sites, rivers=RIVER, bridge_xy=np.array([[5000.0, 0.0]]))
    grades = [1]
    cat = assign_catchments(tc, find_eligible_sites(np.array([1, 1]), np.array([6, 6]), grades), grades)
    assert cat.main_site[0, 0] == 1
    assert cat.main_distance_m[0, 0] == pytest.approx(1500.0)
    assert cat.shares[0].toarray().tolist() == [[0.0, 1.0]]


def test_school_just_inside_and_just_outside_the_radius():
    # urban primary radius 500 m: a unit 499 m from its school is within, one 501 m away is beyond
    units = [[0, 0], [10000, 0]]
    sites = [[499, 0], [10501, 0]]
    tc = _travel(units, sites)
    grades = [1]
    cat = assign_catchments(tc, find_eligible_sites(np.array([1, 1]), np.array([6, 6]), grades), grades)
    P = np.array([[[10.0]], [[20.0]]])
    rep = assess_service_radius(cat, P, np.array([True, True]), [2025], travel_params=EXACT)
    assert rep.beyond_unit[:, 0, 0].tolist() == [0.0, 20.0]
    assert rep.beyond_site[:, 0, 0].tolist() == [0.0, 20.0]
    row = rep.summary.query("level == 'primary' and urban").iloc[0]
    assert row.pupils == 30 and row.within_radius == 10 and row.transport == 20 and row.boarding == 0
    assert row.share_beyond == pytest.approx(20 / 30)
    # the same geometry counts as within for a rural unit (rural primary limit 2.5 km)
    rep = assess_service_radius(cat, P, np.array([False, False]), [2025], travel_params=EXACT)
    assert rep.beyond_unit.sum() == 0


def test_rural_transport_versus_boarding_and_kindergarten_never_boards():
    # rural junior: 6 km by bus = 6000 / 333.3 + 10 = 28 min -> transport; 15 km = 55 min > 50 -> boarding
    units = [[-15000, 0], [10000, 10000]]
    sites = [[-9000, 0], [10000, -5000]]
    grades = [-1, 7]
    tc = _travel(units, sites)
    elig = np.ones((2, 2), dtype=bool)
    cat = assign_catchments(tc, elig, grades)
    assert cat.main_site[:, 1].tolist() == [0, 1]
    P = np.zeros((2, 2, 1))
    P[:, 0, 0] = [3, 4]          # kindergarten
    P[:, 1, 0] = [5, 7]          # grade 7
    rep = assess_service_radius(cat, P, np.array([False, False]), [2025], travel_params=EXACT,
                                service=ServiceParams(max_trip_min=600))
    assert rep.transport_site[:, 1, 0].tolist() == [5.0, 0.0]
    assert rep.boarding_site[:, 1, 0].tolist() == [0.0, 7.0]
    # kindergarten children beyond 1.5 km need transport, never a bed
    assert rep.boarding_site[:, 0, 0].sum() == 0
    assert rep.transport_site[:, 0, 0].tolist() == [3.0, 4.0]
    s = rep.summary.set_index(["level", "urban"])
    assert s.loc[("junior", False), "boarding"] == 7 and s.loc[("junior", False), "transport"] == 5
    # kindergarten trips of 15 km by escort (~62 min) exceed max_trip_min=60: reported
    rep = assess_service_radius(cat, P, np.array([False, False]), [2025], travel_params=EXACT)
    assert any("cannot board" in f.message for f in rep.findings)


def test_teaching_point_serves_only_its_grades_and_pupils_are_conserved():
    units = [[0, -5000], [3000, -5000], [0, -5100]]
    sites = [[100, -5000], [2000, -5000]]           # 0: teaching point grades 1-3, 1: primary 1-6
    grades = [1, 4]
    tc = _travel(units, sites, rivers=RIVER, unit_ids=["u0", "u1", "u2"])
    elig = find_eligible_sites(np.array([1, 1]), np.array([3, 6]), grades)
    cat = assign_catchments(tc, elig, grades)
    assert cat.main_site[:, 0].tolist() == [0, 1, 0]
    assert cat.main_site[:, 1].tolist() == [1, 1, 1]
    rng = np.random.default_rng(0)
    P = rng.integers(0, 50, (3, 2, 4)).astype(float)
    al = allocate_pupils(cat, P)
    np.testing.assert_allclose(al.pupils_site.sum(axis=0), P.sum(axis=0))          # conservation
    np.testing.assert_allclose(al.pupils_site[0, 1], 0.0)                           # no grade 4 at the point
    np.testing.assert_allclose(al.pupils_site[0, 0], P[0, 0] + P[2, 0])
    assert al.unallocated.sum() == 0
    frame = al.to_frame(cat, [2025, 2026, 2027, 2028])
    assert frame.pupils.sum() == pytest.approx(P.sum()) and set(frame.grade) <= {1, 4}


def test_unreachable_unit_is_a_finding_and_its_pupils_stay_unallocated():
    units = [[0, 500], [0, -500]]                   # unit 0 north of a river with no bridge
    sites = [[0, -1000]]
    tc = _travel(units, sites, rivers=RIVER, unit_ids=["north", "south"])
    cat = assign_catchments(tc, np.ones((1, 1), bool), [7])
    assert cat.main_site[:, 0].tolist() == [-1, 0]
    assert any("north" in f.rows and "junior" in f.message for f in cat.findings)
    P = np.array([[[12.0]], [[8.0]]])
    al = allocate_pupils(cat, P)
    assert al.pupils_site.sum() == 8 and al.unallocated.sum() == 12
    rep = assess_service_radius(cat, P, np.array([True, True]), [2030], travel_params=EXACT)
    row = rep.summary.query("urban").iloc[0]
    assert row.unallocated == 12 and row.pupils == 20


def test_zone_table_overrides_nearest_and_is_validated():
    units = [[0, -100], [0, -4000]]
    sites = [[0, -200], [0, -3000], [0, -5000]]
    tc = _travel(units, sites, unit_ids=["A", "B"], site_ids=["S1", "S2", "S3"])
    grades = [1, 2]
    elig = np.ones((3, 2), bool)
    zones = pd.DataFrame({"unit_code": ["A", "A"], "school_id": ["S2", "S3"], "level": "primary",
                          "share": [0.25, 0.75]})
    cat = assign_catchments(tc, elig, grades, zones=zones)
    assert cat.shares[0].toarray().tolist() == [[0, 0.25, 0.75], [0, 1, 0]]     # B keeps its nearest (S2)
    assert cat.main_site[:, 0].tolist() == [2, 1]
    assert cat.distance_m[0].toarray()[0].tolist() == pytest.approx([0, 2900, 4900])
    assert any("no primary zone" in f.message for f in cat.findings)
    P = np.ones((2, 2, 1)) * 100
    al = allocate_pupils(cat, P)
    assert al.pupils_site[:, 0, 0].tolist() == [0, 125, 75]
    bad = pd.DataFrame({"unit_code": ["A", "Z"], "school_id": ["S9", "S1"], "level": "primary", "share": [0.5, 1]})
    with pytest.raises(LayoutError) as e:
        assign_catchments(tc, elig, grades, zones=bad)
    text = str(e.value)
    assert "S9" in text and "Z" in text
    with pytest.raises(LayoutError, match="sum to 1"):
        assign_catchments(tc, elig, grades, zones=zones.assign(share=[0.5, 0.6]))


def test_bad_shapes_are_errors():
    tc = _travel([[0, 0]], [[10, 0]])
    with pytest.raises(LayoutError, match="eligible"):
        assign_catchments(tc, np.ones((2, 1), bool), [1])
    cat = assign_catchments(tc, np.ones((1, 1), bool), [1])
    with pytest.raises(LayoutError, match="pupils_unit"):
        allocate_pupils(cat, np.ones((1, 2, 1)))
    with pytest.raises(LayoutError, match="negative"):
        allocate_pupils(cat, -np.ones((1, 1, 1)))


def test_fuling_catchments_conserve_pupils():
    need = [ROOT / "data/population/units.geojson", ROOT / "data/schools.geojson"]
    if not all(p.exists() for p in need):
        pytest.skip("data/population/units.geojson or data/schools.geojson not built yet")
    from layout.geo import project_to_metric
    from layout.travel import build_travel_costs
    read = lambda rel, n: project_to_metric(gpd.read_file(ROOT / rel), n)  # noqa: E731
    units, schools = read("data/population/units.geojson", "units"), read("data/schools.geojson", "schools")
    opt = {n: read(f"data/{n}.geojson", n) if (ROOT / f"data/{n}.geojson").exists() else None
           for n in ("rivers", "bridges", "district")}
    grades = np.array([-1, 1, 7])
    elig = find_eligible_sites(schools.grade_min.to_numpy(), schools.grade_max.to_numpy(), grades)
    tc = build_travel_costs(units, schools, site_groups={str(g): elig[:, i] for i, g in enumerate(grades)}, **opt)
    cat = assign_catchments(tc, elig, grades)
    P = np.random.default_rng(1).uniform(0, 30, (len(units), 3, 2))
    al = allocate_pupils(cat, P)
    np.testing.assert_allclose(al.pupils_site.sum() + al.unallocated.sum(), P.sum())
    assert (cat.main_site >= 0).mean() > 0.99
    rep = assess_service_radius(cat, P, units.urban.to_numpy(bool), [2025, 2026])
    assert ((rep.summary.share_beyond >= 0) & (rep.summary.share_beyond <= 1)).all()
    # rural children live farther from school than urban ones
    s = rep.summary.query("year == 2025").set_index(["level", "urban"])
    assert (rep.beyond_site <= al.pupils_site + 1e-9).all()
    assert s.loc[("primary", False), "pupils"] > 0
