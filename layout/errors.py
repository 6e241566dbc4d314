"""Errors of the layout package (subclasses of the one family in `forecast.errors`)."""
from __future__ import annotations

from forecast.errors import Problem, SchoolplanError

__all__ = ["LayoutError", "InfeasibleError", "Problem"]


class LayoutError(SchoolplanError):
    """Bad geometry, CRS, costs or capacities given to the layout package."""


class InfeasibleError(LayoutError):
    """An optimisation has no solution under its rules; ``diagnosis`` says why and where."""

    def __init__(self, summary: str, problems=(), diagnosis=None):
        self.diagnosis = diagnosis
        super().__init__(summary, problems)
