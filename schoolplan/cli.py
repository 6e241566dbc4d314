"""Command line: ``schoolplan run [SCENARIO ...]``, ``schoolplan compare A B [...]``, ``schoolplan validate [DATA_DIR]``.

Every error schoolplan raises on purpose (:class:`~forecast.errors.SchoolplanError`) is printed as a readable
list of problems with the fix, and the command exits non-zero — never a stack trace.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from forecast.errors import SchoolplanError
from layout.milp import silence_highs_banner

DEFAULT_SCENARIO = Path("scenarios") / "baseline.toml"


def _cmd_run(args) -> int:
    from schoolplan.pipeline import run_scenario

    scenarios = args.scenarios or [DEFAULT_SCENARIO]
    for sc in scenarios:
        out = run_scenario(sc, args.outputs, quiet=args.quiet)
        print(out)
    return 0


def _cmd_compare(args) -> int:
    from schoolplan.compare import collect
    from schoolplan.outputs import write_run

    if len(args.scenarios) < 2:
        print("schoolplan compare needs at least two scenario names (folders under outputs/)", file=sys.stderr)
        return 2
    names = [Path(s).stem for s in args.scenarios]
    tables = collect(args.outputs, names)

    def fill(w):
        lines = [f"# Comparison: {' vs '.join(names)}", "", f"Differences are each scenario minus {names[0]}.", ""]
        for table, frame in tables.items():
            w.csv(f"compare_{table}", frame)
            lines.append(f"- `compare_{table}`: {len(frame)} rows")
        w.text("README.md", "\n".join(lines) + "\n")
        return {}

    out = write_run(args.outputs, "compare_" + "_vs_".join(names), fill, {"compared": names})
    print(out)
    return 0


def _cmd_validate(args) -> int:
    from schoolplan.validate import validate_data_dir

    problems, tables = validate_data_dir(args.data_dir)
    if problems:
        print(f"{args.data_dir}: {len(problems)} problem{'s' if len(problems) != 1 else ''}", file=sys.stderr)
        for p in problems:
            print(p.format(), file=sys.stderr)
        return 1
    print(f"{args.data_dir}: valid ({len(tables)} files checked)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="schoolplan", description="School-layout and enrollment forecasting for a district education bureau.")
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run one or more scenarios and write outputs/<scenario>/")
    r.add_argument("scenarios", nargs="*", type=Path, help=f"scenario TOML files (default {DEFAULT_SCENARIO})")
    r.add_argument("--outputs", type=Path, default=Path("outputs"), help="folder that receives outputs/<scenario>/ (default outputs)")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    r.set_defaults(func=_cmd_run)
    c = sub.add_parser("compare", help="put the results of scenarios side by side (outputs/compare_A_vs_B/)")
    c.add_argument("scenarios", nargs="+", help="scenario names (or their .toml files) already run")
    c.add_argument("--outputs", type=Path, default=Path("outputs"))
    c.set_defaults(func=_cmd_compare)
    v = sub.add_parser("validate", help="check a data folder against the documented schema; report every problem")
    v.add_argument("data_dir", nargs="?", type=Path, default=Path("data"))
    v.set_defaults(func=_cmd_validate)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        silence_highs_banner()
    try:
        return args.func(args)
    except SchoolplanError as exc:
        print(f"schoolplan: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
