"""p-median and capacitated p-median on cost matrices (the location-allocation solver core).

Arrays in, a :class:`PMedianResult` out.  ``cost`` is a dense (n_demand × n_sites) array
(``+inf`` = pair not allowed) or a scipy sparse matrix of the same shape whose stored entries
are the allowed pairs (missing = not allowed).  Units are whatever the caller uses (metres,
minutes); the objective is ``Σ_i weights[i] · cost[i, site(i)]`` (+ site costs where given).

Uncapacitated, :func:`p_median` (``method="auto"``):

1. greedy add + vertex substitution (fast interchange) → incumbent (upper bound);
2. subgradient on the Lagrangian dual (assignment constraints relaxed) → lower bound; stops
   here when it already closes the gap (``method == "lagrangian"``);
3. Lagrangian reduced costs fix sites open/closed that cannot be in any better solution;
4. the radius formulation (Elloumi 2010; Cornuéjols, Nemhauser & Wolsey 1980): per demand
   point i with distinct distances D_i^1 < D_i^2 < …, ``z_ik ≥ 1 − Σ_{j: d_ij ≤ D_i^k} y_j``
   and cost ``Σ_i w_i (D_i^1 + Σ_k (D_i^{k+1} − D_i^k) z_ik)``, with z continuous and y binary.
   Levels whose site set holds a fixed-open site or more than ``free − p`` free sites are
   always covered and dropped; identical site sets of different points share one row and one
   z column (their coefficients add up).  Only the levels up to a per-point radius (the
   incumbent's distance, or the ``candidate_k`` nearest sites) are modelled: beyond it the
   model charges the next level's cost, so it is a *relaxation* and its bound is valid.  If
   its solution serves some point beyond the radius the radius grows there and the model is
   re-solved, so the K-truncation never costs optimality (``method == "radius_milp"``).

Capacitated, :func:`capacitated_p_median`: the strong assignment MILP (``x_ij ≤ y_j`` links,
capacity rows, single or split sourcing) in HiGHS, after checks that name why an instance is
infeasible.  ``method="textbook"`` in :func:`p_median` solves the same assignment model without
capacities (for comparison only).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from forecast.errors import Problem, format_rows, raise_if_problems
from layout.errors import InfeasibleError, LayoutError
from layout.lagrangian import (
    SortedCandidates,
    bound_by_subgradient,
    build_sorted_candidates,
    evaluate_open_sites,
    find_nearest_two,
    fix_sites_by_reduced_cost,
    improve_by_substitution,
    open_greedy,
)
from layout.milp import solve_milp

__all__ = ["PMedianResult", "p_median", "capacitated_p_median"]


@dataclass
class PMedianResult:
    """Solution of a (capacitated) p-median problem.

    ``sites`` (p,) int64: chosen site indices (columns of ``cost``), ascending.
    ``assignment`` (n,) int64: site serving each demand point (for split assignment, the site
    holding the largest share).  ``allocation``: (n, m) scipy CSR of shares (split assignment
    only, rows sum to 1), else None.  ``objective``: weighted cost of this solution (plus
    ``site_cost`` of the open sites when given).  ``lower_bound``: proven lower bound on the
    optimum; ``gap`` = (objective − lower_bound) / max(|objective|, 1e-9).  ``status``:
    "optimal" (gap ≤ the requested ``mip_rel_gap``) or "feasible" (a limit stopped the proof;
    ``gap`` says how far).  ``seconds``: wall time.  ``method``: what proved the bound —
    "lagrangian", "radius_milp", "assignment_milp", "textbook_milp" or "heuristic" (the
    Lagrangian bound of a heuristic run).  ``details``: counts and timings per stage.
    """

    sites: np.ndarray
    assignment: np.ndarray
    objective: float
    lower_bound: float
    gap: float
    status: str
    seconds: float
    method: str
    allocation: sp.csr_matrix | None = None
    details: dict = field(default_factory=dict)

    @property
    def optimal(self) -> bool:
        return self.status == "optimal"


# --------------------------------------------------------------------------- validation


def _validate_common(cost, p, weights, fixed_open, fixed_closed, problems: list[Problem]):
    """Shape/value checks shared by both models; returns (cost, weights, fixed_open, fixed_closed)."""
    if sp.issparse(cost):
        cost = sp.csr_matrix(cost, dtype=np.float64)
        cost.sum_duplicates()
        values = cost.data
    else:
        cost = np.asarray(cost, dtype=np.float64)
        values = cost[np.isfinite(cost)] if cost.ndim == 2 else cost.ravel()
        if cost.ndim == 2 and np.isnan(cost).any():
            rows = np.unique(np.nonzero(np.isnan(cost))[0])
            problems.append(Problem("cost", "NaN costs", "use +inf (dense) or leave the entry out (sparse) "
                                    "for a pair that is not allowed", format_rows(rows)))
        if cost.ndim == 2 and np.isneginf(cost).any():
            rows = np.unique(np.nonzero(np.isneginf(cost))[0])
            problems.append(Problem("cost", "-inf costs", "costs must be finite and ≥ 0", format_rows(rows)))
    if cost.ndim != 2 or min(cost.shape) == 0:
        problems.append(Problem("cost", f"expected a non-empty 2-D (n_demand, n_sites) matrix, got shape "
                                f"{cost.shape}", "pass one row per demand point and one column per site"))
        return cost, None, None, None
    n, m = cost.shape
    if np.any(values < 0):
        if sp.issparse(cost):
            rows = np.unique(cost.tocoo().row[cost.tocoo().data < 0])
        else:
            rows = np.unique(np.nonzero(cost < 0)[0])
        problems.append(Problem("cost", "negative costs", "costs are distances/times ≥ 0", format_rows(rows)))
    if not isinstance(p, (int, np.integer)) or isinstance(p, bool) or p < 1:
        problems.append(Problem("p", f"p must be a positive integer, got {p!r}", "pass the number of sites to open"))

    def vec(name, arr, default, dtype):
        if arr is None:
            return default
        a = np.asarray(arr, dtype=dtype)
        if a.shape == () and name in ("capacity",):
            return a
        if a.shape != (default.shape[0],):
            problems.append(Problem(name, f"expected shape ({default.shape[0]},), got {a.shape}",
                                    f"give one value per {'demand point' if default.shape[0] == n else 'site'}"))
            return default
        return a

    w = vec("weights", weights, np.ones(n), np.float64)
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        bad = np.nonzero(~np.isfinite(w) | (w < 0))[0]
        problems.append(Problem("weights", "weights must be finite and ≥ 0", "fix these demand weights",
                                format_rows(bad)))
    fo = vec("fixed_open", fixed_open, np.zeros(m, dtype=bool), bool)
    fc = vec("fixed_closed", fixed_closed, np.zeros(m, dtype=bool), bool)
    both = np.nonzero(fo & fc)[0]
    if both.size:
        problems.append(Problem("fixed_open/fixed_closed", "sites are both fixed open and fixed closed",
                                "clear one of the two flags", format_rows(both)))
    return cost, w, fo, fc


def _allowed_mask_rows(cost, fixed_closed) -> np.ndarray:
    """Number of allowed, not fixed-closed sites per demand point (n,)."""
    if sp.issparse(cost):
        keep = sp.diags((~fixed_closed).astype(np.float64))
        pattern = cost.copy()
        pattern.data = np.ones_like(pattern.data)
        return np.asarray((pattern @ keep).sum(axis=1)).ravel()
    return (np.isfinite(cost) & ~fixed_closed[None, :]).sum(axis=1)


def _check_feasible_counts(cost, p, fixed_open, fixed_closed) -> None:
    """Infeasibility that needs no optimisation: too many sites asked, points with no site."""
    n, m = cost.shape
    problems = []
    allowed_sites = int((~fixed_closed).sum())
    if p > allowed_sites:
        problems.append(Problem("p", f"p = {p} exceeds the {allowed_sites} sites that may open "
                                f"({m} sites, {m - allowed_sites} fixed closed)",
                                "lower p or allow more sites"))
    if int(fixed_open.sum()) > p:
        problems.append(Problem("fixed_open", f"{int(fixed_open.sum())} sites are fixed open but only p = {p} "
                                "may open", "raise p or fix fewer sites open", format_rows(np.nonzero(fixed_open)[0])))
    lonely = np.nonzero(_allowed_mask_rows(cost, fixed_closed) == 0)[0]
    if lonely.size:
        problems.append(Problem("cost", f"{lonely.size} demand point(s) have no allowed site that may open",
                                "allow a site for them (finite cost / stored entry) or un-fix a closed site",
                                format_rows(lonely)))
    if problems:
        raise InfeasibleError(f"p-median is infeasible ({len(problems)} reason{'s' if len(problems) > 1 else ''})",
                              problems, diagnosis={"reasons": [pr.message for pr in problems]})


def _relative_gap(objective: float, bound: float) -> float:
    return max(0.0, (objective - bound) / max(abs(objective), 1e-9))


# --------------------------------------------------------------------------- uncapacitated


def _build_radius_model(sc: SortedCandidates, state: np.ndarray, p_free: int, reach: np.ndarray, seed: int):
    """The truncated radius formulation for the free sites.

    ``state`` (m,) int8: 0 closed, 1 free, 2 fixed open.  ``reach`` (n,): model every distance
    level ≤ reach_i exactly; beyond, charge the next level (a relaxation).  Returns a dict with
    the MILP arrays, the free-site index, the per-point charge cap (true cost is exact up to it)
    and the constant term; or None when some point has no active site left.
    """
    n, L = sc.site.shape
    m = sc.n_sites
    state_ext = np.append(state, np.int8(0))
    act = state_ext[sc.site] >= 1
    nact = act.sum(axis=1)
    if np.any(nact == 0):
        return None
    # compress active entries to the left of each row
    width = int(nact.max())
    newpos = np.cumsum(act, axis=1) - 1
    ri, ti = np.nonzero(act)
    s = np.full((n, width), m, dtype=np.int64)
    c = np.full((n, width), np.inf)
    s[ri, newpos[ri, ti]] = sc.site[ri, ti]
    c[ri, newpos[ri, ti]] = sc.cost[ri, ti]
    valid = np.arange(width)[None, :] < nact[:, None]
    st = state_ext[s]
    nxt = np.concatenate([c[:, 1:], np.full((n, 1), np.inf)], axis=1)
    end = valid & (nxt > c)
    fo_seen = np.cumsum(st == 2, axis=1) > 0
    nfree = np.cumsum(st == 1, axis=1)
    m_free = int((state == 1).sum())
    always = m_free - p_free + 1
    include = end & ~fo_seen & (nfree < always) & (c <= reach[:, None])
    hard = include & ~np.isfinite(nxt)
    # charge cap: true cost is exact up to it (next value after the last included level)
    last_inc = np.where(include.any(axis=1), width - 1 - np.argmax(include[:, ::-1], axis=1), -1)
    cap = np.where(last_inc >= 0, nxt[np.arange(n), np.maximum(last_inc, 0)], c[:, 0])
    # points whose every level is modelled or always covered have no cap
    beyond = end & ~fo_seen & (nfree < always) & ~include
    cap = np.where(beyond.any(axis=1), cap, np.inf)
    constant = float(c[:, 0].sum())
    # set hashes (two independent 64-bit sums of random keys: order-free, collision odds ~2^-128)
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, np.iinfo(np.int64).max, size=(2, m + 1), dtype=np.int64).astype(np.uint64)
    keys[:, m] = 0
    free_ext = st == 1
    h1 = np.cumsum(np.where(free_ext, keys[0][s], np.uint64(0)), axis=1, dtype=np.uint64)
    h2 = np.cumsum(np.where(free_ext, keys[1][s], np.uint64(0)), axis=1, dtype=np.uint64)
    ii, tt = np.nonzero(include)
    is_hard = hard[ii, tt]
    coef = np.where(is_hard, 0.0, nxt[ii, tt] - c[ii, tt])
    key_rows = np.stack([h1[ii, tt], h2[ii, tt], is_hard.astype(np.uint64)], axis=1)
    if key_rows.shape[0]:
        uniq, first, inv = np.unique(key_rows, axis=0, return_index=True, return_inverse=True)
        inv = inv.ravel()
    else:
        uniq, first, inv = np.zeros((0, 3), np.uint64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    G = uniq.shape[0]
    g_hard = uniq[:, 2].astype(bool)
    g_coef = np.bincount(inv, weights=coef, minlength=G)
    rep_i, rep_t = ii[first], tt[first]
    free_idx = np.nonzero(state == 1)[0]
    col_of_site = np.full(m + 1, -1, dtype=np.int64)
    col_of_site[free_idx] = np.arange(free_idx.size)
    # row entries: the free sites of each representative prefix
    lens = rep_t + 1
    total = int(lens.sum())
    row_of = np.repeat(np.arange(G), lens)
    offs = np.arange(total) - np.repeat(np.cumsum(lens) - lens, lens)
    site_e = s[np.repeat(rep_i, lens), offs]
    keep = state_ext[site_e] == 1
    rows_y, cols_y = row_of[keep], col_of_site[site_e[keep]]
    soft_g = np.nonzero(~g_hard)[0]
    z_col = np.full(G, -1, dtype=np.int64)
    z_col[soft_g] = free_idx.size + np.arange(soft_g.size)
    n_col = free_idx.size + soft_g.size
    rows = np.concatenate([rows_y, soft_g, np.full(free_idx.size, G)])
    cols = np.concatenate([cols_y, z_col[soft_g], np.arange(free_idx.size)])
    A = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(G + 1, n_col))
    obj = np.zeros(n_col)
    obj[z_col[soft_g]] = g_coef[soft_g]
    row_lower = np.concatenate([np.ones(G), [p_free]])
    row_upper = np.concatenate([np.full(G, np.inf), [p_free]])
    col_upper = np.concatenate([np.ones(free_idx.size), np.ones(soft_g.size)])
    integrality = np.concatenate([np.ones(free_idx.size), np.zeros(soft_g.size)])
    return dict(A=A, c=obj, row_lower=row_lower, row_upper=row_upper, col_upper=col_upper,
                integrality=integrality, free_idx=free_idx, cap=cap, constant=constant,
                n_rows=G, n_z=int(soft_g.size), rep_i=rep_i, rep_t=rep_t, s=s, g_hard=g_hard)


def _warm_start_radius(model, is_open: np.ndarray) -> np.ndarray:
    y = is_open[model["free_idx"]].astype(np.float64)
    A = model["A"]
    n_free = y.size
    cover = A[:, :n_free] @ y
    G = model["n_rows"]
    z = np.maximum(0.0, 1.0 - cover[:G])[~model["g_hard"]]
    return np.concatenate([y, z])


def _polish_from_relaxation(sc, lag, fixed, is_open, ub, deadline):
    """Vertex substitution from the relaxation's site choice and its best evaluated one; keep the best."""
    for start in (lag.chosen, lag.best_open):
        if np.array_equal(start, is_open):
            continue
        cand, cand_obj, _ = improve_by_substitution(sc, start, fixed, deadline=deadline)
        if cand_obj < ub:
            is_open, ub = cand, cand_obj
    return is_open, ub


