"""ROS bag import speed: `robot-ssl import` of a 10-minute MCAP with a 30 fps compressed
camera, on one core.

The bag is built once in out/bench/import_speed/: a simulated session (`sim record`,
30 fps 320x240 JPEG, proximity 10 Hz, wheels and pose 50 Hz, as the simulator records
them) written as MCAP by `export`, i.e. by rosbags' writer (CompressedImage,
nav_msgs/Odometry, /tf, the custom proximity, wheels and pose types). The import runs
in-process on one CPU (affinity set, OpenMP/OpenCV threads 1); the figure is the
median of the runs, as bag seconds imported per wall second.
Target (issue 26): >= 20x real time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2

from benchmarks import Parser
from benchmarks.results import Figure, Target
from robot_ssl.interop.export_mcap import SessionExport, export_session
from robot_ssl.interop.import_bag import BagImport, import_bag
from robot_ssl.io.session import SessionReader

cv2.setNumThreads(1)
ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "out" / "bench" / "import_speed"


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m benchmarks import_speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=None, help="bag length (default 10; quick 1)")
    p.add_argument("--repeats", type=int, default=None, help="imports timed (default 3; quick 1)")
    return p


def build_bag(minutes: float) -> Path:
    """The cached bag of `minutes`: a simulated session exported as MCAP."""
    bag = CACHE / f"sim_{minutes:g}min_30fps.mcap"
    if bag.exists():
        return bag
    CACHE.mkdir(parents=True, exist_ok=True)
    session = CACHE / f"sim_{minutes:g}min_30fps.h5"
    if not session.exists():
        cmd = [sys.executable, "-m", "robot_ssl", "sim", "record", "--minutes", f"{minutes:g}"]
        cmd += ["--fps", "30", "--width", "320", "--height", "240", "--seed", "3"]
        subprocess.run([*cmd, "--no-progress", str(session)], check=True)
    export_session(SessionExport(str(session), str(bag)))
    return bag


def _one_core() -> str:
    """Pin this process to one CPU; returns which, for the printout."""
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"CPU {cpu}"
    return "all CPUs (no affinity call here)"


def run(quick: bool, argv: list[str]) -> list[Figure]:
    """Median import speed of the cached bag; quick: a 1-minute bag, one run."""
    args = parser().parse_args(argv)
    minutes = args.minutes or (1.0 if quick else 10.0)
    repeats = args.repeats or (1 if quick else 3)
    bag = build_bag(minutes)
    where = _one_core()
    speeds = []
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "imported.h5"
        for _ in range(repeats):
            out.unlink(missing_ok=True)
            t0 = time.perf_counter()
            import_bag(BagImport(str(bag), str(out)))
            wall = time.perf_counter() - t0
            with SessionReader(out) as s:
                duration_s, frames = s.duration_s, s.num_frames
            speeds.append(duration_s / wall)
            print(f"  import: {wall:6.1f} s for {duration_s:.0f} s, {frames} frames")
    med = statistics.median(speeds)
    size_mb = bag.stat().st_size / 1e6
    print(f"bag: {bag.name}, {size_mb:.0f} MB; one core ({where})")
    print(f"  import {med:8.1f} x real time (median of {repeats}; target >= 20)")
    return [
        Figure(
            f"`import` of a {minutes:g}-minute MCAP, 30 fps 320x240 JPEG camera "
            "(simulated, written by rosbags), one core",
            f"**{med:,.1f}x** real time (median of {repeats}; {size_mb:.0f} MB bag)",
            (Target(">= 20x real time", med >= 20.0),),
            {"import_x_real_time": med, "bag_mb": size_mb},
        )
    ]
