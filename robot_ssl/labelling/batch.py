"""Labelling many session files: one result per session, in parallel worker processes
that exit with their parent, with a coverage PNG per session.

What `robot-ssl label` runs; a bad session gives a `SessionResult` with its error and
never stops the others.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robot_ssl.core.errors import RobotSSLError
from robot_ssl.core.label_grid import LabelConfig
from robot_ssl.io.labels_file import write_labels
from robot_ssl.labelling.labeller import compare_with_truth
from robot_ssl.labelling.session_labels import label_session, session_truth_grid
from robot_ssl.labelling.sources import agreement_by_source

__all__ = ["SessionResult", "label_one", "label_sessions", "plot_label_stats", "worker_init"]


def _have_matplotlib() -> bool:
    """The coverage PNG needs matplotlib (the `train` extra); the labels do not."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class SessionResult:
    """What one worker reports back (plain, picklable data)."""

    session: str
    labels_path: str | None = None
    plot_path: str | None = None
    error: str | None = None
    frames: int = 0
    frames_with_labels: int = 0
    known_fraction: float = 0.0
    positive_fraction: float = 0.0
    truth: dict[str, float | int] | None = None
    camera_offset: dict[str, Any] | None = None  # CameraOffset.to_dict() of the labels
    # per label source: {"ir": {"cells": n, "compared":, "agreement":, "precision":, ...}}
    sources: dict[str, dict[str, float | int]] | None = None
    notes: tuple[str, ...] = ()  # one line each: sources left out, a missing acc stream


def label_one(task: tuple[str, str, dict[str, Any], bool, bool]) -> SessionResult:
    """Label one session, write its labels (and plot); never raises for a bad session."""
    session, out, config_dict, with_truth, with_plot = task
    try:
        notes: list[str] = []
        labels = label_session(session, LabelConfig.from_dict(config_dict), notes=notes)
        path = write_labels(out, labels)
        stats = labels.stats()
        plot = None
        if with_plot and _have_matplotlib():
            png = Path(out).with_suffix(".png")
            title = Path(session).name
            plot_label_stats(stats, labels.sensor_indices, labels.distances_m, png, title)
            plot = str(png)
        truth = None
        by_source = _source_counts(labels)
        if with_truth:
            true_grid = session_truth_grid(session, labels)
            truth = {"available": 0}
            if true_grid is not None:
                found = compare_with_truth(labels.labels, true_grid.labels)
                truth = {"available": 1, **found.summary()}
                cells = labels.cell_sources()
                for name, agree in agreement_by_source(
                    labels.labels, cells, true_grid.labels
                ).items():
                    by_source[name].update(agree.summary())
    except RobotSSLError as e:
        return SessionResult(session, error=str(e))
    except Exception as e:  # keep the other sessions going; still a failure
        return SessionResult(session, error=f"unexpected {type(e).__name__}: {e}")
    return SessionResult(
        session=session,
        labels_path=str(path),
        plot_path=plot,
        frames=stats.frames,
        frames_with_labels=stats.frames_with_labels,
        known_fraction=stats.known_fraction,
        positive_fraction=stats.positive_fraction,
        truth=truth,
        camera_offset=labels.camera_offset.to_dict(),
        sources=by_source,
        notes=tuple(notes),
    )


def _source_counts(labels) -> dict[str, dict[str, float | int]]:
    """{source: {"cells": known cells it labelled, "positive": of them 1}} per source."""
    from robot_ssl.core.label_grid import LABEL_SOURCES, SOURCE_CODES

    cells = labels.cell_sources()
    out: dict[str, dict[str, float | int]] = {}
    for name in LABEL_SOURCES:
        mine = cells == SOURCE_CODES[name]
        n = int(mine.sum())
        if n:
            out[name] = {"cells": n, "positive": int((labels.labels[mine] == 1).sum())}
    return out


def worker_init(parent_pid: int) -> None:
    """Pool worker set-up: exit when the parent dies (even by SIGKILL), leaving no temp files.

    Linux delivers SIGTERM to the worker when its parent dies (PR_SET_PDEATHSIG); a
    thread watching os.getppid() covers other systems and a parent that died before
    the request took effect. Either way the worker removes the temporary file of a
    labels file or plot it was writing and exits at once.
    """
    import signal
    import threading

    from robot_ssl.core.outputs import remove_active_temps

    def die(signum: int = signal.SIGTERM, frame: object = None) -> None:
        remove_active_temps()
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, die)
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        import time

        while os.getppid() == parent_pid:
            time.sleep(0.5)
        die()

    if os.getppid() != parent_pid:
        die()
    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def plot_label_stats(stats, sensor_indices, distances_m, path: Path, title: str = "") -> Path:
    """PNG of label coverage and positive rate per (sensor, distance); written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from robot_ssl.core.outputs import atomic_output

    d_cm = [100 * d for d in distances_m]
    extent = (d_cm[0] - 0.5, d_cm[-1] + 0.5, len(sensor_indices) - 0.5, -0.5)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.2), constrained_layout=True)
    panels = (
        (stats.coverage, "label coverage (fraction of frames)"),
        (stats.positive_rate, "positive rate (of known labels)"),
    )
    for ax, (data, name) in zip(axes, panels):
        im = ax.imshow(data, aspect="auto", vmin=0, vmax=1, extent=extent, cmap="viridis")
        ax.set_title(name)
        ax.set_xlabel("distance ahead (cm)")
        ax.set_ylabel("sensor")
        ax.set_yticks(range(len(sensor_indices)), [str(i) for i in sensor_indices])
        fig.colorbar(im, ax=ax)
    if title:
        fig.suptitle(
            f"{title}: {stats.frames} frames, {100 * stats.known_fraction:.1f}% known, "
            f"{100 * stats.positive_fraction:.1f}% positive"
        )
    try:
        with atomic_output(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    finally:
        plt.close(fig)
    return path


def label_sessions(
    tasks: Sequence[tuple[str, str]],
    config: LabelConfig,
    *,
    jobs: int | None = None,
    truth: bool = False,
    plots: bool = True,
    progress: bool | None = None,
) -> list[SessionResult]:
    """Label each (session, labels path) in `tasks` with `config`, in `jobs` processes
    (default: one per core, at most one per session); results in the order of `tasks`.
    `progress` as tqdm's `disable` negated (None: a bar when stderr is a terminal)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from tqdm import tqdm

    full = [(s, o, config.to_dict(), truth, plots) for s, o in tasks]
    jobs = jobs or min(len(full), os.cpu_count() or 1)
    results: list[SessionResult] = []
    disable = None if progress is None else not progress
    bar = tqdm(total=len(full), unit="session", desc="labelling", file=sys.stderr, disable=disable)
    try:
        if jobs == 1 or len(full) == 1:
            for task in full:
                results.append(label_one(task))
                bar.update()
        else:
            # spawn: no fork of a process that already runs threads (tqdm, the pool's own)
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(
                max_workers=jobs, mp_context=ctx, initializer=worker_init, initargs=(os.getpid(),)
            ) as pool:
                futures = [pool.submit(label_one, t) for t in full]
                for fut in as_completed(futures):
                    results.append(fut.result())
                    bar.update()
    finally:
        bar.close()
    order = {s: i for i, (s, _) in enumerate(tasks)}
    results.sort(key=lambda r: order[r.session])
    return results
