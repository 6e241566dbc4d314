"""The computational stages of a run, composing `forecast` and `layout` (arrays in the middle, tables at the edges).

Each ``run_*`` function takes the loaded :class:`~schoolplan.dataset.Dataset`, the scenario values and what the
previous stages produced, and returns a dataclass; nothing here writes files.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecast.ccmpp import ProjectionResult
from forecast.fertility import TfrPolicy
from forecast.migration import (calculate_age_schedule, calculate_rural_urban_migration, offset_internal_movers,
                                split_net_migration)
from forecast.population import ProjectionInputs, build_housing_migration, build_projection_inputs, project_inputs
from forecast.stochastic import QUANTILES, StochasticProjection, calculate_quantiles, project_draws
from forecast.errors import Problem
from layout.consolidation import GRADE_LEVEL
from schoolplan.dataset import Dataset

__all__ = ["PopulationStage", "run_population"]


@dataclass
class PopulationStage:
    inputs: ProjectionInputs
    deterministic: ProjectionResult      # population (T+1, U, 2, 101), with components
    draws: StochasticProjection           # school ages 0..17 by unit per draw, district by sex × age per draw
    years: np.ndarray                     # (T+1,) 1 Nov of each population index
    migration: dict[str, np.ndarray]      # component (T, U, 2, 101) net persons per step
    quantiles: tuple[float, ...] = QUANTILES


def build_migration(ds: Dataset, inputs: ProjectionInputs, sc: dict) -> dict[str, np.ndarray]:
    """Net migration components ``(T, U, 2, 101)``: external net migration, rural → urban moves, and the housing
    pipeline's occupants — a share from outside the district (in-migration), a share from rural units and the rest
    from other urban units (both moves within the district, conserving persons)."""
    m = sc["migration"]
    T = inputs.asfr.shape[0]
    U = len(inputs.unit_codes)
    urban = ds.units.set_index("unit_code").loc[inputs.unit_codes, "urban"].to_numpy(bool)
    township = ds.units.set_index("unit_code").loc[inputs.unit_codes, "township_code"].to_numpy()
    pop = inputs.population
    out: dict[str, np.ndarray] = {}
    # external: a district total per year split by a Rogers–Castro schedule, spread over units ∝ population
    total = np.full(T, float(m["net_external_per_year"]))
    unit_share = pop.sum(axis=(1, 2)) / pop.sum()
    out["external"] = split_net_migration(total[:, None] * unit_share[None, :], calculate_age_schedule(n_ages=pop.shape[-1]))
    rate = np.full(T, float(m["rural_urban_rate"]))
    out["rural_urban"] = calculate_rural_urban_migration(pop, urban, rate, group=township)
    if ds.housing_pipeline is not None and len(ds.housing_pipeline):
        hp = ds.housing_pipeline.assign(year=ds.housing_pipeline["year"] + int(m["housing_delay_years"]))
        movers = build_housing_migration(hp, inputs.unit_codes, inputs.fertility_years,
                                         persons_per_dwelling=m["housing_persons_per_dwelling"] * m["housing_occupancy"])
        ext, rural = m["housing_external_share"], m["housing_rural_share"]
        out["housing_external"] = movers * ext
        out["housing_from_rural"] = offset_internal_movers(movers * rural, pop, ~urban)
        out["housing_from_urban"] = offset_internal_movers(movers * max(0.0, 1 - ext - rural), pop, urban)
    else:
        out["housing_external"] = np.zeros((T, U, 2, pop.shape[-1]))
    return out


def run_population(ds: Dataset, sc: dict) -> PopulationStage:
    h, p = sc["horizon"], sc["population"]
    n_steps = int(h["end_year"] - h["base_year"])
    policies = []
    if p["tfr_policy_effect"] != 0:
        policies.append(TfrPolicy(p["tfr_policy_name"], float(p["tfr_policy_effect"]), int(p["tfr_policy_start_year"]),
                                  int(p["tfr_policy_ramp_years"])))
    inputs = build_projection_inputs(ds.base_population, ds.mortality, ds.asfr_schedule, ds.tfr, ds.srb,
                                     n_steps=n_steps, variant=p["tfr_variant"], policies=policies,
                                     unit_codes=list(ds.unit_codes))
    migration = build_migration(ds, inputs, sc)
    inputs = inputs.with_migration(sum(migration.values()))
    det = project_inputs(inputs, return_components=True)
    draws = project_draws(inputs.population, inputs.survival, inputs.asfr, inputs.srb, inputs.net_migration,
                          n_draws=int(p["draws"]), seed=int(p["seed"]), kept_ages=range(0, 19))
    return PopulationStage(inputs=inputs, deterministic=det, draws=draws, years=inputs.years, migration=migration)


# ---------------------------------------------------------------------------------------------- enrollment

GRADES = np.array([-3, -2, -1] + list(range(1, 13)))
LEVEL_OF = {**{g: "kindergarten" for g in (-3, -2, -1)}, **{g: "primary" for g in range(1, 7)},
            **{g: "junior" for g in range(7, 10)}, **{g: "senior" for g in range(10, 13)}}


@dataclass
class EnrollmentStage:
    years: np.ndarray                 # (Y,) school years (starting 1 Sep)
    grades: np.ndarray                # (15,) −3..−1, 1..12
    unit_pupils: np.ndarray           # (N, Y, U, 15) pupils by unit of residence, per population draw
    school_pupils: np.ndarray         # (N, Y, S, 15) pupils by school, per draw (attendance applied)
    school_quantiles: np.ndarray      # (Q, Y, S, 15)
    levels: object                    # forecast.levels.LevelForecast (parts: kindergarten sectors, senior tracks)
    attendance_info: dict
    rural_share: np.ndarray           # (Y, S, 15) share of a school's pupils who live in rural units (mean over draws)
    quantiles: tuple[float, ...] = QUANTILES

    def district_by_level(self) -> pd.DataFrame:
        """Long table year × level × quantile of district pupils (quantiles over draws of the level totals)."""
        rows = []
        tot = self.unit_pupils.sum(axis=2)  # (N, Y, G)
        for level in ("kindergarten", "primary", "junior", "senior"):
            sel = np.array([LEVEL_OF[int(g)] == level for g in self.grades])
            q = calculate_quantiles(tot[..., sel].sum(axis=-1), self.quantiles, axis=0)  # (Q, Y)
            for qi, p in enumerate(self.quantiles):
                for yi, y in enumerate(self.years):
                    rows.append((int(y), level, p, float(q[qi, yi])))
        return pd.DataFrame(rows, columns=["year", "level", "quantile", "pupils"])


def build_travel(ds: Dataset, sc: dict):
    """River-aware sparse travel costs from every unit to every school and candidate site (layout.travel)."""
    from layout.geo import project_to_metric
    from layout.travel import TravelParams, build_travel_costs

    t = sc["travel"]
    schools = ds.schools[["school_id", "level", "grade_min", "grade_max", "geometry"]].rename(columns={"school_id": "site_id"})
    schools["kind"] = "school:" + schools["level"]
    sites = schools[["site_id", "kind", "grade_min", "grade_max", "geometry"]]
    if ds.candidate_sites is not None:
        c = ds.candidate_sites.assign(kind="candidate:" + ds.candidate_sites["kind"], grade_min=0, grade_max=0)
        sites = pd.concat([sites, c[["site_id", "kind", "grade_min", "grade_max", "geometry"]]], ignore_index=True)
    import geopandas as gpd
    sites = gpd.GeoDataFrame(sites, geometry="geometry", crs=ds.schools.crs)
    groups = {k: (sites["kind"] == k).to_numpy() for k in sites["kind"].unique()}
    params = TravelParams(detour_factor=float(t["detour_factor"]), k_nearest=int(t["k_nearest"]))
    tc = build_travel_costs(project_to_metric(ds.units, "units"), project_to_metric(sites, "sites"),
                            rivers=None if ds.rivers is None else project_to_metric(ds.rivers, "rivers"),
                            bridges=None if ds.bridges is None else project_to_metric(ds.bridges, "bridges"),
                            district=project_to_metric(ds.district, "district"), params=params, site_groups=groups,
                            site_id="site_id")
    return tc, sites


def run_enrollment(ds: Dataset, sc: dict, pop: PopulationStage, travel, sites) -> EnrollmentStage:
    from forecast.attendance import build_gravity_seed, calibrate_attendance, shift_to_town, summarise_draws
    from forecast.levels import LevelPaths, forecast_levels, summarise_history

    e, a = sc["enrollment"], sc["attendance"]
    years = pop.years
    hist, _ = summarise_history(ds.enrollment_history, list(range(1, 10)))
    s = ds.schools
    base = {g: float(s[f"pupils_g{g}"].sum()) for g in (-3, -2, -1, 10, 11, 12)}
    h = sc["horizon"]["base_year"]
    paths = LevelPaths(
        kindergarten_ger={h: e["kindergarten_ger_base"], e["target_year"]: e["kindergarten_ger_target"]},
        kindergarten_public_share={h: e["kindergarten_public_share_base"], e["target_year"]: e["kindergarten_public_share_target"]},
        kindergarten_inclusive_share={h: e["kindergarten_inclusive_share_base"], e["target_year"]: e["kindergarten_inclusive_share_target"]},
        consolidation={h: e["consolidation_rate_base"], e["target_year"]: e["consolidation_rate_target"]},
        senior_ger={h: e["senior_ger_base"], e["target_year"]: e["senior_ger_target"]},
        senior_general_share={h: e["senior_general_share_base"], e["target_year"]: e["senior_general_share_target"]},
    )
    lf = forecast_levels(pop.draws.school_age, list(pop.draws.kept_ages), years, compulsory_history=hist,
                         base_pupils=base, paths=paths, progression=e["progression"])
    unit_pupils = lf.pupils  # (N, Y, U, 15)

    # attendance: per grade, a gravity seed over the schools serving it, balanced to the base-year rolls
    dist = travel.to_dense(np.inf)[:, : len(s)]  # units × schools (candidate columns follow)
    urban_u = ds.units["urban"].to_numpy(bool)
    town = s["urban"].to_numpy(bool)
    scale = {"kindergarten": a["gravity_scale_m_kindergarten"], "primary": a["gravity_scale_m_primary"],
             "junior": a["gravity_scale_m_junior"], "senior": a["gravity_scale_m_senior"]}
    rate = np.where(years > h, float(a["into_town_rate"]), 0.0)
    out = np.empty(unit_pupils.shape[:2] + (len(s), len(GRADES)))
    mean_pupils = unit_pupils.mean(axis=0)  # (Y, U, G)
    rural_part = np.zeros((len(years), len(s), len(GRADES)))
    total_part = np.zeros_like(rural_part)
    info = {}
    for gi, g in enumerate(GRADES):
        g = int(g)
        serves = (s["grade_min"].to_numpy() <= g) & (s["grade_max"].to_numpy() >= g)
        seed = build_gravity_seed(dist, float(scale[LEVEL_OF[g]]), serves=serves)
        att, fit = calibrate_attendance(unit_pupils[0, 0, :, gi], s[f"pupils_g{g}"].to_numpy(float), seed)
        info[g] = fit
        if 1 <= g <= 9 and rate.any():
            town_seed = build_gravity_seed(dist, float(scale[LEVEL_OF[g]]), serves=serves & town)
            att_y = shift_to_town(att, ~urban_u, town & serves, rate, town_seed=town_seed)  # (Y, U, S)
        else:
            att_y = np.broadcast_to(att, (len(years),) + att.shape)
        out[..., gi] = np.einsum("nyu,yus->nys", unit_pupils[..., gi], att_y, optimize=True)
        total_part[..., gi] = np.einsum("yu,yus->ys", mean_pupils[..., gi], att_y)
        rural_part[..., gi] = np.einsum("yu,yus->ys", mean_pupils[..., gi] * ~urban_u, att_y)
    q = summarise_draws(out, QUANTILES)
    rural_share = np.divide(rural_part, total_part, out=np.zeros_like(rural_part), where=total_part > 0)
    return EnrollmentStage(years=years, grades=GRADES, unit_pupils=unit_pupils, school_pupils=out, school_quantiles=q,
                           levels=lf, attendance_info=info, rural_share=rural_share)


# ---------------------------------------------------------------------------------------------- capacity (status quo)


@dataclass
class CapacityStage:
    report: object                 # layout.capacity.CapacityReport on median pupils, current classrooms
    report_p90: object             # the same on the 90th-percentile pupils
    townships: pd.DataFrame        # layout.capacity.summarise_townships(report)


def run_capacity(ds: Dataset, sc: dict, en: EnrollmentStage) -> CapacityStage:
    """Classes needed, classrooms short, 大班额 / 大校额 in every year if nothing changes (layout.capacity)."""
    from layout.capacity import assess_capacity, extract_school_arrays, summarise_townships
    from schoolplan.diagnosis import capacity_params

    arrays = extract_school_arrays(ds.schools, grades=[int(g) for g in GRADES])
    params = capacity_params(sc)
    qi = {q: i for i, q in enumerate(en.quantiles)}
    med = np.moveaxis(en.school_quantiles[qi[0.5]], 0, -1)  # (S, G, Y)
    p90 = np.moveaxis(en.school_quantiles[qi[0.9]], 0, -1)
    rep = assess_capacity(med, arrays, en.years, params=params)
    rep90 = assess_capacity(p90, arrays, en.years, params=params)
    return CapacityStage(report=rep, report_p90=rep90, townships=summarise_townships(rep))


# ---------------------------------------------------------------------------------------------- kindergartens


@dataclass
class KindergartenStage:
    plan: object        # layout.kindergarten.KindergartenPlan (design year)
    years: object       # layout.kindergarten.KindergartenYears (every year, median and p90)
    children: pd.DataFrame  # unit_code, year, quantile, children (aged 3–5, school-year cohorts)


def median_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of the median (quantile 0.5) of a long table projected per quantile; every row when it has none."""
    return frame[frame["quantile"] == 0.5] if "quantile" in frame.columns else frame


