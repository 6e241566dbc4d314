"""What a full run writes for planners, facility teams and finance officers (tiny two-township data)."""
from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
from openpyxl import load_workbook

from schoolplan.cli import main


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_data):
    root = tmp_path_factory.mktemp("run")
    scen = root / "tiny.toml"
    scen.write_text(f'name = "tiny"\ndata_dir = "{tiny_data.as_posix()}"\n[targets]\ncompulsory_schools = 4\n'
                    '[population]\ndraws = 20\n[consolidation]\ntradeoff_targets = [3, 5]\ntime_limit_s = 10.0\n'
                    '[kindergarten]\nnew_sites = 1\n', encoding="utf-8")
    assert main(["run", str(scen), "--outputs", str(root / "outputs"), "-q"]) == 0
    return root / "outputs" / "tiny"


def test_every_output_exists(tiny_run):
    for name in ("report.html", "plan_targets.csv", "seat_demand.xlsx", "seat_demand.csv", "unit_costs.csv",
                 "layout.gpkg", "map.html", "map_consolidation.png", "map_kindergartens.png", "school_decisions.csv",
                 "tradeoff_curve.csv", "kindergarten_sites.csv", "enrollment_district.csv", "population_district.csv"):
        assert (tiny_run / name).is_file(), name
    man = json.loads((tiny_run / "manifest.json").read_text())
    assert man["seed"] == 20201101 and man["draws"] == 20 and "consolidation" in man["timings_s"]


def test_report_is_self_contained_and_has_the_target_table(tiny_run):
    text = (tiny_run / "report.html").read_text(encoding="utf-8")
    assert "学前三年毛入园率" in text and "义务教育阶段学校数" in text and "大班额" in text and "校际差异系数" in text
    assert 'class="pass"' in text or 'class="fail"' in text
    assert "SYNTHETIC" in text
    assert "<script" not in text.lower() and "http://" not in text and "https://" not in text  # opens offline
    assert text.count("data:image/png;base64,") >= 4


def test_target_table_statuses(tiny_run):
    t = pd.read_csv(tiny_run / "plan_targets.csv")
    assert set(t["status"]) <= {"pass", "fail", "info", "input"}
    count = t[(t["indicator"] == "compulsory schools") & (t["year"] == 2025)].iloc[0]
    assert count["source"] == "model: planned layout"
    assert count["status"] == ("pass" if count["value"] <= 4 else "fail")
    assert (t.loc[t["status"] == "input", "source"] == "scenario input").all()


def test_workbook_sheets_and_totals_agree(tiny_run):
    wb = load_workbook(tiny_run / "seat_demand.xlsx", read_only=True)
    assert wb.sheetnames == ["README", "district", "by_township", "unit_costs", "consolidation", "decisions"]
    seat = pd.read_csv(tiny_run / "seat_demand.csv", dtype={"township_code": str})
    towns = seat[seat["township_code"] != "district"].groupby(["year", "level"])[["pupils", "teachers_needed", "running_cost_cny"]].sum()
    district = seat[seat["township_code"] == "district"].set_index(["year", "level"])[["pupils", "teachers_needed", "running_cost_cny"]]
    pd.testing.assert_frame_equal(towns.sort_index(), district.sort_index(), check_exact=False, rtol=1e-9)
    assert (seat.select_dtypes("number") >= -1e-9).all().all()
    # district pupils by level agree with the enrollment forecast before the design year (same layout)
    ed = pd.read_csv(tiny_run / "enrollment_district.csv")
    for level in ("primary", "junior"):
        a = seat[(seat["township_code"] == "district") & (seat["level"] == level) & (seat["year"] == 2021)]["pupils"].iloc[0]
        b = ed[(ed["level"] == level) & (ed["variable"] == "pupils") & (ed["quantile"] == 0.5) & (ed["year"] == 2021)]["value"].iloc[0]
        assert abs(a - b) / b < 0.02  # median of sums vs sum of school medians


