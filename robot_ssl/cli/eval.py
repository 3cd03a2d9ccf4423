"""`robot-ssl eval`: ROC AUC per (sensor, distance) of a detector on labelled sessions."""

from __future__ import annotations

import argparse

HELP = "evaluate a detector: ROC AUC per (sensor, distance)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from robot_ssl.cli import argtypes as t
    from robot_ssl.cli.train import add_data_arguments

    parser.add_argument(
        "--model", required=True, help="checkpoint (.pt), TorchScript (.ts) or ONNX (.onnx)"
    )
    add_data_arguments(parser)
    parser.add_argument("--json", metavar="OUT", help="write the JSON report here")
    parser.add_argument(
        "--out", metavar="DIR", help="write report.json, auc_heatmap.png, auc_vs_distance.png"
    )
    parser.add_argument(
        "--bootstrap", type=t.BOOTSTRAP, default=1000, help="bootstrap replicates (0: none)"
    )
    parser.add_argument(
        "--confidence",
        type=t.finite_float(0, 1, min_inclusive=False, max_inclusive=False),
        default=0.95,
    )
    parser.add_argument(
        "--block-s",
        type=t.finite_float(0, None),
        default=10.0,
        metavar="S",
        help="block bootstrap: resample contiguous S-second blocks of each session "
        "(frames at 30 fps are not independent; 0: resample single frames) [10]",
    )
    parser.add_argument(
        "--truth",
        action="store_true",
        help="also score against simulator truth (sessions that have it), per world and band",
    )
    parser.add_argument("--seed", type=t.SEED, default=0)
    parser.add_argument("--batch-size", type=t.positive_int(), default=256)
    parser.add_argument(
        "--threads", type=t.THREADS, default=None, help="inference threads (runtime default)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars or table")
    parser.add_argument(
        "--allow-viewpoint-mismatch",
        action="store_true",
        help="use the model although it was trained with another camera viewpoint (size, "
        "field of view, mount, pitch) than the sessions': its probabilities are then unreliable",
    )


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
    from robot_ssl.cli.train import cache_dir_from, print_recovered_notes
    from robot_ssl.learning.evaluate import evaluate

    print_recovered_notes(args.data, "eval")
    report = evaluate(
        args.model,
        args.data,
        labels_dir=args.labels,
        cache_dir=cache_dir_from(args),
        json_out=args.json,
        out_dir=args.out,
        n_bootstrap=args.bootstrap,
        confidence=args.confidence,
        seed=args.seed,
        batch_size=args.batch_size,
        num_threads=args.threads,
        progress=not args.quiet,
        truth=args.truth,
        block_s=args.block_s,
        allow_viewpoint_mismatch=args.allow_viewpoint_mismatch,
    )
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
