"""A self-contained HTML report (one file, opens offline): text, tables and figures embedded as base64 PNG.

Everything that comes from data (school and place names, scenario text) is escaped with :func:`html.escape`
or ``DataFrame.to_html(escape=True)``; the only raw HTML is this module's own markup.
"""
from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field

import pandas as pd

__all__ = ["Report", "figure_to_data_uri"]

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,'Noto Sans CJK SC','Microsoft YaHei',sans-serif;margin:2em auto;max-width:1150px;color:#222;line-height:1.45}
h1{font-size:1.6em;border-bottom:2px solid #1565c0;padding-bottom:.2em}h2{font-size:1.25em;margin-top:1.8em;color:#1565c0}
table{border-collapse:collapse;font-size:.86em;margin:.6em 0}th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#eef3fa}td:first-child,th:first-child{text-align:left}.pass{background:#e3f4e1}.fail{background:#fbe3e1}
.na{background:#f3f3f3}.note{background:#fff8e1;border-left:4px solid #f2a900;padding:.5em .9em;margin:1em 0}
img{max-width:100%;border:1px solid #ddd}.small{font-size:.85em;color:#555}
"""


def format_number(v: float) -> str:
    """Readable numbers: thousands separators for large values, 3 significant decimals for small ones."""
    if pd.isna(v):
        return "–"
    a = abs(v)
    if a >= 100:
        return f"{v:,.0f}"
    if a >= 1:
        return f"{v:,.2f}".rstrip("0").rstrip(".")
    return f"{v:.3g}"


def figure_to_data_uri(fig, dpi: int = 100) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


@dataclass
class Report:
    title: str
    parts: list[str] = field(default_factory=list)

    def heading(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def paragraph(self, text: str, cls: str | None = None) -> None:
        c = f' class="{cls}"' if cls else ""
        self.parts.append(f"<p{c}>{html.escape(text)}</p>")

    def note(self, text: str) -> None:
        self.parts.append(f'<div class="note">{html.escape(text)}</div>')

    def table(self, df: pd.DataFrame, *, status_column: str | None = None) -> None:
        """A table; when ``status_column`` holds pass/fail/info/input, rows are coloured accordingly."""
        if status_column is None:
            self.parts.append(df.to_html(index=False, escape=True, na_rep="–", float_format=format_number, border=0))
            return
        cols = list(df.columns)
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
        rows = []
        for _, r in df.iterrows():
            status = str(r[status_column])
            cls = {"pass": "pass", "fail": "fail"}.get(status, "na")
            cells = "".join(f"<td>{html.escape(self._fmt(r[c]))}</td>" for c in cols)
            rows.append(f'<tr class="{cls}">{cells}</tr>')
        self.parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")

    @staticmethod
    def _fmt(v) -> str:
        if v is None or (isinstance(v, float) and pd.isna(v)):
            return "–"
        if isinstance(v, float):
            return format_number(v)
        return str(v)

    def figure(self, fig, caption: str = "", dpi: int = 100) -> None:
        uri = figure_to_data_uri(fig, dpi=dpi)
        cap = f'<p class="small">{html.escape(caption)}</p>' if caption else ""
        self.parts.append(f'<figure><img alt="{html.escape(caption)}" src="{uri}">{cap}</figure>')

    def image(self, png: bytes, caption: str = "") -> None:
        """Embed a PNG already written (e.g. a map of the run) without drawing it again."""
        uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        cap = f'<p class="small">{html.escape(caption)}</p>' if caption else ""
        self.parts.append(f'<figure><img alt="{html.escape(caption)}" src="{uri}">{cap}</figure>')

    def render(self) -> str:
        body = "\n".join(self.parts)
        return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(self.title)}</title>"
                f"<style>{CSS}</style></head><body><h1>{html.escape(self.title)}</h1>\n{body}\n</body></html>\n")
