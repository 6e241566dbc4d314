"""Kindergarten siting (issue 7): hand-solved coverage cases, brute-force cross-checks,
per-year allocation, target checks, adapters and error messages."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linprog

from layout.errors import InfeasibleError, LayoutError
from layout.kindergarten import (
    CandidateSites,
    ExistingKindergartens,
    allocate_kindergarten_enrollment,
    check_preschool_targets,
    compute_kindergarten_demand,
    compute_walking_radius_m,
    count_kindergarten_seats,
    plan_kindergartens,
    project_kindergarten_years,
    solve_kindergarten_coverage,
    split_kindergarten_classes,
)

NO_EXISTING = ExistingKindergartens(township=np.zeros(0, str), seats=np.zeros(0), public=np.zeros(0, bool),
                                    inclusive=np.zeros(0, bool))


def line_distance(a, b):
    return np.abs(np.asarray(a, float)[:, None] - np.asarray(b, float)[None, :])


def sites(seats, kind="kindergarten_complex", town="t", **kw):
    s = len(seats)
    return CandidateSites(township=np.full(s, town), seats=np.asarray(seats, float), kind=np.full(s, kind), **kw)


# five demand points on a line, three candidates: the optimum is obvious by eye
X_UNITS = np.array([0.0, 100.0, 1000.0, 1100.0, 5000.0])
CHILDREN = np.array([10.0, 10.0, 30.0, 30.0, 5.0])
X_SITES = np.array([50.0, 1050.0, 5000.0])


def solve_line(n, seats=(100, 100, 100), existing=NO_EXISTING, dist_existing=None, radius=300.0, **kw):
    d_ex = np.zeros((5, 0)) if dist_existing is None else dist_existing
    return solve_kindergarten_coverage(
        CHILDREN, np.full(5, "t"), np.full(5, radius), d_ex, line_distance(X_UNITS, X_SITES), existing,
        sites(seats), enrollment_rate=1.0, n_new_sites=n, **kw)


# ------------------------------------------------------------------ seats, demand, radius
def test_seats_from_classes_by_type():
    assert count_kindergarten_seats(1, 1, 1) == 90.0
    np.testing.assert_array_equal(count_kindergarten_seats([2, 0], [1, 0], [0, 3]), [80.0, 105.0])
    small, middle, large = split_kindergarten_classes(np.array([9, 7, 8, 0]))
    np.testing.assert_array_equal(small, [3, 3, 3, 0])
    np.testing.assert_array_equal(middle, [3, 2, 3, 0])
    np.testing.assert_array_equal(large, [3, 2, 2, 0])
    # remainders go to the smallest classes: 7 classes = 3×25 + 2×30 + 2×35 = 205 seats
    assert count_kindergarten_seats(*split_kindergarten_classes(np.array([7])))[0] == 205.0


def test_demand_and_radius():
    np.testing.assert_allclose(compute_kindergarten_demand([[100.0, 50.0]], 0.98), [[98.0, 49.0]])
    np.testing.assert_array_equal(compute_walking_radius_m(np.array([True, False]), rural_radius_m=1500.0),
                                  [300.0, 1500.0])
    with pytest.raises(LayoutError, match="children_3to5"):
        compute_kindergarten_demand([5.0, -1.0], 0.98)
    with pytest.raises(LayoutError, match="rural_radius_m"):
        compute_walking_radius_m(np.array([True]), rural_radius_m=0.0)


# ------------------------------------------------------------------ hand-solved coverage
def test_hand_solved_n1_n2_n3():
    one, two, three = solve_line(1), solve_line(2), solve_line(3)
    # N=1: the site at 1050 m covers units 2 and 3 (60 children)
    np.testing.assert_array_equal(one.site_open, [False, True, False])
    assert one.covered == pytest.approx(60.0)
    np.testing.assert_allclose(one.covered_candidate, [0.0, 60.0, 0.0], atol=1e-6)
    # N=2: add the site at 50 m (20 children); N=3: all 85 children
    np.testing.assert_array_equal(two.site_open, [True, True, False])
    assert two.covered == pytest.approx(80.0)
    assert three.covered == pytest.approx(85.0)
    assert one.covered_without_new == pytest.approx(0.0)
    np.testing.assert_allclose(two.covered_by_unit, [10, 10, 30, 30, 0], atol=1e-6)
    # everybody lives in one township with enough seats: every child enrolls, covered or not
    assert one.enrolled == pytest.approx(85.0, abs=1e-5)
    assert one.coverage_rate == pytest.approx(60 / 85)


def test_capacity_binds_and_changes_the_choice():
    # the 1050 m site has only 40 seats (< 60 children in reach): the 50 m site (20) loses, but
    # a 55-seat site at 1050 would win.  With 40 seats, 1050 still serves 40 > 20.
    r = solve_line(1, seats=(100, 40, 100))
    np.testing.assert_array_equal(r.site_open, [False, True, False])
    assert r.covered == pytest.approx(40.0)
    # with 15 seats the 50 m site (20 children, 100 seats) is the better single choice
    r = solve_line(1, seats=(100, 15, 100))
    np.testing.assert_array_equal(r.site_open, [True, False, False])
    assert r.covered == pytest.approx(20.0)
    # fractional assignment: both candidates near units 2, 3 with 35 seats each serve 60 in total
    d = line_distance(X_UNITS, [1050.0, 1060.0])
    r = solve_kindergarten_coverage(CHILDREN, np.full(5, "t"), np.full(5, 300.0), np.zeros((5, 0)), d,
                                    NO_EXISTING, sites([35, 35]), enrollment_rate=1.0, n_new_sites=2)
    assert r.covered == pytest.approx(60.0)
    np.testing.assert_allclose(r.covered_candidate.sum(), 60.0)
    assert np.all(r.covered_candidate <= 35.0 + 1e-6)


def test_site_cost_breaks_ties_between_equal_coverage():
    d = line_distance(X_UNITS, [1040.0, 1060.0])
    r = solve_kindergarten_coverage(CHILDREN, np.full(5, "t"), np.full(5, 300.0), np.zeros((5, 0)), d, NO_EXISTING,
                                    sites([100, 100], cost_cny=np.array([5e6, 3e6])), enrollment_rate=1.0,
                                    n_new_sites=1)
    np.testing.assert_array_equal(r.site_open, [False, True])
    assert r.site_cost_cny == 3e6 and r.covered == pytest.approx(60.0)


def test_radius_boundary_inside_and_outside():
    d = np.array([[300.0], [300.001]])
    r = solve_kindergarten_coverage(np.array([7.0, 11.0]), np.array(["a", "b"]), np.full(2, 300.0), np.zeros((2, 0)),
                                    d, NO_EXISTING, sites([100], town="c"), enrollment_rate=1.0, n_new_sites=1)
    np.testing.assert_allclose(r.covered_by_unit, [7.0, 0.0], atol=1e-9)
    # the site lies in another township: the uncovered unit does not enroll there
    assert r.enrolled == pytest.approx(7.0)


def test_existing_kindergartens_count_before_new_sites():
    existing = ExistingKindergartens(township=np.array(["t"]), seats=np.array([100.0]), public=np.array([True]),
                                     inclusive=np.array([True]))
    d_ex = line_distance(X_UNITS, [1080.0])
    r = solve_line(1, existing=existing, dist_existing=d_ex)
    assert r.covered_without_new == pytest.approx(60.0)
    # the existing kindergarten already serves units 2, 3: the best new site is the one at 50 m
    np.testing.assert_array_equal(r.site_open, [True, False, False])
    assert r.covered == pytest.approx(80.0)
    assert r.covered >= r.covered_without_new


def brute_force_capacitated(demand, cover, seats, n):
    """Best coverage over every n-subset of sites, each by an independent LP (scipy linprog)."""
    best = -1.0
    n_units, n_sites = cover.shape
    for subset in itertools.combinations(range(n_sites), n):
        arcs = [(i, j) for i in range(n_units) for j in subset if cover[i, j]]
        if not arcs:
            best = max(best, 0.0)
            continue
        a_ub = np.zeros((n_units + n_sites, len(arcs)))
        for p, (i, j) in enumerate(arcs):
            a_ub[i, p] = 1.0
            a_ub[n_units + j, p] = 1.0
        res = linprog(-np.ones(len(arcs)), A_ub=a_ub, b_ub=np.concatenate([demand, seats]), method="highs")
        best = max(best, -res.fun)
    return best


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force_on_random_capacitated_instances(seed):
    rng = np.random.default_rng(seed)
    n_units, n_sites = 14, 7
    xy_u = rng.uniform(0, 1000, (n_units, 2))
    xy_s = rng.uniform(0, 1000, (n_sites, 2))
    dist = np.linalg.norm(xy_u[:, None, :] - xy_s[None, :, :], axis=2)
    children = rng.integers(0, 60, n_units).astype(float)
    seats = rng.integers(20, 120, n_sites).astype(float)
    radius = np.full(n_units, 350.0)
    for n in (1, 2, 3):
        r = solve_kindergarten_coverage(children, np.full(n_units, "t"), radius, np.zeros((n_units, 0)), dist,
                                        NO_EXISTING, sites(seats), enrollment_rate=1.0, n_new_sites=n)
        assert r.covered == pytest.approx(brute_force_capacitated(children, dist <= 350.0, seats, n), abs=1e-5)
        # invariants: per unit and per site limits, walking arcs only
        assert np.all(r.covered_by_unit <= children + 1e-6)
        assert np.all(r.enrolled_candidate <= seats * r.site_open + 1e-6)
        assert np.all(dist[r.arc_unit, r.arc_facility] <= 350.0)
        assert r.n_new_sites == n


# ------------------------------------------------------------------ conversions and shares
def one_town_with_private(cost_inc=(5.0, 3.0), cost_pub=(12.0, 10.0)):
    """100 children, one public kindergarten (60 seats), two private non-inclusive ones (20 each):
    every seat is needed, so public share = 0.60 and inclusive share = 0.60 before conversions."""
    existing = ExistingKindergartens(
        township=np.full(3, "t"), seats=np.array([60.0, 20.0, 20.0]), public=np.array([True, False, False]),
        inclusive=np.array([True, False, False]), cost_to_inclusive_cny=np.array([np.nan, *cost_inc]),
        cost_to_public_cny=np.array([np.nan, *cost_pub]))
    return dict(children_3to5=np.array([100.0]), unit_township=np.array(["t"]), radius_m=np.array([300.0]),
                distance_existing_m=np.array([[100.0, 5000.0, 6000.0]]), distance_candidate_m=np.zeros((1, 0)),
                existing=existing, candidates=sites([]), enrollment_rate=1.0, n_new_sites=0)


def test_conversions_reach_share_targets_at_least_cost():
    base = solve_kindergarten_coverage(**one_town_with_private(), targets={})
    assert base.inclusive_share == pytest.approx(0.6)
    assert not base.convert_to_inclusive.any() and not base.convert_to_public.any()
    # inclusive 75 %: the cheaper private kindergarten (cost 3) becomes inclusive
    r = solve_kindergarten_coverage(**one_town_with_private(), targets={"inclusive_share_min": 0.75})
    np.testing.assert_array_equal(r.convert_to_inclusive, [False, False, True])
    assert r.conversion_cost_cny == 3.0
    assert r.inclusive_share == pytest.approx(0.8)
    assert r.covered == pytest.approx(base.covered)  # conversions never change coverage
    # inclusive 75 % and public 70 %: buying kindergarten 2 into the public system (10) does both,
    # cheaper than 3 + 12
    r = solve_kindergarten_coverage(**one_town_with_private(),
                                    targets={"inclusive_share_min": 0.75, "public_share_min": 0.7})
    np.testing.assert_array_equal(r.convert_to_public, [False, False, True])
    assert not r.convert_to_inclusive.any()
    assert r.conversion_cost_cny == 10.0
    assert r.public_share == pytest.approx(0.8) and r.inclusive_share == pytest.approx(0.8)


def test_min_sites_variant():
    r = solve_line(3, objective="min_sites", targets={"coverage_min": 0.9})
    np.testing.assert_array_equal(r.site_open, [True, True, False])  # 80/85 = 0.94 >= 0.9
    r = solve_line(3, objective="min_sites", targets={"coverage_min": 0.7})
    assert r.n_new_sites == 1 and r.covered == pytest.approx(60.0)
    r = solve_line(3, objective="min_sites", targets={"coverage_min": 1.0})
    assert r.n_new_sites == 3
    with pytest.raises(InfeasibleError) as info:
        solve_line(1, objective="min_sites", targets={"coverage_min": 0.9})
    assert info.value.diagnosis["targets"] == {"coverage_min": False}
    assert info.value.diagnosis["max_coverage_rate_all_sites"] == pytest.approx(1.0)
    assert "coverage_min" in str(info.value)


def test_min_sites_for_public_share_and_township_diagnosis():
    # 200 children in town t; a private kindergarten of 100 seats; public candidates of 50 seats
    existing = ExistingKindergartens(township=np.array(["t"]), seats=np.array([100.0]), public=np.array([False]),
                                     inclusive=np.array([True]))
    args = dict(children_3to5=np.array([200.0]), unit_township=np.array(["t"]), radius_m=np.array([300.0]),
                distance_existing_m=np.array([[100.0]]), distance_candidate_m=np.full((1, 3), 200.0),
                existing=existing, candidates=sites([50, 50, 50]), enrollment_rate=1.0, n_new_sites=3,
                objective="min_sites")
    # public share >= 0.5 of enrolled: 100 private + 50k public -> k = 2 (100/200)
    r = solve_kindergarten_coverage(**args, targets={"public_share_min": 0.5, "ger_min": 1.0})
    assert r.n_new_sites == 2 and r.public_share == pytest.approx(0.5)
    # GER 1.0 with one site: 150 seats for 200 children -> infeasible; town t short by 50 even with all
    with pytest.raises(InfeasibleError) as info:
        solve_kindergarten_coverage(**{**args, "candidates": sites([30, 10, 5])}, targets={"ger_min": 1.0})
    assert info.value.diagnosis["township_seats_short_all_sites"] == {"t": pytest.approx(55.0)}


# ------------------------------------------------------------------ bad input
def test_bad_input_names_argument_rows_and_fix():
    kw = dict(enrollment_rate=1.0)
    with pytest.raises(LayoutError) as info:
        solve_kindergarten_coverage(np.array([1.0, -2.0, 3.0]), np.full(3, "t"), np.array([300.0, 0.0, -1.0]),
                                    np.zeros((3, 0)), np.ones((3, 2)), NO_EXISTING,
                                    CandidateSites(np.full(2, "t"), np.array([10.0, 10.0]),
                                                   np.array(["kindergarten_complex", "castle"])),
                                    n_new_sites=3, unit_ids=["u1", "u2", "u3"], **kw)
    text = str(info.value)
    assert "children_3to5 [rows u2]" in text
    assert "radius_m [rows u2, u3]" in text
    assert "candidates.kind [rows 1]" in text and "castle" in text
    assert "n_new_sites" in text and "at most 2" in text
    assert text.count("fix:") == len(info.value.problems) >= 4
    with pytest.raises(LayoutError, match="distance_candidate_m"):
        solve_kindergarten_coverage(np.ones(2), np.full(2, "t"), np.full(2, 300.0), np.zeros((2, 0)),
                                    np.array([[1.0], [np.nan]]), NO_EXISTING, sites([5]), n_new_sites=1, **kw)
    with pytest.raises(LayoutError, match="at least one target"):
        solve_line(1, objective="min_sites")


# ------------------------------------------------------------------ per-year allocation
def test_allocation_nearest_seat_short_and_idle():
    # units at 0 m (town a) and 1000 m (town b); kindergartens at 100 m (a, 30 seats) and 900 m (b, 50)
    d = line_distance([0.0, 1000.0], [100.0, 900.0])
    demand = np.array([[40.0, 10.0], [20.0, 20.0]])   # (units, years)
    use = allocate_kindergarten_enrollment(demand, np.array(["a", "b"]), np.array([300.0, 300.0]), d,
                                           np.array([30.0, 50.0]), np.array(["a", "b"]))
    np.testing.assert_allclose(use.enrolled, [[30.0, 10.0], [20.0, 20.0]], atol=1e-6)
    np.testing.assert_allclose(use.short_by_township, [[10.0, 0.0], [0.0, 0.0]], atol=1e-6)
    np.testing.assert_allclose(use.idle_by_township, [[0.0, 20.0], [30.0, 30.0]], atol=1e-6)
    np.testing.assert_array_equal(use.underused(0.5), [[False, True], [True, True]])
    # conservation: enrolled + unmet = demand
    np.testing.assert_allclose(use.enrolled.sum(axis=0) + use.unmet_by_unit.sum(axis=0), demand.sum(axis=0))


def test_allocation_prefers_nearer_kindergarten_within_township():
    d = np.array([[200.0, 800.0]])
    use = allocate_kindergarten_enrollment(np.array([[30.0]]), np.array(["t"]), np.array([300.0]), d,
                                           np.array([20.0, 20.0]), np.array(["t", "t"]))
    np.testing.assert_allclose(use.enrolled[:, 0], [20.0, 10.0], atol=1e-6)
    np.testing.assert_allclose(use.covered[:, 0], [20.0, 0.0], atol=1e-6)


# ------------------------------------------------------------------ target check
def test_check_preschool_targets_hand_values():
    check = check_preschool_targets(
        np.array([2024, 2025, 2026]), np.array([1000.0, 1000.0, 900.0]), np.array([950.0, 980.0, 890.0]),
        np.array([930.0, 970.0, 880.0]), np.array([600.0, 650.0, 560.0]))
    np.testing.assert_allclose(check.gross_enrollment_rate, [0.95, 0.98, 890 / 900])
    np.testing.assert_array_equal(check.ger_met, [False, True, True])
    np.testing.assert_array_equal(check.inclusive_met, [False, True, True])  # 970/980 = 0.9898
    np.testing.assert_array_equal(check.public_met, [False, True, False])  # 0.632, 0.663, 0.629
    np.testing.assert_array_equal(check.due, [False, True, True])
    assert not check.all_met_when_due  # 2026 misses the public share
    table = check.to_frame()
    assert set(table["variable"]) == {"gross_enrollment_rate", "inclusive_share", "public_share"}
    assert len(table) == 9
    with pytest.raises(LayoutError, match="enrolled_public"):
        check_preschool_targets(np.array([2025]), [10.0], [10.0], [5.0], [6.0])


# ------------------------------------------------------------------ DataFrame adapters
def small_tables(children_by_year=None):
    units = pd.DataFrame({"unit_code": ["U1", "U2", "U3"], "township_code": ["A", "A", "B"],
                          "urban": [True, True, False]})
    kgs = pd.DataFrame({"school_id": ["K1", "K2", "P1"], "level": ["kindergarten", "kindergarten", "primary"],
                        "township_code": ["A", "B", "A"], "public": [True, False, True],
                        "inclusive": [True, False, True], "classes_g-3": [1, 1, 0], "classes_g-2": [1, 1, 0],
                        "classes_g-1": [1, 1, 0]})
    cands = pd.DataFrame({"site_id": ["S1", "S2", "S3"], "kind": ["kindergarten_complex", "closed_school", "school"],
                          "township_code": ["A", "B", "A"], "capacity_classes": [3, 2, 24],
                          "seats": [90.0, 60.0, np.nan]})
    x_unit = {"U1": 0.0, "U2": 1000.0, "U3": 10000.0}
    x_fac = {"K1": 100.0, "K2": 10200.0, "S1": 1100.0, "S2": 9000.0}
    distance = pd.DataFrame({f: [abs(xu - xf) for xu in x_unit.values()] for f, xf in x_fac.items()},
                            index=list(x_unit))
    children_by_year = children_by_year or {2025: (80, 60, 100)}
    children = pd.DataFrame([(u, y, float(c)) for y, row in children_by_year.items() for u, c in zip(x_unit, row)],
                            columns=["unit_code", "year", "children"])
    return units, kgs, cands, children, distance


def test_plan_kindergartens_tables():
    units, kgs, cands, children, distance = small_tables()
    plan = plan_kindergartens(units, kgs, cands, children, distance, year=2025, enrollment_rate=1.0, n_new_sites=1)
    assert list(plan.sites["site_id"]) == ["S1", "S2"]          # the school site is not a kindergarten site
    assert list(plan.kindergartens["school_id"]) == ["K1", "K2"]  # the primary school is left out
    np.testing.assert_array_equal(plan.kindergartens["seats"], [90.0, 90.0])
    assert list(plan.sites.loc[plan.sites["open"], "site_id"]) == ["S1"]
    summary = plan.summary.set_index("variable")["value"]
    # U1 80 by K1, U3 90 of 100 by K2 (rural radius 2000 m); S1 adds U2's 60
    assert summary["covered_without_new_sites"] == pytest.approx(170.0)
    assert summary["covered_with_new_sites"] == pytest.approx(230.0)
    assert summary["coverage_rate_with_new_sites"] == pytest.approx(230 / 240)
    assert plan.sites.set_index("site_id").loc["S1", "covered_children"] == pytest.approx(60.0)
    by_pair = plan.assignments.set_index(["unit_code", "facility_id"])["children"]
    assert by_pair[("U2", "S1")] == pytest.approx(60.0) and by_pair[("U3", "K2")] == pytest.approx(90.0)


def test_plan_kindergartens_reports_missing_table_parts():
    units, kgs, cands, children, distance = small_tables()
    with pytest.raises(LayoutError) as info:
        plan_kindergartens(units, kgs, cands, children[children["unit_code"] != "U2"], distance.drop(columns=["S2"]),
                           year=2025)
    text = str(info.value)
    assert "distance_m [rows S2]" in text
    assert "children_3to5 [rows U2/2025]" in text


def test_project_years_shrinking_cohorts_and_targets():
    years = {2025: (80, 60, 100), 2026: (70, 50, 80), 2030: (40, 30, 30)}
    units, kgs, cands, children, distance = small_tables(years)
    plan = plan_kindergartens(units, kgs, cands, children, distance, year=2026, enrollment_rate=1.0, n_new_sites=1)
    out = project_kindergarten_years(plan, units, kgs, cands, children, distance, years=[2025, 2026, 2030],
                                     open_year=2026, enrollment_rate=1.0)
    kg = out.by_kindergarten.set_index(["facility_id", "year"])
    assert kg.loc[("S1", 2025), "seats"] == 0.0 and kg.loc[("S1", 2026), "seats"] == 90.0
    # 2025 without S1: town A has 90 seats for 140 children -> 50 short
    town = out.by_township.set_index(["township_code", "year"])
    assert town.loc[("A", 2025), "short"] == pytest.approx(50.0)
    assert town.loc[("B", 2025), "short"] == pytest.approx(10.0)
    # 2030: K2 serves 30 of 90 seats -> below half; S1 serves 30 of 90 too; K1 40 of 90
    assert kg.loc[("K2", 2030), "utilisation"] == pytest.approx(1 / 3)
    assert set(out.by_kindergarten.query("year == 2030 and below_half")["facility_id"]) == {"K1", "K2", "S1"}
    assert town.loc[("B", 2030), "idle"] == pytest.approx(60.0)
    # targets: 2026 GER = 200 / 200; inclusive = public = (70 + 50) / 200 (K2 stays private)
    t = out.targets.set_index(["year", "variable"])["value"]
    assert t[(2026, "gross_enrollment_rate")] == pytest.approx(1.0)
    assert t[(2026, "public_share")] == pytest.approx(120 / 200)
    assert not out.check.all_met_when_due


def test_quantiles_are_projected_side_by_side():
    units, kgs, cands, children, distance = small_tables({2025: (80, 60, 100), 2030: (40, 30, 30)})
    low = children.assign(quantile=0.1, children=children["children"] * 0.5)
    high = children.assign(quantile=0.9)
    both = pd.concat([low, high], ignore_index=True)
    with pytest.raises(LayoutError, match="quantile"):
        plan_kindergartens(units, kgs, cands, both, distance, year=2025)
    out = project_kindergarten_years(None, units, kgs, cands, both, distance, years=[2025, 2030], enrollment_rate=1.0)
    assert out.use.enrolled.shape == (4, 2, 2)  # (kindergartens + sites, years, quantiles)
    t = out.by_township.set_index(["township_code", "year", "quantile"])
    # no new site: town A has 90 seats; 140 children at q0.9 (50 short), 70 at q0.1 (none short)
    assert t.loc[("A", 2025, 0.9), "short"] == pytest.approx(50.0)
    assert t.loc[("A", 2025, 0.1), "short"] == pytest.approx(0.0)
    assert t.loc[("A", 2025, 0.1), "idle"] == pytest.approx(20.0)
    ger = out.targets.query("variable == 'gross_enrollment_rate'").set_index(["year", "quantile"])["value"]
    assert ger[(2025, 0.9)] == pytest.approx((90 + 90) / 240) and ger[(2025, 0.1)] == pytest.approx(1.0)


def test_public_share_conversions_cheapest_per_child_until_the_target():
    from layout.kindergarten import convert_for_public_share

    units, kgs, cands, children, distance = small_tables()
    kgs = pd.concat([kgs, pd.DataFrame({"school_id": ["K3"], "level": ["kindergarten"], "township_code": ["A"],
                                        "public": [False], "inclusive": [True], "classes_g-3": [1],
                                        "classes_g-2": [0], "classes_g-1": [0]})], ignore_index=True)
    distance["K3"] = [300.0, 700.0, 9700.0]
    plan = plan_kindergartens(units, kgs, cands, children, distance, year=2025, enrollment_rate=1.0, n_new_sites=1)
    assert list(plan.kindergartens["school_id"]) == ["K1", "K2", "K3"]
    enrolled = np.array([80.0, 90.0, 30.0])          # the yearly check's children per kindergarten
    cost = np.array([np.nan, 900.0, 150.0])          # 10 vs 5 CNY per enrolled child
    # 20 children short: K3 alone (cheapest per child) covers them
    p1, took = convert_for_public_share(plan, enrolled, 200.0, 0.5, 0.6, cost)
    assert took.tolist() == [2] and p1.kindergartens["convert_to_public"].tolist() == [False, False, True]
    assert p1.summary.set_index("variable").loc["conversions_to_public", "value"] == 1
    assert p1.coverage.conversion_cost_cny == pytest.approx(150.0)   # no inclusive costs passed
    # 50 short: K3's 30 are not enough, K2 follows
    p2, took = convert_for_public_share(plan, enrolled, 200.0, 0.5, 0.75, cost)
    assert sorted(took.tolist()) == [1, 2]
    assert p2.coverage.enrolled_public == pytest.approx(plan.coverage.enrolled_public
                                                        + plan.coverage.enrolled_existing[[1, 2]].sum())
    # nothing short, or nothing convertible: the plan is unchanged
    assert convert_for_public_share(plan, enrolled, 200.0, 0.8, 0.75, cost)[1].size == 0
    assert convert_for_public_share(plan, np.zeros(3), 200.0, 0.5, 0.75, cost)[1].size == 0
    with pytest.raises(LayoutError, match="one value per existing kindergarten"):
        convert_for_public_share(plan, enrolled[:2], 200.0, 0.5, 0.75, cost)
