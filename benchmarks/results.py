"""What a benchmark stores: its figures, targets met or missed, the machine, commit and date.

A benchmark's `run(quick, argv)` returns `Figure`s (one per row of the README's table); the
harness (`python -m benchmarks NAME`) wraps them in a `Result` with the machine, commit and
date, and writes it to `out/bench/NAME.json` and, for a full run, to the committed copy
`benchmarks/results/NAME.json` that the README's table is generated from
(`python -m benchmarks.readme_table`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from robot_ssl.core.outputs import atomic_output

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"
"""The committed results the README's table is generated from."""
OUT_DIR = ROOT / "out" / "bench"
"""Every run's result (ignored by git)."""
FROM_README = "from README before the harness"
"""Commit and date of the figures measured before the harness, copied from the README."""
SCHEMA = 1


class ResultError(ValueError):
    """A stored result file that is not a valid Result."""


@dataclass(frozen=True)
class Target:
    """One target of a figure: what it asks, whether this run met it, and why.

    `met` None: no verdict (an open goal, or the run did not measure it)."""

    name: str
    met: bool | None
    note: str = ""

    def text(self) -> str:
        """`name: met (note)` as the README's target column shows it."""
        verdict = {True: ": met", False: ": **missed**", None: ""}[self.met]
        note = f" ({self.note})" if self.note else ""
        return f"{self.name}{verdict}{note}"


@dataclass(frozen=True)
class Figure:
    """One row of the table: what was measured, the figures in words, targets, and the
    numbers themselves (`values`, units in the keys) for machines."""

    what: str
    result: str
    targets: tuple[Target, ...] = ()
    values: dict[str, float | None] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Figure:
        targets = tuple(Target(**t) for t in d.get("targets", ()))
        return cls(d["what"], d["result"], targets, dict(d.get("values", {})))


@dataclass(frozen=True)
class Machine:
    """Where a result was measured."""

    cpu: str
    cores: int

    @classmethod
    def this(cls) -> Machine:
        """This machine: the CPU model from /proc/cpuinfo (else platform) and its cores."""
        cpu = platform.processor() or platform.machine()
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        return cls(cpu, os.cpu_count() or 1)


def this_commit() -> str:
    """HEAD's short hash, `+dirty` when the tree has changes (`unknown` outside git)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        head = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


@dataclass(frozen=True)
class Result:
    """A benchmark's stored result.

    `label` is the table's first cell (the benchmark, or the command that measured it);
    `history` keeps earlier figures that the table no longer shows."""

    name: str
    label: str
    figures: tuple[Figure, ...]
    machine: Machine
    commit: str
    date: str
    quick: bool = False
    argv: tuple[str, ...] = ()
    history: tuple[str, ...] = ()
    schema: int = SCHEMA

    @classmethod
    def now(
        cls, name: str, figures: list[Figure], quick: bool, argv: list[str], label: str = ""
    ) -> Result:
        """A result measured now, on this machine, at this commit."""
        date = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
        return cls(
            name,
            label or f"`{name}`",
            tuple(figures),
            Machine.this(),
            this_commit(),
            date,
            quick,
            tuple(argv),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Result:
        """The Result of a parsed file; ResultError naming what is missing or wrong."""
        try:
            if d.get("schema") != SCHEMA:
                raise ResultError(f"schema {d.get('schema')!r}, expected {SCHEMA}")
            return cls(
                name=str(d["name"]),
                label=str(d["label"]),
                figures=tuple(Figure.from_dict(f) for f in d["figures"]),
                machine=Machine(**d["machine"]),
                commit=str(d["commit"]),
                date=str(d["date"]),
                quick=bool(d.get("quick", False)),
                argv=tuple(d.get("argv", ())),
                history=tuple(d.get("history", ())),
            )
        except (KeyError, TypeError, AttributeError) as e:
            raise ResultError(f"not a benchmark result: {type(e).__name__} {e}") from e

    @classmethod
    def load(cls, path: Path) -> Result:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ResultError(f"{path}: {e}") from e
        try:
            return cls.from_dict(data)
        except ResultError as e:
            raise ResultError(f"{path}: {e}") from e

    def save(self, path: Path) -> Path:
        """Write whole or not at all (robot_ssl.core.outputs)."""
        with atomic_output(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n")
        return Path(path)
