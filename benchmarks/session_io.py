"""Session file I/O throughput: 30 fps 640x480 JPEG + 10 Hz proximity + 50 Hz wheels.

Prints, as medians over repeats on one core:
- write speed as a real-time factor (session seconds written per wall second), with
  frames pre-encoded (what the recorder's writer thread does) and with JPEG encoding;
- read speed (frames decoded per second, full-stream array reads);
- odometry integration time for one hour of 100 Hz wheel data.
Targets (issue 2): write > 10x real time; odometry < 100 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2
import numpy as np

from benchmarks import Parser
from benchmarks.results import Figure, Target
from robot_ssl.core.odometry import integrate_wheel_odometry
from robot_ssl.core.spec import CameraSpec, RobotSpec
from robot_ssl.io.session import SessionReader, SessionWriter

cv2.setNumThreads(1)
CAM = CameraSpec(width=640, height=480)


def scene_frames(n: int) -> list[np.ndarray]:
    """Camera-like images (gradients, edges, texture, mild noise), not pure noise."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:480, 0:640].astype(np.float32)
    frames = []
    for i in range(n):
        img = np.empty((480, 640, 3), np.float32)
        img[..., 0] = 90 + 60 * np.sin(x / 37 + i) * (y > 200)
        img[..., 1] = 120 + 0.2 * y
        img[..., 2] = 140 + 50 * ((x // 40 + y // 40 + i) % 2) * (y > 260)
        img += rng.normal(0, 4, img.shape)
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return frames


def write_session(path: Path, seconds: float, frames, encoded: bool) -> float:
    """Write `seconds` of session; returns wall time."""
    jpegs = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for f in frames]
    prox = np.zeros(7, np.int16)
    n_wheel = int(seconds * 50)
    t0 = time.perf_counter()
    with SessionWriter(path, camera=CAM, overwrite=True) as w:
        for k in range(n_wheel):
            t = k * 20_000_000
            w.write_wheels(t, [100, 100], [100, 100])
            w.write_odometry(t, [k * 1e-3, 0, 0])
            if k % 5 == 0:
                w.write_proximity(t, prox)
            # 30 fps camera: frames whose time falls in this 20 ms slot
            for j in range(int(np.ceil(k * 0.6)), int(np.ceil((k + 1) * 0.6))):
                tf = j * 1_000_000_000 // 30
                if encoded:
                    w.write_jpeg(tf, jpegs[j % len(jpegs)])
                else:
                    w.write_frame(tf, frames[j % len(frames)])
    return time.perf_counter() - t0


def parser() -> argparse.ArgumentParser:
    ap = Parser(prog="python -m benchmarks session_io", description=__doc__)
    ap.add_argument("--seconds", type=float, default=None, help="session length per repeat (60)")
    ap.add_argument("--repeats", type=int, default=None, help="repeats (3)")
    return ap


def run(quick: bool, argv: list[str]) -> list[Figure]:
    """Write, read and odometry speed; quick: 10 s sessions, one repeat."""
    args = parser().parse_args(argv)
    seconds = args.seconds or (10.0 if quick else 60.0)
    repeats = args.repeats or (1 if quick else 3)
    frames = scene_frames(30)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "bench.h5"
        pre, enc = [], []
        for _ in range(repeats):
            pre.append(seconds / write_session(path, seconds, frames, encoded=True))
            enc.append(seconds / write_session(path, seconds, frames, encoded=False))
        size_mb = path.stat().st_size / 1e6
        read_fps, read_arrays_ms = [], []
        with SessionReader(path) as r:
            n = r.num_frames
            for _ in range(repeats):
                t0 = time.perf_counter()
                for i in range(0, n, 3):
                    r.frame(i)
                read_fps.append(len(range(0, n, 3)) / (time.perf_counter() - t0))
                t0 = time.perf_counter()
                r.proximity(), r.wheels(), r.odometry(), r.camera_t_ns
                read_arrays_ms.append((time.perf_counter() - t0) * 1e3)
    t = np.arange(360_000, dtype=np.int64) * 10_000_000
    speed = np.random.default_rng(0).integers(-300, 300, (t.size, 2))
    odo_ms = []
    for _ in range(max(repeats, 5)):
        t0 = time.perf_counter()
        integrate_wheel_odometry(t, speed, RobotSpec())
        odo_ms.append((time.perf_counter() - t0) * 1e3)
    med = statistics.median
    mb_per_min = size_mb / seconds * 60
    print(f"session: {seconds:.0f} s of 30 fps 640x480 JPEG q90 + 10 Hz prox + 50 Hz wheels")
    print(f"  file size                      {mb_per_min:8.1f} MB per minute")
    print(f"  write, frames pre-encoded      {med(pre):8.1f} x real time (target > 10)")
    print(f"  write, JPEG encode included    {med(enc):8.1f} x real time")
    print(f"  read, decode frames            {med(read_fps):8.0f} frames/s")
    print(f"  read, all sensor arrays        {med(read_arrays_ms):8.1f} ms")
    print(f"odometry, 1 h of 100 Hz wheels   {med(odo_ms):8.1f} ms (target < 100)")
    return [
        Figure(
            "write 30 fps 640x480 JPEG + 10 Hz prox + 50 Hz wheels, one core",
            f"{med(pre):,.0f}x real time (frames pre-encoded, as the recorder does); "
            f"{med(enc):,.0f}x with JPEG encoding in the loop; {mb_per_min:.0f} MB/min; "
            f"read {med(read_fps):,.0f} frames/s",
            (Target("> 10x real time", med(pre) > 10.0),),
            {
                "write_x_real_time": med(pre),
                "write_encode_x_real_time": med(enc),
                "mb_per_min": mb_per_min,
                "read_frames_per_s": med(read_fps),
            },
        ),
        Figure(
            "odometry, one hour of 100 Hz wheel data",
            f"{med(odo_ms):.0f} ms (vectorised exact arcs)",
            (Target("< 100 ms", med(odo_ms) < 100.0),),
            {"odometry_1h_ms": med(odo_ms)},
        ),
    ]
