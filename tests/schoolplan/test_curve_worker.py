"""The trade-off curve solved in a worker process (beside the layout solve) equals the same curve solved here."""
from __future__ import annotations

import numpy as np

from layout.consolidation import ConsolidationRules, ConsolidationSites, prepare_consolidation
from schoolplan.stages import _curve_table, _start_curve


def test_curve_in_a_worker_process_equals_the_curve_solved_here():
    rng = np.random.default_rng(2)
    n_u, n_s = 12, 7
    demand = np.round(rng.uniform(10, 120, size=(n_u, 2)))
    dist = rng.uniform(200, 6000, size=(n_u, n_s))
    sites = ConsolidationSites(hosts=np.tile([[True, False], [False, True], [True, True]], (3, 1))[:n_s],
                               existing=np.ones(n_s, bool), classrooms=rng.integers(6, 18, n_s).astype(float),
                               max_expand=np.full(n_s, 3.0))
    rules = ConsolidationRules(travel_limit_m=np.array([[1e6, 1e6], [1e6, 1e6]]))
    problem = prepare_consolidation(demand, dist, np.zeros(n_u, bool), sites, rules=rules)
    ex, job = _start_curve(problem, [4, 5, 6], 10.0, 1e-3)
    try:
        there = job.result(timeout=120)
    finally:
        ex.shutdown(wait=True)
    here = _curve_table(problem, [4, 5, 6], 10.0, 1e-3)
    cols = [c for c in here.columns if c != "seconds"]
    assert there[cols].equals(here[cols])
    assert there["schools_open"].tolist() == [4, 5, 6]
    assert (there["unserved_pupils"] == 0).all() and (there["total_cost_cny_per_year"] > 0).all()