def children_3to5_table(ds: Dataset, pop: PopulationStage, en: EnrollmentStage) -> pd.DataFrame:
    """Children aged 3–5 by unit × school year (grades −3..−1 cohorts), median and 90th percentile over draws."""
    from forecast.levels import weigh_school_age

    cohorts = weigh_school_age(pop.draws.school_age, list(pop.draws.kept_ages), (-3, -2, -1)).sum(axis=-1)  # (N, Y, U)
    q = calculate_quantiles(cohorts, (0.5, 0.9), axis=0)
    frames = []
    for k, p in enumerate((0.5, 0.9)):
        Y, U = q[k].shape
        frames.append(pd.DataFrame({"unit_code": np.tile(ds.unit_codes, Y), "year": np.repeat(en.years, U),
                                    "quantile": p, "children": q[k].ravel()}))
    return pd.concat(frames, ignore_index=True)


_CONVERSION_ROUNDS = 6   # public-share top-ups over the years from the target year (see run_kindergartens)


def run_kindergartens(ds: Dataset, sc: dict, pop: PopulationStage, en: EnrollmentStage, travel, sites,
                      closed_schools: pd.DataFrame | None = None) -> KindergartenStage:
    """Site the new residential-complex kindergartens (layout.kindergarten) for the design year and follow every
    kindergarten and township through the horizon.  ``closed_schools`` (site_id, township_code, seats) are
    buildings freed by the consolidation that can become kindergartens."""
    from layout.kindergarten import convert_for_public_share, plan_kindergartens, project_kindergarten_years

    k = sc["kindergarten"]
    design = int(sc["horizon"]["design_year"])
    children = children_3to5_table(ds, pop, en)
    kg = ds.schools[ds.schools["level"] == "kindergarten"].drop(columns="geometry").copy()
    seats = (kg["classes_g-3"] * sc["class_size"]["kindergarten_small"] + kg["classes_g-2"] * sc["class_size"]["kindergarten_middle"]
             + kg["classes_g-1"] * sc["class_size"]["kindergarten_large"])
    kg["cost_to_inclusive_cny"] = np.where(kg["inclusive"], np.nan, seats * k["conversion_to_inclusive_cny_per_seat"])
    kg["cost_to_public_cny"] = np.where(kg["public"], np.nan, seats * k["conversion_to_public_cny_per_seat"])
    cands = ds.candidate_sites.drop(columns="geometry") if ds.candidate_sites is not None else pd.DataFrame(
        columns=["site_id", "kind", "township_code", "capacity_classes"])
    cands = cands[cands["kind"] == "kindergarten_complex"].copy()
    cands["seats"] = cands["capacity_classes"] * sc["class_size"]["kindergarten_middle"]
    cands["cost_cny"] = cands["seats"] * k["new_site_cny_per_seat"]
    cands["public"] = True
    cands["inclusive"] = True
    cands = cands[["site_id", "kind", "township_code", "seats", "cost_cny", "public", "inclusive"]]
    if closed_schools is not None and len(closed_schools):
        cs = closed_schools.assign(kind="closed_school", cost_cny=closed_schools["seats"] * k["closed_school_cny_per_seat"],
                                   public=True, inclusive=True)
        cands = pd.concat([cands, cs[cands.columns]], ignore_index=True)
    dist = travel.to_dense(np.inf)
    site_index = pd.Index(travel.site_ids)
    cols = list(kg["school_id"]) + list(cands["site_id"])
    known = site_index.get_indexer(cols)
    dense = np.full((len(ds.units), len(cols)), np.inf)
    dense[:, known >= 0] = dist[:, known[known >= 0]]
    if closed_schools is not None and len(closed_schools):
        # a closed school's building is where the school was
        for j, sid in enumerate(cols):
            if known[j] < 0 and sid.startswith("closed:"):
                dense[:, j] = dist[:, site_index.get_loc(sid.removeprefix("closed:"))]
    distance = pd.DataFrame(dense, index=ds.unit_codes, columns=cols)
    units = ds.units[["unit_code", "township_code", "urban"]]
    common = dict(enrollment_rate=float(k["enrollment_rate"]), urban_radius_m=float(k["urban_radius_m"]),
                  rural_radius_m=float(k["rural_radius_m"]))
    # the siting model steers children within townships; the per-year allocation (nearest seat) that the targets are
    # checked on cannot be steered, so the siting aims above the plan's shares by a margin; where the public share
    # still falls short in a year from the target year on, private kindergartens are bought into the public system
    # (cheapest per enrolled child in the worst such year first) and the years are projected again
    margin = float(k["share_margin"])
    plan_public = float(sc["enrollment"]["kindergarten_public_share_target"])
    targets = {"inclusive_share_min": min(1.0, float(sc["enrollment"]["kindergarten_inclusive_share_target"]) + margin),
               "public_share_min": min(1.0, plan_public + margin)}
    plan = plan_kindergartens(units, kg, cands, children, distance, year=design, quantile=0.5,
                              n_new_sites=int(k["new_sites"]), targets=targets, **common)
    target_year = int(sc["enrollment"]["target_year"])

    def project(p):
        return project_kindergarten_years(p, units, kg, cands, children, distance, years=[int(y) for y in en.years],
                                          open_year=design, target_year=target_year, **common)

    years = project(plan)
    for _ in range(_CONVERSION_ROUNDS):   # the worst year from the target year on, until every such year passes
        t = median_rows(years.targets)
        t = t[(t["variable"] == "public_share") & (t["year"] >= target_year)]
        if not len(t) or float(t["value"].min()) > plan_public:
            break
        worst = t.loc[t["value"].idxmin()]
        b = median_rows(years.by_kindergarten)
        b = b[b["year"] == worst["year"]]
        enrolled = b.set_index("facility_id")["enrolled"].reindex(kg["school_id"]).fillna(0.0).to_numpy()
        plan, took = convert_for_public_share(plan, enrolled, float(b["enrolled"].sum()), float(worst["value"]),
                                              plan_public + 1e-3, kg["cost_to_public_cny"].to_numpy(float),
                                              kg["cost_to_inclusive_cny"].to_numpy(float))
        if not took.size:
            break
        years = project(plan)
    return KindergartenStage(plan=plan, years=years, children=children)


