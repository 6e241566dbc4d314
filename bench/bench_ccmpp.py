"""Benchmark: vectorised stochastic CCMPP vs a straightforward per-area Python loop.

    python bench/bench_ccmpp.py            # full run, writes bench/results/ccmpp.md
    python bench/bench_ccmpp.py --quick    # smaller sizes, prints only

Target (issue 3): 1,000 draws × 500 units × 2 sexes × 101 ages × 15 annual steps in
≤ 15 s wall and ≤ 4 GiB peak memory, keeping school ages by unit per draw and
district/unit summaries (forecast.stochastic.project_draws).  Every size is measured in a
fresh subprocess so that its peak RSS (resource.getrusage ru_maxrss) is its own.

Inputs: the Fuling tables in data/population when present (survival from WPP mx, ASFR from
the Fuling TFR path, SRB), with 500 units resampled from the census units (random scale
0.5-1.5); otherwise a synthetic Gompertz/flat-fertility set.  Net migration: ±2 % of each
unit's population per year, split by a Rogers-Castro schedule.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from forecast.ccmpp import FEMALE, MALE  # noqa: E402
from forecast.migration import RogersCastro, calculate_age_schedule, split_net_migration  # noqa: E402
from forecast.stochastic import project_draws  # noqa: E402

T_STEPS = 15
A = 101
KEPT = range(0, 18)


def build_inputs(n_units: int, seed: int = 0):
    """(population (U,2,A), survival (T,2,A), asfr (T,A), srb (T,), net_migration (T,U,2,A))."""
    rng = np.random.default_rng(seed)
    population_dir = ROOT / "data" / "population"
    if (population_dir / "base_population.csv").is_file():
        from forecast.population import load_projection_inputs

        inputs = load_projection_inputs(population_dir, n_steps=T_STEPS)
        pick = rng.integers(0, inputs.population.shape[0], n_units)
        pop = inputs.population[pick] * rng.uniform(0.5, 1.5, (n_units, 1, 1))
        survival, asfr, srb = inputs.survival, inputs.asfr, inputs.srb
        source = "Fuling data/population tables"
    else:
        from forecast.lifetable import build_life_table, calculate_survival_ratios

        ages = np.arange(A)
        mx = np.stack([0.0002 * np.exp(0.085 * ages) + 0.0004, 0.0003 * np.exp(0.085 * ages) + 0.0005])
        mx[:, 0] = 0.005
        survival = np.broadcast_to(calculate_survival_ratios(build_life_table(mx, None, None)), (T_STEPS, 2, A))
        asfr = np.zeros((T_STEPS, A))
        asfr[:, 18:45] = 1.0 / 27
        srb = np.full(T_STEPS, 1.1)
        pop = rng.uniform(5, 40, (n_units, 2, A))
        source = "synthetic"
    totals = pop.sum(axis=(1, 2)) * rng.uniform(-0.02, 0.02, (T_STEPS, n_units))
    mig = split_net_migration(totals, calculate_age_schedule(RogersCastro(), A))
    return pop, np.ascontiguousarray(survival), asfr, srb, mig, source


def project_loop(pop, survival, asfr, srb, mig, tfr_scale, mig_scale, kept=KEPT):
    """Straightforward reference: Python loops over draws, units and steps; numpy over ages only.

    Same conventions as forecast.ccmpp (even migration timing, mean female exposure,
    open group, clipping); written independently, for comparison.  Returns
    school_age (N, T+1, U, K) and births (N, T, U).
    """
    n_draws, n_steps = tfr_scale.shape
    U = pop.shape[0]
    kept = np.asarray(list(kept))
    school = np.empty((n_draws, n_steps + 1, U, kept.size))
    births_out = np.empty((n_draws, n_steps, U))
    for d in range(n_draws):
        for u in range(U):
            p = pop[u].copy()
            school[d, 0, u] = p[:, kept].sum(0)
            for t in range(n_steps):
                half = mig[t, u] * mig_scale[d, t] * 0.5
                start = np.maximum(p + half, 0.0)
                end = np.empty_like(p)
                for s in (FEMALE, MALE):
                    end[s, 1:A - 1] = start[s, :A - 2] * survival[t, s, 1:A - 1]
                    end[s, A - 1] = (start[s, A - 2] + start[s, A - 1]) * survival[t, s, A - 1]
                end[:, 1:] = np.maximum(end[:, 1:] + half[:, 1:], 0.0)
                f = asfr[t] * tfr_scale[d, t]
                b = np.sum(f * (start[FEMALE] + end[FEMALE]) / 2.0)
                female = b / (1.0 + srb[t])
                end[FEMALE, 0] = max(female * survival[t, FEMALE, 0] + half[FEMALE, 0], 0.0)
                end[MALE, 0] = max((b - female) * survival[t, MALE, 0] + half[MALE, 0], 0.0)
                births_out[d, t, u] = b
                p = end
                school[d, t + 1, u] = p[:, kept].sum(0)
    return school, births_out


def run_single(n_units: int, n_draws: int, chunk: int) -> dict:
    pop, survival, asfr, srb, mig, source = build_inputs(n_units)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    wall, cpu = time.perf_counter(), time.process_time()
    res = project_draws(pop, survival, asfr, srb, mig, n_draws=n_draws, seed=2020, kept_ages=KEPT,
                        chunk_draws=chunk or None, dtype=np.float32)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    q = res.quantiles("unit_totals")  # quantiles of what is not kept per draw
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    kept_bytes = sum(getattr(res, f).nbytes for f in ("school_age", "births", "district", "unit_totals"))
    return dict(units=n_units, draws=n_draws, chunk=chunk or f"auto ({res.chunk_draws})", wall_s=wall, cpu_s=cpu,
                peak_rss_mib=peak / 1024,
                rss_before_mib=rss_before / 1024, kept_mib=kept_bytes / 2**20, source=source,
                q50_total_end=float(q[2, -1].sum()), unmet=float(res.unmet_emigration.sum()))


def run_compare(n_units: int, n_draws: int) -> dict:
    pop, survival, asfr, srb, mig, _ = build_inputs(n_units, seed=1)
    cpu = time.process_time()
    vec = project_draws(pop, survival, asfr, srb, mig, n_draws=n_draws, seed=7, kept_ages=KEPT, dtype=np.float64)
    t_vec = time.process_time() - cpu
    cpu = time.process_time()
    school, births = project_loop(pop, survival, asfr, srb, mig, vec.tfr_scale, vec.migration_scale)
    t_loop = time.process_time() - cpu
    diff = max(np.abs(school - vec.school_age).max(), np.abs(births - vec.births).max())
    return dict(units=n_units, draws=n_draws, vec_s=t_vec, loop_s=t_loop, max_abs_diff=float(diff),
                max_rel_diff=float(np.abs(school - vec.school_age).max() / np.abs(school).max()))


def in_subprocess(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--single", nargs=3, type=int, metavar=("UNITS", "DRAWS", "CHUNK_OR_0_AUTO"))
    parser.add_argument("--compare", nargs=2, type=int, metavar=("UNITS", "DRAWS"))
    args = parser.parse_args()
    if args.single:
        print(json.dumps(run_single(*args.single)))
        return
    if args.compare:
        print(json.dumps(run_compare(*args.compare)))
        return

    load = os.getloadavg()
    scale = 10 if args.quick else 1
    main_run = in_subprocess(["--single", str(500), str(1000 // scale), "0"])
    print("main", main_run, flush=True)
    by_units = [in_subprocess(["--single", str(u), str(1000 // scale), "0"]) for u in (125, 250)] + [main_run]
    by_draws = [in_subprocess(["--single", "500", str(n // scale), "0"]) for n in (250, 500)] + [main_run]
    chunks = [in_subprocess(["--single", "500", str(1000 // scale), str(c)]) for c in (1, 2, 16, 64)]
    compare = in_subprocess(["--compare", "100", str(40 // (5 if args.quick else 1))])
    print("compare", compare, flush=True)
    load_after = os.getloadavg()

    cells_steps_main = 1000 * 500 * 2 * A * T_STEPS / scale
    loop_per_cell = compare["loop_s"] / (compare["draws"] * compare["units"] * 2 * A * T_STEPS)
    loop_full = loop_per_cell * cells_steps_main  # CPU seconds, extrapolated linearly
    lines = [
        "# CCMPP benchmark (forecast.stochastic.project_draws)",
        "",
        f"- date: {datetime.now().isoformat(timespec='seconds')}",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"numpy {np.__version__}, {platform.platform()}",
        f"- load average (1/5/15 min) before: {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}, "
        f"after: {load_after[0]:.2f}/{load_after[1]:.2f}/{load_after[2]:.2f} (other helpers share the 2 cores: "
        "wall times are noisy; CPU time is the cleaner figure)",
        f"- command: `python bench/bench_ccmpp.py{' --quick' if args.quick else ''}`",
        f"- inputs: {main_run['source']}; 15 annual steps, 2 sexes × 101 ages, migration timing 'even', "
        "stochastic TFR AR(1) and migration scale; float32, draws in chunks; peak = ru_maxrss of a fresh "
        "subprocess per row (includes Python, numpy, pandas and the inputs)",
        "",
        "## Main target: 1,000 draws × 500 units (≤ 15 s, ≤ 4 GiB)" if not args.quick else "## Main (quick: 100 draws)",
        "",
        "| units | draws | chunk | wall s | CPU s | peak RSS MiB | kept outputs MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    row = "| {units} | {draws} | {chunk} | {wall_s:.2f} | {cpu_s:.2f} | {peak_rss_mib:.0f} | {kept_mib:.0f} |"
    lines.append(row.format(**main_run))
    lines += ["", "## Growth with units (draws fixed)", "", lines[-3], lines[-2]]
    lines += [row.format(**r) for r in by_units]
    lines += ["", "## Growth with draws (500 units)", "", "| units | draws | chunk | wall s | CPU s | peak RSS MiB | "
              "kept outputs MiB |", "|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [row.format(**r) for r in by_draws]
    growth_u = [r["cpu_s"] / by_units[0]["cpu_s"] for r in by_units]
    growth_d = [r["cpu_s"] / by_draws[0]["cpu_s"] for r in by_draws]
    lines += ["", f"CPU time relative to the smallest run: units ×1/×2/×4 → "
              f"{' / '.join(f'×{g:.1f}' for g in growth_u)}; draws ×1/×2/×4 → "
              f"{' / '.join(f'×{g:.1f}' for g in growth_d)} (linear growth would be ×1 / ×2 / ×4)."]
    lines += ["", "## Chunk size (draws per vectorised block)", "", "| units | draws | chunk | wall s | CPU s | "
              "peak RSS MiB | kept outputs MiB |", "|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [row.format(**r) for r in chunks + [main_run]]
    per_cell_vec = main_run["cpu_s"] / cells_steps_main
    lines += [
        "", "## Against a straightforward per-area Python loop (float64, same seed; CPU seconds)", "",
        "| subset (units × draws) | vectorised CPU s | loop CPU s | max abs diff (persons) | max rel diff |",
        "|---|---:|---:|---:|---:|",
        f"| {compare['units']} × {compare['draws']} | {compare['vec_s']:.3f} | {compare['loop_s']:.2f} | "
        f"{compare['max_abs_diff']:.1e} | {compare['max_rel_diff']:.1e} |",
        "",
        f"Loop: {loop_per_cell * 1e9:.1f} ns CPU per cell-step → about {loop_full:,.0f} CPU s "
        f"({loop_full / 60:.1f} min) at the main size (extrapolated linearly: it loops over draws × units); "
        f"vectorised float32 driver: {per_cell_vec * 1e9:.2f} ns per cell-step → "
        f"**{loop_full / main_run['cpu_s']:,.0f}× less CPU** at full size (on the float64 subset itself: "
        f"{compare['loop_s'] / compare['vec_s']:.0f}×).",
        "Same numbers: the float64 vectorised run equals the loop to "
        f"{compare['max_abs_diff']:.1e} persons (required ≤ 1e-9).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.quick:
        out = ROOT / "bench" / "results" / "ccmpp.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
