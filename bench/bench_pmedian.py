"""Benchmark of the p-median solver core (layout.pmedian) → bench/results/pmedian.md.

    python bench/bench_pmedian.py            # everything (about 5 minutes on 2 cores)
    python bench/bench_pmedian.py --quick    # skip the textbook MILP and cap spopt at 120 s

Cases (random planar instances, seed 2021: demand points and sites uniform in a 20 km square,
Euclidean distances in metres, weights = pupils 1..100 per point):

* 3,000 × 160, p = 85: ours (proven optimal, mip_rel_gap 1e-9) vs the textbook assignment MILP
  in HiGHS (``method="textbook"``, capped by a time limit);
* 1,000 × 160, p = 85 (the first 1,000 points of the same instance): ours vs PySAL spopt
  ``PMedian`` with CBC, side by side in one run.  spopt lives only in /work/bench-venv and runs in
  a child process of that interpreter; it is never imported here;
* 10,000 × 500, p = 200: ours with a 60 s limit ("auto") and the MILP-free path ("heuristic"),
  each in a child process so that its peak RSS can be reported.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from layout.pmedian import p_median  # noqa: E402

BENCH_PY = Path(os.environ.get("SCHOOLPLAN_BENCH_PYTHON", "/work/bench-venv/bin/python"))
SEED = 2021

SPOPT_CHILD = r"""
import json, sys, time
import numpy as np
import pulp
from spopt.locate import PMedian
data = np.load(sys.argv[1])
limit = float(sys.argv[2])
t0 = time.perf_counter()
model = PMedian.from_cost_matrix(data["cost"], data["weights"], p_facilities=int(data["p"]), name="bench")
t1 = time.perf_counter()
model.solve(pulp.PULP_CBC_CMD(msg=False, timeLimit=limit))
t2 = time.perf_counter()
chosen = [j for j in range(data["cost"].shape[1]) if model.fac_vars[j].value() > 0.5]
print(json.dumps({"objective": float(pulp.value(model.problem.objective)), "build_s": t1 - t0,
                  "solve_s": t2 - t1, "status": pulp.LpStatus[model.problem.status], "sites": chosen}))
