"""The consolidation model: keep, close, expand or open compulsory schools to reach a target count.

Arrays in, result out (a thin DataFrame adapter is at the end of the module).  The model is
one MILP built as scipy.sparse arrays and solved with HiGHS through :func:`layout.milp.solve_milp`.

Indices and shapes
------------------
``u`` residential unit (``n_units``), ``s`` site (``n_sites``: existing compulsory schools and
candidate new sites, in one array), ``l`` level (0 = primary grades 1-6, 1 = junior grades 7-9).
A nine-year school hosts both levels.  Inputs:

- ``demand`` (n_units, 2): pupils living in each unit by level, for the design year or the peak
  over the horizon (the caller decides and passes the array); or (n_units, 9): pupils by grade 1..9
  (grades 1-6 primary, 7-9 junior), which switches on **classes per grade** (see below).
- ``distance_m`` (n_units, n_sites): travel distance in metres from the unit's population point to
  the site (network or river-respecting distance when available; ``inf`` = unreachable).
- ``unit_urban`` (n_units,): urban (True) or rural unit; travel limits differ.
- :class:`ConsolidationSites`: per-site arrays (hosts (n_sites, 2), existing, classrooms, boarding
  beds, expansion limit, must-keep, cannot-close, caps, costs).

Allowed assignments (sparse)
----------------------------
A pair (u, l, s) exists when ``demand[u, l] > 0``, site ``s`` hosts level ``l``, the distance is
finite and within the travel limit ``travel_limit_m[l, urban]``; beyond the limit a pair is allowed
only for a rural unit (up to ``max_boarding_distance_m``), and then its pupils need a boarding bed
at ``s`` (a *boarding pair*).  Of the allowed sites only the ``k_nearest`` (20) closest are kept per
(u, l); a list is doubled (up to four rounds) where the LP relaxation assigns pupils to its farthest
kept site, and when unserved slack is used where a list was cut, the model is rebuilt once with all
allowed sites.  The proven gap is relative to this sparse model.  A (u, l) with demand but no
allowed site at all is reported as unserved before optimisation (reason ``no_site_within_rules``).

Variables (all bounded below by 0)
----------------------------------
- ``y[s]`` binary: site open (existing school kept, or candidate opened).  ``y[s] = 1`` is fixed for
  must-keep and cannot-close sites.
- ``e[s]`` integer ``<= max_expand[s]``: classrooms added.
- ``b[s]`` continuous ``<= max_beds_added[s]``: boarding beds added.
- ``c[s, l]`` integer (continuous with ``integer_classes=False``) for each hosted level: classes of
  level ``l`` at ``s``, ``<= max_classes[s]`` — with demand by grade ``c[s, g]`` for each hosted grade.
- ``x[u, l, s]`` in [0, 1] for each allowed pair: share of the pupils of (u, l) going to ``s``
  (binary with ``single_assignment=True``: each unit × level goes to one school).
- slack (penalised, so that the model is always feasible): ``unserved[u, l]`` in [0, 1] share of
  (u, l) not seated; ``extra_classrooms[s]`` classrooms beyond the expansion limit;
  ``missing_beds[s]`` boarding beds beyond ``max_beds_added``; ``schools_over`` /
  ``schools_under`` open schools above / below the target.

Constraints
-----------
1. assignment, per (u, l) with allowed pairs: ``sum_s x[u,l,s] + unserved[u,l] = 1``.
2. open sites only, per pair: ``x[u,l,s] <= y[s]`` (the strong formulation).
3. no oversized class, per (s, l): ``sum_u demand[u,l] x[u,l,s] <= class_size_cap[l] * c[s,l]``
   (45 primary, 50 junior; classes are counted per level) — or, in a model with demand by grade, per hosted
   grade (s, g): ``sum_u demand[u,g] x[u,l(g),s] <= class_size_cap[l(g)] * c[s,g]`` with integer ``c[s,g]``:
   a school organises classes per grade, and sum_g ceil(pupils_g / 45) can exceed ceil(sum_g pupils_g /
   45) by up to 5 (junior 2, nine-year 8); rows 4 and 6 sum ``c`` over grades.  (Stage 2 below builds such a
   model with one pseudo-unit per unit × grade, so that every grade has its own shares.)
4. classrooms, per s: ``sum_l c[s,l] <= classrooms[s] y[s] + e[s] + extra_classrooms[s]``.
5. expansion only where open: ``e[s] <= max_expand[s] y[s]``.
6. school-size cap in classes: ``sum_l c[s,l] <= max_classes[s] y[s]`` (36 single level, 45 nine-year).
7. school-size cap in pupils: ``sum_{u,l} demand[u,l] x[u,l,s] <= max_pupils[s] y[s]`` (2000).
8. boarding, per site with boarding pairs:
   ``sum_{boarding pairs} demand x <= boarding_beds[s] y[s] + b[s] + missing_beds[s]``.
9. school count over sites that count toward the target:
   ``sum y[s] - schools_over + schools_under = target`` (rule ``"eq"``), or ``<= target`` (rule
   ``"le"``, ``schools_under`` fixed at 0).
10. optional components (e.g. river sides, :func:`derive_cannot_close`): for each component and level
    with demand and at least one hosting site, ``sum_{s in component, hosting l} y[s] >= 1``.

Objective (CNY per year)
------------------------
``sum_l travel_cny_per_pupil_km_year[l] * pupil_km[l]`` (pupil-km = pupils × one-way km)
``+ annuity_factor * (classroom_cost * e + capital_cost (new schools) * y + bed_cost * b)``
``+ running_cost_cny_per_year * y`` ``+ penalties * slack``.  Each term is reported separately in
:attr:`ConsolidationResult.costs`.  Default penalties are multiples of the largest per-site annual
cost ``C`` (10 C per unserved pupil, 5 C per school over/under target, 1 C per classroom beyond the
expansion limit, 0.2 C per missing bed) so that slack is used only when the rules cannot be met
otherwise, with rules (seating every pupil) ranked above the target count.

Speed
-----
Sparse nearest-K pairs, the strong ``x <= y`` rows, the objective scaled for HiGHS's absolute
tolerances, and the incumbent found before the MILP starts (see :func:`_solve_on_model`):

1. the LP relaxation, kept in one persistent HiGHS instance (:class:`layout.milp.LpSession`) and
   re-solved from the previous basis after bound changes;
2. LP diving (fix the fractional ``y`` nearest 1, re-solve, repeat), rounded to the target;
3. a local search on the open set: swaps (and, outside the count, flips) judged by the LP with ``y``
   fixed (~20 ms each at Fuling size), ranked by the LP's reduced costs;
4. the full model with that open set fixed (a small MILP) gives the incumbent;
5. the full MILP from that incumbent with HiGHS's primal heuristics and restarts off, so its time
   goes to cuts and branching, stopped after ``_MILP_MAX_NODES`` nodes; if that has not reached the gap,
   HiGHS's defaults from the best solution so far (same node budget).

The reported bound is HiGHS's proven bound of this (one-stage) model; the gap is HiGHS's.  Every step
stops on a deterministic work budget (LP re-solves, candidate moves, branch-and-bound nodes), so the same
inputs give the same layout on any machine; ``time_limit_s`` is only a safety cap.

Classes per grade (demand given by grade) are solved in two stages (:func:`solve_consolidation`):

1. the layout — which schools stay, close, expand or open, boarding — on the per-level relaxation (the grades
   summed by level, classes counted per level), proven to ``mip_rel_gap`` as above;
2. whole classes per grade for that layout (:func:`_organise_grades`): the open set fixed, each unit's pupils of
   each grade with their own shares (admission zones are set per intake year), integer classes per site × grade,
   expansions re-decided; a compact MILP over the open sites (``_GRADE_K_NEAREST`` nearest per unit × grade,
   widened where its LP needs more), solved by HiGHS from the layout's shares with classes rounded up.

Between the stages, pupils who can reach only one open school (urban units within the travel limit) may need more
whole classes per grade there than the school can ever have: the layout is then solved again keeping the closed
school nearest to them, when that costs less than the slack it avoids (:func:`_forced_alternatives`); and if stage
2 still needs slack the layout had not, once more (:func:`_alternative_sites`), keeping the better result.

The per-level model is a relaxation of the per-grade one (sum a site's classes over a level's grades; average a
unit's grade shares weighted by pupils), so the first layout's proven bound bounds every per-grade layout: the
result's ``gap`` is against it (on Fuling 1.7 %: whole classes per grade cost ~60 classrooms and some travel more
than classes per level), ``grade_gap`` is stage 2's own proven gap for the chosen layout.  A direct per-grade MILP
was tried and dropped: its LP relaxation is the per-level one and HiGHS neither closes the gap nor finds good
incumbents in minutes (bench/results/consolidation.md).
:func:`tradeoff_curve` keeps one model (and its LP) for every target, changing only the count row's
bounds, and reuses targets already solved on the same problem.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from forecast.errors import format_rows
from layout.errors import LayoutError, Problem
from layout.milp import LpSession, MilpResult, solve_milp

__all__ = [
    "LEVELS",
    "ConsolidationRules",
    "ConsolidationCosts",
    "ConsolidationSites",
    "ConsolidationProblem",
    "ConsolidationResult",
    "prepare_consolidation",
    "solve_consolidation",
    "tradeoff_curve",
    "diagnose",
    "derive_cannot_close",
    "summarise_travel",
    "build_sites_from_frames",
    "build_demand_array",
    "sum_grades_to_levels",
    "GRADES",
    "GRADE_LEVEL",
    "level_problem",
]

LEVELS = ("primary", "junior")
GRADES = np.arange(1, 10)                       # compulsory grades 1..9 (columns of a grade demand array)
GRADE_LEVEL = np.array([0] * 6 + [1] * 3)       # level of each grade: 1-6 primary, 7-9 junior
_TOL = 1e-6
# the MILP starts from the local-search incumbent: HiGHS's own root heuristics (RINS/RENS sub-MIPs,
# feasibility jump) then mostly repeat that work, so the time goes to the bound instead
_PROOF_OPTIONS = {"mip_heuristic_run_rins": False, "mip_heuristic_run_rens": False,
                  "mip_heuristic_run_root_reduced_cost": False, "mip_heuristic_run_feasibility_jump": False,
                  "mip_allow_restart": False}
# Deterministic work budgets.  Every search loop and HiGHS run stops on a count of work (LP re-solves,
# branch-and-bound nodes), so that the same inputs give the same layout on any machine; ``time_limit_s``
# stays a safety cap, and on Fuling (2 cores) these budgets are reached well before it.
_DIVE_MAX_LPS = 400             # LP re-solves in one LP dive (:func:`_lp_warm_start`)
_LOCAL_SEARCH_MAX_LPS = 40      # LP evaluations (candidate moves) in one :func:`_local_search`
_MILP_MAX_NODES = 10            # branch-and-bound nodes of one run on the full model
_FIXED_MAX_NODES = 10           # nodes of the small MILP with the open set fixed (:func:`_solve_fixed_y`)
_WORK_OPTIONS = {"mip_max_nodes": _MILP_MAX_NODES}


# ----------------------------------------------------------------------------------------------
# parameters
# ----------------------------------------------------------------------------------------------
@dataclass
class ConsolidationRules:
    """Rules of the layout (all parameters, scenario choices).

    ``travel_limit_m[l, 0]`` is the urban limit and ``[l, 1]`` the rural limit for level ``l``.
    Defaults (assumptions, scenario parameters): urban 3 km primary / 5 km junior (a daily trip on
    foot, bus or by parents), rural 5 km / 10 km (beyond the rural limit a pupil boards).
    GB 50180-2018's 500 m / 1000 m are planning service radii for new urban sites, not a cap on the
    journey to an existing school; pass them here to test that stricter reading.
    """

    class_size_cap: tuple[int, int] = (45, 50)
    travel_limit_m: np.ndarray = field(default_factory=lambda: np.array([[3000.0, 5000.0], [5000.0, 10000.0]]))
    max_boarding_distance_m: float = np.inf
    max_pupils_per_school: float = 2000.0
    max_classes_single_level: int = 36
    max_classes_nine_year: int = 45


@dataclass
class ConsolidationCosts:
    """Cost weights (CNY).  The defaults are stated assumptions, to be replaced by a scenario.

    - travel: 380 CNY per pupil-km per year (2 one-way trips × 190 school days × 1 CNY per km);
    - classroom added 1.5 M CNY; new school 30 M CNY + 2 M CNY per classroom; boarding bed 50 k CNY;
      capital is annualised with ``annuity_factor`` (0.0736 = 20 years at 4 %);
    - running cost of an open school (non-teaching staff, upkeep, utilities) 1.5 M CNY per year.
    Penalties (``None`` = derived from the largest per-site annual cost, see the module docstring).
    """

    travel_cny_per_pupil_km_year: tuple[float, float] = (380.0, 380.0)
    classroom_cost_cny: float = 1.5e6
    new_school_fixed_cny: float = 3.0e7
    new_school_per_classroom_cny: float = 2.0e6
    boarding_bed_cost_cny: float = 5.0e4
    running_cost_cny_per_year: float = 1.5e6
    annuity_factor: float = 0.0736
    penalty_unserved_cny_per_pupil: float | None = None
    penalty_school_cny: float | None = None
    penalty_classroom_cny: float | None = None
    penalty_bed_cny: float | None = None


@dataclass
class ConsolidationSites:
    """Per-site arrays, shape (n_sites,) unless stated; ``None`` takes the default shown.

    - ``hosts`` (n_sites, 2) bool: hosts primary / junior (nine-year: both).
    - ``existing`` bool: an existing school (else a candidate new site).
    - ``classrooms``: classrooms available to compulsory classes now (existing) or built when opened
      (candidate).
    - ``boarding_beds`` (0), ``max_expand`` classrooms (0), ``max_beds_added`` (inf),
      ``must_keep`` (False), ``cannot_close`` (False), ``counts_toward_target`` (True),
      ``max_classes`` (rules: 45 if both levels else 36), ``max_pupils`` (rules: 2000),
      ``capital_cost_cny`` (candidates: new_school_fixed + per_classroom × classrooms; existing 0),
      ``running_cost_cny_per_year`` (costs), ``classroom_cost_cny`` (costs).
    """

    hosts: np.ndarray
    existing: np.ndarray
    classrooms: np.ndarray
    boarding_beds: np.ndarray | None = None
    max_expand: np.ndarray | None = None
    max_beds_added: np.ndarray | None = None
    must_keep: np.ndarray | None = None
    cannot_close: np.ndarray | None = None
    counts_toward_target: np.ndarray | None = None
    max_classes: np.ndarray | None = None
    max_pupils: np.ndarray | None = None
    capital_cost_cny: np.ndarray | None = None
    running_cost_cny_per_year: np.ndarray | None = None
    classroom_cost_cny: np.ndarray | None = None

    @property
    def n_sites(self) -> int:
        return int(np.asarray(self.existing).shape[0])


@dataclass
class ConsolidationProblem:
    """A validated instance with every default resolved (build it with :func:`prepare_consolidation`)."""

    demand: np.ndarray            # (n_units, 2) pupils by level (sums over grades when grades are given)
    distance_m: np.ndarray        # (n_units, n_sites) metres
    unit_urban: np.ndarray        # (n_units,) bool
    sites: ConsolidationSites     # all fields resolved to arrays
    rules: ConsolidationRules
    costs: ConsolidationCosts     # penalties resolved to numbers
    before_site: np.ndarray       # (n_units, 2) int site index of the current school (-1 = none)
    unit_component: np.ndarray | None = None   # (n_units,) labels, or None
    site_component: np.ndarray | None = None   # (n_sites,) labels, or None
    k_nearest: int | None = 20
    # (n_units, 9) pupils by grade 1..9 when classes are counted per grade (demand given by grade), else None
    demand_by_grade: np.ndarray | None = None
    # solved targets of this problem: (target, rule, single_assignment, integer_classes) -> (model, result);
    # filled by solve_consolidation, read by tradeoff_curve (reuse and warm starts).  Do not change the
    # arrays above after solving (prepare a new problem instead).
    solved: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    # per-grade problems: the per-level relaxation (same arrays, demand summed by level), made on first use
    level: "ConsolidationProblem | None" = field(default=None, init=False, repr=False, compare=False)

    @property
    def n_units(self) -> int:
        return self.demand.shape[0]

    @property
    def n_sites(self) -> int:
        return self.sites.n_sites

    @property
    def by_grade(self) -> bool:
        """Classes are counted per grade (demand was given by grade 1..9)."""
        return self.demand_by_grade is not None


# ----------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------
def _arr(x, n, default, dtype, name, problems, shape=None):
    if x is None:
        return np.full(shape or (n,), default, dtype=dtype)
    a = np.asarray(x)
    want = shape or (n,)
    if a.shape != want:
        problems.append(Problem(name, f"shape {a.shape}, expected {want}", "pass one value per site (and level)"))
        return np.full(want, default, dtype=dtype)
    return a.astype(dtype)


def prepare_consolidation(
    demand,
    distance_m,
    unit_urban,
    sites: ConsolidationSites,
    *,
    rules: ConsolidationRules | None = None,
    costs: ConsolidationCosts | None = None,
    before_site=None,
    unit_component=None,
    site_component=None,
    k_nearest: int | None = 20,
) -> ConsolidationProblem:
    """Validate the arrays (collecting every problem, raising :class:`LayoutError` once) and fill defaults.

    ``demand`` (n_units, 2) pupils by level, or (n_units, 9) pupils by grade 1..9: then classes are
    counted per grade, ``problem.demand`` holds the level sums and ``problem.demand_by_grade`` the grades.
    ``before_site`` (n_units, 2) int: the school each unit × level attends now (-1 = none); by
    default the nearest existing site hosting the level.  ``unit_component`` / ``site_component``:
    optional labels (e.g. river side) for constraint 10.  ``k_nearest`` = None keeps every allowed site.
    """
    rules = rules or ConsolidationRules()
    costs = costs or ConsolidationCosts()
    problems: list[Problem] = []
    demand = np.asarray(demand, dtype=np.float64)
    if demand.ndim != 2 or demand.shape[1] not in (2, len(GRADE_LEVEL)):
        raise LayoutError("consolidation input is invalid", [Problem(
            "demand", f"shape {demand.shape}, expected (n_units, 2) or (n_units, 9)",
            "pass pupils by unit × (primary, junior), or by unit × grade 1..9 to count classes per grade")])
    n_u = demand.shape[0]
    bad = np.flatnonzero(~np.isfinite(demand).all(axis=1) | (demand < 0).any(axis=1))
    if bad.size:
        problems.append(Problem("demand", "negative or non-finite pupils", "pass counts >= 0", format_rows(bad)))
    demand_by_grade = None
    if demand.shape[1] == len(GRADE_LEVEL):
        demand_by_grade = demand
        demand = sum_grades_to_levels(demand_by_grade)
    existing = np.asarray(sites.existing, dtype=bool)
    n_s = existing.shape[0]
    distance_m = np.asarray(distance_m, dtype=np.float64)
    if distance_m.shape != (n_u, n_s):
        problems.append(Problem("distance_m", f"shape {distance_m.shape}, expected {(n_u, n_s)}",
                                "pass a units × sites distance matrix in metres"))
        distance_m = np.full((n_u, n_s), np.inf)
    elif np.any(np.isnan(distance_m)) or np.any(distance_m < 0):
        bad = np.flatnonzero(np.isnan(distance_m).any(axis=1) | (distance_m < 0).any(axis=1))
        problems.append(Problem("distance_m", "NaN or negative distances", "use inf for unreachable pairs",
                                format_rows(bad)))
    unit_urban = _arr(unit_urban, n_u, False, bool, "unit_urban", problems)
    hosts = _arr(sites.hosts, n_s, False, bool, "sites.hosts", problems, shape=(n_s, 2))
    none_hosted = np.flatnonzero(~hosts.any(axis=1))
    if none_hosted.size:
        problems.append(Problem("sites.hosts", "site hosts neither primary nor junior",
                                "drop it or set its levels", format_rows(none_hosted)))
    classrooms = _arr(sites.classrooms, n_s, 0, np.float64, "sites.classrooms", problems)
    both = hosts.all(axis=1)
    default_max_classes = np.where(both, rules.max_classes_nine_year, rules.max_classes_single_level)
    max_classes = _arr(sites.max_classes, n_s, 0, np.float64, "sites.max_classes", problems) \
        if sites.max_classes is not None else default_max_classes.astype(np.float64)
    capital = _arr(sites.capital_cost_cny, n_s, 0, np.float64, "sites.capital_cost_cny", problems) \
        if sites.capital_cost_cny is not None else np.where(
            existing, 0.0, costs.new_school_fixed_cny + costs.new_school_per_classroom_cny * classrooms)
    resolved = ConsolidationSites(
        hosts=hosts,
        existing=existing,
        classrooms=classrooms,
        boarding_beds=_arr(sites.boarding_beds, n_s, 0, np.float64, "sites.boarding_beds", problems),
        max_expand=_arr(sites.max_expand, n_s, 0, np.float64, "sites.max_expand", problems),
        max_beds_added=_arr(sites.max_beds_added, n_s, np.inf, np.float64, "sites.max_beds_added", problems),
        must_keep=_arr(sites.must_keep, n_s, False, bool, "sites.must_keep", problems),
        cannot_close=_arr(sites.cannot_close, n_s, False, bool, "sites.cannot_close", problems),
        counts_toward_target=_arr(sites.counts_toward_target, n_s, True, bool, "sites.counts_toward_target",
                                  problems),
        max_classes=max_classes,
        max_pupils=_arr(sites.max_pupils, n_s, rules.max_pupils_per_school, np.float64, "sites.max_pupils",
                        problems),
        capital_cost_cny=capital,
        running_cost_cny_per_year=_arr(sites.running_cost_cny_per_year, n_s, costs.running_cost_cny_per_year,
                                       np.float64, "sites.running_cost_cny_per_year", problems),
        classroom_cost_cny=_arr(sites.classroom_cost_cny, n_s, costs.classroom_cost_cny, np.float64,
                                "sites.classroom_cost_cny", problems),
    )
    for name in ("classrooms", "boarding_beds", "max_expand", "max_beds_added", "max_classes", "max_pupils",
                 "capital_cost_cny", "running_cost_cny_per_year", "classroom_cost_cny"):
        a = getattr(resolved, name)
        bad = np.flatnonzero(np.isnan(a) | (a < 0))
        if bad.size:
            problems.append(Problem(f"sites.{name}", "negative or NaN values", "pass values >= 0", format_rows(bad)))
    for name in ("max_expand",):
        a = getattr(resolved, name)
        bad = np.flatnonzero(np.isfinite(a) & (a != np.round(a)))
        if bad.size:
            problems.append(Problem(f"sites.{name}", "must be whole classrooms", "round the values", format_rows(bad)))
    cand_fixed = np.flatnonzero(~existing & (resolved.must_keep | resolved.cannot_close))
    if cand_fixed.size:
        problems.append(Problem("sites.must_keep", "a candidate site is flagged must-keep / cannot-close",
                                "flag existing schools only (or make the candidate an existing site)",
                                format_rows(cand_fixed)))
    limits = np.asarray(rules.travel_limit_m, dtype=np.float64)
    if limits.shape != (2, 2) or np.any(~(limits > 0)):
        problems.append(Problem("rules.travel_limit_m", f"expected positive (2 levels, 2 [urban, rural]) array, "
                                f"got {limits.tolist()}", "pass [[urban_primary, rural_primary], "
                                "[urban_junior, rural_junior]] in metres"))
    if len(rules.class_size_cap) != 2 or min(rules.class_size_cap) <= 0:
        problems.append(Problem("rules.class_size_cap", f"got {rules.class_size_cap}", "pass (45, 50)"))
    if before_site is None:
        before = np.full((n_u, 2), -1, dtype=np.int64)
        for lv in range(2):
            cols = np.flatnonzero(existing & hosts[:, lv])
            if cols.size and distance_m.shape == (n_u, n_s):
                d = distance_m[:, cols]
                j = np.argmin(d, axis=1)
                ok = np.isfinite(d[np.arange(n_u), j])
                before[ok, lv] = cols[j[ok]]
    else:
        before = np.asarray(before_site)
        if before.shape != (n_u, 2):
            problems.append(Problem("before_site", f"shape {before.shape}, expected {(n_u, 2)}",
                                    "pass the current school index per unit × level (-1 = none)"))
            before = np.full((n_u, 2), -1, dtype=np.int64)
        before = before.astype(np.int64)
        bad = np.flatnonzero(((before < -1) | (before >= n_s)).any(axis=1))
        if bad.size:
            problems.append(Problem("before_site", "site index out of range", f"use -1..{n_s - 1}",
                                    format_rows(bad)))
    if (unit_component is None) != (site_component is None):
        problems.append(Problem("unit_component/site_component", "only one of the two was given",
                                "pass both label arrays or neither"))
    if unit_component is not None and site_component is not None:
        unit_component = np.asarray(unit_component)
        site_component = np.asarray(site_component)
        if unit_component.shape != (n_u,) or site_component.shape != (n_s,):
            problems.append(Problem("unit_component/site_component", "wrong shapes",
                                    f"pass ({n_u},) and ({n_s},) label arrays"))
    if k_nearest is not None and k_nearest < 1:
        problems.append(Problem("k_nearest", f"got {k_nearest}", "pass an integer >= 1 or None"))
    if problems:
        raise LayoutError(f"consolidation input is invalid ({len(problems)} problem(s))", problems)
    costs = _resolve_penalties(costs, resolved)
    return ConsolidationProblem(demand=demand, distance_m=distance_m, unit_urban=unit_urban, sites=resolved,
                                rules=rules, costs=costs, before_site=before,
                                unit_component=unit_component if site_component is not None else None,
                                site_component=site_component, k_nearest=k_nearest,
                                demand_by_grade=demand_by_grade)


def sum_grades_to_levels(demand_by_grade) -> np.ndarray:
    """(n_units, 9) pupils by grade 1..9 → (n_units, 2) pupils by level (grades 1-6 primary, 7-9 junior)."""
    g = np.asarray(demand_by_grade, dtype=np.float64)
    return np.stack([g[:, GRADE_LEVEL == lv].sum(axis=1) for lv in range(2)], axis=1)


def _resolve_penalties(costs: ConsolidationCosts, sites: ConsolidationSites) -> ConsolidationCosts:
    annual = sites.running_cost_cny_per_year + costs.annuity_factor * sites.capital_cost_cny
    ref = max(float(np.max(annual, initial=0.0)),
              float(np.max(costs.annuity_factor * sites.classroom_cost_cny, initial=0.0)),
              costs.annuity_factor * costs.boarding_bed_cost_cny, 1.0)
    return replace(
        costs,
        penalty_unserved_cny_per_pupil=costs.penalty_unserved_cny_per_pupil or 10.0 * ref,
        penalty_school_cny=costs.penalty_school_cny or 5.0 * ref,
        penalty_classroom_cny=costs.penalty_classroom_cny or 1.0 * ref,
        penalty_bed_cny=costs.penalty_bed_cny or 0.2 * ref,
    )


def derive_cannot_close(site_component, unit_component, demand, hosts) -> np.ndarray:
    """Flag sites that cannot close because they are the only one in their component.

    ``site_component`` (n_sites,) and ``unit_component`` (n_units,) are labels (e.g. the river side or
    island each school and unit lies on); ``demand`` (n_units, 2) pupils; ``hosts`` (n_sites, 2) bool.
    A component with demand at a level must keep at least one school hosting that level: when it has
    exactly one, that school is flagged.  Returns (n_sites,) bool.  (To require "at least one of
    several", pass the labels to :func:`prepare_consolidation` instead.)
    """
    site_component = np.asarray(site_component)
    unit_component = np.asarray(unit_component)
    demand = np.asarray(demand, dtype=np.float64)
    hosts = np.asarray(hosts, dtype=bool)
    flags = np.zeros(site_component.shape[0], dtype=bool)
    for comp in np.unique(unit_component):
        for lv in range(2):
            if demand[unit_component == comp, lv].sum() <= 0:
                continue
            members = np.flatnonzero((site_component == comp) & hosts[:, lv])
            if members.size == 1:
                flags[members[0]] = True
    return flags


# ----------------------------------------------------------------------------------------------
# model
# ----------------------------------------------------------------------------------------------
@dataclass
class _Model:
    c: np.ndarray
    A: sp.csr_matrix
    rl: np.ndarray
    ru: np.ndarray
    cl: np.ndarray
    cu: np.ndarray
    integrality: np.ndarray
    n_s: int
    cls_site: np.ndarray
    cls_level: np.ndarray
    cls_grade: np.ndarray      # grade 1..9 of each class variable (per-grade model), 0 in the per-level model
    x_unit: np.ndarray
    x_level: np.ndarray
    x_site: np.ndarray
    x_pupils: np.ndarray
    x_dist_m: np.ndarray
    x_board: np.ndarray
    x_dem: np.ndarray          # index into dem_* of each pair
    dem_unit: np.ndarray
    dem_level: np.ndarray
    dem_truncated: np.ndarray  # (n_dem,) bool: allowed list cut by k_nearest
    pre_unserved: np.ndarray   # (n_units, 2) pupils with no allowed site
    count_row: int
    xy_row0: int               # first row of the x <= y block (one row per pair, in pair order)
    rule: str
    off: dict
    cls_row0: int = 0           # first row of the class-size block (one row per class variable)
    rooms_row0: int = 0         # first row of the classroom block (one per site)
    max_classes_row0: int = 0   # first row of the class-cap block (one per site)
    k_used: np.ndarray | None = None
    session: LpSession | None = None   # the LP relaxation kept in HiGHS for the local search (lazy)

    def col(self, name: str) -> slice:
        a, b = self.off[name]
        return slice(a, b)

    @property
    def scale(self) -> float:
        """Objective divisor giving a largest cost coefficient of 1e4 (see :func:`_run`)."""
        return max(float(np.max(np.abs(self.c), initial=0.0)) / 1e4, 1.0)

    def lp_session(self, threads=None) -> LpSession:
        """The LP relaxation (scaled objective) in a persistent HiGHS instance, created on first use."""
        if self.session is None:
            self.session = LpSession(self.c / self.scale, self.A, self.rl, self.ru, self.cl, self.cu, threads=threads)
        return self.session


def _allowed_pairs(p: ConsolidationProblem, k_nearest):
    """Sparse allowed pairs (u, l, s) with distance and boarding flag; see the module docstring.

    ``k_nearest``: None (every allowed site), an int, or an (n_units, 2) int array (per unit × level).
    Returns the pair arrays, the pupils with no allowed site (n_units, 2) and the truncated (u, l)."""
    lim = np.asarray(p.rules.travel_limit_m, dtype=np.float64)
    us, ls, ss, ds, bs, trunc_u, trunc_l = [], [], [], [], [], [], []
    pre = np.zeros((p.n_units, 2))
    if k_nearest is None:
        k_all = np.full((p.n_units, 2), np.iinfo(np.int64).max)
    else:
        k_all = np.broadcast_to(np.asarray(k_nearest, dtype=np.int64), (p.n_units, 2))
    for lv in range(2):
        units = np.flatnonzero(p.demand[:, lv] > 0)
        cols = np.flatnonzero(p.sites.hosts[:, lv])
        if units.size == 0:
            continue
        if cols.size == 0:
            pre[units, lv] = p.demand[units, lv]
            continue
        d = p.distance_m[np.ix_(units, cols)]
        urban = p.unit_urban[units][:, None]
        cap = np.where(urban, lim[lv, 0], p.rules.max_boarding_distance_m)
        d = np.where(np.isfinite(d) & (d <= cap), d, np.inf)
        n_allowed = np.isfinite(d).sum(axis=1)
        k = np.minimum(k_all[units, lv], cols.size)
        order = np.argsort(d, axis=1, kind="stable")
        dk = np.take_along_axis(d, order, axis=1)
        ok = np.isfinite(dk) & (np.arange(cols.size)[None, :] < k[:, None])
        rows = np.broadcast_to(np.arange(units.size)[:, None], order.shape)[ok]
        uu = units[rows]
        dist = dk[ok]
        us.append(uu)
        ls.append(np.full(uu.size, lv))
        ss.append(cols[order[ok]])
        ds.append(dist)
        bs.append(~p.unit_urban[uu] & (dist > lim[lv, 1]))
        none = n_allowed == 0
        pre[units[none], lv] = p.demand[units[none], lv]
        t = n_allowed > k
        trunc_u.append(units[t])
        trunc_l.append(np.full(int(t.sum()), lv))
    cat = lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt)  # noqa: E731
    return (cat(us, np.int64), cat(ls, np.int64), cat(ss, np.int64), cat(ds, np.float64), cat(bs, bool),
            pre, cat(trunc_u, np.int64), cat(trunc_l, np.int64))


def _extend_pairs(p: ConsolidationProblem, target: int, rule: str, *, single_assignment: bool,
                  integer_classes: bool, threads, rounds: int = 4, model: _Model | None = None) -> _Model:
    """Nearest-K pairs, widened where the LP relaxation needs them.

    Start from ``k_nearest`` sites per (u, l) (or from ``model``, a model of the same problem built for
    another target, whose lists are kept when they suffice); solve the LP; every truncated (u, l)
    whose LP assignment reaches its farthest kept site gets twice as many sites; repeat (at most
    ``rounds`` times).  This keeps the model small while the truncation rarely binds.  The LP is
    solved in the model's :class:`LpSession`, which the warm start then reuses."""
    if p.k_nearest is None or (model is not None and model.k_used is None):
        if model is not None:   # every allowed pair is in it already
            _set_target(model, target, rule)
            return model
        return _build_model(p, target=target, rule=rule, single_assignment=single_assignment,
                            integer_classes=integer_classes, k_nearest=None)
    k = model.k_used.copy() if model is not None else np.full((p.n_units, 2), int(p.k_nearest), dtype=np.int64)
    for _ in range(rounds):
        if model is None:
            model = _build_model(p, target=target, rule=rule, single_assignment=single_assignment,
                                 integer_classes=integer_classes, k_nearest=k)
        else:
            _set_target(model, target, rule)
        if not model.dem_truncated.any():
            break
        _, x, _ = model.lp_session(threads).solve(30.0)
        if x is None:
            break
        share = x[model.col("x")]
        # the farthest kept pair of each (u, l): pairs are stored nearest first within each (u, l)
        last = np.ones(share.size, dtype=bool)
        key = model.x_unit * 2 + model.x_level
        last[:-1] = key[1:] != key[:-1]
        hit = last & (share > 1e-6) & model.dem_truncated[model.x_dem]
        if not hit.any():
            break
        k[model.x_unit[hit], model.x_level[hit]] *= 2
        model = None
    if model is None:
        model = _build_model(p, target=target, rule=rule, single_assignment=single_assignment,
                             integer_classes=integer_classes, k_nearest=k)
    model.k_used = k
    return model


def _build_model(p: ConsolidationProblem, *, target: int, rule: str, single_assignment: bool,
                 integer_classes: bool, k_nearest: int | None) -> _Model:
    S = p.sites
    n_s = p.n_sites
    cap = np.asarray(p.rules.class_size_cap, dtype=np.float64)
    xu, xl, xs, xd, xb, pre, tr_u, tr_l = _allowed_pairs(p, k_nearest)
    # demand rows: (u, l) with at least one pair
    dem_key = xu * 2 + xl
    uniq, x_dem = np.unique(dem_key, return_inverse=True)
    dem_unit, dem_level = uniq // 2, uniq % 2
    n_d = uniq.size
    truncated = np.zeros(n_d, dtype=bool)
    if tr_u.size:
        truncated = np.isin(uniq, tr_u * 2 + tr_l)
    x_pupils = p.demand[xu, xl]
    n_x = xu.size
    if p.by_grade:   # one class variable per site × hosted grade
        cls_site, cls_g = np.nonzero(S.hosts[:, GRADE_LEVEL])
        cls_level, cls_grade = GRADE_LEVEL[cls_g], GRADES[cls_g]
        cls_index = -np.ones((n_s, GRADES.size), dtype=np.int64)
        cls_index[cls_site, cls_g] = np.arange(cls_site.size)
    else:
        cls_site, cls_level = np.nonzero(S.hosts)
        cls_grade = np.zeros(cls_site.size, dtype=np.int64)
        cls_index = -np.ones((n_s, 2), dtype=np.int64)
        cls_index[cls_site, cls_level] = np.arange(cls_site.size)
    n_c = cls_site.size

    names = [("y", n_s), ("e", n_s), ("b", n_s), ("cls", n_c), ("x", n_x), ("uns", n_d),
             ("scr", n_s), ("sbed", n_s), ("over", 1), ("under", 1)]
    off, pos = {}, 0
    for nm, k in names:
        off[nm] = (pos, pos + k)
        pos += k
    n = pos
    Y, E, B, C, X, U = (off[k][0] for k in ("y", "e", "b", "cls", "x", "uns"))
    SCR, SBED, OVER, UNDER = off["scr"][0], off["sbed"][0], off["over"][0], off["under"][0]
    sidx = np.arange(n_s)

    # objective
    costs = p.costs
    c = np.zeros(n)
    c[Y:Y + n_s] = S.running_cost_cny_per_year + costs.annuity_factor * S.capital_cost_cny
    c[E:E + n_s] = costs.annuity_factor * S.classroom_cost_cny
    c[B:B + n_s] = costs.annuity_factor * costs.boarding_bed_cost_cny
    w = np.asarray(costs.travel_cny_per_pupil_km_year, dtype=np.float64)
    c[X:X + n_x] = w[xl] * x_pupils * xd / 1000.0
    c[U:U + n_d] = costs.penalty_unserved_cny_per_pupil * p.demand[dem_unit, dem_level]
    c[SCR:SCR + n_s] = costs.penalty_classroom_cny
    c[SBED:SBED + n_s] = costs.penalty_bed_cny
    c[OVER] = c[UNDER] = costs.penalty_school_cny

    rows, cols, vals, rl, ru = [], [], [], [], []
    nrow = 0

    def add(r, cc, v):
        rows.append(np.asarray(r, dtype=np.int64))
        cols.append(np.asarray(cc, dtype=np.int64))
        vals.append(np.asarray(v, dtype=np.float64))

    def block(k, lo, hi):
        nonlocal nrow
        start = nrow
        rl.append(np.broadcast_to(np.asarray(lo, dtype=np.float64), (k,)))
        ru.append(np.broadcast_to(np.asarray(hi, dtype=np.float64), (k,)))
        nrow += k
        return start

    # 1 assignment
    r0 = block(n_d, 1.0, 1.0)
    add(r0 + x_dem, X + np.arange(n_x), np.ones(n_x))
    add(r0 + np.arange(n_d), U + np.arange(n_d), np.ones(n_d))
    # 2 x <= y
    r0 = block(n_x, -np.inf, 0.0)
    add(r0 + np.arange(n_x), X + np.arange(n_x), np.ones(n_x))
    add(r0 + np.arange(n_x), Y + xs, -np.ones(n_x))
    # 3 pupils <= cap * classes, per site × level (or per site × grade: a unit's pupils of every grade of a
    #   level go where its share x of that level goes)
    r0 = cls_row0 = block(n_c, -np.inf, 0.0)
    if p.by_grade:
        potential = np.zeros((n_s, GRADES.size))   # pupils of each grade that could come to each site
        for gi in range(GRADES.size):
            k = np.flatnonzero((xl == GRADE_LEVEL[gi]) & (p.demand_by_grade[xu, gi] > 0))
            pg = p.demand_by_grade[xu[k], gi]
            add(r0 + cls_index[xs[k], gi], X + k, pg)
            potential[:, gi] = np.bincount(xs[k], weights=pg, minlength=n_s)
    else:
        add(r0 + cls_index[xs, xl], X + np.arange(n_x), x_pupils)
    add(r0 + np.arange(n_c), C + np.arange(n_c), -cap[cls_level])
    # 4 classes <= classrooms y + e + extra
    r0 = rooms_row0 = block(n_s, -np.inf, 0.0)
    add(r0 + cls_site, C + np.arange(n_c), np.ones(n_c))
    add(r0 + sidx, Y + sidx, -S.classrooms)
    add(r0 + sidx, E + sidx, -np.ones(n_s))
    add(r0 + sidx, SCR + sidx, -np.ones(n_s))
    # 5 e <= max_expand y
    exp_sites = np.flatnonzero(S.max_expand > 0)
    r0 = block(exp_sites.size, -np.inf, 0.0)
    add(r0 + np.arange(exp_sites.size), E + exp_sites, np.ones(exp_sites.size))
    add(r0 + np.arange(exp_sites.size), Y + exp_sites, -S.max_expand[exp_sites])
    # 6 classes <= max_classes y
    r0 = max_classes_row0 = block(n_s, -np.inf, 0.0)
    add(r0 + cls_site, C + np.arange(n_c), np.ones(n_c))
    add(r0 + sidx, Y + sidx, -S.max_classes)
    # 7 pupils <= max_pupils y (only where it can bind)
    load_max = np.bincount(xs, weights=x_pupils, minlength=n_s)
    pup_sites = np.flatnonzero(load_max > S.max_pupils)
    r_of = -np.ones(n_s, dtype=np.int64)
    r_of[pup_sites] = np.arange(pup_sites.size)
    r0 = block(pup_sites.size, -np.inf, 0.0)
    m = r_of[xs] >= 0
    add(r0 + r_of[xs[m]], X + np.flatnonzero(m), x_pupils[m])
    add(r0 + np.arange(pup_sites.size), Y + pup_sites, -S.max_pupils[pup_sites])
    # 8 boarding
    board_sites = np.unique(xs[xb])
    r_of = -np.ones(n_s, dtype=np.int64)
    r_of[board_sites] = np.arange(board_sites.size)
    r0 = block(board_sites.size, -np.inf, 0.0)
    kb = np.flatnonzero(xb)
    add(r0 + r_of[xs[kb]], X + kb, x_pupils[kb])
    bi = np.arange(board_sites.size)
    add(r0 + bi, Y + board_sites, -S.boarding_beds[board_sites])
    add(r0 + bi, B + board_sites, -np.ones(board_sites.size))
    add(r0 + bi, SBED + board_sites, -np.ones(board_sites.size))
    # 9 count
    counted = np.flatnonzero(S.counts_toward_target)
    count_row = block(1, target if rule == "eq" else -np.inf, target)
    add(np.full(counted.size, count_row), Y + counted, np.ones(counted.size))
    add([count_row, count_row], [OVER, UNDER], [-1.0, 1.0])
    # 10 components
    if p.site_component is not None:
        for comp in np.unique(p.unit_component):
            for lv in range(2):
                if p.demand[p.unit_component == comp, lv].sum() <= 0:
                    continue
                members = np.flatnonzero((p.site_component == comp) & S.hosts[:, lv])
                if members.size == 0:
                    continue
                r = block(1, 1.0, np.inf)
                add(np.full(members.size, r), Y + members, np.ones(members.size))

    A = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(nrow, n))
    A.sum_duplicates()
    rl_a = np.concatenate(rl) if rl else np.zeros(0)
    ru_a = np.concatenate(ru) if ru else np.zeros(0)

    cl = np.zeros(n)
    cu = np.full(n, np.inf)
    cl[Y:Y + n_s] = (S.must_keep | S.cannot_close).astype(float)
    cu[Y:Y + n_s] = 1.0
    cu[E:E + n_s] = S.max_expand
    has_board = np.zeros(n_s, dtype=bool)
    has_board[board_sites] = True
    cu[B:B + n_s] = np.where(has_board, S.max_beds_added, 0.0)
    cu[SBED:SBED + n_s] = np.where(has_board, np.inf, 0.0)
    cu[C:C + n_c] = S.max_classes[cls_site]
    cu[X:X + n_x] = 1.0
    cu[U:U + n_d] = 1.0
    if rule != "eq":
        cu[UNDER] = 0.0
    integrality = np.zeros(n, dtype=np.int8)
    integrality[Y:Y + n_s] = 1
    integrality[E:E + n_s] = 1
    if integer_classes and p.by_grade:
        # per grade, classes need to be integer only where the rounding could bind: a site where even the
        # largest possible load of every grade, rounded up to whole classes, fits its classrooms and its
        # class cap can round any continuous solution up at no cost (a much easier MILP)
        load_g = np.minimum(potential, S.max_pupils[:, None])
        need_max = np.ceil(load_g / cap[GRADE_LEVEL][None, :] - 1e-9).sum(axis=1)
        binding = need_max > np.minimum(S.classrooms, S.max_classes) + 1e-9
        integrality[C:C + n_c] = binding[cls_site].astype(np.int8)
    elif integer_classes:
        # classes need to be integer only where two levels share classrooms: at a single-level site
        # pupils <= cap * c <= cap * (classrooms + e + extra) with an integer right-hand side already
        # implies ceil(pupils / cap) classes fit, so c stays continuous there (a much easier MILP)
        integrality[C:C + n_c] = S.hosts.all(axis=1)[cls_site].astype(np.int8)
    if single_assignment:
        integrality[X:X + n_x] = 1
    return _Model(c=c, A=A, rl=rl_a, ru=ru_a, cl=cl, cu=cu, integrality=integrality, n_s=n_s,
                  cls_site=cls_site, cls_level=cls_level, cls_grade=cls_grade, x_unit=xu, x_level=xl, x_site=xs, x_pupils=x_pupils,
                  x_dist_m=xd, x_board=xb, x_dem=x_dem, dem_unit=dem_unit, dem_level=dem_level,
                  dem_truncated=truncated, pre_unserved=pre, count_row=count_row, xy_row0=n_d, rule=rule, off=off,
                  cls_row0=cls_row0, rooms_row0=rooms_row0, max_classes_row0=max_classes_row0)


