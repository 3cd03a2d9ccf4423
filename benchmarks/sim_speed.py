"""Simulator speed: camera frames per second at 80x64 and 320x240, and simulated time per
wall time when recording a session at 30 fps 320x240, on one core.

Run: `.venv/bin/python benchmarks/sim_speed.py [--quick]`. Single-threaded on purpose
(OpenCV and BLAS limited to one thread, as on one core of the robot's computer or one
worker of a data-generation pool). Numbers are medians over repeats; on a shared or
loaded machine the best repeat is also printed, since others' load only slows runs down.
Targets (issue 4): >= 1000 frames/s at 80x64, >= 20x real time for recording.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from robot_ssl.recording.wander import WanderController
from sim import CameraParams, Renderer, Simulator, load_world

cv2.setNumThreads(1)


def render_fps(world_name: str, width: int, height: int, frames: int, repeats: int) -> list[float]:
    """Frames per second of Renderer.render (noise, vignette, flicker included)."""
    world = load_world(world_name)
    renderer = Renderer(world, CameraParams(width=width, height=height))
    sim = Simulator(world, seed=0, camera=None)
    # Poses along a wander path, so the renders see varied views.
    ctrl = WanderController(seed=0)
    poses = []
    for _ in range(frames):
        r = sim.robot.read()
        sim.robot.set_wheel_targets(*ctrl.command(r.proximity, r.t_ns))
        sim.clock.sleep_until_ns(r.t_ns + 33_000_000)
        poses.append(sim.pose)
    rng = np.random.default_rng(0)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i, pose in enumerate(poses):
            renderer.render(pose, i / 30.0, rng)
        out.append(frames / (time.perf_counter() - t0))
    return out


def _bare_loop(world_name: str, seed: int, sim_seconds: float) -> None:
    """The recording schedule without the session writer: wheels, odometry-free truth and
    control at 50 Hz, camera frames JPEG-encoded at 30 fps."""
    sim = Simulator(load_world(world_name), seed=seed)
    ctrl = WanderController(seed=seed)
    t_ns, next_frame = 0, 0.0
    while t_ns < sim_seconds * 1e9:
        r = sim.robot.read()
        sim.robot.set_wheel_targets(*ctrl.command(r.proximity, r.t_ns))
        sim.robot.truth()
        if t_ns >= next_frame:
            f = sim.camera.read()
            cv2.imencode(".jpg", f.image, [cv2.IMWRITE_JPEG_QUALITY, 90])
            next_frame += 1e9 / 30
        t_ns += 20_000_000
        sim.clock.sleep_until_ns(t_ns)


def record_speed(world_name: str, sim_seconds: float, repeats: int, bare: bool) -> list[float]:
    """Simulated seconds per wall second of `sim record` (30 fps 320x240 JPEG, prox 10 Hz,
    wheels/odometry/truth 50 Hz, wander controller) through the project's recorder and
    session writer; with `bare`, the same schedule without writing a session."""
    out = []
    for rep in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            if bare:
                _bare_loop(world_name, rep, sim_seconds)
            else:
                from robot_ssl.simlink.simulator import record_session

                record_session(
                    Path(tmp) / "bench.h5",
                    world=world_name,
                    seed=rep,
                    minutes=sim_seconds / 60,
                    progress=False,
                )
            out.append(sim_seconds / (time.perf_counter() - t0))
    return out


def _line(name: str, values: list[float], unit: str, target: float | None) -> str:
    med, best = statistics.median(values), max(values)
    ok = ""
    if target is not None:
        ok = f"  (target {target:g}: {'met' if med >= target else 'NOT met'})"
    return f"{name:<37} median {med:8.1f} {unit}   best {best:8.1f} {unit}{ok}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", default="arena_boxes")
    ap.add_argument("--quick", action="store_true", help="fewer frames and repeats")
    args = ap.parse_args()
    frames, repeats, sim_s = (200, 3, 10.0) if args.quick else (600, 5, 30.0)
    print(f"sim speed on world {args.world!r}, one thread, cv2 {cv2.__version__}")
    print(_line("render 80x64", render_fps(args.world, 80, 64, frames, repeats), "fps", 1000))
    print(_line("render 320x240", render_fps(args.world, 320, 240, frames, repeats), "fps", None))
    reps = max(2, repeats // 2)
    bare = record_speed(args.world, sim_s, reps, bare=True)
    print(_line("simulate+JPEG, no writer (sim/wall)", bare, "x  ", None))
    rec = record_speed(args.world, sim_s, reps, bare=False)
    print(_line("sim record 30 fps 320x240 (sim/wall)", rec, "x  ", 20))
    return 0


if __name__ == "__main__":
    sys.exit(main())
