"""Benchmark of layout.travel: Fuling-size and 10,000 × 500 travel-cost matrices with river barriers.

Run:  python bench/bench_travel.py            (writes bench/results/travel.md)

Each case runs in a fresh subprocess (so peak memory — ru_maxrss of that process, imports
included — is the case's own), three times; the table gives the best and median wall time.
Targets (issue 5): Fuling at village scale (≈500 units × ≈250 sites) < 2 s; synthetic 10,000
units × 500 sites with river barriers < 30 s and < 2 GiB.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "travel.md"
REPEATS = 3


def _fuling_layers():
    import geopandas as gpd
    from layout.geo import project_to_metric

    def read(rel, name):
        return project_to_metric(gpd.read_file(ROOT / rel), name)
    return (read("data/population/units.geojson", "units"), read("data/schools.geojson", "schools"),
            read("data/rivers.geojson", "rivers"), read("data/bridges.geojson", "bridges"),
            read("data/district.geojson", "district"))


def case_fuling_data():
    """The Fuling data as built: every unit × every school, K = 20 per level group."""
    from layout.travel import build_travel_costs
    units, schools, rivers, bridges, district = _fuling_layers()
    gmin, gmax = schools.grade_min.to_numpy(), schools.grade_max.to_numpy()
    groups = {"kindergarten": gmax < 0, "primary": (gmin <= 1) & (gmax >= 1), "junior": (gmin <= 7) & (gmax >= 7),
              "senior": gmax >= 10}
    t = time.perf_counter()
    tc = build_travel_costs(units, schools, rivers=rivers, bridges=bridges, district=district, site_groups=groups)
    return time.perf_counter() - t, tc, f"{len(units)} units × {len(schools)} schools (4 level groups)"


def case_fuling_500x250():
    """≈500 units × 250 sites drawn inside the real Fuling outline, real rivers and bridges."""
    import shapely
    from layout.travel import compute_travel_costs
    _, _, rivers, bridges, district = _fuling_layers()
    poly = shapely.union_all(district.geometry.values)
    rng = np.random.default_rng(20)
    xmin, ymin, xmax, ymax = poly.bounds

    def draw(n):
        pts = np.empty((0, 2))
        while len(pts) < n:
            c = rng.uniform([xmin, ymin], [xmax, ymax], (4 * n, 2))
            pts = np.vstack([pts, c[shapely.contains_xy(poly, c[:, 0], c[:, 1])]])
        return pts[:n]
    units, sites = draw(500), draw(250)
    t = time.perf_counter()
    tc = compute_travel_costs(units, sites, rivers=list(rivers.geometry), bridge_xy=shapely.get_coordinates(
        bridges.geometry.values), district=poly)
    return time.perf_counter() - t, tc, "500 units × 250 sites in the Fuling outline, K = 20"


def synthetic_10k(n_units=10_000, n_sites=500, seed=1):
    """A 60 km square district split by a meandering river and a tributary, 17 bridges."""
    import shapely
    rng = np.random.default_rng(seed)
    L = 60_000.0
    x = np.linspace(-2_000, L + 2_000, 200)
    main = shapely.LineString(np.c_[x, L / 2 + 6_000 * np.sin(x / 9_000)])
    ty = np.linspace(L + 2_000, L / 2 + 6_000 * np.sin(L * 0.6 / 9_000), 80)
    trib = shapely.LineString(np.c_[L * 0.6 + 3_000 * np.sin(ty / 5_000), ty])
    bx = np.linspace(3_000, L - 3_000, 12)
    bridges = np.vstack([np.c_[bx, L / 2 + 6_000 * np.sin(bx / 9_000)], shapely.get_coordinates(
        shapely.line_interpolate_point(trib, np.linspace(0.1, 0.9, 5), normalized=True))])
    return (rng.uniform(0, L, (n_units, 2)), rng.uniform(0, L, (n_sites, 2)), [main, trib], bridges,
            shapely.box(0, 0, L, L))


def case_synthetic_10k():
    from layout.travel import compute_travel_costs
    units, sites, rivers, bridges, district = synthetic_10k()
    groups = {"primary": np.arange(500) % 5 != 0, "junior": np.arange(500) % 5 == 0}
    t = time.perf_counter()
    tc = compute_travel_costs(units, sites, rivers=rivers, bridge_xy=bridges, district=district, site_groups=groups)
    return time.perf_counter() - t, tc, "10,000 units × 500 sites, 2 rivers, 17 bridges, K = 20 per 2 groups"


CASES = {"fuling_data": case_fuling_data, "fuling_500x250": case_fuling_500x250, "synthetic_10k": case_synthetic_10k}


def run_case(name: str) -> None:
    """Child process: run one case REPEATS times, print one JSON line."""
    times = []
    for _ in range(REPEATS):
        seconds, tc, label = CASES[name]()
        times.append(seconds)
    info = tc.info
    print(json.dumps({"case": name, "label": label, "times": times, "nnz": int(tc.distance_m.nnz),
                      "shape": list(tc.shape), "crossing_share": float(tc.crosses_river.mean()),
                      "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "lattice_nodes": info.get("graph_nodes"), "spacing_m": info.get("spacing_m"),
                      "dijkstra_sources": (info.get("bridges", 0) + info.get("river_ends", 0)
                                           + info.get("lattice_sources", 0)),
                      "findings": len(tc.findings)}))


def main() -> None:
    if len(sys.argv) > 1:
        run_case(sys.argv[1])
        return
    rows = []
    load_before = os.getloadavg()
    for name in CASES:
        if name.startswith("fuling") and not (ROOT / "data/population/units.geojson").exists():
            print(f"skip {name}: data/ not built")
            continue
        out = subprocess.run([sys.executable, __file__, name], capture_output=True, text=True, cwd=ROOT)
        if out.returncode != 0:
            raise SystemExit(out.stderr)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1])
    load_after = os.getloadavg()
    target = {"fuling_data": "< 2 s", "fuling_500x250": "< 2 s", "synthetic_10k": "< 30 s, < 2 GiB"}
    lines = [
        "# bench_travel — travel-cost matrices with river barriers (layout.travel)",
        "",
        "- command: `python bench/bench_travel.py`",
        f"- date: {dt.datetime.now().isoformat(timespec='seconds')}",
        f"- machine: {platform.node()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        f"- load average (1/5/15 min) before: {load_before[0]:.2f} / {load_before[1]:.2f} / {load_before[2]:.2f}; "
        f"after: {load_after[0]:.2f} / {load_after[1]:.2f} / {load_after[2]:.2f} "
        "(2 cores shared with other jobs: timings are noisy, best-of-3 is the fairest figure)",
        f"- each case in a fresh process, {REPEATS} runs; peak memory = that process's max RSS (imports included)",
        "",
        "| case | size | best s | median s | target | peak MiB | kept pairs | crossing share | lattice nodes | spacing m | Dijkstra sources |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['case']} | {r['label']} | {min(r['times']):.2f} | {float(np.median(r['times'])):.2f} | "
                     f"{target[r['case']]} | {r['maxrss_mib']:.0f} | {r['nnz']:,} | {r['crossing_share']:.3f} | "
                     f"{r['lattice_nodes']:,} | {r['spacing_m']:.0f} | {r['dijkstra_sources']} |")
    lines += ["", "Crossing share: kept pairs whose straight line crosses a river (their cost goes via a bridge).",
              "Dijkstra sources: bridges + free river ends + sites with a same-bank pair whose straight line",
              "crosses a river; every other kept pair is an exact straight trip × detour factor.", ""]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
