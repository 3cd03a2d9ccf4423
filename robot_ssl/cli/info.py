"""`robot-ssl info SESSION...`: duration, per-stream counts and rates, gaps, size, specs.

Recovered files (writer killed, truncated, damaged metadata) are summarised too,
with how much of each stream is intact. Labels files among the arguments (a glob
like `dir/*.h5` matches them) are skipped with a note; a file that is no session
is reported in one line and makes the exit status 2, the others are still shown.
"""

from __future__ import annotations

import argparse
import json
import sys

HELP = "summarise session files (streams, rates, gaps, specs)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("sessions", nargs="+", metavar="SESSION", help="session files (.h5)")
    p.add_argument(
        "--json",
        action="store_true",
        help="print machine-readable JSON (an object; a list for several sessions)",
    )


def run(args: argparse.Namespace) -> int:
    from robot_ssl.core.errors import RobotSSLError
    from robot_ssl.io.labels_file import require_sessions
    from robot_ssl.io.session import SessionReader
    from robot_ssl.io.session_summary import format_info, session_info

    paths = require_sessions(args.sessions, "summarise", "info")
    if len(paths) == 1:  # one session: its error is the verb's error (one line, exit 2)
        with SessionReader(paths[0]) as reader:
            info = session_info(reader)
        print(json.dumps(info.to_json(), indent=2) if args.json else format_info(info))
        return 0
    infos, failed = [], 0
    for path in paths:
        try:
            with SessionReader(path) as reader:
                infos.append(session_info(reader))
        except RobotSSLError as e:
            print(f"robot-ssl info: error: {e}", file=sys.stderr)
            failed += 1
    if args.json:
        print(json.dumps([i.to_json() for i in infos], indent=2))
    else:
        print("\n\n".join(format_info(i) for i in infos))
    return 2 if failed else 0
