"""Writing a run's outputs for the three kinds of users (called inside the atomic writer of ``schoolplan.outputs``).

Planners: ``report.html`` (self-contained), ``plan_targets.csv`` and the long tables.  Facility teams: maps (PNG),
``map.html`` (browser map), ``layout.gpkg`` (GeoPackage for QGIS), ``school_decisions.csv``.  Finance officers:
``seat_demand.xlsx`` and ``seat_demand.csv`` with the unit costs beside the figures.
"""
from __future__ import annotations

import html

import geopandas as gpd
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from shapely.geometry import LineString

from schoolplan import tables
from schoolplan.charts import draw_enrollment, draw_pyramids, draw_tradeoff
from schoolplan.finance import unit_cost_table
from schoolplan.maps import draw_consolidation_map, draw_kindergarten_map
from schoolplan.report import Report
from schoolplan.validate import WGS84

__all__ = ["write_planner_outputs", "write_facility_outputs", "write_finance_outputs", "SYNTHETIC_NOTE"]

SYNTHETIC_NOTE = ("Data status: the 2020 census counts of Fuling (by sex × age, urban/rural) and the UN WPP rates are real. "
                  "The residential units below the district, the whole school and kindergarten inventory, its enrollment "
                  "history and the candidate sites are SYNTHETIC (no open list of Fuling's schools exists), calibrated to "
                  "the plan's 2020 totals. School-level results illustrate the method; they do not describe real schools.")


def _sites_gdf(res) -> gpd.GeoDataFrame:
    return res.sites  # site_id, kind, geometry (EPSG:4326)


def _unit_travel(res) -> pd.DataFrame:
    """Per unit: pupils' mean one-way travel before and after the consolidation (primary and junior pooled)."""
    co = res.consolidation
    r = co.result
    dem = r.problem.demand  # (U, 2)
    before_site = r.problem.before_site
    dist = r.problem.distance_m
    rows = np.arange(dem.shape[0])
    before = np.zeros_like(dem)
    for lv in range(2):
        s = before_site[:, lv]
        ok = s >= 0
        before[ok, lv] = dist[rows[ok], s[ok]]
    after = r.travel_m
    w = dem.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        b = np.where(w > 0, (before * dem).sum(1) / w, np.nan)
        a = np.where(w > 0, (np.nan_to_num(after) * dem).sum(1) / w, np.nan)
    return pd.DataFrame({"unit_code": res.dataset.unit_codes, "travel_before_m": b, "travel_after_m": a,
                         "travel_change_m": a - b})


# ---------------------------------------------------------------------------------------------- facility teams


def write_facility_outputs(w, res) -> None:
    name = res.scenario.name
    co, ds = res.consolidation, res.dataset
    dec = co.decisions.copy()
    dec.insert(0, "scenario", name)
    w.csv("school_decisions.csv", dec)
    w.csv("consolidation_units.csv", co.units.assign(scenario=name))
    w.csv("consolidation_flows.csv", co.flows.assign(scenario=name))
    w.csv("consolidation_travel.csv", co.travel.assign(scenario=name))
    w.csv("consolidation_diagnosis.csv", co.diagnosis.assign(scenario=name))
    w.csv("consolidation_costs.csv", co.result.costs.rename("value").rename_axis("term").reset_index().assign(scenario=name))
    if len(co.curve):  # solver timings go to the manifest, not the table (same inputs → same bytes)
        w.csv("tradeoff_curve.csv", co.curve.drop(columns=[c for c in co.curve.columns if "seconds" in c]).assign(scenario=name))
    w.csv("equity.csv", co.equity.assign(scenario=name))
    kp = res.kindergartens.plan
    w.csv("kindergarten_sites.csv", kp.sites.assign(scenario=name))
    w.csv("kindergarten_existing.csv", kp.kindergartens.assign(scenario=name))
    w.csv("kindergarten_by_year.csv", res.kindergartens.years.by_kindergarten.assign(scenario=name))
    w.csv("kindergarten_townships.csv", res.kindergartens.years.by_township.assign(scenario=name))
    ut = _unit_travel(res)
    sites = _sites_gdf(res)
    fig = draw_consolidation_map(ds, co.decisions, ut["travel_change_m"].fillna(0).to_numpy(), sites,
                                 f"Consolidation to {res.scenario['targets']['compulsory_schools']} compulsory schools, "
                                 f"{co.demand_year} — scenario {name}")
    w.figure("map_consolidation.png", fig)
    plt.close(fig)
    kunits = kp.units.assign(covered_share=np.divide(kp.units["covered_children"], kp.units["demand_children"],
                                                     out=np.full(len(kp.units), np.nan),
                                                     where=kp.units["demand_children"].to_numpy() > 0))
    fig = draw_kindergarten_map(ds, kunits, kp.sites, sites, f"Kindergarten plan {res.scenario['horizon']['design_year']}: "
                                f"{int(kp.sites['open'].sum())} new sites — scenario {name}")
    w.figure("map_kindergartens.png", fig)
    plt.close(fig)
    layers = _gpkg_layers(res, ut, kunits)
    path = w.path("layout.gpkg")
    for layer, gdf in layers.items():
        gdf.to_file(path, layer=layer, driver="GPKG", engine="pyogrio")
    _write_browser_map(w, layers, name)


