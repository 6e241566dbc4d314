"""layout — pupils to places: geometry, CRS, travel costs, capacity, optimisation.

May import `forecast` types; never imports `schoolplan`.
"""
from layout.errors import InfeasibleError, LayoutError

__all__ = ["InfeasibleError", "LayoutError"]
