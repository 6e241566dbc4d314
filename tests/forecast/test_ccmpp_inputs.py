"""Inputs around the CCMPP engine: fertility, migration, IPF, stochastic draws, tidy adapter."""
from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from forecast.ccmpp import FEMALE, MALE, project
from forecast.errors import ForecastError
from forecast.fertility import TfrPolicy, apply_tfr_policies, build_asfr, graduate_asfr_schedule
from forecast.ipf import control_to_totals
from forecast.migration import (RogersCastro, build_destination_shares, build_young_family_profile,
                                calculate_age_schedule, calculate_housing_in_movers, split_net_migration,
                                transfer_persons)
from forecast.population import (build_projection_inputs, convert_array_to_long, convert_population_to_array)
from forecast.stochastic import (AR1, DEFAULT_TFR_AR1, QUANTILES, calculate_quantiles, draw_scales, fit_ar1,
                                 fit_tfr_ar1, project_draws, simulate_ar1)

PERCENT = np.array([0.3, 2.7, 23.5, 35.4, 24.4, 10.6, 2.7, 0.35, 0.05])  # 10-14 … 50-54, sums to 100
GROUPS = np.arange(10, 55, 5)


# ---------------------------------------------------------------- fertility
def test_graduated_schedule_keeps_group_sums_and_is_smooth_and_non_negative():
    ages, props = graduate_asfr_schedule(PERCENT, GROUPS)
    assert ages[0] == 10 and ages[-1] == 54 and props.shape == (45,)
    assert props.min() >= 0 and props.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(props.reshape(9, 5).sum(1), PERCENT / PERCENT.sum(), atol=1e-12)
    uniform = np.repeat(PERCENT / PERCENT.sum() / 5, 5)
    assert np.abs(np.diff(props)).max() < 0.6 * np.abs(np.diff(uniform)).max()  # no step at group borders
    # vectorised over years
    two = np.stack([PERCENT, PERCENT[::-1]])
    _, both = graduate_asfr_schedule(two, GROUPS)
    np.testing.assert_allclose(both[0], props)
    np.testing.assert_allclose(both[1].reshape(9, 5).sum(1), PERCENT[::-1] / 100, atol=1e-12)


def test_asfr_from_tfr_path_sums_to_tfr():
    ages, props = graduate_asfr_schedule(PERCENT, GROUPS)
    tfr = np.array([1.0, 1.2, 0.9])
    asfr = build_asfr(tfr, props, ages, n_ages=101)
    assert asfr.shape == (3, 101)
    np.testing.assert_allclose(asfr.sum(-1), tfr)
    assert np.all(asfr[:, :10] == 0) and np.all(asfr[:, 55:] == 0)
    five = build_asfr(tfr, PERCENT / 100, GROUPS, n_ages=18, width=5)  # 5-year groups, per-year rates
    np.testing.assert_allclose(5 * five.sum(-1), tfr)
    assert five[0, 4] == pytest.approx(0.235 / 5)
    with pytest.raises(ForecastError, match="ages"):
        build_asfr(tfr, props, ages + 60, n_ages=101)


def test_policy_effects_ramp_in_and_compose():
    years = np.arange(2021, 2030)
    three_child = TfrPolicy("three-child", 0.06, start_year=2022, ramp_years=3)
    subsidy = TfrPolicy("childcare subsidy", 0.10, start_year=2025, ramp_years=1)
    path = apply_tfr_policies(np.ones(years.size), years, [three_child, subsidy])
    np.testing.assert_allclose(path[:1], 1.0)
    np.testing.assert_allclose(path[1:4], [1.02, 1.04, 1.06])
    np.testing.assert_allclose(path[4:], 1.06 * 1.10)
    by_unit = apply_tfr_policies(np.ones((years.size, 3)), years, [three_child])
    np.testing.assert_allclose(by_unit[:, 2], apply_tfr_policies(np.ones(years.size), years, [three_child]))
    with pytest.raises(ForecastError, match="ramp_years"):
        apply_tfr_policies(np.ones(2), [2021, 2022], [TfrPolicy("x", 0.1, 2021, 0)])