"""


def make_instance(n_points: int, n_sites: int, seed: int = SEED):
    """Random planar instance: distances (n, m) in metres and weights (n,) (pupils)."""
    rng = np.random.default_rng(seed)
    points = rng.uniform(0.0, 20_000.0, size=(n_points, 2))
    sites = rng.uniform(0.0, 20_000.0, size=(n_sites, 2))
    weights = rng.integers(1, 101, size=n_points).astype(np.float64)
    dist = np.sqrt(((points[:, None, :] - sites[None, :, :]) ** 2).sum(axis=-1))
    return dist, weights


def read_load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def run_ours(dist, weights, p, **kw):
    t0 = time.perf_counter()
    res = p_median(dist, p, weights=weights, **kw)
    return res, time.perf_counter() - t0


def run_child_case(case: str) -> dict:
    """Run ``--child case`` in a fresh interpreter; its JSON includes its own peak RSS (VmHWM)."""
    out = subprocess.run([sys.executable, __file__, "--child", case], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def read_peak_rss_mib() -> float:
    """Peak resident set of this process (VmHWM; unlike ru_maxrss it is not inherited from the parent)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child(case: str) -> None:
    dist, weights = make_instance(10_000, 500)
    method = "auto" if case == "large_auto" else "heuristic"
    res, seconds = run_ours(dist, weights, 200, time_limit_s=60.0, mip_rel_gap=1e-6, method=method)
    rss = read_peak_rss_mib()
    print(json.dumps({"objective": res.objective, "bound": res.lower_bound, "gap": res.gap, "status": res.status,
                      "method": res.method, "seconds": seconds, "self_rss_mib": rss,
                      "stages": {k: v for k, v in res.details.items() if k.endswith("_s")}}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--child")
    args = ap.parse_args()
    if args.child:
        child(args.child)
        return
    rows = []
    notes = []
    started = dt.datetime.now().isoformat(timespec="seconds")

    # --- 3,000 × 160, p = 85
    dist, weights = make_instance(3_000, 160)
    load = read_load()
    ours3, t_ours3 = run_ours(dist, weights, 85, mip_rel_gap=1e-9, time_limit_s=60)
    rows.append(("3,000 × 160, p = 85", "ours (auto)", ours3.objective, ours3.lower_bound, ours3.gap, ours3.status,
                 ours3.method, t_ours3, None, load))
    if not args.quick:
        load = read_load()
        tb, t_tb = run_ours(dist, weights, 85, method="textbook", mip_rel_gap=1e-9, time_limit_s=300)
        rows.append(("3,000 × 160, p = 85", "textbook MILP, HiGHS (limit 300 s)", tb.objective, tb.lower_bound,
                     tb.gap, tb.status, tb.method, t_tb, None, load))
        notes.append(f"textbook/ours time ratio on 3,000 × 160: {t_tb / t_ours3:.0f}×; same objective: "
                     f"{abs(tb.objective - ours3.objective) <= 1e-6 * ours3.objective}")

    # --- 1,000 × 160, p = 85: ours vs spopt, side by side
    d1k, w1k = dist[:1000], weights[:1000]
    load = read_load()
    ours1, t_ours1 = run_ours(d1k, w1k, 85, mip_rel_gap=1e-9, time_limit_s=60)
    rows.append(("1,000 × 160, p = 85", "ours (auto)", ours1.objective, ours1.lower_bound, ours1.gap, ours1.status,
                 ours1.method, t_ours1, None, load))
    if BENCH_PY.exists():
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "instance.npz"
            np.savez(path, cost=d1k, weights=w1k, p=85)
            load = read_load()
            limit = 120.0 if args.quick else 600.0
            out = subprocess.run([str(BENCH_PY), "-c", SPOPT_CHILD, str(path), str(limit)], capture_output=True,
                                 text=True)
        if out.returncode == 0:
            sp_res = json.loads(out.stdout.strip().splitlines()[-1])
            t_sp = sp_res["build_s"] + sp_res["solve_s"]
            rows.append(("1,000 × 160, p = 85", f"spopt PMedian + CBC ({sp_res['status']})", sp_res["objective"],
                         None, None, sp_res["status"], "spopt", t_sp, None, load))
            same = abs(sp_res["objective"] - ours1.objective) <= 1e-6 * ours1.objective
            notes.append(f"spopt/ours time ratio on 1,000 × 160: {t_sp / t_ours1:.0f}× (model build "
                         f"{sp_res['build_s']:.1f} s + CBC solve {sp_res['solve_s']:.1f} s vs ours {t_ours1:.2f} s "
                         f"end to end); same optimum: {same} (objectives {sp_res['objective']:.1f} vs "
                         f"{ours1.objective:.1f}); same sites: {sorted(sp_res['sites']) == list(ours1.sites)}")
        else:
            notes.append(f"spopt run failed: {out.stderr.strip()[-400:]}")
    else:
        notes.append(f"spopt not run: {BENCH_PY} is missing")

    # --- 10,000 × 500, p = 200 (child processes for peak RSS)
    for case, label in (("large_auto", "ours (auto, limit 60 s)"), ("large_heuristic", "ours (heuristic + Lagrangian, no MILP)")):
        load = read_load()
        info = run_child_case(case)
        rows.append(("10,000 × 500, p = 200", label, info["objective"], info["bound"], info["gap"], info["status"],
                     info["method"], info["seconds"], info["self_rss_mib"], load))

    finished = dt.datetime.now().isoformat(timespec="seconds")
    lines = [
        "# p-median solver core benchmark",
        "",
        f"Command: `python bench/bench_pmedian.py{' --quick' if args.quick else ''}` (from the project root)  ",
        f"Machine: {platform.node()} — {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.platform()}  ",
        f"Run: {started} → {finished}. Other helpers share the machine: the load average (1, 5, 15 min) at the "
        "start of each case is listed; timings are wall-clock and noisy.  ",
        f"Instances: random planar, seed {SEED}, points and sites uniform in a 20 km square, Euclidean metres, "
        "weights 1..100. Objective = Σ weight × distance (pupil-metres). Times are end to end inside the "
        "process (ours: sorting, heuristic, Lagrangian, MILP; spopt: model build + CBC), interpreter start-up "
        "excluded. 'bound' is the proven lower bound; gap = (objective − bound) / objective.",
        "",
        "| instance | solver | objective | bound | gap | status | proved by | seconds | peak RSS MiB | load avg |",
        "|---|---|---:|---:|---:|---|---|---:|---:|---|",
    ]
    for inst, solver, obj, bound, gap, status, meth, secs, rss, ld in rows:
        fmt = lambda v, f: "—" if v is None else format(v, f)  # noqa: E731
        lines.append(f"| {inst} | {solver} | {obj:,.1f} | {fmt(bound, ',.1f')} | {fmt(gap, '.2e')} | {status} | "
                     f"{meth} | {secs:.2f} | {fmt(rss, '.0f')} | {ld} |")
    lines += ["", *[f"- {n}" for n in notes], ""]
    out_path = ROOT / "bench" / "results" / "pmedian.md"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
