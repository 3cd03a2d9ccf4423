"""`robot-ssl label SESSION...`: auto-label sessions into `<session>.labels.h5` files.

Sessions are labelled in parallel processes; each gets a labels file (next to
the session, or in --out) and a PNG of label coverage and positive rate per
(sensor, distance). Each session's camera latency is corrected first (estimated
from its turns, else the calibrated camera.time_offset_s; --camera-offset,
--camera-offset-ms). A summary table follows; a session that cannot be
labelled (empty, no odometry, too short, damaged) is reported in one line and
makes the exit status 2, without stopping the others.

Options are generated from `LabelJob` and the rule's `LabelConfig` (cli/config_fields.py):
one option per field (`--tol-y-m`, alias `--tol-y`). In-process: `label(LabelJob(...))`.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from robot_ssl.cli import argtypes as t
from robot_ssl.cli.config_fields import Flag
from robot_ssl.core.config import MAX_THREADS, bounded, check_bounds
from robot_ssl.core.label_grid import LabelConfig, LabelConfigError

HELP = "auto-label sessions from proximity readings and odometry"


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


def _csv_ints(text: str) -> tuple[int, ...]:
    """`--sensors 0,1,2`: one or several comma-separated sensor indices."""
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 0,1,2, got {text!r}") from None


def _distances(text: str) -> tuple[float, ...]:
    """`--distances 0:0.3:0.01` (a grid) or `0.05,0.1` (a list), or several items."""
    from robot_ssl.core.label_grid import distance_grid

    try:
        if ":" in text:
            parts = [float(x) for x in text.split(":")]
            if len(parts) != 3:
                raise ValueError
            return distance_grid(*parts)
        return tuple(float(x) for x in text.split(",") if x.strip())
    except LabelConfigError as e:  # a grid of too many bins, a step <= 0
        raise argparse.ArgumentTypeError(str(e)) from None
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected START:STOP:STEP or a,b,c, got {text!r}"
        ) from None


def _camera_offset(text: str) -> str | float:
    """`--camera-offset auto|spec|SECONDS`."""
    from robot_ssl.core.label_grid import CAMERA_OFFSET_MODES

    if text in CAMERA_OFFSET_MODES:
        return text
    return t.finite_float(-1, 1)(text)


def _flags() -> dict[str, Flag]:
    """LabelJob's fields as the README spells them; the rule's fields without `rule.`."""
    return {
        "sessions": Flag(positional=True, metavar="SESSION", help="session files (.h5)"),
        "out": Flag(metavar="DIR", help="write labels and plots here (default: beside each)"),
        "jobs": Flag(aliases=("-j",), metavar="N", help="parallel processes (default: cores)"),
        "config": Flag(metavar="FILE", help="labelling rule file (YAML or JSON); options override"),
        "truth": Flag(help="compare labels with simulator truth"),
        "plot": Flag(off=("--no-plot",), help="write the coverage PNG"),
        "rule": Flag(flatten=True),
        "rule.sensor_indices": Flag(
            aliases=("--sensors",), parse=_csv_ints, metavar="I,J,..", help="sensor indices"
        ),
        "rule.distances_m": Flag(
            aliases=("--distances",),
            parse=_distances,
            metavar="START:STOP:STEP",
            help="distance bins in m, or a list a,b,c",
        ),
        "rule.tol_d_m": Flag(aliases=("--tol-d",), metavar="M", help="|dx - d| tolerance"),
        "rule.tol_y_m": Flag(aliases=("--tol-y",), metavar="M", help="|dy| tolerance"),
        "rule.tol_theta_rad": Flag(
            aliases=("--tol-theta",), metavar="RAD", help="|dtheta| tolerance"
        ),
        "rule.threshold": Flag(metavar="RAW", help="obstacle when reading > RAW"),
        "rule.horizon_s": Flag(aliases=("--horizon",), metavar="S", help="look-ahead"),
        "rule.max_gap_s": Flag(
            aliases=("--max-gap",), metavar="S", help="odometry gap that splits"
        ),
        "rule.max_backtrack_m": Flag(
            aliases=("--max-backtrack",), metavar="M", help="backward-motion allowance"
        ),
        "rule.camera_offset": Flag(
            aliases=("--camera-offset-ms",),
            parse=_camera_offset,
            alias_parse={"--camera-offset-ms": _milliseconds},
            metavar="auto|spec|S",
            help="camera latency correction: auto = estimate it from each session's images, "
            "falling back to the session's calibrated camera.time_offset_s; spec = always the "
            "calibrated value; a number = this offset in seconds (--camera-offset-ms MS: in "
            "milliseconds; 0 turns the correction off)",
        ),
    }


def _milliseconds(text: str) -> float:
    """`--camera-offset-ms MS` as seconds."""
    return t.finite_float(-1000, 1000)(text) / 1000.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    from robot_ssl.cli.config_fields import add_config_options

    add_config_options(p, LabelJob, _flags(), prog="robot-ssl label")


def config_from(args: argparse.Namespace) -> LabelJob:
    """The LabelJob of a parsed command line: the rule from --config (if any), with the
    rule's fields given on the command line on top."""
    from robot_ssl.cli.config_fields import given_fields, with_fields

    given = given_fields(args)
    rule_given = {k[len("rule.") :]: v for k, v in given.items() if k.startswith("rule.")}
    job = LabelJob(**{k: v for k, v in given.items() if "." not in k})
    rule = LabelConfig.load(job.config) if job.config else job.rule
    return replace(job, rule=with_fields(rule, rule_given))


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
    _print_table(results, job.truth)
    failed = [r for r in results if r.error is not None]
    for r in failed:
        print(f"robot-ssl label: {_naming(r.session, r.error)}", file=sys.stderr)
    return 2 if failed else 0


def run(args: argparse.Namespace) -> int:
    return label(config_from(args))


def _naming(session: str, error: str) -> str:
    """`error` naming `session` once: reader errors start with the path already."""
    return error if error.startswith(f"{session}:") else f"{session}: {error}"
