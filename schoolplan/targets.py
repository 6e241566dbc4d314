"""The plan-target table (专栏2 / 专栏4): every indicator the model computes, per year, with pass/fail.

Pure computation from the stage results.  ``status`` is ``pass`` / ``fail`` for a target in a year when it is due
(the plan's targets are for 2025 and hold after), ``info`` for years before it is due or for expected (预期性)
figures the model only compares, and ``input`` where the figure is a scenario assumption rather than a result.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from schoolplan.stages import GRADES, median_rows

__all__ = ["build_target_table"]

COLUMNS = ["scenario", "year", "indicator", "indicator_cn", "level", "value", "unit", "target", "comparator", "due",
           "status", "source"]


def _status(value, target, comparator, due) -> str:
    if target is None or (isinstance(target, float) and np.isnan(target)):
        return "info"
    if not due or comparator == "info":
        return "info"
    tol = 1e-6 * max(1.0, abs(float(target)))
    ok = {">": value > target, ">=": value >= target - tol, "<": value < target, "<=": value <= target + tol,
          "==": abs(value - target) < 1e-9}[comparator]
    return "pass" if ok else "fail"


def build_target_table(scenario: str, sc: dict, ds, en, cap, kst, co, plan) -> pd.DataFrame:
    """``en`` EnrollmentStage, ``cap`` CapacityStage (status quo), ``kst`` KindergartenStage, ``co`` ConsolidationStage
    and ``plan`` PlanLayout (may be None when consolidation is switched off: the status quo is then assessed)."""
    target_year = int(sc["enrollment"]["target_year"])
    design = int(sc["horizon"]["design_year"])
    rows = []

    def add(year, ind, cn, level, value, unit, target=None, comp=">=", source="model", due_year=target_year):
        due = year >= due_year
        status = "input" if source == "scenario input" else _status(value, target, comp, due)
        comp_out = "≈ (expected, 预期性)" if comp == "info" and target is not None else (comp if target is not None else "")
        rows.append((scenario, int(year), ind, cn, level, float(value), unit, target, comp_out,
                     bool(due), status, source))

    years = en.years
    tot = en.unit_pupils.sum(axis=2)  # (N, Y, G)
    med = lambda x: np.median(x, axis=0)
    kg = med(tot[..., GRADES < 0].sum(-1))
    prim = med(tot[..., (GRADES >= 1) & (GRADES <= 6)].sum(-1))
    jun = med(tot[..., (GRADES >= 7) & (GRADES <= 9)].sum(-1))
    sen = med(tot[..., GRADES >= 10].sum(-1))
    parts = en.levels.parts
    gen_share = parts["senior"].track_shares[:, 0]
    # plan figures for 2025 (专栏2, expected 预期性): compared, not pass/fail
    plan2025 = {"kindergarten": 27000, "compulsory": 93000, "primary": 62000, "junior": 31000, "senior": 46000,
                "senior_general": 27000, "senior_vocational": 19000}
    kt = kst.years.targets if kst is not None else None
    for yi, y in enumerate(years):
        e = lambda k: plan2025[k] if y == target_year else None
        add(y, "kindergarten children", "在园幼儿数", "kindergarten", kg[yi], "children", e("kindergarten"), "info")
        add(y, "compulsory pupils", "义务教育在校学生数", "compulsory", prim[yi] + jun[yi], "pupils", e("compulsory"), "info")
        add(y, "primary pupils", "普通小学在校学生数", "primary", prim[yi], "pupils", e("primary"), "info")
        add(y, "junior pupils", "普通初中在校学生数", "junior", jun[yi], "pupils", e("junior"), "info")
        add(y, "senior-stage pupils", "高中阶段在校学生数", "senior", sen[yi], "pupils", e("senior"), "info")
        add(y, "general senior pupils", "普通高中在校学生数", "senior_general", sen[yi] * gen_share[yi], "pupils", e("senior_general"), "info")
        add(y, "vocational pupils", "中等职业教育在校学生数", "senior_vocational", sen[yi] * (1 - gen_share[yi]), "pupils", e("senior_vocational"), "info")
    # rates that are scenario paths (inputs), reported so the table is complete
    from forecast.levels import interpolate_path
    e_ = sc["enrollment"]
    h = sc["horizon"]["base_year"]
    cons = interpolate_path({h: e_["consolidation_rate_base"], target_year: e_["consolidation_rate_target"]}, years)
    sger = interpolate_path({h: e_["senior_ger_base"], target_year: e_["senior_ger_target"]}, years)
    for yi, y in enumerate(years):
        add(y, "nine-year consolidation rate", "九年义务教育巩固率", "compulsory", 100 * cons[yi], "percent", 99.0, ">=", "scenario input")
        add(y, "senior-stage gross enrollment rate", "高中阶段毛入学率", "senior", 100 * sger[yi], "percent", 99.5, ">", "scenario input")
    # kindergarten targets from the siting model's per-year allocation (median children)
    if kt is not None:
        k = median_rows(kt)
        names = {"gross_enrollment_rate": ("preschool gross enrollment rate", "学前三年毛入园率", 98.0, ">="),
                 "inclusive_share": ("inclusive (普惠) share", "普惠率", 98.0, ">="),
                 "public_share": ("public kindergarten share of children", "公办园在园幼儿占比", 65.0, ">")}
        for r in k.itertuples():
            if r.variable in names:
                ind, cn, tgt, comp = names[r.variable]
                add(r.year, ind, cn, "kindergarten", 100 * r.value, "percent", tgt, comp)
        add(design, "new residential-complex kindergartens", "新建小区配套幼儿园", "kindergarten",
            float((kst.plan.sites["kind"].eq("kindergarten_complex") & kst.plan.sites["open"]).sum())
            if "open" in kst.plan.sites.columns else float(kst.plan.summary.set_index("variable").loc["new_sites", "value"]),
            "kindergartens", 16, ">=")
    # school count, 大班额, 大校额: status quo before the design year, the plan from it
    rep_sq = cap.report
    levels_sq = ds.schools["level"].to_numpy()
    for yi, y in enumerate(years):
        use_plan = plan is not None and y >= design
        rep = plan.report if use_plan else rep_sq
        lv = plan.levels if use_plan else levels_sq
        open_ = plan.open[:, yi] if use_plan else np.ones(len(lv), bool)
        compulsory = np.isin(lv, ("primary", "junior", "nine_year")) & open_
        g = (GRADES >= 1) & (GRADES <= 9)
        big = rep.large_classes[:, g, yi].sum() if rep.large_classes is not None else np.nan
        huge = rep.super_large_classes[:, g, yi].sum() if rep.super_large_classes is not None else np.nan
        src = "model: planned layout" if use_plan else "model: current layout"
        add(y, "compulsory schools", "义务教育阶段学校数", "compulsory", float(compulsory.sum()), "schools",
            float(sc["targets"]["compulsory_schools"]), "<=", src, design)
        add(y, "classes of 56-65 pupils", "大班额", "compulsory", float(big), "classes", 0.0, "<=", src, design)
        add(y, "classes of 66+ pupils", "超大班额", "compulsory", float(huge), "classes", 0.0, "<=", src, design)
        add(y, "schools over the size caps", "大校额", "compulsory", float((rep.oversized_school[:, yi] & compulsory).sum()), "schools",
            0.0, "<=", src, design)
    if co is not None:
        for r in co.equity.itertuples():
            tgt = float(r.target)
            add(design - 1, f"inter-school CV: {r.indicator}", "校际差异系数", r.level, float(r.cv_before), "CV", tgt, "<",
                "model: current layout (2020 resources)", design)
            add(design, f"inter-school CV: {r.indicator}", "校际差异系数", r.level, float(r.cv_after), "CV", tgt, "<",
                "model: planned layout (resources pooled into receiving schools)", design)
    return pd.DataFrame(rows, columns=COLUMNS)