def _gpkg_layers(res, ut: pd.DataFrame, kunits: pd.DataFrame) -> dict[str, gpd.GeoDataFrame]:
    ds, co = res.dataset, res.consolidation
    units = ds.units[["unit_code", "township_code", "urban", "geometry"]].merge(ut, on="unit_code", how="left")
    assigned = co.units.pivot_table(index="unit_code", columns="level", values="school_id", aggfunc="first")
    assigned.columns = [f"school_after_{c}" for c in assigned.columns]
    units = units.merge(assigned, left_on="unit_code", right_index=True, how="left")
    units = units.merge(kunits[["unit_code", "children_3to5", "covered_share"]], on="unit_code", how="left")
    sites = res.sites.set_index("site_id")
    dec = co.decisions.set_index("school_id")
    schools = ds.schools[["school_id", "name", "level", "township_code", "urban", "public", "classrooms", "geometry"]].copy()
    schools = schools.merge(dec[["decision", "classrooms_added", "pupils_after_primary", "pupils_after_junior",
                                 "receiving_school_id"]], left_on="school_id", right_index=True, how="left")
    schools["decision"] = schools["decision"].fillna("not in consolidation (kindergarten or senior)")
    cand = ds.candidate_sites[["site_id", "kind", "township_code", "capacity_classes", "geometry"]].copy() \
        if ds.candidate_sites is not None else None
    if cand is not None:
        cand = cand.merge(dec[["decision"]], left_on="site_id", right_index=True, how="left")
        kopen = res.kindergartens.plan.sites.set_index("site_id")["open"]
        cand["kindergarten_opened"] = cand["site_id"].map(kopen).astype("boolean").fillna(False).astype(bool)
    lines = []
    for sid, row in dec.iterrows():
        rec = row.get("receiving_school_id")
        if row["decision"] == "close" and isinstance(rec, str) and sid in sites.index and rec in sites.index:
            lines.append({"closed_school_id": sid, "receiving_school_id": rec, "share": row["receiving_share"],
                          "geometry": LineString([sites.geometry[sid], sites.geometry[rec]])})
    moves = gpd.GeoDataFrame(lines, geometry="geometry", crs=WGS84) if lines else gpd.GeoDataFrame(
        {"closed_school_id": [], "receiving_school_id": [], "share": []}, geometry=[], crs=WGS84)
    out = {"units": gpd.GeoDataFrame(units, geometry="geometry", crs=ds.units.crs),
           "schools": gpd.GeoDataFrame(schools, geometry="geometry", crs=ds.schools.crs),
           "closures": moves, "townships": ds.townships, "district": ds.district}
    if cand is not None:
        out["candidate_sites"] = gpd.GeoDataFrame(cand, geometry="geometry", crs=ds.candidate_sites.crs)
    if ds.rivers is not None:
        out["rivers"] = ds.rivers
    if ds.bridges is not None:
        out["bridges"] = ds.bridges
    return {k: v.to_crs(WGS84) for k, v in out.items()}


