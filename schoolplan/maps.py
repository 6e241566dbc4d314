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


def draw_context(ax, ds: Dataset) -> None:
    """Township boundaries, the district outline, rivers and bridges (EPSG:4545) on ``ax``."""
    ds.townships.to_crs(METRIC).boundary.plot(ax=ax, color="#555555", linewidth=0.7)
    ds.district.to_crs(METRIC).boundary.plot(ax=ax, color="black", linewidth=1.6)
    if ds.rivers is not None:
        ds.rivers.to_crs(METRIC).plot(ax=ax, color="#1565c0", linewidth=2.6, zorder=3)
    if ds.bridges is not None:
        ds.bridges.to_crs(METRIC).plot(ax=ax, color="black", marker="s", markersize=30, zorder=5)


def draw_base_map(ds: Dataset, title: str):
    """Units (urban/rural), township boundaries, rivers and bridges, schools by level, over the district outline."""
    fig, ax = plt.subplots(figsize=(11, 11), dpi=110)
    units = ds.units.to_crs(METRIC)
    units.plot(ax=ax, color=units["urban"].map({True: "#cfe3f5", False: "#f4efe6"}), edgecolor="#bbbbbb", linewidth=0.25)
    draw_context(ax, ds)
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


def draw_consolidation_map(ds: Dataset, decisions, unit_travel_change_m, sites_gdf, title: str):
    """Kept, closed, expanded and new schools; arrows from closed to receiving schools; units coloured by the change
    of their pupils' mean travel (km); rivers, bridges and township boundaries.  All in EPSG:4545."""
    import numpy as np
    from matplotlib.colors import TwoSlopeNorm

    fig, ax = plt.subplots(figsize=(11, 11), dpi=110)
    units = ds.units.to_crs(METRIC).assign(change_km=np.asarray(unit_travel_change_m) / 1000.0)
    lim = max(1.0, float(np.nanpercentile(np.abs(units["change_km"]), 98)))
    units.plot(ax=ax, column="change_km", cmap="RdYlGn_r", norm=TwoSlopeNorm(0, -lim, lim), edgecolor="#cccccc",
               linewidth=0.2, legend=True, legend_kwds={"label": "change of mean one-way travel, km (after − before)",
                                                        "shrink": 0.6})
    draw_context(ax, ds)
    pts = sites_gdf.to_crs(METRIC).set_index("site_id")
    d = decisions.set_index("school_id")
    xy = {sid: (pts.geometry[sid].x, pts.geometry[sid].y) for sid in d.index if sid in pts.index}
    for sid, row in d.iterrows():
        rec = row.get("receiving_school_id")
        if row["decision"] == "close" and isinstance(rec, str) and rec in xy and sid in xy:
            (x0, y0), (x1, y1) = xy[sid], xy[rec]
            ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                        arrowprops=dict(arrowstyle="->", color="#6d4c41", lw=0.8, alpha=0.8), zorder=6)
    style = {"keep": ("#2e7d32", "o", 28, "kept"), "expand": ("#f9a825", "^", 60, "expanded"),
             "close": ("#c62828", "x", 34, "closed (arrow to receiving school)"), "open": ("#6a1b9a", "*", 140, "new school")}
    from matplotlib.lines import Line2D as _L
    handles = []
    for dec, (color, marker, size, label) in style.items():
        ids = [i for i in d.index[d["decision"] == dec] if i in xy]
        if ids:
            arr = np.array([xy[i] for i in ids])
            ax.scatter(arr[:, 0], arr[:, 1], c=color, marker=marker, s=size, zorder=7,
                       edgecolors="black" if marker not in ("x",) else None, linewidths=0.4)
        handles.append(_L([], [], color=color, marker=marker, linestyle="", label=f"{label}: {len(ids)}"))
    handles.append(_L([], [], color="#1565c0", linewidth=2.4, label="river (Yangtze coarse real, Wu schematic)"))
    handles.append(_L([], [], color="black", marker="s", linestyle="", label="bridge (schematic)"))
    ax.legend(handles=handles, loc="upper left", fontsize=8, framealpha=0.9)
    ax.set_title(title, fontsize=11)
    ax.set_axis_off()
    ax.annotate("School inventory SYNTHETIC; census population real. EPSG:4545.", xy=(0.99, 0.005),
                xycoords="axes fraction", ha="right", fontsize=7, color="#444444")
    fig.tight_layout()
    return fig


def draw_kindergarten_map(ds: Dataset, unit_coverage, site_table, sites_gdf, title: str):
    """Existing kindergartens (public / private), candidate sites (chosen or not) and unit coverage share.

    ``unit_coverage``: unit_code, covered_share; ``site_table``: site_id, open (the siting result)."""
    import numpy as np

    fig, ax = plt.subplots(figsize=(11, 11), dpi=110)
    units = ds.units.to_crs(METRIC).merge(unit_coverage[["unit_code", "covered_share"]], on="unit_code", how="left")
    units.plot(ax=ax, column="covered_share", cmap="Blues", vmin=0, vmax=1, edgecolor="#cccccc", linewidth=0.2,
               legend=True, legend_kwds={"label": "share of children aged 3–5 within walking radius of a seat", "shrink": 0.6},
               missing_kwds={"color": "#eeeeee"})
    ds.district.to_crs(METRIC).boundary.plot(ax=ax, color="black", linewidth=1.5)
    if ds.rivers is not None:
        ds.rivers.to_crs(METRIC).plot(ax=ax, color="#1565c0", linewidth=2.2)
    kg = ds.schools[ds.schools["level"] == "kindergarten"].to_crs(METRIC)
    ax.scatter(kg.geometry.x, kg.geometry.y, c=np.where(kg["public"], "#2e7d32", "#f9a825"), s=14, edgecolors="black",
               linewidths=0.3, zorder=5)
    pts = sites_gdf.to_crs(METRIC).set_index("site_id")
    s = site_table
    for opened, color, size in ((False, "#bdbdbd", 40), (True, "#6a1b9a", 150)):
        ids = [i for i in s.loc[s["open"] == opened, "site_id"] if i in pts.index]
        if ids:
            g = pts.loc[ids].geometry
            ax.scatter(g.x, g.y, c=color, marker="*", s=size, edgecolors="black", linewidths=0.4, zorder=6)
    from matplotlib.lines import Line2D as _L
    ax.legend(handles=[_L([], [], color="#2e7d32", marker="o", linestyle="", label="public kindergarten (synthetic)"),
                       _L([], [], color="#f9a825", marker="o", linestyle="", label="private kindergarten (synthetic)"),
                       _L([], [], color="#6a1b9a", marker="*", linestyle="", markersize=12, label="new site chosen"),
                       _L([], [], color="#bdbdbd", marker="*", linestyle="", markersize=8, label="candidate not chosen")],
              loc="upper left", fontsize=8, framealpha=0.9)
    ax.set_title(title, fontsize=11)
    ax.set_axis_off()
    fig.tight_layout()
    return fig
