"""The one exception family of schoolplan.

Defined here, in the lowest layer, and subclassed by each package
(`layout.errors`, `schoolplan.errors`).  Validation collects every problem it
finds and raises once; each :class:`Problem` names the file (or argument), the
offending rows and the fix, so that a user never needs a stack trace.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input.

    ``source`` is a file path or an argument name, ``rows`` says where (row
    numbers, ids, or "" when the whole input is concerned), ``message`` what is
    wrong and ``fix`` what to do about it.
    """

    source: str
    message: str
    fix: str
    rows: str = ""

    def format(self) -> str:
        where = f"{self.source}" + (f" [{self.rows}]" if self.rows else "")
        return f"- {where}: {self.message}\n    fix: {self.fix}"


def format_rows(labels: Sequence, limit: int = 10) -> str:
    """Render a list of row labels (numbers or ids) compactly: ``rows 3, 7, 9 … (+12 more)``."""
    labels = list(labels)
    shown = ", ".join(str(x) for x in labels[:limit])
    more = f" … (+{len(labels) - limit} more)" if len(labels) > limit else ""
    return f"rows {shown}{more}" if labels else ""


class SchoolplanError(ValueError):
    """Base of every error schoolplan raises on purpose.

    Carries a one-line ``summary`` and a list of :class:`Problem`; ``str()``
    renders all of them.
    """

    def __init__(self, summary: str, problems: Iterable[Problem] = ()):
        self.summary = summary
        self.problems = list(problems)
        super().__init__(self._render())

    def _render(self) -> str:
        lines = [self.summary]
        lines += [p.format() for p in self.problems]
        return "\n".join(lines)


class ForecastError(SchoolplanError):
    """Bad input to, or an impossible request of, the forecast package."""


def raise_if_problems(problems: Sequence[Problem], summary: str, cls: type[SchoolplanError] = SchoolplanError) -> None:
    """Raise ``cls`` listing every problem when there is at least one."""
    if problems:
        raise cls(f"{summary} ({len(problems)} problem{'s' if len(problems) != 1 else ''})", problems)
