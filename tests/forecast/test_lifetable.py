"""Life tables, survival ratios, mx graduation and mortality improvement."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecast.errors import ForecastError
from forecast.lifetable import (ABRIDGED_AGES, build_life_table, calculate_a0, calculate_survival_ratios,
                                interpolate_mx_over_time, interpolate_mx_to_single_years)


def read_wpp_mx(shared_dir, period="2020-2025"):
    out = {}
    for sex, tag in (("female", "F"), ("male", "M")):
        table = pd.read_csv(shared_dir / "data-sources" / "wpp2024_china" / f"china_mx{tag}5.tsv", sep="\t")
        out[sex] = table[period].to_numpy(float)
    return out


def test_china_2020_2025_abridged_table_reproduces_wpp_e0(shared_dir):
    mx = read_wpp_mx(shared_dir)
    e0 = {sex: build_life_table(mx[sex], ABRIDGED_AGES, sex).e0 for sex in mx}
    # PROVENANCE: an abridged table from 2020-2025 mx reproduces e0 75.3 M / 81.0 F
    assert round(float(e0["male"]), 1) == 75.3
    assert round(float(e0["female"]), 1) == 81.0
    for sex in mx:  # the a0 convention hardly matters at this infant mortality
        cd = build_life_table(mx[sex], ABRIDGED_AGES, sex, a0_method="coale_demeny").e0
        assert abs(cd - e0[sex]) < 0.01


def test_single_year_graduation_keeps_the_table(shared_dir):
    mx = read_wpp_mx(shared_dir)
    both = np.stack([mx["female"], mx["male"]])  # (2, 22), sex axis = -2
    single = interpolate_mx_to_single_years(both)
    assert single.shape == (2, 101) and np.all(single > 0)
    np.testing.assert_array_equal(single[:, 0], both[:, 0])
    np.testing.assert_array_equal(single[:, 100], both[:, -1])
    # each closed interval's mean single-year rate equals the interval rate
    np.testing.assert_allclose(single[:, 1:5].mean(-1), both[:, 1], rtol=1e-12)
    np.testing.assert_allclose(single[:, 60:65].mean(-1), both[:, 13], rtol=1e-12)
    assert np.all(np.diff(np.log(single[:, 40:100]), axis=-1) > 0)  # adult mortality rises with age
    e0_single = build_life_table(single, None, None).e0
    e0_abridged = build_life_table(both, ABRIDGED_AGES, None).e0
    np.testing.assert_allclose(e0_single, e0_abridged, atol=0.25)


def test_hand_computed_life_table_constant_hazard_open_group():
    mx = np.array([0.01, 0.02, 0.5])
    lt = build_life_table(mx, [0, 1, 2], "female")
    a0 = 0.14903 - 2.05527 * 0.01  # Andreev-Kingkade, female, m0 < 0.01724
    q0 = 0.01 / (1 + (1 - a0) * 0.01)
    assert lt.qx[0] == pytest.approx(q0)
    assert lt.lx[1] == pytest.approx(1 - q0)
    q1 = 0.02 / (1 + 0.5 * 0.02)
    L1 = (1 - q0) * (1 - q1) + 0.5 * (1 - q0) * q1
    assert lt.Lx[1] == pytest.approx(L1)
    L2 = (1 - q0) * (1 - q1) / 0.5
    assert lt.Lx[2] == pytest.approx(L2) and lt.qx[2] == 1
    assert lt.Tx[0] == pytest.approx(lt.Lx.sum())
    assert lt.ex[2] == pytest.approx(2.0)  # 1/m in the open group
    # deaths are the decrements of lx and sum to the radix
    assert lt.dx.sum() == pytest.approx(1.0)


def test_a0_conventions_and_sex_axis():
    m0 = np.array([0.005, 0.05, 0.2])
    ak_male = calculate_a0(m0, False)
    np.testing.assert_allclose(ak_male, [0.14929 - 1.99545 * 0.005, 0.02832 + 3.26021 * 0.05, 0.29915])
    cd_female = calculate_a0(m0, True, "coale_demeny")
    np.testing.assert_allclose(cd_female, [0.053 + 2.8 * 0.005, 0.053 + 2.8 * 0.05, 0.35])
    mx = np.tile(np.array([0.01, 0.002, 0.5]), (2, 1))
    lt = build_life_table(mx, [0, 1, 5], None)  # axis -2 is sex: female then male
    assert lt.ax[0, 0] != lt.ax[1, 0]
    assert lt.ax[0, 0] == pytest.approx(build_life_table(mx[0], [0, 1, 5], "female").ax[0])
    with pytest.raises(ForecastError, match="a0_method"):
        build_life_table(mx, [0, 1, 5], None, a0_method="keyfitz")


def test_survival_ratios_single_year_and_five_year():
    ages = np.arange(101)
    mx = 0.0002 * np.exp(0.085 * ages) + 0.0005
    mx[0] = 0.005
    lt = build_life_table(mx, None, "male", radix=100_000)
    s = calculate_survival_ratios(lt, 1)
    assert s.shape == (101,)
    assert s[0] == pytest.approx(lt.Lx[0] / 100_000)
    assert s[50] == pytest.approx(lt.Lx[50] / lt.Lx[49])
    assert s[100] == pytest.approx(lt.Tx[100] / lt.Tx[99])
    assert np.all((s > 0) & (s <= 1))
    s5 = calculate_survival_ratios(lt, 5)
    assert s5.shape == (21,)
    assert s5[0] == pytest.approx(lt.Lx[:5].sum() / (5 * 100_000))
    assert s5[3] == pytest.approx(lt.Lx[15:20].sum() / lt.Lx[10:15].sum())
    assert s5[20] == pytest.approx(lt.Tx[100] / lt.Tx[95])
    with pytest.raises(ForecastError, match="step"):
        calculate_survival_ratios(lt, 3)


def test_stationary_population_is_reproduced_by_survival_ratios():
    # a stationary population (persons = Lx, births = l0 per year) stays put under the ratios
    from forecast.ccmpp import project

    ages = np.arange(101)
    mx = 0.0003 * np.exp(0.08 * ages) + 0.0004
    mx[0] = 0.004
    lt = build_life_table(np.stack([mx, mx * 1.2]), None, None, radix=1000.0)
    s = calculate_survival_ratios(lt)
    pop = lt.Lx.copy()
    # births = 1000 per sex each year: fertility that yields 2000 births from female exposure Lx
    asfr = np.zeros(101)
    asfr[20:40] = 2000.0 / lt.Lx[0, 20:40].sum()
    res = project(pop, s[None].repeat(3, 0), asfr[None].repeat(3, 0), np.ones(3))
    np.testing.assert_allclose(res.population[3], pop, rtol=1e-10)


def test_mortality_improvement_interpolates_log_linearly_between_periods():
    p = np.array([[0.02, 0.2], [0.01, 0.1]])  # (P=2, age)
    out = interpolate_mx_over_time(p, [2020, 2025], [2020.0, 2022.5, 2025.0, 2027.5, 2040.0])
    np.testing.assert_allclose(out[1], p[0])
    np.testing.assert_allclose(out[2], np.sqrt(p[0] * p[1]))  # geometric mean at the midpoint between
    np.testing.assert_allclose(out[3], p[1])
    np.testing.assert_allclose(out[0], p[0])  # no extrapolation before the first period
    np.testing.assert_allclose(out[4], p[1])


def test_wpp_e0_path_is_followed_year_by_year(shared_dir):
    periods = ["2020-2025", "2025-2030", "2030-2035"]
    mx = np.stack([np.stack([read_wpp_mx(shared_dir, p)[s] for s in ("female", "male")]) for p in periods])
    times = np.arange(2022.5, 2032.6, 1.0)
    yearly = interpolate_mx_over_time(mx, [2020, 2025, 2030], times)
    e0 = build_life_table(yearly, ABRIDGED_AGES, None).e0  # (T, 2)
    assert np.all(np.diff(e0, axis=0) > 0)  # improvement every year
    ends = build_life_table(mx, ABRIDGED_AGES, None).e0
    np.testing.assert_allclose(e0[[0, 5, 10]], ends, atol=1e-9)


def test_bad_mx_is_rejected():
    with pytest.raises(ForecastError, match="negative"):
        build_life_table(np.array([0.01, -0.1, 0.5]))
    with pytest.raises(ForecastError, match="open age group"):
        build_life_table(np.array([0.01, 0.01, 0.0]))
