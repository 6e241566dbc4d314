"""Backtest the generic grade-progression forecaster on real English pupil counts.

Data: ../shared/fixtures/england_pupils_dev (DfE school census by national-curriculum year, ONS births via the
GLA; OGL v3.0) — ten ITL2 regions, academic years 2011–2022; births of year Y enter reception in Y + 4.
Train on academic years up to T = 2015 … 2021, forecast T + 1 … 2022, score by horizon.

Run: python bench/bench_enrollment_england.py   (writes bench/results/enrollment_england.md)
"""
from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from forecast import enrollment as en  # noqa: E402

SHARED = Path(os.environ.get("SCHOOLPLAN_SHARED", ROOT.parent / "shared"))
FIXTURE = SHARED / "fixtures" / "england_pupils_dev"
OUT = ROOT / "bench" / "results" / "enrollment_england.md"
GRADES = list(range(12))  # reception (0) .. year 11
LAUNCHES = range(2015, 2022)
LEVEL = 0.8


def load() -> tuple[pd.DataFrame, pd.DataFrame]:
    pupils = pd.read_csv(FIXTURE / "pupils_by_ncyear_2011_2022.csv")
    births = pd.read_csv(FIXTURE / "births_1992_2023.csv").rename(columns={"annual_births": "value"})
    hist = pupils[pupils.nc_year_number.isin(GRADES)].rename(columns={"nc_year_number": "grade", "headcount": "pupils"})
    return hist, births


