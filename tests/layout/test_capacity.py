"""Classes, classrooms, 大班额 / 超大班额, 大校额, utilisation and seats on hand-computed cases."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from layout.capacity import (CapacityParams, SchoolArrays, assess_capacity, compute_class_caps,
                             compute_classes_needed, count_oversized_classes, extract_school_arrays,
                             level_of_grade, summarise_townships)
from layout.errors import LayoutError

ROOT = Path(__file__).resolve().parents[2]


def test_class_caps_and_classes_needed():
    grades = [-3, -2, -1, 1, 6, 7, 9]
    caps = compute_class_caps(grades)
    assert caps.tolist() == [25, 30, 35, 45, 45, 50, 50]
    pupils = np.array([[25, 31, 70, 90, 91, 50, 0]], float)
    assert compute_classes_needed(pupils, caps).tolist() == [[1, 2, 2, 2, 3, 1, 0]]
    # forecast shares: 90.0000001 pupils are still 2 classes of 45; shape (s, g, y) broadcasts
    p3 = np.array([[[90.0000001, 135.4]]])
    assert compute_classes_needed(p3, np.array([45.0])).tolist() == [[[2, 4]]]
    assert level_of_grade([-2, 3, 8, 11]).tolist() == ["kindergarten", "primary", "junior", "senior"]
    with pytest.raises(LayoutError, match="grades"):
        level_of_grade([0])


def test_oversized_classes_even_split():
    pupils = np.array([55, 56, 65, 66, 120, 131, 200, 0, 40])
    classes = np.array([1, 1, 1, 1, 2, 2, 3, 0, 0])
    large, sup = count_oversized_classes(pupils, classes)
    # 120/2 = 60,60; 131/2 = 66,65; 200/3 = 67,67,66; no classes -> not counted here
    assert large.tolist() == [0, 1, 1, 0, 2, 1, 0, 0, 0]
    assert sup.tolist() == [0, 0, 0, 1, 0, 1, 3, 0, 0]
    p = CapacityParams(large_class_min=46, super_large_class_min=56)
    large, sup = count_oversized_classes(np.array([50, 60]), np.array([1, 1]), p)
    assert large.tolist() == [1, 0] and sup.tolist() == [0, 1]


def _schools(grades):
    n = 4
    return SchoolArrays(
        school_id=np.array(["P1", "P2", "N1", "K1"]),
        level=np.array(["primary", "primary", "nine_year", "kindergarten"], dtype=object),
        grade_min=np.array([1, 1, 1, -3]), grade_max=np.array([6, 6, 9, -1]),
        classrooms=np.array([36, 0, 45, 9]), boarding_beds=np.array([0, 0, 100, 0]),
        township_code=np.array(["T1", "T1", "T2", "T2"]), urban=np.ones(n, bool), grades=np.asarray(grades),
        pupils=np.zeros((n, len(grades))), classes=np.zeros((n, len(grades)), int))


def test_assess_capacity_hand_computed():
    grades = [-3, 1, 7]
    sa = _schools(grades)
    sa.classes = np.array([[0, 2, 0], [0, 1, 0], [0, 1, 1], [3, 0, 0]])
    years = [2025, 2030]
    P = np.zeros((4, 3, 2))
    P[0, 1] = [2001, 90]          # P1: 2001 pupils in grade 1 (45 classes > 36 classrooms); then 90
    P[1, 1] = [30, 30]            # P2: no classroom at all
    P[2, 1] = [66, 40]            # N1 primary grade
    P[2, 2] = [100, 50]           # N1 junior grade
    P[3, 0] = [75, 20]            # K1 小班: cap 25
    rep = assess_capacity(P, sa, years, boarding_pupils=np.array([[0, 0], [0, 0], [120, 90], [0, 0]]))
    assert rep.classes_needed[:, :, 0].tolist() == [[0, 45, 0], [0, 1, 0], [0, 2, 2], [3, 0, 0]]
    assert rep.classes_total.tolist() == [[45, 2], [1, 1], [4, 2], [3, 1]]
    assert rep.classrooms_short.tolist() == [[9, 0], [1, 1], [0, 0], [0, 0]]
    # 大校额: P1 has 2001 > 2000 pupils and 45 > 36 classes in 2025
    assert rep.over_pupils[:, 0].tolist() == [True, False, False, False]
    assert rep.over_classes[:, 0].tolist() == [True, False, False, False]
    assert not rep.oversized_school[:, 1].any()
    # seats: P1 36 x 45; N1 45 rooms x mean cap of grades 1-9 ((6 x 45 + 3 x 50) / 9); K1 9 x (25+30+35)/3
    assert rep.seats.tolist() == pytest.approx([1620, 0, 45 * 420 / 9, 270])
    assert rep.utilisation[0, 1] == pytest.approx(90 / 1620)
    assert np.isnan(rep.utilisation[1, 0])
    assert rep.seats_short[0, 0] == 2001 - 1620 and rep.seats_idle[0, 0] == 0
    assert rep.seats_idle[3, 1] == pytest.approx(270 - 20)
    # status quo classes: P1 2001 pupils in 2 classes -> 2 super-large; N1 grade 1: 66 in 1 -> super
    assert rep.super_large_classes[:, :, 0].tolist() == [[0, 2, 0], [0, 0, 0], [0, 1, 1], [0, 0, 0]]
    assert rep.large_classes[:, :, 1].tolist() == [[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]]
    assert rep.boarding_short[:, 0].tolist() == [0, 0, 20, 0]
    msgs = " ".join(f.format() for f in rep.findings)
    assert "zero capacity" in msgs and "P2" in msgs
    frame = rep.to_frame()
    assert len(frame) == 8 and frame.loc[frame.school_id.eq("P1") & frame.year.eq(2025), "super_large_classes"].item() == 2
    town = summarise_townships(rep).set_index(["township_code", "year"])
    assert town.loc[("T1", 2025), "pupils"] == 2031
    assert town.loc[("T1", 2025), "seats_short"] == (2001 - 1620) + 30
    assert town.loc[("T2", 2030), "seats"] == pytest.approx(2100 + 270)
    assert town.loc[("T1", 2025), "oversized_schools"] == 1


def test_capacity_findings_and_errors():
    grades = [1]
    sa = _schools(grades)
    sa.classes = np.array([[0], [0], [0], [0]])
    P = np.zeros((4, 1, 1))
    P[0, 0, 0] = 10
    P[3, 0, 0] = 5                # a kindergarten with grade-1 pupils
    rep = assess_capacity(P, sa, [2025])
    msgs = " ".join(f.message for f in rep.findings)
    assert "grades they do not teach" in msgs and "no class" in msgs
    with pytest.raises(LayoutError, match="negative"):
        assess_capacity(-P, sa, [2025])
    with pytest.raises(LayoutError, match="shape"):
        assess_capacity(P[:, :, [0, 0]], sa, [2025])
    with pytest.raises(LayoutError, match="class-size cap"):
        assess_capacity(P, sa, [2025], params=CapacityParams(class_size_cap={2: 45}))


def test_extract_school_arrays_validates():
    df = pd.DataFrame({"school_id": ["A", "B"], "level": ["primary", "junior"], "grade_min": [1, 7],
                       "grade_max": [6, 9], "classrooms": [12, 10], "township_code": ["t", "t"],
                       "pupils_g1": [40, 0], "classes_g1": [1, 0], "pupils_g7": [0, 120], "classes_g7": [0, 2]})
    sa = extract_school_arrays(df)
    assert sa.grades.tolist() == [1, 7] and sa.pupils.tolist() == [[40, 0], [0, 120]]
    assert sa.serves().tolist() == [[True, False], [False, True]]
    with pytest.raises(LayoutError, match="classes_g7"):
        extract_school_arrays(df.drop(columns=["classes_g7"]))
    with pytest.raises(LayoutError) as e:
        extract_school_arrays(df.assign(pupils_g1=[-1, "x"]))
    assert "A" in str(e.value) and "B" in str(e.value)


def test_fuling_current_capacity():
    path = ROOT / "data/schools.geojson"
    if not path.exists():
        pytest.skip("data/schools.geojson not built yet")
    import geopandas as gpd
    schools = gpd.read_file(path)
    sa = extract_school_arrays(schools)
    rep = assess_capacity(sa.pupils[:, :, None], sa, [2020])
    # the current classes hold the current pupils: classes needed under the cap >= classes now
    # wherever a grade has 大班额 or 超大班额
    over = (rep.large_classes + rep.super_large_classes)[:, :, 0] > 0
    assert (rep.classes_needed[:, :, 0][over] > sa.classes[over]).all()
    assert (rep.large_classes >= 0).all() and (rep.seats >= 0).all()
    town = summarise_townships(rep)
    assert town.pupils.sum() == pytest.approx(sa.pupils.sum())
