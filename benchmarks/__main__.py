"""`python -m benchmarks NAME [--quick] [--no-store] [options]`: run a benchmark, store its result.

The result goes to out/bench/NAME.json; a full run (not --quick, not --no-store) also
updates the committed benchmarks/results/NAME.json, from which
`python -m benchmarks.readme_table` regenerates the README's table. Options the harness
does not know are NAME's own (`python -m benchmarks NAME --help` lists them).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from benchmarks import BENCHMARKS, RUN_ORDER, Parser
from benchmarks.results import OUT_DIR, RESULTS_DIR, Result, ResultError


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    p = Parser(
        prog="python -m benchmarks",
        description=__doc__.splitlines()[0],
        add_help=False,  # --help after NAME is NAME's own
    )
    p.add_argument("name", choices=[*BENCHMARKS, "all"], help="benchmark, or all of them")
    p.add_argument("--quick", action="store_true", help="a short run that checks the benchmark")
    p.add_argument(
        "--no-store", action="store_true", help="leave benchmarks/results/ as it is (full runs)"
    )
    p.add_argument("--out", type=Path, default=OUT_DIR, help="folder of NAME.json (out/bench)")
    p.add_argument(
        "--results", type=Path, default=RESULTS_DIR, help="committed results (benchmarks/results)"
    )
    if argv is not None and argv[:1] in (["-h"], ["--help"]):
        p.print_help()
        raise SystemExit(0)
    return p.parse_known_args(argv)


def earlier_history(path: Path) -> tuple[str, ...]:
    """The history kept in the committed result that a new one replaces."""
    try:
        return Result.load(path).history
    except ResultError:
        return ()


def run_one(name: str, args: argparse.Namespace, rest: list[str]) -> Result | None:
    """Run benchmark `name`, store and return its result (None when it measured nothing)."""
    module = importlib.import_module(f"benchmarks.{name}")
    print(f"== {name}{' (quick)' if args.quick else ''}", flush=True)
    figures = module.run(args.quick, rest)
    if not figures:
        print(f"{name}: nothing measured, no result stored", file=sys.stderr)
        return None
    result = Result.now(name, figures, args.quick, rest, getattr(module, "LABEL", ""))
    print(f"result: {result.save(args.out / f'{name}.json')}")
    if not args.quick and not args.no_store:
        committed = args.results / f"{name}.json"
        history = earlier_history(committed)
        stored = Result(**{**result.__dict__, "history": history})
        print(f"stored: {stored.save(committed)} (regenerate the README's table with "
              "`python -m benchmarks.readme_table`)")  # fmt: skip
    return result


def main(argv: list[str] | None = None) -> int:
    args, rest = parse(sys.argv[1:] if argv is None else argv)
    if args.name == "all":
        if rest:
            print(f"options {' '.join(rest)} apply to one benchmark, not all", file=sys.stderr)
            return 2
        for name in RUN_ORDER:
            run_one(name, args, [])
        return 0
    run_one(args.name, args, rest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
