"""The base-year diagnosis: pupils by level and township, schools by level, oversized classes, oversized schools.

Pure computation on the loaded :class:`~schoolplan.dataset.Dataset` and the scenario's caps; returns DataFrames
(long tables carry ``scenario, year, level, area, variable, unit, value``).  Writing is done elsewhere.

Class sizes within a grade: a school's pupils of a grade are taken as spread as evenly as possible over its
classes of that grade (``layout.capacity.count_oversized_classes``), so the number of classes of 56–65 (大班额)
and of 66+ (超大班额) follows from the per-grade pupils and classes in ``schools.geojson``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from layout.capacity import CapacityParams, count_oversized_classes
from schoolplan.dataset import Dataset, pupils_by_level
from schoolplan.validate import GRADES

__all__ = ["Diagnosis", "diagnose_base_year", "COMPULSORY_LEVELS", "capacity_params"]

COMPULSORY_LEVELS = ("primary", "junior", "nine_year")  # counted as schools; teaching points (教学点) are not
LEVELS = ("kindergarten", "primary", "junior", "senior_general", "senior_vocational")


def capacity_params(scenario: dict) -> CapacityParams:
    """The scenario's class-size and school-size rules as :class:`layout.capacity.CapacityParams`."""
    cs, sz = scenario["class_size"], scenario["school_size"]
    caps = {-3: cs["kindergarten_small"], -2: cs["kindergarten_middle"], -1: cs["kindergarten_large"],
            **{g: cs["primary"] for g in range(1, 7)}, **{g: cs["junior"] for g in range(7, 10)},
            **{g: cs["senior"] for g in range(10, 13)}}
    max_classes = {"primary": sz["max_classes_primary"], "teaching_point": sz["max_classes_primary"],
                   "junior": sz["max_classes_junior"], "nine_year": sz["max_classes_nine_year"]}
    max_pupils = {lvl: sz["max_pupils"] for lvl in ("primary", "teaching_point", "junior", "nine_year")}
    return CapacityParams(class_size_cap=caps, large_class_min=cs["oversized_min"],
                          super_large_class_min=cs["super_oversized_min"], max_pupils=max_pupils, max_classes=max_classes)


@dataclass
class Diagnosis:
    indicators: pd.DataFrame         # long: scenario, year, level, area, variable, unit, value
    pupils_by_township: pd.DataFrame  # long table by level × township
    oversized_classes: pd.DataFrame   # per school × grade with 大班额 / 超大班额 classes
    oversized_schools: pd.DataFrame   # schools over the size caps (大校额)
    schools: pd.DataFrame             # per-school base-year table