def _set_target(model: _Model, target: int, rule: str) -> None:
    """Move the model (and its LP session) to another target: only the count row's bounds and the
    bound of ``schools_under`` change, so one model serves a whole trade-off curve."""
    model.rl[model.count_row] = target if rule == "eq" else -np.inf
    model.ru[model.count_row] = target
    model.cu[model.off["under"][0]] = np.inf if rule == "eq" else 0.0
    model.rule = rule
    if model.session is not None:
        model.session.set_row_bounds([model.count_row], model.rl[model.count_row], model.ru[model.count_row])
        model.session.set_col_bounds([model.off["under"][0]], 0.0, model.cu[model.off["under"][0]])


# ----------------------------------------------------------------------------------------------
# warm start
# ----------------------------------------------------------------------------------------------
def _run(model: _Model, cl, cu, integrality, **kw) -> MilpResult:
    """solve_milp on the model with the objective scaled to a largest coefficient of 1e4 (HiGHS's
    tolerances are absolute; the big-M penalties would otherwise be 1e10 and more); the objective and
    bound are scaled back."""
    scale = model.scale
    r = solve_milp(model.c / scale, model.A, model.rl, model.ru, cl, cu, integrality, **kw)
    return replace(r, objective=r.objective * scale, bound=r.bound * scale)


