"""Scripted simulator drives for the camera time-offset tests and `calibrate`'s tests:
the simulator driven by a script of wheel targets, frames rendered at their exposure
times and stamped `offset` later (what a camera read through OpenCV does), so the
truth is known exactly."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from robot_ssl.core.odometry import integrate_wheel_odometry
from robot_ssl.core.spec import CameraSpec, RobotSpec
from robot_ssl.io.session import SessionWriter
from robot_ssl.labelling.time_offset import decode_gray

MS = 1_000_000
S = 1_000_000_000
OFFSETS_MS = (0, 50, 100, 150)

Script = Callable[[float], tuple[int, int]]


def wander_script(t: float) -> tuple[int, int]:
    """Forward, stop, spin left, stop, forward, spin right, stop: 8 s cycles."""
    p = t % 8.0
    if p < 2.0:
        return (200, 200)
    if p < 2.5 or 4.0 <= p < 4.5 or p >= 7.0:
        return (0, 0)
    if p < 4.0:
        return (-200, 200)
    if p < 6.0:
        return (250, 250)
    return (250, -250)


def straight_script(t: float) -> tuple[int, int]:
    return (0, 0) if t < 0.5 or t > 9.5 else (150, 150)


@dataclass
class Streams:
    """A simulated run: true poses (100 Hz steps sampled at 50 Hz), measured wheel speeds,
    10 Hz proximity, and frames (JPEG) with their exposure times."""

    wheel_t: np.ndarray
    wheel_speed: np.ndarray
    truth_pose: np.ndarray
    truth_dist: np.ndarray
    prox_t: np.ndarray
    prox: np.ndarray
    frame_t: np.ndarray  # exposure times
    jpegs: list[bytes]
    robot: RobotSpec  # the nominal spec (what the session says)
    camera: CameraSpec

    def odometry(self) -> np.ndarray:
        """Wheel odometry with the nominal spec (as the recorder integrates it)."""
        return integrate_wheel_odometry(self.wheel_t, self.wheel_speed, self.robot)[0]

    def gray(self, reduce: int = 2) -> Callable[[int], np.ndarray | None]:
        cache = [decode_gray(j, reduce) for j in self.jpegs]
        return cache.__getitem__


def simulate(
    script: Script,
    seconds: float,
    *,
    world: str = "arena_boxes",
    start_pose: tuple[float, float, float] = (0.0, 0.0, 0.0),
    speed_factor: float = 1.0,
    robot: RobotSpec | None = None,
    camera: CameraSpec | None = None,
    seed: int = 0,
) -> Streams:
    """Drive the simulator by `script` (t_s -> wheel targets) with ideal kinematics whose
    true speed_m_per_unit is `speed_factor` times the nominal spec's."""
    from robot_ssl.simlink.simulator import resolve_world, sim_params
    from sim.kinematics import DriveParams
    from sim.simulator import Simulator

    robot = robot or RobotSpec()
    camera = camera or CameraSpec()
    _, ir, cam = sim_params(robot, camera)
    drive = DriveParams.ideal(
        axle_length_m=robot.axle_length_m,
        speed_m_per_unit=robot.speed_m_per_unit * speed_factor,
        max_speed_units=robot.max_speed_units,
        body_radius_m=robot.body_radius_m,
    )
    sim = Simulator(
        resolve_world(world, seed), seed=seed, drive=drive, ir=ir, camera=cam, start_pose=start_pose
    )
    rng = np.random.default_rng(seed)
    frame_ns = round(S / camera.fps)
    wheel_t, speed, poses, dists, prox_t, prox, frame_t, jpegs = ([] for _ in range(8))
    next_frame = 0
    for k in range(round(seconds * 100) + 1):
        t = sim.t_ns
        sim.robot.set_wheel_targets(*script(t / S))
        if k % 2 == 0:
            wheel_t.append(t)
            speed.append(sim.drive.measured.copy())
            poses.append(sim.pose)
            dists.append(sim.ir.true_distances(sim.pose))
        if k % 10 == 0:
            prox_t.append(t)
            prox.append(sim.proximity.copy())
        while next_frame <= t:
            img = sim.renderer.render(sim.pose_at(next_frame), next_frame / S, rng)
            jpegs.append(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
            frame_t.append(next_frame)
            next_frame += frame_ns
        sim.step()
    i64 = lambda a: np.asarray(a, np.int64)  # noqa: E731
    return Streams(
        i64(wheel_t), np.asarray(speed), np.asarray(poses), np.asarray(dists), i64(prox_t),
        np.asarray(prox, np.int16), i64(frame_t), jpegs, robot, camera,
    )  # fmt: skip


def write_session(
    path: Path,
    streams: Streams,
    offset_ms: float = 0.0,
    *,
    odometry: bool = True,
    camera: CameraSpec | None = None,
) -> Path:
    """A session file of `streams` with frames stamped `offset_ms` after exposure."""
    off = round(offset_ms * MS)
    odo = streams.odometry()
    cam = camera or streams.camera
    with SessionWriter(path, streams.robot, cam, truth_sensors=streams.robot.num_prox) as w:
        for t, jpeg in zip(streams.frame_t, streams.jpegs):
            w.write_jpeg(int(t) + off, jpeg)
        for t, p in zip(streams.prox_t, streams.prox):
            w.write_proximity(int(t), p)
        for i, t in enumerate(streams.wheel_t):
            w.write_wheels(int(t), streams.wheel_speed[i], streams.wheel_speed[i])
            if odometry:
                w.write_odometry(int(t), odo[i])
            w.write_truth(int(t), streams.truth_pose[i], streams.truth_dist[i])
    return path
