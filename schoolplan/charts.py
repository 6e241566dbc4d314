"""Charts (matplotlib Figures) for the report; drawing only, from tables the stages produced."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

__all__ = ["draw_pyramids", "draw_enrollment", "draw_tradeoff"]

LEVEL_COLORS = {"kindergarten": "#f2a900", "primary": "#d62728", "junior": "#1f77b4", "senior": "#2ca02c"}


def draw_pyramids(district: pd.DataFrame, years=(2020, 2025, 2035)):
    """Population pyramids (median, 5-year groups) for the given years; ``district`` is
    :func:`schoolplan.tables.population_district_table`."""
    years = [y for y in years if y in set(district["year"])]
    fig, axes = plt.subplots(1, len(years), figsize=(4.2 * len(years), 4.6), sharey=True, dpi=100)
    axes = np.atleast_1d(axes)
    med = district[district["quantile"] == 0.5]
    xmax = 0
    for ax, y in zip(axes, years):
        d = med[med["year"] == y].copy()
        d["group"] = np.minimum(d["age"] // 5 * 5, 85)
        g = d.groupby(["group", "sex"])["persons"].sum().unstack("sex")
        ax.barh(g.index, -g["male"], height=4.2, color="#4a78b5", label="male")
        ax.barh(g.index, g["female"], height=4.2, color="#d9534f", label="female")
        xmax = max(xmax, g.to_numpy().max())
        ax.set_title(f"{y} (1 Nov)")
        ax.set_xlabel("persons per 5-year group")
    for ax in axes:
        ax.set_xlim(-xmax * 1.05, xmax * 1.05)
        ticks = ax.get_xticks()
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"{abs(t) / 1000:.0f}k" for t in ticks])
    axes[0].set_ylabel("age (85 = 85+)")
    axes[0].legend(loc="upper left", fontsize=8)
    fig.suptitle("Fuling population: median projection (census 2020 real; projection modelled)")
    fig.tight_layout()
    return fig


def draw_enrollment(enrollment: pd.DataFrame):
    """Pupils by level and year with 80 % and 90 % intervals (``enrollment`` from enrollment_district_table)."""
    fig, ax = plt.subplots(figsize=(9, 4.8), dpi=100)
    e = enrollment[enrollment["variable"] == "pupils"]
    for level, color in LEVEL_COLORS.items():
        d = e[e["level"] == level].pivot_table(index="year", columns="quantile", values="value")
        if d.empty:
            continue
        ax.fill_between(d.index, d[0.05], d[0.95], color=color, alpha=0.15, linewidth=0)
        ax.fill_between(d.index, d[0.1], d[0.9], color=color, alpha=0.3, linewidth=0)
        ax.plot(d.index, d[0.5], color=color, label=level, linewidth=2)
    ax.set_ylabel("pupils (school year starting 1 Sep)")
    ax.set_xlabel("school year")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    ax.set_title("Enrollment by level: median, 80 % and 90 % intervals over population draws")
    fig.tight_layout()
    return fig


def draw_tradeoff(curve: pd.DataFrame):
    """School count against mean one-way travel (km, by level) and total annualised cost (``curve`` from
    layout.consolidation.tradeoff_curve)."""
    fig, ax1 = plt.subplots(figsize=(8, 4.4), dpi=100)
    for col, label, style in (("mean_m_primary", "primary: mean travel", "o-"), ("mean_m_junior", "junior: mean travel", "s-")):
        if col in curve.columns:
            ax1.plot(curve["target"], curve[col] / 1000.0, style, label=label)
    ax1.set_xlabel("compulsory schools (target)")
    ax1.set_ylabel("mean one-way travel, km")
    ax2 = ax1.twinx()
    if "total_cost_cny_per_year" in curve.columns:
        ax2.plot(curve["target"], curve["total_cost_cny_per_year"] / 1e6, "d--", color="#c62828", label="annualised cost")
    ax2.set_ylabel("annualised cost, million ¥ / year", color="#c62828")
    h1, l1 = ax1.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax1.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper center")
    ax1.grid(alpha=0.3)
    ax1.set_title("What the school count costs: travel and money")
    fig.tight_layout()
    return fig