def _solve_fixed_y(model: _Model, y: np.ndarray, time_limit_s: float, threads, mip_rel_gap: float = 1e-4) -> MilpResult:
    """The model with the open set fixed (a small MILP: only classes and expansions are integer)."""
    cl, cu = model.cl.copy(), model.cu.copy()
    sl = model.col("y")
    cl[sl] = y
    cu[sl] = y
    return _run(model, cl, cu, model.integrality, time_limit_s=time_limit_s, mip_rel_gap=mip_rel_gap,
                threads=threads, options={**_PROOF_OPTIONS, "mip_max_nodes": _FIXED_MAX_NODES})


def _pick_open_set(model: _Model, p: ConsolidationProblem, score: np.ndarray, target: int, rule: str,
                   prefer: np.ndarray | None = None) -> np.ndarray:
    """Open fixed sites, then the best-scoring counted sites up to the target (or up to the LP's count
    of counted sites, rounded, when that is larger: an impossible target); uncounted sites by score >= .5."""
    S = p.sites
    fixed = S.must_keep | S.cannot_close
    y = fixed.astype(float)
    counted = S.counts_toward_target
    y[~counted & (score >= 0.5)] = 1.0
    # an impossible target: the LP opens more counted sites (paying for schools over the target)
    # rather than leave pupils unseated; keep that many
    n_open = max(target, int(round(float(np.sum(score[counted])))))
    need = n_open - int(np.sum(fixed & counted))
    free = np.flatnonzero(counted & ~fixed)
    if rule != "eq":
        free = free[score[free] >= 0.5]
    if need > 0 and free.size:
        order = free[np.lexsort((-(prefer[free] if prefer is not None else np.zeros(free.size)), -score[free]))]
        y[order[:need]] = 1.0
    return y


