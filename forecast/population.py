"""Tidy adapter: the project's population tables ↔ the arrays of :mod:`forecast.ccmpp`.

Tables (schemas in ``data/README.md``; Fuling defaults under ``data/population/``):
``base_population.csv`` (unit_code, sex, age, persons), ``mortality_mx.csv``
(period_start, sex, age_start, mx), ``asfr_schedule.csv`` (year, age_start, percent),
``tfr.csv`` (year, variant, tfr_china, tfr_fuling), ``srb.csv`` (year, srb).

Timing (single-year ages 0..100+, annual steps):

* the base population is dated ``base_date`` (census, 1 Nov 2020); population index ``k``
  is 1 Nov of ``base_year + k`` (column ``year`` in long tables);
* step ``k`` runs from 1 Nov ``base_year + k`` to 1 Nov ``base_year + k + 1``; it uses the
  TFR, fertility age schedule and SRB of calendar year ``base_year + k + 1`` (10 of its 12
  months) and death rates interpolated log-linearly between WPP 5-year periods at the
  step's mid-point (decimal year ``base_year + k + 0.833 + 0.5``);
* TFR: years up to the last ``estimate`` row use the estimate, later years the chosen
  ``variant`` (median/low/high).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from forecast.ccmpp import SEXES, ProjectionResult, project
from forecast.errors import ForecastError, Problem, format_rows, raise_if_problems
from forecast.fertility import TfrPolicy, apply_tfr_policies, build_asfr, graduate_asfr_schedule
from forecast.lifetable import (build_life_table, calculate_survival_ratios, interpolate_mx_over_time,
                                interpolate_mx_to_single_years)

N_AGES = 101  # 0..99 and the open group 100+
OPEN_AGE = 100
BASE_DATE = date(2020, 11, 1)
TABLE_FILES = {"base_population": "base_population.csv", "mortality_mx": "mortality_mx.csv",
               "asfr_schedule": "asfr_schedule.csv", "tfr": "tfr.csv", "srb": "srb.csv"}


def _decimal_year(d: date) -> float:
    start = date(d.year, 1, 1)
    return d.year + (d - start).days / (date(d.year + 1, 1, 1) - start).days


def _require_columns(df: pd.DataFrame, columns: Sequence[str], source: str, problems: list[Problem]) -> bool:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        problems.append(Problem(source, f"missing columns {missing} (has {list(df.columns)})",
                                f"the table needs columns {list(columns)}"))
        return False
    return True


def convert_population_to_array(table: pd.DataFrame, unit_codes: Sequence[str] | None = None,
                                value: str = "persons", source: str = "base_population.csv"):
    """Long ``unit_code, sex, age, persons`` → ``(array (U, 2, 101), unit_codes)``.

    Sex order :data:`forecast.ccmpp.SEXES` (female, male); age 100 is the open group 100+.
    Missing (unit, sex, age) rows count as 0 persons.  Units keep ``unit_codes`` order when
    given, otherwise sorted.  Raises :class:`ForecastError` listing every bad row.
    """
    problems: list[Problem] = []
    if not _require_columns(table, ["unit_code", "sex", "age", value], source, problems):
        raise_if_problems(problems, f"cannot read {source}", ForecastError)
    df = table.reset_index(drop=True)
    sex_bad = ~df["sex"].isin(SEXES)
    if sex_bad.any():
        problems.append(Problem(source, f"sex must be 'female' or 'male' (got {sorted(df.loc[sex_bad, 'sex'].astype(str).unique())[:5]})",
                                "use lower-case female/male", rows=format_rows((df.index[sex_bad] + 2).tolist())))
    age = pd.to_numeric(df["age"], errors="coerce")
    age_bad = age.isna() | (age % 1 != 0) | (age < 0) | (age > OPEN_AGE)
    if age_bad.any():
        problems.append(Problem(source, "age must be an integer 0..100 (100 = 100+)", "fix or drop those rows",
                                rows=format_rows((df.index[age_bad] + 2).tolist())))
    persons = pd.to_numeric(df[value], errors="coerce")
    p_bad = persons.isna() | (persons < 0) | ~np.isfinite(persons)
    if p_bad.any():
        problems.append(Problem(source, f"{value} must be a number >= 0", "fix those rows",
                                rows=format_rows((df.index[p_bad] + 2).tolist())))
    dup = df.duplicated(["unit_code", "sex", "age"], keep=False)
    if dup.any():
        problems.append(Problem(source, "duplicate (unit_code, sex, age) rows", "keep one row per cell",
                                rows=format_rows((df.index[dup] + 2).tolist())))
    codes = sorted(df["unit_code"].astype(str).unique()) if unit_codes is None else [str(u) for u in unit_codes]
    if unit_codes is not None:
        unknown = sorted(set(df["unit_code"].astype(str)) - set(codes))
        if unknown:
            problems.append(Problem(source, f"{len(unknown)} unit codes are not in the unit list: {unknown[:5]}",
                                    "add the units to units.geojson or drop the rows"))
    raise_if_problems(problems, f"cannot read {source}", ForecastError)
    u = pd.Index(codes).get_indexer(df["unit_code"].astype(str))
    s = pd.Index(SEXES).get_indexer(df["sex"])
    out = np.zeros((len(codes), 2, N_AGES))
    np.add.at(out, (u, s, age.to_numpy(int)), persons.to_numpy(float))
    return out, list(codes)


def convert_array_to_long(values, *, unit_codes: Sequence[str], years: Sequence[int], draws=None,
                          quantiles=None, sexes: Sequence[str] = SEXES, ages=None,
                          value: str = "persons") -> pd.DataFrame:
    """Arrays → long table ``unit_code, year, sex, age, [draw|quantile], persons``.

    ``values`` shape ``([D|Q,] T, U, S, A)``: optional leading draw or quantile axis
    (give ``draws`` (D,) labels or ``quantiles`` (Q,) probabilities), then years ``(T,)``,
    units, sexes (default female, male; pass ``sexes=("both",)`` for summed arrays with
    ``S = 1``) and ages (default ``0..A-1``; the last is the open group).
    """
    values = np.asarray(values)
    extra = draws if draws is not None else quantiles
    label = "draw" if draws is not None else ("quantile" if quantiles is not None else None)
    if extra is None:
        values = values[None]
        extra = [None]
    ages = np.arange(values.shape[-1]) if ages is None else np.asarray(ages)
    expected = (len(extra), len(years), len(unit_codes), len(sexes), len(ages))
    if values.shape != expected:
        raise ForecastError("cannot convert to a long table", [Problem(
            "values", f"shape {values.shape} != {expected} (extra, years, units, sexes, ages)",
            "pass labels matching every axis")])
    index = pd.MultiIndex.from_product([range(len(extra)), years, unit_codes, sexes, ages],
                                       names=[label or "_", "year", "unit_code", "sex", "age"])
    df = index.to_frame(index=False)
    if label:
        df[label] = np.asarray(extra)[df[label].to_numpy()]
    else:
        df = df.drop(columns="_")
    df[value] = values.reshape(-1)
    cols = ["unit_code", "year", "sex", "age"] + ([label] if label else []) + [value]
    return df[cols]


@dataclass(frozen=True)
class ProjectionInputs:
    """Arrays ready for :func:`forecast.ccmpp.project` / :func:`forecast.stochastic.project_draws`.

    ``population`` (U, 2, 101) at ``base_date``; ``survival`` (T, 2, 101); ``asfr`` (T, 101);
    ``srb`` (T,); ``net_migration`` (T, U, 2, 101) or None; ``years`` (T+1,) the 1 Nov
    year of each population index; ``fertility_years`` (T,) calendar year whose rates
    each step uses; ``mortality_times`` (T,) decimal years at which mx were interpolated;
    ``tfr`` (T,) the TFR path; ``e0`` (T, 2) life expectancy of each step's table (female, male).
    """

    population: np.ndarray
    survival: np.ndarray
    asfr: np.ndarray
    srb: np.ndarray
    unit_codes: list[str]
    years: np.ndarray
    fertility_years: np.ndarray
    mortality_times: np.ndarray
    tfr: np.ndarray
    e0: np.ndarray
    net_migration: np.ndarray | None = None
    base_date: date = BASE_DATE
    notes: dict = field(default_factory=dict)

    def with_migration(self, net_migration) -> "ProjectionInputs":
        """A copy with net migration ``(T, U, 2, 101)`` (e.g. split + transfers + housing)."""
        from dataclasses import replace
        return replace(self, net_migration=np.asarray(net_migration, dtype=float))


def _pick_by_year(table: pd.DataFrame, years: np.ndarray, column: str, source: str, problems: list[Problem]):
    lookup = table.drop_duplicates("year").set_index("year")[column]
    missing = [int(y) for y in years if y not in lookup.index]
    if missing:
        problems.append(Problem(source, f"no {column} for years {missing[:5]}{'…' if len(missing) > 5 else ''}",
                                "extend the table to cover the projection horizon"))
        return None
    return lookup.loc[years].to_numpy(float)


def build_projection_inputs(base_population: pd.DataFrame, mortality_mx: pd.DataFrame, asfr_schedule: pd.DataFrame,
                            tfr: pd.DataFrame, srb: pd.DataFrame, *, n_steps: int = 15, base_date: date = BASE_DATE,
                            variant: str = "median", tfr_column: str = "tfr_fuling",
                            policies: Sequence[TfrPolicy] = (), a0_method: str = "andreev_kingkade",
                            unit_codes: Sequence[str] | None = None) -> ProjectionInputs:
    """Build deterministic single-year, annual-step projection inputs from the data tables.

    See the module docstring for the timing.  ``variant`` picks the TFR projection
    variant after the last estimate; ``policies`` multiply the TFR path
    (:class:`forecast.fertility.TfrPolicy`).  Mortality: WPP abridged mx → single years
    (:func:`forecast.lifetable.interpolate_mx_to_single_years`) → log-linear in time →
    life tables → survival ratios.  No migration (add with :meth:`ProjectionInputs.with_migration`).
    """
    problems: list[Problem] = []
    population, codes = convert_population_to_array(base_population, unit_codes)
    base_year = base_date.year
    years = base_year + np.arange(n_steps + 1)
    fert_years = base_year + 1 + np.arange(n_steps)
    mort_times = _decimal_year(base_date) + np.arange(n_steps) + 0.5

    # --- fertility
    ok = _require_columns(tfr, ["year", "variant", tfr_column], "tfr.csv", problems)
    tfr_path = None
    if ok:
        est = tfr[tfr["variant"] == "estimate"]
        last_est = est["year"].max() if len(est) else -np.inf
        chosen = pd.concat([est, tfr[(tfr["variant"] == variant) & (tfr["year"] > last_est)]])
        if variant not in set(tfr["variant"]):
            problems.append(Problem("tfr.csv", f"no rows for variant {variant!r} (has {sorted(tfr['variant'].unique())})",
                                    "choose an existing variant"))
        else:
            tfr_path = _pick_by_year(chosen, fert_years, tfr_column, "tfr.csv", problems)
    schedule = None
    if _require_columns(asfr_schedule, ["year", "age_start", "percent"], "asfr_schedule.csv", problems):
        wide = asfr_schedule.pivot_table(index="year", columns="age_start", values="percent", aggfunc="first")
        missing = [int(y) for y in fert_years if y not in wide.index]
        if missing:
            problems.append(Problem("asfr_schedule.csv", f"no schedule for years {missing[:5]}", "extend the table"))
        elif wide.loc[fert_years].isna().any().any():
            problems.append(Problem("asfr_schedule.csv", "some years lack some age groups", "one row per year × group"))
        else:
            schedule = wide.loc[fert_years]
    srb_path = None
    if _require_columns(srb, ["year", "srb"], "srb.csv", problems):
        srb_path = _pick_by_year(srb, fert_years, "srb", "srb.csv", problems)

    # --- mortality
    mx_periods = period_start = None
    if _require_columns(mortality_mx, ["period_start", "sex", "age_start", "mx"], "mortality_mx.csv", problems):
        wide = mortality_mx.pivot_table(index=["period_start", "sex"], columns="age_start", values="mx", aggfunc="first")
        periods = np.array(sorted(mortality_mx["period_start"].unique()))
        try:
            arr = np.stack([np.stack([wide.loc[(p, s)].to_numpy(float) for s in SEXES]) for p in periods])
            if np.isnan(arr).any():
                raise KeyError("gaps")
            mx_periods, period_start = arr, periods
            age_start = wide.columns.to_numpy()
        except KeyError:
            problems.append(Problem("mortality_mx.csv", "every period needs rates for both sexes and all ages",
                                    "one row per period_start × sex × age_start"))
    raise_if_problems(problems, "cannot build projection inputs", ForecastError)

    tfr_path = apply_tfr_policies(tfr_path, fert_years, policies)
    ages, props = graduate_asfr_schedule(schedule.to_numpy(float), schedule.columns.to_numpy())
    asfr = build_asfr(tfr_path, props, ages, n_ages=N_AGES)
    single = interpolate_mx_to_single_years(mx_periods, age_start)  # (P, 2, 101)
    mx_steps = interpolate_mx_over_time(single, period_start, mort_times)  # (T, 2, 101)
    tables = build_life_table(mx_steps, None, None, a0_method=a0_method)
    survival = calculate_survival_ratios(tables, 1)
    return ProjectionInputs(population=population, survival=survival, asfr=asfr, srb=srb_path, unit_codes=codes,
                            years=years, fertility_years=fert_years, mortality_times=mort_times, tfr=tfr_path,
                            e0=tables.e0, base_date=base_date,
                            notes={"variant": variant, "tfr_column": tfr_column, "a0_method": a0_method,
                                   "policies": [p.name for p in policies]})


def read_population_tables(population_dir: str | Path) -> dict[str, pd.DataFrame]:
    """Read the five tables of :data:`TABLE_FILES` from ``population_dir`` (e.g. ``data/population``)."""
    population_dir = Path(population_dir)
    missing = [name for name in TABLE_FILES.values() if not (population_dir / name).is_file()]
    if missing:
        raise ForecastError("population tables missing", [Problem(str(population_dir), f"missing {missing}",
                                                                  "supply the tables described in data/README.md")])
    return {key: pd.read_csv(population_dir / name, dtype={"unit_code": str})
            for key, name in TABLE_FILES.items()}


def load_projection_inputs(population_dir: str | Path, **options) -> ProjectionInputs:
    """:func:`read_population_tables` then :func:`build_projection_inputs` (``options`` passed on)."""
    return build_projection_inputs(**read_population_tables(population_dir), **options)


def project_inputs(inputs: ProjectionInputs, return_components: bool = False,
                   migration_timing: str = "even") -> ProjectionResult:
    """Deterministic projection of every unit: :func:`forecast.ccmpp.project` on ``inputs``."""
    return project(inputs.population, inputs.survival, inputs.asfr, inputs.srb, inputs.net_migration,
                   step_years=1, migration_timing=migration_timing, return_components=return_components)


def build_housing_migration(housing_pipeline: pd.DataFrame, unit_codes: Sequence[str], fertility_years,
                            persons_per_dwelling: float = 2.8, age_profile=None,
                            source: str = "housing_pipeline.csv") -> np.ndarray:
    """In-movers ``(T, U, 2, 101)`` from ``housing_pipeline.csv`` (site_id, unit_code, year, dwellings).

    Dwellings delivered in calendar year ``y`` are occupied during the step that uses
    year ``y``'s rates (``fertility_years`` of :class:`ProjectionInputs`, i.e. the step
    from 1 Nov ``y−1`` to 1 Nov ``y``); movers = dwellings × ``persons_per_dwelling``
    spread by ``age_profile`` (default :func:`forecast.migration.build_young_family_profile`).
    Years outside the horizon are ignored.  Add the result to other net migration.
    """
    from forecast.migration import build_young_family_profile, calculate_housing_in_movers

    problems: list[Problem] = []
    if not _require_columns(housing_pipeline, ["unit_code", "year", "dwellings"], source, problems):
        raise_if_problems(problems, f"cannot read {source}", ForecastError)
    df = housing_pipeline.reset_index(drop=True)
    unit_index = pd.Index([str(u) for u in unit_codes]).get_indexer(df["unit_code"].astype(str))
    if np.any(unit_index < 0):
        bad = df.index[unit_index < 0] + 2
        problems.append(Problem(source, "unit codes not in the base population", "fix the unit_code values",
                                rows=format_rows(bad.tolist())))
    dwellings = pd.to_numeric(df["dwellings"], errors="coerce")
    if dwellings.isna().any() or (dwellings < 0).any():
        problems.append(Problem(source, "dwellings must be numbers >= 0", "fix those rows",
                                rows=format_rows((df.index[dwellings.isna() | (dwellings < 0)] + 2).tolist())))
    raise_if_problems(problems, f"cannot read {source}", ForecastError)
    years = np.asarray(fertility_years)
    step = pd.Index(years).get_indexer(df["year"])
    grid = np.zeros((years.size, len(unit_codes)))
    inside = step >= 0
    np.add.at(grid, (step[inside], unit_index[inside]), dwellings.to_numpy(float)[inside])
    profile = build_young_family_profile(N_AGES) if age_profile is None else age_profile
    return calculate_housing_in_movers(grid, persons_per_dwelling, profile)


def convert_draws_to_long(draws, unit_codes: Sequence[str], years, probs=None) -> dict[str, pd.DataFrame]:
    """Quantile tables from a :class:`forecast.stochastic.StochasticProjection`.

    Returns ``{"school_age": unit_code, year, sex ("both"), age, quantile, persons}`` for
    the kept ages by unit, and ``{"district": unit_code ("district"), year, sex, age,
    quantile, persons}`` for every sex × age of the whole district.
    """
    from forecast.stochastic import QUANTILES

    probs = QUANTILES if probs is None else probs
    school_q = draws.quantiles("school_age", probs)[:, :, :, None, :]  # (Q, T+1, U, 1, K)
    district_q = draws.quantiles("district", probs)[:, :, None]  # (Q, T+1, 1, 2, A)
    return {
        "school_age": convert_array_to_long(school_q, unit_codes=unit_codes, years=years, quantiles=probs,
                                            sexes=("both",), ages=draws.kept_ages),
        "district": convert_array_to_long(district_q, unit_codes=["district"], years=years, quantiles=probs),
    }