# ---------------------------------------------------------------- migration
def test_rogers_castro_child_component_is_tied_to_the_parents():
    rc = RogersCastro()
    assert rc.a1 == pytest.approx(0.02) and rc.alpha1 == rc.alpha2 == 0.1
    doubled = RogersCastro(a2=0.12)
    assert doubled.a1 == pytest.approx(2 * rc.a1)  # more moving parents → more moving children
    x = np.arange(0, 80)
    m = rc.evaluate(x)
    peak = rc.mu2 - np.log(rc.alpha2 / rc.lambda2) / rc.lambda2
    assert abs(x[np.argmax(m[10:]) + 10] - peak) <= 1
    assert np.all(np.diff(m[:10]) < 0)  # children: falling with age
    shares = calculate_age_schedule(rc, 101)
    assert shares.sum() == pytest.approx(1) and shares.min() > 0
    grouped = calculate_age_schedule(rc, 21, width=5)
    summed = rc.evaluate(np.arange(105) + 0.5).reshape(21, 5).sum(1)
    np.testing.assert_allclose(grouped, summed / summed.sum())


def test_split_net_migration_conserves_totals_by_sex():
    totals = np.array([[100.0, -50.0], [0.0, 30.0]])  # (T=2, U=2)
    schedule = calculate_age_schedule(RogersCastro(), 101)
    mig = split_net_migration(totals, schedule, female_share=0.48)
    assert mig.shape == (2, 2, 2, 101)
    np.testing.assert_allclose(mig.sum(axis=(-2, -1)), totals)
    np.testing.assert_allclose(mig[..., FEMALE, :].sum(-1), 0.48 * totals)
    assert np.all(mig[0, 1] <= 0)


def test_transfer_conserves_persons_and_never_goes_negative():
    pop = np.zeros((3, 2, 4))
    pop[0] = 10.0
    pop[1] = 2.0
    requested = np.zeros_like(pop)
    requested[0] = 4.0
    requested[1] = 5.0  # more than present: only 2 can leave
    share = build_destination_shares(origin=[True, True, False], destination=[False, False, True],
                                     weight=[0, 0, 1])
    res = transfer_persons(pop, requested, share)
    assert res.population.min() >= 0
    assert res.population.sum() == pytest.approx(pop.sum())
    np.testing.assert_allclose(res.population[2], 6.0)
    np.testing.assert_allclose(res.unmet[1], 3.0)
    np.testing.assert_allclose(res.inflow.sum(), res.outflow.sum())
    # vectorised over draws
    draws = np.stack([pop, 2 * pop])
    res2 = transfer_persons(draws, np.stack([requested, requested]), share)
    np.testing.assert_allclose(res2.population[0], res.population)
    assert res2.unmet[1].sum() == pytest.approx(8)  # unit 1 has 4 per cell now: 1 short × 8 cells
    bad = share.copy()
    bad[0] = [0, 0.5, 0.2]
    with pytest.raises(ForecastError, match="sum to 1"):
        transfer_persons(pop, requested, bad)


def test_destination_shares_prefer_the_same_township():
    share = build_destination_shares(origin=[True, False, False, True], destination=[False, True, True, False],
                                     weight=[0, 1, 3, 0], group=["a", "a", "b", "c"])
    np.testing.assert_allclose(share[0], [0, 1, 0, 0])  # township a has an urban unit
    np.testing.assert_allclose(share[3], [0, 0.25, 0.75, 0])  # township c has none: all urban units
    np.testing.assert_allclose(share[1], 0)  # not an origin


def test_housing_pipeline_gives_young_families():
    profile = build_young_family_profile(101)
    assert profile.shape == (2, 101) and profile.sum() == pytest.approx(1)
    ages = np.arange(101)
    by_age = profile.sum(0)
    assert 25 <= ages[15 + np.argmax(by_age[15:])] <= 30
    assert by_age[:6].sum() > 0.12  # pre-school children come with their parents
    assert by_age[65:].sum() < 0.05
    dwellings = np.array([[100.0, 0.0], [50.0, 20.0]])  # (T=2, U=2)
    movers = calculate_housing_in_movers(dwellings, 2.8, profile)
    assert movers.shape == (2, 2, 2, 101)
    np.testing.assert_allclose(movers.sum(axis=(-2, -1)), dwellings * 2.8)


