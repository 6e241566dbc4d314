"""Stage results → long tables with units (pure; no files).

Every table carries ``scenario`` and explicit units, either in a ``unit`` column (the long indicator layout
``scenario, year, level, area, variable, unit, value``) or in the column names (``pupils``, ``persons``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from forecast.ccmpp import SEXES
from forecast.stochastic import calculate_quantiles
from schoolplan.stages import LEVEL_OF, EnrollmentStage, PopulationStage

__all__ = ["population_district_table", "population_units_table", "enrollment_district_table",
           "enrollment_units_table", "enrollment_schools_table", "REPORTED_QUANTILES"]

REPORTED_QUANTILES = (0.1, 0.5, 0.9)
LEVELS4 = ("kindergarten", "primary", "junior", "senior")


def population_district_table(scenario: str, pop: PopulationStage) -> pd.DataFrame:
    """District persons by year × sex × single age, quantiles over draws (5/10/50/90/95)."""
    q = pop.draws.quantiles("district", pop.quantiles)  # (Q, T+1, 2, A)
    Q, T1, S, A = q.shape
    idx = np.indices((Q, T1, S, A)).reshape(4, -1)
    return pd.DataFrame({
        "scenario": scenario, "year": pop.years[idx[1]], "sex": np.array(SEXES)[idx[2]], "age": idx[3],
        "quantile": np.array(pop.quantiles)[idx[0]], "persons": q.ravel().round(1),
    })


def population_units_table(scenario: str, pop: PopulationStage) -> pd.DataFrame:
    """Persons per unit and year (deterministic projection) and the 10/50/90 % quantiles over draws."""
    det = pop.deterministic.population.sum(axis=(-2, -1))  # (T+1, U)
    q = pop.draws.quantiles("unit_totals", REPORTED_QUANTILES)  # (3, T+1, U)
    T1, U = det.shape
    codes = np.asarray(pop.inputs.unit_codes)
    frame = pd.DataFrame({"scenario": scenario, "year": np.repeat(pop.years, U), "unit_code": np.tile(codes, T1),
                          "persons": det.ravel().round(1)})
    for k, p in enumerate(REPORTED_QUANTILES):
        frame[f"persons_q{int(p * 100):02d}"] = q[k].ravel().round(1)
    return frame


def _level_sum(values: np.ndarray, grades: np.ndarray, level: str) -> np.ndarray:
    sel = np.array([LEVEL_OF[int(g)] == level for g in grades])
    return values[..., sel].sum(axis=-1)


def enrollment_district_table(scenario: str, en: EnrollmentStage) -> pd.DataFrame:
    """Long: scenario, year, level, area=district, variable=pupils, unit=pupils, quantile, value (+ tracks/sectors)."""
    tot = en.unit_pupils.sum(axis=2)  # (N, Y, G)
    rows = []
    for level in LEVELS4:
        q = calculate_quantiles(_level_sum(tot, en.grades, level), en.quantiles, axis=0)  # (Q, Y)
        for qi, p in enumerate(en.quantiles):
            for yi, y in enumerate(en.years):
                rows.append((scenario, int(y), level, "district", "pupils", "pupils", p, float(q[qi, yi])))
    # level parts: kindergarten sectors and senior tracks (shares by year)
    parts = en.levels.parts
    kg = parts["kindergarten"].sector_shares  # (Y, 3) public / private inclusive / other private
    sen = parts["senior"].track_shares        # (Y, 2) general / vocational
    for yi, y in enumerate(en.years):
        for name, v in (("public_share", kg[yi, 0]), ("inclusive_share", kg[yi, 0] + kg[yi, 1])):
            rows.append((scenario, int(y), "kindergarten", "district", name, "fraction", 0.5, float(v)))
        rows.append((scenario, int(y), "senior", "district", "general_share", "fraction", 0.5, float(sen[yi, 0])))
    return pd.DataFrame(rows, columns=["scenario", "year", "level", "area", "variable", "unit", "quantile", "value"])


def enrollment_units_table(scenario: str, en: EnrollmentStage, unit_codes) -> pd.DataFrame:
    """Long table ``scenario, year, level, grade, unit_code, quantile, pupils`` (unit of residence; 10/50/90 %
    quantiles over draws; rows with no pupils in any quantile are dropped)."""
    from forecast.enrollment import to_long_table

    q = calculate_quantiles(en.unit_pupils, REPORTED_QUANTILES, axis=0)  # (Q, Y, U, G)
    levels = [LEVEL_OF[int(g)] for g in en.grades]
    t = to_long_table(q.round(3), years=en.years, grades=en.grades, keys=unit_codes, key_name="unit_code",
                      level=levels, scenario=scenario, quantiles=REPORTED_QUANTILES)
    return t[t["pupils"] > 0].reset_index(drop=True)


def enrollment_schools_table(scenario: str, en: EnrollmentStage, school_ids) -> pd.DataFrame:
    """Long table ``scenario, year, level, grade, school_id, quantile, pupils`` if every school stays (current
    attendance with the 进城 trend); quantiles taken per school after allocating each draw."""
    from forecast.enrollment import to_long_table

    levels = [LEVEL_OF[int(g)] for g in en.grades]
    t = to_long_table(en.school_quantiles[[en.quantiles.index(p) for p in REPORTED_QUANTILES]].round(3), years=en.years,
                      grades=en.grades, keys=school_ids, key_name="school_id", level=levels, scenario=scenario,
                      quantiles=REPORTED_QUANTILES)
    return t[t["pupils"] > 0].reset_index(drop=True)
