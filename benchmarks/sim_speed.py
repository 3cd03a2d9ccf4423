"""Simulator speed on one core: the camera renderer and `sim record`, today's renderer
(a baseline commit's sim/camera.py) against this checkout's, in one run.

Run: `taskset -c 0 python -m benchmarks sim_speed [--quick] [--baseline REV]`.
Single-threaded on purpose (OpenCV and BLAS limited to one thread, as on one core of the
robot's computer or one worker of a data-generation pool). Real-time factors are
simulated seconds per wall second at 30 fps: for rendering, frames per second / 30; for
recording, the project's `record_session` (30 fps 320x240 JPEG, proximity, odometry,
truth, wander controller, session writer; the simulator's camera timing when it has
one). Numbers are medians over repeats, the variants interleaved so that others' load
on a shared machine hits them alike; the best repeat is printed too.

Variants: `old` the baseline's Renderer (`git show REV:sim/camera.py`, loaded as a
temporary module; it has no motion blur, a blur the simulator asks for is dropped),
`new` this checkout's without motion blur, `new+blur` with motion blur on every frame
(the simulator's smear where it asks for one, else 2 px horizontally), and `new, as
simulated` (record only): exactly what `sim record` does.
Targets (issue 4 and 14): >= 1000 frames/s at 80x64, >= 20x real time for recording.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import importlib.util
import inspect
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np

import sim.simulator as sim_simulator
from benchmarks import Parser
from benchmarks.results import Figure, Target
from robot_ssl.recording.wander import WanderController
from sim import CameraParams, Renderer, Simulator, load_world

ROOT = Path(__file__).resolve().parents[1]

cv2.setNumThreads(1)

DEFAULT_BASELINE = "e28c00f"
FORCED_BLUR_PX = (2.0, 0.0)  # new+blur: the smear of frames the simulator sees as still
FPS = 30.0


def load_baseline_camera(rev: str) -> ModuleType:
    """sim/camera.py as of git revision `rev`, imported as a module of its own."""
    src = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:sim/camera.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    name = f"_baseline_camera_{rev.replace('/', '_').replace('~', '_').replace('^', '_')}"
    path = Path(tempfile.mkdtemp(prefix="sim_speed_")) / f"{name}.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


def renderer_variants(baseline: ModuleType | None) -> dict[str, type]:
    """Renderer classes by variant name, all with the simulator's render signature."""

    class New(Renderer):
        def render(self, robot_pose, t_s=0.0, rng=None, blur_px=None):  # type: ignore[override]
            return super().render(robot_pose, t_s, rng)

    class NewBlur(Renderer):
        def render(self, robot_pose, t_s=0.0, rng=None, blur_px=None):  # type: ignore[override]
            return super().render(robot_pose, t_s, rng, blur_px=blur_px or FORCED_BLUR_PX)

    out: dict[str, type] = {}
    if baseline is not None:

        class Old(baseline.Renderer):  # type: ignore[name-defined, misc]
            def render(self, robot_pose, t_s=0.0, rng=None, blur_px=None):  # type: ignore[override]
                return super().render(robot_pose, t_s, rng)

        out["old"] = Old
    out["new"] = New
    out["new+blur"] = NewBlur
    return out


def wander_poses(world_name: str, frames: int) -> list[np.ndarray]:
    """Poses 1/30 s apart along a wander path, so that renders see varied views."""
    sim = Simulator(load_world(world_name), seed=0, camera=None)
    ctrl = WanderController(seed=0)
    poses = []
    for _ in range(frames):
        r = sim.robot.read()
        sim.robot.set_wheel_targets(*ctrl.command(r.proximity, r.t_ns))
        sim.clock.sleep_until_ns(r.t_ns + round(1e9 / FPS))
        poses.append(sim.pose)
    return poses


def render_speed(
    classes: dict[str, type], world_name: str, size: tuple[int, int], frames: int, repeats: int
) -> dict[str, list[float]]:
    """Frames per second of each variant's render (noise, vignette, flicker included),
    the variants interleaved within each repeat."""
    world = load_world(world_name)
    poses = wander_poses(world_name, frames)
    params = CameraParams(width=size[0], height=size[1])  # the baseline's reads the same
    renderers = {name: cls(world, params) for name, cls in classes.items()}
    out: dict[str, list[float]] = {name: [] for name in classes}
    for _ in range(repeats):
        for name, r in renderers.items():
            rng = np.random.default_rng(0)
            t0 = time.perf_counter()
            for i, pose in enumerate(poses):
                r.render(pose, i / FPS, rng)
            out[name].append(frames / (time.perf_counter() - t0))
    return out


def record_once(renderer_cls: type | None, world_name: str, seed: int, sim_seconds: float) -> float:
    """Simulated seconds per wall second of one `record_session` with the simulator
    building its renderers from `renderer_cls` (None: the simulator's own)."""
    from robot_ssl.simlink.simulator import record_session

    kwargs: dict[str, Any] = {}
    if "progress" in inspect.signature(record_session).parameters:
        kwargs["progress"] = False
    saved = sim_simulator.Renderer
    if renderer_cls is not None:
        sim_simulator.Renderer = renderer_cls  # type: ignore[misc]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            record_session(
                Path(tmp) / "bench.h5",
                world=world_name,
                seed=seed,
                minutes=sim_seconds / 60,
                **kwargs,
            )
            return sim_seconds / (time.perf_counter() - t0)
    finally:
        sim_simulator.Renderer = saved  # type: ignore[misc]