# ---------------------------------------------------------------- IPF
def test_ipf_meets_both_margins_and_keeps_the_seed_structure():
    rng = np.random.default_rng(3)
    seed = rng.uniform(1, 10, (2, 5, 2, 4))  # (draws, units, sex, age)
    target_cells = seed.sum(1) * rng.uniform(0.8, 1.2, (2, 2, 4))
    unit_share = rng.dirichlet(np.ones(5), size=2)
    unit_totals = unit_share * target_cells.sum(axis=(-2, -1))[:, None]
    res = control_to_totals(seed, target_cells, unit_totals, tol=1e-8)
    np.testing.assert_allclose(res.population.sum(1), target_cells, atol=1e-7)
    np.testing.assert_allclose(res.population.sum(axis=(-2, -1)), unit_totals, atol=1e-7)
    # IPF keeps the seed's cross-product ratios
    fitted = res.population[0].reshape(5, 8)
    s = seed[0].reshape(5, 8)
    ratio = lambda m: m[0, 0] * m[1, 1] / (m[0, 1] * m[1, 0])  # noqa: E731
    assert ratio(fitted) == pytest.approx(ratio(s), rel=1e-6)
    only_cells = control_to_totals(seed, target_cells)
    np.testing.assert_allclose(only_cells.population.sum(1), target_cells, rtol=1e-12)
    np.testing.assert_allclose(only_cells.population / seed, np.broadcast_to(
        (target_cells / seed.sum(1))[:, None], seed.shape), rtol=1e-12)


def test_ipf_reports_inconsistent_margins_and_empty_cells():
    seed = np.ones((3, 2, 2))
    cells = np.full((2, 2), 3.0)
    with pytest.raises(ForecastError, match="inconsistent"):
        control_to_totals(seed, cells, np.array([4.0, 4.0, 5.0]))
    seed[:, 1, 1] = 0
    with pytest.raises(ForecastError, match="no persons"):
        control_to_totals(seed, cells)


# ---------------------------------------------------------------- stochastic
def test_ar1_fit_recovers_known_parameters():
    rng = np.random.default_rng(11)
    series = simulate_ar1(AR1(phi=0.7, sigma=0.1), 1, 3000, rng)[0]
    fit = fit_ar1(series)
    assert fit.phi == pytest.approx(0.7, abs=0.04)
    assert fit.sigma == pytest.approx(0.1, rel=0.05)


def test_default_tfr_ar1_is_the_fit_on_wpp_china_history(shared_dir):
    table = pd.read_csv(shared_dir / "data-sources" / "wpp2024_china" / "china_tfr.tsv", sep="\t")
    years = np.arange(1950, 2024)
    tfr = table[[str(y) for y in years]].iloc[0].to_numpy(float)
    fit = fit_tfr_ar1(years, tfr)
    assert fit.phi == pytest.approx(DEFAULT_TFR_AR1.phi, abs=0.02)
    assert fit.sigma == pytest.approx(DEFAULT_TFR_AR1.sigma, abs=0.005)


def test_scales_are_seeded_and_quantiles_ordered():
    a = draw_scales(200, 10, seed=5)
    b = draw_scales(200, 10, seed=5)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], draw_scales(200, 10, seed=6)[0])
    q = calculate_quantiles(a[0], QUANTILES)
    assert q.shape == (5, 10)
    assert np.all(np.diff(q, axis=0) >= 0)
    assert np.median(np.log(a[0][:, -1])) == pytest.approx(0, abs=0.05)
    no_noise = draw_scales(3, 4, seed=1, tfr_ar1=None, migration_ar1=None)
    np.testing.assert_array_equal(no_noise[0], 1.0)


def small_projection_inputs(U=6, T=4, A=30, seed=2):
    rng = np.random.default_rng(seed)
    pop = rng.uniform(5, 40, (U, 2, A))
    survival = np.full((T, 2, A), 0.995)
    survival[:, :, -1] = 0.7
    asfr = np.zeros((T, A))
    asfr[:, 15:25] = 0.12
    srb = np.full(T, 1.06)
    mig = rng.normal(0, 1.0, (T, U, 2, A))
    return pop, survival, asfr, srb, mig


def test_project_draws_is_reproducible_and_chunk_independent():
    pop, survival, asfr, srb, mig = small_projection_inputs()
    kw = dict(n_draws=7, seed=42, kept_ages=range(0, 12), dtype=np.float64)
    a = project_draws(pop, survival, asfr, srb, mig, chunk_draws=3, **kw)
    b = project_draws(pop, survival, asfr, srb, mig, chunk_draws=7, **kw)
    for name in ("school_age", "births", "district", "unit_totals", "tfr_scale"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-12)
    assert a.school_age.shape == (7, 5, 6, 12)
    q = a.quantiles("district")
    assert q.shape == (5, 5, 2, 30) and np.all(np.diff(q, axis=0) >= -1e-9)


