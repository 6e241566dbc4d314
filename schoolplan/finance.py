"""Seat, class, classroom, boarding, teacher and money demand by year × level × township (pure computation).

Inputs are the capacity report of the layout being costed (status quo, or the consolidated layout from the design
year on) and the scenario's unit costs, which are returned with the tables so that every figure can be traced:
``cost = quantity × unit cost`` and the unit costs are printed beside them in the workbook.

Conventions: a school's classrooms serve all its levels; classrooms short are attributed to its levels in
proportion to the classes each level needs.  New floor area = classrooms short × class-size cap × floor area per
pupil of the level (the standard's 生均建筑面积).  Boarding pupils = pupils living in rural units × the boarding rate of
the level; beds short = boarding pupils − beds (≥ 0).  Teachers = pupils / pupils per teacher (编制标准).
Running cost per year = open schools × cost per school + pupils × cost per pupil + teachers × cost per teacher.
Capital cost = new floor area × construction cost per m² + beds short × cost per bed (one-off, in the year the
shortfall first appears: reported as the increase of the shortfall over the previous year).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from schoolplan.stages import LEVEL_OF

__all__ = ["UnitCosts", "unit_costs_from_scenario", "compute_seat_demand", "unit_cost_table"]

LEVELS4 = ("kindergarten", "primary", "junior", "senior")


@dataclass(frozen=True)
class UnitCosts:
    construction_cny_per_m2: float
    floor_area_m2_per_pupil: dict[str, float]
    boarding_rate_rural: dict[str, float]
    bed_cny: float
    running_cny_per_school: float
    running_cny_per_pupil: dict[str, float]
    teacher_cny_per_year: float
    pupils_per_teacher: dict[str, float]
    class_size: dict[str, float]


def unit_costs_from_scenario(sc: dict) -> UnitCosts:
    c, st, cs = sc["costs"], sc["staffing"], sc["class_size"]
    return UnitCosts(
        construction_cny_per_m2=float(c["construction_cny_per_m2"]),
        floor_area_m2_per_pupil={lv: float(c[f"floor_area_m2_per_pupil_{lv}"]) for lv in LEVELS4},
        boarding_rate_rural={lv: float(c[f"boarding_rate_rural_{lv}"]) for lv in LEVELS4},
        bed_cny=float(c["boarding_bed_cny"]),
        running_cny_per_school=float(c["running_cny_per_school_year"]),
        running_cny_per_pupil={lv: float(c[f"running_cny_per_pupil_year_{lv}"]) for lv in LEVELS4},
        teacher_cny_per_year=float(c["teacher_cny_per_year"]),
        pupils_per_teacher={lv: float(st[f"pupils_per_teacher_{lv}"]) for lv in LEVELS4},
        class_size={"kindergarten": float(cs["kindergarten_middle"]), "primary": float(cs["primary"]),
                    "junior": float(cs["junior"]), "senior": float(cs["senior"])},
    )


def unit_cost_table(u: UnitCosts) -> pd.DataFrame:
    rows = [("construction", "all", u.construction_cny_per_m2, "CNY per m² of new floor area"),
            ("boarding bed", "all", u.bed_cny, "CNY per bed"),
            ("running cost per school", "all", u.running_cny_per_school, "CNY per open school per year"),
            ("teacher", "all", u.teacher_cny_per_year, "CNY per teacher per year")]
    for lv in LEVELS4:
        rows += [("floor area per pupil", lv, u.floor_area_m2_per_pupil[lv], "m² per pupil"),
                 ("boarding rate of pupils living in rural units", lv, u.boarding_rate_rural[lv], "fraction of pupils"),
                 ("running cost per pupil", lv, u.running_cny_per_pupil[lv], "CNY per pupil per year"),
                 ("pupils per teacher", lv, u.pupils_per_teacher[lv], "pupils per teacher"),
                 ("class size for seats", lv, u.class_size[lv], "pupils per class")]
    return pd.DataFrame(rows, columns=["item", "level", "value", "unit"])


def compute_seat_demand(scenario: str, pupils_sgy: np.ndarray, pupils90_sgy: np.ndarray, report, rural_share_sgy: np.ndarray,
                        boarding_beds: np.ndarray, open_mask: np.ndarray, costs: UnitCosts) -> pd.DataFrame:
    """Per year × level × township (and district totals): pupils (median, p90), seats, classes needed, classrooms
    short, new floor area, boarding beds needed and short, teachers needed, capital and running costs.

    ``pupils_sgy`` / ``pupils90_sgy`` (S, G, Y): median and 90th-percentile pupils by school × grade × year of the
    layout being costed; ``report``: its :class:`layout.capacity.CapacityReport` (classes needed, classrooms short,
    seats); ``rural_share_sgy`` (S, G, Y): share of those pupils living in rural units (they board at the level's
    rural boarding rate); ``open_mask`` (S, Y) bool: school open that year (closed schools carry no pupils and no running cost).
    """
    grades = np.asarray(report.grades)
    years = np.asarray(report.years)
    S, G, Y = report.classes_needed.shape
    lvl_of_g = np.array([LEVEL_OF[int(g)] for g in grades])
    town = np.asarray(report.township_code).astype(str)
    rows = []
    need_total = np.maximum(report.classes_needed.sum(axis=1), 1e-9)  # (S, Y)
    short = report.classrooms_short.astype(float)  # (S, Y)
    for lv in LEVELS4:
        gsel = lvl_of_g == lv
        if not gsel.any():
            continue
        pupils = pupils_sgy[:, gsel].sum(axis=1) * open_mask
        pupils90 = pupils90_sgy[:, gsel].sum(axis=1) * open_mask
        classes = report.classes_needed[:, gsel].sum(axis=1) * open_mask
        short_lv = short * classes / need_total
        seats_sy = report.seats[:, None] * (classes / need_total) * open_mask
        floor = short_lv * costs.class_size[lv] * costs.floor_area_m2_per_pupil[lv]
        boarders = (pupils_sgy[:, gsel] * rural_share_sgy[:, gsel]).sum(axis=1) * open_mask * costs.boarding_rate_rural[lv]
        beds_lv = boarding_beds[:, None] * (classes / need_total) * open_mask
        beds_short = np.maximum(boarders - beds_lv, 0.0)
        teachers = pupils / costs.pupils_per_teacher[lv]
        hosts = (classes > 0) & open_mask
        running = (hosts * costs.running_cny_per_school * (classes / need_total)
                   + pupils * costs.running_cny_per_pupil[lv] + teachers * costs.teacher_cny_per_year)
        for code in np.unique(town):
            m = town == code
            rows.append(_rows(scenario, years, lv, code, pupils[m], pupils90[m], seats_sy[m], classes[m], short_lv[m], floor[m],
                              boarders[m], beds_short[m], teachers[m], hosts[m], running[m], costs))
    out = pd.concat(rows, ignore_index=True)
    num = [c for c in out.columns if c not in ("scenario", "year", "level", "township_code")]
    district = out.groupby(["scenario", "year", "level"], as_index=False)[num].sum()
    district["township_code"] = "district"
    out = pd.concat([out, district[out.columns]], ignore_index=True)
    # capital: one-off when the shortfall first appears (increase of the shortfall over the previous year)
    out = out.sort_values(["township_code", "level", "year"]).reset_index(drop=True)
    prev_floor = out.groupby(["township_code", "level"])["new_floor_area_m2"].shift(1).fillna(0.0)
    prev_beds = out.groupby(["township_code", "level"])["boarding_beds_short"].shift(1).fillna(0.0)
    out["capital_cost_cny"] = (np.maximum(out["new_floor_area_m2"] - prev_floor, 0) * costs.construction_cny_per_m2
                               + np.maximum(out["boarding_beds_short"] - prev_beds, 0) * costs.bed_cny)
    return out.sort_values(["year", "level", "township_code"]).reset_index(drop=True)


def _rows(scenario, years, level, code, pupils, pupils90, seats, classes, short, floor, boarders, beds_short, teachers,
          hosts, running, costs) -> pd.DataFrame:
    return pd.DataFrame({
        "scenario": scenario, "year": years, "level": level, "township_code": code,
        "pupils": pupils.sum(axis=0), "pupils_p90": pupils90.sum(axis=0), "seats": seats.sum(axis=0),
        "classes_needed": classes.sum(axis=0), "classrooms_short": short.sum(axis=0),
        "new_floor_area_m2": floor.sum(axis=0), "boarding_pupils": boarders.sum(axis=0),
        "boarding_beds_short": beds_short.sum(axis=0), "teachers_needed": teachers.sum(axis=0),
        "schools": hosts.sum(axis=0), "running_cost_cny": running.sum(axis=0),
    })
