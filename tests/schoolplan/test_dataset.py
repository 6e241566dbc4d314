"""The embedded Fuling dataset: census totals exact, units and codes as documented, graduation sane."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from schoolplan.dataset import load_dataset, pupils_by_level
from schoolplan.validate import validate_data_dir

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"

# The 2020 census of Fuling (七普, NBS county tables) — published figures, typed here independently of data/.
CENSUS_TOTAL, CENSUS_MALE, CENSUS_FEMALE, CENSUS_URBAN = 1_115_016, 564_757, 550_259, 801_151
CENSUS_GROUPS = {  # age group: (male, female)
    "0": (3482, 3249), "1-4": (18999, 17781), "5-9": (26816, 25153), "10-14": (36627, 34328),
    "15-19": (30758, 32762), "20-24": (30961, 31892), "25-29": (37023, 32974), "30-34": (37639, 34491),
    "35-39": (25084, 24736), "40-44": (24796, 25615), "45-49": (68958, 65669), "50-54": (63245, 59539),
    "55-59": (44275, 42257), "60-64": (18938, 16096), "65-69": (31453, 32377), "70-74": (26442, 27639),
    "75-79": (20186, 20594), "80-84": (11440, 12840), "85+": (7635, 10267),
}


@pytest.fixture(scope="module")
def ds():
    return load_dataset(DATA)


def test_embedded_data_is_valid():
    problems, tables = validate_data_dir(DATA)
    assert problems == []
    assert {"units", "schools", "base_population", "enrollment_history", "rivers", "bridges"} <= set(tables)


def test_census_totals_exact(ds):
    p = ds.population_array()
    assert p.sum() == CENSUS_TOTAL
    assert p[:, 1].sum() == CENSUS_MALE and p[:, 0].sum() == CENSUS_FEMALE  # sex order (female, male)
    assert p[ds.units["urban"].to_numpy()].sum() == CENSUS_URBAN
    assert (p >= 0).all()


def test_every_census_age_group_by_sex_exact(ds):
    p = ds.population_array().sum(axis=0)  # sex × age
    for group, (m, f) in CENSUS_GROUPS.items():
        if group == "85+":
            sl = slice(85, 101)
        elif "-" in group:
            lo, hi = map(int, group.split("-"))
            sl = slice(lo, hi + 1)
        else:
            sl = slice(int(group), int(group) + 1)
        assert (p[1, sl].sum(), p[0, sl].sum()) == (m, f), group


def test_graduation_is_smooth_inside_groups(ds):
    """Within each 5-year group single years change gradually: no year is more than 40 % off its neighbours' mean
    (away from the group edges where the census itself jumps, e.g. 44→45)."""
    p = ds.population_array().sum(axis=0).astype(float)
    for s in range(2):
        for lo in range(5, 80, 5):
            inner = p[s, lo + 1: lo + 4]
            neigh = (p[s, lo: lo + 3] + p[s, lo + 2: lo + 5]) / 2
            assert np.all(np.abs(inner / neigh - 1) < 0.4), (s, lo)


def test_units_codes_and_geometry(ds):
    u = ds.units
    assert 300 <= len(u) <= 600
    assert u["unit_code"].is_unique
    codes = set(ds.townships["township_code"])
    assert len(codes) == 27 and set(u["township_code"]) == codes
    district = ds.district.to_crs(4545).geometry.iloc[0]
    assert u.to_crs(4545).geometry.within(district.buffer(100)).all()
    names = ds.township_names()
    urban_pop = ds.population_array().sum(axis=(1, 2))[u["urban"].to_numpy()]
    central = u.loc[u["urban"], "township_code"].map(names).isin(["敦仁街道", "崇义街道", "荔枝街道", "江北街道", "江东街道", "马鞍街道", "龙桥街道", "李渡街道"])
    assert urban_pop[central.to_numpy()].sum() > 0.7 * CENSUS_URBAN  # urban population concentrates in the central streets


def test_synthetic_schools_calibrated_to_plan(ds):
    lv = pupils_by_level(ds.schools)
    assert lv["kindergarten"].sum() == 29_000
    assert lv["primary"].sum() == 67_000
    assert lv["junior"].sum() == 40_000
    assert lv["senior_general"].sum() == 25_000 and lv["senior_vocational"].sum() == 17_000
    kg = ds.schools["level"].eq("kindergarten")
    public = lv["kindergarten"][kg & ds.schools["public"]].sum() / 29_000
    assert abs(public - 0.541) < 0.005
    assert ds.schools["name"].str.contains("synthetic").all()
    compulsory = ds.schools["level"].isin(["primary", "junior", "nine_year"]).sum()
    assert compulsory > 85 + 30  # consolidation to 85 is a real decision
    assert ds.schools["small_rural"].sum() > 20


def test_enrollment_history_matches_plan_totals(ds):
    h = ds.enrollment_history
    prim = h[h["grade"].between(1, 6)].groupby("year")["pupils"].sum()
    jun = h[h["grade"].between(7, 9)].groupby("year")["pupils"].sum()
    assert prim[2015] == 73_000 and prim[2020] == 67_000
    assert jun[2015] == 27_000 and jun[2020] == 40_000
    # 2020 history equals the inventory
    s = ds.schools.set_index("school_id")
    h20 = h[h["year"] == 2020]
    for g in (1, 5, 9):
        hg = h20[h20["grade"] == g].set_index("school_id")["pupils"]
        assert (hg == s.loc[hg.index, f"pupils_g{g}"]).all()


def test_bridges_sit_on_rivers(ds):
    rv = ds.rivers.to_crs(4545).set_index("river_id").geometry
    for rid, pt in zip(ds.bridges["river_id"], ds.bridges.to_crs(4545).geometry):
        assert pt.distance(rv[rid]) < 1.0
