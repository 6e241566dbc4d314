"""Scenario files: strict TOML (stdlib ``tomllib``) with ``extends =`` inheritance.

The schema is the nested dict :data:`DEFAULTS`: every key a scenario may set, with its default and so its
type.  An unknown or misspelt key is an error naming the file, the key and the allowed keys; a value of the
wrong type is an error naming the expected type.  ``extends = "baseline.toml"`` (relative to the file) loads
the parent first, so a variant holds only what changes.  Every key is documented in ``scenarios/README.md``.
"""
from __future__ import annotations

import copy
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forecast.errors import Problem
from schoolplan.errors import ScenarioError

__all__ = ["DEFAULTS", "Scenario", "load_scenario", "NAME_PATTERN"]

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,127}$")

DEFAULTS: dict[str, Any] = {
    "name": "",
    "description": "",
    "data_dir": "../data",
    "horizon": {
        "base_year": 2020,
        "end_year": 2035,
        "design_year": 2025,
    },
    "population": {
        "tfr_variant": "median",
        "tfr_policy_name": "three-child policy and childcare subsidy",
        "tfr_policy_effect": 0.0,
        "tfr_policy_start_year": 2022,
        "tfr_policy_ramp_years": 3,
        "draws": 200,
        "seed": 20201101,
    },
    "migration": {
        "net_external_per_year": 1500.0,
        "rural_urban_rate": 0.008,
        "housing_persons_per_dwelling": 2.8,
        "housing_occupancy": 0.6,
        "housing_external_share": 0.15,
        "housing_rural_share": 0.25,
        "housing_delay_years": 0,
    },
    "enrollment": {
        "target_year": 2025,
        "progression": "cohort",
        "kindergarten_ger_base": 0.912,
        "kindergarten_ger_target": 0.98,
        "kindergarten_public_share_base": 0.541,
        "kindergarten_public_share_target": 0.65,
        "kindergarten_inclusive_share_base": 0.96,
        "kindergarten_inclusive_share_target": 0.98,
        "consolidation_rate_base": 0.985,
        "consolidation_rate_target": 0.99,
        "senior_ger_base": 0.992,
        "senior_ger_target": 0.995,
        "senior_general_share_base": 0.5952,
        "senior_general_share_target": 0.587,
    },
    "attendance": {
        "into_town_rate": 0.02,
        "gravity_scale_m_kindergarten": 1500.0,
        "gravity_scale_m_primary": 3000.0,
        "gravity_scale_m_junior": 5000.0,
        "gravity_scale_m_senior": 10000.0,
    },
    "travel": {
        "detour_factor": 1.3,
        "k_nearest": 40,
    },
    "service_radius": {
        "urban_m_kindergarten": 300.0,
        "urban_m_primary": 500.0,
        "urban_m_junior": 1000.0,
        "rural_m_kindergarten": 1500.0,
        "rural_m_primary": 2500.0,
        "rural_m_junior": 5000.0,
    },
    "consolidation": {
        "demand": "design_year",
        "demand_quantile": 0.5,
        "rule": "exactly",
        "keep_all_schools": False,
        "classes_by_grade": True,
        "teaching_points_count": False,
        "allow_new_schools": True,
        "max_expand_urban": 12,
        "max_expand_rural": 6,
        "travel_limit_m_urban_primary": 3000.0,
        "travel_limit_m_urban_junior": 5000.0,
        "travel_limit_m_rural_primary": 5000.0,
        "travel_limit_m_rural_junior": 10000.0,
        "must_keep": [],
        "k_nearest": 20,
        "time_limit_s": 10.0,
        "mip_rel_gap": 0.001,
        "tradeoff_targets": [75, 85, 95, 105],
        "tradeoff_time_limit_s": 8.0,
        "tradeoff_mip_rel_gap": 0.005,
    },
    "kindergarten": {
        "new_sites": 16,
        "enrollment_rate": 0.98,
        "urban_radius_m": 300.0,
        "rural_radius_m": 2000.0,
        "new_site_cny_per_seat": 40000.0,
        "closed_school_cny_per_seat": 8000.0,
        "conversion_to_inclusive_cny_per_seat": 2000.0,
        "conversion_to_public_cny_per_seat": 15000.0,
        "share_margin": 0.03,
    },
    "costs": {
        "construction_cny_per_m2": 4000.0,
        "floor_area_m2_per_pupil_kindergarten": 10.0,
        "floor_area_m2_per_pupil_primary": 8.0,
        "floor_area_m2_per_pupil_junior": 10.0,
        "floor_area_m2_per_pupil_senior": 12.0,
        "boarding_rate_rural_kindergarten": 0.0,
        "boarding_rate_rural_primary": 0.15,
        "boarding_rate_rural_junior": 0.6,
        "boarding_rate_rural_senior": 0.8,
        "boarding_bed_cny": 35000.0,
        "running_cny_per_school_year": 600000.0,
        "running_cny_per_pupil_year_kindergarten": 3000.0,
        "running_cny_per_pupil_year_primary": 1500.0,
        "running_cny_per_pupil_year_junior": 1800.0,
        "running_cny_per_pupil_year_senior": 2500.0,
        "teacher_cny_per_year": 120000.0,
        "classroom_cny": 1500000.0,
        "new_school_cny": 60000000.0,
        "annuity_years": 30,
        "discount_rate": 0.04,
        "travel_cny_per_pupil_km_year": 400.0,
    },
    "staffing": {
        "pupils_per_teacher_kindergarten": 15.0,
        "pupils_per_teacher_primary": 19.0,
        "pupils_per_teacher_junior": 13.5,
        "pupils_per_teacher_senior": 12.5,
    },
    "class_size": {
        "primary": 45,
        "junior": 50,
        "senior": 50,
        "kindergarten_small": 25,
        "kindergarten_middle": 30,
        "kindergarten_large": 35,
        "oversized_min": 56,
        "super_oversized_min": 66,
    },
    "school_size": {
        "max_pupils": 2000,
        "max_classes_primary": 36,
        "max_classes_junior": 36,
        "max_classes_nine_year": 45,
    },
    "targets": {
        "compulsory_schools": 85,
    },
}


