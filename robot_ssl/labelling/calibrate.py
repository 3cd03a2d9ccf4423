"""`robot-ssl calibrate` as a library function, `calibrate(CalibrateConfig(...))`:
`robot-ssl calibrate SESSION --spec SPEC.yaml [--straight-m L | --turn]`: camera latency
and wheel-speed factor from a short calibration session, written into the robot's spec.

- always: the camera's time offset (robot_ssl.labelling.time_offset), from the turns in
  the session, into `camera.time_offset_s`;
- `--straight-m L`: the robot drove one straight line of L metres (measured with a
  tape): factor = L / odometry distance, and `robot.speed_m_per_unit` becomes the
  session's value times the factor;
- `--turn`: the robot spun on the spot (two or three full turns, stopping before and
  after): factor = image rotation / odometry rotation, applied to `speed_m_per_unit`
  (or, with `--turn-corrects axle`, to `axle_length_m`, divided).

Refused (one line, exit 2, the spec file untouched): a `--straight-m` session that is
not one straight run (heading strays more than MAX_HEADING_DEVIATION_DEG, or the path is
more than MAX_PATH_OVER_CHORD times the chord), a `--turn` session without spins on the
spot, and a factor or a new value outside robot_ssl.core.spec.PLAUSIBLE_FACTOR (0.8..1.25:
of one correction, and of the Thymio nominal; robots differ by about 15 %).

Only the calibrated keys of the spec file change (comments, order and every other key
stay), atomically, after printing the values before and after; `--dry-run` prints only.
Procedure for a real robot: docs/calibration.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from robot_ssl.core.config import bounded, check_bounds
from robot_ssl.core.errors import ConfigError

if TYPE_CHECKING:
    from robot_ssl.labelling.time_offset import StraightRun

__all__ = ["TURN_CORRECTS", "CalibrateConfig", "calibrate"]

MAX_HEADING_DEVIATION_DEG = 10.0
"""A straight run's heading stays within this of its start (slip and wheel mismatch)."""
MAX_PATH_OVER_CHORD = 1.05
"""A straight run's odometry path is at most this times its start-to-end chord."""


TURN_CORRECTS = ("speed", "axle")


@dataclass(frozen=True)
class CalibrateConfig:
    """What `robot-ssl calibrate` does: measure `session` and update the spec file `spec`.

    `straight_m` the length in metres of the one straight run the session holds
    (measured on the floor), or `turn` the session has spins on the spot (not both);
    `turn_corrects` which value a turn scales, `speed_m_per_unit` ("speed") or
    `axle_length_m` ("axle"); `dry_run` prints the new values and writes nothing.
    """

    session: str = ""
    spec: str = ""
    straight_m: float | None = bounded(None, 0, min_inclusive=False)
    turn: bool = False
    turn_corrects: str = "speed"
    dry_run: bool = False

    def __post_init__(self) -> None:
        check_bounds(self, "calibrate", ConfigError)
        if self.straight_m is not None and self.turn:
            raise ConfigError("--straight-m and --turn: one session is one or the other")
        if self.turn_corrects not in TURN_CORRECTS:
            raise ConfigError(f"--turn-corrects: one of {', '.join(TURN_CORRECTS)}")
        if self.turn_corrects != "speed" and not self.turn:
            raise ConfigError("--turn-corrects needs --turn")


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def calibrate(cfg: CalibrateConfig) -> int:
    """Calibrate as `cfg` says: print the values before and after, write the changed
    keys into the spec file unless `dry_run` (0); a refusal raises CalibrationError."""
    import dataclasses

    import numpy as np

    from robot_ssl.core.spec import load_specs, update_spec_file
    from robot_ssl.io.labels_file import require_sessions
    from robot_ssl.io.session import SessionReader
    from robot_ssl.labelling.session_labels import (
        estimate_session_offset,
        frame_loader,
        session_odometry,
    )
    from robot_ssl.labelling.time_offset import (
        CalibrationError,
        OffsetSearchConfig,
        measure_spins,
        straight_run,
    )

    spec_path = Path(cfg.spec)
    if not spec_path.is_file():
        raise CalibrationError(f"{spec_path}: no such spec file")
    session = Path(require_sessions([cfg.session], "calibrate", "calibrate")[0])
    robot, camera = load_specs(spec_path)
    search = OffsetSearchConfig()
    with SessionReader(session) as reader:
        odom_t, odom_pose = session_odometry(reader)
        if len(odom_t) < 2:
            raise CalibrationError(f"{session}: no odometry and no wheel speeds")
        session_robot = reader.robot
        frame_t = np.asarray(reader.camera_t_ns)
        print(
            f"session        {session.name}: {reader.duration_s:.1f} s, {frame_t.size} frames,"
            f" recorded with speed_m_per_unit {_fmt(session_robot.speed_m_per_unit)},"
            f" axle_length_m {_fmt(session_robot.axle_length_m)}"
        )
        est = estimate_session_offset(reader, odom_t, odom_pose, search)
        print(f"camera offset  {est.describe()}")
        if not est.reliable and cfg.straight_m is None and not cfg.turn:
            raise CalibrationError(f"{session}: no reliable camera offset: {est.reason}")
        cal = None
        if cfg.turn:
            frames_offset = est.offset_s if est.reliable else reader.camera.time_offset_s
            cal = measure_spins(
                frame_t, frame_loader(reader, search.reduce), odom_t, odom_pose, reader.camera,
                search, offset_s=frames_offset,
            )  # fmt: skip
    new_robot, new_camera = robot, camera
    if est.reliable:
        new_camera = dataclasses.replace(camera, time_offset_s=round(est.offset_s, 4))
    else:
        print("               camera.time_offset_s left as it is (no reliable estimate)")
    factor = None
    if cfg.straight_m is not None:
        runs = straight_run(odom_t, odom_pose)
        if runs.distance_m < 0.05:
            raise CalibrationError(
                f"{session}: no straight run: the odometry moved {runs.distance_m:.3f} m"
            )
        factor = cfg.straight_m / runs.distance_m
        print(
            f"straight run   odometry {runs.distance_m:.4f} m, measured {cfg.straight_m:.4f} m,"
            f" heading change {math.degrees(runs.heading_change_rad):+.1f} deg"
        )
        _check_straight(session, runs)
        if abs(runs.heading_change_rad) > math.radians(5):
            print("               warning: the run is not straight (heading changed > 5 deg)")
    if cal is not None:
        if not cal.spins or not cal.reliable:
            raise CalibrationError(f"{session}: {cal.reason}")
        for s in cal.spins:
            print(
                f"spin           {s.start_s:.1f}-{s.end_s:.1f} s: image"
                f" {math.degrees(s.image_yaw_rad):+.1f} deg, odometry"
                f" {math.degrees(s.odometry_yaw_rad):+.1f} deg ({s.method},"
                f" factor {s.factor:.4f})"
            )
        factor = cal.factor
    if factor is not None:
        spread = ""
        if cal is not None and math.isfinite(cal.spread):
            spread = f" (spread over spins {cal.spread:.4f})"
        print(f"factor         {factor:.4f}{spread}")
        _check_factor(session, factor, "--turn" if cfg.turn else "--straight-m")
        if cfg.turn and cfg.turn_corrects == "axle":
            new_robot = dataclasses.replace(
                robot, axle_length_m=float(f"{session_robot.axle_length_m / factor:.6g}")
            )
        else:
            new_robot = dataclasses.replace(
                robot, speed_m_per_unit=float(f"{session_robot.speed_m_per_unit * factor:.6g}")
            )
        if robot.speed_m_per_unit != session_robot.speed_m_per_unit or (
            robot.axle_length_m != session_robot.axle_length_m
        ):
            print(
                "               note: the spec file differs from the session's robot; the"
                " factor applies to the session's values"
            )
    changes = [
        ("camera.time_offset_s", camera.time_offset_s, new_camera.time_offset_s),
        ("robot.speed_m_per_unit", robot.speed_m_per_unit, new_robot.speed_m_per_unit),
        ("robot.axle_length_m", robot.axle_length_m, new_robot.axle_length_m),
    ]
    changed = [c for c in changes if c[1] != c[2]]
    _check_new_values([(name, new) for name, _, new in changed])
    print(f"{spec_path}:")
    for name, old, new in changes:
        mark = "" if old != new else "  (unchanged)"
        print(f"  {name:24s} {_fmt(old)} -> {_fmt(new)}{mark}")
    if cfg.dry_run:
        print(f"dry run: {spec_path} not changed")
    elif changed:
        update_spec_file(spec_path, {tuple(name.split(".")): new for name, old, new in changed})
        print(f"wrote {spec_path}")
    else:
        print(f"nothing to change in {spec_path}")
    return 0


