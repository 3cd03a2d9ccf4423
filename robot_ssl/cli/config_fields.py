"""Every field of a verb's config dataclass on the command line, derived by tyro.

The verbs keep their short options (`--epochs`, `--lr`, ...); every other field of
their config is set as `--field-name VALUE` or `--nested.field-name VALUE` (for
example `robot-ssl train ... --warmup-steps 50 --augment.noise-std 0.05 --min-lr 1e-5`),
parsed by tyro from the dataclass itself, so a new field is settable without touching
the CLI. `VERB --config-help` lists them. Errors are one line, like every other.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from collections.abc import Callable, Sequence
from typing import Any

from robot_ssl.core.errors import RobotSSLError

__all__ = ["ConfigFieldError", "add_config_help", "apply_config_fields"]


class ConfigFieldError(RobotSSLError):
    """A config field given on the command line is unknown or has a bad value."""


def _tyro(cls: type, default: Any, args: Sequence[str], prog: str) -> Any:
    import tyro

    return tyro.cli(cls, args=list(args), default=default, prog=prog)


def apply_config_fields(cls: type, default: Any, args: Sequence[str], prog: str) -> Any:
    """`default` (an instance of dataclass `cls`) with the fields named in `args` set."""
    if not args:
        return default
    out = io.StringIO()
    try:
        with contextlib.redirect_stderr(out), contextlib.redirect_stdout(out):
            return _tyro(cls, default, args, prog)
    except SystemExit:
        reason = _reason(out.getvalue())
        raise ConfigFieldError(f"{reason} (all fields: {prog} --config-help)") from None


def _reason(text: str) -> str:
    """The message of tyro's error box in one line: tyro wraps a long one (a config's
    own "must be a finite number in (0, 1], got 1e+12") over several lines."""
    lines = [line.strip() for line in text.splitlines()]
    rules = [i for i, x in enumerate(lines) if x.startswith("---")]
    if len(rules) >= 2:
        reason = " ".join(x for x in lines[rules[0] + 1 : rules[1]] if x)
        if reason:
            return reason
    return next(
        (x for x in lines if ":" in x and not x.startswith(("-", "For full"))), "bad option"
    )


def add_config_help(
    parser: argparse.ArgumentParser, cls: Callable[[], tuple[type, Any]], prog: str
) -> None:
    """`--config-help`: print tyro's list of every config field (`cls()` gives the
    dataclass and a default instance, imported only when asked) and exit."""

    class ConfigHelp(argparse.Action):
        def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
            klass, default = cls()
            with contextlib.suppress(SystemExit):
                _tyro(klass, default, ["--help"], prog)
            sys.exit(0)

    parser.add_argument(
        "--config-help",
        nargs=0,
        action=ConfigHelp,
        help="list every config field settable as --field VALUE (--nested.field VALUE)",
    )