def p_median(
    cost,
    p: int,
    *,
    weights=None,
    candidate_k: int | None = None,
    fixed_open=None,
    fixed_closed=None,
    method: str = "auto",
    time_limit_s: float = 60.0,
    mip_rel_gap: float = 1e-6,
    lagrangian_iterations: int | None = None,
    max_radius_nonzeros: int = 5_000_000,
    threads: int | None = None,
    seed: int = 0,
    verbose: bool = False,
) -> PMedianResult:
    """Choose ``p`` sites minimising ``Σ_i weights[i] · min_{j open} cost[i, j]``.

    ``cost``: (n, m) dense (``+inf`` = not allowed) or scipy sparse (missing = not allowed),
    e.g. metres or minutes.  ``weights`` (n,) ≥ 0, default 1 (e.g. pupils → pupil-metres).
    ``fixed_open`` / ``fixed_closed`` (m,) bool masks (must-keep / excluded sites).
    ``candidate_k``: model at least the ``candidate_k`` nearest sites of each point exactly in
    the radius MILP (default: up to the incumbent's distance); the truncation is proved safe or
    widened automatically.  ``method``: "auto" (heuristic → Lagrangian → radius MILP until
    the gap is ≤ ``mip_rel_gap``), "heuristic" (heuristic + Lagrangian bound, no MILP),
    "radius" (radius MILP without Lagrangian site fixing), "textbook" (the classic
    x_ij ≤ y_j MILP, for comparison).  ``time_limit_s`` bounds the whole call (approximately).
    ``lagrangian_iterations``: subgradient iterations (default 300 in "auto", 5000 in
    "heuristic").  ``max_radius_nonzeros``: above this model size the MILP is skipped and the
    answer is the incumbent with its Lagrangian bound.  ``seed`` drives the set hashing only.

    Typical speed (2-core machine): 3,000 × 160, p = 85 proven optimal in ≈0.3 s;
    10,000 × 500, p = 200 in ≈10 s (see bench/results/pmedian.md).

    Raises :class:`layout.errors.LayoutError` for malformed input and
    :class:`layout.errors.InfeasibleError` (with the reasons) when no solution exists.
    """
    t0 = time.perf_counter()
    deadline = t0 + float(time_limit_s)
    problems: list[Problem] = []
    if method not in ("auto", "heuristic", "radius", "textbook"):
        problems.append(Problem("method", f"unknown method {method!r}",
                                'use "auto", "heuristic", "radius" or "textbook"'))
    if candidate_k is not None and (not isinstance(candidate_k, (int, np.integer)) or candidate_k < 1):
        problems.append(Problem("candidate_k", f"must be a positive integer, got {candidate_k!r}",
                                "pass e.g. 10, or None for automatic"))
    cost, w, fo, fc = _validate_common(cost, p, weights, fixed_open, fixed_closed, problems)
    raise_if_problems(problems, "p_median: invalid input", LayoutError)
    _check_feasible_counts(cost, p, fo, fc)
    if method == "textbook":
        res = _solve_assignment_model(cost, p, w, None, None, fo, fc, None, single_source=False,
                                      exact_p=True, time_limit_s=time_limit_s, mip_rel_gap=mip_rel_gap,
                                      threads=threads, verbose=verbose, t0=t0)
        res.method = "textbook_milp"
        return res

    # reduce to the sites that may open
    keep_sites = np.nonzero(~fc)[0]
    sub = cost[:, keep_sites] if not sp.issparse(cost) else cost[:, keep_sites].tocsr()
    fixed = fo[keep_sites]
    details: dict = {}
    sc = build_sorted_candidates(sub, w)
    details["sort_s"] = time.perf_counter() - t0
    improvement = 1.0 if sc.integral else 1e-9
    # 1. incumbent
    is_open = open_greedy(sc, p, fixed)
    is_open, ub, swaps = improve_by_substitution(sc, is_open, fixed, deadline=deadline)
    details.update(heuristic_s=time.perf_counter() - t0, swaps=swaps, heuristic_objective=ub)
    lower, proved_by = -np.inf, "heuristic"

    def round_bound(b: float) -> float:
        return float(np.ceil(b - 1e-6 - 1e-9 * abs(b))) if sc.integral else b

    def closed_gap(lb: float) -> bool:
        return ub - lb <= mip_rel_gap * max(abs(ub), 1e-9) or (sc.integral and ub - lb < improvement)

    # 2. Lagrangian bound (and a better incumbent if the relaxation suggests one)
    lag = None
    if method in ("auto", "heuristic") and not closed_gap(lower):
        # in "auto" the subgradient is a short first pass (bound, site fixing, radii) before the MILP;
        # in "heuristic" it gets the whole budget
        iterations = lagrangian_iterations or (100 if method == "auto" else 5000)
        lag_deadline = t0 + 0.4 * float(time_limit_s) if method == "auto" else deadline
        lag = bound_by_subgradient(sc, p, fixed, ub, is_open, max_iterations=iterations,
                                   deadline=lag_deadline, target_gap=mip_rel_gap)
        is_open, ub = _polish_from_relaxation(sc, lag, fixed, is_open, ub, deadline)
        lower = max(lower, round_bound(lag.bound))
        proved_by = "lagrangian"
        details.update(lagrangian_s=time.perf_counter() - t0, lagrangian_iterations=lag.iterations,
                       lagrangian_bound=lag.bound)
    status_detail = ""
    # 3-4. radius MILP on the reduced site set
    if method in ("auto", "radius") and not closed_gap(lower):
        state = np.where(fixed, 2, 1).astype(np.int8)
        ub_at_fixing = ub
        if lag is not None:
            closed, opened = fix_sites_by_reduced_cost(lag, p, fixed, ub, improvement)
            state[closed] = 0
            state[opened] = 2
            details.update(fixed_closed_by_lagrangian=int(closed.sum()), fixed_open_by_lagrangian=int(opened.sum()))
        p_free = p - int((state == 2).sum())
        # model exactly every level up to the incumbent's second-nearest open site, or up to the
        # Lagrangian multiplier (the price at which a point stops paying for a closer site)
        d1, _, d2 = find_nearest_two(sc, is_open)
        reach = np.where(d2 < sc.big, d2, d1)
        if lag is not None:
            reach = np.maximum(reach, lag.multipliers)
        if candidate_k is not None:
            k = min(int(candidate_k), sc.site.shape[1]) - 1
            reach = np.maximum(reach, sc.cost[:, k])
        rounds = []
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0.05:
                status_detail = "time limit before the MILP finished"
                break
            model = _build_radius_model(sc, state, p_free, reach, seed)
            if model is not None and model["A"].nnz > max_radius_nonzeros:
                status_detail = (f"radius model too large ({model['A'].nnz} nonzeros > {max_radius_nonzeros}); "
                                 "bound from the Lagrangian relaxation only")
                break
            if model is None or p_free < 0:  # the fixings leave no solution: nothing beats the incumbent
                lower = max(lower, round_bound(ub_at_fixing))
                proved_by = "lagrangian"
                break
            inc_ok = np.all(is_open[state == 0] == False) and np.all(is_open[state == 2])  # noqa: E712
            warm = _warm_start_radius(model, is_open) if inc_ok else None
            r = solve_milp(model["c"], model["A"], model["row_lower"], model["row_upper"],
                           np.zeros(model["c"].size), model["col_upper"], model["integrality"],
                           offset=model["constant"], time_limit_s=remaining, mip_rel_gap=mip_rel_gap * 0.5,
                           warm_start=warm, threads=threads, verbose=verbose)
            rounds.append(dict(rows=model["n_rows"], z=model["n_z"], y=int(model["free_idx"].size),
                               status=r.status, seconds=r.seconds, bound=r.bound, objective=r.objective))
            if r.status == "Infeasible":
                lower = max(lower, round_bound(ub_at_fixing))
                proved_by = "lagrangian" if lag is not None else "radius_milp"
                break
            # bound of the relaxation; the Lagrangian-fixed part of the space is worse than ub_at_fixing
            if np.isfinite(r.bound):
                b = min(r.bound, ub_at_fixing) if lag is not None else r.bound
                if round_bound(b) > lower:
                    lower = round_bound(b)
                    proved_by = "radius_milp"
            if r.x is None:
                status_detail = r.status
                break
            y = np.zeros(sc.n_sites, dtype=bool)
            y[model["free_idx"]] = r.x[: model["free_idx"].size] > 0.5
            y |= state == 2
            true_obj, _ = evaluate_open_sites(sc, y)
            if true_obj < ub:
                is_open, ub = y, true_obj
            d1y, _, _ = find_nearest_two(sc, y)
            violated = d1y > model["cap"] + 1e-9 * np.maximum(1.0, np.abs(model["cap"]))
            if not violated.any() or r.status != "Optimal":
                if r.status != "Optimal":
                    status_detail = r.status
                break
            reach = np.where(violated, np.maximum(reach, d1y), reach)
        details["radius_rounds"] = rounds
    # large instances (or a MILP stopped by the clock): spend the remaining time on the dual
    if lag is not None and not closed_gap(lower) and deadline - time.perf_counter() > 0.5:
        more = bound_by_subgradient(sc, p, fixed, ub, is_open, multipliers=lag.multipliers,
                                    max_iterations=100_000, deadline=deadline, target_gap=mip_rel_gap)
        is_open, ub = _polish_from_relaxation(sc, more, fixed, is_open, ub, deadline + 5.0)
        if round_bound(more.bound) > lower:
            lower, proved_by = round_bound(more.bound), "lagrangian"
        details["lagrangian_iterations"] += more.iterations
        details["lagrangian_bound"] = max(details["lagrangian_bound"], more.bound)
    lower = min(lower, ub)
    sites_local = np.nonzero(is_open)[0]
    sites = keep_sites[sites_local]
    _, phi1 = evaluate_open_sites(sc, is_open)
    if np.any(phi1 < 0) or ub >= sc.big:
        # every feasible solution costs < big / 2 (big = 2 Σ_i max_j c_ij + 1), so a bound above that proves it
        proven_infeasible = bool(lower > (sc.big - 1.0) / 2.0)
        why = ("the lower bound proved that no choice of {p} sites reaches every demand point through the allowed pairs"
               if proven_infeasible else
               "no choice of {p} sites reaching every demand point was found within the time limit "
               "(not proved impossible)").format(p=p)
        raise InfeasibleError(
            f"p-median is infeasible: {p} sites cannot serve every demand point under the allowed pairs",
            [Problem("cost", why + "; the best choice found leaves these points without a site",
                     "allow more pairs (finite / stored costs), raise p or time_limit_s",
                     format_rows(np.nonzero(phi1 < 0)[0]))],
            diagnosis={"uncovered_points": np.nonzero(phi1 < 0)[0], "proven": proven_infeasible},
        )
    assignment = keep_sites[phi1]
    gap = _relative_gap(ub, lower)
    optimal = closed_gap(lower)
    if optimal:
        gap = 0.0 if sc.integral and ub - lower < improvement else gap
    details["status_detail"] = status_detail
    return PMedianResult(
        sites=np.sort(sites), assignment=assignment, objective=float(ub), lower_bound=float(lower), gap=gap,
        status="optimal" if optimal else "feasible", seconds=time.perf_counter() - t0,
        method=proved_by, details=details,
    )


