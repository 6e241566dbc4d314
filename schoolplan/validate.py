"""Validate a data folder against the documented schema (data/README.md) and report every problem at once.

Each check appends a :class:`~forecast.errors.Problem` naming the file, the rows (CSV line numbers counting the
header as line 1, or GeoJSON feature numbers from 0 with their ids) and the fix.  Nothing is repaired or
filled silently.  :func:`validate_data_dir` returns the problems; :func:`load_dataset` (in
``schoolplan.dataset``) raises :class:`~schoolplan.errors.DataValidationError` listing them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio

from forecast.errors import Problem, format_rows

WGS84 = "EPSG:4326"
METRIC = "EPSG:4545"
OPEN_AGE = 100
SEXES = ("male", "female")
LEVEL_GRADES = {
    "kindergarten": (-3, -1),
    "primary": (1, 6),
    "teaching_point": (1, 6),
    "junior": (7, 9),
    "nine_year": (1, 9),
    "complete_secondary": (7, 12),
    "senior_general": (10, 12),
    "senior_vocational": (10, 12),
}
GRADES = [-3, -2, -1] + list(range(1, 13))
INDICATORS = (
    "qualified_teachers_per100", "key_teachers_per100", "pe_arts_teachers_per100", "teaching_space_m2_per_pupil",
    "sports_space_m2_per_pupil", "equipment_cny_per_pupil", "multimedia_rooms_per100",
)
CANDIDATE_KINDS = ("school", "kindergarten_complex")
TFR_VARIANTS = ("estimate", "median", "low", "high")
ABRIDGED_AGES = (0, 1) + tuple(range(5, 101, 5))
DISTRICT_TOLERANCE_M = 100.0  # points/polygons may stick out of the (simplified) outline by at most this much

# ---------------------------------------------------------------------------------------------- schema


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "str" | "int" | "float" | "bool" | "code9"
    min: float | None = None
    max: float | None = None
    allowed: tuple | None = None
    unique: bool = False
    required: bool = True


@dataclass(frozen=True)
class FileSpec:
    path: str            # relative to the data folder
    columns: tuple[Column, ...]
    geometry: str | None = None   # "Polygon" (incl. MultiPolygon), "Point", "LineString" or None for CSV
    description: str = ""
    optional: bool = False
    extra_columns: Callable[[list[str]], list[str]] = field(default=lambda cols: [])


def _school_columns() -> tuple[Column, ...]:
    cols = [
        Column("school_id", "str", unique=True), Column("name", "str"),
        Column("level", "str", allowed=tuple(LEVEL_GRADES)),
        Column("grade_min", "int", -3, 12), Column("grade_max", "int", -3, 12),
        Column("public", "bool"), Column("inclusive", "bool"), Column("classrooms", "int", 0),
        Column("boarding_beds", "int", 0), Column("teachers", "int", 0), Column("township_code", "code9"),
        Column("urban", "bool"), Column("must_keep", "bool"), Column("small_rural", "bool"),
    ]
    cols += [Column(f"pupils_g{g}", "int", 0) for g in GRADES]
    cols += [Column(f"classes_g{g}", "int", 0) for g in GRADES]
    cols += [Column(ind, "float", 0) for ind in INDICATORS]
    return tuple(cols)


SPECS: dict[str, FileSpec] = {
    "district": FileSpec("district.geojson", (Column("district_code", "str"), Column("name", "str")), "Polygon"),
    "townships": FileSpec("townships.geojson", (
        Column("township_code", "code9", unique=True), Column("name", "str"),
        Column("kind", "str", allowed=("street", "town", "township")),
        Column("seat_lon", "float", -180, 180), Column("seat_lat", "float", -90, 90)), "Polygon"),
    "units": FileSpec("population/units.geojson", (
        Column("unit_code", "str", unique=True), Column("township_code", "code9"), Column("urban", "bool"),
        Column("pop_lon", "float", -180, 180), Column("pop_lat", "float", -90, 90)), "Polygon"),
    "base_population": FileSpec("population/base_population.csv", (
        Column("unit_code", "str"), Column("sex", "str", allowed=SEXES), Column("age", "int", 0, OPEN_AGE),
        Column("persons", "int", 0))),
    "mortality": FileSpec("population/mortality_mx.csv", (
        Column("period_start", "int", 1950, 2200), Column("sex", "str", allowed=SEXES),
        Column("age_start", "int", allowed=ABRIDGED_AGES), Column("mx", "float", 0, 5))),
    "asfr_schedule": FileSpec("population/asfr_schedule.csv", (
        Column("year", "int", 1950, 2200), Column("age_start", "int", 10, 54), Column("percent", "float", 0, 100))),
    "tfr": FileSpec("population/tfr.csv", (
        Column("year", "int", 1950, 2200), Column("variant", "str", allowed=TFR_VARIANTS),
        Column("tfr_china", "float", 0, 10), Column("tfr_fuling", "float", 0, 10))),
    "srb": FileSpec("population/srb.csv", (Column("year", "int", 1950, 2200), Column("srb", "float", 0.9, 1.3))),
    "housing_pipeline": FileSpec("population/housing_pipeline.csv", (
        Column("site_id", "str"), Column("unit_code", "str"), Column("year", "int", 2000, 2100),
        Column("dwellings", "int", 0)), optional=True),
    "schools": FileSpec("schools.geojson", _school_columns(), "Point"),
    "enrollment_history": FileSpec("enrollment_history.csv", (
        Column("school_id", "str"), Column("year", "int", 1990, 2100), Column("grade", "int", -3, 12),
        Column("pupils", "int", 0))),
    "candidate_sites": FileSpec("candidate_sites.geojson", (
        Column("site_id", "str", unique=True), Column("kind", "str", allowed=CANDIDATE_KINDS),
        Column("township_code", "code9"), Column("urban", "bool"), Column("capacity_classes", "int", 0)),
        "Point", optional=True),
    "rivers": FileSpec("rivers.geojson", (Column("river_id", "str", unique=True), Column("name", "str")),
                       "LineString", optional=True),
    "bridges": FileSpec("bridges.geojson", (Column("bridge_id", "str", unique=True), Column("river_id", "str")),
                        "Point", optional=True),
}

# ---------------------------------------------------------------------------------------------- reading


def _row_labels(df: pd.DataFrame, mask: np.ndarray, is_geo: bool, id_col: str | None) -> str:
    idx = np.flatnonzero(mask)
    if is_geo:
        if id_col and id_col in df.columns:
            labels = [f"feature {i} ({df[id_col].iloc[i]})" for i in idx]
        else:
            labels = [f"feature {i}" for i in idx]
        shown = ", ".join(labels[:8]) + (f" … (+{len(labels) - 8} more)" if len(labels) > 8 else "")
        return shown
    return format_rows([i + 2 for i in idx])  # CSV line numbers (header is line 1)


def read_table(data_dir: Path, key: str, problems: list[Problem]) -> pd.DataFrame | None:
    """Read one file of the schema; on failure add a problem and return None."""
    spec = SPECS[key]
    path = data_dir / spec.path
    if not path.exists():
        if not spec.optional:
            problems.append(Problem(spec.path, "file is missing", f"add {spec.path} as documented in data/README.md"))
        return None
    try:
        if spec.geometry:
            df = gpd.read_file(path, engine="pyogrio")
        else:
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, ValueError, OSError,
            UnicodeDecodeError, pd.errors.ParserError) as exc:
        problems.append(Problem(spec.path, f"cannot be read: {exc}", "save it as UTF-8 CSV / GeoJSON (RFC 7946)"))
        return None
    return df


def check_columns(df: pd.DataFrame, key: str, problems: list[Problem]) -> pd.DataFrame | None:
    """Check presence, type, range, allowed values and uniqueness of every column; return a typed copy or None."""
    spec = SPECS[key]
    is_geo = spec.geometry is not None
    id_col = spec.columns[0].name
    missing = [c.name for c in spec.columns if c.required and c.name not in df.columns]
    if missing:
        problems.append(Problem(spec.path, f"missing column(s): {', '.join(missing)}",
                                f"add the column(s); the schema of {spec.path} is in data/README.md"))
        return None
    out = df.copy()
    ok = True
    for col in spec.columns:
        raw = df[col.name]
        empty = raw.isna().to_numpy() | (raw.astype(str).str.strip().isin(["", "nan", "None"])).to_numpy()
        if empty.any():
            problems.append(Problem(spec.path, f"column {col.name!r} has empty values", "fill every value; no default is assumed",
                                    _row_labels(df, empty, is_geo, id_col)))
            ok = False
            continue
        if col.kind in ("int", "float"):
            values = pd.to_numeric(raw, errors="coerce")
            bad = values.isna().to_numpy() | ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
            if col.kind == "int":
                bad |= ~bad & (np.abs(values.to_numpy(dtype=float, na_value=0) - np.round(values.to_numpy(dtype=float, na_value=0))) > 1e-9)
            if bad.any():
                problems.append(Problem(spec.path, f"column {col.name!r} must hold {'whole numbers' if col.kind == 'int' else 'numbers'}",
                                        f"write {col.name} as a {'non-negative integer' if col.kind == 'int' and col.min == 0 else col.kind} in every row",
                                        _row_labels(df, bad, is_geo, id_col)))
                ok = False
                continue
            v = values.to_numpy(dtype=float)
            out[col.name] = v.astype(np.int64) if col.kind == "int" else v
            if col.min is not None and (v < col.min).any():
                problems.append(Problem(spec.path, f"column {col.name!r} below its minimum {col.min:g} (counts cannot be negative)" if col.min == 0 else f"column {col.name!r} below {col.min:g}",
                                        f"correct the values to be ≥ {col.min:g}", _row_labels(df, v < col.min, is_geo, id_col)))
                ok = False
            if col.max is not None and (v > col.max).any():
                problems.append(Problem(spec.path, f"column {col.name!r} above its maximum {col.max:g}",
                                        f"correct the values to be ≤ {col.max:g}", _row_labels(df, v > col.max, is_geo, id_col)))
                ok = False
            if col.allowed is not None:
                bad = ~np.isin(v, col.allowed)
                if bad.any():
                    problems.append(Problem(spec.path, f"column {col.name!r} has values outside {list(col.allowed)}",
                                            f"use one of {list(col.allowed)}", _row_labels(df, bad, is_geo, id_col)))
                    ok = False
        elif col.kind == "bool":
            s = raw.astype(str).str.strip().str.lower()
            bad = ~s.isin(["true", "false", "1", "0"])
            if bad.any():
                problems.append(Problem(spec.path, f"column {col.name!r} must be true/false", "write true or false",
                                        _row_labels(df, bad.to_numpy(), is_geo, id_col)))
                ok = False
                continue
            out[col.name] = s.isin(["true", "1"]).to_numpy()
        else:
            s = raw.astype(str).str.strip()
            if col.kind == "code9":
                bad = ~s.str.fullmatch(r"\d{9}")
                if bad.any():
                    problems.append(Problem(spec.path, f"column {col.name!r} must be a 9-digit NBS township code",
                                            "use the 9-digit 统计用区划代码 of the township (e.g. 500102006)",
                                            _row_labels(df, bad.to_numpy(), is_geo, id_col)))
                    ok = False
            if col.allowed is not None:
                bad = ~s.isin(col.allowed)
                if bad.any():
                    problems.append(Problem(spec.path, f"column {col.name!r} has values outside {list(col.allowed)}",
                                            f"use one of {list(col.allowed)}", _row_labels(df, bad.to_numpy(), is_geo, id_col)))
                    ok = False
            out[col.name] = s.to_numpy()
        if col.unique:
            dup = out[col.name].duplicated(keep=False).to_numpy()
            if dup.any():
                problems.append(Problem(spec.path, f"column {col.name!r} must be unique; duplicated ids",
                                        "give every row its own id", _row_labels(df, dup, is_geo, id_col)))
                ok = False
    return out if ok else None


def check_geometry(gdf: gpd.GeoDataFrame, key: str, problems: list[Problem], district_m=None) -> bool:
    """CRS present and EPSG:4326 with lon/lat coordinates; geometry type; valid; inside the district."""
    spec = SPECS[key]
    id_col = spec.columns[0].name
    if gdf.crs is None:
        problems.append(Problem(spec.path, "no CRS", "save the layer as GeoJSON in EPSG:4326 (lon/lat, WGS84)"))
        return False
    if gdf.crs.to_epsg() != 4326:
        problems.append(Problem(spec.path, f"CRS is {gdf.crs.to_string()}, not EPSG:4326",
                                "reproject to EPSG:4326 before saving (e.g. gdf.to_crs(4326).to_file(...))"))
        return False
    ok = True
    empty = gdf.geometry.isna().to_numpy() | gdf.geometry.is_empty.to_numpy()
    if empty.any():
        problems.append(Problem(spec.path, "empty or missing geometries", "give every feature a geometry",
                                _row_labels(gdf, empty, True, id_col)))
        return False
    want = {"Polygon": ("Polygon", "MultiPolygon"), "Point": ("Point",), "LineString": ("LineString", "MultiLineString")}[spec.geometry]
    wrong = ~gdf.geom_type.isin(want).to_numpy()
    if wrong.any():
        problems.append(Problem(spec.path, f"geometries must be {spec.geometry}", f"store {spec.geometry} features only",
                                _row_labels(gdf, wrong, True, id_col)))
        ok = False
    b = gdf.total_bounds
    if b[0] < -180 or b[2] > 180 or b[1] < -90 or b[3] > 90:
        problems.append(Problem(spec.path, "coordinates are not longitude/latitude (a projected CRS saved as EPSG:4326?)",
                                "reproject the source layer to EPSG:4326 instead of relabelling it"))
        return False
    invalid = ~gdf.geometry.is_valid.to_numpy()
    if invalid.any():
        problems.append(Problem(spec.path, "invalid geometries (self-intersections or similar)",
                                "repair them (e.g. shapely.make_valid or QGIS 'Fix geometries')", _row_labels(gdf, invalid, True, id_col)))
        ok = False
    if district_m is not None and key not in ("rivers", "district"):
        geoms = gdf.to_crs(METRIC).geometry
        outside = ~geoms.within(district_m.buffer(DISTRICT_TOLERANCE_M)).to_numpy()
        if outside.any():
            problems.append(Problem(spec.path, f"features outside the district outline (more than {DISTRICT_TOLERANCE_M:g} m)",
                                    "move them inside district.geojson or fix their coordinates (lon/lat swapped?)",
                                    _row_labels(gdf, outside, True, id_col)))
            ok = False
    return ok


# ---------------------------------------------------------------------------------------------- the whole folder


def validate_data_dir(data_dir: str | Path) -> tuple[list[Problem], dict[str, pd.DataFrame]]:
    """Check every file of a data folder; return (problems, typed tables that passed their own checks)."""
    data_dir = Path(data_dir)
    problems: list[Problem] = []
    if not data_dir.is_dir():
        return [Problem(str(data_dir), "data folder not found", "pass the folder that holds schools.geojson and population/")], {}
    tables: dict[str, pd.DataFrame] = {}
    district_m = None
    for key, spec in SPECS.items():
        raw = read_table(data_dir, key, problems)
        if raw is None:
            continue
        if spec.geometry:
            if not check_geometry(raw, key, problems, district_m):
                continue
        typed = check_columns(raw, key, problems)
        if typed is None:
            continue
        if spec.geometry:
            typed = gpd.GeoDataFrame(typed, geometry=raw.geometry.values, crs=raw.crs)
        tables[key] = typed
        if key == "district":
            if len(typed) != 1:
                problems.append(Problem(spec.path, f"{len(typed)} features; the district outline must be one feature",
                                        "dissolve the outline into a single (Multi)Polygon"))
            district_m = typed.to_crs(METRIC).geometry.union_all()
    check_references(tables, problems)
    return problems, tables


def _unresolved(problems, tables, key, col, ref_key, ref_col, fix):
    if key not in tables or ref_key not in tables:
        return
    df = tables[key]
    bad = ~df[col].isin(set(tables[ref_key][ref_col])).to_numpy()
    if bad.any():
        spec = SPECS[key]
        problems.append(Problem(spec.path, f"{col} values that do not resolve in {SPECS[ref_key].path}: "
                                f"{sorted(set(df[col][bad]))[:5]}", fix, _row_labels(df, bad, spec.geometry is not None, spec.columns[0].name)))


def check_references(tables: dict[str, pd.DataFrame], problems: list[Problem]) -> None:
    """Cross-file rules: codes that resolve, complete ages, grades consistent with level, history keys."""
    _unresolved(problems, tables, "units", "township_code", "townships", "township_code", "use a township_code listed in townships.geojson")
    _unresolved(problems, tables, "schools", "township_code", "townships", "township_code", "use a township_code listed in townships.geojson")
    _unresolved(problems, tables, "candidate_sites", "township_code", "townships", "township_code", "use a township_code listed in townships.geojson")
    _unresolved(problems, tables, "base_population", "unit_code", "units", "unit_code", "every unit_code must be a unit in population/units.geojson")
    _unresolved(problems, tables, "enrollment_history", "school_id", "schools", "school_id", "every school_id must be in schools.geojson")
    _unresolved(problems, tables, "housing_pipeline", "site_id", "candidate_sites", "site_id", "every site_id must be in candidate_sites.geojson")
    _unresolved(problems, tables, "housing_pipeline", "unit_code", "units", "unit_code", "every unit_code must be in population/units.geojson")
    _unresolved(problems, tables, "bridges", "river_id", "rivers", "river_id", "every bridge must name a river in rivers.geojson")

    if "base_population" in tables:
        bp = tables["base_population"]
        path = SPECS["base_population"].path
        dup = bp.duplicated(["unit_code", "sex", "age"], keep=False).to_numpy()
        if dup.any():
            problems.append(Problem(path, "duplicate unit_code × sex × age rows", "keep one row per unit, sex and age",
                                    _row_labels(bp, dup, False, None)))
        counts = bp.groupby(["unit_code", "sex"])["age"].nunique()
        incomplete = counts[counts != OPEN_AGE + 1]
        if "units" in tables:
            have = set(bp["unit_code"])
            absent = [u for u in tables["units"]["unit_code"] if u not in have]
            if absent:
                problems.append(Problem(path, f"{len(absent)} unit(s) have no population rows: {absent[:5]}",
                                        "give every unit its rows for both sexes and ages 0..100 (zeros where nobody lives)"))
        sexes_per_unit = bp.groupby("unit_code")["sex"].nunique()
        one_sex = sexes_per_unit[sexes_per_unit != 2]
        if len(incomplete) or len(one_sex):
            labels = sorted(set(incomplete.index.get_level_values(0)) | set(one_sex.index))
            problems.append(Problem(path, f"incomplete ages: {len(labels)} unit(s) without exactly one row per sex for each age 0..{OPEN_AGE}",
                                    f"add the missing ages (age {OPEN_AGE} is the open group {OPEN_AGE}+)", "units " + ", ".join(labels[:8])))

    if "schools" in tables:
        s = tables["schools"]
        path = SPECS["schools"].path
        lo = np.array([LEVEL_GRADES[l][0] for l in s["level"]])
        hi = np.array([LEVEL_GRADES[l][1] for l in s["level"]])
        bad = (s["grade_min"].to_numpy() < lo) | (s["grade_max"].to_numpy() > hi) | (s["grade_min"].to_numpy() > s["grade_max"].to_numpy())
        if bad.any():
            problems.append(Problem(path, "grade_min/grade_max inconsistent with level (kindergarten −3..−1, primary 1..6, junior 7..9, nine_year 1..9, senior 10..12)",
                                    "correct the grades or the level", _row_labels(s, bad, True, "school_id")))
        lo_eff = np.maximum(lo, s["grade_min"].to_numpy())
        hi_eff = np.minimum(hi, s["grade_max"].to_numpy())
        for g in GRADES:
            outside = (s[f"pupils_g{g}"].to_numpy() > 0) & ((g < lo_eff) | (g > hi_eff))
            if outside.any():
                problems.append(Problem(path, f"pupils in grade {g} at schools that do not teach it (by level and grade_min/grade_max)",
                                        "move the pupils to a grade the school serves, or correct the level / grade range",
                                        _row_labels(s, outside, True, "school_id")))
            noclass = (s[f"pupils_g{g}"].to_numpy() > 0) & (s[f"classes_g{g}"].to_numpy() == 0)
            if noclass.any():
                problems.append(Problem(path, f"grade {g} has pupils but zero classes", f"set classes_g{g} to the number of classes",
                                        _row_labels(s, noclass, True, "school_id")))
    if "enrollment_history" in tables and "schools" in tables:
        h = tables["enrollment_history"]
        path = SPECS["enrollment_history"].path
        dup = h.duplicated(["school_id", "year", "grade"], keep=False).to_numpy()
        if dup.any():
            problems.append(Problem(path, "duplicate school_id × year × grade rows", "keep one row per school, year and grade",
                                    _row_labels(h, dup, False, None)))
        rng = tables["schools"].set_index("school_id")[["grade_min", "grade_max"]]
        m = h.join(rng, on="school_id")
        bad = ((m["grade"] < m["grade_min"]) | (m["grade"] > m["grade_max"])).to_numpy() & m["grade_min"].notna().to_numpy()
        if bad.any():
            problems.append(Problem(path, "history rows for grades the school does not serve",
                                    "fix the grade or the school's grade range", _row_labels(h, bad, False, None)))
    if "asfr_schedule" in tables:
        a = tables["asfr_schedule"]
        sums = a.groupby("year")["percent"].sum()
        off = sums[(sums - 100).abs() > 0.5]
        if len(off):
            problems.append(Problem(SPECS["asfr_schedule"].path, f"percent does not sum to 100 in year(s) {list(off.index[:5])}",
                                    "the schedule is a percent distribution of fertility by age: make each year sum to 100"))
    if "mortality" in tables:
        mx = tables["mortality"]
        counts = mx.groupby(["period_start", "sex"])["age_start"].nunique()
        bad = counts[counts != len(ABRIDGED_AGES)]
        if len(bad):
            problems.append(Problem(SPECS["mortality"].path, f"incomplete abridged ages for {list(bad.index[:4])}",
                                    f"give ages {ABRIDGED_AGES[0]}, 1, 5, …, 100 for each period and sex"))
    if "bridges" in tables and "rivers" in tables:
        rv = tables["rivers"].to_crs(METRIC).set_index("river_id").geometry
        br = tables["bridges"].to_crs(METRIC)
        far = np.array([rid in rv.index and pt.distance(rv[rid]) > 100 for rid, pt in zip(br["river_id"], br.geometry)])
        if far.any():
            problems.append(Problem(SPECS["bridges"].path, "bridges more than 100 m from their river",
                                    "place each bridge on the river line it crosses", _row_labels(br, far, True, "bridge_id")))
