"""forecast — people to pupils (aspatial, keyed by unit code; numpy cores).

Never imports `layout` or `schoolplan`.
"""
from forecast.errors import ForecastError, Problem, SchoolplanError

__all__ = ["ForecastError", "Problem", "SchoolplanError"]
