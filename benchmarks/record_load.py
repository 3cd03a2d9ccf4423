"""Recorder under load: 30 fps 640x480 paced synthetic camera + prox 10 Hz + wheels 50 Hz.

    python -m benchmarks record_load [--quick] [--seconds 120]

Reports dropped/missed frames, the recorder's CPU use (process CPU time / wall
time, minus what the synthetic camera's own rendering costs, measured alone
first), timestamp jitter of each stream (std and p99 of |interval - nominal|)
and bytes per minute. Targets: zero dropped frames, well under one core.
The robot is an in-process fake with a serial-like read latency.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks import Parser
from benchmarks.results import Figure, Target
from robot_ssl.core.spec import CameraSpec
from robot_ssl.io.session import SessionReader, SessionWriter
from robot_ssl.recording.cameras import SyntheticCamera
from robot_ssl.recording.recorder import Recorder, RecorderConfig


@dataclass(frozen=True)
class _Reading:
    t_ns: int
    proximity: np.ndarray
    wheel_speed: np.ndarray


class FakeThymio:
    """Answers like a Thymio over USB: a few ms per read, stamped when the reply 'arrives'."""

    def __init__(self, latency_s: float) -> None:
        self.latency_s = latency_s
        self.rng = np.random.default_rng(0)
        self.lock = threading.Lock()

    def read(self) -> _Reading:
        with self.lock:
            time.sleep(self.latency_s)
            prox = self.rng.integers(0, 4000, 7).astype(np.int16)
            return _Reading(time.monotonic_ns(), prox, np.array([120, 110], np.int16))

    def set_wheel_targets(self, left: int, right: int) -> None:
        pass

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def camera_baseline(width: int, height: int, fps: float, seconds: float) -> float:
    """Cores the synthetic camera alone uses (its rendering is not the recorder's cost)."""
    with SyntheticCamera(width, height, fps):
        c0, t0 = _cpu_s(), time.monotonic()
        time.sleep(seconds)
        return (_cpu_s() - c0) / (time.monotonic() - t0)


def jitter(t_ns: np.ndarray, hz: float) -> dict[str, float]:
    dt = np.diff(t_ns) / 1e9
    err = np.abs(dt - 1.0 / hz)
    return {
        "rate_hz": (len(t_ns) - 1) / ((t_ns[-1] - t_ns[0]) / 1e9),
        "median_dt_ms": float(np.median(dt) * 1e3),
        "std_ms": float(dt.std() * 1e3),
        "p99_err_ms": float(np.percentile(err, 99) * 1e3),
        "max_dt_ms": float(dt.max() * 1e3),
    }


def parser() -> argparse.ArgumentParser:
    ap = Parser(prog="python -m benchmarks record_load", description=__doc__)
    ap.add_argument(
        "--seconds", type=float, default=None, help="wall time to record (120; quick 10)"
    )
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--jpeg-quality", type=int, default=90)
    ap.add_argument("--robot-latency-ms", type=float, default=3.0)
    ap.add_argument("--window-s", type=float, default=10.0, help="CPU sampling window")
    ap.add_argument("--out", default=None, help="keep the session here (default: temp, deleted)")
    return ap


def run(quick: bool, argv: list[str]) -> list[Figure]:
    """Record a paced synthetic camera and a fake robot; drops, CPU, jitter and size."""
    args = parser().parse_args(argv)
    args.seconds = args.seconds or (10.0 if quick else 120.0)
    args.window_s = min(args.window_s, args.seconds / 4)
    base = camera_baseline(args.width, args.height, args.fps, min(5.0, args.seconds / 4))
    tmp = tempfile.TemporaryDirectory()
    out = Path(args.out) if args.out else Path(tmp.name) / "load.h5"
    cfg = RecorderConfig(status=False, jpeg_quality=args.jpeg_quality)
    spec = CameraSpec(width=args.width, height=args.height, fps=args.fps)
    cpu_windows: list[float] = []
    with (
        SyntheticCamera(args.width, args.height, args.fps) as cam,
        SessionWriter(out, camera=spec, jpeg_quality=args.jpeg_quality, overwrite=True) as w,
    ):
        rec = Recorder(FakeThymio(args.robot_latency_ms / 1e3), cam, w, cfg)
        done = threading.Event()

        def sample_cpu() -> None:
            c, t = _cpu_s(), time.monotonic()
            while not done.wait(args.window_s):
                c2, t2 = _cpu_s(), time.monotonic()
                cpu_windows.append((c2 - c) / (t2 - t))
                c, t = c2, t2

        sampler = threading.Thread(target=sample_cpu, daemon=True)
        c0, t0 = _cpu_s(), time.monotonic()
        sampler.start()
        stats = rec.run(args.seconds)
        cpu_total = (_cpu_s() - c0) / (time.monotonic() - t0)
        done.set()
    with SessionReader(out) as r:
        streams = {
            "camera": jitter(r.camera_t_ns, args.fps),
            "proximity": jitter(r.proximity()[0], cfg.prox_hz),
            "wheels": jitter(r.wheels()[0], cfg.wheels_hz),
        }
        duration_s = r.duration_s
        size = r.size_bytes
        frames = r.num_frames
    tmp.cleanup()

    print(
        f"record_load: {args.seconds:g} s, camera {args.width}x{args.height} @ {args.fps:g} fps "
        f"(synthetic, paced), prox {cfg.prox_hz:g} Hz, wheels {cfg.wheels_hz:g} Hz, "
        f"JPEG q{args.jpeg_quality}"
    )
    print(
        f"frames written {frames}, dropped {stats.frames_dropped}, missed {stats.frames_missed}, "
        f"rows dropped {stats.rows_dropped}, max frames queued {stats.max_frames_queued}"
    )
    med = float(np.median(cpu_windows)) if cpu_windows else cpu_total
    print(
        f"CPU (cores): process total {cpu_total:.3f}, median per {args.window_s:g} s window "
        f"{med:.3f}; synthetic camera alone {base:.3f}; recorder ~ {med - base:.3f}"
    )
    print(
        f"{'stream':<10}{'rate Hz':>9}{'median dt ms':>14}{'std ms':>9}{'p99 err ms':>12}"
        f"{'max dt ms':>11}"
    )
    for name, j in streams.items():
        print(
            f"{name:<10}{j['rate_hz']:>9.2f}{j['median_dt_ms']:>14.2f}{j['std_ms']:>9.2f}"
            f"{j['p99_err_ms']:>12.2f}{j['max_dt_ms']:>11.2f}"
        )
    mb_per_min = size / duration_s * 60 / 1e6
    print(f"bytes per minute {mb_per_min:.1f} MB ({size / 1e6:.1f} MB total)")
    jit = ", ".join(
        f"{name} {j['std_ms']:.1f} / {j['p99_err_ms']:.1f} ms" for name, j in streams.items()
    )
    cores = med - base
    return [
        Figure(
            f"{args.seconds:g} s, {args.fps:g} fps {args.width}x{args.height} paced camera + "
            f"{cfg.prox_hz:g} Hz prox + {cfg.wheels_hz:g} Hz wheels",
            f"{stats.frames_dropped} frames dropped; recorder {cores:.2f} core; "
            f"{mb_per_min:.0f} MB/min; interval jitter std / p99: {jit}",
            (Target("0 drops", stats.frames_dropped == 0), Target("< 1 core", cores < 1.0)),
            {
                "frames_dropped": stats.frames_dropped,
                "recorder_cores": cores,
                "mb_per_min": mb_per_min,
                **{f"{name}_p99_err_ms": j["p99_err_ms"] for name, j in streams.items()},
            },
        )
    ]
