"""A tiny but complete data folder (two townships of the embedded Fuling data), built once per session."""
from __future__ import annotations

import shutil
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"
TOWNSHIPS = ["500102013", "500102206"]  # 白涛街道 (urban core on the Wu) and 大木乡 (rural)


def _write_geo(gdf, path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    gdf.to_file(path, driver="GeoJSON", engine="pyogrio")


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "data"
    (out / "population").mkdir(parents=True)
    for name in ("district.geojson", "townships.geojson", "rivers.geojson", "bridges.geojson"):
        shutil.copy(DATA / name, out / name)
    for name in ("mortality_mx.csv", "asfr_schedule.csv", "tfr.csv", "srb.csv"):
        shutil.copy(DATA / "population" / name, out / "population" / name)
    units = gpd.read_file(DATA / "population" / "units.geojson")
    units = units[units["township_code"].isin(TOWNSHIPS)]
    _write_geo(units, out / "population" / "units.geojson")
    bp = pd.read_csv(DATA / "population" / "base_population.csv", dtype={"unit_code": str})
    bp[bp["unit_code"].isin(units["unit_code"])].to_csv(out / "population" / "base_population.csv", index=False)
    schools = gpd.read_file(DATA / "schools.geojson")
    schools = schools[schools["township_code"].isin(TOWNSHIPS)]
    _write_geo(schools, out / "schools.geojson")
    hist = pd.read_csv(DATA / "enrollment_history.csv")
    hist[hist["school_id"].isin(schools["school_id"])].to_csv(out / "enrollment_history.csv", index=False)
    cands = gpd.read_file(DATA / "candidate_sites.geojson")
    cands = cands[cands["township_code"].isin(TOWNSHIPS)]
    _write_geo(cands, out / "candidate_sites.geojson")
    hp = pd.read_csv(DATA / "population" / "housing_pipeline.csv")
    hp[hp["site_id"].isin(cands["site_id"]) & hp["unit_code"].isin(units["unit_code"])].to_csv(
        out / "population" / "housing_pipeline.csv", index=False)
    return out


@pytest.fixture()
def data_copy(tiny_data, tmp_path) -> Path:
    """A fresh, writable copy of the tiny data folder for tests that break it."""
    dst = tmp_path / "data"
    shutil.copytree(tiny_data, dst)
    return dst


@pytest.fixture()
def tiny_scenario(tmp_path, tiny_data) -> Path:
    p = tmp_path / "scen" / "tiny.toml"
    p.parent.mkdir()
    p.write_text(f'name = "tiny"\ndata_dir = "{tiny_data.as_posix()}"\n[targets]\ncompulsory_schools = 4\n'
                 '[population]\ndraws = 20\n[consolidation]\ntradeoff_targets = [3, 5]\ntime_limit_s = 10.0\n'
                 '[kindergarten]\nnew_sites = 1\n', encoding="utf-8")
    return p
