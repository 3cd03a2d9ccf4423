"""`robot-ssl replay` as a library function: `replay(ReplayJob(...))`, a session to a video,
a window, a Rerun recording, or through the live loop (`live`, learning with `learn`).

The rendering and the live playback are robot_ssl/live/replay.py; this module chooses
between them, checks the labels and the model against the session (labels of another
session are refused, a model of another camera viewpoint too unless allowed), predicts
the grids and says the result in one line (with the damaged frames skipped).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robot_ssl.core.config import MAX_FRAMES, bounded, check_bounds
from robot_ssl.core.errors import RobotSSLError
from robot_ssl.learning.learn_config import LearnConfig

__all__ = ["ReplayError", "ReplayJob", "replay"]


class ReplayError(RobotSSLError):
    """Bad settings for `robot-ssl replay` (one line, exit status 2)."""


@dataclass(frozen=True)
class ReplayJob:
    """What `robot-ssl replay` does with `session` (.h5).

    `model` a detector to overlay (or to drive the live loop); `allow_viewpoint_mismatch`
    use a model of another camera; `labels` the session's labels file (None: the one
    beside it, if any); `video` the output (None: <session>.replay.mp4); `rerun` a .rrd
    file instead of a video; `speed` the playback factor; `max_frames` stop after so
    many; `window` show on screen; `live` feed the frames through the live loop at
    recorded timing (needs `model`); `learn` with `live`: learn while replaying into
    `learn.out_dir`.
    """

    session: str = ""
    model: str | None = None
    allow_viewpoint_mismatch: bool = False
    labels: str | None = None
    video: str | None = None
    rerun: str | None = None
    speed: float = bounded(1.0, 0, 1000, min_inclusive=False)
    max_frames: int | None = bounded(None, 1, MAX_FRAMES)
    window: bool = False
    live: bool = False
    learn: LearnConfig = field(default_factory=LearnConfig)

    def __post_init__(self) -> None:
        check_bounds(self, "replay", ReplayError)
        if self.learn.out_dir and not (self.live and self.model):
            raise ReplayError("--learn needs --live and --model")
        if self.live and not self.model:
            raise ReplayError("--live needs --model")


def _summary(line: str, intact: Any) -> str:
    """`line` and, when damaged frames were skipped, the session's line about them (raises
    DamagedSessionError when every frame tried was damaged)."""
    notes: list[str] = []
    intact.report(note=notes.append)
    return "\n".join([line, *notes])


def _check_viewpoint(predictor: Any, reader: Any, job: ReplayJob) -> None:
    """The model's camera viewpoint against the session's (robot_ssl.inference.viewpoint)."""
    from robot_ssl.inference.viewpoint import check_model_camera

    check_model_camera(
        predictor,
        reader.camera,
        f"the camera of {job.session}",
        allow=job.allow_viewpoint_mismatch,
        prog="robot-ssl replay",
        model_name=str(job.model),
    )


def _labels(job: ReplayJob, session: Path) -> Any:
    """The session's labels (None: none), refusing a named file that is missing; a labels
    file of another session (size, SHA-256) is said on stderr."""
    from robot_ssl.io.labels_file import check_labels_of, default_labels_path, read_labels

    labels_path = Path(job.labels) if job.labels else default_labels_path(session)
    if job.labels and not labels_path.exists():
        raise ReplayError(f"{labels_path}: no such labels file")
    labels = read_labels(labels_path) if labels_path.exists() else None
    warning = check_labels_of(labels, labels_path, session) if labels is not None else None
    if warning:
        print(f"robot-ssl replay: {warning}", file=sys.stderr)
    return labels


def _learn_live(job: ReplayJob, reader: Any, intact: Any) -> None:
    """The frames through the live loop with a learner attached (`live` and `learn`)."""
    from robot_ssl.learning.online import learning_for
    from robot_ssl.live.replay import replay_live

    predictor, learning = learning_for(
        job.model,
        job.learn.out_dir,
        camera_offset_s=reader.camera.time_offset_s,
        config=job.learn,
    )
    _check_viewpoint(predictor, reader, job)
    learning.start()
    try:
        result = replay_live(
            reader,
            predictor,
            speed=job.speed,
            observers=[learning],
            max_frames=job.max_frames,
            intact=intact,
        )
    finally:
        learning.close()
    print(_summary(f"live replay: {result.summary()}", intact))
    print(learning.end_line())
    learning.check_saved()


def _grids(reader: Any, labels: Any, predictor: Any, intact: Any, max_frames: int | None):
    """The label and predicted grids of each frame (ReplayGrids; None: neither)."""
    import numpy as np
    from tqdm import tqdm

    from robot_ssl.live.replay import ReplayGrids

    if labels is None and predictor is None:
        return None
    lab = {}
    if labels is not None:
        lab = {int(i): g for i, g in zip(labels.frame_index, labels.labels)}
    prob = {}
    if predictor is not None:
        n = reader.num_frames if max_frames is None else min(max_frames, reader.num_frames)
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
    return ReplayGrids(
        np.asarray(sensors if sensors is not None else range(5)),
        np.asarray(distances if distances is not None else np.arange(31) * 0.01),
        lab,
        prob,
    )


def replay(job: ReplayJob) -> int:
    """Replay `job.session` as `job` says; prints what was written or shown (0)."""
    from tqdm import tqdm

    from robot_ssl.io.labels_file import is_labels_file
    from robot_ssl.io.session import IntactFrames, SessionReader
    from robot_ssl.live.replay import render_replay, replay_live

    session = Path(job.session)
    if is_labels_file(session):
        raise ReplayError(
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
        labels = _labels(job, session)
        if job.learn.out_dir:
            _learn_live(job, reader, intact)
            return 0
        predictor = None
        if job.model:
            from robot_ssl.learning.torch_predictor import load_any_predictor

            predictor = load_any_predictor(job.model)
            _check_viewpoint(predictor, reader, job)
        if job.live:
            result = replay_live(
                reader, predictor, speed=job.speed, max_frames=job.max_frames, intact=intact
            )
            print(_summary(f"live replay: {result.summary()}", intact))
            return 0
        video = Path(job.video) if job.video else session.with_suffix(".replay.mp4")
        if job.rerun:
            video = Path(job.rerun)
        if not job.window:  # an unwritable folder: one line now, not after the predictions
            from robot_ssl.core.outputs import check_writable

            check_writable(video.parent)
        grids = _grids(reader, labels, predictor, intact, job.max_frames)
        if job.rerun:
            from robot_ssl.live.rerun_log import write_rerun

            counts = write_rerun(reader, video, grids, job.max_frames)
            print(_summary(f"wrote {video} ({counts['camera/image']} frames)", intact))
            return 0
        if job.window:
            from robot_ssl.live.replay import show_replay

            n = show_replay(reader, grids, job.speed, job.max_frames, intact)
            print(_summary(f"showed {n} frames", intact))
            return 0
        total = (
            reader.num_frames if job.max_frames is None else min(job.max_frames, reader.num_frames)
        )
        with tqdm(total=total, desc="replay", unit="frame", file=sys.stderr, disable=None) as bar:
            n = render_replay(reader, video, grids, job.speed, job.max_frames, bar.update, intact)
    print(_summary(f"wrote {video} ({n} frames)", intact))
    return 0