def diagnose_base_year(ds: Dataset, scenario: dict, scenario_name: str) -> Diagnosis:
    year = int(scenario["horizon"]["base_year"])
    sz = scenario["school_size"]
    s = ds.schools
    names = ds.township_names()
    lv = pupils_by_level(s)
    pupils = s[[f"pupils_g{g}" for g in GRADES]].to_numpy(np.int64)
    classes = s[[f"classes_g{g}" for g in GRADES]].to_numpy(np.int64)
    big, huge = count_oversized_classes(pupils, classes, capacity_params(scenario))

    # per-school table
    per = pd.DataFrame({
        "school_id": s["school_id"], "name": s["name"], "level": s["level"], "township_code": s["township_code"],
        "township": s["township_code"].map(names), "urban": s["urban"], "public": s["public"], "inclusive": s["inclusive"],
        "pupils": pupils.sum(1), "classes": classes.sum(1), "classrooms": s["classrooms"],
        "classes_56_65": big.sum(1), "classes_66_plus": huge.sum(1),
    })
    per["pupils_per_class"] = np.round(per["pupils"] / per["classes"].where(per["classes"] > 0), 1)
    cap_classes = np.select([s["level"].eq("nine_year"), s["level"].isin(["primary", "teaching_point"]), s["level"].eq("junior")],
                            [sz["max_classes_nine_year"], sz["max_classes_primary"], sz["max_classes_junior"]], np.inf)
    compulsory = s["level"].isin(COMPULSORY_LEVELS).to_numpy()
    over_pupils = compulsory & (per["pupils"].to_numpy() > sz["max_pupils"])
    over_classes = compulsory & (per["classes"].to_numpy() > cap_classes)
    per["over_size_cap"] = over_pupils | over_classes

    # oversized classes by school × grade
    rows = []
    for i, j in zip(*np.nonzero(big + huge)):
        rows.append((s["school_id"].iat[i], s["name"].iat[i], s["level"].iat[i], s["township_code"].iat[i],
                     names[s["township_code"].iat[i]], GRADES[j], int(pupils[i, j]), int(classes[i, j]), int(big[i, j]), int(huge[i, j])))
    oversized = pd.DataFrame(rows, columns=["school_id", "name", "level", "township_code", "township", "grade", "pupils",
                                            "classes", "classes_56_65", "classes_66_plus"])
    over_sch = per.loc[per["over_size_cap"], ["school_id", "name", "level", "township_code", "township", "pupils", "classes"]].copy()
    over_sch["max_pupils"] = sz["max_pupils"]
    over_sch["max_classes"] = cap_classes[per["over_size_cap"].to_numpy()]

    # pupils by level × township (long)
    long = []
    for level in LEVELS:
        by_t = lv[level].groupby(s["township_code"]).sum()
        for code, v in by_t.items():
            if v > 0:
                long.append((scenario_name, year, level, code, names[code], "pupils", "pupils", int(v)))
    by_township = pd.DataFrame(long, columns=["scenario", "year", "level", "area", "area_name", "variable", "unit", "value"])

    # headline indicators (district)
    ind = []
    def add(level, variable, unit, value):
        ind.append((scenario_name, year, level, "district", variable, unit, value))
    for level in LEVELS:
        add(level, "pupils", "pupils", int(lv[level].sum()))
    for level, n in s["level"].value_counts().sort_index().items():
        add(level, "schools", "schools", int(n))
    add("compulsory", "schools", "schools", int(compulsory.sum()))
    add("compulsory", "schools_target", "schools", int(scenario["targets"]["compulsory_schools"]))
    comp_rows = s["level"].isin(COMPULSORY_LEVELS + ("teaching_point",)).to_numpy()
    add("compulsory", "classes_56_65", "classes", int(big[comp_rows].sum()))
    add("compulsory", "classes_66_plus", "classes", int(huge[comp_rows].sum()))
    add("compulsory", "schools_over_size_cap", "schools", int(per["over_size_cap"].sum()))
    senior = s["level"].isin(["senior_general", "senior_vocational"]).to_numpy()
    add("senior", "classes_56_65", "classes", int(big[senior].sum()))
    add("senior", "classes_66_plus", "classes", int(huge[senior].sum()))
    kg = s["level"].eq("kindergarten").to_numpy()
    kg_children = lv["kindergarten"].to_numpy()
    total_kg = kg_children[kg].sum()
    add("kindergarten", "public_share", "percent", round(100 * kg_children[kg & s["public"].to_numpy()].sum() / total_kg, 2))
    add("kindergarten", "inclusive_share", "percent", round(100 * kg_children[kg & s["inclusive"].to_numpy()].sum() / total_kg, 2))
    persons = ds.population_array()
    pop35 = int(persons[:, :, 3:6].sum())
    add("kindergarten", "population_age_3_5", "persons", pop35)
    add("kindergarten", "enrolled_per_population_3_5", "percent", round(100 * total_kg / pop35, 2))
    add("all", "population", "persons", int(persons.sum()))
    indicators = pd.DataFrame(ind, columns=["scenario", "year", "level", "area", "variable", "unit", "value"])
    return Diagnosis(indicators=indicators, pupils_by_township=by_township, oversized_classes=oversized,
                     oversized_schools=over_sch.reset_index(drop=True), schools=per)
