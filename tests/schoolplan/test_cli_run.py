"""`schoolplan run`: outputs written atomically with a manifest; errors readable; same inputs → same tables."""
from __future__ import annotations

import json

import pandas as pd

from schoolplan.cli import main


def _tables(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix in (".csv", ".md", ".png")}


def test_run_writes_outputs_and_is_reproducible(tiny_scenario, tmp_path, tiny_data):
    out = tmp_path / "outputs"
    assert main(["run", str(tiny_scenario), "--outputs", str(out), "-q"]) == 0
    run = out / "tiny"
    for name in ("indicators.csv", "pupils_by_level_township.csv", "schools_base_year.csv", "oversized_classes.csv",
                 "oversized_schools.csv", "map_base_year.png", "summary.md", "manifest.json"):
        assert (run / name).is_file(), name
    man = json.loads((run / "manifest.json").read_text())
    assert man["scenario"] == "tiny" and "schools.geojson" in man["inputs_sha256"] and man["versions"]["numpy"]
    ind = pd.read_csv(run / "indicators.csv")
    by_t = pd.read_csv(run / "pupils_by_level_township.csv")
    # totals agree between tables
    for level in ("kindergarten", "primary", "junior"):
        district = ind[(ind["level"] == level) & (ind["variable"] == "pupils")]["value"].iloc[0]
        assert by_t[by_t["level"] == level]["value"].sum() == district
    assert set(ind.columns) == {"scenario", "year", "level", "area", "variable", "unit", "value"}
    first = _tables(run)
    assert main(["run", str(tiny_scenario), "--outputs", str(out), "-q"]) == 0
    assert _tables(run) == first
    assert sorted(p.name for p in out.iterdir()) == ["tiny"]  # no temp folders left


def test_failed_run_leaves_previous_result_and_no_partial_folder(tiny_scenario, tmp_path, data_copy, capsys):
    out = tmp_path / "outputs"
    assert main(["run", str(tiny_scenario), "--outputs", str(out), "-q"]) == 0
    before = _tables(out / "tiny")
    (data_copy / "schools.geojson").unlink()
    broken = tiny_scenario.parent / "broken.toml"
    broken.write_text(f'name = "tiny"\ndata_dir = "{data_copy.as_posix()}"\n', encoding="utf-8")
    assert main(["run", str(broken), "--outputs", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert "schools.geojson" in err and "file is missing" in err and "Traceback" not in err
    assert _tables(out / "tiny") == before
    assert sorted(p.name for p in out.iterdir()) == ["tiny"]


def test_scenario_errors_are_named(tmp_path, tiny_data, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(f'data_dir = "{tiny_data.as_posix()}"\n[class_size]\nprimery = 40\n', encoding="utf-8")
    assert main(["run", str(bad), "--outputs", str(tmp_path / "o"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "class_size.primery" in err and "primary" in err
    bad.write_text('name = "../escape"\n', encoding="utf-8")
    assert main(["run", str(bad), "--outputs", str(tmp_path / "o"), "-q"]) == 2
    assert "safe folder name" in capsys.readouterr().err
    assert not (tmp_path / "escape").exists()


def test_extends_holds_only_changes(tmp_path, tiny_data):
    from schoolplan.scenario import load_scenario

    base = tmp_path / "base.toml"
    base.write_text(f'name = "b"\ndata_dir = "{tiny_data.as_posix()}"\n[class_size]\nprimary = 45\njunior = 50\n', encoding="utf-8")
    var = tmp_path / "var.toml"
    var.write_text('extends = "base.toml"\nname = "v"\n[class_size]\nprimary = 40\n', encoding="utf-8")
    sc = load_scenario(var)
    assert sc["class_size"]["primary"] == 40 and sc["class_size"]["junior"] == 50 and sc.name == "v"
    assert sc.data_dir == tiny_data.resolve()
