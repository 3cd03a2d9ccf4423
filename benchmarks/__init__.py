"""The project's benchmarks: one module per issue target, run through one harness.

    python -m benchmarks NAME [--quick] [--no-store] [NAME's own options]
    python -m benchmarks all [--quick]          # every benchmark (`make bench`)
    python -m benchmarks NAME --help            # NAME's own options
    python -m benchmarks.readme_table [--check] # the README's table from the stored results

Each benchmark module has `run(quick: bool, argv: list[str]) -> list[Figure]`
(benchmarks.results): one Figure per row of the README's benchmark table. The harness
stores them with the machine, commit and date in `out/bench/NAME.json` and, for a full
run, in the committed `benchmarks/results/NAME.json`.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

BENCHMARKS = (
    "session_io",
    "link_rate",
    "onboard_link",
    "sim_speed",
    "record_load",
    "label_speed",
    "label_timing",
    "detector",
    "closed_loop",
    "live_record",
    "live_view_load",
    "hard_suite",
    "train_speed",
    "label_budget",
    "label_sources",
    "contact_detector",
    "online_learning",
    "import_speed",
    "import_robots",
    "demo",
)
"""Every benchmark, in the order of the README's table."""

RUN_ORDER = ("demo", *(b for b in BENCHMARKS if b != "demo"))
"""`all` runs the demo first: closed_loop and hard_suite score the model it trains."""


class Parser(argparse.ArgumentParser):
    """The benchmarks' option parser: a bad option is one line on stderr and exit 2."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        print(f"{self.prog}: error: {message} (usage: {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)
