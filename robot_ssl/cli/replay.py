"""`robot-ssl replay SESSION`: a video of a session with trajectory, labels and predictions."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from robot_ssl.io.session import IntactFrames

HELP = "replay a session (trajectory, camera, labels, predictions) to a video"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from robot_ssl.cli import argtypes as t

    p.add_argument("session", help="session file (.h5)")
    p.add_argument("--model", help="detector (checkpoint .pt, TorchScript or ONNX) to overlay")
    p.add_argument(
        "--allow-viewpoint-mismatch",
        action="store_true",
        help="use the model although it was trained with another camera viewpoint (size, "
        "field of view, mount, pitch) than this camera's: its probabilities are then unreliable",
    )
    p.add_argument(
        "--labels",
        help="labels file of this session (default: <session>.labels.h5 when it exists);"
        " labels of another session (size, SHA-256) are refused",
    )
    p.add_argument("--video", help="output video (.mp4 or .avi); default <session>.replay.mp4")
    p.add_argument(
        "--rerun",
        metavar="FILE.rrd",
        help="write a Rerun recording (camera, grids, trajectory, IR readings) instead of a video",
    )
    p.add_argument("--speed", type=t.positive_float(), default=1.0, help="playback speed factor")
    p.add_argument("--max-frames", type=t.positive_int(), help="stop after this many frames")
    p.add_argument(
        "--window",
        action="store_true",
        help="show in a window at recorded timing (needs an OpenCV build with GUI and a display)",
    )
    p.add_argument(
        "--live",
        action="store_true",
        help="feed recorded frames through the live loop at recorded timing (needs --model)",
    )
    p.add_argument(
        "--learn",
        metavar="DIR",
        help="with --live: label frames online and fine-tune the model (a .pt checkpoint) "
        "while replaying; checkpoints go to DIR/online_last.pt",
    )


def _summary(line: str, intact: IntactFrames) -> str:
    """`line` and, when damaged frames were skipped, the session's line about them (raises
    DamagedSessionError when every frame tried was damaged)."""
    notes: list[str] = []
    intact.report(note=notes.append)
    return "\n".join([line, *notes])


def _check_viewpoint(predictor: Any, reader: Any, args: argparse.Namespace) -> None:
    """The model's camera viewpoint against the session's (robot_ssl.inference.viewpoint)."""
    from robot_ssl.inference.viewpoint import check_model_camera

    check_model_camera(
        predictor,
        reader.camera,
        f"the camera of {args.session}",
        allow=args.allow_viewpoint_mismatch,
        prog="robot-ssl replay",
        model_name=str(args.model),
    )


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from robot_ssl.core.errors import RobotSSLError
    from robot_ssl.io.labels_file import (
        check_labels_of,
        default_labels_path,
        is_labels_file,
        read_labels,
    )
    from robot_ssl.io.session import IntactFrames, SessionReader
    from robot_ssl.live.replay import ReplayGrids, render_replay, replay_live

    session = Path(args.session)
    if args.speed <= 0:
        raise RobotSSLError("--speed must be > 0")
    if is_labels_file(session):
        raise RobotSSLError(
            f"{session}: a labels file, not a session (give the session; its labels are"
            " found beside it, or pass --labels)"
        )
    with SessionReader(session) as reader:
        intact = IntactFrames(reader)  # damaged frames: skipped, counted in the summary
        if reader.recovered:
            print(
                f"robot-ssl replay: {session}: recovered: {reader.recovery_summary}",
                file=sys.stderr,
            )
        labels_path = Path(args.labels) if args.labels else default_labels_path(session)
        if args.labels and not labels_path.exists():
            raise RobotSSLError(f"{labels_path}: no such labels file")
        labels = read_labels(labels_path) if labels_path.exists() else None
        warning = check_labels_of(labels, labels_path, session) if labels is not None else None
        if warning:
            print(f"robot-ssl replay: {warning}", file=sys.stderr)
        predictor = None
        if args.learn and not (args.live and args.model):
            raise RobotSSLError("--learn needs --live and --model")
        if args.learn:
            from robot_ssl.learning.online import learning_for

            predictor, learning = learning_for(
                args.model, args.learn, camera_offset_s=reader.camera.time_offset_s
            )
            _check_viewpoint(predictor, reader, args)
            learning.start()
            try:
                result = replay_live(
                    reader,
                    predictor,
                    speed=args.speed,
                    observers=[learning],
                    max_frames=args.max_frames,
                    intact=intact,
                )
            finally:
                learning.close()
            print(_summary(f"live replay: {result.summary()}", intact))
            print(learning.end_line())
            learning.check_saved()
            return 0
        if args.model:
            from robot_ssl.learning.torch_predictor import load_any_predictor

            predictor = load_any_predictor(args.model)
            _check_viewpoint(predictor, reader, args)
        if args.live:
            if predictor is None:
                raise RobotSSLError("--live needs --model")
            result = replay_live(
                reader, predictor, speed=args.speed, max_frames=args.max_frames, intact=intact
            )
            print(_summary(f"live replay: {result.summary()}", intact))
            return 0
        video = Path(args.video) if args.video else session.with_suffix(".replay.mp4")
        if args.rerun:
            video = Path(args.rerun)
        if not args.window:  # an unwritable folder: one line now, not after the predictions
            from robot_ssl.core.outputs import check_writable

            check_writable(video.parent)
        grids = None
        if labels is not None or predictor is not None:
            lab = {}
            if labels is not None:
                lab = {int(i): g for i, g in zip(labels.frame_index, labels.labels)}
            prob = {}
            if predictor is not None:
                n = (
                    reader.num_frames
                    if args.max_frames is None
                    else min(args.max_frames, reader.num_frames)
                )
                for start in tqdm(
                    range(0, n, 64), desc="predict", unit="batch", file=sys.stderr, disable=None
                ):
                    frames = {i: intact.get(i) for i in range(start, min(start + 64, n))}
                    idx = [i for i, frame in frames.items() if frame is not None]
                    if idx:
                        p = predictor.predict(np.stack([frames[i] for i in idx]))
                        prob.update(zip(idx, p))
            cfg = predictor.config if predictor is not None else None
            sensors = labels.sensor_indices if labels is not None else cfg.sensor_indices
            distances = labels.distances_m if labels is not None else cfg.distances_m
            grids = ReplayGrids(
                np.asarray(sensors if sensors is not None else range(5)),
                np.asarray(distances if distances is not None else np.arange(31) * 0.01),
                lab,
                prob,
            )
        if args.rerun:
            from robot_ssl.live.rerun_log import write_rerun

            counts = write_rerun(reader, video, grids, args.max_frames)
            print(_summary(f"wrote {video} ({counts['camera/image']} frames)", intact))
            return 0
        if args.window:
            from robot_ssl.live.replay import show_replay

            n = show_replay(reader, grids, args.speed, args.max_frames, intact)
            print(_summary(f"showed {n} frames", intact))
            return 0
        total = (
            reader.num_frames
            if args.max_frames is None
            else min(args.max_frames, reader.num_frames)
        )
        with tqdm(total=total, desc="replay", unit="frame", file=sys.stderr, disable=None) as bar:
            n = render_replay(reader, video, grids, args.speed, args.max_frames, bar.update, intact)
    print(_summary(f"wrote {video} ({n} frames)", intact))
    return 0