def _write_browser_map(w, layers: dict, name: str) -> None:
    import folium

    m = folium.Map(location=[29.70, 107.35], zoom_start=10, tiles="OpenStreetMap", control_scale=True)
    layers["units"].explore(m=m, name="units: travel change (m)", column="travel_change_m", cmap="RdYlGn_r",
                            style_kwds={"weight": 0.3, "fillOpacity": 0.55}, legend=True)
    layers["townships"].explore(m=m, name="townships (schematic)", style_kwds={"fill": False, "color": "#555555", "weight": 1})
    if "rivers" in layers:
        layers["rivers"].explore(m=m, name="rivers", color="#1565c0", style_kwds={"weight": 3})
    if "bridges" in layers:
        layers["bridges"].explore(m=m, name="bridges (schematic)", color="black", marker_kwds={"radius": 4})
    colors = {"keep": "green", "expand": "orange", "close": "red", "open": "purple"}
    s = layers["schools"]
    comp = s[s["decision"].isin(colors)]
    comp.explore(m=m, name="compulsory schools: decision (synthetic)", column="decision", cmap=list(colors.values()),
                 categories=list(colors), marker_kwds={"radius": 6}, tooltip=["school_id", "name", "decision", "classrooms_added"])
    kg = s[s["level"] == "kindergarten"]
    kg.explore(m=m, name="kindergartens (synthetic)", color="#f2a900", marker_kwds={"radius": 3}, show=False)
    layers["closures"].explore(m=m, name="closed → receiving school", color="#6d4c41", style_kwds={"weight": 1.5})
    if "candidate_sites" in layers:
        c = layers["candidate_sites"]
        if c["kindergarten_opened"].any():
            c[c["kindergarten_opened"]].explore(m=m, name="new kindergarten sites", color="purple", marker_kwds={"radius": 7})
    folium.LayerControl(collapsed=False).add_to(m)
    title = html.escape(f"schoolplan — {name}: consolidation and kindergarten plan (school inventory SYNTHETIC)")
    m.get_root().html.add_child(folium.Element(f'<h3 style="position:absolute;z-index:1000;left:60px;top:5px;'
                                               f'background:white;padding:4px">{title}</h3>'))
    m.save(str(w.path("map.html")))


# ---------------------------------------------------------------------------------------------- finance officers


def write_finance_outputs(w, res) -> None:
    name = res.scenario.name
    seat = res.seat_demand
    w.csv("seat_demand.csv", seat)
    uc = unit_cost_table(res.unit_costs)
    w.csv("unit_costs.csv", uc.assign(scenario=name))
    district = seat[seat["township_code"] == "district"].drop(columns=["township_code"])
    towns = seat[seat["township_code"] != "district"].copy()
    towns.insert(4, "township", towns["township_code"].map(res.dataset.township_names()))
    cons = res.consolidation.result.costs.rename("value").rename_axis("term").reset_index()
    cons["unit"] = np.where(cons["term"].str.contains("pupil_km"), "pupil-km per school day (one way)",
                            np.where(cons["term"].str.endswith("_cny_per_year"), "CNY per year",
                                     np.where(cons["term"].str.endswith("_cny"), "CNY", "count")))
    readme = pd.DataFrame({"note": [
        f"schoolplan — seat demand workbook, scenario {name}",
        SYNTHETIC_NOTE,
        "Sheets: district (by year × level), by_township, unit_costs (every unit cost used), consolidation (cost terms of "
        "the optimised layout), decisions (per school).",
        "Columns carry units in their names: pupils, seats (classrooms × class-size cap), classes_needed (ceil(pupils / cap) "
        "per grade), classrooms_short, new_floor_area_m2, boarding_pupils and boarding_beds_short (beds), teachers_needed "
        "(pupils / pupils per teacher), schools (open schools hosting the level), running_cost_cny (per year), "
        "capital_cost_cny (one-off, in the year a shortfall first appears).",
        "Pupils are medians over population draws; pupils_p90 is the 90th percentile (plan seats for it if under-provision "
        "is costly). From the design year on the figures are for the planned (consolidated) layout.",
    ]})
    with pd.ExcelWriter(w.path("seat_demand.xlsx"), engine="openpyxl") as xl:
        readme.to_excel(xl, sheet_name="README", index=False)
        district.to_excel(xl, sheet_name="district", index=False)
        towns.to_excel(xl, sheet_name="by_township", index=False)
        uc.to_excel(xl, sheet_name="unit_costs", index=False)
        cons.to_excel(xl, sheet_name="consolidation", index=False)
        res.consolidation.decisions.to_excel(xl, sheet_name="decisions", index=False)
        for ws in xl.book.worksheets:
            for col in ws.columns:
                width = max(len(str(c.value)) if c.value is not None else 0 for c in col[:60])
                ws.column_dimensions[col[0].column_letter].width = min(max(10, width + 2), 60)


# ---------------------------------------------------------------------------------------------- planners


