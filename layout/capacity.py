"""Class capacity, oversized classes (大班额) and oversized schools (大校额), utilisation and seats.

Grades follow the project convention: kindergarten -3, -2, -1 (小班/中班/大班), primary 1–6,
junior 7–9, senior 10–12.  Arrays are indexed school × grade × year (``grades`` and ``years``
axes given by the caller); pupils are head counts in the school year starting 1 Sep of ``year``.

Rules (all parameters in :class:`CapacityParams`):

* classes needed = ceil(pupils / class-size cap): 45 primary, 50 junior, 50 senior,
  kindergarten 25 / 30 / 35 for 小班 / 中班 / 大班;
* 大班额 = a class of 56–65 pupils, 超大班额 = 66 or more; counted by splitting a grade's pupils
  as evenly as possible over its classes (``r = P mod C`` classes of ``⌈P/C⌉``, the rest ``⌊P/C⌋``);
* 大校额 = more pupils than ``max_pupils`` or more classes than ``max_classes`` for the school type;
* seats = classrooms × the mean class-size cap over the grades the school teaches
  (grade_min..grade_max; a nine-year school: (6 × 45 + 3 × 50) / 9); utilisation =
  pupils / seats; seats short = max(0, pupils − seats), seats idle = max(0, seats − pupils);
  classrooms short = max(0, classes needed − classrooms).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from forecast.errors import Problem, format_rows, raise_if_problems
from layout.errors import LayoutError

__all__ = [
    "GRADE_LEVELS",
    "level_of_grade",
    "CapacityParams",
    "SchoolArrays",
    "CapacityReport",
    "extract_school_arrays",
    "compute_class_caps",
    "compute_classes_needed",
    "count_oversized_classes",
    "assess_capacity",
    "summarise_townships",
]

#: Pupil level -> grades (kindergarten -3..-1 = 小/中/大班).
GRADE_LEVELS: dict[str, tuple[int, ...]] = {
    "kindergarten": (-3, -2, -1),
    "primary": (1, 2, 3, 4, 5, 6),
    "junior": (7, 8, 9),
    "senior": (10, 11, 12),
}


def level_of_grade(grades: Sequence[int]) -> np.ndarray:
    """Pupil level name of each grade (object array); unknown grades raise :class:`LayoutError`."""
    lookup = {g: lvl for lvl, gs in GRADE_LEVELS.items() for g in gs}
    grades = [int(g) for g in np.asarray(grades).ravel()]
    bad = [g for g in grades if g not in lookup]
    if bad:
        raise LayoutError("unknown grades", [Problem("grades", f"{sorted(set(bad))} are not grades -3..-1, 1..12",
                                                     "use kindergarten -3..-1, primary 1..6, junior 7..9, senior 10..12")])
    return np.array([lookup[g] for g in grades], dtype=object)


def _default_caps() -> dict[int, int]:
    caps = {-3: 25, -2: 30, -1: 35}
    caps.update({g: 45 for g in range(1, 7)})
    caps.update({g: 50 for g in range(7, 13)})
    return caps


def _default_max_classes() -> dict[str, int | None]:
    # primary/junior <= 36 classes, nine-year <= 45 (DESIGN.md); kindergarten <= 12 classes
    # (幼儿园建设标准 建标175); senior schools <= 60 classes (assumption).
    return {"kindergarten": 12, "primary": 36, "teaching_point": 36, "junior": 36, "nine_year": 45,
            "complete_secondary": 60, "senior_general": 60, "senior_vocational": 60}


def _default_max_pupils() -> dict[str, int | None]:
    # <= 2000 pupils for compulsory schools (DESIGN.md); senior schools 3000 (assumption);
    # kindergartens are capped by classes only.
    return {"kindergarten": None, "primary": 2000, "teaching_point": 2000, "junior": 2000, "nine_year": 2000,
            "complete_secondary": 3000, "senior_general": 3000, "senior_vocational": 3000}


@dataclass(frozen=True)
class CapacityParams:
    """Class-size and school-size rules.

    class_size_cap: grade -> standard class size (45 primary, 50 junior/senior, 25/30/35 kindergarten).
    large_class_min / super_large_class_min: 大班额 is 56–65 pupils, 超大班额 66+.
    max_pupils / max_classes: school level (as in schools.geojson ``level``) -> cap, ``None`` = no cap.
    """

    class_size_cap: Mapping[int, int] = field(default_factory=_default_caps)
    large_class_min: int = 56
    super_large_class_min: int = 66
    max_pupils: Mapping[str, int | None] = field(default_factory=_default_max_pupils)
    max_classes: Mapping[str, int | None] = field(default_factory=_default_max_classes)


@dataclass
class SchoolArrays:
    """The school inventory as arrays (n_schools rows; ``grades`` axis as given)."""

    school_id: np.ndarray          # (n,) str
    level: np.ndarray              # (n,) school level string
    grade_min: np.ndarray          # (n,) int
    grade_max: np.ndarray          # (n,) int
    classrooms: np.ndarray         # (n,) int
    boarding_beds: np.ndarray      # (n,) int
    township_code: np.ndarray      # (n,) str
    urban: np.ndarray              # (n,) bool
    grades: np.ndarray             # (n_g,) int
    pupils: np.ndarray             # (n, n_g) current pupils per grade
    classes: np.ndarray            # (n, n_g) current classes per grade

    def serves(self) -> np.ndarray:
        """(n, n_g) bool: the school teaches that grade."""
        return (self.grade_min[:, None] <= self.grades[None, :]) & (self.grades[None, :] <= self.grade_max[:, None])


def extract_school_arrays(schools: pd.DataFrame, grades: Sequence[int] | None = None) -> SchoolArrays:
    """Arrays from a schools table (schools.geojson schema: pupils_g<k>, classes_g<k>, ...).

    ``grades`` defaults to every grade with a ``pupils_g<k>`` column.  Missing columns, or
    negative / non-numeric counts, raise :class:`LayoutError` naming the columns and rows.
    """
    if grades is None:
        grades = sorted(int(c[len("pupils_g"):]) for c in schools.columns if c.startswith("pupils_g"))
    grades = np.asarray(grades, dtype=int)
    level_of_grade(grades)
    need = ["school_id", "level", "grade_min", "grade_max", "classrooms"] + \
        [f"pupils_g{g}" for g in grades] + [f"classes_g{g}" for g in grades]
    missing = [c for c in need if c not in schools.columns]
    problems = []
    if missing:
        problems.append(Problem("schools", f"missing columns {missing}", "add them (see data/README.md for the schema)"))
    raise_if_problems(problems, "schools table is incomplete", LayoutError)
    num_cols = ["grade_min", "grade_max", "classrooms"] + need[5:]
    num = schools[num_cols].apply(pd.to_numeric, errors="coerce")
    for c in num_cols:
        bad = np.flatnonzero(num[c].isna().to_numpy() | (num[c].to_numpy() < -3 if c.startswith("grade")
                                                          else num[c].to_numpy() < 0))
        if bad.size:
            problems.append(Problem("schools", f"column {c} has missing, non-numeric or negative values",
                                    "fill it with counts >= 0", format_rows(schools["school_id"].iloc[bad].tolist())))
    raise_if_problems(problems, "schools table has bad values", LayoutError)
    n = len(schools)

    def col(name, default, dtype):
        return schools[name].to_numpy(dtype=dtype) if name in schools.columns else np.full(n, default, dtype=dtype)

    return SchoolArrays(
        school_id=schools["school_id"].astype(str).to_numpy(),
        level=schools["level"].astype(str).to_numpy(dtype=object),
        grade_min=num["grade_min"].to_numpy(dtype=int), grade_max=num["grade_max"].to_numpy(dtype=int),
        classrooms=num["classrooms"].to_numpy(dtype=int),
        boarding_beds=col("boarding_beds", 0, int),
        township_code=schools["township_code"].astype(str).to_numpy() if "township_code" in schools.columns
        else np.full(n, "", dtype=object),
        urban=col("urban", False, bool), grades=grades,
        pupils=num[[f"pupils_g{g}" for g in grades]].to_numpy(dtype=float),
        classes=num[[f"classes_g{g}" for g in grades]].to_numpy(dtype=int),
    )


def compute_class_caps(grades: Sequence[int], params: CapacityParams | None = None) -> np.ndarray:
    """(n_g,) class-size cap of each grade."""
    params = params or CapacityParams()
    grades = [int(g) for g in np.asarray(grades).ravel()]
    missing = [g for g in grades if g not in params.class_size_cap]
    if missing:
        raise LayoutError("no class-size cap", [Problem("CapacityParams.class_size_cap", f"no cap for grades {missing}",
                                                        "add a cap for every grade")])
    caps = np.array([params.class_size_cap[g] for g in grades], dtype=float)
    if (caps <= 0).any():
        raise LayoutError("class-size caps must be positive", [Problem("CapacityParams.class_size_cap",
                                                                       "a cap is <= 0", "use e.g. 45")])
    return caps


def _check_pupils(pupils: np.ndarray, name: str) -> np.ndarray:
    pupils = np.asarray(pupils, dtype=float)
    bad = ~np.isfinite(pupils) | (pupils < 0)
    if bad.any():
        idx = np.argwhere(bad)[:10].tolist()
        raise LayoutError(f"{name} has negative or missing counts", [Problem(
            name, f"{int(bad.sum())} cell(s) are negative, NaN or infinite", "pass counts >= 0", f"index {idx}")])
    return pupils


def compute_classes_needed(pupils: np.ndarray, caps: np.ndarray) -> np.ndarray:
    """ceil(pupils / cap) with ``caps`` broadcast over the grade axis (axis 1 of (n_s, n_g[, n_y])).

    Fractional pupils (shares of a forecast) are rounded to 1e-6 first so 90.0000001 / 45 is 2.
    """
    pupils = _check_pupils(pupils, "pupils")
    caps = np.asarray(caps, dtype=float)
    shape = (1, -1) + (1,) * (pupils.ndim - 2)
    return np.ceil(np.round(pupils, 6) / caps.reshape(shape)).astype(np.int64)


def count_oversized_classes(pupils: np.ndarray, classes: np.ndarray,
                            params: CapacityParams | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Number of 大班额 (56–65) and 超大班额 (66+) classes, per cell of ``pupils``.

    ``classes`` broadcasts against ``pupils`` (e.g. (n_s, n_g, 1) current classes held fixed over
    years).  A grade's pupils (rounded to whole pupils) are split as evenly as possible over its
    classes.  Cells with pupils but no class give 0 here; :func:`assess_capacity` reports them.
    """
    params = params or CapacityParams()
    p = np.rint(_check_pupils(pupils, "pupils")).astype(np.int64)
    c = np.broadcast_to(np.asarray(classes, dtype=np.int64), p.shape)
    safe = np.maximum(c, 1)
    q, r = np.divmod(p, safe)
    lo, hi = params.large_class_min, params.super_large_class_min

    def large(size):
        return (size >= lo) & (size < hi)

    n_large = np.where(large(q + 1), r, 0) + np.where(large(q), safe - r, 0)
    n_super = np.where(q + 1 >= hi, r, 0) + np.where(q >= hi, safe - r, 0)
    has = c > 0
    return np.where(has, n_large, 0), np.where(has, n_super, 0)