def _lp_warm_start(model: _Model, p: ConsolidationProblem, target: int, rule: str, time_limit_s, threads):
    """An open set by LP diving: solve the LP relaxation, fix the fractional ``y`` closest to 1 at 1,
    re-solve (from the previous basis) and repeat until ``y`` is integral; then the ``target`` counted
    sites with the largest ``y`` (ties: most pupils).  The LP session is left with ``y`` free again."""
    session = model.lp_session(threads)
    ycols = model.off["y"][0] + np.arange(model.n_s)
    lower = model.cl[ycols].copy()
    counted = p.sites.counts_toward_target
    deadline = time.perf_counter() + time_limit_s
    x = limit = None
    for _ in range(_DIVE_MAX_LPS):
        _, xi, _ = session.solve(max(deadline - time.perf_counter(), 0.05))
        if xi is None:
            break
        x = xi
        y = x[ycols]
        frac = (y > 1e-6) & (y < 1 - 1e-6) & (lower < 0.5)
        if limit is None:   # the LP's count: the target, or more when the target is impossible
            limit = max(target, int(round(float(np.sum(y[counted])))))
        if np.sum(lower[counted] > 0.5) >= limit:   # never force more counted sites than that
            frac &= ~counted
        frac = np.flatnonzero(frac)
        if frac.size == 0 or time.perf_counter() >= deadline:
            break
        j = frac[np.argmax(y[frac])]
        lower[j] = 1.0
        session.set_col_bounds([ycols[j]], 1.0, model.cu[ycols[j]])
    session.set_col_bounds(ycols, model.cl[ycols], model.cu[ycols])
    if x is None:
        return None
    load = np.bincount(model.x_site, weights=model.x_pupils * x[model.col("x")], minlength=model.n_s)
    return _pick_open_set(model, p, x[model.col("y")], target, rule, prefer=load)


def _adjust_open_set(model: _Model, p: ConsolidationProblem, y_prev: np.ndarray, x_prev: np.ndarray,
                     target: int, rule: str) -> np.ndarray:
    """Move a previous open set to a new target: drop the least-loaded / open the most useful site."""
    S = p.sites
    y = np.round(y_prev).astype(float)
    fixed = S.must_keep | S.cannot_close
    counted = S.counts_toward_target
    flow = model.x_pupils * x_prev
    load = np.bincount(model.x_site, weights=flow, minlength=model.n_s)
    # current travel of each pair's (u, l): pupil-weighted mean distance
    dem_dist = np.bincount(model.x_dem, weights=flow * model.x_dist_m, minlength=model.dem_unit.size)
    dem_p = np.bincount(model.x_dem, weights=flow, minlength=model.dem_unit.size)
    cur = np.where(dem_p > 0, dem_dist / np.maximum(dem_p, _TOL), np.max(model.x_dist_m, initial=0.0))
    saving = np.bincount(model.x_site, weights=model.x_pupils * np.maximum(0.0, cur[model.x_dem] - model.x_dist_m),
                         minlength=model.n_s)
    n_open = int(np.sum(y[counted]))
    while n_open > target:
        cand = np.flatnonzero((y > 0.5) & counted & ~fixed)
        if cand.size == 0:
            break
        y[cand[np.argmin(load[cand])]] = 0.0
        n_open -= 1
    while n_open < target and rule == "eq":
        cand = np.flatnonzero((y < 0.5) & counted)
        if cand.size == 0:
            break
        j = cand[np.argmax(saving[cand])]
        y[j] = 1.0
        saving[j] = -np.inf
        n_open += 1
    return y


def _site_overlap(model: _Model) -> np.ndarray:
    """(n_sites, n_sites) pupils that could go to both sites (sum over the (u, l) listing both): which
    open school a newly opened site would draw its pupils from."""
    inc = sp.csr_matrix((model.x_pupils, (model.x_dem, model.x_site)), shape=(model.dem_unit.size, model.n_s))
    inc.data = np.sqrt(inc.data)
    return (inc.T @ inc).toarray()


def _estimate_opening(model: _Model, p: ConsolidationProblem, rcy: np.ndarray, row_dual: np.ndarray) -> np.ndarray:
    """Capacity-aware first-order change of the LP value when a closed site opens (scaled units).

    The reduced cost of a closed ``y[j]`` counts the gain of moving every listed pupil to ``j``
    (the duals of its ``x <= y`` rows), however few classrooms ``j`` has.  Keep only what fits:
    a fractional knapsack of those duals by classrooms used (pupils / class-size cap) within
    ``min(classrooms + max_expand, max_classes)``; the excess is added back to the reduced cost."""
    S = p.sites
    mu = np.maximum(-row_dual[model.xy_row0:model.xy_row0 + model.x_site.size], 0.0)
    cap = np.asarray(p.rules.class_size_cap, dtype=np.float64)
    weight = model.x_pupils / cap[model.x_level]
    ratio = mu / np.maximum(weight, _TOL)
    order = np.lexsort((-ratio, model.x_site))
    site, w, m = model.x_site[order], weight[order], mu[order]
    cum = np.cumsum(w)
    start = np.searchsorted(site, np.arange(model.n_s))
    before = cum - w - np.concatenate([[0.0], cum])[start[site]]
    budget = np.minimum(S.classrooms + S.max_expand, S.max_classes)[site]
    take = np.clip(budget - before, 0.0, w) / np.maximum(w, _TOL)
    excess = np.bincount(site, weights=m * (1.0 - take), minlength=model.n_s)
    return rcy + excess


def _local_search(model: _Model, p: ConsolidationProblem, y0: np.ndarray, rule: str, deadline: float,
                  threads, *, n_open_moves: int = 20, n_close_moves: int = 2,
                  max_evals: int = _LOCAL_SEARCH_MAX_LPS) -> tuple[np.ndarray, float]:
    """Improve an open set by swaps (close one counted site, open another), each judged by the LP
    relaxation with ``y`` fixed (classes and expansions continuous), re-solved from the previous basis
    in one persistent HiGHS instance (:class:`layout.milp.LpSession`, ~20 ms per move at Fuling size).

    Moves are ranked by the LP's reduced costs of ``y`` at the current open set (a closed site with a
    negative reduced cost would lower the cost if opened) and, for the site to close, by how many of
    the opened site's pupils it could also serve (its nearest competitor) or by its own reduced cost
    (the open site the LP values least).  First improvement; at a local optimum the candidate lists
    double; stops when they hold every site and none improves, after ``max_evals`` LP evaluations (the
    deterministic work budget), or at ``deadline`` (``time.perf_counter()`` seconds; a safety cap only).
    Sites that do not count toward the target (and, under rule "le", any movable site) may also open or
    close alone.
    Returns the open set (n_sites,) of 0/1 and its LP value (scaled objective; nan if infeasible).
    The LP session is left with ``y`` free again.
    """
    S = p.sites
    n_s = model.n_s
    ycols = model.off["y"][0] + np.arange(n_s)
    session = model.lp_session(threads)
    counted = S.counts_toward_target
    movable = ~(S.must_keep | S.cannot_close)
    y = np.round(y0).astype(float)

    def evaluate(yy):
        session.set_col_bounds(ycols, yy, yy)
        return session.solve(max(deadline - time.perf_counter(), 0.05))

    value, _, rc = evaluate(y)
    evals = 1
    if rc is None:
        session.set_col_bounds(ycols, model.cl[ycols], model.cu[ycols])
        return y, float("nan")
    overlap = _site_overlap(model)
    tol = 1e-7 * max(abs(value), 1.0)
    failed: set[tuple[int, int]] = set()   # moves that did not improve (forgotten when a neighbour changes)
    while evals < max_evals and time.perf_counter() < deadline:
        rcy = rc[ycols]
        closed = y < 0.5
        gain = _estimate_opening(model, p, rcy, session.row_dual)
        # swaps between two counted or two uncounted sites (the count stays), ranked by the
        # reduced-cost estimate
        opened = np.flatnonzero(closed & (rcy < -tol))
        opened = opened[np.argsort(gain[opened], kind="stable")][:n_open_moves]
        moves = []
        for j in opened:
            is_open = np.flatnonzero(~closed & movable & (counted == counted[j]))
            near = is_open[np.argsort(-overlap[j, is_open], kind="stable")][:n_close_moves]
            weak = is_open[np.argsort(-rcy[is_open], kind="stable")][:n_close_moves]
            for i in dict.fromkeys(np.concatenate([near, weak]).tolist()):
                moves.append((gain[j] - rcy[i], int(i), int(j)))
        # flips: sites outside the count (and, under "le", counted sites closing).  The LP value is
        # convex in one y, so a flip can only help when its reduced cost points that way.
        flip_close = ~closed & movable & (rcy > tol) & (~counted | (rule == "le"))
        flip_open = closed & ~counted & (rcy < -tol)
        moves += [(-rcy[i], int(i), -1) for i in np.flatnonzero(flip_close)]
        moves += [(gain[j], -1, int(j)) for j in np.flatnonzero(flip_open)]
        moves.sort()
        improved = skipped = False
        for _est, i, j in moves:
            if evals >= max_evals or time.perf_counter() >= deadline:
                break
            if (i, j) in failed:   # failed before, and nothing near i or j has changed since
                skipped = True
                continue
            trial = y.copy()
            if i >= 0:
                trial[i] = 0.0
            if j >= 0:
                trial[j] = 1.0
            v, _, r = evaluate(trial)
            evals += 1
            if r is not None and v < value - tol:
                y, value, rc, improved = trial, v, r, True
                touched = set(np.flatnonzero((overlap[[k for k in (i, j) if k >= 0]] > 0).any(axis=0)).tolist())
                failed = {mv for mv in failed if mv[0] not in touched and mv[1] not in touched}
                break
            failed.add((i, j))
        if not improved:
            if skipped:
                failed.clear()   # check the skipped moves once more at this open set
            elif n_open_moves < n_s:
                n_open_moves, n_close_moves = 2 * n_open_moves, 2 * n_close_moves   # a wider neighbourhood
            else:
                break
    session.set_col_bounds(ycols, model.cl[ycols], model.cu[ycols])
    return y, value


