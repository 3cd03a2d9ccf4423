"""`robot-ssl` entry point: dispatches to one module per verb (robot_ssl/cli/<verb>.py).

Each verb module defines `HELP` (one line), `add_arguments(parser)` and
`run(args) -> int`, and imports heavy dependencies (torch, h5py, cv2) inside
`run` so that `robot-ssl --help` stays fast. Errors derived from
`RobotSSLError` are printed as one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# The verbs, in the order `robot-ssl --help` lists them: one module each, cli/<verb>.py.
VERBS: tuple[str, ...] = (
    "record",
    "info",
    "label",
    "calibrate",
    "pretrain",
    "train",
    "eval",
    "export",
    "import",
    "run",
    "replay",
    "sim",
    "robot",
    "demo",
)


class UsageError(Exception):
    """A command line argparse rejects: `main` prints it in one line and returns 2."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(f"{prog}: error: {message} (usage: {prog} --help)")


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser (and sub-parsers) whose errors are one line, not usage + line + exit."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(self.prog, message)


# Packages of the optional extras: a verb that needs one says so in one line.
_EXTRAS = {
    "torch": "train",
    "onnx": "train",
    "matplotlib": "train",
    "rosbags": "interop",
    "rerun": "view",
}
_WHAT = {"train": "the learning stack", "interop": "ROS bag support", "view": "the live view"}


def _missing_extra(e: ImportError) -> tuple[str, str] | None:
    """(package, extra) when `e` is a missing package of an optional extra, else None."""
    names = [(e.name or "").split(".")[0], *str(e).replace("'", " ").split()]
    for name in names:
        if name in _EXTRAS:
            return name, _EXTRAS[name]
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="robot-ssl",
        description="Self-supervised long-range obstacle perception for a Thymio-class robot.",
    )
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb in VERBS:
        module = importlib.import_module(f"robot_ssl.cli.{verb}")
        p = sub.add_parser(verb, help=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_module=module, _verb=verb)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from robot_ssl.core.errors import RobotSSLError

    parser = build_parser()
    try:
        args, rest = parser.parse_known_args(argv)
        if rest:  # every option is generated from a config field or typed by the verb
            prog = f"{parser.prog} {args.verb}" if getattr(args, "verb", None) else parser.prog
            raise UsageError(prog, f"unrecognized arguments: {' '.join(rest)}")
    except UsageError as e:
        print(e, file=sys.stderr)
        return 2
    if args.verb is None:
        parser.print_help()
        return 2
    try:
        return int(args._module.run(args) or 0)
    except RobotSSLError as e:
        print(f"robot-ssl {args.verb}: error: {e}", file=sys.stderr)
        return 2
    except ImportError as e:
        extra = _missing_extra(e)
        if extra is None:
            raise
        print(
            f"robot-ssl {args.verb}: error: needs {extra[0]}, which is not installed "
            f"(this install has no {_WHAT[extra[1]]}): pip install 'robot-ssl[{extra[1]}]'",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print(f"robot-ssl {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
