"""`robot-ssl info SESSION`: duration, per-stream counts and rates, gaps, size, specs."""

from __future__ import annotations

import argparse
import json

HELP = "summarise a session file (streams, rates, gaps, specs)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("session", help="session file (.h5)")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")


def run(args: argparse.Namespace) -> int:
    from robot_ssl.io.session import SessionReader
    from robot_ssl.io.session_summary import format_info, session_info

    with SessionReader(args.session) as reader:
        info = session_info(reader)
    print(json.dumps(info.to_json(), indent=2) if args.json else format_info(info))
    return 0
