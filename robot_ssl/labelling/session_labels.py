"""Labelling session files: read a session, correct its camera offset, compute its labels,
compare them with truth.

The file-level half of the labeller (robot_ssl.labelling.labeller and
robot_ssl.labelling.time_offset are the pure halves); labels files are written and read
by robot_ssl.io.labels_file.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from robot_ssl.core.label_grid import SOURCE_CODES, CameraOffset, LabelConfig, LabelGrid
from robot_ssl.core.sensor_rule import presence
from robot_ssl.core.spec import RobotSpec
from robot_ssl.io.labels_file import LabelSet, LabelsFileError, identify_session
from robot_ssl.io.session import SessionError, SessionReader
from robot_ssl.labelling.labeller import (
    LabelStats,
    TruthAgreement,
    compare_with_truth,
    compute_labels,
    label_stats,
    truth_labels,
)
from robot_ssl.labelling.sources import add_sources, odometry_grid, plan_sources
from robot_ssl.labelling.time_offset import (
    OffsetSearchConfig,
    TimeOffsetEstimate,
    decode_gray,
    estimate_time_offset,
)
from robot_ssl.recording.picamera2_camera import SENSOR_MID_EXPOSURE

__all__ = [
    "estimate_session_offset",
    "frame_loader",
    "label_session",
    "resolve_camera_offset",
    "session_odometry",
    "session_presence",
    "session_truth_agreement",
    "session_truth_grid",
    "true_exposure_times",
]


def label_session(
    session_path: str | Path,
    config: LabelConfig | None = None,
    *,
    progress: Callable[[int], None] | None = None,
    offset_search: OffsetSearchConfig | None = None,
    notes: list[str] | None = None,
) -> LabelSet:
    """Label one session file (read only; nothing is written). Use `write_labels` to save.

    Labels come from `config.sources` (empty: every source the session has; proximity,
    contacts, swept floor: robot_ssl.labelling.sources, which says each source left
    out, and a missing or damaged `acc` stream, in one line appended to `notes`).
    Each sensor's readings become obstacle / free / unknown by the rule of its kind
    (`session_presence`); a sensor of a kind this version does not know is skipped
    (its cells unknown) with one line appended to `notes`.

    Uses the session's odometry stream, or integrates its wheel speeds when it
    recorded none. The camera offset follows `config.camera_offset` (see
    `resolve_camera_offset`; `offset_search` tunes the "auto" estimate) and is
    recorded in the result. With `config.uncertainty_replays` > 0, each label's
    confidence from odometry replays is computed too (robot_ssl.labelling.uncertainty). Raises robot_ssl.labelling.labeller.NothingToLabelError
    for an empty session, one without odometry or one too short, and the session
    reader's errors (robot_ssl.io.session.SessionError).
    """
    cfg = config if config is not None else LabelConfig()
    session_path = Path(session_path)
    if not session_path.is_file():
        raise LabelsFileError(f"{session_path}: no such file")
    with SessionReader(session_path) as reader:
        camera_t = np.asarray(reader.camera_t_ns)
        prox_t, prox_values = reader.proximity()
        odom_t, odom_pose = session_odometry(reader)
        robot = reader.robot
        offset = resolve_camera_offset(reader, cfg, odom_t, odom_pose, offset_search)
        wheels = reader.wheels() if cfg.uncertainty_replays else None
        plan = plan_sources(reader, cfg, notes)  # ir, contact, traversal: what it has
    if "ir" not in plan.sources:
        wheels = None  # the odometry replays score proximity labels
        grid = odometry_grid(camera_t, odom_t, odom_pose, cfg, offset.applied_s)
    else:
        prox_presence = session_presence(prox_values, robot, cfg.threshold, notes)
        grid = compute_labels(
            camera_t,
            prox_t,
            prox_values,
            odom_t,
            odom_pose,
            cfg,
            progress=progress,
            camera_offset_s=offset.applied_s,
            prox_presence=prox_presence,
        )
    ir_grid = grid
    grid = add_sources(grid, plan, odom_t, odom_pose, robot, cfg, offset.applied_s)
    confidence = None
    if wheels is not None:
        from robot_ssl.labelling.uncertainty import label_confidence

        confidence = label_confidence(
            ir_grid, camera_t, prox_t, prox_values, wheels[0], wheels[1], robot, cfg,
            offset.applied_s, prox_presence,
        )  # fmt: skip
        other = (grid.source > 0) & (grid.source != SOURCE_CODES["ir"])
        confidence = np.where(other, 1.0, confidence).astype(np.float32)  # fully trusted
    return LabelSet.from_grid(
        grid, cfg, identify_session(session_path), camera_offset=offset, confidence=confidence
    )


def session_presence(
    prox_values: np.ndarray,
    robot: RobotSpec,
    threshold: float,
    notes: list[str] | None = None,
) -> np.ndarray:
    """Obstacle (1) / free (0) / unknown (-1) of every proximity sample (M, S), by the
    rule of each sensor's kind (robot_ssl.core.sensor_rule.presence) and reach
    (`RobotSpec.reach_m`). A sensor of an unknown kind is all unknown, and one line
    naming it is appended to `notes` (labelling goes on with the other sensors)."""
    values = np.asarray(prox_values)
    if values.ndim != 2 or values.shape[1] != robot.num_prox:
        return np.zeros(values.shape, np.int8)  # compute_labels reports the bad shape
    for i in robot.unknown_sensors():
        s = robot.prox_sensors[i]
        if notes is not None:
            notes.append(
                f"sensor {i} ({s.name}) has unknown kind {s.kind!r}: its cells stay unknown"
            )
    return presence(values, robot, threshold)


def resolve_camera_offset(
    reader: SessionReader,
    config: LabelConfig,
    odom_t: np.ndarray | None = None,
    odom_pose: np.ndarray | None = None,
    offset_search: OffsetSearchConfig | None = None,
) -> CameraOffset:
    """The camera offset to label an open session with, per `config.camera_offset`:

    a number: that offset (source "config"); "spec": the session's calibrated
    `CameraSpec.time_offset_s` ("spec"); "auto": 0 for frames the camera stamped at
    their measured mid-exposure (metadata `camera_stamp` "sensor_mid_exposure", the
    picamera2 camera: "sensor", with the estimate kept as a check), else the session's
    own estimate when it is reliable ("estimate"), else the spec's value ("spec", with
    the estimate's reason).
    """
    fixed = config.camera_offset_s
    if fixed is not None:
        return CameraOffset(applied_s=fixed, source="config")
    spec_s = float(reader.camera.time_offset_s)
    if config.camera_offset == "spec":
        return CameraOffset(applied_s=spec_s, source="spec")
    if odom_t is None or odom_pose is None:
        odom_t, odom_pose = session_odometry(reader)
    est = estimate_session_offset(reader, odom_t, odom_pose, offset_search)
    fields = dict(
        estimate_s=est.offset_s,
        correlation=est.correlation,
        std_s=est.std_s,
        yaw_scale=est.yaw_scale,
        reliable=est.reliable,
        reason=est.reason,
    )
    if reader.metadata.get("camera_stamp") == SENSOR_MID_EXPOSURE:  # measured, not estimated
        return CameraOffset(applied_s=0.0, source="sensor", **fields)
    if est.reliable:
        return CameraOffset(applied_s=est.offset_s, source="estimate", **fields)
    return CameraOffset(applied_s=spec_s, source="spec", **fields)


def frame_loader(reader: SessionReader, reduce: int = 2) -> Callable[[int], np.ndarray | None]:
    """index -> the session's frame as a grey image at 1/`reduce` size (None: unreadable)."""
    if reader.frame_format == "jpeg":

        def load(i: int) -> np.ndarray | None:
            try:
                return decode_gray(reader.jpeg(i), reduce)
            except SessionError:
                return None

        return load

    def load_raw(i: int) -> np.ndarray | None:
        try:
            gray = cv2.cvtColor(reader.frame(i), cv2.COLOR_BGR2GRAY)
        except SessionError:
            return None
        if reduce == 1:
            return gray
        h, w = gray.shape
        size = (max(1, math.ceil(w / reduce)), max(1, math.ceil(h / reduce)))
        return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)

    return load_raw