@dataclass
class CapacityReport:
    """Capacity of every school in every year (shapes: s schools, g grades, y years).

    classes_needed (s, g, y); classes_total (s, y); classrooms_short (s, y);
    large_classes / super_large_classes (s, g, y): 大班额 / 超大班额 if each grade keeps its current
    number of classes (status quo), only when current classes were given, else None;
    pupils_total (s, y); over_pupils / over_classes / oversized_school (s, y) bool (大校额);
    seats (s,); utilisation (s, y) = pupils / seats (NaN for zero seats);
    class_utilisation (s, y) = classes needed / classrooms; seats_short / seats_idle (s, y);
    boarding_short (s, y) when boarding pupils and beds were given; findings.
    """

    school_id: np.ndarray
    township_code: np.ndarray
    grades: np.ndarray
    years: np.ndarray
    classes_needed: np.ndarray
    classes_total: np.ndarray
    classrooms: np.ndarray
    classrooms_short: np.ndarray
    large_classes: np.ndarray | None
    super_large_classes: np.ndarray | None
    pupils_total: np.ndarray
    over_pupils: np.ndarray
    over_classes: np.ndarray
    oversized_school: np.ndarray
    seats: np.ndarray
    utilisation: np.ndarray
    class_utilisation: np.ndarray
    seats_short: np.ndarray
    seats_idle: np.ndarray
    boarding_short: np.ndarray | None
    findings: list[Problem]

    def to_frame(self) -> pd.DataFrame:
        """Long table per school × year with every per-school figure (units in column names)."""
        s, y = self.pupils_total.shape
        frame = pd.DataFrame({
            "school_id": np.repeat(self.school_id, y), "township_code": np.repeat(self.township_code, y),
            "year": np.tile(self.years, s), "pupils": self.pupils_total.ravel(),
            "classes_needed": self.classes_total.ravel(), "classrooms": np.repeat(self.classrooms, y),
            "classrooms_short": self.classrooms_short.ravel(), "seats": np.repeat(self.seats, y),
            "utilisation": self.utilisation.ravel(), "class_utilisation": self.class_utilisation.ravel(),
            "seats_short": self.seats_short.ravel(), "seats_idle": self.seats_idle.ravel(),
            "over_pupils": self.over_pupils.ravel(), "over_classes": self.over_classes.ravel(),
            "oversized_school": self.oversized_school.ravel(),
        })
        if self.large_classes is not None:
            frame["large_classes"] = self.large_classes.sum(axis=1).ravel()
            frame["super_large_classes"] = self.super_large_classes.sum(axis=1).ravel()
        if self.boarding_short is not None:
            frame["boarding_beds_short"] = self.boarding_short.ravel()
        return frame


