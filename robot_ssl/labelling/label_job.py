"""`robot-ssl label` as a library function: `label(LabelJob(...))` labels sessions into
`<session>.labels.h5` files.

Sessions are labelled in parallel processes (robot_ssl/labelling/batch.py); each gets a
labels file (next to the session, or in `out`) and a PNG of label coverage and positive
rate per (sensor, distance). A summary table follows; a session that cannot be labelled
(empty, no odometry, too short, damaged) is said in one line and makes the result 2,
without stopping the others.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from robot_ssl.core.config import MAX_THREADS, bounded, check_bounds
from robot_ssl.core.label_grid import LabelConfig, LabelConfigError

__all__ = ["LabelJob", "label"]


@dataclass
class LabelJob:
    """What `robot-ssl label` does: label `sessions` with the labelling `rule`.

    `out`: one folder for every labels file (None: beside each session); `jobs`:
    parallel processes (None: one per core); `config`: a labelling-rule file (YAML
    or JSON) that `rule`'s fields given here override; `truth`: compare with the
    simulator's truth; `plot`: a coverage PNG beside each labels file.
    """

    sessions: tuple[str, ...] = ()
    out: str | None = None
    jobs: int | None = bounded(None, 1, MAX_THREADS)
    config: str | None = None
    truth: bool = False
    plot: bool = True
    rule: LabelConfig = field(default_factory=LabelConfig)

    def __post_init__(self) -> None:
        check_bounds(self, "label", LabelConfigError)
        self.sessions = tuple(str(s) for s in self.sessions)


def _print_table(results: list, with_truth: bool) -> None:
    ok = [r for r in results if r.error is None]
    if not ok:
        return
    head = ["session", "frames", "labelled", "known", "positive", "camera offset"]
    if with_truth:
        head += ["truth agree", "precision", "recall"]
    head.append("labels file")
    rows = []
    for r in ok:
        row = [
            Path(r.session).name,
            str(r.frames),
            f"{100 * r.frames_with_labels / max(r.frames, 1):.1f}%",
            f"{100 * r.known_fraction:.1f}%",
            f"{100 * r.positive_fraction:.1f}%",
            _offset_cell(r.camera_offset),
        ]
        if with_truth:
            t = r.truth or {}
            if t.get("available"):
                row += [f"{100 * t[k]:.1f}%" for k in ("agreement", "precision", "recall")]
            else:
                row += ["no truth", "-", "-"]
        row.append(str(r.labels_path))
        rows.append(row)
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    for row in [head, *rows]:
        print(
            "  ".join(
                x.ljust(w) if i in (0, len(row) - 1) else x.rjust(w)
                for i, (x, w) in enumerate(zip(row, widths))
            ).rstrip()
        )
    for r in ok:
        note = _offset_note(r.camera_offset)
        if note:
            print(f"{Path(r.session).name}: {note}")
    _print_sources(ok, with_truth)


def _print_sources(ok: list, with_truth: bool) -> None:
    """Per session and label source: cells labelled, positives, and (with truth) their
    agreement, precision and recall against the simulator's truth."""
    head = ["session", "source", "cells", "positive"]
    if with_truth:
        head += ["truth agree", "precision", "recall"]
    rows = []
    for r in ok:
        for name, c in (r.sources or {}).items():
            row = [Path(r.session).name, name, str(c["cells"])]
            row.append(f"{100 * c['positive'] / max(c['cells'], 1):.1f}%")
            if with_truth:
                row += [_percent(c.get(k)) for k in ("agreement", "precision", "recall")]
            rows.append(row)
    if not rows:
        return
    print("label sources:")
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    for row in [head, *rows]:
        print(
            "  ".join(
                x.ljust(w) if i < 2 else x.rjust(w) for i, (x, w) in enumerate(zip(row, widths))
            ).rstrip()
        )


def _percent(value: float | None) -> str:
    """ "97.5%", or "-" for no value (no truth, or nothing to compare: NaN)."""
    if value is None or value != value:
        return "-"
    return f"{100 * value:.1f}%"


def _offset_cell(offset: dict | None) -> str:
    """The table cell of the camera offset applied: "79.9 ms est", "0.0 ms spec", "50.0 ms set"."""
    if not offset:
        return "-"
    short = {"estimate": "est", "spec": "spec", "config": "set", "none": "none"}
    return f"{1e3 * offset['applied_s']:.1f} ms {short.get(offset['source'], offset['source'])}"


def _offset_note(offset: dict | None) -> str:
    """Why an "auto" offset fell back to the spec's calibrated value ("" otherwise)."""
    if not offset or offset.get("source") != "spec" or not offset.get("reason"):
        return ""
    return (
        f"camera offset {1e3 * offset['applied_s']:.1f} ms from the spec"
        f" (camera.time_offset_s): no reliable estimate ({offset['reason']})"
    )


def label(job: LabelJob) -> int:
    """`robot-ssl label` in-process: label every session of `job` (in parallel), print
    the summary table, say each failure in one line; 2 when a session failed, else 0."""
    from robot_ssl.io.labels_file import LabelsWriteError, default_labels_path, require_sessions
    from robot_ssl.io.session_summary import recovered_notes
    from robot_ssl.labelling.batch import label_sessions

    sessions = [str(Path(s)) for s in require_sessions(list(job.sessions), "label", "label")]
    for note in recovered_notes(sessions):  # labels of part of a session: say so
        print(f"robot-ssl label: {note}", file=sys.stderr)
    outs = [str(default_labels_path(s, job.out)) for s in sessions]
    seen: dict[str, str] = {}
    for s, o in zip(sessions, outs):
        key = os.path.abspath(o)
        if key in seen and os.path.abspath(seen[key]) != os.path.abspath(s):
            raise LabelsWriteError(f"{seen[key]} and {s} would both write {o}")
        seen[key] = s
    tasks = list(dict.fromkeys(zip(sessions, outs)))  # each session once
    if job.out:  # one folder for all: one line and exit 2 now, not one failure per session
        from robot_ssl.core.outputs import check_writable

        check_writable(job.out)
    results = label_sessions(
        tasks, job.rule, jobs=job.jobs, truth=job.truth, plots=job.plot, progress=None
    )
    order = {s: i for i, (s, _) in enumerate(tasks)}
    results.sort(key=lambda r: order[r.session])
    for r in results:
        for note in r.notes:
            print(f"robot-ssl label: {Path(r.session).name}: {note}", file=sys.stderr)
    _print_table(results, job.truth)
    failed = [r for r in results if r.error is not None]
    for r in failed:
        print(f"robot-ssl label: {_naming(r.session, r.error)}", file=sys.stderr)
    return 2 if failed else 0


def _naming(session: str, error: str) -> str:
    """`error` naming `session` once: reader errors start with the path already."""
    return error if error.startswith(f"{session}:") else f"{session}: {error}"