def _check_straight(session: Path, runs: StraightRun) -> None:
    """CalibrationError unless the odometry drove one straight line: a wander or a spin
    given as a straight run would give a wrong factor."""
    from robot_ssl.labelling.time_offset import CalibrationError

    strayed_deg = math.degrees(runs.max_heading_deviation_rad)
    if strayed_deg > MAX_HEADING_DEVIATION_DEG or runs.path_m > MAX_PATH_OVER_CHORD * (
        runs.distance_m
    ):
        raise CalibrationError(
            f"{session}: not one straight run: the heading strayed {strayed_deg:.0f} deg"
            f" (at most {MAX_HEADING_DEVIATION_DEG:g}) and the odometry path is"
            f" {runs.path_m:.3f} m for {runs.distance_m:.3f} m start to end; record a"
            " straight run (docs/calibration.md); spec not changed"
        )


def _check_factor(session: Path, factor: float, mode: str) -> None:
    """CalibrationError unless `factor` is finite and within PLAUSIBLE_FACTOR: robots
    differ by about 15 %, so a larger correction is a wrong session or length."""
    from robot_ssl.core.spec import PLAUSIBLE_FACTOR
    from robot_ssl.labelling.time_offset import CalibrationError

    lo, hi = PLAUSIBLE_FACTOR
    if not (math.isfinite(factor) and lo <= factor <= hi):
        raise CalibrationError(
            f"{session}: factor {factor:.4g} is outside the plausible {lo:g}..{hi:g} (Thymios"
            f" differ by about 15 %): a wrong session or measure for {mode}? spec not changed"
        )


def _check_new_values(changed: list[tuple[str, float]]) -> None:
    """CalibrationError unless each new wheel speed or axle length is within
    PLAUSIBLE_FACTOR of the Thymio nominal (what load_specs accepts for the speed):
    never write what `record` would refuse to drive with."""
    from robot_ssl.core.errors import SpecError
    from robot_ssl.core.spec import (
        THYMIO_AXLE_LENGTH_M,
        THYMIO_SPEED_M_PER_UNIT,
        check_plausible,
    )
    from robot_ssl.labelling.time_offset import CalibrationError

    nominal = {
        "robot.speed_m_per_unit": THYMIO_SPEED_M_PER_UNIT,
        "robot.axle_length_m": THYMIO_AXLE_LENGTH_M,
    }
    try:
        for name, value in changed:
            if name in nominal:
                check_plausible(name, value, nominal[name])
    except SpecError as e:
        raise CalibrationError(f"{e}; spec not changed") from None