def _seats_per_classroom(grade_min, grade_max, params: CapacityParams) -> np.ndarray:
    """(n,) mean class-size cap over every grade a school teaches (grade_min..grade_max); 0 if none."""
    all_grades = np.array(sorted(params.class_size_cap))
    caps = np.array([params.class_size_cap[g] for g in all_grades], dtype=float)
    serves = (np.asarray(grade_min)[:, None] <= all_grades) & (all_grades <= np.asarray(grade_max)[:, None])
    n = serves.sum(axis=1)
    return np.where(n > 0, (serves * caps).sum(axis=1) / np.maximum(n, 1), 0.0)


def assess_capacity(pupils: np.ndarray, schools: SchoolArrays, years: Sequence[int], *,
                    current_classes: np.ndarray | None = None, boarding_pupils: np.ndarray | None = None,
                    params: CapacityParams | None = None) -> CapacityReport:
    """Classes, classrooms, 大班额, 大校额, utilisation and seats for pupils (n_s, n_g, n_y).

    ``pupils`` is per school × ``schools.grades`` × ``years`` (e.g. from
    :func:`layout.catchment.allocate_pupils`).  ``current_classes`` (n_s, n_g), default
    ``schools.classes``, is held fixed to count 大班额 "if nothing changes" (pass ``False`` to skip).
    ``boarding_pupils`` (n_s, n_y) gives boarding-bed shortfalls against ``schools.boarding_beds``.
    Zero-capacity schools with pupils, and pupils in grades a school does not teach, are findings.
    """
    params = params or CapacityParams()
    years = np.asarray(years)
    pupils = _check_pupils(pupils, "pupils")
    n_s, n_g = len(schools.school_id), len(schools.grades)
    if pupils.shape != (n_s, n_g, len(years)):
        raise LayoutError("pupils has the wrong shape", [Problem(
            "pupils", f"shape {pupils.shape}, expected (schools, grades, years) = {(n_s, n_g, len(years))}",
            "align the pupils array to the schools, grades and years")])
    caps = compute_class_caps(schools.grades, params)
    findings: list[Problem] = []
    ids = schools.school_id
    need = compute_classes_needed(pupils, caps)
    total_classes = need.sum(axis=1)
    classrooms = np.asarray(schools.classrooms, dtype=np.int64)
    short = np.maximum(0, total_classes - classrooms[:, None])
    pupils_total = pupils.sum(axis=1)

    serves = schools.serves()
    stray = (pupils.sum(axis=2) > 0) & ~serves
    if stray.any():
        rows = np.flatnonzero(stray.any(axis=1))
        findings.append(Problem("pupils", f"{rows.size} school(s) have pupils in grades they do not teach "
                                "(grade_min..grade_max)", "check the catchment eligibility or the grade range",
                                format_rows(ids[rows].tolist())))
    seats_per_room = _seats_per_classroom(schools.grade_min, schools.grade_max, params)
    seats = classrooms * seats_per_room
    with np.errstate(divide="ignore", invalid="ignore"):
        util = np.where(seats[:, None] > 0, pupils_total / seats[:, None], np.nan)
        cutil = np.where(classrooms[:, None] > 0, total_classes / classrooms[:, None], np.nan)
    zero = (classrooms <= 0) & (pupils_total.max(axis=1) > 0)
    if zero.any():
        findings.append(Problem("schools", f"{zero.sum()} school(s) have pupils but no classroom (zero capacity): "
                                "utilisation is undefined, every class is short", "record their classrooms, or close "
                                "them and reassign their pupils", format_rows(ids[zero].tolist())))

    large = superl = None
    if current_classes is not False:
        cc = schools.classes if current_classes is None else np.asarray(current_classes)
        if cc.shape != (n_s, n_g):
            raise LayoutError("current_classes has the wrong shape", [Problem(
                "current_classes", f"shape {cc.shape}, expected {(n_s, n_g)}", "one count per school and grade")])
        large, superl = count_oversized_classes(pupils, cc[:, :, None], params)
        no_class = (pupils > 0) & (cc[:, :, None] <= 0) & serves[:, :, None]
        if no_class.any():
            rows = np.flatnonzero(no_class.any(axis=(1, 2)))
            findings.append(Problem("current_classes", f"{rows.size} school(s) have pupils in a grade with no class, "
                                    "so 大班额 there cannot be counted (status quo)", "record their classes per grade",
                                    format_rows(ids[rows].tolist())))

    max_p = np.array([params.max_pupils.get(lvl) for lvl in schools.level], dtype=object)
    max_c = np.array([params.max_classes.get(lvl) for lvl in schools.level], dtype=object)
    max_p = np.array([np.inf if v is None else v for v in max_p], dtype=float)
    max_c = np.array([np.inf if v is None else v for v in max_c], dtype=float)
    over_p = pupils_total > max_p[:, None] + 1e-6  # fractional (forecast) pupils: no float-noise overruns
    over_c = total_classes > max_c[:, None]

    boarding_short = None
    if boarding_pupils is not None:
        bp = _check_pupils(boarding_pupils, "boarding_pupils")
        if bp.shape != (n_s, len(years)):
            raise LayoutError("boarding_pupils has the wrong shape", [Problem(
                "boarding_pupils", f"shape {bp.shape}, expected {(n_s, len(years))}", "one count per school and year")])
        boarding_short = np.maximum(0.0, bp - np.asarray(schools.boarding_beds, dtype=float)[:, None])

    return CapacityReport(
        school_id=ids, township_code=np.asarray(schools.township_code), grades=np.asarray(schools.grades),
        years=years, classes_needed=need, classes_total=total_classes, classrooms=classrooms,
        classrooms_short=short, large_classes=large, super_large_classes=superl, pupils_total=pupils_total,
        over_pupils=over_p, over_classes=over_c, oversized_school=over_p | over_c, seats=seats,
        utilisation=util, class_utilisation=cutil, seats_short=np.maximum(0.0, pupils_total - seats[:, None]),
        seats_idle=np.maximum(0.0, seats[:, None] - pupils_total), boarding_short=boarding_short, findings=findings)