def estimate_session_offset(
    reader: SessionReader,
    odom_t: np.ndarray | None = None,
    odom_pose: np.ndarray | None = None,
    config: OffsetSearchConfig | None = None,
) -> TimeOffsetEstimate:
    """The camera offset of an open session, estimated from its frames and odometry
    (`robot_ssl.labelling.time_offset.estimate_time_offset`); never raises for a session
    it cannot measure (the estimate is then unreliable, with its reason)."""
    cfg = config or OffsetSearchConfig()
    if odom_t is None or odom_pose is None:
        odom_t, odom_pose = session_odometry(reader)
    return estimate_time_offset(
        np.asarray(reader.camera_t_ns),
        frame_loader(reader, cfg.reduce),
        odom_t,
        odom_pose,
        reader.camera,
        cfg,
    )


def session_odometry(reader: SessionReader) -> tuple[np.ndarray, np.ndarray]:
    """The session's odometry (t_ns (K,), pose (K, 3)); integrated from the wheel speeds
    when it recorded none. Empty arrays when there is neither (the labeller then says
    "no odometry")."""
    from robot_ssl.core.odometry import DEFAULT_MAX_GAP_NS, integrate_wheel_odometry

    odom_t, pose = reader.odometry()
    if len(odom_t) >= 2:
        return np.asarray(odom_t), np.asarray(pose)
    wheel_t, speed, _ = reader.wheels()
    if len(wheel_t) < 2:
        return np.asarray(odom_t), np.asarray(pose).reshape(-1, 3)
    keep = np.concatenate([[True], np.diff(wheel_t) > 0])  # equal stamps: keep the first
    wheel_t, speed = np.asarray(wheel_t)[keep], np.asarray(speed)[keep]
    pose, _ = integrate_wheel_odometry(wheel_t, speed, reader.robot, max_gap_ns=DEFAULT_MAX_GAP_NS)
    return wheel_t, pose


