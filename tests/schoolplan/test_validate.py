"""Each class of bad input is reported — file, rows and fix — and all problems come out at once."""
from __future__ import annotations

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import Point, Polygon

from schoolplan.cli import main
from schoolplan.dataset import load_dataset
from schoolplan.errors import DataValidationError
from schoolplan.validate import SPECS, check_geometry, validate_data_dir


def _problems(folder):
    problems, _ = validate_data_dir(folder)
    return problems


def _one(problems, needle):
    hits = [p for p in problems if needle in p.message]
    assert hits, [p.message for p in problems]
    return hits[0]


def test_tiny_data_is_valid(tiny_data):
    assert _problems(tiny_data) == []


def test_missing_file(data_copy):
    (data_copy / "schools.geojson").unlink()
    p = _one(_problems(data_copy), "file is missing")
    assert p.source == "schools.geojson" and "data/README.md" in p.fix


def test_missing_column(data_copy):
    f = data_copy / "population" / "base_population.csv"
    pd.read_csv(f).drop(columns=["persons"]).to_csv(f, index=False)
    p = _one(_problems(data_copy), "missing column")
    assert "persons" in p.message


def test_negative_and_fractional_counts_name_rows(data_copy):
    f = data_copy / "population" / "base_population.csv"
    df = pd.read_csv(f)
    df.loc[3, "persons"] = -5
    df.to_csv(f, index=False)
    p = _one(_problems(data_copy), "below its minimum")
    assert p.rows == "rows 5"  # line 5: header is line 1, data row index 3
    df["persons"] = df["persons"].astype(float)
    df.loc[3, "persons"] = 1.5
    df.to_csv(f, index=False)
    p = _one(_problems(data_copy), "whole numbers")
    assert "5" in p.rows and "integer" in p.fix


def test_duplicate_ids(data_copy):
    f = data_copy / "schools.geojson"
    g = gpd.read_file(f)
    g.loc[1, "school_id"] = g.loc[0, "school_id"]
    g.to_file(f, driver="GeoJSON")
    p = _one(_problems(data_copy), "must be unique")
    assert "feature 0" in p.rows and "feature 1" in p.rows


def test_codes_that_do_not_resolve(data_copy):
    f = data_copy / "population" / "units.geojson"
    g = gpd.read_file(f)
    g.loc[0, "township_code"] = "500102999"
    g.to_file(f, driver="GeoJSON")
    p = _one(_problems(data_copy), "do not resolve")
    assert "500102999" in p.message and "townships.geojson" in p.fix


def test_incomplete_ages(data_copy):
    f = data_copy / "population" / "base_population.csv"
    df = pd.read_csv(f)
    df = df[~((df["unit_code"] == df["unit_code"].iloc[0]) & (df["age"] == 50))]
    df.to_csv(f, index=False)
    p = _one(_problems(data_copy), "incomplete ages")
    assert df["unit_code"].iloc[0] in p.rows


def test_grades_inconsistent_with_level(data_copy):
    f = data_copy / "schools.geojson"
    g = gpd.read_file(f)
    i = g.index[g["level"] == "primary"][0]
    g.loc[i, "grade_max"] = 9
    g.loc[i, "pupils_g8"] = 40
    g.loc[i, "classes_g8"] = 1
    g.to_file(f, driver="GeoJSON")
    probs = _problems(data_copy)
    assert g.loc[i, "school_id"] in _one(probs, "inconsistent with level").rows
    assert g.loc[i, "school_id"] in _one(probs, "pupils in grade 8").rows


def test_wrong_crs(data_copy):
    f = data_copy / "population" / "units.geojson"
    g = gpd.read_file(f).to_crs(4545)
    f.unlink()
    g.to_file(f, driver="GeoJSON")
    p = _one(_problems(data_copy), "not EPSG:4326")
    assert "reproject" in p.fix


def test_missing_crs_is_an_error():
    g = gpd.GeoDataFrame({"school_id": ["a"]}, geometry=[Point(107.4, 29.7)], crs=None)
    problems = []
    assert not check_geometry(g, "schools", problems)
    assert problems[0].message == "no CRS"


def test_outside_district_and_invalid_geometry(data_copy):
    f = data_copy / "schools.geojson"
    g = gpd.read_file(f)
    g.loc[0, "geometry"] = Point(29.7, 107.4)  # lon/lat swapped: far outside
    g.to_file(f, driver="GeoJSON")
    fu = data_copy / "population" / "units.geojson"
    u = gpd.read_file(fu)
    u.loc[0, "geometry"] = Polygon([(107.40, 29.55), (107.41, 29.56), (107.41, 29.55), (107.40, 29.56)])  # bow-tie
    u.to_file(fu, driver="GeoJSON")
    probs = _problems(data_copy)
    assert any("not longitude/latitude" in p.message or "outside the district" in p.message for p in probs if p.source == "schools.geojson")
    assert "feature 0" in _one(probs, "invalid geometries").rows


def test_all_problems_reported_at_once(data_copy):
    f = data_copy / "population" / "base_population.csv"
    df = pd.read_csv(f)
    df.loc[0, "persons"] = -1
    df.to_csv(f, index=False)
    h = data_copy / "enrollment_history.csv"
    dh = pd.read_csv(h)
    dh.loc[0, "school_id"] = "NOPE"
    dh.to_csv(h, index=False)
    (data_copy / "population" / "srb.csv").unlink()
    with pytest.raises(DataValidationError) as exc:
        load_dataset(data_copy)
    text = str(exc.value)
    assert "base_population.csv" in text and "enrollment_history.csv" in text and "srb.csv" in text
    assert len(exc.value.problems) == 3
    assert "fix:" in text


def test_cli_validate_exit_codes(tiny_data, data_copy, capsys):
    assert main(["validate", str(tiny_data)]) == 0
    (data_copy / "population" / "tfr.csv").write_text("year,variant,tfr_china,tfr_fuling\n2020,typo,1.2,1.0\n")
    assert main(["validate", str(data_copy)]) == 1
    err = capsys.readouterr().err
    assert "tfr.csv" in err and "variant" in err and "fix:" in err and "Traceback" not in err


def test_every_spec_documented():
    readme = (SPECS and __import__("pathlib").Path(__file__).resolve().parents[2] / "data" / "README.md").read_text(encoding="utf-8")
    for spec in SPECS.values():
        assert spec.path in readme, spec.path
        for col in spec.columns:
            if not col.name.startswith(("pupils_g", "classes_g")):
                assert f"`{col.name}`" in readme, (spec.path, col.name)
