"""Tests of forecast.attendance: conservation, calibration, trends, migrants and boarding."""
from __future__ import annotations

import numpy as np
import pytest

from forecast import attendance as at
from forecast.errors import ForecastError


def _random_stochastic(rng, shape):
    a = rng.uniform(0, 1, size=shape) * (rng.uniform(size=shape) < 0.6)
    a[..., 0] += 1e-3  # every unit reaches school 0
    return a / a.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("att_shape", [(5, 4), (3, 5, 4), (3, 2, 5, 4)])
def test_allocation_conserves_pupils_per_grade_year_and_draw(att_shape):
    rng = np.random.default_rng(0)
    pupils = rng.uniform(0, 50, size=(7, 3, 5, 2))  # (D, Y, U, G)
    att = _random_stochastic(rng, att_shape)
    school = at.allocate_pupils(pupils, att)
    assert school.shape == (7, 3, 4, 2)
    assert school.sum(axis=-2) == pytest.approx(pupils.sum(axis=-2), rel=1e-12)
    assert (school >= 0).all()


def test_allocation_by_hand():
    pupils = np.array([[[10.0], [20.0]]])  # (Y=1, U=2, G=1)
    att = np.array([[0.5, 0.5, 0.0], [0.0, 0.25, 0.75]])
    assert at.allocate_pupils(pupils, att)[0, :, 0].tolist() == pytest.approx([5.0, 10.0, 15.0])


def test_allocation_rejects_rows_that_do_not_sum_to_one():
    with pytest.raises(ForecastError, match="do not sum to 1"):
        at.allocate_pupils(np.ones((1, 2, 1)), np.array([[0.5, 0.4], [0.0, 1.0]]))
    with pytest.raises(ForecastError, match="shape"):
        at.allocate_pupils(np.ones((1, 2, 1)), np.ones((3, 2, 2)) / 2)


def test_calibrate_attendance_matches_rows_and_columns():
    rng = np.random.default_rng(1)
    unit = rng.uniform(10, 100, size=6)
    school = rng.uniform(10, 100, size=3)
    distance = rng.uniform(500, 8000, size=(6, 3))
    seed = at.build_gravity_seed(distance, scale_m=2000.0)
    att, info = at.calibrate_attendance(unit, school, seed)
    assert info["converged"]
    assert att.sum(axis=1) == pytest.approx(1.0)
    flows = att * unit[:, None]
    assert flows.sum(axis=0) == pytest.approx(school * unit.sum() / school.sum(), rel=1e-6)
    assert info["max_column_error"] < 1e-5


def test_calibrate_attendance_reports_unreachable_units_and_schools():
    seed = np.array([[1.0, 0.0], [0.0, 0.0]])
    with pytest.raises(ForecastError) as err:
        at.calibrate_attendance(np.array([5.0, 5.0]), np.array([5.0, 5.0]), seed)
    assert "units with pupils reach no school" in str(err.value)
    assert "schools with pupils are reached by no unit" in str(err.value)


def test_gravity_seed_respects_grades_served_and_distance_limit():
    d = np.array([[1000.0, 3000.0, 500.0]])
    w = at.build_gravity_seed(d, 1000.0, serves=np.array([True, True, False]), max_distance_m=2000.0)
    assert w[0].tolist() == pytest.approx([np.exp(-1.0), 0.0, 0.0])


def test_attendance_from_flows_with_fallback():
    flows = np.array([[3.0, 1.0], [0.0, 0.0]])
    fallback = np.array([[1.0, 1.0], [1.0, 3.0]])
    a = at.build_attendance_from_flows(flows, fallback)
    assert a.tolist() == [[0.75, 0.25], [0.25, 0.75]]
    with pytest.raises(ForecastError, match="nowhere to go"):
        at.build_attendance_from_flows(flows, np.array([[1.0, 1.0], [0.0, 0.0]]))


def test_shift_to_town_by_hand():
    # schools: village, town A, town B; unit 0 rural, unit 1 urban
    att = np.array([[0.6, 0.3, 0.1], [0.0, 0.5, 0.5]])
    out = at.shift_to_town(att, rural_unit=np.array([True, False]), town_school=np.array([False, True, True]),
                           rate=np.array([0.0, 0.5, 0.5]))
    assert out.shape == (3, 2, 3)
    assert out[0] == pytest.approx(att)
    # year 1: half of the 0.6 moves, split 3:1 like the unit's current town shares
    assert out[1, 0] == pytest.approx([0.3, 0.3 + 0.225, 0.1 + 0.075])
    assert out[2, 0] == pytest.approx([0.15, 0.3 + 0.3375, 0.1 + 0.1125])
    assert out[:, 1] == pytest.approx(np.broadcast_to(att[1], (3, 3)))
    assert out.sum(axis=-1) == pytest.approx(1.0)


def test_shift_to_town_uses_the_seed_when_a_unit_has_no_town_share():
    att = np.array([[1.0, 0.0, 0.0]])
    out = at.shift_to_town(att, np.array([True]), np.array([False, True, True]), np.array([0.0, 0.2]),
                           town_seed=np.array([[0.0, 1.0, 3.0]]))
    assert out[1, 0] == pytest.approx([0.8, 0.05, 0.15])


def test_add_migrant_children():
    pupils = np.ones((2, 3, 2)) * 10.0  # (Y, U, G)
    total, migrants = at.add_migrant_children(pupils, share=np.array([0.0, 0.1]), receiving=np.array([1.0, 0.0, 3.0]))
    assert migrants[0].sum() == 0.0
    assert migrants[1].sum(axis=0) == pytest.approx([3.0, 3.0])  # 10 % of 30 per grade
    assert migrants[1, :, 0] == pytest.approx([0.75, 0.0, 2.25])
    assert total == pytest.approx(pupils + migrants)
    with pytest.raises(ForecastError):
        at.add_migrant_children(pupils, np.array([0.1]), np.ones(3))


def test_boarders_by_hand_and_bounded_by_pupils():
    pupils = np.array([[[100.0, 50.0], [40.0, 20.0]]])  # (Y=1, U=2, G=2)
    att = np.array([[1.0, 0.0], [0.5, 0.5]])
    rates = at.build_boarding_rates(np.array([[0.0, 0.2], [0.1, 0.5]]), unit_area=np.array([0, 1]))  # (G, U)
    boarders = at.compute_boarders(pupils, att, rates)
    # school 0: unit 0 grade 1 (0 %), unit 1 half of 40 at 20 % -> 4; grade 2: 50*10 % + 10*50 % = 10
    assert boarders[0, 0].tolist() == pytest.approx([4.0, 10.0])
    assert boarders[0, 1].tolist() == pytest.approx([4.0, 5.0])
    assert (boarders <= at.allocate_pupils(pupils, att) + 1e-12).all()
    far = np.array([[0.0, 0.0], [1.0, 0.0]])  # only unit 1 at school 0 lives beyond the limit
    assert at.compute_boarders(pupils, att, rates, eligible=far)[0, 1].tolist() == pytest.approx([0.0, 0.0])


def test_quantiles_after_allocation_per_draw():
    rng = np.random.default_rng(3)
    pupils = rng.uniform(0, 20, size=(50, 2, 4, 3))
    att = _random_stochastic(rng, (4, 5))
    school = at.allocate_pupils(pupils, att)
    q = at.summarise_draws(school, (0.1, 0.5, 0.9))
    assert q.shape == (3, 2, 5, 3)
    assert (q[0] <= q[1]).all() and (q[1] <= q[2]).all()
