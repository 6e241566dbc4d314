"""p-median solver core: published OR-Library optima, brute force on tiny instances, infeasibility."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import linprog
from scipy.sparse.csgraph import shortest_path

from layout.errors import InfeasibleError, LayoutError
from layout.lagrangian import bound_by_subgradient, build_sorted_candidates, fix_sites_by_reduced_cost
from layout.pmedian import capacitated_p_median, p_median

# ----------------------------------------------------------------------------- OR-Library readers


def read_pmed(path):
    """Beasley pmed graph → (all-pairs shortest-path distances (n, n), p); duplicate edges: last wins."""
    tokens = path.read_text().split()
    n, m, p = (int(t) for t in tokens[:3])
    edges = np.array(tokens[3:3 + 3 * m], dtype=np.int64).reshape(m, 3)
    last = {}
    for i, j, c in edges:
        last[(min(i, j) - 1, max(i, j) - 1)] = c
    ij = np.array(list(last.keys()))
    graph = sp.coo_matrix((np.array(list(last.values()), dtype=float), (ij[:, 0], ij[:, 1])), shape=(n, n))
    return shortest_path(graph.tocsr(), directed=False), p


def read_pmedcap(path):
    """Osman–Christofides instance → (floor-Euclidean distances (n, n), p, capacity, demand (n,))."""
    lines = path.read_text().split("\n")
    n, p, capacity = (int(t) for t in lines[1].split())
    rows = np.array([[int(t) for t in line.split()] for line in lines[2:2 + n]])
    xy, demand = rows[:, 1:3].astype(float), rows[:, 3].astype(float)
    dist = np.floor(np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1)))
    return dist, p, capacity, demand


@pytest.mark.parametrize("name, optimum", [("pmed1", 5819), ("pmed2", 4093), ("pmed5", 1355)])
def test_orlib_pmed_reaches_published_optimum(fixtures_dir, name, optimum):
    dist, p = read_pmed(fixtures_dir / "orlib_location" / "pmed" / f"{name}.txt")
    res = p_median(dist, p, time_limit_s=30)
    assert res.status == "optimal"
    assert res.objective == optimum
    assert res.lower_bound == optimum and res.gap == 0.0
    assert res.sites.size == p
    # the reported objective is what the assignment costs, and every point goes to its nearest chosen site
    assert dist[np.arange(dist.shape[0]), res.assignment].sum() == optimum
    assert np.all(dist[np.arange(dist.shape[0]), res.assignment] == dist[:, res.sites].min(axis=1))


def test_orlib_pmed2_radius_milp_alone_proves_the_optimum(fixtures_dir):
    """Without the Lagrangian pass, and with only the nearest site modelled at first, the truncated
    radius model must widen itself until the optimum is proved."""
    dist, p = read_pmed(fixtures_dir / "orlib_location" / "pmed" / "pmed2.txt")
    res = p_median(dist, p, method="radius", candidate_k=1, time_limit_s=30)
    assert res.objective == 4093 and res.lower_bound == 4093
    assert res.method == "radius_milp"


@pytest.mark.parametrize("k, optimum", [(1, 713), (2, 740)])
def test_orlib_pmedcap1_reaches_published_optimum(fixtures_dir, k, optimum):
    dist, p, capacity, demand = read_pmedcap(fixtures_dir / "orlib_location" / "pmedcap1" / f"pmedcap1_0{k}.txt")
    res = capacitated_p_median(dist, p, demand, capacity, single_source=True, time_limit_s=30)
    assert res.status == "optimal"
    assert res.objective == optimum and res.lower_bound == optimum
    assert res.sites.size == p
    assert set(np.unique(res.assignment)) <= set(res.sites)
    load = np.bincount(res.assignment, weights=demand, minlength=dist.shape[1])
    assert np.all(load <= capacity + 1e-9)
    assert np.all(res.assignment[res.sites] == res.sites)  # a median serves itself
    # splitting demand can only help
    split = capacitated_p_median(dist, p, demand, capacity, single_source=False, time_limit_s=30)
    assert split.objective <= optimum + 1e-6
    np.testing.assert_allclose(np.asarray(split.allocation.sum(axis=1)).ravel(), 1.0)


# ----------------------------------------------------------------------------- brute force


def brute_force(dist, w, p, fixed_open=None, fixed_closed=None):
    n, m = dist.shape
    best = np.inf
    for subset in itertools.combinations(range(m), p):
        s = np.array(subset)
        if fixed_open is not None and not np.all(np.isin(np.nonzero(fixed_open)[0], s)):
            continue
        if fixed_closed is not None and fixed_closed[s].any():
            continue
        value = (w * dist[:, s].min(axis=1)).sum()
        best = min(best, value)
    return best


@pytest.mark.parametrize("seed", range(6))
def test_p_median_matches_brute_force_on_random_8x6(seed):
    rng = np.random.default_rng(seed)
    dist = rng.integers(0, 100, size=(8, 6)).astype(float)
    w = rng.integers(1, 5, size=8).astype(float)
    for p in range(1, 6):
        optimum = brute_force(dist, w, p)
        for method in ("auto", "radius", "textbook"):
            res = p_median(dist, p, weights=w, method=method)
            assert res.objective == pytest.approx(optimum), (p, method)
            assert res.lower_bound <= optimum + 1e-9
            assert res.status == "optimal"
            assert res.objective == pytest.approx((w * dist[np.arange(8), res.assignment]).sum())
        heur = p_median(dist, p, weights=w, method="heuristic")
        assert heur.objective >= optimum - 1e-9 and heur.lower_bound <= optimum + 1e-9


@pytest.mark.parametrize("seed", range(4))
def test_p_median_with_masks_and_real_costs_matches_brute_force(seed):
    rng = np.random.default_rng(100 + seed)
    dist = rng.uniform(0, 50, size=(8, 6))
    w = rng.uniform(0.5, 3, size=8)
    fixed_open = np.zeros(6, bool)
    fixed_open[rng.integers(6)] = True
    fixed_closed = np.zeros(6, bool)
    fixed_closed[rng.choice(np.nonzero(~fixed_open)[0])] = True
    for p in (2, 3):
        optimum = brute_force(dist, w, p, fixed_open, fixed_closed)
        res = p_median(dist, p, weights=w, fixed_open=fixed_open, fixed_closed=fixed_closed, mip_rel_gap=1e-9)
        assert res.objective == pytest.approx(optimum, rel=1e-9)
        assert fixed_open[res.sites].sum() == 1 and not fixed_closed[res.sites].any()
        assert res.lower_bound <= optimum * (1 + 1e-9)


def test_sparse_costs_forbid_missing_pairs_and_zero_weights_still_get_a_site():
    rng = np.random.default_rng(7)
    dense = rng.integers(1, 60, size=(8, 6)).astype(float)
    allowed = rng.random((8, 6)) < 0.6
    allowed[np.arange(8), rng.integers(0, 6, 8)] = True
    dense_inf = np.where(allowed, dense, np.inf)
    w = rng.integers(0, 4, size=8).astype(float)
    w[0] = 0.0
    cost = sp.csr_matrix((dense[allowed], np.nonzero(allowed)), shape=dense.shape)
    solved = 0
    for p in (3, 4):
        optimum = brute_force(dense_inf, w, p)
        if not np.isfinite(optimum):
            continue
        solved += 1
        for c in (cost, dense_inf):
            res = p_median(c, p, weights=w)
            assert res.objective == pytest.approx(optimum)
            assert np.all(allowed[np.arange(8), res.assignment])  # never a forbidden pair
            assert np.all(np.isin(res.assignment, res.sites))
    assert solved == 2


def test_lagrangian_bound_and_fixings_never_cut_off_the_optimum():
    rng = np.random.default_rng(3)
    dist = rng.uniform(0, 100, size=(10, 7))
    w = rng.uniform(1, 2, size=10)
    p = 3
    values = {s: (w * dist[:, list(s)].min(axis=1)).sum() for s in itertools.combinations(range(7), p)}
    optimum = min(values.values())
    sc = build_sorted_candidates(dist, w)
    none = np.zeros(7, bool)
    incumbent = np.zeros(7, bool)
    incumbent[[0, 1, 2]] = True
    ub = values[(0, 1, 2)]
    lag = bound_by_subgradient(sc, p, none, ub, incumbent, max_iterations=500)
    assert lag.bound <= optimum + 1e-9
    assert lag.best_objective <= ub
    better_than = [s for s, v in values.items() if v < ub - 1e-9]
    closed_u, opened_u = fix_sites_by_reduced_cost(lag, p, none, ub, 1e-9)
    for s in better_than:  # every solution better than the incumbent survives the fixing
        assert not closed_u[list(s)].any()
        assert np.all(np.isin(np.nonzero(opened_u)[0], s))


def test_textbook_and_radius_agree_on_a_planar_instance():
    rng = np.random.default_rng(11)
    pts, sites = rng.uniform(0, 1000, (120, 2)), rng.uniform(0, 1000, (25, 2))
    dist = np.sqrt(((pts[:, None] - sites[None]) ** 2).sum(-1))
    w = rng.integers(1, 50, 120).astype(float)
    a = p_median(dist, 8, weights=w, mip_rel_gap=1e-9)
    b = p_median(dist, 8, weights=w, method="textbook", mip_rel_gap=1e-9)
    assert a.objective == pytest.approx(b.objective, rel=1e-8)
    assert a.status == "optimal"


# ----------------------------------------------------------------------------- capacitated brute force


def brute_force_capacitated(dist, w, q, cap, p):
    """Single-source optimum by enumerating site sets and assignments; split optimum by LP per set."""
    n, m = dist.shape
    best_single, best_split = np.inf, np.inf
    for subset in itertools.combinations(range(m), p):
        s = np.array(subset)
        choices = np.array(list(itertools.product(range(p), repeat=n)))  # (p^n, n)
        load = np.zeros((choices.shape[0], p))
        for k in range(p):
            load[:, k] = ((choices == k) * q).sum(axis=1)
        ok = np.all(load <= cap[s] + 1e-9, axis=1)
        if ok.any():
            costs = (w * dist[np.arange(n), s[choices[ok]]]).sum(axis=1)
            best_single = min(best_single, costs.min())
        # split: transportation LP
        c = (w[:, None] * dist[:, s]).ravel()
        a_eq = np.kron(np.eye(n), np.ones(p))
        a_ub = np.zeros((p, n * p))
        for k in range(p):
            a_ub[k, k::p] = q
        lp = linprog(c, A_ub=a_ub, b_ub=cap[s], A_eq=a_eq, b_eq=np.ones(n), bounds=(0, 1))
        if lp.status == 0:
            best_split = min(best_split, lp.fun)
    return best_single, best_split


@pytest.mark.parametrize("seed", range(3))
def test_capacitated_matches_brute_force_on_random_7x5(seed):
    rng = np.random.default_rng(200 + seed)
    dist = rng.integers(0, 40, size=(7, 5)).astype(float)
    w = rng.integers(1, 4, size=7).astype(float)
    q = rng.integers(1, 6, size=7).astype(float)
    cap = rng.integers(6, 14, size=5).astype(float)
    for p in (2, 3):
        single, split = brute_force_capacitated(dist, w, q, cap, p)
        if not np.isfinite(single):
            with pytest.raises(InfeasibleError):
                capacitated_p_median(dist, p, q, cap, weights=w)
            continue
        res = capacitated_p_median(dist, p, q, cap, weights=w)
        assert res.objective == pytest.approx(single)
        assert np.all(np.bincount(res.assignment, weights=q, minlength=5) <= cap + 1e-9)
        res_split = capacitated_p_median(dist, p, q, cap, weights=w, single_source=False, mip_rel_gap=1e-9)
        assert res_split.objective == pytest.approx(split, rel=1e-7)
        load = np.asarray(res_split.allocation.T @ q).ravel()
        assert np.all(load <= cap + 1e-6)


# ----------------------------------------------------------------------------- errors


def test_capacitated_infeasibility_says_why():
    dist = np.arange(12, dtype=float).reshape(4, 3)
    demand = np.array([30.0, 30.0, 30.0, 30.0])
    with pytest.raises(InfeasibleError) as e:
        capacitated_p_median(dist, 2, demand, np.array([50.0, 60.0, 40.0]))
    msg = str(e.value)
    assert "total demand 120" in msg and "110" in msg and "10 short" in msg  # 60 + 50 are the 2 largest
    with pytest.raises(InfeasibleError, match="largest capacity among their allowed sites"):
        capacitated_p_median(dist, 3, np.array([10.0, 10.0, 10.0, 70.0]), 60.0)
    with pytest.raises(InfeasibleError, match="p = 4 exceeds the 3 sites"):
        capacitated_p_median(dist, 4, demand, 100.0)
    with pytest.raises(InfeasibleError, match="fixed open"):
        capacitated_p_median(dist, 1, demand, 200.0, fixed_open=np.array([True, True, False]))
    # fixed-open sites count in the capacity check
    with pytest.raises(InfeasibleError, match="fixed-open"):
        capacitated_p_median(dist, 2, demand, np.array([10.0, 100.0, 90.0]), fixed_open=np.array([True, False, False]))


def test_point_without_allowed_site_is_infeasible_and_bad_input_is_named():
    dist = np.array([[1.0, 2.0], [np.inf, np.inf], [3.0, 1.0]])
    with pytest.raises(InfeasibleError, match="no allowed site") as e:
        p_median(dist, 1)
    assert "rows 1" in str(e.value)
    with pytest.raises(InfeasibleError, match="no allowed site"):  # its only site is fixed closed
        p_median(np.array([[1.0, np.inf], [5.0, 1.0]]), 1, fixed_closed=np.array([True, False]))
    with pytest.raises(LayoutError) as e:
        p_median(np.array([[1.0, -2.0], [1.0, 1.0]]), 0, weights=[1.0])
    text = str(e.value)
    assert "negative costs" in text and "p must be a positive integer" in text and "weights" in text
    # sparse costs: p sites that cannot cover every point together
    cover = sp.csr_matrix(np.eye(3))
    with pytest.raises(InfeasibleError, match="cannot serve every demand point") as e:
        p_median(cover, 2)
    assert "lower bound proved" in str(e.value) and e.value.diagnosis["proven"]