def test_geopackage_layers_open(tiny_run):
    layers = {row[0] for row in pyogrio.list_layers(tiny_run / "layout.gpkg")}
    assert {"units", "schools", "closures", "townships", "district", "rivers", "bridges"} <= layers
    schools = gpd.read_file(tiny_run / "layout.gpkg", layer="schools")
    assert schools.crs.to_epsg() == 4326
    dec = pd.read_csv(tiny_run / "school_decisions.csv")
    assert set(dec["decision"]) <= {"keep", "expand", "close", "open", "not_opened"}
    counted = dec[dec["level"].isin(["primary", "junior", "nine_year"]) | ~dec["existing"]]
    assert ((counted["decision"].isin(["keep", "expand", "open"])).sum()) <= 4 + 1e-9 or \
        pd.read_csv(tiny_run / "consolidation_diagnosis.csv").shape[0] > 0


def test_compare_two_runs(tiny_run, tmp_path):
    out = tiny_run.parent
    (out / "tiny_copy").mkdir(exist_ok=True)
    for f in tiny_run.iterdir():
        if f.suffix in (".csv", ".json"):
            (out / "tiny_copy" / f.name).write_bytes(f.read_bytes())
    assert main(["compare", "tiny", "tiny_copy", "--outputs", str(out)]) == 0
    cmp = pd.read_csv(out / "compare_tiny_vs_tiny_copy" / "compare_plan_targets.csv")
    assert np.allclose(cmp["tiny_copy - tiny"].fillna(0), 0)
    assert main(["compare", "tiny", "never_run", "--outputs", str(out)]) == 2


def test_names_are_escaped(data_copy, tmp_path):
    f = data_copy / "schools.geojson"
    g = gpd.read_file(f)
    g.loc[g["level"] == "primary", "name"] = "<script>alert(1)</script>（合成 synthetic）"
    g.to_file(f, driver="GeoJSON")
    scen = tmp_path / "x.toml"
    scen.write_text(f'name = "esc"\ndata_dir = "{data_copy.as_posix()}"\n[targets]\ncompulsory_schools = 4\n'
                    '[population]\ndraws = 5\n[consolidation]\ntradeoff_targets = []\n[kindergarten]\nnew_sites = 1\n', encoding="utf-8")
    assert main(["run", str(scen), "--outputs", str(tmp_path / "o"), "-q"]) == 0
    text = (tmp_path / "o" / "esc" / "report.html").read_text(encoding="utf-8")
    assert "<script>alert(1)" not in text


def test_flows_are_the_admission_zones_and_add_up_to_the_units(tiny_run):
    # every unit's pupils of a level, summed over grades and schools, plus the unseated ones, equal its demand; each
    # grade is zoned on its own (grade column 1..9, primary 1-6, junior 7-9); decisions receive what the flows send
    flows = pd.read_csv(tiny_run / "consolidation_flows.csv", dtype={"unit_code": str})
    units = pd.read_csv(tiny_run / "consolidation_units.csv", dtype={"unit_code": str})
    assert (flows["pupils"] > 0).all() and flows["grade"].between(1, 9).all()
    assert ((flows["level"] == "primary") == (flows["grade"] <= 6)).all()
    sent = flows.groupby(["unit_code", "level"])["pupils"].sum()
    u = units.set_index(["unit_code", "level"])
    expected = (u["pupils"] - u["unserved_pupils"])[u["pupils"] - u["unserved_pupils"] > 1e-6]
    pd.testing.assert_series_equal(sent.sort_index(), expected.sort_index(), check_names=False, rtol=1e-6)
    dec = pd.read_csv(tiny_run / "school_decisions.csv")
    got = flows.groupby("school_id")["pupils"].sum()
    after = dec.set_index("school_id")[["pupils_after_primary", "pupils_after_junior"]].sum(axis=1)
    assert got.to_numpy() == pytest.approx(after.loc[got.index].to_numpy(), rel=1e-6)
    assert (after.drop(got.index).abs() < 1e-6).all()   # schools no flow reaches have no pupils after