# ---------------------------------------------------------------------------------------------- consolidation


@dataclass
class ConsolidationStage:
    result: object                 # layout.consolidation.ConsolidationResult for the scenario's target
    sites: pd.DataFrame            # site frame (school_id, township_code, urban, level, existing) in site order
    decisions: pd.DataFrame        # per-school decision table (+ names, townships)
    units: pd.DataFrame            # per unit × level: assigned school, travel, boarding, unserved
    flows: pd.DataFrame            # per unit × level (× grade) × school: pupils sent (the admission zones), distance
    travel: pd.DataFrame           # travel before/after by level × urban/rural
    diagnosis: pd.DataFrame        # shortfalls (empty when the target is met under the rules)
    message: str
    curve: pd.DataFrame            # trade-off: school count vs travel and cost
    demand_year: str
    equity: pd.DataFrame           # 校际差异系数 before/after per indicator × level


def consolidation_demand(sc: dict, en: EnrollmentStage, unit_codes) -> tuple[np.ndarray, str]:
    """Pupils by unit × grade 1..9 (or × primary/junior with ``classes_by_grade = false``) for the design year or the
    peak year over the horizon, at the scenario's demand quantile (quantile over draws per cell)."""

    c = sc["consolidation"]
    q = float(c["demand_quantile"])
    if c["classes_by_grade"]:  # pupils by grade 1..9: the model organises whole classes per grade
        per_draw = en.unit_pupils[..., np.isin(en.grades, range(1, 10))]  # (N, Y, U, 9)
    else:  # by level: classes counted per level (faster, but per-grade rounding can leave 大班额)
        prim = np.isin(en.grades, range(1, 7))
        jun = np.isin(en.grades, range(7, 10))
        per_draw = np.stack([en.unit_pupils[..., prim].sum(-1), en.unit_pupils[..., jun].sum(-1)], axis=-1)
    dem = calculate_quantiles(per_draw, (q,), axis=0)[0]  # (Y, U, 9 or 2)
    years = en.years
    if c["demand"] == "peak":
        # each unit × grade at its largest over the school years from the design year on: a layout that seats every
        # unit's peak (units grow and shrink in different years: housing completions, urbanisation, falling births)
        from_design = years >= sc["horizon"]["design_year"]
        span = years[from_design]
        return dem[from_design].max(axis=0), (f"peak of each unit and grade over school years {int(span[0])}-"
                                              f"{int(span[-1])} (quantile {q:g})")
    yi = int(np.flatnonzero(years == sc["horizon"]["design_year"])[0])
    return dem[yi], f"design school year {int(years[yi])} (quantile {q:g})"


