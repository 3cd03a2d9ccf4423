"""`robot-ssl record` as a library function: `record(RecordConfig(...))`.

The devices are typed configs (robot_ssl.recording.device_setup, and the simulated ones
in robot_ssl.simlink.devices); they are opened (and checked) before the output file is
created, so a missing robot or camera costs one line and leaves nothing behind. Ctrl-C
or SIGTERM stop the recording and finalise the file; the motors stop on every exit path
when the recorder drove them. With `overwrite` an existing file is replaced only when
the new session is complete (it is written beside it until then).
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robot_ssl.core.config import MAX_DURATION_S, MAX_SEED, bounded, check_bounds
from robot_ssl.recording.device_setup import (
    CameraDevice,
    Devices,
    NoCameraConfig,
    NoRobotConfig,
    RobotDevice,
    open_devices,
)
from robot_ssl.recording.recorder import RecorderError

__all__ = ["DRIVES", "RecordConfig", "RecordResult", "drive_controller", "record"]

DRIVES = ("wander", "contact", "none")


@dataclass(frozen=True)
class RecordConfig:
    """What `robot-ssl record` does: record `robot` and `camera` into session file `out`.

    `duration_s` (None: until stopped); `drive` "wander" explores with the IR sensors,
    "contact" by touching (no proximity used: robot_ssl.recording.contact_drive), "none"
    leaves driving to something else; `spec` a robot/camera description file
    (None: the defaults); rates in Hz; `seed` the wander's; `min_free_mb` the disk space
    below which the recording stops cleanly; `status` a status line on stderr (None:
    when stderr is a terminal).
    """

    out: str
    robot: RobotDevice = field(default_factory=NoRobotConfig)
    camera: CameraDevice = field(default_factory=NoCameraConfig)
    duration_s: float | None = bounded(None, 0, MAX_DURATION_S, min_inclusive=False)
    drive: str = "none"
    spec: str | None = None
    prox_hz: float = bounded(10.0, 0, 1000, min_inclusive=False)
    wheels_hz: float = bounded(50.0, 0, 1000, min_inclusive=False)
    jpeg_quality: int = bounded(90, 1, 100)
    seed: int = bounded(0, 0, MAX_SEED)
    min_free_mb: float = bounded(32.0, 0, 1e9)
    overwrite: bool = False
    status: bool | None = None

    def __post_init__(self) -> None:
        check_bounds(self, "record", RecorderError)
        if self.drive not in DRIVES:
            raise RecorderError(f"record.drive: one of {DRIVES}, not {self.drive!r}")
        if self.robot.kind == "none" and self.camera.kind == "none":
            raise RecorderError("nothing to record: --robot none and --camera none")
        if self.drive != "none" and self.robot.kind == "none":
            raise RecorderError(f"--drive {self.drive} needs a robot")


@dataclass(frozen=True)
class RecordResult:
    """The recorder's statistics and the exit status `robot-ssl record` gives (1: the disk
    filled up, the session is complete up to there)."""

    stats: Any
    exit_status: int


def _check_free_space(cfg: RecordConfig, min_free_bytes: int) -> None:
    from robot_ssl.core.outputs import free_bytes

    free = free_bytes(Path(cfg.out).absolute())
    if free is not None and free < min_free_bytes:
        raise RecorderError(
            f"only {max(free, 0) / 1e6:.1f} MB free for {cfg.out} (need --min-free-mb "
            f"{cfg.min_free_mb:g}): free some space first"
        )


def record(cfg: RecordConfig) -> RecordResult:
    """Record `cfg` (the devices opened first, the file written beside and renamed when
    complete); prints the summary line on stderr."""
    from robot_ssl.core.outputs import replacing_output
    from robot_ssl.core.spec import CameraSpec, RobotSpec, load_specs
    from robot_ssl.io.session import SessionWriteError, SessionWriter
    from robot_ssl.recording.recorder import Recorder, RecorderConfig
    from robot_ssl.recording.sampler import robot_streams, truth_streams
    from robot_ssl.runtime.stopping import stop_on_signals

    out = Path(cfg.out)
    if out.exists() and not cfg.overwrite:
        raise SessionWriteError(f"{out} exists (pass --overwrite to replace it)")
    robot_spec, camera_spec = load_specs(cfg.spec) if cfg.spec else (RobotSpec(), CameraSpec())
    config = RecorderConfig(
        prox_hz=cfg.prox_hz,
        wheels_hz=cfg.wheels_hz,
        jpeg_quality=cfg.jpeg_quality,
        status=cfg.status,
        min_free_bytes=int(cfg.min_free_mb * 1e6),
    )
    _check_free_space(cfg, config.min_free_bytes)
    with Devices() as dev:
        dev.metadata.update(recorded_by="robot-ssl record", drive=cfg.drive)
        open_devices(cfg.robot, cfg.camera, dev, robot_spec, camera_spec)
        camera_spec = dev.camera_spec(camera_spec)  # what the camera really delivers
        controller = drive_controller(cfg.drive, robot_spec, cfg.seed)
        with replacing_output(out, cfg.overwrite) as target:
            writer = SessionWriter(
                target,
                robot=robot_spec,
                camera=camera_spec,
                jpeg_quality=cfg.jpeg_quality,
                metadata=dev.metadata,
                truth_sensors=robot_spec.num_prox if dev.truth is not None else None,
                flush_interval_s=config.flush_interval_s,
                streams=(
                    *robot_streams(dev.robot),
                    *truth_streams(dev.truth),
                ),  # acc, contact truth
                overwrite=cfg.overwrite,
            )
            try:
                recorder = Recorder(
                    dev.robot,
                    dev.camera,
                    writer,
                    config,
                    clock=dev.clock,
                    controller=controller,
                    truth=dev.truth,
                )
                with stop_on_signals(recorder):
                    stats = recorder.run(cfg.duration_s)
            except BaseException:
                with contextlib.suppress(Exception):  # the first error is the one to report
                    writer.close()
                raise
            writer.close()
        camera_error = _camera_error(dev.camera) if stats.camera_failed else ""
    _print_summary(stats, out)
    if camera_error and not stats.stop_reason.startswith("camera failed"):  # not said yet
        print(
            f"robot-ssl record: the camera failed ({camera_error}); {out} has its frames "
            "up to then",
            file=sys.stderr,
        )
    if stats.disk_full:
        print(f"robot-ssl record: {stats.stop_reason}; {out} is complete", file=sys.stderr)
        return RecordResult(stats, 1)
    return RecordResult(stats, 0)


def drive_controller(drive: str, robot: Any, seed: int) -> Any:
    """The controller of `drive` (one of DRIVES) for `robot` (a RobotSpec), None for "none":
    the wander controller, or the contact drive."""
    if drive == "wander":
        from robot_ssl.recording.wander import wander_controller

        return wander_controller(robot, seed)
    if drive == "contact":
        from robot_ssl.recording.contact_drive import contact_drive_controller

        return contact_drive_controller(robot, seed)
    if drive == "none":
        return None
    raise RecorderError(f"drive: one of {DRIVES}, not {drive!r}")


def _camera_error(camera: Any) -> str:
    """Why a failed camera failed, one line ('stopped delivering frames' when it won't say)."""
    try:
        error = str(camera.health().error)
    except Exception:  # a broken camera object: its health is no better than its frames
        error = ""
    return (error.strip().splitlines() or ["stopped delivering frames"])[0]


def _print_summary(stats: Any, out: Path) -> None:
    c = stats.counts
    print(
        f"recorded {stats.elapsed_s:.1f} s to {out}: {c.get('camera', 0)} frames "
        f"({stats.frames_dropped} dropped), {c.get('proximity', 0)} proximity, "
        f"{c.get('wheels', 0)} wheel rows, {stats.robot_gaps} robot gaps, "
        f"{out.stat().st_size / 1e6:.1f} MB ({stats.stop_reason})",
        file=sys.stderr,
    )
