"""The run: scenario → data → stages → outputs/<scenario>/ (written atomically, with a manifest).

Stages compute; ``write_outputs`` writes.  Timings of each stage go to the manifest.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from schoolplan import tables
from schoolplan.dataset import Dataset, load_dataset
from schoolplan.diagnosis import Diagnosis, diagnose_base_year
from schoolplan.maps import draw_base_map
from schoolplan.outputs import RunWriter, hash_file, write_run
from schoolplan.scenario import Scenario, load_scenario
from schoolplan.finance import compute_seat_demand, unit_costs_from_scenario
from schoolplan.stages import (CapacityStage, ConsolidationStage, EnrollmentStage, KindergartenStage, PlanLayout,
                               PopulationStage, build_travel, run_capacity, run_consolidation, run_enrollment,
                               run_kindergartens, run_plan_layout, run_population, run_service_radius)
from schoolplan.targets import build_target_table
from schoolplan.writers import write_facility_outputs, write_finance_outputs, write_planner_outputs

__all__ = ["RunResult", "run_scenario", "compute_run"]


@dataclass
class RunResult:
    scenario: Scenario
    dataset: Dataset
    diagnosis: Diagnosis
    population: PopulationStage
    travel: object
    sites: object
    enrollment: EnrollmentStage
    capacity: CapacityStage
    consolidation: ConsolidationStage
    plan: PlanLayout
    kindergartens: KindergartenStage
    seat_demand: object
    unit_costs: object
    targets: object
    service: object
    timings_s: dict[str, float] = field(default_factory=dict)


def _progress(msg: str, quiet: bool) -> None:
    if not quiet:
        print(f"[schoolplan] {msg}", file=sys.stderr, flush=True)


def compute_run(scenario: Scenario, *, quiet: bool = False) -> RunResult:
    """Every computation of a run, no file written."""
    timings: dict[str, float] = {}
    sc = scenario.values

    def stage(name: str, label: str, fn):
        _progress(f"{scenario.name}: {label}", quiet)
        t0 = time.perf_counter()
        out = fn()
        timings[name] = time.perf_counter() - t0
        return out

    ds = stage("load_validate", f"loading and validating {scenario.data_dir}", lambda: load_dataset(scenario.data_dir))
    diag = stage("diagnosis", "base-year diagnosis", lambda: diagnose_base_year(ds, sc, scenario.name))
    pop = stage("population", f"population projection to {sc['horizon']['end_year']} ({sc['population']['draws']} draws)",
                lambda: run_population(ds, sc))
    travel, sites = stage("travel", "travel costs across the rivers", lambda: build_travel(ds, sc))
    en = stage("enrollment", "enrollment by level, unit and school", lambda: run_enrollment(ds, sc, pop, travel, sites))
    cap = stage("capacity", "classes, classrooms and oversized classes if nothing changes", lambda: run_capacity(ds, sc, en))
    service = stage("service_radius", "pupils beyond the service radius", lambda: run_service_radius(ds, sc, en, travel))
    co = stage("consolidation", f"consolidation to {sc['targets']['compulsory_schools']} compulsory schools (HiGHS)",
               lambda: run_consolidation(ds, sc, en, travel))
    plan = stage("plan_layout", "pupils, classes and classrooms in the planned layout", lambda: run_plan_layout(ds, sc, en, co))
    closed = closed_school_buildings(ds, sc, co)
    kst = stage("kindergartens", f"kindergarten siting ({sc['kindergarten']['new_sites']} new sites)",
                lambda: run_kindergartens(ds, sc, pop, en, travel, sites, closed_schools=closed))
    costs = unit_costs_from_scenario(sc)
    seat = stage("finance", "seat, classroom, teacher and cost demand",
                 lambda: compute_seat_demand(scenario.name, plan.pupils, plan.pupils_p90, plan.report, plan.rural_share,
                                             plan.boarding_beds[:, -1], plan.open, costs))
    tg = stage("targets", "plan targets", lambda: build_target_table(scenario.name, sc, ds, en, cap, kst, co, plan))
    return RunResult(scenario=scenario, dataset=ds, diagnosis=diag, population=pop, travel=travel, sites=sites,
                     enrollment=en, capacity=cap, consolidation=co, plan=plan, kindergartens=kst, seat_demand=seat,
                     unit_costs=costs, targets=tg, service=service, timings_s=timings)


def closed_school_buildings(ds: Dataset, sc: dict, co: ConsolidationStage):
    """Buildings of closed primary schools, offered to the kindergarten siting as ``closed_school`` candidates."""
    import pandas as pd
    d = co.decisions
    closed = d[(d["decision"] == "close") & d["level"].isin(["primary", "teaching_point"])]
    rooms = ds.schools.set_index("school_id").loc[closed["school_id"], "classrooms"].to_numpy()
    return pd.DataFrame({"site_id": "closed:" + closed["school_id"].to_numpy(), "township_code": closed["township_code"].to_numpy(),
                         "seats": rooms * sc["class_size"]["kindergarten_middle"]})


def _summary_markdown(res: RunResult) -> str:
    ind = res.diagnosis.indicators.set_index(["level", "variable"])["value"]
    sc = res.scenario
    lines = [
        f"# schoolplan — {sc.name}: base-year diagnosis {sc['horizon']['base_year']}",
        "",
        "Population figures are the real 2020 census of Fuling (controlled exactly); the residential units below the",
        "district and the **school inventory are SYNTHETIC** (no real school list exists), calibrated to the plan's 2020",
        "figures (专栏1). Do not read school-level results as facts about real schools.",
        "",
        "| indicator | value |",
        "|---|---|",
        f"| population (census 1 Nov 2020) | {int(ind[('all', 'population')]):,} |",
    ]
    for level in ("kindergarten", "primary", "junior", "senior_general", "senior_vocational"):
        lines.append(f"| pupils, {level} | {int(ind[(level, 'pupils')]):,} |")
    lines += [
        f"| compulsory schools (primary, junior, nine-year; teaching points not counted) | {int(ind[('compulsory', 'schools')])} (plan target {int(ind[('compulsory', 'schools_target')])}) |",
        f"| teaching points (教学点) | {int(ind.get(('teaching_point', 'schools'), 0))} |",
        f"| compulsory classes of 56–65 pupils (大班额) | {int(ind[('compulsory', 'classes_56_65')])} |",
        f"| compulsory classes of 66+ pupils (超大班额) | {int(ind[('compulsory', 'classes_66_plus')])} |",
        f"| compulsory schools over the size caps (大校额) | {int(ind[('compulsory', 'schools_over_size_cap')])} |",
        f"| kindergarten public share of enrolled children | {ind[('kindergarten', 'public_share')]:.1f} % |",
        f"| kindergarten inclusive (普惠) share | {ind[('kindergarten', 'inclusive_share')]:.1f} % |",
        "",
        "Files: `indicators.csv` (long table with units), `pupils_by_level_township.csv`, `schools_base_year.csv`,",
        "`oversized_classes.csv` (大班额/超大班额 by school and grade), `oversized_schools.csv` (大校额), `map_base_year.png`.",
    ]
    return "\n".join(lines) + "\n"


def write_outputs(res: RunResult, outputs_dir: Path) -> Path:
    def fill(w: RunWriter) -> dict:
        t0 = time.perf_counter()
        d = res.diagnosis
        w.csv("indicators.csv", d.indicators)
        w.csv("pupils_by_level_township.csv", d.pupils_by_township)
        w.csv("schools_base_year.csv", d.schools)
        w.csv("oversized_classes.csv", d.oversized_classes)
        w.csv("oversized_schools.csv", d.oversized_schools)
        fig = draw_base_map(res.dataset, f"Fuling {res.scenario['horizon']['base_year']}: units, townships, rivers and schools — scenario {res.scenario.name}")
        w.figure("map_base_year.png", fig)
        import matplotlib.pyplot as plt
        plt.close(fig)
        name = res.scenario.name
        w.csv("population_district.csv", tables.population_district_table(name, res.population))
        w.csv("population_units.csv", tables.population_units_table(name, res.population))
        w.csv("enrollment_district.csv", tables.enrollment_district_table(name, res.enrollment))
        w.csv("enrollment_units.csv", tables.enrollment_units_table(name, res.enrollment, res.dataset.unit_codes))
        w.csv("enrollment_schools.csv", tables.enrollment_schools_table(name, res.enrollment, res.dataset.schools["school_id"]))
        w.csv("capacity_schools.csv", res.capacity.report.to_frame().assign(scenario=name))
        w.csv("capacity_townships.csv", res.capacity.townships.assign(scenario=name))
        w.csv("service_radius.csv", res.service.assign(scenario=name))
        write_facility_outputs(w, res)
        write_finance_outputs(w, res)
        write_planner_outputs(w, res)
        w.text("summary.md", _summary_markdown(res))
        res.timings_s["write"] = time.perf_counter() - t0
        return {"timings_s": {k: round(v, 3) for k, v in res.timings_s.items()}}

    data_files = sorted(p for p in res.dataset.data_dir.rglob("*") if p.is_file() and p.suffix in (".csv", ".geojson", ".json"))
    manifest = {
        "scenario": res.scenario.name,
        "scenario_values": res.scenario.values,
        "scenario_files": {str(p): hash_file(p) for p in res.scenario.files},
        "data_dir": str(res.dataset.data_dir),
        "inputs_sha256": {str(p.relative_to(res.dataset.data_dir)): hash_file(p) for p in data_files},
        "seed": res.scenario["population"]["seed"],
        "draws": res.scenario["population"]["draws"],
        "data_status": "census counts real; residential units, school inventory, candidate sites and enrollment history SYNTHETIC",
    }
    return write_run(outputs_dir, res.scenario.name, fill, manifest)


def run_scenario(path: str | Path, outputs_dir: str | Path = "outputs", *, quiet: bool = False) -> Path:
    scenario = load_scenario(path)
    res = compute_run(scenario, quiet=quiet)
    out = write_outputs(res, Path(outputs_dir))
    _progress(f"{scenario.name}: wrote {out}", quiet)
    return out
