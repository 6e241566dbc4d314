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

__all__ = ["LpSession", "MilpResult", "silence_highs_banner", "solve_milp"]


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


def _build_lp(c, A, row_lower, row_upper, col_lower, col_upper, integrality, offset) -> "highspy.HighsLp":
    """The arrays as one highspy.HighsLp (row-wise matrix; ±inf bounds mapped to HiGHS's infinity)."""
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
    return lp


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
    options: dict | None = None,
) -> MilpResult:
    """Minimise ``c @ x + offset`` s.t. ``row_lower <= A x <= row_upper`` and column bounds.

    ``integrality`` is a 0/1 vector (1 = integer column).  Infinite bounds are
    ``±np.inf``.  ``warm_start`` is a full primal vector passed to HiGHS as a
    starting incumbent.  ``options`` maps further HiGHS option names to values (e.g.
    ``{"mip_heuristic_effort": 0.0}``); they are set after the ones above, so they may override them.
    Returns a :class:`MilpResult`; it never raises on an infeasible model (``status`` says so) so that
    callers can diagnose.  An unknown option name or a bad value raises ``ValueError``.
    """
    c = np.ascontiguousarray(c, dtype=np.float64)
    lp = _build_lp(c, A, row_lower, row_upper, col_lower, col_upper, integrality, offset)
    h = highspy.Highs()
    h.setOptionValue("output_flag", bool(verbose))
    h.setOptionValue("time_limit", float(time_limit_s))
    h.setOptionValue("mip_rel_gap", float(mip_rel_gap))
    h.setOptionValue("random_seed", 0)
    if threads is not None:
        h.setOptionValue("threads", int(threads))
    for name, value in (options or {}).items():
        if h.setOptionValue(str(name), value) != highspy.HighsStatus.kOk:
            raise ValueError(f"HiGHS rejected option {name!r} = {value!r}; see the HiGHS option list")
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
                              verbose=verbose, options=options)
    return MilpResult(x=x, objective=objective, bound=bound, gap=gap, status=status, seconds=seconds, optimal=optimal)


class LpSession:
    """One LP kept in HiGHS and re-solved after bound changes (dual simplex from the previous basis).

    For heuristics that evaluate many closely related LPs (e.g. a local search that fixes different
    binary columns): changing a few column or row bounds and re-solving takes milliseconds where
    building and solving from scratch takes a good fraction of a second.  Same arrays and bound
    conventions as :func:`solve_milp` (no integrality: it is an LP).
    """

    def __init__(self, c, A, row_lower, row_upper, col_lower, col_upper, *, offset: float = 0.0,
                 threads: int | None = None, options: dict | None = None):
        self.c = np.ascontiguousarray(c, dtype=np.float64)
        self._h = highspy.Highs()
        self._h.setOptionValue("output_flag", False)
        self._h.setOptionValue("random_seed", 0)
        if threads is not None:
            self._h.setOptionValue("threads", int(threads))
        for name, value in (options or {}).items():
            if self._h.setOptionValue(str(name), value) != highspy.HighsStatus.kOk:
                raise ValueError(f"HiGHS rejected option {name!r} = {value!r}; see the HiGHS option list")
        self._h.passModel(_build_lp(self.c, A, row_lower, row_upper, col_lower, col_upper, None, offset))
        self.row_dual: np.ndarray | None = None

    @staticmethod
    def _finite(a) -> np.ndarray:
        a = np.asarray(a, dtype=np.float64)
        return np.where(np.isposinf(a), highspy.kHighsInf, np.where(np.isneginf(a), -highspy.kHighsInf, a))

    def set_col_bounds(self, cols, lower, upper) -> None:
        """Set the bounds of the columns ``cols`` (int array) to ``lower`` / ``upper`` (arrays or scalars)."""
        cols = np.asarray(cols, dtype=np.int32)
        lo = np.broadcast_to(self._finite(lower), cols.shape).copy()
        hi = np.broadcast_to(self._finite(upper), cols.shape).copy()
        self._h.changeColsBounds(cols.size, cols, lo, hi)

    def set_row_bounds(self, rows, lower, upper) -> None:
        """Set the bounds of the rows ``rows`` (int array)."""
        rows = np.asarray(rows, dtype=np.int32)
        lo = np.broadcast_to(self._finite(lower), rows.shape)
        hi = np.broadcast_to(self._finite(upper), rows.shape)
        for r, a, b in zip(rows, lo, hi):
            self._h.changeRowBounds(int(r), float(a), float(b))

    def solve(self, time_limit_s: float = 60.0) -> tuple[float, np.ndarray | None, np.ndarray | None]:
        """Re-solve; returns (objective, x, reduced costs) — (nan, None, None) unless optimal.
        The row duals of the last optimal solve are in :attr:`row_dual` (HiGHS's sign convention:
        <= 0 on a binding upper bound of a minimisation)."""
        # HiGHS's time limit counts the instance's total run time over every run so far
        self._h.setOptionValue("time_limit", float(self._h.getRunTime() + max(time_limit_s, 1e-3)))
        self._h.run()
        if self._h.modelStatusToString(self._h.getModelStatus()) != "Optimal":
            return float("nan"), None, None
        sol = self._h.getSolution()
        self.row_dual = np.asarray(sol.row_dual, dtype=np.float64)
        return (float(self._h.getInfo().objective_function_value), np.asarray(sol.col_value, dtype=np.float64),
                np.asarray(sol.col_dual, dtype=np.float64))


def silence_highs_banner() -> None:
    """HiGHS prints a licence banner on stdout when the first solver object of a process is made; make that first
    object with stdout pointed at /dev/null so command output stays clean (it is printed once per process)."""
    import ctypes
    import os
    import sys

    try:
        libc = ctypes.CDLL(None)
    except (ImportError, OSError):
        return
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        highspy.Highs()
        libc.fflush(None)
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)