def fmt(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df.astype(object).to_dict("records"):
        cells = []
        for c in cols:
            v = row[c]
            cells.append(f"{v:.3f}" if isinstance(v, float) and c.startswith("cov") else
                         f"{v:.2f}" if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    if not FIXTURE.is_dir():
        sys.exit(f"fixture folder {FIXTURE} is absent")
    hist, births = load()
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    bt = en.run_backtest(hist, GRADES, births, lag=4, key="itl221cd", level=LEVEL, interval_method="block")
    seconds = time.perf_counter() - t0
    bt_conf = en.run_backtest(hist, GRADES, births, lag=4, key="itl221cd", level=LEVEL, interval_method="conformal")

    def table(b: en.Backtest, b2: en.Backtest, grades) -> pd.DataFrame:
        s = b.score(grades=grades, launch_years=LAUNCHES)
        s2 = b2.score(grades=grades, launch_years=LAUNCHES)
        s["coverage_conformal"] = s2["coverage"].to_numpy()
        return s[["horizon", "n", "mape_pct", "medape_pct", "bias_pct", "coverage", "coverage_conformal", "coverage_naive"]]

    rec = table(bt, bt_conf, [0])
    allg = table(bt, bt_conf, None)
    primary = table(bt, bt_conf, list(range(1, 7)))
    secondary = table(bt, bt_conf, list(range(7, 12)))
    by_launch = bt.score(grades=[0], by="launch", launch_years=LAUNCHES)
    by_launch = by_launch[by_launch.horizon == 1][["launch_year", "n", "mape_pct", "bias_pct", "coverage", "coverage_naive"]]
    pooled = {name: (np.average(t["coverage"], weights=t["n"]), np.average(t["coverage_naive"], weights=t["n"]))
              for name, t in (("reception", rec), ("all grades", allg))}

    # single methods against the backtest choice (reception and all grades, 1-year MAPE)
    rows = []
    for methods in (("mean1",), ("mean3",), ("mean5",), ("ses",), ("ets",), en.METHODS):
        b = en.run_backtest(hist, GRADES, births, lag=4, key="itl221cd", level=LEVEL, methods=methods,
                            default_method=methods[0] if len(methods) == 1 else "mean3")
        r = b.score(grades=[0], launch_years=LAUNCHES)
        a = b.score(launch_years=LAUNCHES)
        rows.append({"methods": "+".join(methods) if len(methods) > 1 else methods[0],
                     "reception_mape_h1": float(r.loc[r.horizon == 1, "mape_pct"].item()),
                     "reception_mape_h3": float(r.loc[r.horizon == 3, "mape_pct"].item()),
                     "all_mape_h1": float(a.loc[a.horizon == 1, "mape_pct"].item()),
                     "all_mape_h3": float(a.loc[a.horizon == 3, "mape_pct"].item())})
    methods_table = pd.DataFrame(rows)
    variants = []
    for select_by in ("series", "grade"):
        for select_horizon in (1, 3):
            b = en.run_backtest(hist, GRADES, births, lag=4, key="itl221cd", level=LEVEL, select_by=select_by,
                                select_horizon=select_horizon)
            r = b.score(grades=[0], launch_years=LAUNCHES)
            a = b.score(launch_years=LAUNCHES)
            variants.append({"select_by": select_by, "select_horizon": select_horizon,
                             "reception_mape_h1": float(r.mape_pct.iloc[0]), "reception_mape_h3": float(r.mape_pct.iloc[2]),
                             "all_mape_h1": float(a.mape_pct.iloc[0]), "all_mape_h3": float(a.mape_pct.iloc[2]),
                             "all_coverage_min": float(a.coverage.min()), "all_coverage_max": float(a.coverage.max())})
    variants_table = pd.DataFrame(variants)
    last = bt.origins.size - 1
    chosen = pd.Series(np.asarray(bt.methods)[bt.chosen[last].ravel()]).value_counts()

    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    text = f"""# Enrollment backtest — England (reception–year 11, ten ITL2 regions)

Command: `python bench/bench_enrollment_england.py` · date {dt.date.today().isoformat()} ·
machine {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()} ·
load average before {load_before[0]:.2f} / after: `{uptime}` (other work was running: timings are noisy).

Data: `../shared/fixtures/england_pupils_dev` (DfE school census headcounts by NC year, ONS/GLA births;
OGL v3.0). Entry driver: births of the 12 months to 1 July of year Y feed reception in academic year Y + 4
(`lag = 4`). Grades: reception (0) … year 11. Rolling origins: every academic year 2012–2021; scored launches
T = 2015 … 2021 (train up to T, forecast T + 1 … 2022), so horizon h has {len(LAUNCHES)} − h + 1 launches × 10
regions per grade. Ratio methods per (region, grade) chosen at each origin by its own earlier backtest
(mean1, mean3, mean5, SES, ETS damped). Nominal interval {int(LEVEL * 100)} %, calibrated at each origin only from
earlier origins' errors. One backtest (all origins, 12 grades, 5 methods incl. ETS fits): {seconds:.1f} s.

- `coverage`: calibrated interval, `block` method (year shock + residual, Student-t on the origins' mean errors);
- `coverage_conformal`: split-conformal with the effective pool size;
- `coverage_naive`: a plain bootstrap of the averaged ratio (last 3 ratios resampled) — under-covers badly.

## Reception (entry grade) by horizon

{fmt(rec)}

Pooled over horizons: calibrated coverage {pooled['reception'][0]:.3f}, naive {pooled['reception'][1]:.3f}.
Good practice for this data (fixture README): reception MAPE ≈ 1.1–1.3 % at 1 year, 1.5–1.7 % at 3 years.

## All grades (reception–year 11) by horizon

{fmt(allg)}

Pooled: calibrated {pooled['all grades'][0]:.3f}, naive {pooled['all grades'][1]:.3f}.

## Primary years 1–6 and secondary years 7–11

{fmt(primary)}

{fmt(secondary)}

## Reception, 1 year ahead, by launch year

{fmt(by_launch)}

The launches 2019–2021 forecast the academic years 2020/21–2022/23 (pandemic and post-pandemic moves, e.g.
families leaving inner London): common shocks larger than any in the 2012–2019 errors used for calibration,
which is where the 1-year coverage of the later grades falls below 70 %.

## Single methods against the backtest choice (MAPE %, launches 2015–2021)

{fmt(methods_table)}

Choosing per series with few origins is noisy: the backtest choice is about as good as the best single
method and not better (the defaults `select_by="series"`, `select_horizon=3` were fixed before this run).
Variants of the choice (`select_by="grade"` pools the regions' errors for one method per grade):

{fmt(variants_table)}

Methods chosen at the last origin (2021) over 10 regions × 12 ratio series: {', '.join(f'{k} {v}' for k, v in chosen.items())}.
"""
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
