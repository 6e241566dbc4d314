"""Class-size bands by hand, and diagnosis totals that agree with the data."""
from __future__ import annotations


from schoolplan.dataset import load_dataset, pupils_by_level
from schoolplan.diagnosis import diagnose_base_year
from schoolplan.scenario import DEFAULTS


def test_scenario_caps_reach_the_class_count():
    """A scenario that lowers the 大班额 threshold counts more oversized classes (the caps are wired through)."""
    from schoolplan.dataset import load_dataset
    import copy
    ds = load_dataset(__import__("pathlib").Path(__file__).resolve().parents[2] / "data")
    strict = copy.deepcopy(DEFAULTS)
    strict["class_size"]["oversized_min"] = 46
    a = diagnose_base_year(ds, DEFAULTS, "a").indicators.query("level == 'compulsory' and variable == 'classes_56_65'")["value"].iloc[0]
    b = diagnose_base_year(ds, strict, "b").indicators.query("level == 'compulsory' and variable == 'classes_56_65'")["value"].iloc[0]
    assert b > a > 0


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