def test_project_draws_equals_deterministic_projection_per_draw():
    pop, survival, asfr, srb, mig = small_projection_inputs()
    sp = project_draws(pop, survival, asfr, srb, mig, n_draws=3, seed=1, dtype=np.float64,
                       kept_ages=range(0, 18), chunk_draws=2)
    for d in range(3):
        scaled_asfr = asfr * sp.tfr_scale[d][:, None]
        scaled_mig = mig * sp.migration_scale[d][:, None, None, None]
        ref = project(pop, survival, scaled_asfr, srb, scaled_mig, return_components=True)
        np.testing.assert_allclose(sp.school_age[d], ref.population[..., :18].sum(axis=-2), rtol=1e-12)
        np.testing.assert_allclose(sp.district[d], ref.population.sum(axis=1), rtol=1e-12)
        np.testing.assert_allclose(sp.unit_totals[d], ref.population.sum(axis=(-2, -1)), rtol=1e-12)
        np.testing.assert_allclose(sp.births[d], ref.births.sum(-1), rtol=1e-12)
        np.testing.assert_allclose(sp.unmet_emigration[d], ref.unmet_emigration.sum(axis=(1, 2, 3)), atol=1e-9)
    with pytest.raises(ForecastError, match="net_migration"):
        project_draws(pop, survival, asfr, srb, mig[:, :2], n_draws=3, seed=1)
    f32 = project_draws(pop, survival, asfr, srb, mig, n_draws=3, seed=1, kept_ages=range(0, 18))
    assert f32.school_age.dtype == np.float32
    np.testing.assert_allclose(f32.school_age, sp.school_age, rtol=1e-4, atol=1e-3)


# ---------------------------------------------------------------- tidy adapter
def test_population_table_round_trip_and_validation():
    rows = [("u2", "female", 0, 3), ("u1", "male", 100, 7), ("u1", "female", 5, 2)]
    table = pd.DataFrame(rows, columns=["unit_code", "sex", "age", "persons"])
    arr, codes = convert_population_to_array(table)
    assert codes == ["u1", "u2"] and arr.shape == (2, 2, 101)
    assert arr[1, FEMALE, 0] == 3 and arr[0, MALE, 100] == 7 and arr.sum() == 12
    long = convert_array_to_long(arr[None], unit_codes=codes, years=[2020])
    assert list(long.columns) == ["unit_code", "year", "sex", "age", "persons"]
    back, _ = convert_population_to_array(long[long.persons > 0])
    np.testing.assert_array_equal(back, arr)
    bad = pd.DataFrame([("u1", "M", 0, 1), ("u1", "female", 101, 1), ("u1", "female", 3, -2),
                        ("u1", "female", 4, 1), ("u1", "female", 4, 1)], columns=table.columns)
    with pytest.raises(ForecastError) as err:
        convert_population_to_array(bad)
    text = str(err.value)
    assert "4 problems" in text and "rows 2" in text and "rows 5, 6" in text


def test_long_table_with_quantiles():
    values = np.arange(2 * 3 * 1 * 1 * 4, dtype=float).reshape(2, 3, 1, 1, 4)
    long = convert_array_to_long(values, unit_codes=["u"], years=[2020, 2021, 2022], quantiles=[0.1, 0.9],
                                 sexes=("both",))
    assert len(long) == 24 and set(long["quantile"]) == {0.1, 0.9}
    row = long[(long.year == 2021) & (long.age == 2) & (long["quantile"] == 0.9)]
    assert row["persons"].item() == values[1, 1, 0, 0, 2]


def small_tables():
    base = pd.DataFrame([(u, s, a, 10) for u in ("a", "b") for s in ("female", "male") for a in range(101)],
                        columns=["unit_code", "sex", "age", "persons"])
    ages = [0, 1] + list(range(5, 101, 5))
    mx = pd.DataFrame([(p, s, a, 0.002 * np.exp(0.07 * a) * (1 - 0.01 * (p - 2015)))
                       for p in (2015, 2020, 2025) for s in ("female", "male") for a in ages],
                      columns=["period_start", "sex", "age_start", "mx"])
    sched = pd.DataFrame([(y, g, p) for y in range(2019, 2026) for g, p in zip(GROUPS, PERCENT)],
                         columns=["year", "age_start", "percent"])
    tfr = pd.DataFrame([(y, "estimate", 1.5, 1.2 - 0.1 * (y - 2020)) for y in (2020, 2021, 2022)]
                       + [(y, v, 1.0, {"median": 1.0, "low": 0.7}[v]) for y in range(2023, 2026)
                          for v in ("median", "low")], columns=["year", "variant", "tfr_china", "tfr_fuling"])
    srb = pd.DataFrame({"year": range(2019, 2026), "srb": 1.1})
    return base, mx, sched, tfr, srb


