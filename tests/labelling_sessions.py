"""Small labelled-session fixtures shared by the labelling tests (unit and the label command's system tests)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from robot_ssl.io.session import SessionWriter
from robot_ssl.io.streams import Record

S_NS = 1_000_000_000
MS_NS = 1_000_000
WALL_X = 0.555
JPEG = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes()


def write_session(
    path: Path,
    seconds: float = 5.0,
    *,
    odometry: bool = True,
    wheels: bool = True,
    truth: bool = False,
    frames: bool = True,
    proximity: bool = True,
    stall: bool = False,
    acc: bool = False,
) -> Path:
    """Straight approach to a wall at 0.1 m/s: 30 fps, 10 Hz proximity, 100 Hz wheels/odometry.

    Without `stall` the robot drives through the wall; with it, it stops where its body
    (0.08 m radius) touches the wall, its wheels stalled (measured speed 0, target kept).
    `acc`: an accelerometer stream at 20 Hz (at rest: gravity on z, no tap)."""
    speed_units = round(0.1 / 0.000332)
    v = speed_units * 0.000332
    streams = ["acc"] if acc else []
    with SessionWriter(path, truth_sensors=7 if truth else None, streams=streams) as w:
        for k in range(round(seconds * 100) + 1):
            t = k * 10 * MS_NS
            x = v * t / S_NS
            stalled = stall and x >= WALL_X - 0.08
            x = min(x, WALL_X - 0.08) if stall else x
            if frames and k % 3 == 0:
                w.write_jpeg(t, JPEG)
            if proximity and k % 10 == 5:
                prox = np.zeros(7, np.int16)
                prox[2] = 1500 if WALL_X - (x + 0.08) < 0.14 else 0
                w.write_proximity(t, prox)
            if acc and k % 5 == 0:
                w.write(Record.of("acc", t, acc=np.array([0, 0, 23], np.int16), tap=0))
            if wheels:
                measured = 0 if stalled else speed_units
                w.write_wheels(t, [measured, measured], [speed_units, speed_units])
            if odometry:
                w.write_odometry(t, [x, 0.0, 0.0])
            if truth and k % 2 == 0:
                d = np.full(7, np.inf)
                d[2] = WALL_X - (x + 0.08)
                w.write_truth(t, [x, 0.0, 0.0], d)
    return path