def write_planner_outputs(w, res) -> None:
    name = res.scenario.name
    w.csv("plan_targets.csv", res.targets)
    rep = Report(f"schoolplan — scenario {name}")
    sc = res.scenario
    rep.note(SYNTHETIC_NOTE)
    rep.paragraph(sc["description"] or "")
    rep.heading("Scenario")
    params = [("horizon", f"{sc['horizon']['base_year']}–{sc['horizon']['end_year']}, design year {sc['horizon']['design_year']}"),
              ("fertility", f"UN WPP 2024 {sc['population']['tfr_variant']} variant scaled to Fuling; policy effect "
                            f"{sc['population']['tfr_policy_effect']:+.0%} from {sc['population']['tfr_policy_start_year']}"),
              ("migration", f"net external {sc['migration']['net_external_per_year']:,.0f}/yr; rural→urban "
                            f"{sc['migration']['rural_urban_rate']:.1%}/yr; housing pipeline delay {sc['migration']['housing_delay_years']} yr"),
              ("draws / seed", f"{sc['population']['draws']} / {sc['population']['seed']}"),
              ("进城上学 trend", f"{sc['attendance']['into_town_rate']:.1%} of rural attendance moves to town schools per year"),
              ("class-size caps", f"primary {sc['class_size']['primary']}, junior {sc['class_size']['junior']}"),
              ("compulsory school target", f"{sc['targets']['compulsory_schools']} ({sc['consolidation']['rule']}); "
                                           f"keep all schools: {sc['consolidation']['keep_all_schools']}"),
              ("new kindergarten sites", str(sc["kindergarten"]["new_sites"]))]
    rep.table(pd.DataFrame(params, columns=["parameter", "value"]))

    rep.heading("Plan targets (专栏2 and 专栏4)")
    tg = res.targets
    yrs = {sc["horizon"]["base_year"], sc["enrollment"]["target_year"], sc["horizon"]["design_year"], 2030, sc["horizon"]["end_year"]}
    show = tg[tg["year"].isin(yrs)].copy()
    show = show[~show["indicator"].str.startswith("inter-school CV") | show["year"].isin([sc["horizon"]["design_year"] - 1, sc["horizon"]["design_year"]])]
    show["value"] = show["value"].round(3)
    rep.paragraph("pass/fail against the plan where a target is due (from the target year on); info = compared only "
                  "(预期性 expected figures, or before the target is due); input = a scenario assumption, not a result. "
                  "The full table for every year is plan_targets.csv.", cls="small")
    rep.table(show[["year", "indicator", "indicator_cn", "level", "value", "unit", "target", "comparator", "status", "source"]],
              status_column="status")

    rep.heading("Population")
    pdist = tables.population_district_table(name, res.population)
    fig = draw_pyramids(pdist, years=(sc["horizon"]["base_year"], sc["horizon"]["design_year"], sc["horizon"]["end_year"]))
    rep.figure(fig, "Population pyramids, median projection (1 Nov).")
    plt.close(fig)
    tot = pdist[pdist["quantile"].isin([0.1, 0.5, 0.9])].groupby(["year", "quantile"])["persons"].sum().unstack("quantile")
    tot.columns = ["persons p10", "persons median", "persons p90"]
    rep.table(tot.reset_index().round(0))

    rep.heading("Enrollment by level")
    ed = tables.enrollment_district_table(name, res.enrollment)
    fig = draw_enrollment(ed)
    rep.figure(fig, "Pupils by level with 80 % and 90 % intervals over population draws.")
    plt.close(fig)
    e = ed[(ed["variable"] == "pupils") & ed["quantile"].isin([0.1, 0.5, 0.9]) & ed["year"].isin(sorted(yrs))]
    piv = e.pivot_table(index=["year", "level"], columns="quantile", values="value").round(0).reset_index()
    piv.columns = ["year", "level", "pupils p10", "pupils median", "pupils p90"]
    rep.table(piv)

    rep.heading("If nothing changes: classes and classrooms")
    r = res.capacity.report
    g = (np.asarray(r.grades) >= 1) & (np.asarray(r.grades) <= 9)
    sq = pd.DataFrame({"year": r.years, "compulsory classes 56–65 (大班额)": r.large_classes[:, g].sum(axis=(0, 1)),
                       "classes 66+ (超大班额)": r.super_large_classes[:, g].sum(axis=(0, 1)),
                       "classrooms short (all levels)": r.classrooms_short.sum(axis=0),
                       "schools over size caps": r.oversized_school.sum(axis=0)})
    rep.paragraph("Each grade keeps its current number of classes as its cohort changes (status quo).", cls="small")
    rep.table(sq)

    rep.heading("Pupils beyond the service radius (current layout, nearest school)")
    sv = res.service[res.service["year"].isin(sorted(yrs))].copy()
    rep.paragraph("GB 50180-2018 radii in urban units (kindergarten 300 m, primary 500 m, junior 1000 m) and the scenario's "
                  "rural radii, along the travel network; pupils beyond them need transport or, rural and far, a boarding bed.",
                  cls="small")
    rep.table(sv.drop(columns=[c for c in ("scenario",) if c in sv.columns]))

    co = res.consolidation
    rep.heading(f"Consolidation: {sc['targets']['compulsory_schools']} compulsory schools for the {co.demand_year}")
    res_ = co.result
    if res_.level_result is not None:   # two stages: the layout (classes per level), then classes per grade
        first = res_.first_layout if res_.first_layout is not None else res_.level_result
        text = (f"Layout (which schools, expansions, boarding; classes counted per level): HiGHS {first.status}, "
                f"proven gap {first.gap:.3%}. ")
        if res_.first_layout is not None:
            kept = ", ".join(co.sites["school_id"].to_numpy()[res_.kept_for_classes])
            text += (f"Whole classes per grade needed classrooms beyond a school's expansion limit in that layout, so "
                     f"it was solved again keeping {kept} (HiGHS {res_.level_result.status}, gap "
                     f"{res_.level_result.gap:.3%} for that restricted layout), which costs less. ")
        rep.paragraph(text + f"Whole classes per grade for the chosen layout: proven gap {res_.grade_gap:.3%} for this "
                      f"layout; the result is {res_.gap:.2%} above the first layout's bound, which bounds every layout "
                      f"with classes per grade. {res_.seconds:.1f} s. " + co.message)
    else:
        rep.paragraph(f"HiGHS status {res_.status}; proven gap {res_.gap:.3%}; {res_.seconds:.1f} s. " + co.message)
    rep.table(co.decisions["decision"].value_counts().rename_axis("decision").reset_index(name="schools or sites"))
    rep.image(w.path("map_consolidation.png").read_bytes(), "Kept, expanded, closed (arrow to the receiving school) and "
              "new schools; units coloured by the change of mean one-way travel (map_consolidation.png).")
    trav = co.travel.copy()
    rep.table(trav.round(1))
    rep.table(res_.costs.rename("value").rename_axis("term").reset_index())
    if len(co.diagnosis):
        rep.paragraph("What is missing to meet the target within the rules, and where:")
        rep.table(co.diagnosis.head(30))
    if len(co.curve):
        rep.heading("What the school count costs (trade-off)")
        curve = co.curve.copy()
        if sc["consolidation"]["classes_by_grade"]:
            rep.paragraph("The curve counts classes per level (the layout stage); the layout above then organises "
                          "whole classes per grade, which costs somewhat more.", cls="small")
        fig = draw_tradeoff(curve)
        rep.figure(fig, "Mean one-way travel and annualised cost (travel, capital, running) against the school count.")
        plt.close(fig)
        cols = [c for c in curve.columns if c in ("target", "schools_open", "mean_m_primary", "p90_m_primary", "mean_m_junior",
                                                  "p90_m_junior", "total_cost_cny_per_year", "unserved_pupils",
                                                  "extra_classrooms", "missing_beds", "schools_over", "gap", "status")]
        rep.table(curve[cols])
    rep.heading("校际差异系数 (inter-school difference coefficient), before and after")
    rep.table(co.equity.round(3))

    rep.heading("Kindergartens")
    kp = res.kindergartens.plan
    rep.paragraph(f"Design school year {sc['horizon']['design_year']}, median children aged 3–5. Shares are the siting "
                  "model's; the plan targets are checked on the yearly allocation (nearest free seat), and private "
                  "kindergartens are converted to public (cheapest per enrolled child) where that allocation falls "
                  "short of the public share.")
    rep.table(kp.summary[kp.summary["variable"] != "year"].round(3))
    rep.image(w.path("map_kindergartens.png").read_bytes(), "Existing kindergartens, candidate sites and the share of "
              "children within walking distance (map_kindergartens.png).")
    bt = res.kindergartens.years.by_township
    last = bt[(bt["year"] == sc["horizon"]["end_year"]) & (bt.get("quantile", 0.5) == 0.5)].copy()
    last["township"] = last["township_code"].map(res.dataset.township_names())
    rep.paragraph(f"Seats short and idle by township in {sc['horizon']['end_year']} (median children):")
    rep.table(last[["township_code", "township", "demand", "seats", "enrolled", "short", "idle"]].round(0))

    rep.heading("Seat demand and cost (district)")
    sd = res.seat_demand
    d = sd[(sd["township_code"] == "district") & sd["year"].isin(sorted(yrs))]
    rep.table(d.drop(columns=["scenario", "township_code"]).round(0))
    rep.table(unit_cost_table(res.unit_costs))
    rep.heading("Run")
    rep.table(pd.DataFrame(sorted(res.timings_s.items()), columns=["stage", "seconds"]).round(2))
    w.text("report.html", rep.render())
