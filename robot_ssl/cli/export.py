"""`robot-ssl export`: a checkpoint to TorchScript or ONNX, checked against PyTorch; or
`robot-ssl export S.h5 OUT.mcap [--format rosbag2]`: a session as MCAP or a ROS 2 bag
(robot_ssl/interop/export_mcap.py)."""

from __future__ import annotations

import argparse

from robot_ssl.core.errors import RobotSSLError

HELP = "export a detector to TorchScript or ONNX, or a session (.h5) to MCAP or a ROS 2 bag"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from robot_ssl.cli import argtypes as t

    parser.add_argument(
        "session", nargs="*", metavar="S.h5 OUT", help="a session and its MCAP / ROS 2 bag"
    )
    parser.add_argument("--model", help="training checkpoint (.pt)")
    parser.add_argument("--format", choices=("torchscript", "onnx", "mcap", "rosbag2"))
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
    if args.session:
        return _run_session(args)
    if not args.model or args.format not in ("torchscript", "onnx"):
        raise UsageError("--model and --format torchscript|onnx are required")
    from robot_ssl.learning.dataset import sample_session_frames
    from robot_ssl.learning.export import export_model

    check = sample_session_frames(args.check_data) if args.check_data else None
    path = export_model(
        args.model, args.format, args.out, check_images=check, tolerance=args.tolerance
    )
    print(f"wrote {path} (parity with PyTorch checked, tolerance {args.tolerance:g})")
    return 0


def _run_session(args: argparse.Namespace) -> int:
    """`export S.h5 OUT`: the session as MCAP (default) or a ROS 2 bag folder."""
    from robot_ssl.interop.export_mcap import SessionExport, export_session

    if len(args.session) != 2 or not args.session[0].endswith(".h5"):
        raise UsageError("a session export takes S.h5 OUT")
    fmt = args.format or "mcap"
    if fmt not in ("mcap", "rosbag2"):
        raise UsageError("a session exports as --format mcap or rosbag2")
    path = export_session(SessionExport(args.session[0], args.session[1], fmt))
    print(f"wrote {path}")
    return 0


class UsageError(RobotSSLError):
    """An export command line that names neither a model nor a session export."""
