"""CCMPP core: Preston Box 6.2, invariants, balance, clipping, validation, Fuling baseline."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecast.ccmpp import FEMALE, MALE, SEXES, advance_one_step, project
from forecast.errors import ForecastError

PROJECT_ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- Preston, Heuveline & Guillot Box 6.2
@pytest.fixture(scope="module")
def preston(fixtures_dir):
    d = fixtures_dir / "ccmpp_preston_sweden"
    inputs = pd.read_csv(d / "inputs_female.csv")
    expected = pd.read_csv(d / "expected_female_1998.csv")
    mirror = pd.read_csv(d / "synthetic_male_mirror.csv")
    ratios = pd.read_csv(d / "survival_ratios_female_derived.csv")
    params = json.loads((d / "parameters.json").read_text())
    return inputs, expected, mirror, ratios, params


def preston_survival(nLx, radix, n):
    L = np.asarray(nLx, dtype=float)
    s = np.empty_like(L)
    s[0] = L[0] / (n * radix)
    s[1:-1] = L[1:-1] / L[:-2]
    s[-1] = L[-1] / (L[-2] + L[-1])
    return s


def preston_arrays(preston):
    inputs, _expected, mirror, _ratios, params = preston
    n = params["step_years"]
    s_f = preston_survival(inputs["nLx_female"], params["life_table_radix_l0"], n)
    s_m = preston_survival(mirror["nLx_male_synthetic"], params["life_table_radix_l0"], n)
    pop = np.stack([inputs["pop_female_1993"], mirror["pop_male_1993_synthetic"]]).astype(float)
    survival = np.stack([s_f, s_m])[None]
    asfr = inputs["asfr_1993_1998"].to_numpy(float)[None]
    mig = np.stack([inputs["net_migrants_female_1993_1998"],
                    mirror["net_migrants_male_1993_1998_synthetic"]]).astype(float)[None]
    srb = np.array([params["srb_male_per_female"]])
    return pop, survival, asfr, srb, mig, n


def test_preston_survival_ratios_match_fixture(preston):
    inputs, _e, _m, ratios, params = preston
    s = preston_survival(inputs["nLx_female"], params["life_table_radix_l0"], params["step_years"])
    np.testing.assert_allclose(s, ratios["survival_ratio"], rtol=0, atol=1e-9)


def test_preston_box_6_2_reproduced_within_half_a_person(preston):
    _i, expected, mirror, _r, params = preston
    pop, survival, asfr, srb, mig, n = preston_arrays(preston)
    res = project(pop, survival, asfr, srb, mig, step_years=n, migration_timing="even", return_components=True)
    female_1998 = res.population[1, FEMALE]
    male_1998 = res.population[1, MALE]
    assert np.abs(female_1998 - expected["pop_female_1998"].to_numpy()).max() <= 0.5
    assert np.abs(male_1998 - mirror["pop_male_1998_expected_synthetic"].to_numpy()).max() <= 0.5
    assert np.abs(res.births_by_mother_age[0] - expected["births_by_mother_age_1993_1998"].to_numpy()).max() <= 0.5
    totals = params["published_totals"]
    assert res.births[0].sum() == pytest.approx(totals["births_both_sexes_unrounded_recomputed"], abs=0.01)
    assert res.births[0, FEMALE] == pytest.approx(totals["female_births_unrounded_recomputed"], abs=0.01)
    assert female_1998.sum() == pytest.approx(4_507_581.32, abs=0.5)
    assert res.migrants[0, FEMALE].sum() == pytest.approx(totals["net_migrants_female"])
    assert res.balance_residual().max() < 1e-6


def test_preston_closed_population_does_not_match(preston):
    _i, expected, _m, _r, _p = preston
    pop, survival, asfr, srb, _mig, n = preston_arrays(preston)
    closed = project(pop, survival, asfr, srb, None, step_years=n).population[1, FEMALE]
    assert closed[1] == pytest.approx(293_189, abs=0.5)  # the README's value at 5-9
    assert np.abs(closed - expected["pop_female_1998"].to_numpy()).max() > 1000


# ---------------------------------------------------------------- small hand-built cases and invariants
def tiny_inputs(T=3, A=6, lead=(), seed=0, fertility=True, migration=True):
    rng = np.random.default_rng(seed)
    pop = rng.uniform(50, 150, lead + (2, A))
    survival = rng.uniform(0.8, 1.0, (T,) + lead + (2, A))
    asfr = np.zeros((T,) + lead + (A,))
    if fertility:
        asfr[..., 2:4] = rng.uniform(0.05, 0.2, (T,) + lead + (2,))
    srb = np.full((T,) + lead, 1.06)
    mig = rng.normal(0, 10, (T,) + lead + (2, A)) if migration else None
    return pop, survival, asfr, srb, mig


def test_no_fertility_deaths_or_migration_shifts_the_base_by_one_age():
    A = 6
    pop = np.arange(12, dtype=float).reshape(2, A) + 1
    res = project(pop, np.ones((2, 2, A)), np.zeros((2, A)), np.array([1.05, 1.05]))
    one = res.population[1]
    np.testing.assert_array_equal(one[:, 0], 0)
    np.testing.assert_array_equal(one[:, 1:A - 1], pop[:, :A - 2])
    np.testing.assert_array_equal(one[:, A - 1], pop[:, A - 2] + pop[:, A - 1])  # open group accumulates
    np.testing.assert_array_equal(res.population[2, :, 2:A - 1], pop[:, :A - 3])


def test_hand_computed_single_step():
    # one female age group of mothers, all timings checked by hand
    pop = np.array([[10.0, 20.0, 30.0], [10.0, 20.0, 30.0]])
    surv = np.array([[[0.9, 0.5, 0.8], [0.9, 0.5, 0.8]]])
    asfr = np.array([[0.0, 0.1, 0.0]])
    mig = np.array([[[2.0, 4.0, 0.0], [0.0, 0.0, 0.0]]])
    res = project(pop, surv, asfr, np.array([1.0]), mig, step_years=1, migration_timing="even",
                  return_components=True)
    # female age 1 end: (10 + 1) * 0.5 + 2 = 7.5 ; open: (20 + 2 + 30) * 0.8 = 41.6
    # births: 0.1 * ((20 + 2) + 7.5) / 2 = 1.475 ; female births 0.7375 * 0.9 + 1 = 1.66375
    np.testing.assert_allclose(res.population[1, FEMALE], [1.66375, 7.5, 41.6])
    np.testing.assert_allclose(res.births[0], [0.7375, 0.7375])
    np.testing.assert_allclose(res.population[1, MALE], [0.7375 * 0.9, 5.0, 40.0])
    for timing, fem_age1 in (("start", (10 + 2) * 0.5), ("end", 10 * 0.5 + 4)):
        r = project(pop, surv, asfr, np.array([1.0]), mig, migration_timing=timing)
        assert r.population[1, FEMALE, 1] == pytest.approx(fem_age1)


@pytest.mark.parametrize("timing", ["even", "start", "end"])
def test_balance_equation_exact_and_no_negative_counts(timing):
    pop, survival, asfr, srb, mig = tiny_inputs(T=4, lead=(3, 5))
    mig[..., -1] -= 400.0  # heavy emigration from the open group: some cannot leave
    res = project(pop, survival, asfr, srb, mig, migration_timing=timing, return_components=True)
    assert res.population.min() >= 0
    assert res.unmet_emigration.min() >= 0 and res.unmet_emigration.sum() > 0
    total = res.population.sum(axis=(-2, -1))
    flows = res.births.sum(-1) - res.deaths.sum(axis=(-2, -1)) + res.migrants.sum(axis=(-2, -1))
    np.testing.assert_allclose(total[1:] - total[:-1], flows, rtol=0, atol=1e-9 * total.max())
    # realised migrants = requested + what could not leave
    np.testing.assert_allclose(res.migrants, mig + res.unmet_emigration, atol=1e-9)
    assert res.deaths.min() >= -1e-12


def test_identical_inputs_for_both_sexes_give_identical_outputs_with_srb_one():
    pop, survival, asfr, srb, mig = tiny_inputs(T=3, lead=(4,))
    pop[:, MALE] = pop[:, FEMALE]
    survival[..., MALE, :] = survival[..., FEMALE, :]
    mig[..., MALE, :] = mig[..., FEMALE, :]
    res = project(pop, survival, asfr, np.ones_like(srb), mig)
    np.testing.assert_array_equal(res.population[..., FEMALE, :], res.population[..., MALE, :])


def test_leading_axes_equal_per_area_loop_and_broadcast_inputs():
    pop, survival, asfr, srb, mig = tiny_inputs(T=3, lead=(4,))
    shared_survival = survival[:, :1]  # (T, 1, 2, A) broadcast over areas
    batch = project(pop, shared_survival, asfr, srb[:, 0], mig, return_components=True)
    for a in range(4):
        one = project(pop[a], shared_survival[:, 0], asfr[:, a], srb[:, 0], mig[:, a], return_components=True)
        np.testing.assert_allclose(batch.population[:, a], one.population, rtol=1e-13)
        np.testing.assert_allclose(batch.deaths[:, a], one.deaths, rtol=1e-12, atol=1e-12)
    # draws × areas with per-draw migration scale
    scale = np.array([0.5, 2.0])[:, None]
    step = advance_one_step(pop, survival[0], asfr[0], srb[0], mig[0], migration_scale=scale)
    np.testing.assert_allclose(step.population[1], project(pop, survival[:1], asfr[:1], srb[:1], 2 * mig[:1])
                               .population[1], rtol=1e-12)


def test_float32_runs_stay_close_to_float64():
    pop, survival, asfr, srb, mig = tiny_inputs(T=5, lead=(3,))
    r64 = project(pop, survival, asfr, srb, mig).population
    r32 = project(*(x.astype(np.float32) for x in (pop, survival, asfr, srb, mig))).population
    assert r32.dtype == np.float32
    np.testing.assert_allclose(r32, r64, rtol=1e-5)


def test_bad_inputs_are_reported_together():
    pop, survival, asfr, srb, mig = tiny_inputs(T=2)
    pop[0, 0] = -1
    survival[0, 0, 1] = 1.5
    asfr[:, 0] = 0.1
    with pytest.raises(ForecastError) as err:
        project(pop, survival, asfr, srb, mig[:, :, :3], migration_timing="middle")
    text = str(err.value)
    for needle in ("population", "survival", "asfr", "net_migration", "migration_timing"):
        assert needle in text
    assert "5 problems" in text
    with pytest.raises(ForecastError, match="steps"):
        project(pop, survival, asfr[:1].repeat(3, 0), srb, None)


def test_sex_order_constants():
    assert SEXES == ("female", "male") and SEXES[FEMALE] == "female" and SEXES[MALE] == "male"


# ---------------------------------------------------------------- Fuling baseline (real census base)
def test_fuling_baseline_first_year_births_and_school_cohorts():
    population_dir = PROJECT_ROOT / "data" / "population"
    if not (population_dir / "base_population.csv").is_file():
        pytest.skip("data/population/base_population.csv does not exist yet (built by the lead engineer)")
    from forecast.population import load_projection_inputs, project_inputs

    inputs = load_projection_inputs(population_dir, n_steps=15)
    assert inputs.population.sum() == 1_115_016
    census_age0 = inputs.population[:, :, 0].sum()
    assert census_age0 == 6731
    res = project_inputs(inputs, return_components=True)
    births = res.births.sum(axis=(-2, -1))  # (T,) both sexes, all units
    # first-year births close to the census age-0 count; the gap is the TFR fall 2020 -> 2021
    assert abs(births[0] / census_age0 - 1) < 0.12
    tfr_2020 = 1.0437  # data/population/fertility_calibration.json
    assert births[0] * tfr_2020 / inputs.tfr[0] == pytest.approx(census_age0 / 0.997, rel=0.04)
    district = res.population.sum(axis=(1, 2))  # (T+1, A) both sexes
    big = district[0, 10:15]
    assert big.min() > 12_000 and district[0, 0] < 7_000
    # the big 10-14 cohorts move through school ages: at year k they sit at ages 10+k .. 14+k
    for k in (1, 3, 5):
        np.testing.assert_allclose(district[k, 10 + k:15 + k], big, rtol=0.02)
    # the small recent cohorts reach primary entry age 6 six years later
    assert district[6, 6] == pytest.approx(district[0, 0], rel=0.02)
    assert res.population.min() >= 0
    assert res.balance_residual().max() < 1e-6
