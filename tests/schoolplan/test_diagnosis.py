"""Class-size bands by hand, and diagnosis totals that agree with the data."""
from __future__ import annotations

import numpy as np

from schoolplan.dataset import load_dataset, pupils_by_level
from schoolplan.diagnosis import count_classes_in_size_band, diagnose_base_year
from schoolplan.scenario import DEFAULTS


def test_class_size_bands_hand_computed():
    # 120 pupils in 2 classes → 60, 60 (both 大班额); 131 in 2 → 65, 66 (one each); 45 in 1 → none; 0 classes → none
    p = np.array([120, 131, 45, 10])
    c = np.array([2, 2, 1, 0])
    assert count_classes_in_size_band(p, c, 56, 65).tolist() == [2, 1, 0, 0]
    assert count_classes_in_size_band(p, c, 66).tolist() == [0, 1, 0, 0]
    # 200 pupils in 3 classes → 67, 67, 66
    assert count_classes_in_size_band(np.array([200]), np.array([3]), 66).tolist() == [3]


def test_diagnosis_on_tiny_data(tiny_data):
    ds = load_dataset(tiny_data)
    d = diagnose_base_year(ds, DEFAULTS, "t")
    lv = pupils_by_level(ds.schools)
    for level in ("primary", "junior", "kindergarten"):
        got = d.indicators.query("level == @level and variable == 'pupils'")["value"].iloc[0]
        assert got == lv[level].sum()
        assert d.pupils_by_township.query("level == @level")["value"].sum() == got
    # every oversized class listed per school adds up to the district count
    comp = d.indicators.query("level == 'compulsory' and variable == 'classes_56_65'")["value"].iloc[0]
    listed = d.oversized_classes[d.oversized_classes["level"].isin(["primary", "junior", "nine_year", "teaching_point"])]
    assert listed["classes_56_65"].sum() == comp
    assert (d.schools["pupils"] >= 0).all()
