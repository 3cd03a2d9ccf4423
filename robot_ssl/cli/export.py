"""`robot-ssl export`: a checkpoint to TorchScript or ONNX, checked against PyTorch."""

from __future__ import annotations

import argparse

HELP = "export a detector to TorchScript or ONNX"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from robot_ssl.cli import argtypes as t

    parser.add_argument("--model", required=True, help="training checkpoint (.pt)")
    parser.add_argument("--format", choices=("torchscript", "onnx"), required=True)
    parser.add_argument("--out", metavar="FILE", help="output file (default: MODEL with .ts/.onnx)")
    parser.add_argument(
        "--check-data",
        nargs="+",
        metavar="SESSION",
        help="also check parity on (up to 64) frames of these sessions",
    )
    parser.add_argument(
        "--tolerance", type=t.positive_float(), default=1e-4, help="max abs difference allowed"
    )


def run(args: argparse.Namespace) -> int:
    from robot_ssl.learning.dataset import sample_session_frames
    from robot_ssl.learning.export import export_model

    check = sample_session_frames(args.check_data) if args.check_data else None
    path = export_model(
        args.model, args.format, args.out, check_images=check, tolerance=args.tolerance
    )
    print(f"wrote {path} (parity with PyTorch checked, tolerance {args.tolerance:g})")
    return 0
