"""Simulated, labelled sessions through the command line: what the demo and benchmarks record.

Each step runs as its own `robot-ssl` process, exactly as a user would type it,
so a benchmark measures the shipped commands. World names of the form
``gen:SPLIT:SEED`` are generated once (`robot-ssl sim generate`) into a worlds folder.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from robot_ssl.core.errors import RobotSSLError

__all__ = ["labelled_session", "robot_ssl_verb", "world_arg", "world_name"]


def robot_ssl_verb(*args: str, quiet: bool = False) -> None:
    """Run one `robot-ssl` verb in a subprocess; raise with its last error line on failure."""
    cmd = [sys.executable, "-m", "robot_ssl", *args]
    r = subprocess.run(
        cmd, stdout=subprocess.PIPE if quiet else None, stderr=subprocess.PIPE, text=True
    )
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RobotSSLError(f"step `robot-ssl {' '.join(args[:2])}` failed: {last}")
    if not quiet and r.stderr:
        # progress bars and summaries of sub-steps
        sys.stderr.write(r.stderr[-2000:])


def world_arg(world: str, worlds_dir: Path) -> str:
    """Named worlds pass through; `gen:SPLIT:SEED` is generated once into `worlds_dir`."""
    if not world.startswith("gen:"):
        return world
    _, split, seed = world.split(":")
    path = Path(worlds_dir) / f"gen_{split}_{seed}.yaml"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        robot_ssl_verb("sim", "generate", str(path), "--seed", seed, "--split", split, quiet=True)
    return str(path)


def world_name(world: str) -> str:
    """A file-name-safe form of a world argument (`gen:train:11` -> `gen_train_11`)."""
    return world.replace(":", "_")


def labelled_session(
    world: str, minutes: float, seed: int, path: Path, worlds_dir: Path, *extra: str
) -> Path:
    """Record `minutes` of wander driving in `world` and label it, unless both files exist.

    `extra` are further `sim record` options. Returns the session path.
    """
    from robot_ssl.io.labels_file import LABELS_SUFFIX

    path = Path(path)
    labels = path.with_name(path.stem + LABELS_SUFFIX)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        w = world_arg(world, worlds_dir)
        robot_ssl_verb(
            "sim", "record", "--world", w, "--minutes", str(minutes), "--seed", str(seed),
            "--overwrite", "--no-progress", *extra, str(path), quiet=True,
        )  # fmt: skip
    if not labels.exists():
        robot_ssl_verb("label", str(path), quiet=True)
    return path
