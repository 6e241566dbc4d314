"""Sorted candidate lists, vertex substitution and Lagrangian bounds for the p-median problem.

The numerical machinery behind :func:`layout.pmedian.p_median`, on arrays only:

* :class:`SortedCandidates` stores, for every demand point *i*, its allowed sites sorted by
  weighted cost ``w_i * d_ij`` (padded to a rectangle).  Every pass below touches only a
  prefix of each row ("the sites closer than X"), found by a vectorised row-wise binary search,
  so the work per pass is ``n × (a few sites)`` rather than ``n × m``.
* :func:`open_greedy` (greedy add) and :func:`improve_by_substitution` (vertex substitution,
  Teitz & Bart 1968, evaluated with Whitaker's (1983) fast interchange in the sparse
  gain/loss/extra form of Resende & Werneck (2007)) give the incumbent (upper bound).
* :func:`bound_by_subgradient` maximises the Lagrangian dual obtained by relaxing the
  assignment constraints ``Σ_j x_ij = 1`` with multipliers ``λ_i`` (Cornuéjols, Fisher &
  Nemhauser 1977; Beasley 1993).  For any ``λ``::

      L(λ) = Σ_i λ_i + Σ_{j ∈ Y(λ)} ρ_j,   ρ_j = Σ_i min(0, c_ij − λ_i),

  with ``Y(λ)`` the fixed-open sites plus the ``p − #fixed`` free sites of smallest ``ρ_j``,
  is a valid lower bound on the optimum.  :func:`fix_sites_by_reduced_cost` turns the best
  multipliers into proofs that sites are closed (or open) in every solution better than the
  incumbent.

Costs here are already weighted (``c_ij = w_i d_ij``); missing pairs are padded with the
site index ``m`` (a dummy that never opens) and cost ``big`` (larger than any feasible total).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

__all__ = [
    "SortedCandidates",
    "build_sorted_candidates",
    "count_below",
    "find_nearest_two",
    "open_greedy",
    "improve_by_substitution",
    "evaluate_open_sites",
    "LagrangianBound",
    "bound_by_subgradient",
    "fix_sites_by_reduced_cost",
]


@dataclass
class SortedCandidates:
    """Per demand point, the allowed sites in ascending cost.

    ``site`` (n, L) int64: site index, ``n_sites`` for padding;
    ``cost`` (n, L) float64: weighted cost ``w_i d_ij``, ascending along each row, ``big`` for padding;
    ``length`` (n,) int64: number of real (allowed) entries per row;
    ``big``: the padding cost, larger than the objective of any feasible solution;
    ``integral``: every weighted cost is an integer (so bounds may be rounded up).
    """

    site: np.ndarray
    cost: np.ndarray
    length: np.ndarray
    n_sites: int
    big: float
    integral: bool

    @property
    def n_points(self) -> int:
        return self.site.shape[0]


def build_sorted_candidates(distance, weights: np.ndarray) -> SortedCandidates:
    """Sort each demand point's allowed sites by distance.

    ``distance`` is a dense (n, m) array (``+inf`` = pair not allowed) or a scipy sparse
    (n, m) matrix (stored entries, explicit zeros included, are the allowed pairs).
    ``weights`` (n,) ≥ 0.  Sorting is by the unweighted distance so that a zero-weight point
    still knows its nearest site; stored costs are ``weights[i] * distance``.
    """
    w = np.asarray(weights, dtype=np.float64)
    if sp.issparse(distance):
        csr = sp.csr_matrix(distance, dtype=np.float64)
        csr.sum_duplicates()
        n, m = csr.shape
        length = np.diff(csr.indptr).astype(np.int64)
        rows = np.repeat(np.arange(n), length)
        order = np.lexsort((csr.data, rows))
        L = max(int(length.max(initial=0)), 1)
        pos = np.arange(csr.nnz) - csr.indptr[rows]
        site = np.full((n, L), m, dtype=np.int64)
        dist = np.full((n, L), np.inf)
        site[rows, pos] = csr.indices[order]
        dist[rows, pos] = csr.data[order]
    else:
        d = np.asarray(distance, dtype=np.float64)
        n, m = d.shape
        order = np.argsort(d, axis=1, kind="stable")
        dist = np.take_along_axis(d, order, axis=1)
        site = order.astype(np.int64)
        finite = np.isfinite(dist)
        length = finite.sum(axis=1).astype(np.int64)
        site[~finite] = m
    real = site < m
    cost = np.where(real, w[:, None] * np.where(real, dist, 0.0), 0.0)
    integral = bool(np.all(cost == np.round(cost)))
    row_max = np.where(real, cost, 0.0).max(axis=1, initial=0.0)
    big = 2.0 * float(row_max.sum()) + 1.0
    if integral:
        big = float(np.ceil(big))
    cost[~real] = big
    return SortedCandidates(site=site, cost=cost, length=length, n_sites=m, big=big, integral=integral)


def count_below(cost: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """Number of entries ``< threshold[i]`` in each ascending row of ``cost`` (n, L) → (n,) int64.

    A vectorised binary search: ``log2(L) + 1`` gathers of n values.
    """
    n, L = cost.shape
    lo = np.zeros(n, dtype=np.int64)
    hi = np.full(n, L, dtype=np.int64)
    rows = np.arange(n)
    while True:
        active = lo < hi
        if not active.any():
            return lo
        mid = (lo + hi) // 2
        below = cost[rows, np.minimum(mid, L - 1)] < threshold
        right = active & below
        lo = np.where(right, mid + 1, lo)
        hi = np.where(active & ~below, mid, hi)


def find_nearest_two(sc: SortedCandidates, is_open: np.ndarray):
    """Nearest and second-nearest open site of every demand point.

    ``is_open`` (m,) bool.  Returns ``(d1, phi1, d2)``: costs (n,) of the nearest and second
    nearest open sites (``big`` when missing) and the nearest site's index (n,) (−1 if none).
    """
    n, L = sc.site.shape
    open_ext = np.append(np.asarray(is_open, dtype=bool), False)
    pos1 = np.full(n, -1, dtype=np.int64)
    pos2 = np.full(n, -1, dtype=np.int64)
    rows = np.arange(n)
    width = min(L, 16)
    while rows.size:
        blk = open_ext[sc.site[rows, :width]]
        cs = np.cumsum(blk, axis=1)
        total = cs[:, -1]
        done = (total >= 2) | (width == L)
        r, c, t = rows[done], cs[done], total[done]
        p1 = np.argmax(c >= 1, axis=1)
        p2 = np.argmax(c >= 2, axis=1)
        pos1[r] = np.where(t >= 1, p1, -1)
        pos2[r] = np.where(t >= 2, p2, -1)
        rows = rows[~done]
        width = min(L, width * 4)
    idx = np.arange(n)
    d1 = np.where(pos1 >= 0, sc.cost[idx, np.maximum(pos1, 0)], sc.big)
    d2 = np.where(pos2 >= 0, sc.cost[idx, np.maximum(pos2, 0)], sc.big)
    phi1 = np.where(pos1 >= 0, sc.site[idx, np.maximum(pos1, 0)], -1)
    return d1, phi1, d2


def evaluate_open_sites(sc: SortedCandidates, is_open: np.ndarray) -> tuple[float, np.ndarray]:
    """Objective (sum of nearest open costs; ``big`` per uncovered point) and nearest site (n,)."""
    d1, phi1, _ = find_nearest_two(sc, is_open)
    return float(d1.sum()), phi1


def _window(sc: SortedCandidates, threshold: np.ndarray):
    """The leading columns holding every entry ``< threshold`` (at least one column)."""
    width = max(int(count_below(sc.cost, threshold).max(initial=0)), 1)
    return sc.site[:, :width], sc.cost[:, :width]


def open_greedy(sc: SortedCandidates, p: int, fixed_open: np.ndarray) -> np.ndarray:
    """Greedy add: start from the fixed-open sites, open the site of largest saving until p are open.

    Returns ``is_open`` (m,) bool.
    """
    m = sc.n_sites
    is_open = np.asarray(fixed_open, dtype=bool).copy()
    d1, _, _ = find_nearest_two(sc, is_open)
    open_ext = np.append(is_open, False)
    while is_open.sum() < p:
        s, c = _window(sc, d1)
        mask = (c < d1[:, None]) & ~open_ext[s]
        rows = np.nonzero(mask)[0]
        gain = np.bincount(s[mask], weights=d1[rows] - c[mask], minlength=m + 1)[:m].astype(np.float64)
        gain[is_open] = -np.inf
        j = int(np.argmax(gain))
        is_open[j] = True
        open_ext[j] = True
        hit = mask & (s == j)
        d1[np.nonzero(hit)[0]] = c[hit]
    return is_open


def improve_by_substitution(
    sc: SortedCandidates,
    is_open: np.ndarray,
    fixed_open: np.ndarray,
    *,
    deadline: float = np.inf,
    max_swaps: int = 100_000,
) -> tuple[np.ndarray, float, int]:
    """Best-improvement vertex substitution (swap one open site for one closed) to a local optimum.

    For the current solution let ``d1_i``/``d2_i`` be the nearest/second-nearest open costs and
    ``φ_i`` the nearest open site.  The profit of opening f and closing r is
    ``gain(f) − loss(r) + extra(f, r)`` with ``gain(f) = Σ_i max(0, d1_i − c_if)``,
    ``loss(r) = Σ_{φ_i = r} (d2_i − d1_i)`` and
    ``extra(f, r) = Σ_{φ_i = r, c_if < d2_i} (d2_i − max(c_if, d1_i))`` (Whitaker 1983;
    Resende & Werneck 2007).  ``extra`` is nonzero only for the few sites closer than the
    second-nearest open one, so it is accumulated sparsely.  Returns
    ``(is_open, objective, swaps)``.
    """
    m = sc.n_sites
    is_open = np.asarray(is_open, dtype=bool).copy()
    removable_base = ~np.asarray(fixed_open, dtype=bool)
    d1, phi1, d2 = find_nearest_two(sc, is_open)
    objective = float(d1.sum())
    tol = 1e-9 * max(abs(objective), 1.0)
    swaps = 0
    while swaps < max_swaps and time.perf_counter() < deadline:
        open_ext = np.append(is_open, False)
        closed = ~is_open
        removable = is_open & removable_base
        if not closed.any() or not removable.any():
            break
        s, c = _window(sc, d2)
        mask = (c < d2[:, None]) & ~open_ext[s] & (s < m)
        rows = np.nonzero(mask)[0]
        f = s[mask]
        cf = c[mask]
        gain = np.bincount(f, weights=np.maximum(0.0, d1[rows] - cf), minlength=m).astype(np.float64)
        has = phi1 >= 0
        loss = np.bincount(phi1[has], weights=(d2 - d1)[has], minlength=m).astype(np.float64)
        r = phi1[rows]
        ok = r >= 0
        best_profit, best_f, best_r = -np.inf, -1, -1
        if ok.any():
            key = f[ok] * m + r[ok]
            extra_val = d2[rows[ok]] - np.maximum(cf[ok], d1[rows[ok]])
            uniq, inv = np.unique(key, return_inverse=True)
            extra = np.bincount(inv, weights=extra_val)
            fu, ru = uniq // m, uniq % m
            sel = removable[ru]
            if sel.any():
                prof = gain[fu[sel]] - loss[ru[sel]] + extra[sel]
                k = int(np.argmax(prof))
                best_profit, best_f, best_r = float(prof[k]), int(fu[sel][k]), int(ru[sel][k])
        g = np.where(closed, gain, -np.inf)
        lo = np.where(removable, loss, np.inf)
        fs, rs = int(np.argmax(g)), int(np.argmin(lo))
        if g[fs] - lo[rs] > best_profit:
            best_profit, best_f, best_r = float(g[fs] - lo[rs]), fs, rs
        if best_profit <= tol:
            break
        trial = is_open.copy()
        trial[best_f] = True
        trial[best_r] = False
        nd1, nphi1, nd2 = find_nearest_two(sc, trial)
        new_objective = float(nd1.sum())
        if new_objective >= objective - tol:  # rounding: the predicted profit did not materialise
            break
        is_open, d1, phi1, d2, objective = trial, nd1, nphi1, nd2, new_objective
        swaps += 1
    return is_open, objective, swaps


@dataclass
class LagrangianBound:
    """Best Lagrangian dual value found and what is needed to use it.

    ``bound``: L(λ*) (float, a valid lower bound); ``multipliers`` λ* (n,); ``site_value`` ρ (m,)
    at λ*; ``chosen`` (m,) bool, the relaxation's open sites; ``iterations``; ``best_open`` (m,)
    bool and ``best_objective``: the best primal solution seen (the input incumbent or better).
    """

    bound: float
    multipliers: np.ndarray
    site_value: np.ndarray
    chosen: np.ndarray
    iterations: int
    best_open: np.ndarray
    best_objective: float


def _evaluate_relaxation(sc: SortedCandidates, lam: np.ndarray, p_free: int, fixed_open, free_idx):
    m = sc.n_sites
    s, c = _window(sc, lam)
    mask = (c < lam[:, None]) & (s < m)
    rows = np.nonzero(mask)[0]
    sm = s[mask]
    rho = np.bincount(sm, weights=c[mask] - lam[rows], minlength=m).astype(np.float64)
    chosen = np.asarray(fixed_open, dtype=bool).copy()
    if p_free > 0:
        if p_free < free_idx.size:
            part = np.argpartition(rho[free_idx], p_free - 1)[:p_free]
            chosen[free_idx[part]] = True
        else:
            chosen[free_idx] = True
    value = float(lam.sum() + rho[chosen].sum())
    cover = np.bincount(rows[chosen[sm]], minlength=sc.n_points)
    return value, rho, chosen, 1.0 - cover


def bound_by_subgradient(
    sc: SortedCandidates,
    p: int,
    fixed_open: np.ndarray,
    upper_bound: float,
    incumbent_open: np.ndarray,
    *,
    multipliers: np.ndarray | None = None,
    max_iterations: int = 2000,
    deadline: float = np.inf,
    target_gap: float = 1e-6,
    heuristic_every: int = 25,
) -> LagrangianBound:
    """Subgradient optimisation of the Lagrangian dual (Polyak steps, halving on stagnation).

    ``upper_bound`` is the incumbent objective (used in the step size and improved when the
    relaxation's site choice evaluates better every ``heuristic_every`` iterations).
    ``multipliers`` default to each point's cost at its incumbent site.  Stops on
    ``max_iterations``, the ``deadline`` (perf_counter seconds), a step factor below 1e-4 or when
    ``(upper − bound) ≤ target_gap · |upper|``.
    """
    fixed_open = np.asarray(fixed_open, dtype=bool)
    free_idx = np.nonzero(~fixed_open)[0]
    p_free = p - int(fixed_open.sum())
    best_open = np.asarray(incumbent_open, dtype=bool).copy()
    ub = float(upper_bound)
    if multipliers is None:
        lam, _, _ = find_nearest_two(sc, best_open)
        lam = lam.copy()
    else:
        lam = np.asarray(multipliers, dtype=np.float64).copy()
    best = -np.inf
    best_lam = lam.copy()
    alpha, stall, patience = 2.0, 0, 30
    it = 0
    for it in range(1, max_iterations + 1):
        value, rho, chosen, g = _evaluate_relaxation(sc, lam, p_free, fixed_open, free_idx)
        if not np.isfinite(best) or value > best + 1e-12 * max(abs(best), 1.0):
            best, best_lam, stall = value, lam.copy(), 0
        else:
            stall += 1
            if stall >= patience:
                alpha *= 0.5
                stall = 0
        if heuristic_every and it % heuristic_every == 0:
            obj, _ = evaluate_open_sites(sc, chosen)
            if obj < ub:
                ub, best_open = obj, chosen.copy()
        if ub - best <= target_gap * max(abs(ub), 1.0) or alpha < 1e-4 or time.perf_counter() > deadline:
            break
        norm = float(g @ g)
        if norm == 0.0:  # the relaxation's solution is feasible and complementary: L(λ) is optimal
            break
        lam = lam + alpha * (ub - value) / norm * g
    value, rho, chosen, _ = _evaluate_relaxation(sc, best_lam, p_free, fixed_open, free_idx)
    return LagrangianBound(
        bound=value, multipliers=best_lam, site_value=rho, chosen=chosen, iterations=it,
        best_open=best_open, best_objective=ub,
    )


def fix_sites_by_reduced_cost(
    lb: LagrangianBound, p: int, fixed_open: np.ndarray, upper_bound: float, improvement: float
) -> tuple[np.ndarray, np.ndarray]:
    """Sites provably closed / open in every solution of value ``≤ upper_bound − improvement``.

    With the relaxation's choice Y (p_free smallest ρ among free sites), forcing a site j ∉ Y
    open raises the Lagrangian bound to ``L + ρ_j − max_{Y} ρ``; forcing j ∈ Y closed raises it
    to ``L − ρ_j + min_{∉Y} ρ``.  When that exceeds ``upper_bound − improvement`` no better
    solution has j open (resp. closed).  ``improvement`` is 1 for integer costs, else a small
    tolerance.  Returns ``(closed, opened)`` (m,) bool over the free sites.
    """
    m = lb.site_value.size
    fixed_open = np.asarray(fixed_open, dtype=bool)
    free = ~fixed_open
    p_free = p - int(fixed_open.sum())
    closed = np.zeros(m, dtype=bool)
    opened = np.zeros(m, dtype=bool)
    rho = lb.site_value
    chosen = lb.chosen & free
    unchosen = free & ~lb.chosen
    limit = upper_bound - improvement
    if p_free <= 0 or not unchosen.any():
        return closed, opened
    worst_in = rho[chosen].max()
    best_out = rho[unchosen].min()
    closed = unchosen & (lb.bound + rho - worst_in > limit)
    opened = chosen & (lb.bound - rho + best_out > limit)
    return closed, opened