def summarise_townships(report: CapacityReport) -> pd.DataFrame:
    """Per township × year: pupils, seats, utilisation, seats short/idle (summed over schools, so
    a short school is not cancelled by an idle one), net balance, classrooms short, oversized schools."""
    codes, inv = np.unique(report.township_code.astype(str), return_inverse=True)
    n_t, n_y = len(codes), len(report.years)

    def agg(values):                         # (s, y) -> (t, y)
        out = np.zeros((n_t, n_y))
        np.add.at(out, inv, np.asarray(values, dtype=float))
        return out

    pupils = agg(report.pupils_total)
    seats = agg(np.broadcast_to(report.seats[:, None], report.pupils_total.shape))
    with np.errstate(divide="ignore", invalid="ignore"):
        util = np.where(seats > 0, pupils / seats, np.nan)
    frame = pd.DataFrame({
        "township_code": np.repeat(codes, n_y), "year": np.tile(report.years, n_t),
        "schools": np.repeat(np.bincount(inv, minlength=n_t), n_y),
        "pupils": pupils.ravel(), "seats": seats.ravel(), "utilisation": util.ravel(),
        "seats_short": agg(report.seats_short).ravel(), "seats_idle": agg(report.seats_idle).ravel(),
        "net_seats": (seats - pupils).ravel(),
        "classrooms_short": agg(report.classrooms_short).ravel(),
        "oversized_schools": agg(report.oversized_school).ravel().astype(int),
    })
    if report.large_classes is not None:
        frame["large_classes"] = agg(report.large_classes.sum(axis=1)).ravel().astype(int)
        frame["super_large_classes"] = agg(report.super_large_classes.sum(axis=1)).ravel().astype(int)
    return frame
