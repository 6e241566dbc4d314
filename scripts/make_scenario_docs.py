#!/usr/bin/env python
"""Render scenarios/README.md from the scenario schema (schoolplan.scenario.DEFAULTS) and its docs."""
from __future__ import annotations

from pathlib import Path

from schoolplan.scenario import DEFAULTS
from schoolplan.scenario_docs import DOCS

HEAD = """# Scenarios

A scenario is a TOML file read with the standard library's `tomllib`. It is **strict**: a key that is not listed
below is an error naming the file, the key and the allowed keys; a value of the wrong type is an error naming the
expected type. `extends = "baseline.toml"` (a path relative to the file) loads that scenario first, so a variant
holds only what changes. Missing keys take the defaults below. `[section]` tables group the dotted keys.

Shipped: `baseline` (the plan's assumptions), `low_fertility`, `high_fertility` (three-child policy effect),
`fast_urbanisation`, `housing_boom`, `no_consolidation`, `target_75`, `target_95`, `peak_demand` (the layout designed for each unit's peak pupils over 2025–2035).

To change a scenario, copy one, change what differs and keep `extends = "baseline.toml"`:

```toml
extends = "baseline.toml"
name = "my_variant"
[class_size]
primary = 40
```

then `schoolplan run scenarios/my_variant.toml` and `schoolplan compare baseline my_variant`.

| key | type | default | unit | meaning |
|---|---|---|---|---|
| `extends` | text | — | — | parent scenario file |
"""


def flatten(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from flatten(v, prefix + k + ".")
        else:
            yield prefix + k, v


def render() -> str:
    names = {bool: "true/false", int: "integer", float: "number", str: "text", list: "list"}
    rows = []
    for key, default in flatten(DEFAULTS):
        unit, meaning = DOCS[key]
        shown = "file name" if key == "name" else ('""' if default == "" else repr(default).replace("'", '"')
                                                    if not isinstance(default, bool) else str(default).lower())
        rows.append(f"| `{key}` | {names[type(default)]} | {shown} | {unit} | {meaning} |")
    return HEAD + "\n".join(rows) + "\n"


if __name__ == "__main__":
    path = Path(__file__).resolve().parents[1] / "scenarios" / "README.md"
    path.write_text(render(), encoding="utf-8")
    print(f"wrote {path}")
