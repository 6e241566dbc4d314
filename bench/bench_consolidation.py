"""Benchmark: the consolidation model on the real Fuling tables as the pipeline builds them (p = 85 and
the trade-off curve), plus a synthetic Fuling-like instance.

    python bench/bench_consolidation.py [--repeat N] [--no-real] [--no-before] [--rebuild]

1. The pipeline's instance (`pipeline_instance`): data/ loaded with schoolplan.dataset.load_dataset,
   scenarios/baseline.toml, the population and enrollment stages of schoolplan.stages (design-year
   demand at the scenario's quantile), river-aware distances from layout.travel (build_travel), river
   sides as components, the scenario's rules, costs, k_nearest, time limit and gap — the same calls as
   schoolplan.stages.run_consolidation.  The stages take ~10 s, so the arrays are cached in the system
   temp directory (keyed by the data and scenario files' sizes and times; --rebuild ignores the cache).
   Solved at p = 85 (best of --repeat, a fresh problem each time), at an impossible p = 60, and the
   scenario's trade-off targets (75, 85, 95, 105) after the p = 85 solve, as the pipeline does.
   The same instance with classes counted per grade (demand by unit × grade 1..9 built by
   `schoolplan.stages.consolidation_demand` with `classes_by_grade = true`) at p = 85 with the scenario's
   time limit (best of --repeat) and with 60 s, each solution checked grade by grade.
2. "before": the same with layout/consolidation.py as of git revision BEFORE_REV (the two-stage solver
   this benchmark replaced), loaded from `git show`; --no-before skips it.
3. A synthetic Fuling-like instance (seeded): clustered urban demand (main city + two towns),
   dispersed rural demand, 161 existing schools, 20 urban candidate sites; 67,000 primary and 40,000
   junior pupils; distance = straight line × 1.3 detour factor.  Harder than the real tables.

Writes bench/results/consolidation.md (figures, machine, date, load, command).
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from layout.consolidation import ConsolidationSites, build_sites_from_frames  # noqa: E402

DETOUR = 1.3


def synthetic_instance(seed: int = 7):
    """Fuling-like arrays: (demand, distance_m, unit_urban, sites, unit_township)."""
    rng = np.random.default_rng(seed)
    # --- units
    centres = [((30000.0, 25000.0), 3000.0, 120), ((14000.0, 36000.0), 1200.0, 20), ((46000.0, 12000.0), 1200.0, 20)]
    pts, urban, town = [], [], []
    for k, ((cx, cy), sd, n) in enumerate(centres):
        pts.append(rng.normal([cx, cy], sd, size=(n, 2)))
        urban += [True] * n
        town += [f"U{k}"] * n
    seats = rng.uniform([3000, 3000], [57000, 47000], size=(25, 2))
    n_rural = 340
    which = rng.integers(0, 25, n_rural)
    rural_pts = seats[which] + rng.normal(0, 3500, size=(n_rural, 2))
    pts.append(rural_pts)
    urban += [False] * n_rural
    town += [f"R{w:02d}" for w in which]
    P = np.vstack(pts)
    urban = np.array(urban)
    town = np.array(town)
    n_u = P.shape[0]
    w = np.where(urban, rng.gamma(4.0, 1.0, n_u) * 2.2, rng.gamma(2.0, 1.0, n_u))
    w = w / w.sum()
    demand = np.column_stack([np.round(w * 67000), np.round(w * rng.uniform(0.5, 0.7, n_u) * 67000)])
    demand[:, 1] *= 40000 / demand[:, 1].sum()
    demand = np.round(demand)
    # --- existing schools
    S, hosts, kind, s_urban = [], [], [], []
    urban_idx = np.flatnonzero(urban)

    def near_units(idx, n):
        return P[rng.choice(idx, n, replace=False)] + rng.normal(0, 300, size=(n, 2))

    for c, share in enumerate((0.7, 0.15, 0.15)):
        members = np.flatnonzero(town == f"U{c}")
        for n, h, k in ((18, (1, 0), "primary"), (5, (0, 1), "junior"), (6, (1, 1), "nine_year")):
            m = max(1, int(round(n * share)))
            S.append(near_units(members, m))
            hosts += [h] * m
            kind += [k] * m
            s_urban += [True] * m
    # cover every urban unit within the urban travel limits (3 km primary, 5 km junior)
    for lv, lim in ((0, 3000.0 / DETOUR), (1, 5000.0 / DETOUR)):
        while True:
            Q = np.vstack(S)
            hq = np.array(hosts, dtype=bool)[:, lv]
            dmin = np.hypot(P[urban_idx, None, 0] - Q[None, hq, 0], P[urban_idx, None, 1] - Q[None, hq, 1]).min(1)
            bad = urban_idx[dmin > 0.9 * lim]
            if bad.size == 0:
                break
            u = bad[np.argmax(demand[bad, lv])]
            S.append(P[u:u + 1])
            hosts.append((1, 0) if lv == 0 else (0, 1))
            kind.append("primary" if lv == 0 else "junior")
            s_urban.append(True)
    for i in range(25):
        if i < 15:
            S.append(seats[i:i + 1] + rng.normal(0, 200, (1, 2)))
            hosts.append((1, 1))
            kind.append("nine_year")
            s_urban.append(False)
        else:
            S.append(seats[i:i + 1] + rng.normal(0, 200, (2, 2)))
            hosts += [(1, 0), (0, 1)]
            kind += ["primary", "junior"]
            s_urban += [False, False]
    rural_idx = np.flatnonzero(~urban)
    for n, k in ((42, "primary"), (20, "teaching_point")):
        S.append(near_units(rural_idx, n))
        hosts += [(1, 0)] * n
        kind += [k] * n
        s_urban += [False] * n
    n_exist = sum(len(a) for a in S)
    # --- candidates (urban fringe)
    ang = rng.uniform(0, 2 * np.pi, 20)
    rad = rng.uniform(2500, 6000, 20)
    S.append(np.column_stack([30000 + rad * np.cos(ang), 25000 + rad * np.sin(ang)]))
    hosts += [(1, 1)] * 20
    kind += ["candidate"] * 20
    s_urban += [True] * 20
    Q = np.vstack(S)
    hosts = np.array(hosts, dtype=bool)
    existing = np.arange(Q.shape[0]) < n_exist
    kind = np.array(kind)
    dist = np.hypot(P[:, None, 0] - Q[None, :, 0], P[:, None, 1] - Q[None, :, 1]) * DETOUR
    # classrooms from current (nearest-school) load, some overcrowding
    cap = np.array([45.0, 50.0])
    classrooms = np.zeros(Q.shape[0])
    for lv in range(2):
        cols = np.flatnonzero(existing & hosts[:, lv])
        j = cols[np.argmin(dist[:, cols], axis=1)]
        load = np.bincount(j, weights=demand[:, lv], minlength=Q.shape[0])
        classrooms += np.where(hosts[:, lv] & existing,
                               np.maximum(np.ceil(load / cap[lv] * rng.uniform(0.8, 1.2, Q.shape[0])), 3), 0)
    classrooms = np.where(kind == "teaching_point", np.minimum(classrooms, 4), classrooms)
    classrooms = np.where(existing, classrooms, rng.choice([24, 30, 36], Q.shape[0]))
    beds = np.where(existing & ~np.array(s_urban) & (kind != "teaching_point") & hosts[:, 1],
                    rng.integers(200, 700, Q.shape[0]), 0).astype(float)
    must = np.zeros(Q.shape[0], bool)
    must[rng.choice(np.flatnonzero(existing & np.array(s_urban)), 8, replace=False)] = True
    sites = ConsolidationSites(
        hosts=hosts, existing=existing, classrooms=classrooms, boarding_beds=beds,
        max_expand=np.where(existing, np.where(np.array(s_urban), 12, 6), 0), must_keep=must)
    return demand, dist, urban, sites, town


BEFORE_REV = "f1d9110"   # layout/consolidation.py before the incumbent-first solver


def pipeline_instance(rebuild: bool = False) -> dict | None:
    """The arrays schoolplan.stages.run_consolidation passes to prepare_consolidation (see the module
    docstring), or None when data/ is absent.  Cached in the temp directory."""
    import hashlib
    import pickle
    import tempfile

    data, scen = ROOT / "data", ROOT / "scenarios" / "baseline.toml"
    if not (data / "schools.geojson").exists():
        return None
    stamp = hashlib.sha1(repr(sorted((str(f), f.stat().st_size, f.stat().st_mtime_ns)
                                     for f in [scen, *data.rglob("*")] if f.is_file())).encode()).hexdigest()[:16]
    cache = Path(tempfile.gettempdir()) / f"schoolplan-bench-consolidation-{stamp}.pkl"
    if cache.exists() and not rebuild:
        out = pickle.loads(cache.read_bytes())
        if "demand_grades" in out:
            return out
    import geopandas as gpd
    import pandas as pd

    from layout.geo import extract_point_xy, label_river_sides, project_to_metric
    from schoolplan.dataset import load_dataset
    from schoolplan.scenario import load_scenario
    from schoolplan.stages import (build_travel, consolidation_demand, consolidation_rules_costs, run_enrollment,
                                   run_population)

    t0 = time.perf_counter()
    ds = load_dataset(data)
    sc = load_scenario(scen).values
    pop = run_population(ds, sc)
    travel, travel_sites = build_travel(ds, sc)
    en = run_enrollment(ds, sc, pop, travel, travel_sites)
    c = sc["consolidation"]
    rules, costs = consolidation_rules_costs(sc)  # exactly as the pipeline builds them
    cands = ds.candidate_sites.drop(columns="geometry") if ds.candidate_sites is not None and c["allow_new_schools"] \
        else None
    sites, site_frame = build_sites_from_frames(ds.schools.drop(columns="geometry"), cands, rules=rules, costs=costs,
                                                max_expand_urban=int(c["max_expand_urban"]),
                                                max_expand_rural=int(c["max_expand_rural"]),
                                                teaching_points_count=bool(c["teaching_points_count"]))
    import copy
    by_level, by_grade = copy.deepcopy(sc), copy.deepcopy(sc)
    by_level["consolidation"]["classes_by_grade"] = False
    by_grade["consolidation"]["classes_by_grade"] = True
    demand, label = consolidation_demand(by_level, en, ds.unit_codes)        # (U, 2) pupils by level
    demand_grades, _ = consolidation_demand(by_grade, en, ds.unit_codes)     # (U, 9) pupils by grade 1..9
    dist = travel.to_dense(np.inf)[:, pd.Index(travel.site_ids).get_indexer(site_frame["school_id"])]
    district = project_to_metric(ds.district, "district")
    rivers = list(project_to_metric(ds.rivers, "rivers").geometry) if ds.rivers is not None else []
    unit_side = label_river_sides(extract_point_xy(project_to_metric(ds.units, "units"), "units"), district, rivers)
    pts = pd.concat([ds.schools[["school_id", "geometry"]],
                     ds.candidate_sites[["site_id", "geometry"]].rename(columns={"site_id": "school_id"})])
    pts = gpd.GeoDataFrame(pts.set_index("school_id").loc[site_frame["school_id"]].reset_index(),
                           geometry="geometry", crs=ds.schools.crs)
    site_side = label_river_sides(extract_point_xy(project_to_metric(pts, "sites"), "sites", lonlat_columns=None),
                                  district, rivers)
    out = dict(demand=demand, demand_grades=demand_grades, dist=dist, urban=ds.units["urban"].to_numpy(bool), sites=sites, rules=rules,
               costs=costs, unit_side=unit_side, site_side=site_side, k_nearest=int(c["k_nearest"]),
               label=label, town=ds.units["township_code"].astype(str).to_numpy(),
               target=int(sc["targets"]["compulsory_schools"]), time_limit_s=float(c["time_limit_s"]),
               mip_rel_gap=float(c["mip_rel_gap"]), tradeoff=[int(t) for t in c["tradeoff_targets"]],
               build_s=time.perf_counter() - t0)
    cache.write_bytes(pickle.dumps(out))
    return out


def load_before_module():
    """layout/consolidation.py as of BEFORE_REV, as a module (None when git cannot show it)."""
    import importlib.util
    import tempfile

    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{BEFORE_REV}:layout/consolidation.py"],
                         capture_output=True, text=True)
    if src.returncode != 0:
        return None
    path = Path(tempfile.gettempdir()) / f"consolidation_before_{BEFORE_REV}.py"
    path.write_text(src.stdout)
    spec = importlib.util.spec_from_file_location("consolidation_before", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["consolidation_before"] = mod   # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def machine() -> str:
    try:
        cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"],
                             capture_output=True, text=True).stdout.strip()
    except OSError:
        cpu = platform.processor()
    return f"{cpu or platform.processor()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def prepare(mod, inst):
    return mod.prepare_consolidation(inst["demand"], inst["dist"], inst["urban"], inst["sites"], rules=inst["rules"],
                                     costs=inst["costs"], unit_component=inst["unit_side"],
                                     site_component=inst["site_side"], k_nearest=inst["k_nearest"])


def run_target(mod, inst, target, repeat, version, case, rows):
    """Best of ``repeat`` solves of ``target`` (a fresh problem each time: no reuse between repeats)."""
    walls, best = [], None
    for _ in range(repeat):
        prob = prepare(mod, inst)
        t0 = time.perf_counter()
        r = mod.solve_consolidation(prob, target, time_limit_s=inst["time_limit_s"], mip_rel_gap=inst["mip_rel_gap"])
        walls.append(time.perf_counter() - t0)
        if best is None or walls[-1] <= min(walls):
            best = (prob, r)
    prob, r = best
    rows.append({"version": version, "case": case, "target": target, "open": r.n_open_counted, "status": r.status,
                 "gap": r.gap, "objective": r.objective, "bound": r.bound, "wall_s": min(walls),
                 "walls": " / ".join(f"{w:.1f}" for w in walls), "slack": r.slack_used})
    print(f"{version} {case}: target {target} open {r.n_open_counted} {r.status} gap {r.gap:.2e} "
          f"obj {r.objective:.6g} bound {r.bound:.6g} wall {' / '.join(f'{w:.2f}' for w in walls)} s", flush=True)
    return prob, r


def check_grades(r, time_limit_s) -> dict:
    """Per-grade facts of a solution: classes, classrooms added, classes over the cap per grade (must be 0),
    schools over their class cap or their classrooms (must be 0 without slack)."""
    p = r.problem
    cap = np.asarray(p.rules.class_size_cap, float)[[0] * 6 + [1] * 3]
    oversized = int(np.sum(r.pupils_after_by_grade > r.classes_after_by_grade * cap[None, :] + 1e-6))
    classes = r.classes_after.sum(axis=1)
    rooms = p.sites.classrooms + r.classrooms_added + r.extra_classrooms
    lv = r.level_result
    return {"time_limit_s": time_limit_s, "layout_objective": lv.objective, "layout_gap": lv.gap,
            "layout_s": lv.seconds, "grade_gap": r.grade_gap, "total_s": r.seconds,
            "objective": r.objective, "gap_to_layout_bound": r.gap, "classes": float(classes.sum()),
            "classrooms_added": float(r.classrooms_added.sum()), "extra_classrooms": float(r.extra_classrooms.sum()),
            "unserved_pupils": float(r.unserved_pupils.sum()), "grades_over_class_cap": oversized,
            "schools_over_class_cap": int(np.sum(classes > p.sites.max_classes + 1e-9)),
            "schools_over_classrooms": int(np.sum(classes[r.open] > rooms[r.open] + 1e-9)),
            "max_pupils_per_class": float(np.max(r.pupils_after_by_grade / np.maximum(r.classes_after_by_grade, 1)
                                                  * (r.classes_after_by_grade > 0)))}


def run_pipeline_sequence(mod, inst, version, rows, curve_rows):
    """What the pipeline does: solve the target, then the trade-off curve on the same problem."""
    prob = prepare(mod, inst)
    t0 = time.perf_counter()
    r = mod.solve_consolidation(prob, inst["target"], time_limit_s=inst["time_limit_s"],
                                mip_rel_gap=inst["mip_rel_gap"])
    main_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    curve, _ = mod.tradeoff_curve(prob, inst["tradeoff"], time_limit_s=inst["time_limit_s"],
                                  mip_rel_gap=inst["mip_rel_gap"])
    curve_s = time.perf_counter() - t1
    for _, c in curve.iterrows():
        curve_rows.append({"version": version, **{k: c[k] for k in (
            "target", "schools_open", "schools_over_target", "mean_m_primary", "mean_m_junior",
            "travel_cost_cny_per_year", "capital_annualised_cny_per_year", "total_cost_cny_per_year",
            "unserved_pupils", "gap", "status", "seconds")}, "reused": bool(c.get("reused", False))})
    rows.append({"version": version, "case": f"pipeline: p = {inst['target']} then curve {inst['tradeoff']}",
                 "target": inst["target"], "open": r.n_open_counted, "status": r.status, "gap": r.gap,
                 "objective": r.objective, "bound": r.bound, "wall_s": main_s + curve_s,
                 "walls": f"main {main_s:.1f} + curve {curve_s:.1f}", "slack": r.slack_used})
    print(f"{version} pipeline sequence: main {main_s:.2f} s, curve {curve_s:.2f} s", flush=True)
    print(curve.to_string(), flush=True)


def markdown_table(title: str, rows: list[dict], float_format: str) -> list[str]:
    """A titled markdown table of ``rows`` (dicts with the same keys), floats in ``float_format``."""
    cols = list(rows[0].keys())
    lines = ["", f"## {title}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for c in rows:
        lines.append("| " + " | ".join(format(c[k], float_format) if isinstance(c[k], float) else str(c[k])
                                       for k in cols) + " |")
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-real", action="store_true")
    ap.add_argument("--no-before", action="store_true")
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    cmd = "python bench/bench_consolidation.py " + " ".join(sys.argv[1:])
    import layout.consolidation as after

    rows, curve_rows, grade_rows = [], [], []
    loads = [load()]
    inst = None if args.no_real else pipeline_instance(args.rebuild)
    versions = [("after", after)]
    before = None if args.no_before else load_before_module()
    if before is not None:
        versions.append((f"before ({BEFORE_REV})", before))
    if inst is not None:
        print(f"pipeline instance: {inst['demand'].shape[0]} units, {inst['sites'].n_sites} sites, {inst['label']}, "
              f"primary {inst['demand'][:, 0].sum():.0f}, junior {inst['demand'][:, 1].sum():.0f}", flush=True)
        for version, mod in versions:
            run_target(mod, inst, inst["target"], args.repeat, version, "Fuling (pipeline instance)", rows)
            loads.append(load())
            run_pipeline_sequence(mod, inst, version, rows, curve_rows)
            loads.append(load())
        run_target(after, inst, 60, 1, "after", "Fuling, impossible target 60", rows)
        # classes per grade: the same instance with demand by grade 1..9 (consolidation_demand, classes_by_grade)
        inst_g = dict(inst, demand=inst["demand_grades"])
        tl = inst["time_limit_s"]
        _, r = run_target(after, dict(inst_g, time_limit_s=tl), inst["target"], args.repeat, "after, per grade",
                          f"Fuling, classes per grade (two stages), time limit {tl:g} s per stage", rows)
        grade_rows.append(check_grades(r, tl))
        loads.append(load())
    demand, dist, urban, sites, town = synthetic_instance()
    syn = dict(demand=demand, dist=dist, urban=urban, sites=sites, rules=None, costs=None, unit_side=None,
               site_side=None, k_nearest=20, time_limit_s=20.0, mip_rel_gap=1e-3)
    run_target(after, syn, 85, 1, "after", "synthetic Fuling-like (harder)", rows)
    loads.append(load())
    lines = ["# Consolidation model benchmark", "",
             f"- date: {dt.datetime.now().isoformat(timespec='seconds')}",
             f"- machine: {machine()}",
             "- load (`uptime`) before, between the runs and after (other helpers run concurrently):",
             *[f"  - `{x}`" for x in loads],
             f"- command: `{cmd}`",
             "- instance: the pipeline's (schoolplan.stages calls, scenarios/baseline.toml: design-year demand, "
             "river-aware distances, river sides, teaching points not counted, k_nearest "
             f"{inst['k_nearest'] if inst else 20}, time limit {inst['time_limit_s'] if inst else 20:g} s, "
             f"mip_rel_gap {inst['mip_rel_gap'] if inst else 1e-3:g})" + (f"; {inst['demand'].shape[0]} units × "
             f"{inst['sites'].n_sites} sites, {inst['label']}" if inst else ""),
             f"- wall = best of {args.repeat} for the p = 85 rows (a fresh problem each time; each solve includes "
             "building the model, the nearest-K widening LPs, the warm start and the MILP); `walls` lists every run",
             "- `gap` is HiGHS's relative gap on the whole objective, with the bound HiGHS proved for the model solved "
             "(after: the full one-stage model; before: the stage-1 relaxation bound against the stage-2 objective; "
             "per grade: the layout stage's bound, valid for the per-grade model, against the final objective)",
             "", "| version | case | target | open | status | gap | objective CNY/yr | bound | wall s | walls | slack |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['version']} | {r['case']} | {r['target']} | {r['open']} | {r['status']} | {r['gap']:.2e} | "
                     f"{r['objective']:.6g} | {r['bound']:.6g} | {r['wall_s']:.2f} | {r['walls']} | {r['slack']} |")
    if curve_rows:
        lines += markdown_table("Trade-off curve (pipeline sequence: after the p = 85 solve on the same problem)",
                                curve_rows, ".4g")
    if grade_rows:
        lines += markdown_table("Classes per grade (the per-grade model's solutions checked grade by grade)",
                                grade_rows, ".6g")
    out = ROOT / "bench" / "results" / "consolidation.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
