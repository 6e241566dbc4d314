"""Static maps (matplotlib, PNG).  Drawing only: callers pass loaded layers and get a Figure back.

Labels are in English/pinyin so the maps render with matplotlib's default fonts on any machine.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from schoolplan.dataset import Dataset  # noqa: E402
from schoolplan.validate import METRIC  # noqa: E402

__all__ = ["draw_base_map", "LEVEL_STYLE"]

LEVEL_STYLE = {
    "kindergarten": ("#f2a900", "o", 10, "kindergarten"),
    "teaching_point": ("#9e9e9e", "v", 10, "teaching point"),
    "primary": ("#d62728", "o", 16, "primary"),
    "nine_year": ("#9467bd", "D", 22, "nine-year"),
    "junior": ("#1f77b4", "s", 20, "junior"),
    "senior_general": ("#2ca02c", "^", 34, "senior (general)"),
    "senior_vocational": ("#17becf", "^", 34, "senior (vocational)"),
}


def draw_base_map(ds: Dataset, title: str, *, pupils=None):
    """Units (urban/rural), township boundaries, rivers and bridges, schools by level, over the district outline."""
    fig, ax = plt.subplots(figsize=(11, 11), dpi=110)
    units = ds.units.to_crs(METRIC)
    units.plot(ax=ax, color=units["urban"].map({True: "#cfe3f5", False: "#f4efe6"}), edgecolor="#bbbbbb", linewidth=0.25)
    ds.townships.to_crs(METRIC).boundary.plot(ax=ax, color="#555555", linewidth=0.7)
    ds.district.to_crs(METRIC).boundary.plot(ax=ax, color="black", linewidth=1.6)
    if ds.rivers is not None:
        ds.rivers.to_crs(METRIC).plot(ax=ax, color="#1565c0", linewidth=2.6, zorder=3)
    if ds.bridges is not None:
        ds.bridges.to_crs(METRIC).plot(ax=ax, color="black", marker="s", markersize=30, zorder=5)
    schools = ds.schools.to_crs(METRIC)
    for level, (color, marker, size, _) in LEVEL_STYLE.items():
        sel = schools[schools["level"] == level]
        if len(sel):
            sel.plot(ax=ax, color=color, marker=marker, markersize=size, edgecolor="black", linewidth=0.3, zorder=6)
    ax.set_title(title, fontsize=12)
    ax.set_axis_off()
    handles = [Patch(facecolor="#cfe3f5", edgecolor="#bbbbbb", label="urban unit"),
               Patch(facecolor="#f4efe6", edgecolor="#bbbbbb", label="rural unit"),
               Line2D([], [], color="#1565c0", linewidth=2.6, label="river (Yangtze coarse real, Wu schematic)"),
               Line2D([], [], color="black", marker="s", linestyle="", label="bridge (schematic)")]
    handles += [Line2D([], [], color=c, marker=m, linestyle="", markeredgecolor="black", label=f"{lab} school (synthetic)")
                for c, m, _, lab in LEVEL_STYLE.values()]
    ax.legend(handles=handles, loc="upper left", fontsize=8, framealpha=0.9)
    ax.annotate("EPSG:4545 (CGCS2000 GK CM 108E). Census counts real; school inventory SYNTHETIC.",
                xy=(0.99, 0.005), xycoords="axes fraction", ha="right", fontsize=7, color="#444444")
    fig.tight_layout()
    return fig