def record_speed(
    classes: dict[str, type | None], world_name: str, sim_seconds: float, repeats: int
) -> dict[str, list[float]]:
    """record_once per variant and repeat (seed = repeat), interleaved."""
    out: dict[str, list[float]] = {name: [] for name in classes}
    for rep in range(repeats):
        for name, cls in classes.items():
            out[name].append(record_once(cls, world_name, rep, sim_seconds))
    return out


def simulator_realism() -> str:
    """What the simulator adds to the camera (feature-detected)."""
    params = inspect.signature(Simulator).parameters
    if "camera_timing" not in params:
        return "no camera timing in this simulator"
    timing = params["camera_timing"].default
    if timing is inspect.Parameter.empty:
        return "camera timing (no default)"
    return f"camera timing {timing}"


def _line(name: str, values: list[float], unit: str, target: float | None = None) -> str:
    med, best = statistics.median(values), max(values)
    ok = ""
    if target is not None:
        ok = f"  (target {target:g}: {'met' if med >= target else 'NOT met'})"
    return f"  {name:<26} median {med:8.1f}{unit}  best {best:8.1f}{unit}{ok}"


def _ratio(results: dict[str, list[float]], a: str, b: str) -> str:
    if a not in results or b not in results:
        return ""
    r = statistics.median(results[a]) / statistics.median(results[b])
    return f"  {a}/{b} (medians): {r:.2f}x"


def parser() -> argparse.ArgumentParser:
    ap = Parser(
        prog="python -m benchmarks sim_speed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--world", default="arena_boxes")
    ap.add_argument("--baseline", default=DEFAULT_BASELINE, help="git revision of 'old'")
    ap.add_argument("--repeats", type=int, default=None, help="repeats (default 5, quick 3)")
    return ap


def run(quick: bool, argv: list[str]) -> list[Figure]:
    """Render and record speed of each variant; quick: fewer frames, repeats, seconds."""
    args = parser().parse_args(argv)
    frames, repeats, sim_s = (150, 3, 10.0) if quick else (300, 5, 30.0)
    repeats = args.repeats or repeats
    try:
        baseline: ModuleType | None = load_baseline_camera(args.baseline)
    except (subprocess.CalledProcessError, OSError, ImportError, AttributeError) as e:
        print(f"baseline {args.baseline}: not loaded ({e}); new variants only")
        baseline = None
    classes = renderer_variants(baseline)
    print(
        f"sim speed on world {args.world!r}, one thread, cv2 {cv2.__version__}, "
        f"baseline {args.baseline}; {simulator_realism()}"
    )
    renders: dict[tuple[int, int], dict[str, list[float]]] = {}
    for size in [(320, 240), (80, 64)]:
        fps = renders[size] = render_speed(classes, args.world, size, frames, repeats)
        print(
            f"render {size[0]}x{size[1]} ({frames} frames x {repeats}), frames/s and x real time:"
        )
        for name, values in fps.items():
            target = 1000.0 if size == (80, 64) and name.startswith("new") else None
            print(
                _line(name, values, " fps", target)
                + f"  = {statistics.median(values) / FPS:6.1f}x real time"
            )
        print(_ratio(fps, "new", "old"))
    rec_classes: dict[str, type | None] = dict(classes)
    rec_classes["new, as simulated"] = None
    rec = record_speed(rec_classes, args.world, sim_s, repeats)
    print(f"sim record 30 fps 320x240, {sim_s:g} s simulated x {repeats} (x real time):")
    for name, values in rec.items():
        target = 20.0 if name.startswith("new") else None
        print(_line(name, values, "x  ", target))
    print(_ratio(rec, "new", "old"))
    print(_ratio(rec, "new+blur", "old"))
    return figures(renders, rec)


def figures(
    renders: dict[tuple[int, int], dict[str, list[float]]], rec: dict[str, list[float]]
) -> list[Figure]:
    """The README's two rows: render speed, and `sim record` as simulated."""
    med = {k: {n: statistics.median(v) for n, v in r.items()} for k, r in renders.items()}
    small, large = med[(80, 64)], med[(320, 240)]
    render = f"{small['new']:,.0f} frames/s at 80x64; {large['new']:,.0f} frames/s at 320x240"
    if "old" in small:
        render += (
            f" (previous renderer in the same run: {small['old']:,.0f} and {large['old']:,.0f}; "
            f"{small['new'] / small['old']:.2f}x and {large['new'] / large['old']:.2f}x)"
        )
    r = {n: statistics.median(v) for n, v in rec.items()}
    record = f"**{r['new, as simulated']:.1f}x** real time"
    if "old" in r:
        record += (
            f" against {r['old']:.1f}x with the previous renderer in the same run "
            f"({r['new, as simulated'] / r['old']:.2f}x)"
        )
    record += f"; {r['new+blur']:.1f}x with a blur on every frame"
    return [
        Figure(
            "render, one thread",
            render,
            (Target("1,000 frames/s at 80x64", small["new"] >= 1000.0),),
            {"render_80x64_fps": small["new"], "render_320x240_fps": large["new"]},
        ),
        Figure(
            "`sim record` 30 fps 320x240, one core, with the realistic clocks (latency, jitter, "
            "motion blur, drops, streamed prox)",
            record,
            (Target("20x real time", r["new, as simulated"] >= 20.0),),
            {"record_x_real_time": r["new, as simulated"]},
        ),
    ]