def test_build_projection_inputs_timing_and_values():
    base, mx, sched, tfr, srb = small_tables()
    inputs = build_projection_inputs(base, mx, sched, tfr, srb, n_steps=4, variant="low")
    assert inputs.population.shape == (2, 2, 101) and inputs.survival.shape == (4, 2, 101)
    np.testing.assert_array_equal(inputs.years, [2020, 2021, 2022, 2023, 2024])
    np.testing.assert_array_equal(inputs.fertility_years, [2021, 2022, 2023, 2024])
    np.testing.assert_allclose(inputs.tfr, [1.1, 1.0, 0.7, 0.7])  # estimates, then the low variant
    np.testing.assert_allclose(inputs.asfr.sum(-1), inputs.tfr)
    assert inputs.mortality_times[0] == pytest.approx(2020 + 305 / 366 + 0.5)
    assert np.all(np.diff(inputs.e0, axis=0) > 0)  # mortality improves period by period
    res = project(inputs.population, inputs.survival, inputs.asfr, inputs.srb)
    assert res.population.shape == (5, 2, 2, 101)
    with pytest.raises(ForecastError) as err:
        build_projection_inputs(base, mx, sched[sched.year < 2023], tfr, srb.iloc[:0], n_steps=4,
                                base_date=date(2020, 11, 1))
    assert "asfr_schedule.csv" in str(err.value) and "srb.csv" in str(err.value)


def test_housing_pipeline_table_and_draw_quantile_tables():
    from forecast.population import build_housing_migration, convert_draws_to_long

    housing = pd.DataFrame({"site_id": ["s1", "s2", "s3"], "unit_code": ["b", "a", "a"],
                            "year": [2021, 2022, 2040], "dwellings": [100, 10, 999]})
    movers = build_housing_migration(housing, ["a", "b"], [2021, 2022, 2023], persons_per_dwelling=3.0)
    assert movers.shape == (3, 2, 2, 101)
    np.testing.assert_allclose(movers.sum(axis=(-2, -1)), [[0, 300], [30, 0], [0, 0]])  # 2040 is outside
    with pytest.raises(ForecastError, match="unit codes"):
        build_housing_migration(housing.assign(unit_code=["zz", "a", "a"]), ["a", "b"], [2021])
    pop, survival, asfr, srb, mig = small_projection_inputs(U=2, T=3)
    sp = project_draws(pop, survival, asfr, srb, mig, n_draws=20, seed=3, kept_ages=range(0, 6))
    tables = convert_draws_to_long(sp, ["a", "b"], [2020, 2021, 2022, 2023])
    school, district = tables["school_age"], tables["district"]
    assert len(school) == 5 * 4 * 2 * 6 and set(school["sex"]) == {"both"}
    assert len(district) == 5 * 4 * 2 * 30 and set(district["unit_code"]) == {"district"}
    base = school[(school.year == 2020) & (school["quantile"] == 0.5) & (school.unit_code == "a")]
    np.testing.assert_allclose(base["persons"], pop[0, :, :6].sum(0), rtol=1e-6)


def test_rural_urban_migration_conserves_persons_and_moves_young_families():
    from forecast.migration import calculate_rural_urban_migration

    pop = np.full((4, 2, 101), 10.0)
    urban = np.array([False, True, False, True])
    net = calculate_rural_urban_migration(pop, urban, [0.01, 0.02], group=["t1", "t1", "t2", "t3"])
    assert net.shape == (2, 4, 2, 101)
    np.testing.assert_allclose(net.sum(axis=1), 0, atol=1e-12)  # conserved over units, by age and sex
    np.testing.assert_allclose(net[0, [0, 2]].sum(axis=(-2, -1)), -0.01 * 2020)  # each rural unit sends 1 %
    # t1's town gets all of t1's leavers; t2 has no town: its leavers split over both towns (equal weight)
    np.testing.assert_allclose(net[1, 1].sum(), 0.02 * 2020 * 1.5)
    np.testing.assert_allclose(net[1, 3].sum(), 0.02 * 2020 * 0.5)
    leavers = -net[0, 0].sum(0)
    assert np.argmax(leavers[15:]) + 15 in range(19, 26) and leavers[2] > leavers[60]