# ----------------------------------------------------------------------------------------------
# results
# ----------------------------------------------------------------------------------------------
@dataclass
class ConsolidationResult:
    """Solution of one target.  Arrays are indexed like the inputs (sites, units, levels).

    Per site (n_sites,): ``open``, ``decision`` ("keep", "expand", "close", "open", "not_opened"),
    ``classrooms_added``, ``beds_added``, ``extra_classrooms`` and ``missing_beds`` (slack),
    ``pupils_before`` / ``pupils_after`` (n_sites, 2), ``classes_after`` (n_sites, 2: classes under the cap,
    per level, or the sums over grades when the demand was given by grade), and for a per-grade model
    ``pupils_after_by_grade`` / ``classes_after_by_grade`` (n_sites, 9: grades 1..9; None otherwise),
    ``boarding_pupils``, ``receiving_site`` (closed existing → the site receiving most of its former
    pupils, -1 otherwise) with ``receiving_share``.
    Per unit (n_units, 2): ``assigned_site`` (main school, -1 none), ``assigned_share``,
    ``travel_m`` (pupil-weighted mean one-way distance), ``boarding_pupils_unit``, ``unserved_pupils``.
    ``flows``: the sparse assignment (unit, level, site, pupils, distance_m, boarding).
    ``costs``: each objective term (pandas Series, CNY or pupil-km as named).
    Solver: ``objective``, ``bound``, ``gap``, ``status``, ``seconds`` (total incl. warm start),
    ``solve_seconds`` (the main MILP), ``target``, ``rule``, ``n_open_counted``, ``schools_over``,
    ``schools_under``.
    """

    problem: ConsolidationProblem
    target: int
    rule: str
    open: np.ndarray
    decision: np.ndarray
    classrooms_added: np.ndarray
    beds_added: np.ndarray
    extra_classrooms: np.ndarray
    missing_beds: np.ndarray
    pupils_before: np.ndarray
    pupils_after: np.ndarray
    classes_after: np.ndarray
    boarding_pupils: np.ndarray
    receiving_site: np.ndarray
    receiving_share: np.ndarray
    assigned_site: np.ndarray
    assigned_share: np.ndarray
    travel_m: np.ndarray
    boarding_pupils_unit: np.ndarray
    unserved_pupils: np.ndarray
    unserved_reason: np.ndarray
    flows: pd.DataFrame
    costs: pd.Series
    objective: float
    bound: float
    gap: float
    status: str
    seconds: float
    solve_seconds: float
    n_open_counted: int
    schools_over: float
    schools_under: float
    x: np.ndarray = field(repr=False, default=None)
    pupils_after_by_grade: np.ndarray | None = None    # (n_sites, 9) grades 1..9, per-grade model only
    classes_after_by_grade: np.ndarray | None = None   # (n_sites, 9) ceil(pupils / cap) per grade
    # per-grade problems (two stages, see solve_consolidation): the layout stage's result (classes per level) and
    # the proven gap of the class organisation for that layout (HiGHS's, on the per-grade model with the open
    # set fixed); ``bound`` / ``gap`` above are against the layout stage's bound, valid for the per-grade model
    level_result: "ConsolidationResult | None" = field(repr=False, default=None)
    grade_gap: float = float("nan")
    # per-grade problems whose layout was solved again keeping more schools (see _classes_for_layout): the first
    # layout's result (its bound is ``bound``) and the schools kept; None / empty otherwise
    first_layout: "ConsolidationResult | None" = field(repr=False, default=None)
    kept_for_classes: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def slack_used(self) -> bool:
        return bool(self.unserved_pupils.sum() > 1e-3 or self.extra_classrooms.sum() > 1e-6
                    or self.missing_beds.sum() > 1e-6 or self.schools_over > 1e-6 or self.schools_under > 1e-6)

    def site_table(self, site_ids: Sequence | None = None) -> pd.DataFrame:
        """Per-school decision table (one row per site)."""
        ids = np.asarray(site_ids) if site_ids is not None else np.arange(self.open.size)
        rec = np.where(self.receiving_site >= 0, ids[np.maximum(self.receiving_site, 0)], None)
        return pd.DataFrame({
            "school_id": ids,
            "existing": self.problem.sites.existing,
            "decision": self.decision,
            "classrooms_before": self.problem.sites.classrooms,
            "classrooms_added": self.classrooms_added,
            "extra_classrooms_needed": self.extra_classrooms,
            "pupils_before_primary": self.pupils_before[:, 0],
            "pupils_before_junior": self.pupils_before[:, 1],
            "pupils_after_primary": self.pupils_after[:, 0],
            "pupils_after_junior": self.pupils_after[:, 1],
            "classes_after_primary": self.classes_after[:, 0],
            "classes_after_junior": self.classes_after[:, 1],
            "boarding_pupils": self.boarding_pupils,
            "boarding_beds_before": self.problem.sites.boarding_beds,
            "boarding_beds_added": self.beds_added,
            "boarding_beds_missing": self.missing_beds,
            "receiving_school_id": rec,
            "receiving_share": self.receiving_share,
        })

    def unit_table(self, unit_codes: Sequence | None = None, site_ids: Sequence | None = None) -> pd.DataFrame:
        """Per unit × level: main assigned school, its share, mean travel, boarding and unserved pupils."""
        n_u = self.assigned_site.shape[0]
        codes = np.asarray(unit_codes) if unit_codes is not None else np.arange(n_u)
        ids = np.asarray(site_ids) if site_ids is not None else np.arange(self.open.size)
        frames = []
        for lv, name in enumerate(LEVELS):
            a = self.assigned_site[:, lv]
            frames.append(pd.DataFrame({
                "unit_code": codes, "level": name, "urban": self.problem.unit_urban,
                "pupils": self.problem.demand[:, lv],
                "school_id": np.where(a >= 0, ids[np.maximum(a, 0)], None),
                "share": self.assigned_share[:, lv],
                "travel_m": self.travel_m[:, lv],
                "boarding_pupils": self.boarding_pupils_unit[:, lv],
                "unserved_pupils": self.unserved_pupils[:, lv],
            }))
        return pd.concat(frames, ignore_index=True)

    def flow_table(self, unit_codes: Sequence | None = None, site_ids: Sequence | None = None) -> pd.DataFrame:
        """The assignment: pupils of each unit × level (× grade 1..9 when classes are organised per grade, each
        grade zoned on its own) sent to each school, with the one-way distance and whether they board."""
        f = self.flows
        codes = np.asarray(unit_codes) if unit_codes is not None else np.arange(self.assigned_site.shape[0])
        ids = np.asarray(site_ids) if site_ids is not None else np.arange(self.open.size)
        out = pd.DataFrame({"unit_code": codes[f["unit"].to_numpy()],
                            "level": np.asarray(LEVELS, dtype=object)[f["level"].to_numpy()]})
        if "grade" in f:
            out["grade"] = f["grade"].to_numpy()
        out["school_id"] = ids[f["site"].to_numpy()]
        out["pupils"] = f["pupils"].to_numpy()
        out["distance_m"] = f["distance_m"].to_numpy()
        out["boarding"] = f["boarding"].to_numpy(bool)
        keys = ["unit_code", "level", "grade", "school_id"] if "grade" in f else ["unit_code", "level", "school_id"]
        return out.sort_values(keys, kind="stable").reset_index(drop=True)

    def travel_table(self) -> pd.DataFrame:
        """Travel before/after: pupil-weighted mean, p90 and max (metres) by level × urban/rural."""
        return summarise_travel(self)


def _weighted_stats(values: np.ndarray, weights: np.ndarray) -> tuple[float, float, float, float]:
    m = weights > _TOL
    v, w = values[m], weights[m]
    if w.size == 0:
        return 0.0, float("nan"), float("nan"), float("nan")
    order = np.argsort(v, kind="stable")
    v, w = v[order], w[order]
    cw = np.cumsum(w)
    p90 = v[min(np.searchsorted(cw, 0.9 * cw[-1] - 1e-9), v.size - 1)]
    return float(cw[-1]), float(np.sum(v * w) / cw[-1]), float(p90), float(v[-1])


def summarise_travel(result: ConsolidationResult) -> pd.DataFrame:
    """Distributions of one-way travel (metres) before and after, by level and urban/rural.

    "before" puts the same demand on ``before_site``; "after" uses the optimised flows (unserved
    pupils are excluded and counted separately).  p90 is the pupil-weighted 90th percentile.
    """
    p = result.problem
    f = result.flows
    rows = []
    for lv, name in enumerate(LEVELS):
        for urban, area in ((True, "urban"), (False, "rural")):
            units = np.flatnonzero((p.unit_urban == urban) & (p.demand[:, lv] > 0))
            bs = p.before_site[units, lv]
            ok = bs >= 0
            dist_b = p.distance_m[units[ok], bs[ok]]
            fin = np.isfinite(dist_b)
            pb, mb, qb, xb = _weighted_stats(dist_b[fin], p.demand[units[ok][fin], lv])
            sel = (f["level"].to_numpy() == lv) & (p.unit_urban[f["unit"].to_numpy()] == urban)
            pa, ma, qa, xa = _weighted_stats(f["distance_m"].to_numpy()[sel], f["pupils"].to_numpy()[sel])
            rows.append({"level": name, "area": area, "pupils_before": pb, "mean_m_before": mb, "p90_m_before": qb,
                         "max_m_before": xb, "pupils_after": pa, "mean_m_after": ma, "p90_m_after": qa,
                         "max_m_after": xa, "unserved_pupils": float(result.unserved_pupils[units, lv].sum())})
    return pd.DataFrame(rows)


