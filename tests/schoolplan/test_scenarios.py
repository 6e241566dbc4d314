"""Every shipped scenario loads strictly; the README documents every key of the schema."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from schoolplan.scenario import DEFAULTS, load_scenario
from schoolplan.scenario_docs import DOCS

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ["baseline", "low_fertility", "high_fertility", "fast_urbanisation", "housing_boom", "no_consolidation",
           "target_75", "target_95", "peak_demand"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenarios_load(name):
    sc = load_scenario(ROOT / "scenarios" / f"{name}.toml")
    assert sc.name == name
    assert sc.data_dir == (ROOT / "data").resolve()


def test_variants_hold_only_what_changes():
    base = load_scenario(ROOT / "scenarios" / "baseline.toml").values
    low = load_scenario(ROOT / "scenarios" / "low_fertility.toml").values
    assert low["population"]["tfr_variant"] == "low" and base["population"]["tfr_variant"] == "median"
    assert {k: v for k, v in low.items() if k not in ("name", "description", "population")} == \
           {k: v for k, v in base.items() if k not in ("name", "description", "population")}
    assert load_scenario(ROOT / "scenarios" / "target_75.toml")["targets"]["compulsory_schools"] == 75


def test_readme_is_generated_from_the_schema():
    spec = importlib.util.spec_from_file_location("mk", ROOT / "scripts" / "make_scenario_docs.py")
    mk = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mk)
    assert (ROOT / "scenarios" / "README.md").read_text(encoding="utf-8") == mk.render()
    keys = {k for k, _ in mk.flatten(DEFAULTS)}
    assert keys == set(DOCS)
