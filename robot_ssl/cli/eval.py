"""`robot-ssl eval`: ROC AUC per (sensor, distance) of a detector on labelled sessions.

Every EvalConfig field (robot_ssl/learning/eval_config.py) is an option, generated from
the dataclass; the README's `--json`, `--out`, `--labels`, `--threads`, `--quiet`,
`--no-cache` are aliases. In-process: `robot_ssl.learning.evaluate.evaluate_config(cfg)`.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from robot_ssl.cli.config_fields import Flag

if TYPE_CHECKING:
    from robot_ssl.learning.eval_config import EvalConfig

HELP = "evaluate a detector: ROC AUC per (sensor, distance)"


def _flags() -> dict[str, Flag]:
    """EvalConfig's fields as the README spells them (every other one: --field-name)."""
    from robot_ssl.cli.train import default_cache_dir

    return {
        "model": Flag(
            required=True, metavar="M", help="checkpoint (.pt), TorchScript (.ts) or ONNX (.onnx)"
        ),
        "data": Flag(required=True, metavar="PATH", help="session files or folders"),
        "labels_dir": Flag(
            aliases=("--labels",),
            metavar="DIR",
            help="folder of <stem>.labels.h5 (default: beside each session)",
        ),
        "cache_dir": Flag(
            off=("--no-cache",),
            metavar="DIR",
            help=f"cache of decoded frames ({default_cache_dir()} unless given; --no-cache: none)",
        ),
        "json_out": Flag(aliases=("--json",), metavar="OUT", help="write the JSON report here"),
        "out_dir": Flag(
            aliases=("--out",),
            metavar="DIR",
            help="write report.json, auc_heatmap.png, auc_vs_distance.png",
        ),
        "bootstrap": Flag(help="bootstrap replicates (0: none)"),
        "block_s": Flag(
            metavar="S",
            help="block bootstrap: resample contiguous S-second blocks of each session "
            "(frames at 30 fps are not independent; 0: resample single frames)",
        ),
        "truth": Flag(
            help="also score against simulator truth (sessions that have it), per world and band"
        ),
        "num_threads": Flag(aliases=("--threads",), help="inference threads (runtime default)"),
        "progress": Flag(off=("--quiet",), help="progress bars and the table"),
        "allow_viewpoint_mismatch": Flag(
            help="use the model although it was trained with another camera viewpoint (size, "
            "field of view, mount, pitch) than the sessions': its probabilities are then "
            "unreliable"
        ),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from robot_ssl.cli.config_fields import add_config_options
    from robot_ssl.learning.eval_config import EvalConfig

    add_config_options(parser, EvalConfig, _flags(), prog="robot-ssl eval")


def config_from(args: argparse.Namespace) -> EvalConfig:
    """The EvalConfig of a parsed command line (frames cached by default, as for train)."""
    from robot_ssl.cli.config_fields import config_from_args
    from robot_ssl.cli.train import default_cache_dir
    from robot_ssl.learning.eval_config import EvalConfig

    return config_from_args(EvalConfig, args, cli_defaults={"cache_dir": str(default_cache_dir())})


def _fmt(v: float | None) -> str:
    return "  n/a" if v is None else f"{v:.3f}"


def _with_ci(v: float | None, ci: list[float | None]) -> str:
    lo, hi = ci
    return f"{_fmt(v)} [{_fmt(lo)}, {_fmt(hi)}]" if lo is not None else f"{_fmt(v)}"


def _print_truth_table(comparison: dict) -> None:
    """World x band: AUC vs the auto-labels and vs simulator truth, with intervals."""
    ci = f"{100 * comparison['bootstrap']['confidence']:g}% CI"
    print(
        f"AUC vs auto-labels and vs simulator truth ({ci}, "
        f"{comparison['bootstrap']['block_s']:g} s blocks)"
    )
    print(f"  {'world':<16} {'band':>6}  {'vs labels':<22}  vs truth")
    groups = {"all": comparison["overall"], **comparison["by_world"]}
    for name, g in groups.items():
        rows = [("mean", "mean_auc", "mean_auc_ci", None)]
        rows += [(b, "auc_by_band", "auc_by_band_ci", b) for b in g["labels"]["auc_by_band"]]
        for i, (label, key, ci_key, band) in enumerate(rows):
            cells = []
            for part in (g["labels"], g["truth"]):
                if part is None:
                    cells.append("no truth")
                elif band is None:
                    cells.append(_with_ci(part[key], part[ci_key]))
                else:
                    cells.append(_with_ci(part[key][band], part[ci_key][band]))
            world = name if i == 0 else ""
            print(f"  {world:<16} {label:>6}  {cells[0]:<22}  {cells[1]}")


def run(args: argparse.Namespace) -> int:
    from robot_ssl.cli.train import print_recovered_notes
    from robot_ssl.learning.evaluate import evaluate_config

    cfg = config_from(args)
    print_recovered_notes(list(cfg.data), "eval")
    report = evaluate_config(cfg)
    lo, hi = report["mean_auc_ci"]
    ci = f" [{_fmt(lo)}, {_fmt(hi)}]" if lo is not None else ""
    print(
        f"{report['num_frames']} frames, {report['num_cells_defined']}/{report['num_cells']} cells "
        f"with both classes ({report['num_cells_single_class']} single-class)"
    )
    print(f"mean AUC {_fmt(report['mean_auc'])}{ci}")
    for band, v in report["auc_by_band"].items():
        lo, hi = report["auc_by_band_ci"][band]
        ci = f" [{_fmt(lo)}, {_fmt(hi)}]" if lo is not None else ""
        print(f"  {band:>6} cm  {_fmt(v)}{ci}")
    if "truth" in report:
        _print_truth_table(report["truth"])
    return 0
