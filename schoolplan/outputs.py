"""Writing a run's outputs atomically under ``outputs/<scenario>/`` with a manifest.

Files are first written into a temporary sibling folder; only when everything has been written is it renamed
into place (the previous result is replaced in one step), so a failed run leaves the previous result intact
and no partial folder behind.  No path can leave ``outputs/``: the scenario name is checked and every relative
path is resolved and checked to stay inside the run folder.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Callable

import pandas as pd

from schoolplan.errors import ScenarioError
from schoolplan.scenario import NAME_PATTERN

__all__ = ["RunWriter", "write_run", "hash_file", "package_versions"]

VERSIONED = ("schoolplan", "numpy", "scipy", "pandas", "statsmodels", "geopandas", "shapely", "pyproj", "pyogrio",
             "matplotlib", "highspy", "openpyxl", "folium")


def hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


class RunWriter:
    """Collects files in a temporary folder; ``path(rel)`` gives a safe place to write ``rel``."""

    def __init__(self, tmp: Path):
        self.root = tmp
        self.files: list[str] = []

    def path(self, rel: str) -> Path:
        target = (self.root / rel).resolve()
        if self.root.resolve() not in target.parents:
            raise ScenarioError(f"output path {rel!r} would leave the run folder", [])
        target.parent.mkdir(parents=True, exist_ok=True)
        self.files.append(rel)
        return target

    def csv(self, rel: str, df: pd.DataFrame) -> None:
        df.to_csv(self.path(rel), index=False, lineterminator="\n", float_format="%.10g")

    def text(self, rel: str, text: str) -> None:
        self.path(rel).write_text(text, encoding="utf-8")

    def figure(self, rel: str, fig) -> None:
        # fixed metadata so that the same figure gives the same bytes
        fig.savefig(self.path(rel), metadata={"Software": None})


def write_run(outputs_dir: Path, scenario_name: str, fill: Callable[[RunWriter], dict], manifest_extra: dict) -> Path:
    """Create ``outputs_dir/scenario_name`` atomically: ``fill(writer)`` writes the files and returns manifest parts."""
    if not NAME_PATTERN.match(scenario_name):
        raise ScenarioError(f"scenario name {scenario_name!r} is not a safe folder name", [])
    outputs_dir = Path(outputs_dir)
    outputs_dir.mkdir(parents=True, exist_ok=True)
    final = outputs_dir / scenario_name
    tmp = Path(tempfile.mkdtemp(prefix=f".{scenario_name}.tmp-", dir=outputs_dir))
    try:
        writer = RunWriter(tmp)
        parts = fill(writer)
        manifest = {**manifest_extra, **parts, "files": sorted(set(writer.files)), "versions": package_versions()}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
        old = None
        if final.exists():
            old = outputs_dir / f".{scenario_name}.old-{os.getpid()}"
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
