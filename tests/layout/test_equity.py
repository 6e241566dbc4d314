"""校际差异系数: the worked example, hand-computed merges, validation, and the Fuling inventory."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from layout.equity import (CV_TARGETS, EQUITY_INDICATORS, assess_equity, compare_equity,
                           compute_difference_coefficient, merge_school_indicators, merge_schools_frame)
from layout.errors import LayoutError

ROOT = Path(__file__).resolve().parents[2]
PUPILS = np.array([45, 37, 89, 76, 55], dtype=float)
BOOKS = np.array([279, 137, 935, 160, 402], dtype=float)


def test_worked_example_books_per_pupil():
    x = BOOKS / PUPILS
    cv = compute_difference_coefficient(x, PUPILS)
    assert round(cv, 2) == 0.52
    # the formula step by step: X̄ = ΣPX/P = total books / total pupils
    mean = BOOKS.sum() / PUPILS.sum()
    s = np.sqrt(np.sum(PUPILS / PUPILS.sum() * (x - mean) ** 2))
    assert cv == pytest.approx(s / mean, rel=1e-12)
    assert mean == pytest.approx(1913 / 302)


def test_cv_properties():
    p = np.array([10.0, 20.0, 30.0])
    assert compute_difference_coefficient(np.array([4.0, 4.0, 4.0]), p) == 0.0
    # scale invariance and a school with no pupils carries no weight (even with a missing value)
    x = np.array([1.0, 2.0, 4.0])
    cv = compute_difference_coefficient(x, p)
    assert compute_difference_coefficient(x * 7.5, p) == pytest.approx(cv)
    assert compute_difference_coefficient(np.array([1.0, 2.0, 4.0, np.nan]), np.append(p, 0.0)) == pytest.approx(cv)
    # two equal-weight schools at 1 and 3: mean 2, S = 1, CV = 0.5
    assert compute_difference_coefficient(np.array([1.0, 3.0]), np.array([5.0, 5.0])) == pytest.approx(0.5)
    # many indicators at once
    both = compute_difference_coefficient(np.column_stack([x, x * 2]), p)
    assert both == pytest.approx([cv, cv])
    assert np.isnan(compute_difference_coefficient(x, np.zeros(3)))


def test_bad_values_are_errors_naming_schools():
    with pytest.raises(LayoutError) as e:
        compute_difference_coefficient(np.array([1.0, np.nan]), np.array([3.0, 4.0]), ids=["S1", "S2"])
    assert "S2" in str(e.value) and "S1" not in str(e.value).split("rows")[-1]
    with pytest.raises(LayoutError, match="negative"):
        compute_difference_coefficient(np.array([1.0, 2.0]), np.array([3.0, -4.0]))


def test_merge_pools_resources_over_pupils():
    # school 1 (37 pupils, 137 books) closes into school 0 (45 pupils, 279 books)
    x = (BOOKS / PUPILS)[:, None]
    receiver = np.array([0, 0, 2, 3, 4])
    after, p_after = merge_school_indicators(x, PUPILS, receiver)
    assert after[0, 0] == pytest.approx((279 + 137) / (45 + 37))
    assert np.isnan(after[1, 0]) and p_after.tolist() == [82, 0, 89, 76, 55]
    np.testing.assert_allclose(after[2:, 0], x[2:, 0])
    cv_after = compute_difference_coefficient(after[:, 0], p_after)
    books_after = np.array([416, 0, 935, 160, 402.0])
    keep = p_after > 0
    ref = compute_difference_coefficient(books_after[keep] / p_after[keep], p_after[keep])
    assert cv_after == pytest.approx(ref)
    # pupils after the change differ from the pooled count (e.g. some go elsewhere)
    after2, _ = merge_school_indicators(x, PUPILS, receiver, pupils_after=np.array([100, 0, 89, 76, 55.0]))
    assert after2[0, 0] == pytest.approx(416 / 100)
    # space stays with the building: the receiver keeps only its own resources
    after3, _ = merge_school_indicators(np.column_stack([x[:, 0], x[:, 0]]), PUPILS, receiver,
                                        stays=np.array([False, True]))
    assert after3[0, 1] == pytest.approx(279 / 82)
    with pytest.raises(LayoutError, match="itself closes"):
        merge_school_indicators(x, PUPILS, np.array([1, 0, 2, 3, 4]))


def _frame():
    return pd.DataFrame({
        "school_id": ["P1", "P2", "N1", "J1"],
        "pupils_g1": [100, 50, 50, 0], "pupils_g7": [0, 0, 40, 160],
        **{k: [v * f for f in (1.0, 2.0, 1.5, 1.2)] for k, v in zip(EQUITY_INDICATORS, range(1, 8))},
    })


def test_assess_equity_levels_and_merge_frame():
    df = _frame()
    tab = assess_equity(df)
    assert set(tab.level) == {"primary", "junior"} and len(tab) == 14
    row = tab.query("level == 'primary' and indicator == 'qualified_teachers_per100'").iloc[0]
    # primary weights 100/50/50 at values 1, 2, 1.5 -> mean 1.375
    x, w = np.array([1.0, 2.0, 1.5]), np.array([100.0, 50.0, 50.0])
    assert row.cv == pytest.approx(compute_difference_coefficient(x, w))
    assert row.schools == 3 and row.pupils == 200 and row.weighted_mean == pytest.approx(1.375)
    assert row.target == CV_TARGETS["primary"] and row.meets_target
    jrow = tab.query("level == 'junior' and indicator == 'key_teachers_per100'").iloc[0]
    assert jrow.cv == pytest.approx(compute_difference_coefficient(np.array([3.0, 2.4]), np.array([40.0, 160.0])))
    merged = merge_schools_frame(df, {"P2": "P1"})
    assert merged.school_id.tolist() == ["P1", "N1", "J1"]
    assert merged.loc[0, "pupils_g1"] == 150
    assert merged.loc[0, "qualified_teachers_per100"] == pytest.approx((100 * 1 + 50 * 2) / 150)
    cmp = compare_equity(tab, assess_equity(merged))
    c = cmp.query("level == 'primary' and indicator == 'qualified_teachers_per100'").iloc[0]
    assert c.cv_before == pytest.approx(row.cv)
    assert c.cv_after == pytest.approx(compute_difference_coefficient(np.array([4 / 3, 1.5]), np.array([150.0, 50.0])))
    assert c.cv_after < c.cv_before
    with pytest.raises(LayoutError, match="unknown school ids"):
        merge_schools_frame(df, {"P9": "P1"})


def test_fuling_equity_before_and_after_closing_small_schools():
    path = ROOT / "data/schools.geojson"
    if not path.exists():
        pytest.skip("data/schools.geojson not built yet")
    import geopandas as gpd
    schools = pd.DataFrame(gpd.read_file(path).drop(columns="geometry"))
    before = assess_equity(schools)
    assert np.isfinite(before.cv).all() and (before.cv >= 0).all()
    prim = schools[(schools.grade_min <= 1) & (schools.grade_max >= 6)]
    small = schools[schools.level.eq("teaching_point")]
    if len(small) and len(prim):
        hub = prim.iloc[0].school_id
        after = assess_equity(merge_schools_frame(schools, {sid: hub for sid in small.school_id}))
        b = before.set_index(["level", "indicator"]).loc["primary", "pupils"].iloc[0]
        a = after.set_index(["level", "indicator"]).loc["primary", "pupils"].iloc[0]
        assert a == pytest.approx(b)                              # merging moves pupils, never loses them