@dataclass
class Scenario:
    name: str
    path: Path
    values: dict[str, Any]
    files: list[Path]  # the scenario file and every file it extends (for the manifest)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    @property
    def data_dir(self) -> Path:
        p = Path(self.values["data_dir"])
        return p if p.is_absolute() else (self.path.parent / p).resolve()


def _type_name(v: Any) -> str:
    return {bool: "true/false", int: "integer", float: "number", str: "text", list: "list", dict: "table"}.get(type(v), type(v).__name__)


def _merge(base: dict, override: dict, schema: dict, source: str, prefix: str, problems: list[Problem]) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        dotted = f"{prefix}{key}"
        if key not in schema:
            allowed = ", ".join(sorted(schema))
            problems.append(Problem(source, f"unknown key {dotted!r}", f"use one of: {allowed} (see scenarios/README.md)"))
            continue
        expected = schema[key]
        if isinstance(expected, dict):
            if not isinstance(value, dict):
                problems.append(Problem(source, f"{dotted!r} must be a table [{dotted}]", f"write it as a [{dotted}] section"))
                continue
            out[key] = _merge(out[key], value, expected, source, dotted + ".", problems)
            continue
        ok = isinstance(value, type(expected)) and not (isinstance(value, bool) and not isinstance(expected, bool))
        if isinstance(expected, float) and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            problems.append(Problem(source, f"{dotted!r} is {_type_name(value)} {value!r}, expected {_type_name(expected)}",
                                    f"write {dotted} as {_type_name(expected)} like the default {expected!r}"))
            continue
        out[key] = value
    return out


