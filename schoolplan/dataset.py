"""Load a validated data folder into typed tables and the arrays the numerical cores use.

``load_dataset`` is the boundary: it runs every check of :mod:`schoolplan.validate` and raises one
:class:`~schoolplan.errors.DataValidationError` listing all problems, or returns a :class:`Dataset`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from schoolplan.errors import DataValidationError
from forecast.ccmpp import SEXES
from schoolplan.validate import GRADES, METRIC, OPEN_AGE, validate_data_dir

__all__ = ["Dataset", "load_dataset", "LEVEL_OF_GRADE", "pupils_by_level"]

# A grade belongs to one level; senior grades are split by the school's level (general / vocational).
LEVEL_OF_GRADE = {-3: "kindergarten", -2: "kindergarten", -1: "kindergarten", **{g: "primary" for g in range(1, 7)},
                  **{g: "junior" for g in range(7, 10)}, **{g: "senior" for g in range(10, 13)}}


@dataclass
class Dataset:
    data_dir: Path
    district: gpd.GeoDataFrame
    townships: gpd.GeoDataFrame
    units: gpd.GeoDataFrame
    base_population: pd.DataFrame
    mortality: pd.DataFrame
    asfr_schedule: pd.DataFrame
    tfr: pd.DataFrame
    srb: pd.DataFrame
    schools: gpd.GeoDataFrame
    enrollment_history: pd.DataFrame
    candidate_sites: gpd.GeoDataFrame | None
    rivers: gpd.GeoDataFrame | None
    bridges: gpd.GeoDataFrame | None
    housing_pipeline: pd.DataFrame | None

    @property
    def unit_codes(self) -> np.ndarray:
        return self.units["unit_code"].to_numpy()

    def population_array(self) -> np.ndarray:
        """persons[unit, sex, age] as int64 in the order of ``units`` (sex order ``forecast.ccmpp.SEXES`` = female, male;
        age 100 = 100+)."""
        bp = self.base_population
        u = pd.Index(self.unit_codes).get_indexer(bp["unit_code"])
        s = pd.Index(SEXES).get_indexer(bp["sex"])
        out = np.zeros((len(self.units), 2, OPEN_AGE + 1), dtype=np.int64)
        out[u, s, bp["age"].to_numpy()] = bp["persons"].to_numpy()
        return out

    def township_names(self) -> dict[str, str]:
        return dict(zip(self.townships["township_code"], self.townships["name"]))


def load_dataset(data_dir: str | Path) -> Dataset:
    """Validate ``data_dir`` and load it; raise :class:`DataValidationError` with every problem found."""
    data_dir = Path(data_dir)
    problems, t = validate_data_dir(data_dir)
    if problems:
        raise DataValidationError(f"data folder {data_dir} fails validation ({len(problems)} problem"
                                  f"{'s' if len(problems) != 1 else ''}); nothing was run", problems)
    units = t["units"].sort_values("unit_code").reset_index(drop=True)
    schools = t["schools"].sort_values("school_id").reset_index(drop=True)
    return Dataset(
        data_dir=data_dir, district=t["district"], townships=t["townships"].sort_values("township_code").reset_index(drop=True),
        units=units, base_population=t["base_population"], mortality=t["mortality"], asfr_schedule=t["asfr_schedule"],
        tfr=t["tfr"], srb=t["srb"], schools=schools, enrollment_history=t["enrollment_history"],
        candidate_sites=t.get("candidate_sites"), rivers=t.get("rivers"), bridges=t.get("bridges"),
        housing_pipeline=t.get("housing_pipeline"),
    )


def pupils_by_level(schools: pd.DataFrame) -> pd.DataFrame:
    """Per school: pupils by level (kindergarten, primary, junior, senior_general, senior_vocational) as columns."""
    out = pd.DataFrame(index=schools.index)
    for level, grades in (("kindergarten", (-3, -2, -1)), ("primary", range(1, 7)), ("junior", range(7, 10))):
        out[level] = schools[[f"pupils_g{g}" for g in grades]].sum(axis=1)
    senior = schools[[f"pupils_g{g}" for g in range(10, 13)]].sum(axis=1)
    voc = schools["level"].eq("senior_vocational")
    out["senior_general"] = senior.where(~voc, 0)
    out["senior_vocational"] = senior.where(voc, 0)
    return out


def grade_matrix(schools: pd.DataFrame, prefix: str = "pupils") -> np.ndarray:
    """(school, grade) array in the order of ``GRADES`` from the per-grade columns."""
    return schools[[f"{prefix}_g{g}" for g in GRADES]].to_numpy(dtype=np.int64)


def to_metric(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    return gdf.to_crs(METRIC)