# --------------------------------------------------------------------------- assignment MILP (capacitated)


def _allowed_pairs(cost, fixed_closed):
    """(i, j, c) of allowed pairs to sites that may open."""
    if sp.issparse(cost):
        coo = cost.tocoo()
        i, j, c = coo.row.astype(np.int64), coo.col.astype(np.int64), coo.data
    else:
        i, j = np.nonzero(np.isfinite(cost))
        c = cost[i, j]
    keep = ~fixed_closed[j]
    return i[keep], j[keep], c[keep]


def _solve_assignment_model(cost, p, w, demand, capacity, fixed_open, fixed_closed, site_cost, *,
                            single_source, exact_p, time_limit_s, mip_rel_gap, threads, verbose, t0):
    """The assignment MILP: y_j binary, x_ij (binary if single source), Σ_j x_ij = 1,
    x_ij ≤ y_j, Σ_i q_i x_ij ≤ Q_j y_j (when capacities are given), Σ_j y_j = p (or ≤ p)."""
    n, m = cost.shape
    pi, pj, pc = _allowed_pairs(cost, fixed_closed)
    K = pi.size
    wc = w[pi] * pc
    f = np.zeros(m) if site_cost is None else np.asarray(site_cost, dtype=np.float64)
    obj = np.concatenate([f, wc])
    # columns: y (m) then x (K)
    xcol = m + np.arange(K)
    blocks_r, blocks_c, blocks_v = [], [], []
    r0 = 0
    blocks_r.append(pi)  # assignment rows 0..n-1
    blocks_c.append(xcol)
    blocks_v.append(np.ones(K))
    r0 = n
    if capacity is not None:
        blocks_r += [r0 + pj, r0 + np.arange(m)]
        blocks_c += [xcol, np.arange(m)]
        blocks_v += [demand[pi], -capacity]
        r0 += m
    blocks_r += [r0 + np.arange(K), r0 + np.arange(K)]
    blocks_c += [xcol, pj]
    blocks_v += [np.ones(K), -np.ones(K)]
    r0 += K
    blocks_r.append(np.full(m, r0))
    blocks_c.append(np.arange(m))
    blocks_v.append(np.ones(m))
    n_rows = r0 + 1
    A = sp.csr_matrix((np.concatenate(blocks_v), (np.concatenate(blocks_r), np.concatenate(blocks_c))),
                      shape=(n_rows, m + K))
    row_lower = np.concatenate([np.ones(n), np.full(m if capacity is not None else 0, -np.inf),
                                np.full(K, -np.inf), [p if exact_p else 0]])
    row_upper = np.concatenate([np.ones(n), np.zeros(m if capacity is not None else 0), np.zeros(K), [p]])
    col_lower = np.concatenate([fixed_open.astype(np.float64), np.zeros(K)])
    col_upper = np.concatenate([(~fixed_closed).astype(np.float64), np.ones(K)])
    integrality = np.concatenate([np.ones(m), np.full(K, 1.0 if single_source else 0.0)])
    r = solve_milp(obj, A, row_lower, row_upper, col_lower, col_upper, integrality,
                   time_limit_s=max(0.01, time_limit_s - (time.perf_counter() - t0)), mip_rel_gap=mip_rel_gap,
                   threads=threads, verbose=verbose)
    details = dict(rows=n_rows, columns=m + K, pairs=K, highs_status=r.status)
    if r.status == "Infeasible":
        raise InfeasibleError(
            "capacitated p-median is infeasible: HiGHS proved that no choice of sites can serve every demand "
            "point within the capacities and allowed pairs",
            [Problem("demand/capacity", "no assignment fits (the quick checks on totals passed, so the "
                     "conflict is local: points whose few allowed sites cannot hold them together)",
                     "raise capacities, allow more pairs, split assignment or raise p")],
            diagnosis=details,
        )
    if r.x is None:
        raise InfeasibleError(
            f"no solution found within {time_limit_s:.1f} s (HiGHS status: {r.status})",
            [Problem("time_limit_s", "the solver found no feasible solution in time",
                     "raise time_limit_s or make the instance smaller")],
            diagnosis=details,
        )
    y = r.x[:m] > 0.5
    x = r.x[m:]
    xk = np.where(x > 1e-9, x, 0.0)
    alloc = sp.csr_matrix((xk, (pi, pj)), shape=(n, m))
    alloc.eliminate_zeros()
    if single_source:
        alloc.data = np.round(alloc.data)
        alloc.eliminate_zeros()
    assignment = np.asarray(alloc.argmax(axis=1)).ravel().astype(np.int64)
    objective = float(np.asarray(alloc.multiply(sp.csr_matrix((wc, (pi, pj)), shape=(n, m)))
                                 .sum()) + f[y].sum())
    integral = bool(np.all(wc == np.round(wc)) and np.all(f == np.round(f)))
    bound = r.bound
    if integral and np.isfinite(bound):
        bound = float(np.ceil(bound - 1e-6))
    bound = min(bound, objective)
    gap = _relative_gap(objective, bound)
    optimal = r.optimal or gap <= mip_rel_gap or (integral and objective - bound < 1.0)
    return PMedianResult(
        sites=np.nonzero(y)[0].astype(np.int64), assignment=assignment, objective=objective,
        lower_bound=float(bound), gap=0.0 if optimal and integral else gap,
        status="optimal" if optimal else "feasible", seconds=time.perf_counter() - t0,
        method="assignment_milp", allocation=None if single_source else alloc, details=details,
    )