def _read(path: Path, chain: tuple[Path, ...]) -> tuple[dict, list[Path]]:
    if path in chain:
        raise ScenarioError(f"scenario {path} extends itself through {' -> '.join(p.name for p in chain)}",
                            [Problem(str(path), "circular extends", "remove the cycle from the extends chain")])
    if not path.is_file():
        raise ScenarioError(f"scenario file not found: {path}",
                            [Problem(str(path), "file not found", "give a path to a .toml file, e.g. scenarios/baseline.toml")])
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"scenario {path} is not valid TOML", [Problem(str(path), str(exc), "fix the TOML syntax at the position shown")])
    parent = raw.pop("extends", None)
    if parent is None:
        return raw, [path]
    if not isinstance(parent, str):
        raise ScenarioError(f"scenario {path}: extends must be a file name", [Problem(str(path), f"extends = {parent!r}", 'write extends = "baseline.toml"')])
    parent_raw, files = _read((path.parent / parent).resolve(), chain + (path,))
    merged = _merge_raw(parent_raw, raw)
    return merged, files + [path]


def _merge_raw(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge_raw(out[k], v)
        else:
            out[k] = v
    return out


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario file (and what it extends), check it strictly against :data:`DEFAULTS`, fill defaults."""
    path = Path(path).resolve()
    raw, files = _read(path, ())
    problems: list[Problem] = []
    values = _merge(DEFAULTS, raw, DEFAULTS, str(path), "", problems)
    name = values.get("name") or path.stem
    if not NAME_PATTERN.match(name):
        problems.append(Problem(str(path), f"name {name!r} is not a safe folder name",
                                "use letters, digits, '_' or '-' only (it names the folder under outputs/)"))
    h = values["horizon"]
    if not (h["base_year"] <= h["design_year"] <= h["end_year"]):
        problems.append(Problem(str(path), f"horizon years out of order: base {h['base_year']}, design {h['design_year']}, end {h['end_year']}",
                                "make base_year ≤ design_year ≤ end_year"))
    p, m = values["population"], values["migration"]
    if p["tfr_variant"] not in ("median", "low", "high"):
        problems.append(Problem(str(path), f"population.tfr_variant = {p['tfr_variant']!r}", "use median, low or high (UN WPP 2024 variants)"))
    if not 1 <= p["draws"] <= 5000:
        problems.append(Problem(str(path), f"population.draws = {p['draws']}", "use 1 to 5000 stochastic draws"))
    for k in ("housing_occupancy", "housing_external_share", "housing_rural_share", "rural_urban_rate"):
        if not 0 <= m[k] <= 1:
            problems.append(Problem(str(path), f"migration.{k} = {m[k]} is not a share", "give a fraction between 0 and 1"))
    if m["housing_external_share"] + m["housing_rural_share"] > 1:
        problems.append(Problem(str(path), "migration.housing_external_share + housing_rural_share > 1",
                                "the two shares of housing occupants (from outside, from rural units) must sum to at most 1; the rest come from other urban units"))
    c = values["consolidation"]
    if c["demand"] not in ("design_year", "peak"):
        problems.append(Problem(str(path), f"consolidation.demand = {c['demand']!r}", "use design_year or peak"))
    if c["rule"] not in ("exactly", "at_most"):
        problems.append(Problem(str(path), f"consolidation.rule = {c['rule']!r}", "use exactly or at_most"))
    if not 0 < c["demand_quantile"] < 1:
        problems.append(Problem(str(path), f"consolidation.demand_quantile = {c['demand_quantile']}", "a probability, e.g. 0.5 or 0.9"))
    if not all(isinstance(t, int) and t > 0 for t in c["tradeoff_targets"]):
        problems.append(Problem(str(path), "consolidation.tradeoff_targets must be positive integers", "e.g. [75, 85, 95, 105]"))
    for k, v in values["class_size"].items():
        if v <= 0:
            problems.append(Problem(str(path), f"class_size.{k} = {v} must be positive", "give a positive number of pupils per class"))
    if problems:
        raise ScenarioError(f"scenario {path.name} is invalid ({len(problems)} problem{'s' if len(problems) != 1 else ''})", problems)
    values["name"] = name
    return Scenario(name=name, path=path, values=values, files=files)
