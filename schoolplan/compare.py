"""``schoolplan compare A B [...]``: scenario results side by side.

Reads the long indicator tables (``scenario, year, level, area, variable, unit, value``) that each run wrote to
``outputs/<scenario>/``, puts the scenarios in columns and adds the difference of every scenario from the first.
Pure computation in :func:`compare_tables`; the CLI writes ``outputs/compare_<A>_vs_<B>/`` atomically.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from forecast.errors import Problem
from schoolplan.errors import ScenarioError

__all__ = ["compare_tables", "read_run_table", "COMPARED_TABLES"]

KEYS = ["year", "indicator", "level", "area", "township_code", "variable", "unit", "quantile"]
COMPARED_TABLES = ("indicators.csv", "plan_targets.csv", "seat_demand.csv")


def read_run_table(outputs_dir: Path, scenario: str, table: str) -> pd.DataFrame | None:
    path = Path(outputs_dir) / scenario / table
    if not path.is_file():
        return None
    return pd.read_csv(path, dtype={"area": str})


def _long(frame: pd.DataFrame) -> pd.DataFrame:
    """A table with a ``value`` column as is; a wide table (e.g. seat_demand) melted to ``variable, value``."""
    if "value" in frame.columns:
        return frame
    ids = [c for c in frame.columns if c in KEYS or c == "scenario"]
    nums = [c for c in frame.columns if c not in ids and pd.api.types.is_numeric_dtype(frame[c])]
    return frame.melt(id_vars=ids, value_vars=nums, var_name="variable", value_name="value")


def compare_tables(frames: dict[str, pd.DataFrame], value: str = "value") -> pd.DataFrame:
    """Wide table: one row per key, one column per scenario, plus ``<B> − <A>`` columns against the first scenario."""
    frames = {k: _long(v) for k, v in frames.items()}
    names = list(frames)
    keys = [k for k in KEYS if all(k in f.columns for f in frames.values())]
    merged = None
    for name, f in frames.items():
        part = f[keys + [value]].groupby(keys, dropna=False, as_index=False)[value].sum().rename(columns={value: name})
        merged = part if merged is None else merged.merge(part, on=keys, how="outer")
    base = names[0]
    for name in names[1:]:
        merged[f"{name} - {base}"] = merged[name] - merged[base]
    return merged.sort_values(keys).reset_index(drop=True)


def collect(outputs_dir: Path, scenarios: list[str]) -> dict[str, pd.DataFrame]:
    """Every compared table present in all runs → its comparison; a run folder that is missing is an error."""
    problems = [Problem(str(Path(outputs_dir) / s), "no run output here", f"run it first: schoolplan run scenarios/{s}.toml")
                for s in scenarios if not (Path(outputs_dir) / s / "manifest.json").is_file()]
    if problems:
        raise ScenarioError("cannot compare scenarios that have not been run", problems)
    out = {}
    for table in COMPARED_TABLES:
        frames = {s: read_run_table(outputs_dir, s, table) for s in scenarios}
        if all(f is not None for f in frames.values()):
            out[table] = compare_tables(frames)
    return out
