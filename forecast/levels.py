"""Chinese (Fuling) level rules: kindergarten, primary, junior and senior pupils from projected cohorts.

Timing conventions (stated once, used everywhere here)
-----------------------------------------------------
* A **school year** ``Y`` starts on 1 Sep of calendar year ``Y`` (2020 = 2020/21).
* **Entry** to grade 1 at age 6 completed by 31 Aug: grade ``g`` (1..12) in school year ``Y`` holds the
  children aged ``g + 5`` on 31 Aug ``Y``, i.e. born 1 Sep ``Y − g − 6`` .. 31 Aug ``Y − g − 5``.
  Kindergarten grades −3, −2, −1 (小班, 中班, 大班) hold ages 3, 4, 5 on 31 Aug (:func:`school_age_of_grade`).
* **Population** comes at the census date, **1 Nov** of ``Y`` (2020 census; every projection step is one year
  from one 1 Nov to the next), by completed age.  Two months after the 31 Aug cut-off, a school-age cohort
  ``a`` (aged ``a`` on 31 Aug) is 10/12 aged ``a`` and 2/12 aged ``a + 1`` on 1 Nov (births spread evenly over
  the year), so the cohort of grade ``g`` in school year ``Y`` is estimated from the 1 Nov ``Y`` population
  ``P`` as ``(10/12)·P[a] + (2/12)·P[a + 1]`` (:func:`weigh_school_age`).  Population year ``Y`` ↔ school year
  ``Y``.

Level rules (all on arrays; leading axes such as draws broadcast)
-----------------------------------------------------------------
* **Kindergarten** (grades −3..−1): cohort × gross enrollment rate path (学前三年毛入园率; 91.2 % in 2020 to
  above 98 % by 2025 in the plan) × per-grade calibration factors fitted to the base-year pupils, split into
  public (公办), private inclusive (民办普惠) and other private by the public-share and inclusive-share
  (普惠率) paths (:func:`project_kindergarten`).  The calibration factor carries the plan's denominator
  (which is not the census count of ages 3–5) so the base year is reproduced and the path moves it.
* **Primary and junior** (grades 1..9): district totals by the grade-progression method — grade 1 = cohort ×
  entry ratio (calibrated in the base year), later grades = previous grade last year × grade-progression ratio
  (GPR) × ``(c(Y) / c(base))^(1/8)`` where ``c`` is the consolidation-rate path (巩固率, 98.5 % → 99 %): the
  retention gain spread over the eight transitions.  The GPRs either follow the projected cohorts from the
  base-year enrollment ratios (:func:`compute_cohort_gpr`, default) or are the 2016–2020 history's GPRs carried
  forward by the method their backtest prefers (:func:`forecast_progression_ratios`).  District totals are
  shared out to units in proportion to each unit's projected cohort (:func:`project_compulsory`).
* **Senior** (grades 10..12): cohort × gross enrollment rate path (高中阶段毛入学率, 99.2 % → 99.5 %) × per-grade
  base calibration, split general/vocational by a share path (:func:`project_senior`).

Arrays: ``Y`` years (index 0 = the base year), ``U`` units, ``K`` single ages, ``G`` grades of a level.
Population ``(..., Y, U, K)`` follows :class:`forecast.stochastic.StochasticProjection.school_age`
(draws, years, units, kept ages).  Pupils are persons.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from forecast.enrollment import METHODS, forecast_ratios_by_backtest, project_pupils, to_long_table
from forecast.errors import ForecastError, Problem, raise_if_problems

MONTHS_CUTOFF_TO_CENSUS = 2  # 31 Aug/1 Sep school-age cut-off → 1 Nov census date
LEVEL_GRADES: dict[str, tuple[int, ...]] = {
    "kindergarten": (-3, -2, -1),
    "primary": (1, 2, 3, 4, 5, 6),
    "junior": (7, 8, 9),
    "senior": (10, 11, 12),
}
KINDERGARTEN_SECTORS = ("public", "private_inclusive", "private_other")
SENIOR_TRACKS = ("general", "vocational")


def school_age_of_grade(grade: int) -> int:
    """Age completed on 31 Aug of the children in ``grade`` (−3..−1 kindergarten, 1..12 school)."""
    grade = int(grade)
    if grade in (-3, -2, -1):
        return grade + 6
    if 1 <= grade <= 12:
        return grade + 5
    raise ForecastError("unknown grade", [Problem("grade", f"{grade}", "use −3..−1 (kindergarten) or 1..12")])


def weigh_school_age(population: np.ndarray, ages: Sequence[int], grades: Sequence[int],
                     months_after_cutoff: int = MONTHS_CUTOFF_TO_CENSUS, source: str = "population") -> np.ndarray:
    """School-age cohorts of ``grades`` from a census-date population.

    ``population``: ``(..., K)`` persons by completed age on 1 Nov, ages ``ages`` (consecutive single years);
    returns ``(..., len(grades))`` with cohort ``a = school_age_of_grade(g)`` estimated as
    ``(1 − m/12)·P[a] + (m/12)·P[a + 1]``, ``m = months_after_cutoff`` (2: 31 Aug → 1 Nov).
    """
    population = np.asarray(population, dtype=float)
    ages = [int(a) for a in ages]
    pos = {a: i for i, a in enumerate(ages)}
    need = sorted({school_age_of_grade(g) + d for g in grades for d in (0, 1)})
    missing = [a for a in need if a not in pos]
    if missing:
        raise ForecastError("population lacks school ages", [Problem(
            source, f"ages {missing} are missing (have {ages[0]}..{ages[-1]})",
            f"keep every age {need[0]}..{need[-1]} (e.g. kept_ages=range(0, {need[-1] + 1}))")])
    if population.shape[-1] != len(ages):
        raise ForecastError("population age axis does not match ages", [Problem(
            source, f"last axis {population.shape[-1]} != {len(ages)} ages", "pass the ages of the last axis")])
    w = months_after_cutoff / 12.0
    out = [(1 - w) * population[..., pos[school_age_of_grade(g)]] + w * population[..., pos[school_age_of_grade(g) + 1]]
           for g in grades]
    return np.stack(out, axis=-1)


def interpolate_path(points: Mapping[int, float], years: Sequence[int], name: str = "path") -> np.ndarray:
    """A parameter path over ``years`` from ``{year: value}`` points: linear between points, flat beyond."""
    if not points:
        raise ForecastError("empty path", [Problem(name, "no (year, value) points", "give at least one point")])
    xs = np.array(sorted(points), dtype=float)
    ys = np.array([points[int(x)] for x in xs], dtype=float)
    if not np.isfinite(ys).all():
        raise ForecastError("bad path", [Problem(name, f"non-finite values {dict(points)}", "use numbers")])
    return np.interp(np.asarray(years, dtype=float), xs, ys)


def _calibrate_rate_factors(cohorts: np.ndarray, rate0: float, base_pupils: np.ndarray | None) -> np.ndarray:
    """Per-grade factor ``w_g = base_pupils_g / (rate0 · Σ cohort_g(base))`` (ones without base pupils).
    ``cohorts``: ``(..., Y, U, G)``; the base year is index 0 of ``Y``, summed over units (mean over draws)."""
    n_g = cohorts.shape[-1]
    if base_pupils is None:
        return np.ones(n_g)
    base_cohort = cohorts[..., 0, :, :].sum(axis=-2).reshape(-1, n_g).mean(axis=0)
    base_pupils = np.asarray(base_pupils, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = base_pupils / (rate0 * base_cohort)
    if not np.isfinite(w).all():
        raise ForecastError("cannot calibrate to the base year", [Problem(
            "cohorts", f"base-year cohort {base_cohort.tolist()} has zeros", "supply a population with children")])
    return w


@dataclass
class KindergartenForecast:
    """``pupils``: ``(..., Y, U, 3)`` children in grades −3, −2, −1 by unit of residence;
    ``sector_shares``: ``(Y, 3)`` shares public / private inclusive / other private; ``rate_factors``: ``(3,)``
    base calibration (pupils per plan-GER-point of census cohort)."""

    pupils: np.ndarray
    sector_shares: np.ndarray
    rate_factors: np.ndarray

    def sector_pupils(self) -> np.ndarray:
        """Children by sector, all grades and units summed: ``(..., Y, 3)``."""
        return self.pupils.sum(axis=(-1, -2))[..., None] * self.sector_shares


def project_kindergarten(cohorts: np.ndarray, ger: np.ndarray, public_share: np.ndarray, inclusive_share: np.ndarray,
                         base_pupils: np.ndarray | None = None) -> KindergartenForecast:
    """Kindergarten children = cohort × GER(Y) × rate factor (per grade).

    ``cohorts``: ``(..., Y, U, 3)`` school-age cohorts of grades −3..−1; ``ger``, ``public_share``,
    ``inclusive_share``: ``(Y,)`` fractions (inclusive includes public, so ``inclusive ≥ public``);
    ``base_pupils``: ``(3,)`` district children by grade in the base year (index 0 of ``Y``) — when given, the
    per-grade rate factors reproduce them exactly.
    """
    cohorts = np.asarray(cohorts, dtype=float)
    ger, pub, inc = (np.asarray(x, dtype=float) for x in (ger, public_share, inclusive_share))
    problems = []
    n_y = cohorts.shape[-3]
    for name, arr in (("ger", ger), ("public_share", pub), ("inclusive_share", inc)):
        if arr.shape != (n_y,):
            problems.append(Problem(name, f"shape {arr.shape}, expected ({n_y},)", "one value per year"))
        elif ((arr < 0) | (arr > 1.2)).any():
            problems.append(Problem(name, f"values {arr.round(3).tolist()} out of range", "use fractions (0.912, not 91.2)"))
    if not problems and (inc + 1e-12 < pub).any():
        problems.append(Problem("inclusive_share", "below public_share in some years",
                                "inclusive (普惠) kindergartens include the public ones: inclusive ≥ public"))
    raise_if_problems(problems, "kindergarten inputs", ForecastError)
    w = _calibrate_rate_factors(cohorts, float(ger[0]), base_pupils)
    pupils = cohorts * ger[:, None, None] * w
    shares = np.stack([pub, inc - pub, 1 - inc], axis=-1)
    return KindergartenForecast(pupils=pupils, sector_shares=shares, rate_factors=w)


@dataclass
class SeniorForecast:
    """``pupils``: ``(..., Y, U, 3)`` grades 10..12 by unit of residence; ``track_shares``: ``(Y, 2)``
    general / vocational; ``rate_factors``: ``(3,)``."""

    pupils: np.ndarray
    track_shares: np.ndarray
    rate_factors: np.ndarray

    def track_pupils(self) -> np.ndarray:
        """Pupils by track (general, vocational), grades and units summed: ``(..., Y, 2)``."""
        return self.pupils.sum(axis=(-1, -2))[..., None] * self.track_shares


def project_senior(cohorts: np.ndarray, ger: np.ndarray, general_share: np.ndarray,
                   base_pupils: np.ndarray | None = None) -> SeniorForecast:
    """Senior pupils = cohort × gross enrollment rate (高中阶段毛入学率) × rate factor, split general/vocational.

    ``cohorts``: ``(..., Y, U, 3)`` school-age cohorts of grades 10..12 (ages 15–17); ``ger``,
    ``general_share``: ``(Y,)`` fractions; ``base_pupils``: ``(3,)`` district pupils by grade in the base year
    (reproduced exactly when given; vocational schools also recruit outside the district, so the rate factors
    can exceed 1).
    """
    cohorts = np.asarray(cohorts, dtype=float)
    ger, gen = np.asarray(ger, dtype=float), np.asarray(general_share, dtype=float)
    n_y = cohorts.shape[-3]
    problems = [Problem(n, f"shape {a.shape}, expected ({n_y},) fractions", "one fraction per year")
                for n, a in (("ger", ger), ("general_share", gen)) if a.shape != (n_y,) or (a < 0).any() or (a > 1.2).any()]
    if gen.shape == (n_y,) and (gen > 1).any():
        problems.append(Problem("general_share", "above 1", "a share of pupils in general senior schools"))
    raise_if_problems(problems, "senior inputs", ForecastError)
    w = _calibrate_rate_factors(cohorts, float(ger[0]), base_pupils)
    pupils = cohorts * ger[:, None, None] * w
    return SeniorForecast(pupils=pupils, track_shares=np.stack([gen, 1 - gen], axis=-1), rate_factors=w)


@dataclass
class CompulsoryForecast:
    """Primary and junior (grades 1..9).

    ``pupils``: ``(..., Y, U, 9)`` by unit of residence; ``district``: ``(..., Y, 9)`` district totals;
    ``entry_ratio``: grade-1 pupils per grade-1 cohort (base year); ``gpr``: ``(..., Y, 9)`` the progression
    ratios applied in each year (row 0 and column 0 unused: NaN), consolidation adjustment included.
    """

    pupils: np.ndarray
    district: np.ndarray
    entry_ratio: float
    gpr: np.ndarray


def project_compulsory(cohorts: np.ndarray, base_pupils: np.ndarray, gpr: np.ndarray,
                       consolidation: np.ndarray, entry_ratio: float | None = None) -> CompulsoryForecast:
    """Grades 1..9 from projected cohorts, base-year pupils, GPRs and the consolidation-rate path.

    ``cohorts``: ``(..., Y, U, 9)`` school-age cohorts of grades 1..9 (index 0 of ``Y`` = base year);
    ``base_pupils``: ``(9,)`` district pupils by grade in the base year; ``gpr``: ``(9,)`` or ``(..., Y − 1, 9)``
    progression ratios for the years after the base (column 0 ignored; leading axes broadcast with the
    cohorts', e.g. :func:`compute_cohort_gpr` per draw); ``consolidation``: ``(Y,)`` 巩固率
    path as fractions; ``entry_ratio``: grade-1 pupils per grade-1 cohort (default: calibrated on the base
    year).  District grade ``g`` in year ``t`` = ``D[g−1, t−1] × gpr[t, g] × (c[t]/c[0])^(1/8)``; grade 1 =
    ``entry_ratio × Σ_u cohort``; units get the district total in proportion to their cohort.
    """
    cohorts = np.asarray(cohorts, dtype=float)
    base_pupils = np.asarray(base_pupils, dtype=float)
    consolidation = np.asarray(consolidation, dtype=float)
    n_y, n_u, n_g = cohorts.shape[-3:]
    gpr = np.asarray(gpr, dtype=float)
    if gpr.ndim == 1:
        gpr = np.broadcast_to(gpr, (n_y - 1, n_g))
    problems = []
    if n_g != 9 or base_pupils.shape != (9,):
        problems.append(Problem("cohorts/base_pupils", f"{n_g} cohort grades, base {base_pupils.shape}", "grades 1..9"))
    if gpr.shape[-2:] != (n_y - 1, n_g):
        problems.append(Problem("gpr", f"shape {gpr.shape}", f"(9,) or ({n_y - 1}, 9)"))
    if consolidation.shape != (n_y,) or (consolidation <= 0).any() or (consolidation > 1).any():
        problems.append(Problem("consolidation", f"{consolidation.round(4).tolist()}", f"({n_y},) fractions in (0, 1]"))
    raise_if_problems(problems, "compulsory-level inputs", ForecastError)
    district_cohort = cohorts.sum(axis=-2)  # (..., Y, 9)
    if entry_ratio is None:
        base_c1 = district_cohort[..., 0, 0].mean()
        entry_ratio = float(base_pupils[0] / base_c1)
    adj = (consolidation[1:] / consolidation[0]) ** (1.0 / 8.0)  # (Y-1,)
    ratios = np.array(gpr, dtype=float)
    ratios[..., 1:] = ratios[..., 1:] * adj[:, None]
    ratios[..., 0] = entry_ratio
    lead = np.broadcast_shapes(district_cohort.shape[:-2], ratios.shape[:-2])
    driver = district_cohort[..., 1:, 0][..., None, :]  # (..., 1, Y-1)
    future = project_pupils(np.broadcast_to(base_pupils, lead + (1, n_g)), driver, ratios[..., None, :, :])[..., 0, :, :]
    district = np.concatenate([np.broadcast_to(base_pupils, lead + (1, n_g)), future], axis=-2)  # (..., Y, 9)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(district_cohort[..., None, :] > 0, cohorts / district_cohort[..., None, :], 1.0 / n_u)
    pupils = district[..., None, :] * share
    gpr_out = np.full(ratios.shape[:-2] + (n_y, n_g), np.nan)
    gpr_out[..., 1:, 1:] = ratios[..., 1:]
    return CompulsoryForecast(pupils=pupils, district=district, entry_ratio=entry_ratio, gpr=gpr_out)


def compute_cohort_gpr(cohorts: np.ndarray, base_pupils: np.ndarray) -> np.ndarray:
    """Progression ratios that follow the projected cohorts, ``(..., Y − 1, G)`` (column 0 NaN).

    ``cohorts``: ``(..., Y, U, G)`` (index 0 = base year); ``base_pupils``: ``(G,)``.  With the base-year
    enrollment ratios ``ER_g = pupils_g / cohort_g``, ``GPR_g(t) = (ER_g / ER_{g−1}) × C_g(t) / C_{g−1}(t−1)``
    (district cohorts ``C``): pupils keep the base year's ratio to their cohort, so the projected cohorts —
    with their migration (进城, 随迁, housing) — drive every grade.
    """
    district = np.asarray(cohorts, dtype=float).sum(axis=-2)  # (..., Y, G)
    base = np.asarray(base_pupils, dtype=float)
    base_c = district[..., 0, :].reshape(-1, district.shape[-1]).mean(axis=0)
    er = base / base_c
    with np.errstate(divide="ignore", invalid="ignore"):
        csr = district[..., 1:, 1:] / district[..., :-1, :-1]
    gpr = np.full(district.shape[:-2] + (district.shape[-2] - 1, district.shape[-1]), np.nan)
    gpr[..., 1:] = (er[1:] / er[:-1]) * csr
    return gpr


def forecast_progression_ratios(history: np.ndarray, horizon: int, *, methods: Sequence[str] = METHODS,
                                default_method: str = "mean3") -> tuple[np.ndarray, np.ndarray]:
    """GPRs for ``horizon`` years from a district history ``(Y_h, G)`` of pupils by grade (consecutive years).

    Each grade's GPR series is carried forward by the method its own rolling-origin backtest prefers.
    Returns ``(gpr (horizon, G) with column 0 NaN, methods (G,) names; column 0 "")``.
    """
    history = np.asarray(history, dtype=float)
    n_y, n_g = history.shape
    if n_y < 2:
        raise ForecastError("history too short", [Problem("history", f"{n_y} years", "supply two or more years")])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = history[1:, 1:] / history[:-1, :-1]  # (Y_h-1, G-1)
    fc, choice, _ = forecast_ratios_by_backtest(ratios.T, horizon, methods=methods, default_method=default_method)
    gpr = np.full((horizon, n_g), np.nan)
    gpr[:, 1:] = fc.T
    names = np.array([""] + [tuple(methods)[c] for c in choice], dtype=object)
    return gpr, names


@dataclass
class LevelForecast:
    """Pupils by unit of residence for all levels.

    ``years`` ``(Y,)``; ``grades`` ``(15,)`` = −3, −2, −1, 1..12; ``levels`` ``(15,)`` level of each grade;
    ``pupils`` ``(..., Y, U, 15)``; the level results (kindergarten sectors, senior tracks, GPRs) are kept
    in ``parts``.
    """

    years: np.ndarray
    grades: np.ndarray
    levels: np.ndarray
    pupils: np.ndarray
    parts: dict = field(default_factory=dict)

    def level_totals(self) -> np.ndarray:
        """Pupils by level ``(..., Y, 4)`` in the order of :data:`LEVEL_GRADES` (units and grades summed)."""
        total = self.pupils.sum(axis=-2)
        return np.stack([total[..., np.isin(self.grades, g)].sum(axis=-1) for g in LEVEL_GRADES.values()], axis=-1)

    def to_long_table(self, unit_codes: Sequence[str], scenario: str = "", quantiles: Sequence[float] | None = None,
                      draw_axis: bool | None = None) -> pd.DataFrame:
        """Long table ``scenario, year, level, grade, unit_code, quantile, pupils``: quantiles over the leading
        draw axis when ``pupils`` has one (``(D, Y, U, G)``), else the point values (quantile ``"point"``)."""
        from forecast.stochastic import QUANTILES, calculate_quantiles

        values = self.pupils
        if values.ndim == 4:
            q = tuple(quantiles) if quantiles is not None else QUANTILES
            values = calculate_quantiles(values, q, axis=0)
            labels = list(q)
        else:
            values, labels = values[None], ["point"]
        return to_long_table(values, years=self.years, grades=self.grades, keys=unit_codes, key_name="unit_code",
                             level=list(self.levels), scenario=scenario, quantiles=labels)


@dataclass(frozen=True)
class LevelPaths:
    """Scenario parameter paths ``{year: fraction}`` (linear between points, flat beyond).

    Defaults are the plan's (2020 → 2025): 学前三年毛入园率 91.2 % → 98 %; public share of kindergarten children
    54.1 % → 65 %; 普惠率 96 % → 98 %; 九年义务教育巩固率 98.5 % → 99 %; 高中阶段毛入学率 99.2 % → 99.5 %;
    general senior share 2.5/4.2 → 2.7/4.6 (专栏2 在校学生数).
    """

    kindergarten_ger: Mapping[int, float] = field(default_factory=lambda: {2020: 0.912, 2025: 0.98})
    kindergarten_public_share: Mapping[int, float] = field(default_factory=lambda: {2020: 0.541, 2025: 0.65})
    kindergarten_inclusive_share: Mapping[int, float] = field(default_factory=lambda: {2020: 0.96, 2025: 0.98})
    consolidation: Mapping[int, float] = field(default_factory=lambda: {2020: 0.985, 2025: 0.99})
    senior_ger: Mapping[int, float] = field(default_factory=lambda: {2020: 0.992, 2025: 0.995})
    senior_general_share: Mapping[int, float] = field(default_factory=lambda: {2020: 2.5 / 4.2, 2025: 2.7 / 4.6})


def forecast_levels(population: np.ndarray, ages: Sequence[int], years: Sequence[int], *,
                    compulsory_history: np.ndarray, base_pupils: Mapping[int, float],
                    paths: LevelPaths = LevelPaths(), methods: Sequence[str] = METHODS,
                    progression: str = "cohort") -> LevelForecast:
    """All levels by unit of residence.

    ``population``: ``(..., Y, U, K)`` persons on 1 Nov of ``years`` (index 0 = base year, e.g. 2020) by
    completed age ``ages`` (must include 3..18); ``compulsory_history``: ``(Y_h, 9)`` district pupils of
    grades 1..9 for consecutive school years ending in the base year; ``base_pupils``: ``{grade: pupils}``
    district pupils in the base year for grades −3..−1 and 10..12 (grades 1..9 are taken from the history's
    last row).  ``progression`` picks the grade-progression ratios of grades 2..9: ``"cohort"``
    (:func:`compute_cohort_gpr`: base-year enrollment ratios × projected cohort change, so the population
    projection's migration drives pupils) or ``"history"`` (:func:`forecast_progression_ratios`: the history's
    GPRs carried forward; they already contain the recent net migration of pupils, so use them with a
    population projection without migration or to compare).  Returns a :class:`LevelForecast`
    (pupils ``(..., Y, U, 15)``); ``parts["gpr_methods"]`` names the smoothing method of each history GPR.
    """
    years = np.asarray(years)
    hist = np.asarray(compulsory_history, dtype=float)
    problems = []
    if progression not in ("cohort", "history"):
        problems.append(Problem("progression", f"{progression!r}", "use 'cohort' or 'history'"))
    if hist.ndim != 2 or hist.shape[1] != 9:
        problems.append(Problem("compulsory_history", f"shape {hist.shape}", "(years, 9): grades 1..9"))
    missing = [g for g in (-3, -2, -1, 10, 11, 12) if g not in base_pupils]
    if missing:
        problems.append(Problem("base_pupils", f"grades {missing} missing", "give base-year pupils for grades −3..−1, 10..12"))
    raise_if_problems(problems, "level inputs", ForecastError)
    n_y = years.size
    kg = weigh_school_age(population, ages, LEVEL_GRADES["kindergarten"])
    cg = weigh_school_age(population, ages, LEVEL_GRADES["primary"] + LEVEL_GRADES["junior"])
    sg = weigh_school_age(population, ages, LEVEL_GRADES["senior"])
    kind = project_kindergarten(kg, interpolate_path(paths.kindergarten_ger, years, "kindergarten_ger"),
                                interpolate_path(paths.kindergarten_public_share, years, "kindergarten_public_share"),
                                interpolate_path(paths.kindergarten_inclusive_share, years, "kindergarten_inclusive_share"),
                                base_pupils=np.array([base_pupils[g] for g in (-3, -2, -1)]))
    gpr_hist, chosen = forecast_progression_ratios(hist, n_y - 1, methods=methods)
    gpr = compute_cohort_gpr(cg, hist[-1]) if progression == "cohort" else gpr_hist
    comp = project_compulsory(cg, hist[-1], gpr, interpolate_path(paths.consolidation, years, "consolidation"))
    sen = project_senior(sg, interpolate_path(paths.senior_ger, years, "senior_ger"),
                         interpolate_path(paths.senior_general_share, years, "senior_general_share"),
                         base_pupils=np.array([base_pupils[g] for g in (10, 11, 12)]))
    grades = np.array([g for gs in LEVEL_GRADES.values() for g in gs])
    levels = np.array([lvl for lvl, gs in LEVEL_GRADES.items() for _ in gs], dtype=object)
    pupils = np.concatenate([kind.pupils, comp.pupils, sen.pupils], axis=-1)
    return LevelForecast(years=years, grades=grades, levels=levels, pupils=pupils,
                         parts={"kindergarten": kind, "compulsory": comp, "senior": sen, "gpr_history": gpr_hist,
                                "gpr_methods": chosen})


def summarise_history(history: pd.DataFrame, grades: Sequence[int], *, source: str = "enrollment_history") -> tuple[np.ndarray, np.ndarray]:
    """District pupils by year × grade ``(Y_h, G)`` (and the years) from ``school_id, year, grade, pupils``
    rows; every year from the first to the last must have every grade."""
    need = {"year", "grade", "pupils"}
    if need - set(history.columns):
        raise ForecastError("history table is missing columns", [Problem(
            source, f"missing {sorted(need - set(history.columns))}", "columns school_id, year, grade, pupils")])
    table = history[history["grade"].isin(grades)].groupby(["year", "grade"])["pupils"].sum().unstack("grade")
    years = np.arange(int(table.index.min()), int(table.index.max()) + 1)
    table = table.reindex(index=years, columns=list(grades))
    if table.isna().any().any():
        gaps = [f"{y}:{g}" for y in years for g in grades if pd.isna(table.loc[y, g])]
        raise ForecastError("history has gaps", [Problem(source, f"no pupils for {len(gaps)} year:grade cells",
                                                         "supply every grade for every year", ", ".join(gaps[:10]))])
    return table.to_numpy(dtype=float), years
