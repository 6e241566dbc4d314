#!/usr/bin/env python
"""Build the embedded Fuling dataset in ``data/`` from the real sources in ``../shared/data-sources``.

Deterministic: the same sources and seed give byte-identical files.  Run from the project root::

    python scripts/build_fuling_data.py [--sources ../shared/data-sources] [--out data] [--seed 20201101]

What is REAL and what is SYNTHETIC is stated per file and per field in ``data/README.md``.  In short:
the district outline, the 27 township codes and names, the census counts by sex × age and the
urban/rural totals, GeoNames township seats, UN WPP 2024 rates and the Yangtze line are real
(figures carried over unchanged, or graduated/reshaped by a stated method).  Township territories,
residential units and their populations below district level, the Wu river line, bridges, every
school and kindergarten, enrollment history and candidate sites are synthetic, calibrated to the
plan's 2015/2020 figures (专栏1).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.interpolate import PchipInterpolator
from shapely.geometry import LineString, MultiPoint, Point
from shapely.ops import unary_union

WGS84 = "EPSG:4326"
METRIC = "EPSG:4545"  # CGCS2000 / 3-degree Gauss-Kruger CM 108E
BASE_DATE = "2020-11-01"
CENSUS_GROUPS = ["0", "1-4"] + [f"{a}-{a + 4}" for a in range(5, 85, 5)] + ["85+"]
GROUP_BOUNDS = [0, 1] + list(range(5, 90, 5))  # lower bounds of the 19 groups; last is 85 (open)
OPEN_AGE = 100

# Central urban streets named by the plan / issue; all others are towns (镇) and townships (乡).
CENTRAL_STREETS = {"敦仁街道", "崇义街道", "荔枝街道", "江北街道", "江东街道", "马鞍街道", "龙桥街道", "李渡街道"}

# Seats GeoNames does not give (PROVENANCE: 6 without a point) or gives ambiguously (敦仁/荔枝 ~80 m apart):
# ESTIMATED positions, placed to respect the river banks of the real streets (schematic, not surveyed).
ESTIMATED_SEATS = {
    "500102006": (107.3960, 29.7085, "estimated: old town on the Yangtze–Wu confluence peninsula (GeoNames 'Fuling' point nudged)"),
    "500102007": (107.3800, 29.7010, "estimated: no GeoNames point; urban street west of 敦仁"),
    "500102008": (107.3650, 29.6900, "estimated: GeoNames 'Lizhi' coincides with 'Fuling'; moved south-west"),
    "500102009": (107.3930, 29.7420, "estimated: no GeoNames point; north bank of the Yangtze opposite the city"),
    "500102010": (107.4300, 29.6980, "estimated: no GeoNames point; east bank of the Wu river"),
    "500102014": (107.3400, 29.6800, "estimated: no GeoNames point; south-west of the city, west of the Wu"),
    "500102129": (107.4000, 29.5550, "estimated: no GeoNames point; southern hills (position uncertain)"),
}

# Urban population (persons, before exact control to the census urban total) by township: SYNTHETIC weights.
URBAN_WEIGHT = {
    "敦仁街道": 95_000, "崇义街道": 110_000, "荔枝街道": 120_000, "江北街道": 55_000, "江东街道": 65_000,
    "马鞍街道": 110_000, "龙桥街道": 45_000, "李渡街道": 70_000, "白涛街道": 24_000,
    "蔺市街道": 12_000, "义和街道": 10_000,
}
TOWN_URBAN_WEIGHT = 5_000  # every other town / township seat (镇区)

# Rivers: the Yangtze is Natural Earth 50 m (real, coarse); near Fuling city its line passes ~4 km north of the
# confluence, so three vertices are replaced by a SCHEMATIC course through the confluence that puts the central
# streets on the south bank and 江北 on the north bank, as in reality.  The Wu river is not in the 50 m layer:
# its course is SCHEMATIC (confluence → 白涛 → south-east boundary); it starts ~30 m beyond the Yangtze line so the two
# lines meet (no gap through which a trip could cross the Wu without a bridge).
YANGTZE_CITY_VERTICES = [(107.3451, 29.7183), (107.3700, 29.7160), (107.3950, 29.7230), (107.4180, 29.7450), (107.4400, 29.7800)]
WU_SCHEMATIC = [(107.3972, 29.7258), (107.4080, 29.7000), (107.4200, 29.6650), (107.4420, 29.6200), (107.4650, 29.5800),
                (107.4760, 29.5560), (107.5000, 29.5200), (107.5400, 29.4800), (107.5800, 29.4300), (107.6200, 29.3800)]
# Bridges: SCHEMATIC crossings (positions snapped onto the river lines near these targets).
BRIDGES = [
    ("B01", "Yangtze crossing, city centre (schematic)", "yangtze", (107.393, 29.725)),
    ("B02", "Yangtze crossing, east of city (schematic)", "yangtze", (107.430, 29.765)),
    ("B03", "Yangtze crossing, Lidu (schematic)", "yangtze", (107.280, 29.710)),
    ("B04", "Yangtze crossing, Yihe–Linshi (schematic)", "yangtze", (107.200, 29.705)),
    ("B05", "Yangtze crossing, Zhenxi (schematic)", "yangtze", (107.470, 29.860)),
    ("B06", "Wu crossing, city centre (schematic)", "wu", (107.408, 29.700)),
    ("B07", "Wu crossing, Jiangdong south (schematic)", "wu", (107.425, 29.655)),
    ("B08", "Wu crossing, Baitao (schematic)", "wu", (107.477, 29.555)),
    ("B09", "Wu crossing, south (schematic)", "wu", (107.540, 29.480)),
]

# ---------------------------------------------------------------------------------------------- helpers


def integerize(values: np.ndarray, total: int) -> np.ndarray:
    """Largest-remainder rounding of non-negative ``values`` to integers summing to ``total``."""
    values = np.asarray(values, dtype=float)
    if total == 0 or values.sum() <= 0:
        return np.zeros(values.shape, dtype=np.int64)
    scaled = values / values.sum() * total
    base = np.floor(scaled).astype(np.int64)
    short = int(total - base.sum())
    if short > 0:
        order = np.argsort(-(scaled - base), kind="stable")
        base[order[:short]] += 1
    return base


def to_metric(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    return gdf.to_crs(METRIC)


def write_geojson(gdf: gpd.GeoDataFrame, path: Path) -> None:
    gdf = gdf.to_crs(WGS84)
    # round coordinates to ~1 cm to keep files small and byte-stable
    gdf = gdf.set_geometry(shapely.set_precision(gdf.geometry.values, 1e-7))
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    gdf.to_file(path, driver="GeoJSON", engine="pyogrio", COORDINATE_PRECISION=7, WRITE_BBOX="NO")


def write_csv(df: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False, lineterminator="\n", float_format="%.10g")


# ---------------------------------------------------------------------------------------------- census


def read_census(sources: Path) -> pd.DataFrame:
    df = pd.read_csv(sources / "population" / "fuling_census2020_age_sex.csv", dtype={"age_group": str})
    if list(df["age_group"]) != CENSUS_GROUPS:
        raise SystemExit(f"unexpected census age groups: {list(df['age_group'])}")
    return df


def read_urban_total(sources: Path) -> tuple[int, int]:
    df = pd.read_csv(sources / "population" / "chongqing_census2020_counties_leiii.csv", dtype={"区划代码": str})
    row = df[df["区划代码"].str.startswith("500102")].iloc[0]
    return int(row["城镇人口"]), int(row["乡村人口"])


def read_mx(sources: Path) -> pd.DataFrame:
    frames = []
    for sex, fname in (("female", "china_mxF5.tsv"), ("male", "china_mxM5.tsv")):
        d = pd.read_csv(sources / "wpp2024_china" / fname, sep="\t", dtype={"age": str})
        periods = [c for c in d.columns if "-" in c and c[:4].isdigit()]
        long = d.melt(id_vars=["age"], value_vars=periods, var_name="period", value_name="mx")
        long["period_start"] = long["period"].str[:4].astype(int)
        long["age_start"] = long["age"].str.rstrip("+").astype(int)
        long["sex"] = sex
        frames.append(long[["period_start", "sex", "age_start", "mx"]])
    out = pd.concat(frames).sort_values(["period_start", "sex", "age_start"]).reset_index(drop=True)
    return out


def open_group_weights(mx_open: pd.DataFrame) -> np.ndarray:
    """Weights for single ages 85..99 and 100+ inside the census 85+ group: stationary person-years L_a
    from the WPP 2020–2025 abridged mx (constant within 5-year groups), T_100 = l_100 / m_100 for the open group."""
    m = {int(a): float(v) for a, v in zip(mx_open["age_start"], mx_open["mx"])}
    ages = np.arange(85, 100)
    mx = np.array([m[85 + 5 * ((a - 85) // 5)] for a in ages])
    lx = np.concatenate([[1.0], np.exp(-np.cumsum(mx))])
    Lx = (lx[:-1] + lx[1:]) / 2
    T100 = lx[-1] / m[100]
    return np.concatenate([Lx, [T100]])


def graduate_sex(counts: np.ndarray, open_weights: np.ndarray) -> np.ndarray:
    """Single years 0..100+ from the 19 census groups: PCHIP on the cumulative count at group bounds
    (monotone, so never negative; each group's sum is preserved exactly), then largest-remainder integers
    within each group; 85+ split by life-table person-years."""
    counts = np.asarray(counts, dtype=np.int64)
    bounds = np.array(GROUP_BOUNDS[:-1] + [85])  # 0,1,5,...,85
    cum = np.concatenate([[0], np.cumsum(counts[:-1])])  # cumulative at 0,1,5,...,85
    spline = PchipInterpolator(bounds, cum)
    single = np.diff(spline(np.arange(0, 86)))  # ages 0..84
    single = np.clip(single, 0, None)
    out = np.zeros(OPEN_AGE + 1, dtype=np.int64)
    for g, lo in enumerate(GROUP_BOUNDS[:-1]):
        hi = GROUP_BOUNDS[g + 1]
        out[lo:hi] = integerize(single[lo:hi], int(counts[g]))
    out[85:] = integerize(open_weights, int(counts[-1]))
    return out


# ---------------------------------------------------------------------------------------------- geography


def build_geography(sources: Path, rng: np.random.Generator):
    outline = gpd.read_file(sources / "boundaries" / "fuling_500102_tudigong_wgs84_simplified.geojson")
    outline = outline[["geometry"]].assign(district_code="500102", name="涪陵区", name_en="Fuling")
    outline_m = to_metric(outline)
    district = outline_m.geometry.iloc[0]

    towns = pd.read_csv(sources / "admin" / "fuling_townships_nbs_modood.csv", dtype={"code": str})
    seats = pd.read_csv(sources / "places" / "fuling_township_seats_geonames_match.csv", dtype={"code": str})
    seats = towns[["code", "name"]].merge(seats[["code", "lat", "lon", "note"]], on="code", how="left")
    seats["seat_source"] = "GeoNames cities1000 (CC BY 4.0), matched by hand"
    for code, (lon, lat, note) in ESTIMATED_SEATS.items():
        i = seats.index[seats["code"] == code][0]
        seats.loc[i, ["lon", "lat", "seat_source"]] = [lon, lat, note]
    if seats[["lon", "lat"]].isna().any().any():
        raise SystemExit("a township seat is missing")
    seats["kind"] = np.where(seats["name"].str.endswith("街道"), "street", np.where(seats["name"].str.endswith("镇"), "town", "township"))
    seats_g = gpd.GeoDataFrame(seats, geometry=gpd.points_from_xy(seats["lon"], seats["lat"]), crs=WGS84).to_crs(METRIC)

    # Rivers
    ne = gpd.read_file(sources / "rivers" / "ne50m_yangtze_clip_fuling.geojson")
    coords = list(ne.geometry.iloc[0].coords)
    keep_w = [c for c in coords if c[0] < YANGTZE_CITY_VERTICES[0][0]]
    keep_e = [c for c in coords if c[0] > YANGTZE_CITY_VERTICES[-1][0] and c[1] > YANGTZE_CITY_VERTICES[-1][1]]
    yangtze = LineString(keep_w + YANGTZE_CITY_VERTICES + keep_e)
    wu = LineString(WU_SCHEMATIC)
    rivers = gpd.GeoDataFrame(
        {
            "river_id": ["yangtze", "wu"],
            "name": ["长江 Yangtze", "乌江 Wu"],
            "geometry_source": [
                "real, coarse: Natural Earth 50 m centreline (public domain); 3 vertices near Fuling city replaced by a schematic course through the confluence",
                "synthetic: schematic course (no open geometry available)",
            ],
        },
        geometry=[yangtze, wu],
        crs=WGS84,
    ).to_crs(METRIC)
    rivers["geometry"] = rivers.geometry.intersection(district.buffer(2_000))
    yline = rivers.geometry.iloc[0]
    wline = rivers.geometry.iloc[1]
    if wline.geom_type != "LineString" or yline.is_empty:
        raise SystemExit(f"river clipping failed: {yline.geom_type}, {wline.geom_type}")

    # Township territories (SCHEMATIC: real boundaries unavailable): the district is cut into river banks by the
    # Yangtze and the Wu; within each bank, Voronoi cells of that bank's seats, so no township straddles a river.
    cut = district
    for geom in rivers.geometry:
        cut = shapely.difference(cut, geom.buffer(1.0))
    parts = sorted(list(cut.geoms) if cut.geom_type == "MultiPolygon" else [cut], key=lambda p: -p.area)
    seat_bank = np.array([next((k for k, p in enumerate(parts) if p.contains(pt)), -1) for pt in seats_g.geometry])
    if (seat_bank < 0).any():
        raise SystemExit(f"township seat on a river line: {seats_g['name'][seat_bank < 0].tolist()}")
    terr = [None] * len(seats_g)
    leftovers = []
    for k, part in enumerate(parts):
        members = np.flatnonzero(seat_bank == k)
        if len(members) == 0:
            leftovers.append(part)
            continue
        if len(members) == 1:
            terr[members[0]] = part
            continue
        vor = list(shapely.voronoi_polygons(MultiPoint([seats_g.geometry.iloc[i] for i in members]), extend_to=part.buffer(20_000)).geoms)
        for i in members:
            cell = next(c for c in vor if c.contains(seats_g.geometry.iloc[i]))
            terr[i] = cell.intersection(part)
    for piece in leftovers:  # slivers between a meander and the outline: give them to the nearest territory
        j = int(np.argmin([t.distance(piece) for t in terr]))
        terr[j] = unary_union([terr[j], piece.buffer(2.0)]).intersection(district)
    townships = gpd.GeoDataFrame(
        {
            "township_code": seats_g["code"].values,
            "name": seats_g["name"].values,
            "kind": seats_g["kind"].values,
            "central_street": seats_g["name"].isin(CENTRAL_STREETS).values,
            "seat_lon": seats["lon"].round(5).values,
            "seat_lat": seats["lat"].round(5).values,
            "seat_source": seats_g["seat_source"].values,
            "geometry_source": "synthetic: Voronoi cell of the seat clipped to the district outline (schematic)",
        },
        geometry=terr,
        crs=METRIC,
    )

    bridges = []
    for bid, name, river, (lon, lat) in BRIDGES:
        target = gpd.GeoSeries([Point(lon, lat)], crs=WGS84).to_crs(METRIC).iloc[0]
        line = yline if river == "yangtze" else wline
        if line.geom_type == "MultiLineString":
            line = min(line.geoms, key=lambda g: g.distance(target))
        bridges.append((bid, name, river, line.interpolate(line.project(target))))
    bridges = gpd.GeoDataFrame(
        {"bridge_id": [b[0] for b in bridges], "name": [b[1] for b in bridges], "river_id": [b[2] for b in bridges],
         "geometry_source": "synthetic: schematic crossing snapped onto the river line"},
        geometry=[b[3] for b in bridges],
        crs=METRIC,
    )
    return outline_m, townships, rivers, bridges


def sample_in(poly, n: int, rng: np.random.Generator, *, centre=None, sigma_m=None, avoid=None, min_sep_m=300.0):
    """``n`` points inside ``poly``: uniform (rural villages) or Gaussian around ``centre`` (urban communities),
    at least ``min_sep_m`` apart and away from ``avoid`` (the rivers)."""
    minx, miny, maxx, maxy = poly.bounds
    pts: list[Point] = []
    tries = 0
    sep = min_sep_m
    while len(pts) < n:
        tries += 1
        if tries % 4000 == 0:
            sep *= 0.7
        if centre is None:
            p = Point(rng.uniform(minx, maxx), rng.uniform(miny, maxy))
        else:
            p = Point(centre.x + rng.normal(0, sigma_m), centre.y + rng.normal(0, sigma_m))
        if not poly.contains(p):
            continue
        if avoid is not None and avoid.distance(p) < 250:
            continue
        if any(p.distance(q) < sep for q in pts):
            continue
        pts.append(p)
    return pts


def build_units(townships: gpd.GeoDataFrame, rivers: gpd.GeoDataFrame, rng: np.random.Generator):
    water = unary_union(list(rivers.geometry))
    rows = []
    for t in townships.itertuples():
        seat = Point(*gpd.GeoSeries([Point(t.seat_lon, t.seat_lat)], crs=WGS84).to_crs(METRIC).iloc[0].coords[0])
        area_km2 = t.geometry.area / 1e6
        if t.name in ("敦仁街道", "崇义街道", "荔枝街道"):
            n_urban, n_rural, sigma = 14, 0, 900.0
        elif t.name in CENTRAL_STREETS:
            n_urban, n_rural, sigma = 12, int(np.clip(area_km2 / 12, 3, 14)), 1500.0
        elif t.name == "白涛街道":
            n_urban, n_rural, sigma = 5, int(np.clip(area_km2 / 10, 6, 16)), 1200.0
        else:
            n_urban, n_rural, sigma = (3 if t.name in URBAN_WEIGHT else 2), int(np.clip(area_km2 / 9, 8, 20)), 700.0
        poly = t.geometry
        seat_in = seat if poly.contains(seat) else poly.representative_point()
        urban_pts = sample_in(poly, n_urban, rng, centre=seat_in, sigma_m=sigma, avoid=water, min_sep_m=min(500.0, sigma / 2))
        rural_zone = poly.difference(seat_in.buffer(sigma * 1.5)) if n_rural else None
        rural_pts = sample_in(rural_zone, n_rural, rng, avoid=water, min_sep_m=1500.0) if n_rural else []
        for k, p in enumerate(urban_pts, 1):
            rows.append((f"{t.township_code}-C{k:02d}", t.township_code, True, p))
        for k, p in enumerate(rural_pts, 1):
            rows.append((f"{t.township_code}-V{k:02d}", t.township_code, False, p))
    pts = gpd.GeoDataFrame(
        {"unit_code": [r[0] for r in rows], "township_code": [r[1] for r in rows], "urban": [r[2] for r in rows]},
        geometry=[r[3] for r in rows],
        crs=METRIC,
    )
    # unit polygons: Voronoi of the unit points within their township
    polys = []
    for code, grp in pts.groupby("township_code", sort=False):
        terr = townships.loc[townships["township_code"] == code, "geometry"].iloc[0]
        if len(grp) == 1:
            polys += [terr]
            continue
        vor = list(shapely.voronoi_polygons(MultiPoint(list(grp.geometry)), extend_to=terr.buffer(5000)).geoms)
        for p in grp.geometry:
            cell = next(c for c in vor if c.contains(p))
            polys.append(cell.intersection(terr))
    order = pts.groupby("township_code", sort=False).apply(lambda g: list(g.index), include_groups=False).sum()
    pts = pts.loc[order].reset_index(drop=True)
    units = gpd.GeoDataFrame(pts.drop(columns="geometry"), geometry=polys, crs=METRIC)
    units["pop_x"] = pts.geometry.x
    units["pop_y"] = pts.geometry.y
    units["area_km2"] = (units.geometry.area / 1e6).round(3)
    units = units.sort_values("unit_code").reset_index(drop=True)
    return units


# ---------------------------------------------------------------------------------------------- population


def rural_age_factor(age: np.ndarray) -> np.ndarray:
    """SYNTHETIC relative odds of living in a rural unit by age (working ages move to town; elderly stay)."""
    f = np.ones_like(age, dtype=float)
    f[(age >= 15) & (age <= 24)] = 0.55
    f[(age >= 25) & (age <= 44)] = 0.65
    f[(age >= 45) & (age <= 59)] = 1.15
    f[age >= 60] = 1.55
    f[age <= 14] = 0.95
    return f


def split_urban_rural(single: np.ndarray, rural_total: int) -> np.ndarray:
    """(sex, age) single-year counts → (2 areas: urban, rural) × sex × age integers with the rural total exact."""
    ages = np.arange(OPEN_AGE + 1)
    odds = np.broadcast_to(rural_age_factor(ages), single.shape)
    lo, hi = 1e-4, 1e4
    for _ in range(200):  # bisection on the scale of the rural odds
        lam = np.sqrt(lo * hi)
        share = lam * odds / (1 + lam * odds)
        if (single * share).sum() > rural_total:
            hi = lam
        else:
            lo = lam
    exp_rural = single * share
    rural = np.floor(exp_rural).astype(np.int64)
    short = rural_total - rural.sum()
    order = np.argsort(-(exp_rural - rural).ravel(), kind="stable")[:short]
    rural.ravel()[order] += 1
    return np.stack([single - rural, rural])


def allocate_population(units: pd.DataFrame, townships: pd.DataFrame, single: np.ndarray, urban_total: int,
                        rural_total: int, rng: np.random.Generator) -> np.ndarray:
    """persons[unit, sex, age] (int) whose district sum by sex × age equals ``single`` and urban sum ``urban_total``."""
    tname = dict(zip(townships["township_code"], townships["name"]))
    w = np.zeros(len(units))
    for code, grp in units.groupby("township_code"):
        name = tname[code]
        urb = grp.index[grp["urban"].values]
        rur = grp.index[~grp["urban"].values]
        uw = URBAN_WEIGHT.get(name, TOWN_URBAN_WEIGHT * rng.uniform(0.6, 1.6))
        if len(urb):
            x = rng.lognormal(0, 0.35, len(urb))
            w[urb] = uw * x / x.sum()
        if len(rur):
            w[rur] = rng.lognormal(np.log(650), 0.45, len(rur))
    urban = units["urban"].values
    w[urban] *= urban_total / w[urban].sum()
    w[~urban] *= rural_total / w[~urban].sum()
    area_split = split_urban_rural(single, rural_total)
    z = (np.arange(OPEN_AGE + 1) - 40) / 25.0  # + for older ages
    tilt = rng.normal(0, 0.12, len(units))
    persons = np.zeros((len(units), 2, OPEN_AGE + 1), dtype=np.int64)
    for area, mask in ((0, urban), (1, ~urban)):
        idx = np.flatnonzero(mask)
        weight = w[idx, None] * np.exp(tilt[idx, None] * z[None, :])  # unit × age
        for s in range(2):
            for a in range(OPEN_AGE + 1):
                persons[idx, s, a] = integerize(weight[:, a], int(area_split[area, s, a]))
    return persons


# ---------------------------------------------------------------------------------------------- schools

LEVEL_GRADES = {
    "kindergarten": (-3, -1),
    "primary": (1, 6),
    "teaching_point": (1, 3),
    "junior": (7, 9),
    "nine_year": (1, 9),
    "senior_general": (10, 12),
    "senior_vocational": (10, 12),
}
CLASS_CAP = {"kindergarten": {-3: 25, -2: 30, -1: 35}, "primary": 45, "junior": 50, "senior": 50}
INDICATORS = [
    "qualified_teachers_per100", "key_teachers_per100", "pe_arts_teachers_per100", "teaching_space_m2_per_pupil",
    "sports_space_m2_per_pupil", "equipment_cny_per_pupil", "multimedia_rooms_per100",
]
# 2020 targets from the plan (专栏1): pupils.  Kindergarten public share of enrolled children 54.1 %, 普惠率 96 %.
TARGETS_2020 = {"kindergarten": 29_000, "primary": 67_000, "junior": 40_000, "senior_general": 25_000, "senior_vocational": 17_000}
TARGETS_2015 = {"primary": 73_000, "junior": 27_000}
KG_PUBLIC_SHARE_2020 = 0.541
KG_INCLUSIVE_SHARE_2020 = 0.96


def grade_cohort_weights(single_total: np.ndarray, grade: int, year: int) -> float:
    """Children in ``grade`` in school year ``year``/(year+1) (starting 1 Sep) as a census count: entry to grade 1 at
    age 6 by 31 Aug, so on the census day (1 Nov 2020) a grade-g pupil of 2020/21 is aged 5+g (born Nov–Aug, 10/12)
    or 6+g (born Sep–Oct, 2/12); ``year`` earlier shifts the cohort by 2020 - year years."""
    a = 5 + grade + (2020 - year)
    return (10 / 12) * single_total[a] + (2 / 12) * single_total[a + 1]


def build_schools(units: gpd.GeoDataFrame, townships: gpd.GeoDataFrame, persons: np.ndarray, rng: np.random.Generator):
    """SYNTHETIC school inventory.  Returns (schools GeoDataFrame in METRIC, enrollment_history DataFrame)."""
    tname = dict(zip(townships["township_code"], townships["name"]))
    single_total = persons.sum(axis=(0, 1)).astype(float)
    unit_xy = np.c_[units["pop_x"].values, units["pop_y"].values]
    unit_pop = persons.sum(axis=(1, 2))
    rows = []

    def add(level, township_code, xy, urban, *, role, public=True, inclusive=True, must_keep=False, small_rural=False):
        rows.append(dict(level=level, township_code=township_code, x=float(xy[0]), y=float(xy[1]), urban=bool(urban),
                         role=role, public=public, inclusive=inclusive, must_keep=must_keep, small_rural=small_rural))

    for code, grp in units.groupby("township_code"):
        name = tname[code]
        urb = grp[grp["urban"]]
        rur = grp[~grp["urban"]]
        upop = unit_pop[urb.index] if len(urb) else np.array([])
        # pick unit points by population for urban schools
        def urban_sites(k):
            order = np.argsort(-upop)
            picks = list(urb.index[order[: min(k, len(urb))]])
            while len(picks) < k:
                picks.append(urb.index[rng.integers(len(urb))])
            out = []
            for i in picks:
                out.append(unit_xy[i] + rng.normal(0, 150, 2))
            return out
        if name in CENTRAL_STREETS:
            big = name in ("敦仁街道", "崇义街道", "荔枝街道", "马鞍街道")
            n_pri, n_jun, n_nine = (4, 2, 1) if big else (3, 1, 1)
            for k, xy in enumerate(urban_sites(n_pri)):
                add("primary", code, xy, True, role="urban", must_keep=(k == 0))
            for k, xy in enumerate(urban_sites(n_jun)):
                add("junior", code, xy, True, role="urban", must_keep=(k == 0))
            for xy in urban_sites(n_nine):
                add("nine_year", code, xy, True, role="urban")
            n_kg = 8 if big else 6
        else:
            seat = unit_xy[urb.index[np.argmax(upop)]] if len(urb) else unit_xy[grp.index[0]]
            add("primary", code, seat + rng.normal(0, 120, 2), True, role="central", must_keep=True)
            add("junior", code, seat + rng.normal(0, 120, 2), True, role="central", must_keep=True)
            n_kg = 3
        # village primary schools and teaching points in rural units
        if len(rur):
            rpop = unit_pop[rur.index]
            n_vil = int(np.clip(round(len(rur) / 4.5), 1, 5))
            n_tp = int(np.clip(round(len(rur) / 9), 0, 2))
            order = np.argsort(-rpop)
            for i in rur.index[order[:n_vil]]:
                add("primary", code, unit_xy[i] + rng.normal(0, 200, 2), False, role="village", small_rural=True)
            spread = rur.index[order[n_vil:]]
            for i in rng.choice(spread, size=min(n_tp, len(spread)), replace=False) if len(spread) else []:
                add("teaching_point", code, unit_xy[i] + rng.normal(0, 200, 2), False, role="teaching_point", small_rural=True)
        # kindergartens
        sites = urban_sites(n_kg) if len(urb) else [unit_xy[grp.index[0]]]
        for k, xy in enumerate(sites):
            pub = rng.random() < (0.45 if name in CENTRAL_STREETS else 0.75)
            add("kindergarten", code, xy, len(urb) > 0, role="kg", public=pub, inclusive=True)
        if len(rur) >= 6:
            i = rur.index[np.argmax(unit_pop[rur.index])]
            add("kindergarten", code, unit_xy[i] + rng.normal(0, 150, 2), False, role="kg_rural", public=True)
    # senior schools: general in the central streets + two towns; vocational in the city
    central_codes = townships.loc[townships["central_street"], "township_code"].tolist()
    for k, code in enumerate(["500102006", "500102008", "500102007", "500102014", "500102009", "500102011", "500102013"]):
        grp = units[(units["township_code"] == code) & units["urban"]]
        i = grp.index[np.argmax(unit_pop[grp.index])]
        add("senior_general", code, unit_xy[i] + rng.normal(0, 300, 2), True, role="senior", must_keep=True)
    for code in ["500102010", "500102012", "500102008", "500102015"]:
        grp = units[(units["township_code"] == code) & units["urban"]]
        i = grp.index[np.argmax(unit_pop[grp.index])]
        add("senior_vocational", code, unit_xy[i] + rng.normal(0, 300, 2), True, role="senior", must_keep=True)
    # convert two urban junior + two urban primary pairs into nine-year? (already added above)
    sch = pd.DataFrame(rows)
    sch["grade_min"] = [LEVEL_GRADES[l][0] for l in sch["level"]]
    sch["grade_max"] = [LEVEL_GRADES[l][1] for l in sch["level"]]
    # private kindergartens: choose among non-public so that the public share of children lands at 54.1 %
    n = len(sch)

    # --- pupils by school × grade for 2020: each unit's children go to the nearest school serving the grade,
    # except an "进城上学" share of rural pupils who attend the nearest central-street school.
    grades = [-3, -2, -1] + list(range(1, 13))
    pupils = np.zeros((n, len(grades)))
    sxy = sch[["x", "y"]].values
    d = np.sqrt(((unit_xy[:, None, :] - sxy[None, :, :]) ** 2).sum(-1))  # unit × school (m)
    central_mask = sch["township_code"].isin(central_codes).values
    unit_age = persons.sum(axis=1).astype(float)  # unit × age
    into_town = {"primary": 0.22, "junior": 0.35, "kindergarten": 0.10}
    for gi, g in enumerate(grades):
        if g <= -1:
            level_key, age = "kindergarten", g + 6  # 小班 age 3 … 大班 age 5 (census age ≈ age on 31 Aug)
        elif g <= 9:
            level_key, age = ("primary" if g <= 6 else "junior"), 5 + g
        else:
            level_key, age = ("senior", 5 + g)
        serves = (sch["grade_min"].values <= g) & (sch["grade_max"].values >= g)
        if level_key == "senior":
            serves = serves & sch["level"].eq("senior_general").values
        demand = (10 / 12) * unit_age[:, age] + (2 / 12) * unit_age[:, min(age + 1, OPEN_AGE)]
        dd = np.where(serves[None, :], d, np.inf)
        nearest = np.argmin(dd, axis=1)
        share_town = np.where(units["urban"].values, 0.0, into_town.get(level_key, 0.0))
        dc = np.where((serves & central_mask)[None, :], d, np.inf)
        nearest_c = np.argmin(dc, axis=1)
        np.add.at(pupils[:, gi], nearest, demand * (1 - share_town))
        np.add.at(pupils[:, gi], nearest_c, demand * share_town)
    # vocational seniors: split by size
    voc = np.flatnonzero(sch["level"].eq("senior_vocational").values)
    gen = np.flatnonzero(sch["level"].eq("senior_general").values)
    for gi, g in enumerate(grades):
        if g >= 10:
            w_v = rng.uniform(0.7, 1.3, len(voc))
            pupils[voc, gi] = w_v / w_v.sum()
    # calibrate to the plan's 2020 totals by level: scale per grade group
    def calibrate(mask_rows, gsel, total):
        block = pupils[np.ix_(mask_rows, gsel)]
        block *= total / block.sum()
        pupils[np.ix_(mask_rows, gsel)] = block
    gidx = {g: i for i, g in enumerate(grades)}
    kg = sch["level"].eq("kindergarten").values
    calibrate(kg, [gidx[g] for g in (-3, -2, -1)], TARGETS_2020["kindergarten"])
    comp = sch["level"].isin(["primary", "teaching_point", "nine_year"]).values
    calibrate(comp, [gidx[g] for g in range(1, 7)], TARGETS_2020["primary"])
    compj = sch["level"].isin(["junior", "nine_year"]).values
    calibrate(compj, [gidx[g] for g in range(7, 10)], TARGETS_2020["junior"])
    calibrate(gen, [gidx[g] for g in range(10, 13)], TARGETS_2020["senior_general"])
    calibrate(voc, [gidx[g] for g in range(10, 13)], TARGETS_2020["senior_vocational"])
    # integers: per grade, largest remainder over schools, grade totals rounded
    for gi in range(len(grades)):
        pupils[:, gi] = integerize(pupils[:, gi], int(round(pupils[:, gi].sum())))
    pupils = pupils.astype(np.int64)
    # fix level totals exactly
    def fix_total(mask_rows, gsel, total):
        cur = pupils[np.ix_(mask_rows, gsel)].sum()
        diff = total - cur
        gi = gsel[0]
        rows_ = np.flatnonzero(mask_rows)
        tgt = rows_[np.argmax(pupils[rows_, gi])]
        pupils[tgt, gi] += diff
    fix_total(kg, [gidx[g] for g in (-3, -2, -1)], TARGETS_2020["kindergarten"])
    fix_total(comp, [gidx[g] for g in range(1, 7)], TARGETS_2020["primary"])
    fix_total(compj, [gidx[g] for g in range(7, 10)], TARGETS_2020["junior"])
    fix_total(sch["level"].eq("senior_general").values, [gidx[g] for g in range(10, 13)], TARGETS_2020["senior_general"])
    fix_total(sch["level"].eq("senior_vocational").values, [gidx[g] for g in range(10, 13)], TARGETS_2020["senior_vocational"])

    # drop sites that ended up with no pupils at all (e.g. a kindergarten out-competed by its neighbours)
    keep = pupils.sum(1) > 0
    sch = sch[keep].reset_index(drop=True)
    pupils, sxy = pupils[keep], sxy[keep]
    n = len(sch)
    kg = sch["level"].eq("kindergarten").values
    # --- kindergarten ownership: make the public share of enrolled children 54.1 % and 普惠 96 %
    kg_idx = np.flatnonzero(kg)
    kg_children = pupils[kg_idx][:, [gidx[-3], gidx[-2], gidx[-1]]].sum(1)
    order = rng.permutation(len(kg_idx))
    public = np.zeros(len(kg_idx), bool)
    acc = 0
    target_pub = KG_PUBLIC_SHARE_2020 * kg_children.sum()
    for i in order:
        if acc + kg_children[i] <= target_pub * 1.004:
            public[i] = True
            acc += kg_children[i]
    inclusive = public.copy()
    priv = np.flatnonzero(~public)
    priv = priv[np.argsort(kg_children[priv])]  # the smallest private ones stay non-inclusive
    non_incl_target = (1 - KG_INCLUSIVE_SHARE_2020) * kg_children.sum()
    acc = 0
    for i in priv:
        if acc + kg_children[i] <= non_incl_target * 1.02:
            acc += kg_children[i]
        else:
            inclusive[i] = True
    sch.loc[kg_idx, "public"] = public
    sch.loc[kg_idx, "inclusive"] = inclusive

    # --- classrooms, classes per grade (some urban schools overcrowded → 大班额 today)
    classes = np.zeros_like(pupils)
    classrooms = np.zeros(n, dtype=np.int64)
    for i in range(n):
        lvl = sch.at[i, "level"]
        gsel = [gi for gi, g in enumerate(grades) if sch.at[i, "grade_min"] <= g <= sch.at[i, "grade_max"]]
        need = 0
        for gi in gsel:
            g = grades[gi]
            cap = CLASS_CAP["kindergarten"][g] if g < 0 else (45 if g <= 6 else 50)
            need += int(np.ceil(pupils[i, gi] / cap)) if pupils[i, gi] > 0 else (1 if lvl != "kindergarten" else 0)
        crowded = sch.at[i, "urban"] and sch.at[i, "role"] == "urban" and rng.random() < 0.45
        factor = rng.uniform(0.72, 0.85) if crowded else rng.uniform(1.0, 1.3)
        rooms = max(int(round(need * factor)), len(gsel) if lvl != "teaching_point" else 1)
        classrooms[i] = rooms
        # classes by grade: proportional to pupils, at least one per grade with pupils, using at most `rooms`
        p = pupils[i, gsel].astype(float)
        base = np.where(p > 0, 1, 0)
        if rooms > base.sum() and p.sum() > 0:
            extra_need = np.array([max(int(np.ceil(pp / (CLASS_CAP["kindergarten"][grades[gi]] if grades[gi] < 0 else (45 if grades[gi] <= 6 else 50)))) - 1, 0) for pp, gi in zip(p, gsel)])
            budget = rooms - base.sum()
            if extra_need.sum() <= budget:
                base = base + extra_need
            else:
                base = base + integerize(extra_need.astype(float), budget)
        classes[i, gsel] = base
    bad = np.argwhere((pupils > 0) & (classes <= 0))
    if len(bad):
        raise SystemExit(f"a grade with pupils has no class: {[(sch.at[i, 'level'], grades[g], pupils[i, g]) for i, g in bad[:5]]}")
    # teaching points: multi-grade classes in reality; here one class per grade present
    # --- teachers, boarding, indicators
    tot = pupils.sum(1)
    level = sch["level"].values
    ratio = np.select([level == "kindergarten", np.isin(level, ["primary", "teaching_point"]), level == "junior",
                       level == "nine_year"], [11.0, 16.0, 12.5, 14.0], 12.5)
    ratio = ratio * np.where(sch["urban"].values, rng.uniform(1.05, 1.25, n), rng.uniform(0.55, 0.9, n))
    teachers = np.maximum(np.ceil(tot / ratio), np.where(level == "teaching_point", 1, 3)).astype(np.int64)
    boarding = np.where(
        (~sch["urban"].values | (sch["role"].values == "central")) & np.isin(level, ["junior", "nine_year", "primary"]),
        np.round(tot * np.where(level == "primary", rng.uniform(0.1, 0.35, n), rng.uniform(0.4, 0.7, n))), 0,
    ).astype(np.int64)
    boarding[np.isin(level, ["senior_general", "senior_vocational"])] = np.round(tot[np.isin(level, ["senior_general", "senior_vocational"])] * 0.6)
    boarding[sch["role"].values == "village"] = 0
    boarding[level == "teaching_point"] = 0
    safe = np.maximum(tot, 1)
    ind = {}
    ind["qualified_teachers_per100"] = np.round(teachers * rng.uniform(0.85, 1.0, n) / safe * 100, 2)
    ind["key_teachers_per100"] = np.round(teachers * np.where(sch["urban"].values, rng.uniform(0.12, 0.3, n), rng.uniform(0.02, 0.12, n)) / safe * 100, 2)
    ind["pe_arts_teachers_per100"] = np.round(teachers * rng.uniform(0.06, 0.16, n) / safe * 100, 2)
    ind["teaching_space_m2_per_pupil"] = np.round(classrooms * rng.uniform(60, 80, n) * 1.8 / safe, 2)
    ind["sports_space_m2_per_pupil"] = np.round(np.where(sch["urban"].values, rng.uniform(1500, 9000, n), rng.uniform(800, 3000, n)) / safe, 2)
    ind["equipment_cny_per_pupil"] = np.round(np.where(sch["urban"].values, rng.uniform(1500, 3500, n), rng.uniform(600, 2500, n)) * rng.uniform(0.8, 1.2, n), 0)
    ind["multimedia_rooms_per100"] = np.round(classrooms * rng.uniform(0.6, 1.0, n) / safe * 100, 2)

    # ids and names (names are SYNTHETIC and marked so)
    level_code = {"kindergarten": "K", "primary": "P", "teaching_point": "T", "junior": "J", "nine_year": "N",
                  "senior_general": "G", "senior_vocational": "V"}
    level_cn = {"kindergarten": "幼儿园", "primary": "小学", "teaching_point": "教学点", "junior": "初级中学",
                "nine_year": "九年一贯制学校", "senior_general": "高级中学", "senior_vocational": "职业学校"}
    ids, names = [], []
    counter: dict = {}
    for r in sch.itertuples():
        key = (r.township_code, r.level)
        counter[key] = counter.get(key, 0) + 1
        k = counter[key]
        ids.append(f"S{r.township_code[-3:]}{level_code[r.level]}{k:02d}")
        short = tname[r.township_code].removesuffix("街道").removesuffix("镇").removesuffix("乡")
        prefix = "中心" if r.role == "central" and r.level == "primary" else ""
        names.append(f"{short}{prefix}{level_cn[r.level]}{k if r.role != 'central' else ''}（合成 synthetic）")
    out = pd.DataFrame({
        "school_id": ids, "name": names, "level": sch["level"], "grade_min": sch["grade_min"], "grade_max": sch["grade_max"],
        "public": sch["public"].astype(bool), "inclusive": sch["inclusive"].astype(bool), "classrooms": classrooms,
        "boarding_beds": boarding, "teachers": teachers, "township_code": sch["township_code"],
        "urban": sch["urban"].astype(bool), "must_keep": sch["must_keep"].astype(bool),
        "small_rural": sch["small_rural"].astype(bool),
    })
    for gi, g in enumerate(grades):
        out[f"pupils_g{g}"] = pupils[:, gi]
    for gi, g in enumerate(grades):
        out[f"classes_g{g}"] = classes[:, gi]
    for k, v in ind.items():
        out[k] = v
    out["data_status"] = "SYNTHETIC: no real school list exists; calibrated to the plan's 2020 totals (专栏1)"
    out = out.sort_values("school_id").reset_index(drop=True)
    perm = np.argsort(np.array(ids), kind="stable")
    sxy_sorted = sxy[perm]
    schools = gpd.GeoDataFrame(out, geometry=gpd.points_from_xy(sxy_sorted[:, 0], sxy_sorted[:, 1]), crs=METRIC)
    history = build_history(schools, single_total, grades, rng)
    return schools, history


def build_history(schools: gpd.GeoDataFrame, single_total: np.ndarray, grades: list[int], rng: np.random.Generator) -> pd.DataFrame:
    """Enrollment 2015–2020 by school × grade (compulsory grades 1–9), SYNTHETIC but consistent with the plan's
    district totals (2015: 73,000 primary / 27,000 junior; 2020: 67,000 / 40,000) and with the census cohorts:
    grade g in year y follows the cohort aged 5+g+(2020−y) at the census, times a level factor interpolated
    linearly between 2015 and 2020; school shares drift (urban +2 %/yr, rural −4 %/yr toward 2020)."""
    years = list(range(2015, 2021))
    rows = []
    urban = schools["urban"].values
    drift = np.where(urban, 0.02, -0.04)
    for lvl, gs, tot15, tot20 in (("primary", range(1, 7), TARGETS_2015["primary"], TARGETS_2020["primary"]),
                                  ("junior", range(7, 10), TARGETS_2015["junior"], TARGETS_2020["junior"])):
        coh = {y: np.array([grade_cohort_weights(single_total, g, y) for g in gs]) for y in years}
        f15 = tot15 / coh[2015].sum()
        f20 = tot20 / coh[2020].sum()
        for y in years:
            f = f15 + (f20 - f15) * (y - 2015) / 5
            grade_tot = coh[y] * f
            if y == 2020:
                grade_tot = np.array([schools[f"pupils_g{g}"].sum() for g in gs], dtype=float)
            else:
                grade_tot = integerize(grade_tot, int(round(tot15 + (tot20 - tot15) * (y - 2015) / 5)))
            for k, g in enumerate(gs):
                base = schools[f"pupils_g{g}"].values.astype(float)
                share = base * np.clip(1 + drift * (y - 2020), 0.2, None) * (1 if y == 2020 else rng.uniform(0.95, 1.05, len(base)))
                share[base == 0] = 0
                vals = base.astype(np.int64) if y == 2020 else integerize(share, int(grade_tot[k]))
                for sid, v, lv in zip(schools["school_id"].values, vals, schools["level"].values):
                    if schools.loc[schools["school_id"] == sid, "grade_min"].iloc[0] <= g <= schools.loc[schools["school_id"] == sid, "grade_max"].iloc[0]:
                        rows.append((sid, y, g, int(v)))
    hist = pd.DataFrame(rows, columns=["school_id", "year", "grade", "pupils"])
    return hist.sort_values(["school_id", "year", "grade"]).reset_index(drop=True)


def build_candidates(units: gpd.GeoDataFrame, townships: gpd.GeoDataFrame, persons: np.ndarray, rng: np.random.Generator,
                     schools: gpd.GeoDataFrame):
    """SYNTHETIC candidate sites: 20 for new compulsory schools in the growing streets, 4 rural boarding-school sites,
    one in every urban unit more than 3 km (straight × 1.3) from a primary school, and 40 residential complexes with
    land reserved for a kindergarten (小区配套园); the complexes also form the housing pipeline."""
    tname = dict(zip(townships["township_code"], townships["name"]))
    growth = ["江北街道", "江东街道", "马鞍街道", "李渡街道", "龙桥街道", "荔枝街道", "崇义街道", "白涛街道"]
    rows = []
    urb = units[units["urban"] & units["township_code"].map(tname).isin(growth)]
    pick = rng.choice(urb.index, size=20, replace=False)
    for k, i in enumerate(sorted(pick), 1):
        rows.append(dict(site_id=f"CS{k:02d}", kind="school", township_code=units.at[i, "township_code"], urban=True,
                         capacity_classes=int(rng.choice([24, 30, 36])), land_m2=int(rng.uniform(25_000, 45_000)),
                         available_year=int(rng.integers(2022, 2026)), dwellings=0,
                         x=units.at[i, "pop_x"] + rng.normal(0, 250), y=units.at[i, "pop_y"] + rng.normal(0, 250)))
    for t in ["蔺市街道", "义和街道", "珍溪镇", "焦石镇"]:  # rural boarding-school candidates at town seats
        code = townships.loc[townships["name"] == t, "township_code"].iloc[0]
        g = units[(units["township_code"] == code) & units["urban"]]
        i = g.index[0]
        rows.append(dict(site_id=f"CS{len(rows) + 1:02d}", kind="school", township_code=code, urban=True, capacity_classes=24,
                         land_m2=30_000, available_year=2024, dwellings=0, x=units.at[i, "pop_x"] + 300, y=units.at[i, "pop_y"] + 300))
    urb_all = units[units["urban"] & units["township_code"].map(tname).isin(growth + ["敦仁街道", "蔺市街道", "义和街道"])]
    pick = rng.choice(urb_all.index, size=40, replace=False)
    for k, i in enumerate(sorted(pick), 1):
        rows.append(dict(site_id=f"KC{k:02d}", kind="kindergarten_complex", township_code=units.at[i, "township_code"], urban=True,
                         capacity_classes=int(rng.choice([6, 9, 12])), land_m2=int(rng.uniform(3_000, 6_000)),
                         available_year=int(rng.integers(2021, 2029)), dwellings=int(rng.integers(800, 3000)),
                         x=units.at[i, "pop_x"] + rng.normal(0, 120), y=units.at[i, "pop_y"] + rng.normal(0, 120)))
    # every urban unit farther than 3 km (straight line × 1.3 detour) from a school teaching grade 1 gets a candidate
    # school site at its population point, so that the plan's urban travel limit can be met by building
    prim = schools[(schools["grade_min"] <= 1) & (schools["grade_max"] >= 1)]
    pxy = np.c_[prim.geometry.x, prim.geometry.y]
    for i in units.index[units["urban"]]:
        d = np.sqrt(((pxy - [units.at[i, "pop_x"], units.at[i, "pop_y"]]) ** 2).sum(1)).min() * 1.3
        if d > 3000:
            rows.append(dict(site_id=f"CS{sum(r['kind'] == 'school' for r in rows) + 1:02d}", kind="school",
                             township_code=units.at[i, "township_code"], urban=True, capacity_classes=18, land_m2=20_000,
                             available_year=2024, dwellings=0, x=units.at[i, "pop_x"], y=units.at[i, "pop_y"]))
    df = pd.DataFrame(rows)
    df["data_status"] = "SYNTHETIC candidate site"
    gdf = gpd.GeoDataFrame(df.drop(columns=["x", "y"]), geometry=gpd.points_from_xy(df["x"], df["y"]), crs=METRIC)
    # unit_code of the site
    joined = gpd.sjoin(gdf, units[["unit_code", "geometry"]], how="left", predicate="within")
    gdf["unit_code"] = joined.groupby(level=0)["unit_code"].first()
    return gdf


# ---------------------------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = Path(__file__).resolve().parents[1]
    ap.add_argument("--sources", type=Path, default=root.parent / "shared" / "data-sources")
    ap.add_argument("--out", type=Path, default=root / "data")
    ap.add_argument("--seed", type=int, default=20201101)
    args = ap.parse_args(argv)
    src, out = args.sources, args.out
    if not src.is_dir():
        raise SystemExit(f"sources folder not found: {src} (expected ../shared/data-sources)")
    rng = np.random.default_rng(args.seed)

    census = read_census(src)
    urban_total, rural_total = read_urban_total(src)
    total = int(census["total"].sum())
    if urban_total + rural_total != total:
        raise SystemExit(f"urban+rural {urban_total + rural_total} != census total {total}")
    mx = read_mx(src)
    mx20 = mx[mx["period_start"] == 2020]
    single = np.stack([
        graduate_sex(census["male"].values, open_group_weights(mx20[(mx20["sex"] == "male") & (mx20["age_start"] >= 85)])),
        graduate_sex(census["female"].values, open_group_weights(mx20[(mx20["sex"] == "female") & (mx20["age_start"] >= 85)])),
    ])  # sex order here: male, female

    outline, townships, rivers, bridges = build_geography(src, rng)
    units = build_units(townships, rivers, rng)
    persons = allocate_population(units, townships, single, urban_total, rural_total, rng)
    # sanity: exact census controls
    assert persons.sum() == total and persons[:, 0].sum() == census["male"].sum()
    assert persons[units["urban"].values].sum() == urban_total

    schools, history = build_schools(units, townships, persons, rng)
    cands = build_candidates(units, townships, persons, rng, schools)

    # ---- write
    write_geojson(outline, out / "district.geojson")
    write_geojson(townships, out / "townships.geojson")
    write_geojson(rivers, out / "rivers.geojson")
    write_geojson(bridges, out / "bridges.geojson")
    upts = gpd.GeoSeries(gpd.points_from_xy(units["pop_x"], units["pop_y"]), crs=METRIC).to_crs(WGS84)
    units_out = units.drop(columns=["pop_x", "pop_y"]).assign(pop_lon=upts.x.round(6).values, pop_lat=upts.y.round(6).values)
    units_out["data_status"] = "SYNTHETIC unit (village/community scale); population controlled to the real census"
    write_geojson(units_out, out / "population" / "units.geojson")
    sexes = np.array(["male", "female"])
    u, s, a = np.meshgrid(np.arange(len(units)), np.arange(2), np.arange(OPEN_AGE + 1), indexing="ij")
    base = pd.DataFrame({"unit_code": units["unit_code"].values[u.ravel()], "sex": sexes[s.ravel()], "age": a.ravel(),
                         "persons": persons.ravel()})
    write_csv(base, out / "population" / "base_population.csv")
    census_out = census.rename(columns={"male": "male", "female": "female"})
    census_out.insert(0, "district_code", "500102")
    write_csv(census_out, out / "population" / "census2020_fuling_age_sex.csv")
    write_csv(pd.DataFrame({"district_code": ["500102"], "total": [total], "male": [int(census["male"].sum())],
                            "female": [int(census["female"].sum())], "urban": [urban_total], "rural": [rural_total],
                            "census_date": [BASE_DATE]}), out / "population" / "census2020_fuling_totals.csv")
    write_csv(mx, out / "population" / "mortality_mx.csv")
    write_fertility(src, out, single)
    schools_out = schools.copy()
    write_geojson(schools_out, out / "schools.geojson")
    write_csv(history, out / "enrollment_history.csv")
    write_geojson(cands.drop(columns=["dwellings"]), out / "candidate_sites.geojson")
    pipeline = cands[cands["kind"] == "kindergarten_complex"][["site_id", "unit_code", "available_year", "dwellings"]]
    pipeline = pipeline.rename(columns={"available_year": "year"}).sort_values(["year", "site_id"])
    write_csv(pipeline, out / "population" / "housing_pipeline.csv")
    print(f"built {out}: {len(units)} units, {len(schools)} schools, {len(cands)} candidate sites; population {persons.sum():,}")
    return 0


def write_fertility(src: Path, out: Path, single: np.ndarray) -> None:
    """tfr.csv (China WPP estimates and variants; Fuling = China × a base-year calibration factor), asfr_schedule.csv
    (WPP percent ASFR by 5-year group), srb.csv.  Calibration: births in the 12 months before the census =
    census age 0 / S0 (S0 = L0/l0 from WPP 2020–2025 mx, both sexes); exposure = women by single age at the census;
    ASFR_a = TFR × percent_g/100/5 for a in group g.  TFR_Fuling_2020 = births / Σ_a (percent_g/500) W_a."""
    wpp = src / "wpp2024_china"
    pa = pd.read_csv(wpp / "china_percentASFR5.tsv", sep="\t")
    years = [c for c in pa.columns if c.isdigit()]
    sched = pa.melt(id_vars=["age"], value_vars=years, var_name="year", value_name="percent")
    sched["year"] = sched["year"].astype(int)
    sched["age_start"] = sched["age"].str.split("-").str[0].astype(int)
    sched = sched[(sched["year"] >= 2000)][["year", "age_start", "percent"]].sort_values(["year", "age_start"])
    write_csv(sched, out / "population" / "asfr_schedule.csv")

    est = pd.read_csv(wpp / "china_tfr.tsv", sep="\t")
    rows = [(int(y), "estimate", float(est[y].iloc[0])) for y in est.columns if y.isdigit() and int(y) >= 2000]
    for var, fname in (("median", "china_tfrprojMed.tsv"), ("low", "china_tfrprojLow.tsv"), ("high", "china_tfrprojHigh.tsv")):
        d = pd.read_csv(wpp / fname, sep="\t")
        rows += [(int(y), var, float(d[y].iloc[0])) for y in d.columns if y.isdigit()]
    tfr = pd.DataFrame(rows, columns=["year", "variant", "tfr_china"])

    mx = read_mx(src)
    m0 = mx[(mx["period_start"] == 2020) & (mx["age_start"] == 0)]["mx"].mean()
    s0 = np.exp(-m0 * 0.5)  # person-years lived in the first year / l0, assuming deaths spread over the year
    age0 = single[:, 0].sum()
    births = age0 / s0
    s20 = sched[sched["year"] == 2020].set_index("age_start")["percent"]
    women = single[1]
    expo = sum(s20.get(5 * (a // 5), 0.0) / 500.0 * women[a] for a in range(10, 55))
    tfr_fuling_2020 = births / expo
    factor = tfr_fuling_2020 / tfr.loc[(tfr["year"] == 2020) & (tfr["variant"] == "estimate"), "tfr_china"].iloc[0]
    tfr["tfr_fuling"] = (tfr["tfr_china"] * factor).round(4)
    tfr["tfr_china"] = tfr["tfr_china"].round(4)
    write_csv(tfr, out / "population" / "tfr.csv")
    (out / "population" / "fertility_calibration.json").write_text(json.dumps({
        "census_age0": int(age0), "survival_birth_to_age0": round(float(s0), 6), "births_12m_before_census": round(float(births), 1),
        "tfr_fuling_2020": round(float(tfr_fuling_2020), 4), "factor_vs_china_2020": round(float(factor), 4),
        "method": write_fertility.__doc__.split("\n    ")[0].strip(),
    }, ensure_ascii=False, indent=2) + "\n")
    sr = pd.read_csv(wpp / "china_sexRatio.tsv", sep="\t")
    srb = pd.DataFrame([(int(y), float(sr[y].iloc[0])) for y in sr.columns if y.isdigit() and int(y) >= 2000], columns=["year", "srb"])
    write_csv(srb, out / "population" / "srb.csv")


if __name__ == "__main__":
    raise SystemExit(main())