def _model_flows(model: _Model, p: ConsolidationProblem, x: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """The flows (unit, level, site, pupils, distance_m, boarding) of a solution on the model's own indices, and the
    pupils left unseated (n_units, 2) including those with no allowed site."""
    flow = model.x_pupils * np.clip(x[model.col("x")], 0.0, 1.0)
    keep = flow > _TOL
    flows = pd.DataFrame({"unit": model.x_unit[keep], "level": model.x_level[keep], "site": model.x_site[keep],
                          "pupils": flow[keep], "distance_m": model.x_dist_m[keep], "boarding": model.x_board[keep]})
    unserved = model.pre_unserved.copy()
    unserved[model.dem_unit, model.dem_level] += (p.demand[model.dem_unit, model.dem_level]
                                                  * np.clip(x[model.col("uns")], 0.0, 1.0))
    return flows, unserved


def _extract(model: _Model, p: ConsolidationProblem, res: MilpResult, target: int, rule: str,
             seconds: float) -> ConsolidationResult:
    """The result of a solved model: flows from the pairs' shares, then :func:`_assemble`."""
    x = res.x
    flows, unserved = _model_flows(model, p, x)
    return _assemble(p, target, rule, y=np.round(x[model.col("y")]).astype(bool), e=np.round(x[model.col("e")]),
                     b_added=x[model.col("b")], scr=x[model.col("scr")], sbed=x[model.col("sbed")], flows=flows,
                     unserved=unserved, pre_unserved=model.pre_unserved, over=float(x[model.off["over"][0]]),
                     under=float(x[model.off["under"][0]]), res=res, seconds=seconds, x=x)


def _whole(v) -> np.ndarray:
    """Whole units (classrooms, beds) needed for continuous amounts, ignoring solver noise below 1e-4."""
    return np.ceil(np.round(np.asarray(v, dtype=np.float64), 4) - 1e-9).clip(min=0)


def _assemble(p: ConsolidationProblem, target: int, rule: str, *, y, e, b_added, scr, sbed, flows: pd.DataFrame,
              unserved, pre_unserved, over: float, under: float, res: MilpResult, seconds: float, x=None,
              **extra) -> ConsolidationResult:
    """A :class:`ConsolidationResult` from a solution: open sites ``y``, classrooms ``e``, beds ``b_added``, slack
    ``scr`` / ``sbed`` per site, ``flows`` (unit, level, site, pupils, distance_m, boarding, and ``grade`` 1..9
    when pupils were assigned per grade), ``unserved`` pupils (n_units, 2) including ``pre_unserved`` (no allowed
    site), schools over / under the target; solver figures from ``res``."""
    S = p.sites
    n_s, n_u = p.n_sites, p.n_units
    fu, fl, fs = (flows[k].to_numpy() for k in ("unit", "level", "site"))
    fp, fd, fb = flows["pupils"].to_numpy(), flows["distance_m"].to_numpy(), flows["boarding"].to_numpy(bool)
    pupils_after = np.zeros((n_s, 2))
    np.add.at(pupils_after, (fs, fl), fp)
    cap = np.asarray(p.rules.class_size_cap, dtype=np.float64)
    pupils_g = classes_g = None
    if "grade" in flows:   # pupils assigned per grade: whole classes per site × grade
        pupils_g = np.zeros((n_s, GRADES.size))
        np.add.at(pupils_g, (fs, flows["grade"].to_numpy() - 1), fp)
        classes_g = np.ceil(pupils_g / cap[GRADE_LEVEL][None, :] - 1e-6).clip(min=0)
        classes_after = np.stack([classes_g[:, GRADE_LEVEL == lv].sum(axis=1) for lv in range(2)], axis=1)
    else:
        classes_after = np.ceil(pupils_after / cap - 1e-6).clip(min=0)
    boarding = np.bincount(fs[fb], weights=fp[fb], minlength=n_s)
    pupils_before = np.zeros((n_s, 2))
    for lv in range(2):
        ok = p.before_site[:, lv] >= 0
        np.add.at(pupils_before[:, lv], p.before_site[ok, lv], p.demand[ok, lv])
    decision = np.where(S.existing, np.where(y, np.where(e > 0, "expand", "keep"), "close"),
                        np.where(y, "open", "not_opened")).astype(object)
    # receiving school of each closed existing school
    bsite = p.before_site[fu, fl]
    m = bsite >= 0
    move = sp.coo_matrix((fp[m], (bsite[m], fs[m])), shape=(n_s, n_s)).tocsr()
    receiving = -np.ones(n_s, dtype=np.int64)
    rshare = np.zeros(n_s)
    for s in np.flatnonzero(S.existing & ~y):
        row = move.getrow(s)
        tot = row.sum()
        if row.nnz and tot > _TOL:
            j = int(np.argmax(row.toarray().ravel()))
            receiving[s] = j
            rshare[s] = float(row[0, j] / tot)
    # per unit × level: the main school (largest share; a per-grade flow counts with its pupils)
    assigned = -np.ones((n_u, 2), dtype=np.int64)
    ashare = np.zeros((n_u, 2))
    agg = flows.groupby(["unit", "level", "site"], sort=True)["pupils"].sum().reset_index()
    if len(agg):
        agg = agg.sort_values(["unit", "level", "pupils", "site"], ascending=[True, True, False, True], kind="stable")
        top = agg.drop_duplicates(["unit", "level"])
        tu, tl = top["unit"].to_numpy(), top["level"].to_numpy()
        assigned[tu, tl] = top["site"].to_numpy()
        ashare[tu, tl] = top["pupils"].to_numpy() / np.maximum(p.demand[tu, tl], _TOL)
    served = np.zeros((n_u, 2))
    np.add.at(served, (fu, fl), fp)
    dist_sum = np.zeros((n_u, 2))
    np.add.at(dist_sum, (fu, fl), fp * fd)
    travel = np.where(served > _TOL, dist_sum / np.maximum(served, _TOL), np.nan)
    board_u = np.zeros((n_u, 2))
    np.add.at(board_u, (fu[fb], fl[fb]), fp[fb])
    unserved = np.asarray(unserved, dtype=np.float64).copy()
    unserved[unserved < 1e-6] = 0.0
    reason = np.full((n_u, 2), "", dtype=object)
    reason[pre_unserved > 0] = "no_site_within_rules"
    reason[(unserved > 0) & (pre_unserved <= 0)] = "capacity_or_count"
    # cost terms
    c = p.costs
    w = np.asarray(c.travel_cny_per_pupil_km_year, dtype=np.float64)
    pkm = np.array([np.sum(fp[fl == lv] * fd[fl == lv]) / 1000.0 for lv in range(2)])
    classroom_cap = float(np.sum(e * S.classroom_cost_cny))
    newschool_cap = float(np.sum(S.capital_cost_cny[y]))
    bed_cap = float(np.sum(b_added) * c.boarding_bed_cost_cny)
    penalty = float(c.penalty_unserved_cny_per_pupil * (unserved.sum() - pre_unserved.sum())
                    + c.penalty_classroom_cny * np.sum(scr) + c.penalty_bed_cny * np.sum(sbed)
                    + c.penalty_school_cny * (over + under))
    travel_cost = float(np.sum(w * pkm))
    running = float(np.sum(S.running_cost_cny_per_year[y]))
    annual_cap = c.annuity_factor * (classroom_cap + newschool_cap + bed_cap)
    beds_added = _whole(b_added)
    costs = pd.Series({
        "travel_pupil_km_primary": pkm[0],
        "travel_pupil_km_junior": pkm[1],
        "travel_cost_cny_per_year": travel_cost,
        "classroom_capital_cny": classroom_cap,
        "new_school_capital_cny": newschool_cap,
        "boarding_capital_cny": bed_cap,
        "capital_annualised_cny_per_year": annual_cap,
        "running_cost_cny_per_year": running,
        "total_cost_cny_per_year": travel_cost + annual_cap + running,
        "slack_penalty_cny_per_year": penalty,
        "classrooms_added": float(e.sum()),
        "new_schools": float(np.sum(y & ~S.existing)),
        "boarding_beds_added": float(beds_added.sum()),
        "boarding_pupils": float(boarding.sum()),
    })
    return ConsolidationResult(
        problem=p, target=target, rule=rule, open=y, decision=decision, classrooms_added=e, beds_added=beds_added,
        extra_classrooms=_whole(scr), missing_beds=_whole(sbed),
        pupils_before=pupils_before, pupils_after=pupils_after, classes_after=classes_after, boarding_pupils=boarding,
        receiving_site=receiving, receiving_share=rshare, assigned_site=assigned, assigned_share=ashare,
        travel_m=travel, boarding_pupils_unit=board_u, unserved_pupils=unserved, unserved_reason=reason, flows=flows,
        costs=costs, objective=res.objective, bound=res.bound, gap=res.gap, status=res.status, seconds=seconds,
        solve_seconds=res.seconds, n_open_counted=int(np.sum(y & S.counts_toward_target)),
        schools_over=max(over, 0.0), schools_under=max(under, 0.0), x=x,
        pupils_after_by_grade=pupils_g, classes_after_by_grade=classes_g, **extra)


# ----------------------------------------------------------------------------------------------
# solving
# ----------------------------------------------------------------------------------------------
def _solve_on_model(model: _Model, p: ConsolidationProblem, target: int, rule: str, *, time_limit_s: float,
                    mip_rel_gap: float, threads, warm_y: np.ndarray | None, warm_x: np.ndarray | None) -> tuple:
    """Incumbent first, then the proof.

    (1) An open set by LP diving (:func:`_lp_warm_start`); (2) :func:`_local_search` on it
    (LP-evaluated swaps, at most ``_LOCAL_SEARCH_MAX_LPS``); (3) the full model with that open
    set fixed, a small MILP (integer classrooms and nine-year classes), gives a feasible incumbent — as
    does ``warm_y`` (moved to this target) when given, and the better one is kept; (4) the full MILP
    from that incumbent with HiGHS's primal heuristics and restarts off (``_PROOF_OPTIONS``: its
    sub-MIPs would mostly redo step 2; the time goes
    to cuts and branching), stopped after ``_MILP_MAX_NODES`` nodes, and if that does not reach
    ``mip_rel_gap``, once more with HiGHS's defaults from the best solution so far (per-level models only: a
    per-grade problem's layout is solved on its per-level relaxation, see :func:`solve_consolidation`).  When the
    clock, not the work limit, stops HiGHS (its root has no work limit), the search incumbent is kept with HiGHS's
    bound.
    Every step stops on a work budget, so the result does not depend
    on the machine's speed; ``time_limit_s`` is only a safety cap."""
    t0 = time.perf_counter()
    _set_target(model, target, rule)
    deadline = t0 + time_limit_s
    integ = model.integrality
    start = None
    warm = []
    if warm_y is not None:   # a previous solution (moved to this target) competes on the full model
        warm.append(warm_y if warm_x is None else _adjust_open_set(model, p, warm_y, warm_x, target, rule))
    y0 = _lp_warm_start(model, p, target, rule, max(1.0, 0.2 * time_limit_s), threads)
    if y0 is not None:
        y0, _ = _local_search(model, p, y0, rule, deadline, threads)
    for y_try in ([y0] if y0 is not None else []) + warm:
        fixed = _solve_fixed_y(model, y_try, max(1.0, deadline - time.perf_counter()), threads,
                               mip_rel_gap=min(1e-4, mip_rel_gap))
        if fixed.has_solution and (start is None or fixed.objective < float(model.c @ start)):
            start = fixed.x
    remaining = max(1.0, deadline - time.perf_counter())
    proof = start is not None
    res = _run(model, model.cl, model.cu, integ, time_limit_s=remaining, mip_rel_gap=mip_rel_gap,
               warm_start=start, threads=threads, options={**(_PROOF_OPTIONS if proof else {}), **_WORK_OPTIONS})
    if proof and not res.optimal and deadline - time.perf_counter() > 0.5:
        # once more with HiGHS's heuristics from the best solution so far (same node budget); a run the
        # clock stopped is ignored, as below
        again = _run(model, model.cl, model.cu, integ, time_limit_s=max(0.5, deadline - time.perf_counter()),
                     mip_rel_gap=mip_rel_gap, warm_start=res.x if res.has_solution else start, threads=threads,
                     options=_WORK_OPTIONS)
        if again.has_solution and again.status != "Time limit reached":
            best = again if not res.has_solution or again.objective <= res.objective else res
            bound = max(res.bound, again.bound)
            gap = max(0.0, (best.objective - bound) / max(abs(best.objective), 1e-9))
            ok = gap <= mip_rel_gap + 1e-12
            res = replace(best, bound=bound, gap=gap, seconds=res.seconds + again.seconds, optimal=ok,
                          status="Optimal" if ok else again.status)
    if start is not None and (not res.has_solution or res.status == "Time limit reached"):
        # stopped by the clock, not the work limit (per grade on Fuling: HiGHS's root, cut rounds and
        # sub-MIPs, has no work limit and does not finish in 30 s): its incumbent would depend on the
        # machine's speed, so keep the (deterministic) search incumbent with HiGHS's bound
        objective = float(model.c @ start)
        bound = min(res.bound, objective) if np.isfinite(res.bound) else -np.inf
        gap = max(0.0, (objective - bound) / max(abs(objective), 1e-9))
        res = replace(res, x=start, objective=objective, bound=bound, gap=gap, optimal=False,
                      status="Time limit reached (search incumbent kept)")
    return res, time.perf_counter() - t0


# ----------------------------------------------------------------------------------------------
# classes per grade: the layout by level, then whole classes per grade for that layout
# ----------------------------------------------------------------------------------------------
_GRADE_MAX_NODES = 400   # branch-and-bound nodes of the class-organisation MILP (work budget)
_GRADE_K_NEAREST = 6   # nearest open sites per unit × grade (widened where the LP needs more)
# HiGHS's root (cuts, heuristics) has no work limit and takes 8-19 s on Fuling: the class organisation's safety cap is
# this multiple of the stage's time limit, so that the node budget, not the clock, stops it (reproducible results)
_GRADE_TIME_FACTOR = 6


def level_problem(p: ConsolidationProblem) -> ConsolidationProblem:
    """The per-level relaxation of a per-grade problem (kept on it, so that its solved targets are reused);
    ``p`` itself when it counts classes per level."""
    if not p.by_grade:
        return p
    if p.level is None:
        p.level = replace(p, demand_by_grade=None)
    return p.level


def _grade_problem(p: ConsolidationProblem, open_sites: np.ndarray) -> ConsolidationProblem:
    """The class organisation of a layout as a consolidation problem of its own: one pseudo-unit per unit × grade
    (that grade's pupils only, at the unit's place, with its distances and urban flag), so that each grade has its
    own shares, and only the layout's open sites, all kept (their capital and running costs are constants)."""
    S = p.sites
    n_u = p.n_units
    d = np.zeros((n_u * GRADES.size, GRADES.size))
    for gi in range(GRADES.size):
        d[gi::GRADES.size, gi] = p.demand_by_grade[:, gi]
    sub = ConsolidationSites(**{k: np.asarray(getattr(S, k))[open_sites] for k in S.__dataclass_fields__})
    sub.existing = np.ones(open_sites.size, dtype=bool)   # opened candidates are kept like schools here
    sub.must_keep = np.ones(open_sites.size, dtype=bool)
    sub.cannot_close = np.zeros(open_sites.size, dtype=bool)
    rep = lambda a: np.repeat(a, GRADES.size, axis=0)  # noqa: E731
    return prepare_consolidation(d, rep(p.distance_m[:, open_sites]), rep(p.unit_urban), sub, rules=p.rules,
                                 costs=p.costs, before_site=np.full((d.shape[0], 2), -1),
                                 k_nearest=None if p.k_nearest is None else min(p.k_nearest, _GRADE_K_NEAREST))


def _grade_warm_start(model: _Model, g: ConsolidationProblem, level: ConsolidationResult,
                      open_sites: np.ndarray) -> np.ndarray:
    """The layout stage's shares given to every grade, classes rounded up per grade, classrooms (and beyond the
    expansion limit, extra classrooms) to fit them: a feasible start for the class organisation (unless rounding
    up passes a school's class cap, when HiGHS ignores it)."""
    S = g.sites
    x = np.zeros(model.c.size)
    X, C = model.col("x"), model.col("cls")
    x[X] = _shares_of(level, model.x_unit // GRADES.size, model.x_level, open_sites[model.x_site])
    x[model.col("y")] = 1.0
    n_c = model.cls_site.size
    cap = np.asarray(g.rules.class_size_cap, dtype=np.float64)[model.cls_level]
    pupils_of = model.A[model.cls_row0:model.cls_row0 + n_c, X]
    load = pupils_of @ x[X]
    need = np.ceil(np.round(load / cap, 9))
    # a school over its class cap once classes are whole: drop the classes whose last class holds the fewest
    # pupils and leave their pupils unseated (penalised), so that the start stays feasible
    over = np.bincount(model.cls_site, weights=need, minlength=model.n_s) - S.max_classes
    for s in np.flatnonzero(over > 0.5):
        j = np.flatnonzero((model.cls_site == s) & (need > 0))
        fill = load[j] / cap[j] - (need[j] - 1)
        need[j[np.argsort(fill, kind="stable")][:int(round(over[s]))]] -= 1
    scale = np.divide(need * cap, load, out=np.ones(n_c), where=load > need * cap + 1e-9).clip(max=1.0)
    row_of_pair = pupils_of.tocsc().indices if pupils_of.nnz == pupils_of.shape[1] else None
    if row_of_pair is not None:   # each pair of a pseudo-unit (one grade) feeds exactly one class row
        x[X] *= scale[row_of_pair]
    x[C] = need
    x[model.col("uns")] = np.clip(1.0 - np.bincount(model.x_dem, weights=x[X], minlength=model.dem_unit.size), 0, 1)
    used = np.bincount(model.cls_site, weights=x[C], minlength=model.n_s)
    x[model.col("e")] = np.clip(used - S.classrooms, 0.0, S.max_expand)
    x[model.col("scr")] = np.maximum(used - S.classrooms - x[model.col("e")], 0.0)
    board = np.bincount(model.x_site[model.x_board], weights=(model.x_pupils * x[X])[model.x_board],
                        minlength=model.n_s)
    x[model.col("b")] = np.clip(board - S.boarding_beds, 0.0, S.max_beds_added) * (model.cu[model.col("b")] > 0)
    x[model.col("sbed")] = np.maximum(board - S.boarding_beds - x[model.col("b")], 0.0)
    return x


def _organise_grades(p: ConsolidationProblem, level: ConsolidationResult, *, time_limit_s: float,
                     mip_rel_gap: float, threads, bound: float | None = None) -> ConsolidationResult:
    """Stage 2 of a per-grade problem: whole classes per grade for the layout ``level`` (its open set fixed).

    Each grade's pupils of a unit get their own shares (a unit's grade-1 intake can be zoned to another school
    than its grade-4 pupils, as admission zones are set year by year); classes per site × grade are integer and
    fit the classrooms (expansions re-decided, integer), the class cap of the school, the pupil cap and the
    boarding beds.  Solved by HiGHS from the layout's own shares with classes rounded up
    (:func:`_grade_warm_start`), stopped at ``mip_rel_gap`` or ``_GRADE_MAX_NODES`` nodes (safety cap
    ``_GRADE_TIME_FACTOR × time_limit_s``).  Returns the result
    on ``p`` with ``bound`` = the layout stage's bound: the per-level model is a relaxation of this one (sum each
    site's classes over the grades of a level, and average a unit's grade shares weighted by pupils), so its proven
    bound holds for every layout with classes per grade (``bound`` overrides it when ``level`` was solved on a
    restricted copy)."""
    t0 = time.perf_counter()
    op = np.flatnonzero(level.open)
    g = _grade_problem(p, op)
    model = _extend_pairs(g, int(g.sites.counts_toward_target.sum()), "eq", single_assignment=False,
                          integer_classes=True, threads=threads)
    x0 = _grade_warm_start(model, g, level, op)
    res = _run(model, model.cl, model.cu, model.integrality, time_limit_s=_GRADE_TIME_FACTOR * time_limit_s,
               mip_rel_gap=mip_rel_gap,
               warm_start=x0, threads=threads, options={"mip_max_nodes": _GRADE_MAX_NODES})
    if not res.has_solution:
        raise LayoutError(f"HiGHS found no class organisation in {time_limit_s:.0f} s (status {res.status})", [Problem(
            "time_limit_s", "no incumbent for the classes per grade within the time limit", "raise time_limit_s")])
    x = res.x
    flows, unserved_v = _model_flows(model, g, x)   # on pseudo-units and the open sites: back to units and sites
    pseudo = flows["unit"].to_numpy()
    flows = flows.assign(unit=pseudo // GRADES.size, site=op[flows["site"].to_numpy()])
    flows.insert(2, "grade", pseudo % GRADES.size + 1)
    fold = lambda a: a.reshape(p.n_units, GRADES.size, 2).sum(axis=1)  # noqa: E731
    per_site = {}
    for k in ("e", "b", "scr", "sbed"):
        v = np.zeros(p.n_sites)
        v[op] = x[model.col(k)]
        per_site[k] = v
    # the layout's schools over / under the target keep their penalty (the open set is the layout's)
    over_under = p.costs.penalty_school_cny * (level.schools_over + level.schools_under)
    objective = res.objective + over_under
    bound = min(level.bound if bound is None else bound, objective)
    gap = max(0.0, (objective - bound) / max(abs(objective), 1e-9))
    status = (f"layout (classes per level): {level.status}, gap {level.gap:.2%}; classes per grade for it: "
              f"{res.status}, gap {res.gap:.2%}")
    out = replace(res, objective=objective, bound=bound, gap=gap, status=status, optimal=gap <= mip_rel_gap)
    return _assemble(p, level.target, level.rule, y=level.open.copy(), e=np.round(per_site["e"]),
                     b_added=per_site["b"], scr=per_site["scr"], sbed=per_site["sbed"], flows=flows,
                     unserved=fold(unserved_v), pre_unserved=fold(model.pre_unserved), over=level.schools_over,
                     under=level.schools_under, res=out, seconds=level.seconds + time.perf_counter() - t0,
                     level_result=level, grade_gap=res.gap)



def _alternative_sites(p: ConsolidationProblem, result: ConsolidationResult,
                       level: ConsolidationResult) -> np.ndarray:
    """Closed existing schools to keep in a second layout solve: for each school where whole classes per grade need
    classrooms beyond its expansion limit, and for pupils left unseated (where the layout did neither), the closed
    school hosting the level that reaches most of those pupils, nearest to them (pupil-weighted)."""
    S = p.sites
    closed = np.flatnonzero(S.existing & ~result.open)
    places = []   # (units, level, pupils) short of seats: at a school beyond its limit, or unseated
    f = result.flows
    for s in np.flatnonzero(result.extra_classrooms > level.extra_classrooms):
        g = f[f["site"].to_numpy() == s]
        for lv in range(2):
            h = g[g["level"].to_numpy() == lv]
            if len(h):
                places.append((h["unit"].to_numpy(), lv, h["pupils"].to_numpy()))
    for lv in range(2):
        u = np.flatnonzero(result.unserved_pupils[:, lv] > level.unserved_pupils[:, lv] + 1e-6)
        if u.size:
            places.append((u, lv, result.unserved_pupils[u, lv]))
    out = []
    for units, lv, w in places:
        j, _ = _pick_alternative(p, units, lv, w, closed)
        if j >= 0:
            out.append(j)
    return np.unique(np.asarray(out, dtype=np.int64))


def _reach(p: ConsolidationProblem, lv: int, cols: np.ndarray) -> np.ndarray:
    """(n_units, cols.size) bool: the site is allowed for the unit's pupils of level ``lv`` by the travel rules
    (urban: within the urban limit; rural: within ``max_boarding_distance_m``, boarding beyond the rural limit)."""
    d = p.distance_m[:, cols]
    lim = np.asarray(p.rules.travel_limit_m, dtype=np.float64)
    cap = np.where(p.unit_urban, lim[lv, 0], p.rules.max_boarding_distance_m)[:, None]
    return np.isfinite(d) & (d <= cap)


def _pick_alternative(p: ConsolidationProblem, units: np.ndarray, lv: int, pupils: np.ndarray,
                      closed: np.ndarray) -> tuple[int, float]:
    """The closed site hosting level ``lv`` that the most of these pupils can reach under the travel rules, then
    the nearest to them (pupil-weighted mean distance); (-1, inf) when none reaches any."""
    cand = closed[p.sites.hosts[closed, lv]]
    if not cand.size or not units.size:
        return -1, np.inf
    ok = _reach(p, lv, cand)[units]
    w = np.asarray(pupils, dtype=np.float64)[:, None] * ok
    covered = w.sum(axis=0)
    mean = np.where(covered > 0, (w * np.where(ok, p.distance_m[np.ix_(units, cand)], 0.0)).sum(axis=0)
                    / np.maximum(covered, _TOL), np.inf)
    j = int(np.lexsort((mean, -np.round(covered, 6)))[0])
    return (int(cand[j]), float(mean[j])) if np.isfinite(mean[j]) else (-1, np.inf)


def _forced_alternatives(p: ConsolidationProblem, level: ConsolidationResult) -> tuple[np.ndarray, float]:
    """Closed existing schools to keep because pupils who can reach only one open school need, in whole classes per
    grade, more classes than that school can ever have (``min(classrooms + max_expand, max_classes)``): for each such
    school, the closed school hosting its levels that those pupils can reach, nearest to them (pupil-weighted).
    Also returns the classes those schools are short of (each costs at least a classroom's slack penalty)."""
    S = p.sites
    cap = np.asarray(p.rules.class_size_cap, dtype=np.float64)
    need = np.zeros(p.n_sites)
    forced = np.full((p.n_units, 2), -1, dtype=np.int64)
    for lv in range(2):
        cols = np.flatnonzero(level.open & S.hosts[:, lv])
        if not cols.size:
            continue
        reach = _reach(p, lv, cols)
        single = (reach.sum(axis=1) == 1) & (p.demand[:, lv] > 0)
        site = cols[np.argmax(reach[single], axis=1)]
        forced[single, lv] = site
        grades = GRADE_LEVEL == lv
        per_site = np.zeros((p.n_sites, int(grades.sum())))
        np.add.at(per_site, site, p.demand_by_grade[np.ix_(np.flatnonzero(single), np.flatnonzero(grades))])
        need += np.ceil(np.round(per_site / cap[lv], 9)).sum(axis=1)
    limit = np.minimum(S.classrooms + S.max_expand, S.max_classes)
    closed = np.flatnonzero(S.existing & ~level.open)
    out, short = [], 0.0
    for s in np.flatnonzero(level.open & (need > limit + 1e-9)):
        best, best_d = -1, np.inf
        for lv in range(2):
            units = np.flatnonzero(forced[:, lv] == s)
            j, d = _pick_alternative(p, units, lv, p.demand[units, lv], closed)
            if j >= 0 and d < best_d:
                best, best_d = j, d
        if best >= 0:
            out.append(best)
            short += float(need[s] - limit[s])
    return np.unique(np.asarray(out, dtype=np.int64)), short


def _slack_cost(r: ConsolidationResult) -> float:
    return float(r.costs["slack_penalty_cny_per_year"])


def _held_layout(level: ConsolidationResult, keep: np.ndarray, **kw) -> ConsolidationResult:
    """The layout stage again with the sites ``keep`` kept open (a restriction of the first layout's problem)."""
    S = level.problem.sites
    held = replace(level.problem, sites=replace(S, must_keep=S.must_keep | np.isin(np.arange(S.n_sites), keep)))
    return solve_consolidation(held, level.target, **kw)


def _classes_for_layout(problem: ConsolidationProblem, level: ConsolidationResult, **kw) -> ConsolidationResult:
    """Stage 2 for the layout ``level``, after keeping the closed schools that pupils with a single reachable school
    need (:func:`_forced_alternatives`); where whole classes per grade still need classrooms beyond a school's
    expansion limit (or leave pupils unseated) and the layout did not, once more keeping the closed school nearest
    to those pupils (:func:`_alternative_sites`); the better result is returned.  A layout solved again is a
    restriction, so the bound stays the first layout's.  ``kw``: rule, single_assignment, integer_classes,
    time_limit_s, mip_rel_gap, threads."""
    stage2 = dict(time_limit_s=kw["time_limit_s"], mip_rel_gap=kw["mip_rel_gap"], threads=kw["threads"])
    penalty = problem.costs.penalty_classroom_cny
    first = level
    keep, short = _forced_alternatives(problem, first)
    if keep.size:
        held = _held_layout(first, keep, **kw)
        if held.objective - first.objective < short * penalty:   # cheaper than the slack it avoids
            level = held
        else:
            keep = keep[:0]
    result = _organise_grades(problem, level, bound=first.bound, **stage2)
    more = _alternative_sites(problem, result, level)
    if more.size:
        keep2 = np.union1d(keep, more)
        held = _held_layout(first, keep2, **kw)
        if held.objective - level.objective < _slack_cost(result) - _slack_cost(level):
            again = _organise_grades(problem, held, bound=first.bound, **stage2)
            if again.objective < result.objective - 1e-9 * abs(result.objective):
                result, keep = again, keep2
    if keep.size:
        result.status += f" (layout re-solved keeping {keep.size} more school(s) where classes per grade were short)"
        result = replace(result, first_layout=first, kept_for_classes=keep)
    return result


def solve_consolidation(
    problem: ConsolidationProblem,
    target: int,
    *,
    rule: str = "eq",
    single_assignment: bool = False,
    integer_classes: bool = True,
    time_limit_s: float = 60.0,
    mip_rel_gap: float = 1e-3,
    threads: int | None = None,
    warm_start: ConsolidationResult | None = None,
) -> ConsolidationResult:
    """Solve the consolidation MILP for one target school count.

    ``rule`` "eq" (exactly ``target`` counted schools open) or "le" (at most).  Never raises for an
    impossible target: the penalised slack is reported (see :func:`diagnose`).  Raises
    :class:`LayoutError` only for bad arguments or when HiGHS returns no solution in the time limit.

    With demand by grade (a per-grade problem) the solve has two stages: the layout (which schools, expansions,
    boarding) on the per-level relaxation, proven to ``mip_rel_gap``; then whole classes per grade for that layout
    (:func:`_organise_grades`), and where those need classrooms beyond a school's expansion limit, a second layout
    keeping one more school there (:func:`_classes_for_layout`).  The result's ``bound`` is the first layout
    stage's (valid for the per-grade model), ``grade_gap`` the second stage's gap for the chosen layout, and
    ``level_result`` the chosen layout's stage-1 result.
    """
    if problem.by_grade:
        _check_target(problem, target, rule)
        t0 = time.perf_counter()
        level = solve_consolidation(level_problem(problem), target, rule=rule, single_assignment=single_assignment,
                                    integer_classes=integer_classes, time_limit_s=time_limit_s,
                                    mip_rel_gap=mip_rel_gap, threads=threads,
                                    warm_start=warm_start.level_result if warm_start is not None else None)
        result = _classes_for_layout(problem, level, rule=rule, single_assignment=single_assignment,
                                     integer_classes=integer_classes, time_limit_s=time_limit_s,
                                     mip_rel_gap=mip_rel_gap, threads=threads)
        result.seconds = time.perf_counter() - t0   # both stages (and a second layout, if any)
        problem.solved[(int(target), rule, bool(single_assignment), bool(integer_classes))] = (None, result)
        return result
    model, res, secs = _solve(problem, target, rule=rule, single_assignment=single_assignment,
                              integer_classes=integer_classes, time_limit_s=time_limit_s,
                              mip_rel_gap=mip_rel_gap, threads=threads, warm_start=warm_start)
    result = _extract(model, problem, res, target, rule, secs)
    problem.solved[(int(target), rule, bool(single_assignment), bool(integer_classes))] = (model, result)
    return result


def _check_target(problem: ConsolidationProblem, target, rule) -> None:
    problems = []
    if rule not in ("eq", "le"):
        problems.append(Problem("rule", f"got {rule!r}", 'use "eq" (exactly target) or "le" (at most target)'))
    if not isinstance(target, (int, np.integer)) or target < 0:
        problems.append(Problem("target", f"got {target!r}", "pass a whole number of schools >= 0"))
    if problems:
        raise LayoutError("consolidation target is invalid", problems)


def _solve(problem, target, *, rule, single_assignment, integer_classes, time_limit_s, mip_rel_gap, threads,
           warm_start, model: _Model | None = None):
    """Build (or re-target ``model``, built for the same problem and settings) and solve one target."""
    _check_target(problem, target, rule)
    t0 = time.perf_counter()
    model = _extend_pairs(problem, int(target), rule, single_assignment=single_assignment,
                          integer_classes=integer_classes, threads=threads, model=model)
    warm_y = warm_x = None
    if warm_start is not None and warm_start.x is not None:
        warm_y = warm_start.open.astype(float)
        warm_x = _map_shares(warm_start, model)
    budget = max(1.0, time_limit_s - (time.perf_counter() - t0))
    res, _ = _solve_on_model(model, problem, int(target), rule, time_limit_s=budget, mip_rel_gap=mip_rel_gap,
                             threads=threads, warm_y=warm_y, warm_x=warm_x)
    if not res.has_solution:
        raise LayoutError(f"HiGHS found no solution in {time_limit_s:.0f} s (status {res.status})", [Problem(
            "time_limit_s", "no incumbent within the time limit", "raise time_limit_s or lower k_nearest")])
    uns = res.x[model.col("uns")]
    if problem.k_nearest is not None and np.any((uns > 1e-6) & model.dem_truncated):
        # slack where a nearest-K list was cut: rebuild with every allowed site, once
        model = _build_model(problem, target=int(target), rule=rule, single_assignment=single_assignment,
                             integer_classes=integer_classes, k_nearest=None)
        res2, _ = _solve_on_model(model, problem, int(target), rule, time_limit_s=time_limit_s,
                                  mip_rel_gap=mip_rel_gap, threads=threads,
                                  warm_y=np.round(res.x[:problem.n_sites]), warm_x=None)
        if res2.has_solution:
            res = res2
    return model, res, time.perf_counter() - t0


def _shares_of(result: ConsolidationResult, units: np.ndarray, levels: np.ndarray, sites: np.ndarray) -> np.ndarray:
    """Share of (unit, level) pupils a previous result sends to each (unit, level, site) asked for (0 where absent)."""
    f = result.flows
    fu, fl = f["unit"].to_numpy(), f["level"].to_numpy()
    n_s = result.open.size
    pupils = pd.Series(f["pupils"].to_numpy()).groupby((fu * 2 + fl) * n_s + f["site"].to_numpy()).sum()
    key_prev = pupils.index.to_numpy()
    share_prev = pupils.to_numpy() / np.maximum(result.problem.demand[key_prev // n_s // 2, key_prev // n_s % 2], _TOL)
    key = (np.asarray(units) * 2 + np.asarray(levels)) * n_s + np.asarray(sites)
    pos = np.minimum(np.searchsorted(key_prev, key), max(key_prev.size - 1, 0))
    out = np.zeros(key.size)
    if key_prev.size:
        hit = key_prev[pos] == key
        out[hit] = share_prev[pos[hit]]
    return out


def _map_shares(result: ConsolidationResult, model: _Model) -> np.ndarray:
    """Shares of a previous result's flows on this model's pairs (0 where absent)."""
    return _shares_of(result, model.x_unit, model.x_level, model.x_site)


def tradeoff_curve(
    problem: ConsolidationProblem,
    targets: Sequence[int] = range(75, 111, 5),
    *,
    rule: str = "eq",
    single_assignment: bool = False,
    integer_classes: bool = True,
    time_limit_s: float = 60.0,
    mip_rel_gap: float = 1e-3,
    threads: int | None = None,
) -> tuple[pd.DataFrame, dict[int, ConsolidationResult]]:
    """Solve each target on one model (only the count row's bounds change between targets; the LP
    relaxation stays loaded in HiGHS, so each target's LP re-solves from the previous basis).  Each
    target's incumbent is the better (on the full model) of its own LP diving + local search and the
    previous target's open set moved to this count (the least-loaded school dropped, or the closed site
    saving most travel opened).  A target already solved on this
    problem by :func:`solve_consolidation` with the same settings and a gap within ``mip_rel_gap`` is
    reused, not solved again.

    Returns a table with one row per target: schools open, travel (mean and p90 metres by level,
    pupil-km), cost terms, slack used (unserved pupils, extra classrooms, missing beds, schools over
    / under target), gap, seconds (0 for a reused target) and ``reused``; and the results by target.
    """
    results: dict[int, ConsolidationResult] = {}
    rows = []
    for t in targets:
        _check_target(problem, t, rule)
    if problem.by_grade:   # the curve of layouts on the per-level relaxation, then classes per grade for each
        _, levels = tradeoff_curve(level_problem(problem), targets, rule=rule, single_assignment=single_assignment,
                                   integer_classes=integer_classes, time_limit_s=time_limit_s,
                                   mip_rel_gap=mip_rel_gap, threads=threads)
        grade_results = {}
        for t, lv in levels.items():
            key = (int(t), rule, bool(single_assignment), bool(integer_classes))
            done = problem.solved.get(key)
            if done is not None:   # solved by solve_consolidation already (same settings)
                grade_results[t] = (done[1], True)
                continue
            r = _classes_for_layout(problem, lv, rule=rule, single_assignment=single_assignment,
                                    integer_classes=integer_classes, time_limit_s=time_limit_s,
                                    mip_rel_gap=mip_rel_gap, threads=threads)
            problem.solved[key] = (None, r)
            grade_results[t] = (r, False)
    else:
        grade_results = None
    same = [(k[0], v) for k, v in problem.solved.items()
            if k[1:] == (rule, bool(single_assignment), bool(integer_classes))]
    model = same[-1][1][0] if same else None
    prev: ConsolidationResult | None = None
    for t in targets:
        hit = [v for k, v in same if k == int(t) and v[1].gap <= mip_rel_gap + 1e-12]
        reused = bool(hit)
        if grade_results is not None:
            r, reused = grade_results[int(t)]
        elif reused:
            r = hit[-1][1]
        else:
            if prev is None and same:
                prev = min(same, key=lambda kv: abs(kv[0] - int(t)))[1][1]
            model, res, secs = _solve(problem, int(t), rule=rule, single_assignment=single_assignment,
                                      integer_classes=integer_classes, time_limit_s=time_limit_s,
                                      mip_rel_gap=mip_rel_gap, threads=threads, warm_start=prev, model=model)
            r = _extract(model, problem, res, int(t), rule, secs)
            problem.solved[(int(t), rule, bool(single_assignment), bool(integer_classes))] = (model, r)
        results[int(t)] = r
        prev = r
        row = {"target": int(t), "schools_open": r.n_open_counted}
        for lv, name in enumerate(LEVELS):
            f = r.flows[r.flows["level"] == lv]
            _, mean_m, p90_m, max_m = _weighted_stats(f["distance_m"].to_numpy(), f["pupils"].to_numpy())
            row[f"mean_m_{name}"] = mean_m
            row[f"p90_m_{name}"] = p90_m
            row[f"max_m_{name}"] = max_m
        row.update(r.costs.to_dict())
        row.update({"unserved_pupils": float(r.unserved_pupils.sum()),
                    "extra_classrooms": float(r.extra_classrooms.sum()),
                    "missing_beds": float(r.missing_beds.sum()),
                    "schools_over_target": r.schools_over, "schools_under_target": r.schools_under,
                    "gap": r.gap, "status": r.status, "seconds": 0.0 if reused else r.seconds,
                    "reused": reused})
        rows.append(row)
    return pd.DataFrame(rows), results


# ----------------------------------------------------------------------------------------------
# diagnosis
# ----------------------------------------------------------------------------------------------
def diagnose(
    result: ConsolidationResult,
    *,
    unit_codes: Sequence | None = None,
    unit_township: Sequence | None = None,
    site_ids: Sequence | None = None,
    site_township: Sequence | None = None,
) -> tuple[pd.DataFrame, str]:
    """What is missing to meet the target under the rules, and where.  Never raises.

    Returns a DataFrame with one row per shortfall — ``kind`` (unserved_pupils, extra_classrooms,
    missing_boarding_beds, schools_over_target, schools_under_target), ``level``, ``unit_code`` /
    ``school_id``, ``township_code``, ``quantity`` and ``quantity_unit`` (pupils, classrooms, beds,
    schools), ``classrooms_needed`` and ``schools_needed`` (for unserved pupils: classes under the cap,
    and schools at the single-level class cap, per township), ``reason`` — and a readable message.
    An empty frame and "target met" when no slack is used.
    """
    p = result.problem
    n_u, n_s = p.n_units, p.n_sites
    codes = np.asarray(unit_codes) if unit_codes is not None else np.arange(n_u)
    utown = np.asarray(unit_township) if unit_township is not None else np.full(n_u, "", dtype=object)
    ids = np.asarray(site_ids) if site_ids is not None else np.arange(n_s)
    stown = np.asarray(site_township) if site_township is not None else np.full(n_s, "", dtype=object)
    cap = np.asarray(p.rules.class_size_cap, dtype=np.float64)
    rows = []
    u_idx, l_idx = np.nonzero(result.unserved_pupils > 1e-3)
    for u, lv in zip(u_idx, l_idx):
        q = float(result.unserved_pupils[u, lv])
        rows.append({"kind": "unserved_pupils", "level": LEVELS[lv], "unit_code": codes[u], "school_id": None,
                     "township_code": utown[u], "quantity": q, "quantity_unit": "pupils",
                     "classrooms_needed": math.ceil(q / cap[lv] - 1e-9),
                     "reason": result.unserved_reason[u, lv]})
    for s in np.flatnonzero(result.extra_classrooms > 0):
        rows.append({"kind": "extra_classrooms", "level": "", "unit_code": None, "school_id": ids[s],
                     "township_code": stown[s], "quantity": float(result.extra_classrooms[s]),
                     "quantity_unit": "classrooms", "classrooms_needed": float(result.extra_classrooms[s]),
                     "reason": "beyond the expansion limit" + (
                         " (whole classes per grade need them)" if result.classes_after_by_grade is not None else "")})
    for s in np.flatnonzero(result.missing_beds > 0):
        rows.append({"kind": "missing_boarding_beds", "level": "", "unit_code": None, "school_id": ids[s],
                     "township_code": stown[s], "quantity": float(result.missing_beds[s]), "quantity_unit": "beds",
                     "classrooms_needed": 0, "reason": "beyond max_beds_added"})
    if result.schools_over > 1e-6:
        rows.append({"kind": "schools_over_target", "level": "", "unit_code": None, "school_id": None,
                     "township_code": "", "quantity": round(result.schools_over), "quantity_unit": "schools",
                     "classrooms_needed": 0,
                     "reason": "must-keep/cannot-close schools, or seating every pupil within the rules, need more"})
    if result.schools_under > 1e-6:
        rows.append({"kind": "schools_under_target", "level": "", "unit_code": None, "school_id": None,
                     "township_code": "", "quantity": round(result.schools_under), "quantity_unit": "schools",
                     "classrooms_needed": 0, "reason": "fewer sites than the target"})
    cols = ["kind", "level", "unit_code", "school_id", "township_code", "quantity", "quantity_unit",
            "classrooms_needed", "schools_needed", "reason"]
    df = pd.DataFrame(rows, columns=[c for c in cols if c != "schools_needed"])
    df["schools_needed"] = 0
    if df.empty:
        return df[cols], (f"Target {result.rule} {result.target} met within the rules: "
                          f"{result.n_open_counted} schools open, no slack used.")
    msgs = [f"Target {result.rule} {result.target} cannot be met within the rules "
            f"({result.n_open_counted} counted schools open in the best layout found):"]
    if result.schools_over > 1e-6:
        msgs.append(f"- {round(result.schools_over)} more school(s) than the target must stay open "
                    f"(must-keep / cannot-close schools, or pupils who could not be seated otherwise).")
    if result.schools_under > 1e-6:
        msgs.append(f"- only {result.n_open_counted} sites are available; {round(result.schools_under)} short.")
    un = df[df["kind"] == "unserved_pupils"]
    if not un.empty:
        for lv, name in enumerate(LEVELS):
            g = un[un["level"] == name]
            if g.empty:
                continue
            per = g.groupby("township_code", sort=True)["quantity"].sum()
            need = np.ceil(per / (cap[lv] * p.rules.max_classes_single_level) - 1e-9).astype(int)
            for town, n in need.items():
                df.loc[(df["kind"] == "unserved_pupils") & (df["level"] == name)
                       & (df["township_code"] == town), "schools_needed"] = int(n)
            where = ", ".join(f"{t or 'all'}: {per[t]:.0f} pupils (~{math.ceil(per[t] / cap[lv] - 1e-9)} classrooms, "
                              f"{need[t]} school(s))" for t in per.sort_values(ascending=False).index[:10])
            msgs.append(f"- {g['quantity'].sum():.0f} {name} pupils cannot be seated within the rules; "
                        f"by township: {where}.")
    ec = df[df["kind"] == "extra_classrooms"]
    if not ec.empty:
        msgs.append(f"- {ec['quantity'].sum():.0f} classroom(s) beyond the expansion limits at "
                    + ", ".join(f"{r.school_id} ({r.quantity:.0f}{', ' + str(r.township_code) if r.township_code else ''})"
                                for r in ec.itertuples()) + ".")
    mb = df[df["kind"] == "missing_boarding_beds"]
    if not mb.empty:
        msgs.append(f"- {mb['quantity'].sum():.0f} boarding bed(s) missing at "
                    + ", ".join(f"{r.school_id} ({r.quantity:.0f})" for r in mb.itertuples()) + ".")
    return df[cols], "\n".join(msgs)


# ----------------------------------------------------------------------------------------------
# DataFrame adapter
# ----------------------------------------------------------------------------------------------
def build_sites_from_frames(
    schools: pd.DataFrame,
    candidates: pd.DataFrame | None = None,
    *,
    rules: ConsolidationRules | None = None,
    costs: ConsolidationCosts | None = None,
    max_expand_urban: int = 12,
    max_expand_rural: int = 6,
    candidate_hosts: tuple[bool, bool] = (True, True),
    teaching_points_count: bool = True,
) -> tuple[ConsolidationSites, pd.DataFrame]:
    """Turn the school inventory (+ candidate sites) into :class:`ConsolidationSites`.

    ``schools`` follows the ``data/schools.geojson`` schema (school_id, level, grade_min, grade_max,
    public, classrooms, boarding_beds, township_code, urban, must_keep, classes_g<k>).  Public schools
    teaching any grade 1-9 become sites; classrooms available = classrooms − classes of grades
    outside 1-9 (a complete secondary keeps its senior classes); schools that also teach senior grades
    are cannot-close (their senior section stays).  ``candidates`` follows
    ``data/candidate_sites.geojson`` (site_id, kind, township_code, urban, capacity_classes); rows of
    kind "school" become candidate sites hosting ``candidate_hosts`` with ``capacity_classes``
    classrooms.  Teaching points count toward the target when ``teaching_points_count``.
    Returns the sites and a frame (school_id, township_code, urban, level, existing) in site order.
    """
    rules = rules or ConsolidationRules()
    problems = []
    need = {"school_id", "level", "grade_min", "grade_max", "classrooms"}
    missing = need - set(schools.columns)
    if missing:
        problems.append(Problem("schools", f"missing columns {sorted(missing)}", "use the data/schools.geojson schema"))
    if candidates is not None:
        cmiss = {"site_id", "kind", "capacity_classes"} - set(candidates.columns)
        if cmiss:
            problems.append(Problem("candidates", f"missing columns {sorted(cmiss)}",
                                    "use the data/candidate_sites.geojson schema"))
    if problems:
        raise LayoutError("consolidation sites are invalid", problems)
    sch = schools
    if "public" in sch.columns:
        sch = sch[sch["public"].astype(bool)]
    gmin = sch["grade_min"].to_numpy()
    gmax = sch["grade_max"].to_numpy()
    prim = (gmin <= 6) & (gmax >= 1)
    jun = (gmin <= 9) & (gmax >= 7)
    sch = sch[prim | jun]
    gmin, gmax = sch["grade_min"].to_numpy(), sch["grade_max"].to_numpy()
    hosts = np.column_stack([(gmin <= 6) & (gmax >= 1), (gmin <= 9) & (gmax >= 7)])
    other_classes = np.zeros(len(sch))
    for col in sch.columns:
        if col.startswith("classes_g"):
            g = int(col[len("classes_g"):].replace("m", "-"))
            if g < 1 or g > 9:
                other_classes += sch[col].fillna(0).to_numpy(dtype=float)
    classrooms = np.maximum(sch["classrooms"].to_numpy(dtype=float) - other_classes, 0.0)
    urban = sch["urban"].to_numpy(dtype=bool) if "urban" in sch.columns else np.zeros(len(sch), bool)
    teaches_senior = gmax >= 10
    must = sch["must_keep"].to_numpy(dtype=bool) if "must_keep" in sch.columns else np.zeros(len(sch), bool)
    level = sch["level"].astype(str).to_numpy()
    counts = np.ones(len(sch), bool) if teaching_points_count else level != "teaching_point"
    beds = sch["boarding_beds"].fillna(0).to_numpy(float) if "boarding_beds" in sch.columns else np.zeros(len(sch))
    town = sch["township_code"].astype(str).to_numpy() if "township_code" in sch.columns else np.full(len(sch), "")
    info = pd.DataFrame({"school_id": sch["school_id"].astype(str).to_numpy(), "township_code": town,
                         "urban": urban, "level": level, "existing": True})
    arrays = dict(hosts=hosts, existing=np.ones(len(sch), bool), classrooms=classrooms, boarding_beds=beds,
                  max_expand=np.where(urban, max_expand_urban, max_expand_rural).astype(float),
                  must_keep=must, cannot_close=teaches_senior, counts_toward_target=counts)
    if candidates is not None and len(candidates):
        cand = candidates[candidates["kind"].astype(str) == "school"]
        nc = len(cand)
        cinfo = pd.DataFrame({
            "school_id": cand["site_id"].astype(str).to_numpy(),
            "township_code": cand["township_code"].astype(str).to_numpy() if "township_code" in cand else "",
            "urban": cand["urban"].to_numpy(bool) if "urban" in cand else False,
            "level": "candidate", "existing": False})
        info = pd.concat([info, cinfo], ignore_index=True)
        arrays["hosts"] = np.vstack([hosts, np.tile(np.asarray(candidate_hosts, bool), (nc, 1))])
        arrays["existing"] = np.concatenate([arrays["existing"], np.zeros(nc, bool)])
        arrays["classrooms"] = np.concatenate([classrooms, cand["capacity_classes"].to_numpy(float)])
        for k, v in (("boarding_beds", 0.0), ("max_expand", 0.0), ("must_keep", False), ("cannot_close", False),
                     ("counts_toward_target", True)):
            arrays[k] = np.concatenate([arrays[k], np.full(nc, v, dtype=np.asarray(arrays[k]).dtype)])
    return ConsolidationSites(**arrays), info


def build_demand_array(demand: pd.DataFrame, unit_codes: Sequence) -> np.ndarray:
    """Long demand table (unit_code, level in {"primary", "junior"}, pupils) → (n_units, 2) array in
    ``unit_codes`` order (missing combinations are 0).  Unknown units or levels raise LayoutError."""
    problems = []
    miss = {"unit_code", "level", "pupils"} - set(demand.columns)
    if miss:
        raise LayoutError("demand is invalid", [Problem("demand", f"missing columns {sorted(miss)}",
                                                        "pass unit_code, level, pupils")])
    pos = pd.Index(pd.Series(unit_codes).astype(str))
    ui = pos.get_indexer(demand["unit_code"].astype(str))
    li = pd.Index(LEVELS).get_indexer(demand["level"].astype(str))
    bad_u = np.flatnonzero(ui < 0)
    if bad_u.size:
        problems.append(Problem("demand.unit_code", "unit not in the unit list", "fix the codes",
                                format_rows(demand["unit_code"].to_numpy()[bad_u])))
    bad_l = np.flatnonzero(li < 0)
    if bad_l.size:
        problems.append(Problem("demand.level", "level must be primary or junior", "fix the levels",
                                format_rows(bad_l)))
    if problems:
        raise LayoutError("demand is invalid", problems)
    out = np.zeros((len(pos), 2))
    np.add.at(out, (ui, li), demand["pupils"].to_numpy(dtype=float))
    return out