def capacitated_p_median(
    cost,
    p: int,
    demand,
    capacity,
    *,
    weights=None,
    single_source: bool = True,
    fixed_open=None,
    fixed_closed=None,
    site_cost=None,
    exact_p: bool = True,
    time_limit_s: float = 60.0,
    mip_rel_gap: float = 1e-6,
    threads: int | None = None,
    verbose: bool = False,
) -> PMedianResult:
    """Open ``p`` sites and assign demand within capacities at least weighted cost.

    ``cost`` (n, m) as in :func:`p_median`; ``demand`` (n,) ≥ 0 (e.g. pupils); ``capacity``
    scalar or (m,) in the units of ``demand`` (e.g. seats = classes × class-size cap).
    Objective: ``Σ_ij weights[i] · cost[i, j] · x_ij + Σ_j site_cost[j] · y_j`` with ``weights``
    default 1 (pass ``weights=demand`` for pupil-metres).  ``single_source``: every point goes
    to exactly one site (else shares, returned in ``allocation``).  ``fixed_open`` /
    ``fixed_closed`` (m,) bool: must-keep / excluded sites.  ``exact_p``: open exactly p (else
    at most p).

    Raises :class:`layout.errors.InfeasibleError` with the reason when: p exceeds the sites that
    may open; more sites are fixed open than p; a point has no allowed site; a point's demand
    exceeds every allowed site's capacity (single sourcing); total demand exceeds the capacity
    of the fixed-open plus the largest remaining sites; or HiGHS proves the model infeasible.
    """
    t0 = time.perf_counter()
    problems: list[Problem] = []
    cost, w, fo, fc = _validate_common(cost, p, weights, fixed_open, fixed_closed, problems)
    if w is None:
        raise_if_problems(problems, "capacitated_p_median: invalid input", LayoutError)
    n, m = cost.shape
    q = np.asarray(demand, dtype=np.float64)
    if q.shape != (n,):
        problems.append(Problem("demand", f"expected shape ({n},), got {q.shape}", "give one demand per point"))
    elif not np.all(np.isfinite(q)) or np.any(q < 0):
        problems.append(Problem("demand", "demand must be finite and ≥ 0", "fix these rows",
                                format_rows(np.nonzero(~np.isfinite(q) | (q < 0))[0])))
    cap = np.asarray(capacity, dtype=np.float64)
    if cap.shape == ():
        cap = np.full(m, float(cap))
    if cap.shape != (m,):
        problems.append(Problem("capacity", f"expected a scalar or shape ({m},), got {cap.shape}",
                                "give one capacity per site"))
    elif np.any(np.isnan(cap)) or np.any(cap < 0):
        problems.append(Problem("capacity", "capacities must be ≥ 0", "fix these sites",
                                format_rows(np.nonzero(np.isnan(cap) | (cap < 0))[0])))
    if site_cost is not None:
        sc_arr = np.asarray(site_cost, dtype=np.float64)
        if sc_arr.shape != (m,) or not np.all(np.isfinite(sc_arr)):
            problems.append(Problem("site_cost", f"expected {m} finite values, got shape {sc_arr.shape}",
                                    "give one cost per site"))
    raise_if_problems(problems, "capacitated_p_median: invalid input", LayoutError)
    _check_feasible_counts(cost, p, fo, fc)
    reasons = []
    if single_source:
        pi, pj, _ = _allowed_pairs(cost, fc)
        best_cap = np.full(n, -np.inf)
        np.maximum.at(best_cap, pi, cap[pj])
        too_big = np.nonzero(q > best_cap + 1e-9)[0]
        if too_big.size:
            reasons.append(Problem("demand", f"{too_big.size} demand point(s) need more than the largest capacity "
                                   "among their allowed sites (single sourcing)",
                                   "split the point, raise capacities or use single_source=False",
                                   format_rows(too_big)))
    free_caps = np.sort(cap[~fc & ~fo])[::-1]
    n_more = p - int(fo.sum())
    max_cap = float(cap[fo].sum() + free_caps[:n_more].sum())
    total = float(q.sum())
    if total > max_cap + 1e-9 * max(total, 1.0):
        reasons.append(Problem("demand/capacity", f"total demand {total:g} exceeds {max_cap:g}, the capacity of "
                               f"the {int(fo.sum())} fixed-open sites plus the {n_more} largest other sites "
                               f"(p = {p}); {total - max_cap:g} short", "raise p or capacities"))
    if reasons:
        raise InfeasibleError(f"capacitated p-median is infeasible ({len(reasons)} reason"
                              f"{'s' if len(reasons) > 1 else ''})", reasons,
                              diagnosis={"total_demand": total, "max_capacity_with_p_sites": max_cap})
    return _solve_assignment_model(cost, p, w, q, cap, fo, fc, site_cost, single_source=single_source,
                                   exact_p=exact_p, time_limit_s=time_limit_s, mip_rel_gap=mip_rel_gap,
                                   threads=threads, verbose=verbose, t0=t0)
