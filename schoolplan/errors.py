"""Errors of the schoolplan package (subclasses of the one family in `forecast.errors`)."""
from __future__ import annotations

from forecast.errors import Problem, SchoolplanError

__all__ = ["DataValidationError", "ScenarioError", "Problem"]


class DataValidationError(SchoolplanError):
    """A data folder does not meet its documented schema (see data/README.md)."""


class ScenarioError(SchoolplanError):
    """A scenario file is malformed, names an unknown key, or asks for the impossible."""
