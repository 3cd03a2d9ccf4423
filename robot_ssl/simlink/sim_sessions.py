"""Simulated, labelled sessions in-process: what the demo and the benchmarks record.

Each step calls the verb's library function a user's command line reaches
(`record_session` of `robot-ssl sim record`, `label(LabelJob)` of `robot-ssl label`,
`write_generated_world` of `robot-ssl sim generate`), so a benchmark measures the shipped
code without a process per step. World names of the form ``gen:SPLIT:SEED`` are
generated once into a worlds folder. Recordings in parallel run in worker processes
(`record_sessions`), the simulator being CPU-bound Python.
"""

from __future__ import annotations

import contextlib
import io
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robot_ssl.core.errors import RobotSSLError

__all__ = [
    "SimRecording",
    "label_quietly",
    "labelled_session",
    "record_sessions",
    "world_arg",
    "world_name",
]


@dataclass(frozen=True)
class SimRecording:
    """One `robot-ssl sim record`: `minutes` of wander driving in `world` (a name or a
    world file) from `seed` into `path`; `options` are record_session's keyword options
    (`ideal_clocks`, `ir_model`, ...)."""

    world: str
    minutes: float
    seed: int
    path: Path
    options: tuple[tuple[str, Any], ...] = ()


def record(rec: SimRecording) -> Path:
    """Record `rec` (replacing its file, no progress bar); its path."""
    from robot_ssl.simlink.simulator import record_session, sim_errors

    with sim_errors():
        record_session(
            rec.path,
            world=rec.world,
            seed=rec.seed,
            minutes=rec.minutes,
            overwrite=True,
            progress=False,
            **dict(rec.options),
        )
    return rec.path


def record_sessions(recordings: Sequence[SimRecording], jobs: int = 1) -> None:
    """Record each of `recordings`, `jobs` at a time in worker processes (spawned: no fork
    of a process running threads; they exit with this one), with a progress bar."""
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from tqdm import tqdm

    from robot_ssl.labelling.batch import worker_init

    bar = tqdm(total=len(recordings), desc="record", unit="session")
    try:
        if jobs <= 1 or len(recordings) <= 1:
            for rec in recordings:
                record(rec)
                bar.update()
            return
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=jobs, mp_context=ctx, initializer=worker_init, initargs=(os.getpid(),)
        ) as pool:
            for fut in as_completed([pool.submit(record, rec) for rec in recordings]):
                fut.result()  # a failed recording: its one-line error
                bar.update()
    finally:
        bar.close()


_QUIET_LOCK = threading.Lock()
_quiet_depth = 0
_quiet_saved: Any = None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Stdout (a verb's table) swallowed, as `quiet` steps of the demo want.

    Safe across threads (benchmarks label sessions from a thread pool): the first to enter
    saves the real stdout and the last to leave puts it back. contextlib.redirect_stdout
    is not: overlapping threads would leave stdout swallowed for good."""
    global _quiet_depth, _quiet_saved
    with _QUIET_LOCK:
        if _quiet_depth == 0:
            _quiet_saved, sys.stdout = sys.stdout, io.StringIO()
        _quiet_depth += 1
    try:
        yield
    finally:
        with _QUIET_LOCK:
            _quiet_depth -= 1
            if _quiet_depth == 0:
                sys.stdout, _quiet_saved = _quiet_saved, None


def label_quietly(sessions: Sequence[str | Path], *, jobs: int | None = None, **job: Any) -> None:
    """`robot-ssl label SESSIONS` in-process, its table not printed; RobotSSLError with the
    verb's lines (on stderr already) when a session could not be labelled."""
    from robot_ssl.labelling.label_job import LabelJob, label

    with _quiet():
        status = label(LabelJob(sessions=tuple(map(str, sessions)), jobs=jobs, **job))
    if status != 0:
        raise RobotSSLError(f"step `robot-ssl label` failed for {len(sessions)} session(s)")


def world_arg(world: str, worlds_dir: Path) -> str:
    """Named worlds pass through; `gen:SPLIT:SEED` is generated once into `worlds_dir`."""
    from robot_ssl.simlink.simulator import write_generated_world

    if not world.startswith("gen:"):
        return world
    _, split, seed = world.split(":")
    path = Path(worlds_dir) / f"gen_{split}_{seed}.yaml"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_generated_world(path, int(seed), split)
    return str(path)


def world_name(world: str) -> str:
    """A file-name-safe form of a world argument (`gen:train:11` -> `gen_train_11`)."""
    return world.replace(":", "_")


def labelled_session(
    world: str, minutes: float, seed: int, path: Path, worlds_dir: Path, **options: Any
) -> Path:
    """Record `minutes` of wander driving in `world` and label it, unless both files exist.

    `options` are further `record_session` options (`sim record`'s). Returns the path.
    """
    from robot_ssl.io.labels_file import LABELS_SUFFIX

    path = Path(path)
    labels = path.with_name(path.stem + LABELS_SUFFIX)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        w = world_arg(world, worlds_dir)
        record(SimRecording(w, minutes, seed, path, tuple(options.items())))
    if not labels.exists():
        label_quietly([path])
    return path
