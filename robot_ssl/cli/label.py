"""`robot-ssl label SESSION...`: auto-label sessions into `<session>.labels.h5` files.

Sessions are labelled in parallel processes; each gets a labels file (next to
the session, or in --out) and a PNG of label coverage and positive rate per
(sensor, distance). Each session's camera latency is corrected first (estimated
from its turns, else the calibrated camera.time_offset_s; --camera-offset,
--camera-offset-ms). A summary table follows; a session that cannot be
labelled (empty, no odometry, too short, damaged) is reported in one line and
makes the exit status 2, without stopping the others.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

HELP = "auto-label sessions from proximity readings and odometry"
CONFIG_FIELDS = True  # every LabelConfig field: --min-duration-s X, --distances-m ..., ...


def _config_for_help() -> tuple[type, object]:
    from robot_ssl.labelling.labeller import LabelConfig

    return LabelConfig, LabelConfig()


def add_arguments(p: argparse.ArgumentParser) -> None:
    from robot_ssl.cli import argtypes as t
    from robot_ssl.cli.config_fields import add_config_help
    from robot_ssl.core.label_grid import LabelConfig

    def bounds_of(name: str):  # the type of a flag setting LabelConfig.NAME: its bounds
        return t.for_field(LabelConfig, name)

    add_config_help(p, _config_for_help, "robot-ssl label")

    p.add_argument("sessions", nargs="+", metavar="SESSION", help="session files (.h5)")
    p.add_argument(
        "--out", metavar="DIR", help="write labels and plots here (default: beside each session)"
    )
    p.add_argument(
        "--jobs",
        "-j",
        type=t.THREADS,
        metavar="N",
        help="parallel processes (default: cores)",
    )
    p.add_argument(
        "--config", metavar="FILE", help="labelling config (YAML or JSON); flags override it"
    )
    p.add_argument("--truth", action="store_true", help="compare labels with simulator truth")
    off = p.add_mutually_exclusive_group()
    off.add_argument(
        "--camera-offset",
        choices=("auto", "spec"),
        help="camera latency correction: auto = estimate it from each session's images and"
        " fall back to the session's calibrated camera.time_offset_s when unreliable"
        " (default); spec = always the calibrated value",
    )
    off.add_argument(
        "--camera-offset-ms",
        type=t.finite_float(min=-1000, max=1000),
        metavar="MS",
        help="camera latency correction: this fixed offset in milliseconds (frames stamped"
        " t are matched with the poses at t - MS; 0 turns the correction off)",
    )
    p.add_argument("--no-plot", action="store_true", help="do not write the PNG")
    g = p.add_argument_group("labelling rule (defaults: the original work's)")
    g.add_argument(
        "--sensors", metavar="I,J,..", help="proximity sensor indices (default 0,1,2,3,4)"
    )
    g.add_argument(
        "--distances", metavar="START:STOP:STEP", help="distance bins in m, or a list a,b,c"
    )
    g.add_argument(
        "--tol-d", type=bounds_of("tol_d_m"), metavar="M", help="|dx - d| tolerance (default 0.01)"
    )
    g.add_argument(
        "--tol-y", type=bounds_of("tol_y_m"), metavar="M", help="|dy| tolerance (default 0.01)"
    )
    g.add_argument(
        "--tol-theta",
        type=bounds_of("tol_theta_rad"),
        metavar="RAD",
        help="|dtheta| tolerance (default 0.05)",
    )
    g.add_argument(
        "--threshold",
        type=bounds_of("threshold"),
        metavar="RAW",
        help="obstacle when reading > RAW (default 0)",
    )
    g.add_argument(
        "--horizon",
        type=bounds_of("horizon_s"),
        metavar="S",
        help="look-ahead in seconds (default 20)",
    )
    g.add_argument(
        "--max-gap",
        type=bounds_of("max_gap_s"),
        metavar="S",
        help="odometry gap that splits (default 0.5)",
    )
    g.add_argument(
        "--max-backtrack",
        type=bounds_of("max_backtrack_m"),
        metavar="M",
        help="backward-motion allowance (default 0.01)",
    )


def _parse_floats(text: str, what: str) -> tuple[float, ...]:
    from robot_ssl.labelling.labeller import LabelConfigError, distance_grid

    try:
        if ":" in text:
            parts = [float(x) for x in text.split(":")]
            if len(parts) != 3:
                raise ValueError
            return distance_grid(*parts)
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise LabelConfigError(f"{what}: expected START:STOP:STEP or a,b,c, got {text!r}") from None


def config_from_args(args: argparse.Namespace):
    """LabelConfig from --config (if any) with the flags applied on top."""
    from robot_ssl.labelling.labeller import LabelConfig, LabelConfigError

    cfg = LabelConfig.load(args.config) if args.config else LabelConfig()
    overrides: dict[str, Any] = {
        "tol_d_m": args.tol_d,
        "tol_y_m": args.tol_y,
        "tol_theta_rad": args.tol_theta,
        "threshold": args.threshold,
        "horizon_s": args.horizon,
        "max_gap_s": args.max_gap,
        "max_backtrack_m": args.max_backtrack,
    }
    if args.sensors:
        try:
            overrides["sensor_indices"] = tuple(
                int(x) for x in args.sensors.split(",") if x.strip()
            )
        except ValueError:
            raise LabelConfigError(
                f"--sensors: expected integers like 0,1,2, got {args.sensors!r}"
            ) from None
    if args.distances:
        overrides["distances_m"] = _parse_floats(args.distances, "--distances")
    if getattr(args, "camera_offset", None) is not None:
        overrides["camera_offset"] = args.camera_offset
    if getattr(args, "camera_offset_ms", None) is not None:
        overrides["camera_offset"] = args.camera_offset_ms / 1000.0
    return cfg.with_overrides(**overrides)


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


def run(args: argparse.Namespace) -> int:
    from robot_ssl.cli.config_fields import apply_config_fields
    from robot_ssl.io.labels_file import LabelsWriteError, default_labels_path, require_sessions
    from robot_ssl.io.session_summary import recovered_notes
    from robot_ssl.labelling.batch import label_sessions
    from robot_ssl.labelling.labeller import LabelConfig

    config = apply_config_fields(
        LabelConfig, config_from_args(args), args.config_fields, "robot-ssl label"
    )
    sessions = [str(Path(s)) for s in require_sessions(args.sessions, "label", "label")]
    for note in recovered_notes(sessions):  # labels of part of a session: say so
        print(f"robot-ssl label: {note}", file=sys.stderr)
    outs = [str(default_labels_path(s, args.out)) for s in sessions]
    seen: dict[str, str] = {}
    for s, o in zip(sessions, outs):
        key = os.path.abspath(o)
        if key in seen and os.path.abspath(seen[key]) != os.path.abspath(s):
            raise LabelsWriteError(f"{seen[key]} and {s} would both write {o}")
        seen[key] = s
    tasks = list(dict.fromkeys(zip(sessions, outs)))  # each session once
    if args.out:  # one folder for all: one line and exit 2 now, not one failure per session
        from robot_ssl.io.outputs import check_writable

        check_writable(args.out)
    results = label_sessions(
        tasks, config, jobs=args.jobs, truth=args.truth, plots=not args.no_plot, progress=None
    )
    order = {s: i for i, (s, _) in enumerate(tasks)}
    results.sort(key=lambda r: order[r.session])
    _print_table(results, args.truth)
    failed = [r for r in results if r.error is not None]
    for r in failed:
        print(f"robot-ssl label: {_naming(r.session, r.error)}", file=sys.stderr)
    return 2 if failed else 0


def _naming(session: str, error: str) -> str:
    """`error` naming `session` once: reader errors start with the path already."""
    return error if error.startswith(f"{session}:") else f"{session}: {error}"