def session_truth_agreement(
    session_path: str | Path, labels: LabelSet
) -> tuple[TruthAgreement, LabelStats] | None:
    """Compare labels with the simulator's truth stored in the session (None without truth).

    The true labels are `session_truth_grid`'s. Returns the agreement and the
    statistics of the true labels.
    """
    true_grid = session_truth_grid(session_path, labels)
    if true_grid is None:
        return None
    return compare_with_truth(labels.labels, true_grid.labels), label_stats(true_grid.labels)


def session_truth_grid(session_path: str | Path, labels: LabelSet) -> LabelGrid | None:
    """The true label grid of the frames of `labels` (row for row), or None without truth.

    The true labels are computed with `labels.config` at each frame's true exposure
    time: the session's `frame_truth` stream when it has one (a simulated camera with
    latency), else the frame stamps (the ideal simulated camera stamps frames at
    exposure). Each sensor's reach comes from the session's robot description
    (`RobotSpec.reaches_m`).
    """
    with SessionReader(session_path) as reader:
        truth = reader.truth()
        if truth is None or len(truth[0]) == 0:
            return None
        range_m = np.asarray(reader.robot.reaches_m())
        frame_truth = reader.frame_truth() if hasattr(reader, "frame_truth") else None
    t_ns, pose, distance_m = truth
    exposure = true_exposure_times(labels.t_ns, frame_truth)
    return truth_labels(exposure, t_ns, pose, distance_m, range_m, labels.config)


def true_exposure_times(
    stamps_ns: np.ndarray, frame_truth: tuple[np.ndarray, np.ndarray] | None
) -> np.ndarray:
    """Each frame's true exposure time from the simulator's (stamp, exposure) rows; a
    frame without a row (or a session without any) keeps its stamp."""
    stamps = np.asarray(stamps_ns, np.int64)
    if frame_truth is None or len(frame_truth[0]) == 0:
        return stamps.copy()
    ft, fe = (np.asarray(a, np.int64) for a in frame_truth)
    order = np.argsort(ft, kind="stable")
    ft, fe = ft[order], fe[order]
    i = np.clip(np.searchsorted(ft, stamps), 0, ft.size - 1)
    return np.where(ft[i] == stamps, fe[i], stamps)
