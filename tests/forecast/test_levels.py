"""Tests of forecast.levels: timing conventions, level rules by hand, and the Fuling 2020 reproduction."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecast import levels as lv
from forecast.errors import ForecastError


def test_school_age_of_grade():
    assert [lv.school_age_of_grade(g) for g in (-3, -2, -1, 1, 6, 7, 9, 10, 12)] == [3, 4, 5, 6, 11, 12, 14, 15, 17]
    with pytest.raises(ForecastError):
        lv.school_age_of_grade(0)


def test_weigh_school_age_by_hand():
    pop = np.arange(0.0, 21.0) * 10  # persons aged a on 1 Nov = 10 a
    c = lv.weigh_school_age(pop, range(21), [1, 9, -3])
    # grade 1: 10/12 of age 6 + 2/12 of age 7
    assert c.tolist() == pytest.approx([10 / 12 * 60 + 2 / 12 * 70, 10 / 12 * 140 + 2 / 12 * 150, 10 / 12 * 30 + 2 / 12 * 40])
    # leading axes broadcast
    assert lv.weigh_school_age(np.stack([pop, 2 * pop]), range(21), [1]).shape == (2, 1)
    with pytest.raises(ForecastError, match="lacks school ages"):
        lv.weigh_school_age(pop[:18], range(18), [12])  # grade 12 needs ages 17 and 18


def test_interpolate_path():
    path = lv.interpolate_path({2020: 0.912, 2025: 0.98}, range(2019, 2028))
    assert path[0] == pytest.approx(0.912) and path[1] == pytest.approx(0.912)
    assert path[3] == pytest.approx(0.912 + 2 * (0.98 - 0.912) / 5)
    assert path[-1] == pytest.approx(0.98)
    with pytest.raises(ForecastError):
        lv.interpolate_path({}, [2020])


def test_project_kindergarten_by_hand():
    cohorts = np.array([[[100.0, 110.0, 120.0], [50.0, 50.0, 50.0]],
                        [[90.0, 100.0, 110.0], [60.0, 55.0, 50.0]]])  # (Y=2, U=2, 3)
    base = np.array([135.0, 144.0, 153.0])  # district base-year children by grade
    kind = lv.project_kindergarten(cohorts, ger=np.array([0.9, 0.95]), public_share=np.array([0.5, 0.6]),
                                   inclusive_share=np.array([0.9, 0.95]), base_pupils=base)
    assert kind.pupils[0].sum(axis=0) == pytest.approx(base)  # base year reproduced
    w = base / (0.9 * np.array([150.0, 160.0, 170.0]))
    assert kind.pupils[1, 0] == pytest.approx(0.95 * w * np.array([90.0, 100.0, 110.0]))
    assert kind.sector_shares[1] == pytest.approx([0.6, 0.35, 0.05])
    assert kind.sector_pupils()[1].sum() == pytest.approx(kind.pupils[1].sum())
    with pytest.raises(ForecastError, match="inclusive"):
        lv.project_kindergarten(cohorts, np.array([0.9, 0.95]), np.array([0.5, 0.6]), np.array([0.4, 0.95]))
    with pytest.raises(ForecastError, match="fractions"):
        lv.project_kindergarten(cohorts, np.array([91.2, 98.0]), np.array([0.5, 0.6]), np.array([0.9, 0.95]))


def test_project_senior_by_hand():
    cohorts = np.full((2, 1, 3), 100.0)
    sen = lv.project_senior(cohorts, ger=np.array([0.99, 0.995]), general_share=np.array([0.6, 0.55]),
                            base_pupils=np.array([110.0, 105.0, 100.0]))
    assert sen.pupils[0, 0] == pytest.approx([110.0, 105.0, 100.0])
    assert sen.pupils[1, 0] == pytest.approx(np.array([110.0, 105.0, 100.0]) * 0.995 / 0.99)
    assert sen.track_pupils()[1] == pytest.approx(sen.pupils[1].sum() * np.array([0.55, 0.45]))


def test_project_compulsory_by_hand():
    n_y = 3
    cohorts = np.ones((n_y, 2, 9)) * 100.0
    cohorts[:, 1] = 300.0  # unit 1 holds three quarters of every cohort
    base = np.arange(1, 10) * 10.0 + 350.0
    gpr = np.ones(9)
    c = np.array([0.98, 0.99, 0.99])
    comp = lv.project_compulsory(cohorts, base, gpr, c)
    a = (0.99 / 0.98) ** (1 / 8)
    assert comp.entry_ratio == pytest.approx(base[0] / 400.0)
    assert comp.district[0] == pytest.approx(base)
    assert comp.district[1, 0] == pytest.approx(base[0])  # entry ratio × the same cohort
    assert comp.district[1, 1:] == pytest.approx(base[:-1] * a)
    assert comp.district[2, 2:] == pytest.approx(base[:-2] * a * a)
    # units share the district total by cohort, conserving it
    assert comp.pupils.sum(axis=-2) == pytest.approx(comp.district)
    assert comp.pupils[2, 1] == pytest.approx(0.75 * comp.district[2])
    with pytest.raises(ForecastError, match="consolidation"):
        lv.project_compulsory(cohorts, base, gpr, np.array([98.5, 99.0, 99.0]))


def test_cohort_gpr_keeps_enrollment_ratios_of_a_shifting_cohort():
    rng = np.random.default_rng(0)
    ages = np.arange(0, 19)
    base_pop = rng.uniform(80, 120, size=(3, ages.size))  # (U, K)
    # closed population, one year older each year, new births of 90 at age 0
    pops = [base_pop]
    for _ in range(4):
        nxt = np.empty_like(base_pop)
        nxt[:, 1:] = pops[-1][:, :-1]
        nxt[:, 0] = 90.0
        pops.append(nxt)
    pop = np.stack(pops)  # (Y, U, K)
    cohorts = lv.weigh_school_age(pop, ages, range(1, 10))  # (Y, U, 9)
    er = np.linspace(0.9, 0.98, 9)
    base = er * cohorts[0].sum(axis=0)
    gpr = lv.compute_cohort_gpr(cohorts, base)
    comp = lv.project_compulsory(cohorts, base, gpr, np.full(5, 0.99))
    # every year keeps the base-year enrollment ratio of every grade
    assert comp.district == pytest.approx(er * cohorts.sum(axis=1))


def test_forecast_progression_ratios_constant_history():
    hist = np.empty((6, 9))
    hist[0] = 1000.0
    for t in range(1, 6):
        hist[t, 0] = 1000.0
        hist[t, 1:] = hist[t - 1, :-1] * 0.99
    gpr, methods = lv.forecast_progression_ratios(hist, 4)
    assert gpr.shape == (4, 9) and np.isnan(gpr[:, 0]).all()
    assert gpr[:, 1:] == pytest.approx(0.99)
    assert methods[0] == "" and all(m in ("mean1", "mean3", "mean5", "ses", "ets") for m in methods[1:])


def _toy_population(n_y=4, n_u=3):
    ages = np.arange(0, 20)
    base = np.tile(100.0 + ages, (n_u, 1))
    pop = np.stack([np.roll(base, t, axis=1) for t in range(n_y)])
    return pop, ages


def test_forecast_levels_end_to_end_and_long_table():
    pop, ages = _toy_population()
    hist = np.tile(np.linspace(90, 110, 9), (5, 1))
    base = {-3: 95.0, -2: 96.0, -1: 97.0, 10: 80.0, 11: 79.0, 12: 78.0}
    years = np.arange(2020, 2024)
    fc = lv.forecast_levels(np.stack([pop, 1.1 * pop]), ages, years, compulsory_history=hist, base_pupils=base)
    assert fc.pupils.shape == (2, 4, 3, 15)
    assert (fc.pupils >= 0).all()
    totals = fc.level_totals()
    # calibration is on the mean base population over draws: the draws' mean base year is reproduced
    assert fc.pupils[:, 0].sum(axis=1)[:, :3].mean(axis=0) == pytest.approx([95.0, 96.0, 97.0])
    assert totals.shape == (2, 4, 4)
    table = fc.to_long_table(["u1", "u2", "u3"], scenario="base", quantiles=(0.1, 0.5, 0.9))
    assert list(table.columns) == ["scenario", "year", "level", "grade", "unit_code", "quantile", "pupils"]
    assert len(table) == 3 * 4 * 3 * 15
    assert set(table.level) == {"kindergarten", "primary", "junior", "senior"}
    with pytest.raises(ForecastError, match="progression"):
        lv.forecast_levels(pop, ages, years, compulsory_history=hist, base_pupils=base, progression="magic")
    with pytest.raises(ForecastError, match="base_pupils"):
        lv.forecast_levels(pop, ages, years, compulsory_history=hist, base_pupils={-3: 1.0})


# ---------------------------------------------------------------------------------------- Fuling data
def test_fuling_2020_enrollment_from_the_2020_base(project_root):
    hist_path = project_root / "data" / "enrollment_history.csv"
    pop_path = project_root / "data" / "population" / "base_population.csv"
    if not hist_path.exists() or not pop_path.exists():
        pytest.skip(f"Fuling data not built yet ({hist_path.name}, {pop_path.name})")
    history = pd.read_csv(hist_path)
    base = pd.read_csv(pop_path, dtype={"unit_code": str})
    by_age = base.groupby(["unit_code", "age"])["persons"].sum().unstack("age").fillna(0.0)
    ages = by_age.columns.to_numpy()
    pop = by_age.to_numpy(dtype=float)[None]  # (Y=1, U, K): 1 Nov 2020
    hist, years = lv.summarise_history(history, range(1, 10))
    assert years[-1] == 2020
    cohorts = lv.weigh_school_age(pop, ages, range(1, 10))  # (1, U, 9)
    district_cohort = cohorts[0].sum(axis=0)
    # the calibrated enrollment-to-cohort ratios are plausible for compulsory schooling
    ratios = hist[-1] / district_cohort
    assert ((ratios > 0.85) & (ratios < 1.10)).all()
    # 2020 reproduced from the 2020 base: by grade for the district, and units add up to it
    comp = lv.project_compulsory(cohorts, hist[-1], np.ones(9), np.array([0.985]))
    assert comp.pupils[0].sum(axis=0) == pytest.approx(hist[-1], rel=1e-12)
    assert comp.pupils[0].sum() == pytest.approx(67000 + 40000, rel=0.01)
    # one year ahead: 2020 forecast from the 2015-2019 history and the 2020 cohort of grade 1
    gpr, _ = lv.forecast_progression_ratios(hist[:-1], 1)
    entry = comp.entry_ratio * district_cohort[0]
    forecast_2020 = np.concatenate([[entry], hist[-2, :-1] * gpr[0, 1:]])
    ape = np.abs(forecast_2020 / hist[-1] - 1) * 100
    assert ape.mean() < 3.0