def consolidation_rules_costs(sc: dict):
    """The scenario's consolidation rules and cost weights as layout.consolidation objects (capital annualised)."""
    from layout.consolidation import ConsolidationCosts, ConsolidationRules

    c, cs, sz, co = sc["consolidation"], sc["class_size"], sc["school_size"], sc["costs"]
    rules = ConsolidationRules(
        class_size_cap=(int(cs["primary"]), int(cs["junior"])),
        travel_limit_m=np.array([[c["travel_limit_m_urban_primary"], c["travel_limit_m_rural_primary"]],
                                 [c["travel_limit_m_urban_junior"], c["travel_limit_m_rural_junior"]]], dtype=float),
        max_pupils_per_school=float(sz["max_pupils"]), max_classes_single_level=int(sz["max_classes_primary"]),
        max_classes_nine_year=int(sz["max_classes_nine_year"]))
    r, n = float(co["discount_rate"]), int(co["annuity_years"])
    annuity = r / (1 - (1 + r) ** -n) if r > 0 else 1.0 / n
    costs = ConsolidationCosts(
        travel_cny_per_pupil_km_year=(float(co["travel_cny_per_pupil_km_year"]),) * 2,
        classroom_cost_cny=float(co["classroom_cny"]), new_school_fixed_cny=float(co["new_school_cny"]),
        new_school_per_classroom_cny=0.0, boarding_bed_cost_cny=float(co["boarding_bed_cny"]),
        running_cost_cny_per_year=float(co["running_cny_per_school_year"]), annuity_factor=annuity)
    return rules, costs


