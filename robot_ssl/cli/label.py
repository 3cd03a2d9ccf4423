"""`robot-ssl label SESSION...`: auto-label sessions into `<session>.labels.h5` files.

Sessions are labelled in parallel processes; each gets a labels file (next to
the session, or in --out) and a PNG of label coverage and positive rate per
(sensor, distance). Each session's camera latency is corrected first (estimated
from its turns, else the calibrated camera.time_offset_s; --camera-offset,
--camera-offset-ms). A summary table follows; a session that cannot be
labelled (empty, no odometry, too short, damaged) is reported in one line and
makes the exit status 2, without stopping the others.

Options are generated from `LabelJob` and the rule's `LabelConfig` (cli/config_fields.py):
one option per field (`--tol-y-m`, alias `--tol-y`). In-process:
`robot_ssl.labelling.label_job.label(LabelJob(...))`.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import TYPE_CHECKING

from robot_ssl.cli import argtypes as t
from robot_ssl.cli.config_fields import Flag

if TYPE_CHECKING:
    from robot_ssl.labelling.label_job import LabelJob

HELP = "auto-label sessions from proximity readings, contacts and the floor swept, with odometry"


def _csv_ints(text: str) -> tuple[int, ...]:
    """`--sensors 0,1,2`: one or several comma-separated sensor indices."""
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 0,1,2, got {text!r}") from None


def _distances(text: str) -> tuple[float, ...]:
    """`--distances 0:0.3:0.01` (a grid) or `0.05,0.1` (a list), or several items."""
    from robot_ssl.core.label_grid import LabelConfigError, distance_grid

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


def _sources(text: str) -> tuple[str, ...]:
    """`--sources ir,contact,traversal`: label sources by name, in any order."""
    from robot_ssl.core.label_grid import LabelConfigError, check_sources

    try:
        return check_sources(text)
    except LabelConfigError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("label config: ")) from None


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
        "rule.uncertainty_replays": Flag(
            metavar="K", help="odometry replays giving each label a confidence (0: off)"
        ),
        "rule.uncertainty_scale_std": Flag(metavar="REL", help="per-replay wheel scale error"),
        "rule.uncertainty_step_std": Flag(metavar="REL", help="per-sample wheel speed noise"),
        "rule.uncertainty_seed": Flag(metavar="N", help="seed of the replays"),
        "rule.sources": Flag(
            parse=_sources,
            metavar="ir,contact,traversal",
            help="label sources: ir (proximity readings), contact (detected contacts label "
            "the approach), traversal (floor the body swept is free); default: every source "
            "the session has",
        ),
        "rule.contact_bearing_tol_rad": Flag(
            metavar="RAD", help="a contact labels the sensors facing the touched point within"
        ),
        "rule.traversal_margin_m": Flag(
            metavar="M", help="a sensor's reach must lie this far inside the swept corridor"
        ),
    }


def _milliseconds(text: str) -> float:
    """`--camera-offset-ms MS` as seconds."""
    return t.finite_float(-1000, 1000)(text) / 1000.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    from robot_ssl.cli.config_fields import add_config_options
    from robot_ssl.labelling.label_job import LabelJob

    add_config_options(p, LabelJob, _flags(), prog="robot-ssl label")


def config_from(args: argparse.Namespace) -> LabelJob:
    """The LabelJob of a parsed command line: the rule from --config (if any), with the
    rule's fields given on the command line on top."""
    from robot_ssl.cli.config_fields import given_fields, with_fields
    from robot_ssl.core.label_grid import LabelConfig
    from robot_ssl.labelling.label_job import LabelJob

    given = given_fields(args)
    rule_given = {k[len("rule.") :]: v for k, v in given.items() if k.startswith("rule.")}
    job = LabelJob(**{k: v for k, v in given.items() if "." not in k})
    rule = LabelConfig.load(job.config) if job.config else job.rule
    return replace(job, rule=with_fields(rule, rule_given))


def run(args: argparse.Namespace) -> int:
    from robot_ssl.labelling.label_job import label

    return label(config_from(args))
