"""One thin wrapper around HiGHS (`highspy`) for every MILP the layout package builds.

Models are passed whole as sparse arrays (CSR constraint matrix, bound vectors),
never as per-variable Python objects.  The result carries what a planner and a
test need to trust an answer: the solution, the objective, HiGHS's proven
(dual) bound, the relative gap, the solver status and the wall time.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import highspy
import numpy as np
import scipy.sparse as sp

__all__ = ["MilpResult", "solve_milp"]


@dataclass
class MilpResult:
    x: np.ndarray | None          # primal solution (None when HiGHS found none)
    objective: float               # objective of x (nan without a solution)
    bound: float                   # proven lower bound (minimisation)
    gap: float                     # relative gap (objective - bound) / max(|objective|, 1e-9)
    status: str                    # HiGHS model status as text, e.g. "Optimal", "Infeasible", "Time limit reached"
    seconds: float                 # wall time of the solve
    optimal: bool                  # proven optimal within mip_rel_gap

    @property
    def has_solution(self) -> bool:
        return self.x is not None


def solve_milp(
    c: np.ndarray,
    A: sp.spmatrix,
    row_lower: np.ndarray,
    row_upper: np.ndarray,
    col_lower: np.ndarray,
    col_upper: np.ndarray,
    integrality: np.ndarray | None = None,
    *,
    offset: float = 0.0,
    time_limit_s: float = 60.0,
    mip_rel_gap: float = 1e-6,
    warm_start: np.ndarray | None = None,
    threads: int | None = None,
    verbose: bool = False,
) -> MilpResult:
    """Minimise ``c @ x + offset`` s.t. ``row_lower <= A x <= row_upper`` and column bounds.

    ``integrality`` is a 0/1 vector (1 = integer column).  Infinite bounds are
    ``±np.inf``.  ``warm_start`` is a full primal vector passed to HiGHS as a
    starting incumbent.  Returns a :class:`MilpResult`; it never raises on an
    infeasible model (``status`` says so) so that callers can diagnose.
    """
    c = np.ascontiguousarray(c, dtype=np.float64)
    n = c.size
    A = sp.csr_matrix(A, dtype=np.float64)
    if A.shape[1] != n:
        raise ValueError(f"A has {A.shape[1]} columns but c has {n}")
    m = A.shape[0]
    inf = highspy.kHighsInf
    lp = highspy.HighsLp()
    lp.num_col_ = n
    lp.num_row_ = m
    lp.col_cost_ = c
    lp.offset_ = float(offset)
    lp.col_lower_ = np.where(np.isneginf(col_lower), -inf, col_lower).astype(np.float64)
    lp.col_upper_ = np.where(np.isposinf(col_upper), inf, col_upper).astype(np.float64)
    lp.row_lower_ = np.where(np.isneginf(row_lower), -inf, row_lower).astype(np.float64)
    lp.row_upper_ = np.where(np.isposinf(row_upper), inf, row_upper).astype(np.float64)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.num_col_ = n
    lp.a_matrix_.num_row_ = m
    lp.a_matrix_.start_ = A.indptr.astype(np.int32)
    lp.a_matrix_.index_ = A.indices.astype(np.int32)
    lp.a_matrix_.value_ = A.data
    if integrality is not None:
        lp.integrality_ = [
            highspy.HighsVarType.kInteger if v else highspy.HighsVarType.kContinuous
            for v in np.asarray(integrality, dtype=bool)
        ]
    h = highspy.Highs()
    h.setOptionValue("output_flag", bool(verbose))
    h.setOptionValue("time_limit", float(time_limit_s))
    h.setOptionValue("mip_rel_gap", float(mip_rel_gap))
    h.setOptionValue("random_seed", 0)
    if threads is not None:
        h.setOptionValue("threads", int(threads))
    h.passModel(lp)
    if warm_start is not None:
        sol = highspy.HighsSolution()
        sol.col_value = list(np.asarray(warm_start, dtype=np.float64))
        sol.value_valid = True
        h.setSolution(sol)
    t0 = time.perf_counter()
    h.run()
    seconds = time.perf_counter() - t0
    status = h.modelStatusToString(h.getModelStatus())
    info = h.getInfo()
    has_sol = info.primal_solution_status == 2  # kSolutionStatusFeasible
    x = np.asarray(h.getSolution().col_value, dtype=np.float64) if has_sol else None
    if integrality is not None and np.any(integrality):
        objective = float(info.objective_function_value) if has_sol else float("nan")
        bound = float(info.mip_dual_bound)
    else:
        objective = float(info.objective_function_value) if has_sol else float("nan")
        bound = objective
    if has_sol and np.isfinite(bound):
        gap = max(0.0, (objective - bound) / max(abs(objective), 1e-9))
    else:
        gap = float("inf")
    optimal = status == "Optimal"
    if warm_start is not None and x is not None:
        # Guard: HiGHS has been seen to report "Optimal" with an objective that the returned x (still the warm start)
        # does not attain.  Recompute c @ x; on a mismatch, solve again from scratch and trust that answer.
        attained = float(c @ x) + float(offset)
        if abs(attained - objective) > 1e-6 * max(1.0, abs(objective)):
            return solve_milp(c, A, row_lower, row_upper, col_lower, col_upper, integrality, offset=offset,
                              time_limit_s=time_limit_s, mip_rel_gap=mip_rel_gap, warm_start=None, threads=threads,
                              verbose=verbose)
    return MilpResult(x=x, objective=objective, bound=bound, gap=gap, status=status, seconds=seconds, optimal=optimal)