def _curve_table(problem, targets: list[int], time_limit_s: float, mip_rel_gap: float) -> pd.DataFrame:
    """The trade-off table of :func:`layout.consolidation.tradeoff_curve` (run in a worker process)."""
    from layout.consolidation import tradeoff_curve
    from layout.milp import silence_highs_banner

    silence_highs_banner()   # the worker is a process of its own: keep the run's output clean there too

    table, _ = tradeoff_curve(problem, targets, rule="eq", time_limit_s=time_limit_s, mip_rel_gap=mip_rel_gap)
    return table


def _start_curve(problem, targets: list[int], time_limit_s: float, mip_rel_gap: float):
    """(executor, future) of the trade-off curve in one worker process ("spawn": HiGHS's threads do not survive a
    fork).  The computation is the same as in this process, so the table does not depend on where it ran."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ex = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    return ex, ex.submit(_curve_table, problem, targets, time_limit_s, mip_rel_gap)


def run_consolidation(ds: Dataset, sc: dict, en: EnrollmentStage, travel) -> ConsolidationStage:
    from layout.consolidation import build_sites_from_frames, diagnose, prepare_consolidation, solve_consolidation
    from layout.equity import assess_equity, compare_equity, merge_schools_frame
    from layout.geo import extract_point_xy, label_river_sides, project_to_metric

    c = sc["consolidation"]
    rules, costs = consolidation_rules_costs(sc)
    schools = ds.schools.drop(columns="geometry")
    must_keep = set(c["must_keep"])
    unknown = must_keep - set(schools["school_id"])
    if unknown:
        from schoolplan.errors import ScenarioError
        raise ScenarioError("consolidation.must_keep names unknown schools",
                            [Problem("consolidation.must_keep", f"{sorted(unknown)[:5]}", "use school_id values from schools.geojson")])
    schools["must_keep"] = schools["must_keep"] | schools["school_id"].isin(must_keep)
    if c["keep_all_schools"]:
        schools["must_keep"] = True
    cands = None
    if ds.candidate_sites is not None and c["allow_new_schools"]:
        cands = ds.candidate_sites.drop(columns="geometry")
    site_obj, site_frame = build_sites_from_frames(schools, cands, rules=rules, costs=costs,
                                                   max_expand_urban=int(c["max_expand_urban"]),
                                                   max_expand_rural=int(c["max_expand_rural"]),
                                                   teaching_points_count=bool(c["teaching_points_count"]))
    demand, demand_label = consolidation_demand(sc, en, ds.unit_codes)
    col = pd.Index(travel.site_ids).get_indexer(site_frame["school_id"])
    dist = travel.to_dense(np.inf)[:, col]
    urban = ds.units["urban"].to_numpy(bool)
    # river sides: a bank with pupils keeps at least one school of each level
    district = project_to_metric(ds.district, "district")
    rivers = list(project_to_metric(ds.rivers, "rivers").geometry) if ds.rivers is not None else []
    unit_side = label_river_sides(extract_point_xy(project_to_metric(ds.units, "units"), "units"), district, rivers)
    pts = pd.concat([ds.schools[["school_id", "geometry"]],
                     ds.candidate_sites[["site_id", "geometry"]].rename(columns={"site_id": "school_id"})
                     if ds.candidate_sites is not None else ds.schools[["school_id", "geometry"]].iloc[:0]])
    pts = pts.set_index("school_id").loc[site_frame["school_id"]]
    import geopandas as gpd
    site_xy = extract_point_xy(project_to_metric(gpd.GeoDataFrame(pts.reset_index(), geometry="geometry", crs=ds.schools.crs), "sites"),
                               "sites", lonlat_columns=None)
    site_side = label_river_sides(site_xy, district, rivers)
    problem = prepare_consolidation(demand, dist, urban, site_obj, rules=rules, costs=costs,
                                    unit_component=unit_side, site_component=site_side, k_nearest=int(c["k_nearest"]))
    target = int(sc["targets"]["compulsory_schools"])
    rule = "le" if c["rule"] == "at_most" else "eq"
    if c["keep_all_schools"]:  # every school stays; new sites may still open where pupils cannot be seated
        counted = site_obj.counts_toward_target if site_obj.counts_toward_target is not None else np.ones(site_obj.n_sites, bool)
        target, rule = int(np.asarray(counted, bool).sum()), "le"
    curve_job = None
    if c["tradeoff_targets"] and not c["keep_all_schools"]:
        # the curve counts classes per level (the layout stage of the per-grade model): school counts ranked by
        # travel and cost; the chosen layout below has whole classes per grade.  HiGHS's MILP search runs on one
        # core, so the curve is solved in a second process on the other core while the layout is solved here
        from layout.consolidation import level_problem
        curve_job = _start_curve(level_problem(problem), [int(t) for t in c["tradeoff_targets"]],
                                 float(c["tradeoff_time_limit_s"]), float(c["tradeoff_mip_rel_gap"]))
    try:
        res = solve_consolidation(problem, target, rule=rule, time_limit_s=float(c["time_limit_s"]),
                                  mip_rel_gap=float(c["mip_rel_gap"]))
        curve = curve_job[1].result() if curve_job is not None else pd.DataFrame()
    finally:
        if curve_job is not None:
            curve_job[0].shutdown(wait=True, cancel_futures=True)
    names = ds.schools.set_index("school_id")["name"]
    tnames = ds.township_names()
    decisions = res.site_table(site_frame["school_id"].to_numpy())
    decisions.insert(1, "name", decisions["school_id"].map(names).fillna("candidate site (synthetic)"))
    decisions.insert(2, "level", site_frame["level"].to_numpy())
    decisions.insert(3, "township_code", site_frame["township_code"].to_numpy())
    decisions.insert(4, "township", site_frame["township_code"].map(tnames).to_numpy())
    units = res.unit_table(ds.unit_codes, site_frame["school_id"].to_numpy())
    diag, msg = diagnose(res, unit_codes=ds.unit_codes, unit_township=ds.units["township_code"].to_numpy(),
                         site_ids=site_frame["school_id"].to_numpy(), site_township=site_frame["township_code"].to_numpy())
    # 校际差异系数 before and after: closed schools merged into their receiving school
    closed = decisions[(decisions["decision"] == "close") & decisions["receiving_school_id"].notna()]
    receiver = dict(zip(closed["school_id"], closed["receiving_school_id"]))
    receiver = {k: v for k, v in receiver.items() if v in set(ds.schools["school_id"])}
    before = assess_equity(ds.schools.drop(columns="geometry"))
    after = assess_equity(merge_schools_frame(ds.schools.drop(columns="geometry"), receiver))
    equity = compare_equity(before, after)
    flows = res.flow_table(ds.unit_codes, site_frame["school_id"].to_numpy())
    return ConsolidationStage(result=res, sites=site_frame, decisions=decisions, units=units, flows=flows,
                              travel=res.travel_table(),
                              diagnosis=diag, message=msg, curve=curve, demand_year=demand_label, equity=equity)


# ---------------------------------------------------------------------------------------------- the planned layout


@dataclass
class PlanLayout:
    """Pupils per school × grade × year with the consolidation applied from the design year on (each cohort stays
    at the school it was zoned to in the design year; later intakes are zoned as the design year's grade 1 / 7).

    ``site_ids`` (P,): every existing school followed by the candidate sites the plan opens; ``pupils`` /
    ``pupils_p90`` (P, 15, Y) and ``rural_share`` (P, 15, Y); ``open`` (P, Y); ``classrooms`` (P, Y) after
    expansions; ``report`` / ``report_p90``: layout.capacity.CapacityReport of this layout with classes organised
    under the cap where classrooms allow (``large_classes`` = 大班额 where they do not); ``unserved`` (Y, 2)
    primary/junior pupils the layout cannot seat."""

    site_ids: np.ndarray
    township_code: np.ndarray
    levels: np.ndarray
    pupils: np.ndarray
    pupils_p90: np.ndarray
    rural_share: np.ndarray
    open: np.ndarray
    classrooms: np.ndarray
    boarding_beds: np.ndarray
    report: object
    report_p90: object
    unserved: np.ndarray


def _compulsory_shares(co: ConsolidationStage, n_units: int, n_sites: int) -> np.ndarray:
    """(9, U, n_sites) share of each unit's pupils of grade 1..9 at each consolidation site (per-grade flows carry
    their grade; per-level flows give every grade of the level the level's share)."""
    f = co.result.flows
    p = co.result.problem
    shares = np.zeros((len(GRADE_LEVEL), n_units, n_sites))
    u, s, pupils = f["unit"].to_numpy(), f["site"].to_numpy(), f["pupils"].to_numpy()
    if "grade" in f:
        dem = p.demand_by_grade.T  # (9, U)
        np.add.at(shares, (f["grade"].to_numpy() - 1, u, s), pupils)
    else:
        dem = p.demand.T[GRADE_LEVEL]  # (9, U): each grade of a level takes the level's share
        for gi, lv in enumerate(GRADE_LEVEL):
            m = f["level"].to_numpy() == lv
            np.add.at(shares[gi], (u[m], s[m]), pupils[m])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(dem[:, :, None] > 0, shares / dem[:, :, None], 0.0)


def organise_classes(pupils: np.ndarray, caps: np.ndarray, classrooms: np.ndarray) -> np.ndarray:
    """Classes per school × grade × year ``(P, G, Y)`` as a school would organise them: every grade with pupils gets
    one class, then classrooms go one at a time to the grade whose classes are largest relative to its cap, until a
    grade reaches ceil(pupils / cap) or the classrooms run out (this minimises the largest class for the rooms).
    ``pupils`` (P, G, Y), ``caps`` (G,), ``classrooms`` (P, Y)."""
    p = np.round(np.asarray(pupils, float), 6)
    need = np.ceil(p / caps[None, :, None])
    classes = (p > 0).astype(float)
    rooms_left = np.maximum(np.asarray(classrooms, float) - classes.sum(axis=1), 0.0)  # (P, Y)
    for _ in range(int(need.sum(axis=1).max(initial=0)) + 1):
        room = (classes < need)
        if not (room.any(axis=1) & (rooms_left > 0)).any():
            break
        size = np.where(room, p / np.maximum(classes, 1) / caps[None, :, None], -np.inf)
        g = np.argmax(size, axis=1)  # (P, Y)
        give = (rooms_left > 0) & room.any(axis=1)
        P_idx, Y_idx = np.nonzero(give)
        classes[P_idx, g[P_idx, Y_idx], Y_idx] += 1
        rooms_left[P_idx, Y_idx] -= 1
    return classes.astype(np.int64)


def run_plan_layout(ds: Dataset, sc: dict, en: EnrollmentStage, co: ConsolidationStage) -> PlanLayout:
    from layout.capacity import SchoolArrays, assess_capacity, compute_class_caps, count_oversized_classes
    from schoolplan.diagnosis import capacity_params

    s = ds.schools
    S = len(s)
    Y = len(en.years)
    design = int(sc["horizon"]["design_year"])
    res = co.result
    site_ids = co.sites["school_id"].to_numpy()
    opened_new = [i for i, d in enumerate(res.decision) if d == "open" and not res.problem.sites.existing[i]]
    ids = np.concatenate([s["school_id"].to_numpy(), site_ids[opened_new]])
    P = len(ids)
    pos = pd.Index(ids)
    qi = {q: i for i, q in enumerate(en.quantiles)}
    base_med = np.moveaxis(en.school_quantiles[qi[0.5]], 0, -1)  # (S, G, Y)
    base_p90 = np.moveaxis(en.school_quantiles[qi[0.9]], 0, -1)
    pupils = np.zeros((P, len(GRADES), Y))
    pupils90 = np.zeros_like(pupils)
    rural = np.zeros_like(pupils)
    pupils[:S], pupils90[:S] = base_med, base_p90
    rural[:S] = np.moveaxis(en.rural_share, 0, -1)
    open_ = np.ones((P, Y), bool)
    after = en.years >= design
    # compulsory grades from the design year on: units' pupils go where the plan sends them
    shares = _compulsory_shares(co, len(ds.units), len(site_ids))  # (9, U, n_sites)
    site_to_p = pos.get_indexer(site_ids)  # -1 for candidates not opened
    ok = site_to_p >= 0
    urban_u = ds.units["urban"].to_numpy(bool)
    unserved = np.zeros((Y, 2))
    # pupils stay at the school their cohort was zoned to in the design year as they move up; later intakes (grade 1,
    # grade 7) are zoned as the design year's intake
    since = en.years[after] - design  # (Ya,)
    for gi, g in enumerate(GRADES):
        if not 1 <= g <= 9:
            continue
        lv = 0 if g <= 6 else 1
        cohort = np.maximum(g - since, 1 if lv == 0 else 7)  # (Ya,) grade of the cohort in the design year
        sh = shares[cohort - 1]  # (Ya, U, n_sites)
        q = calculate_quantiles(en.unit_pupils[..., gi], (0.5, 0.9), axis=0)  # (2, Y, U)
        for k, arr in enumerate((pupils, pupils90)):
            at_site = np.einsum("yu,yus->ys", q[k][after], sh)  # (Ya, n_sites)
            tmp = np.zeros((P, after.sum()))
            np.add.at(tmp, site_to_p[ok], at_site[:, ok].T)
            arr[:, gi, after] = tmp
            if k == 0:
                unserved[after, lv] += q[0][after].sum(axis=1) - at_site.sum(axis=1)
        mean_u = en.unit_pupils[..., gi].mean(axis=0)[after]  # (Ya, U)
        tot = np.einsum("yu,yus->ys", mean_u, sh)
        rur = np.einsum("yu,yus->ys", mean_u * ~urban_u, sh)
        tmp_t = np.zeros((P, after.sum()))
        tmp_r = np.zeros((P, after.sum()))
        np.add.at(tmp_t, site_to_p[ok], tot[:, ok].T)
        np.add.at(tmp_r, site_to_p[ok], rur[:, ok].T)
        rural[:, gi, after] = np.divide(tmp_r, tmp_t, out=np.zeros_like(tmp_t), where=tmp_t > 0)
    # open / closed and classrooms
    decision = dict(zip(site_ids, res.decision))
    added = dict(zip(site_ids, res.classrooms_added))
    closed = np.array([decision.get(i) == "close" for i in ids])
    open_[closed[:, None] & after[None, :]] = False
    new = np.zeros(P, bool)
    new[S:] = True
    open_[new[:, None] & ~after[None, :]] = False
    classrooms_base = np.concatenate([s["classrooms"].to_numpy(), res.problem.sites.classrooms[opened_new]]).astype(float)
    extra = np.array([added.get(i, 0.0) for i in ids])
    classrooms = np.where(after[None, :], classrooms_base[:, None] + extra[:, None], classrooms_base[:, None]) * open_
    beds_base = np.concatenate([s["boarding_beds"].to_numpy(), np.zeros(len(opened_new))]).astype(float)
    beds_added = dict(zip(site_ids, res.beds_added))
    beds = np.where(after[None, :], beds_base[:, None] + np.array([beds_added.get(i, 0.0) for i in ids])[:, None],
                    beds_base[:, None]) * open_
    # capacity of this layout: classes under the cap where classrooms allow, 大班额 where they do not
    levels = np.concatenate([s["level"].to_numpy(), np.array(["nine_year"] * len(opened_new), dtype=object)])
    gmin = np.concatenate([s["grade_min"].to_numpy(), np.ones(len(opened_new), int)])
    gmax = np.concatenate([s["grade_max"].to_numpy(), np.full(len(opened_new), 9)])
    town = np.concatenate([s["township_code"].to_numpy(), co.sites.set_index("school_id").loc[site_ids[opened_new], "township_code"].to_numpy()])
    params = capacity_params(sc)
    caps = compute_class_caps([int(g) for g in GRADES], params)
    reports = []
    for arr in (pupils, pupils90):
        classes = organise_classes(arr, caps, classrooms)
        arrays = SchoolArrays(school_id=ids, level=levels, grade_min=gmin, grade_max=gmax,
                              classrooms=classrooms[:, -1].astype(int), boarding_beds=beds[:, -1].astype(int),
                              township_code=town, urban=np.zeros(P, bool), grades=GRADES.copy(),
                              pupils=arr[:, :, 0], classes=classes[:, :, 0].astype(int))
        rep = assess_capacity(arr, arrays, en.years, current_classes=False, params=params)
        big, huge = count_oversized_classes(arr, classes.astype(np.int64), params)
        rep.large_classes, rep.super_large_classes = big, huge
        rep.classrooms_short = np.maximum(rep.classes_total - classrooms, 0).astype(int)
        reports.append(rep)
    return PlanLayout(site_ids=ids, township_code=town, levels=levels, pupils=pupils, pupils_p90=pupils90, rural_share=rural, open=open_,
                      classrooms=classrooms, boarding_beds=beds, report=reports[0], report_p90=reports[1], unserved=unserved)


# ---------------------------------------------------------------------------------------------- service radius


def run_service_radius(ds: Dataset, sc: dict, en: EnrollmentStage, travel) -> pd.DataFrame:
    """Pupils beyond the GB 50180 service radius of their nearest school (current layout), who therefore need
    transport or (rural) a boarding bed — by level × urban/rural × year (layout.catchment; median pupils)."""
    from layout.catchment import ServiceParams, assess_service_radius, assign_catchments, find_eligible_sites

    r = sc["service_radius"]
    n_sites = len(travel.site_ids)
    s = ds.schools.set_index("school_id")
    is_school = pd.Index(travel.site_ids).isin(s.index)
    gmin = np.full(n_sites, 99)
    gmax = np.full(n_sites, -99)
    idx = np.flatnonzero(is_school)
    gmin[idx] = s.loc[np.asarray(travel.site_ids)[idx], "grade_min"].to_numpy()
    gmax[idx] = s.loc[np.asarray(travel.site_ids)[idx], "grade_max"].to_numpy()
    grades = [int(g) for g in GRADES]
    eligible = find_eligible_sites(gmin, gmax, grades)
    catch = assign_catchments(travel, eligible, grades)
    med = np.median(en.unit_pupils, axis=0)  # (Y, U, G)
    params = ServiceParams(radius_urban_m={"kindergarten": r["urban_m_kindergarten"], "primary": r["urban_m_primary"],
                                           "junior": r["urban_m_junior"]},
                           radius_rural_m={"kindergarten": r["rural_m_kindergarten"], "primary": r["rural_m_primary"],
                                           "junior": r["rural_m_junior"]})
    rep = assess_service_radius(catch, np.transpose(med, (1, 2, 0)), ds.units["urban"].to_numpy(bool), en.years,
                                service=params)
    return rep.summary
