"""The simulator wired to the stack: simulator parameters from the robot's specs, worlds,
and simulated sessions recorded through the project's recorder and session writer.

This package (robot_ssl.simlink) is the only library code that imports `sim`; the
simulator takes plain parameters, built here from RobotSpec / CameraSpec.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from robot_ssl.core.errors import RobotSSLError

__all__ = [
    "SimCommandError",
    "make_simulator",
    "named_worlds",
    "record_session",
    "resolve_world",
    "serve_virtual_thymio",
    "show_world",
    "sim_errors",
    "sim_params",
    "write_generated_world",
]


class SimCommandError(RobotSSLError):
    """A simulator command failed (bad world, bad option); printed as one line."""


def sim_params(robot_spec: Any, camera_spec: Any) -> tuple[Any, Any, Any]:
    """(DriveParams, IRParams, CameraParams) of the simulator from RobotSpec / CameraSpec."""
    from sim.camera import CameraParams
    from sim.ir import IRParams
    from sim.kinematics import DriveParams

    drive = DriveParams(
        axle_length_m=robot_spec.axle_length_m,
        speed_m_per_unit=robot_spec.speed_m_per_unit,
        max_speed_units=robot_spec.max_speed_units,
        body_radius_m=robot_spec.body_radius_m,
    )
    ir = IRParams(
        poses=tuple(robot_spec.prox_poses()),
        range_m=robot_spec.prox_range_m,
        m=float(robot_spec.prox_max),
    )
    camera = CameraParams(
        width=camera_spec.width,
        height=camera_spec.height,
        hfov_rad=camera_spec.hfov_rad,
        fx=camera_spec.fx,
        fy=camera_spec.fy,
        cx=camera_spec.cx,
        cy=camera_spec.cy,
        x_m=camera_spec.x_m,
        y_m=camera_spec.y_m,
        z_m=camera_spec.z_m,
        pitch_rad=camera_spec.pitch_rad,
        fps=camera_spec.fps,
    )
    return drive, ir, camera


def make_simulator(
    world: Any = None,
    seed: int = 0,
    *,
    split: str = "heldout",
    robot_spec: Any = None,
    camera_spec: Any = None,
    camera: bool = True,
    start_ns: int = 0,
    realtime: bool = False,
    start_pose: Any = None,
) -> Any:
    """A Simulator for `world` (a World, a name or file, or None: generated from `seed` in
    `split`) with the robot's and camera's parameters from the specs (Thymio defaults)."""
    from robot_ssl.core.spec import CameraSpec, RobotSpec
    from sim.simulator import Simulator

    robot_spec = robot_spec or RobotSpec()
    camera_spec = camera_spec or CameraSpec()
    if world is None or isinstance(world, (str, Path)):
        world = resolve_world(str(world) if world is not None else None, seed, split)
    drive, ir, cam = sim_params(robot_spec, camera_spec)
    return Simulator(
        world,
        seed=seed,
        drive=drive,
        ir=ir,
        camera=cam if camera else None,
        start_ns=start_ns,
        realtime=realtime,
        start_pose=start_pose,
    )


def resolve_world(world: str | None, seed: int, split: str = "train") -> Any:
    """A named/file world, or one generated from the seed."""
    from sim.world import load_world
    from sim.worldgen import WorldGenConfig, generate_world

    if world:
        return load_world(world)
    return generate_world(seed, WorldGenConfig(split=split))


class _ProgressClock:
    """The simulator's clock, advancing a progress bar in simulated seconds."""

    def __init__(self, clock: Any, bar: Any) -> None:
        self.clock = clock
        self.bar = bar
        self._shown_ns = clock.now_ns()

    def now_ns(self) -> int:
        return self.clock.now_ns()

    def sleep_until_ns(self, t_ns: int) -> None:
        self.clock.sleep_until_ns(t_ns)
        now = self.clock.now_ns()
        if now - self._shown_ns >= 250_000_000:
            self.bar.update((now - self._shown_ns) / 1e9)
            self._shown_ns = now


def record_session(
    out: str | os.PathLike,
    *,
    world: str | None = None,
    seed: int = 0,
    minutes: float = 1.0,
    split: str = "train",
    robot_spec: Any = None,
    camera_spec: Any = None,
    frame_format: str = "jpeg",
    jpeg_quality: int = 90,
    overwrite: bool = False,
    progress: bool = True,
) -> Any:
    """Record `minutes` of simulated wandering into the session file `out`; returns the
    recorder's RecordingStats. The file appears only when complete."""
    from tqdm import tqdm

    from robot_ssl.core.spec import CameraSpec, RobotSpec
    from robot_ssl.io.outputs import atomic_output
    from robot_ssl.io.session import SessionWriteError, SessionWriter
    from robot_ssl.recording.recorder import Recorder, RecorderConfig
    from robot_ssl.recording.wander import wander_controller

    out = Path(out)
    if out.exists() and not overwrite:
        raise SessionWriteError(f"{out} exists (pass --overwrite to replace it)")
    if not minutes > 0 or not math.isfinite(minutes):
        raise SimCommandError("--minutes must be > 0")
    robot_spec = robot_spec or RobotSpec()
    camera_spec = camera_spec or CameraSpec()
    sim = make_simulator(world, seed, split=split, robot_spec=robot_spec, camera_spec=camera_spec)
    w = sim.world
    metadata = {
        "world": w.name,
        "seed": seed,
        "source": "sim",
        "split": w.split,
        "recorded_by": "robot-ssl sim record",
    }
    duration_s = minutes * 60.0
    # written beside `out` under a temporary name, renamed when complete; removed on any
    # error, Ctrl-C or SIGTERM (robot_ssl.io.outputs)
    with atomic_output(out) as tmp:
        writer = SessionWriter(
            tmp,
            robot=robot_spec,
            camera=camera_spec,
            frame_format=frame_format,
            jpeg_quality=jpeg_quality,
            metadata=metadata,
            truth_sensors=robot_spec.num_prox,
            overwrite=True,
        )
        bar = tqdm(
            total=round(duration_s, 3),
            unit="sim s",
            disable=not progress,
            desc=f"sim {w.name}",
            bar_format=(
                "{l_bar}{bar}| {n:.0f}/{total:.0f} sim s [{elapsed}<{remaining}, {rate_fmt}]"
            ),
        )
        try:
            recorder = Recorder(
                sim.robot,
                sim.camera,
                writer,
                RecorderConfig(
                    camera_fps=sim.camera_params.fps, jpeg_quality=jpeg_quality, status=False
                ),
                clock=_ProgressClock(sim.clock, bar),
                controller=wander_controller(robot_spec, seed),
                truth=sim.robot.truth,
            )
            stats = recorder.run_stepped(duration_s)
            writer.close()
            bar.update(max(0.0, bar.total - bar.n))
        except BaseException:
            with contextlib.suppress(Exception):
                writer.close()
            raise
        finally:
            bar.close()
    return stats


@contextlib.contextmanager
def sim_errors() -> Iterator[None]:
    """The simulator's own errors (SimError: bad world file, bad parameter) as one-line
    robot_ssl errors."""
    from sim.errors import SimError

    try:
        yield
    except SimError as e:
        raise SimCommandError(str(e)) from None


def show_world(
    world: str | None,
    seed: int,
    out_dir: str | os.PathLike,
    *,
    split: str = "train",
    robot_spec: Any = None,
    camera_spec: Any = None,
    start_pose: Any = None,
    wander_s: float = 0.0,
) -> tuple[tuple[Path, Path], tuple[float, float, float]]:
    """Top-down map and camera view PNGs of a world (after `wander_s` of wandering) in
    `out_dir`: ((topdown.png, camera.png), final pose)."""
    import cv2
    import numpy as np

    from robot_ssl.io.outputs import atomic_output, check_writable
    from robot_ssl.recording.wander import wander_controller
    from sim.topdown import draw_topdown

    sim = make_simulator(
        world, seed, split=split, robot_spec=robot_spec, camera_spec=camera_spec,
        start_pose=start_pose,
    )  # fmt: skip
    w = sim.world
    trajectory = [sim.pose]
    if wander_s > 0:
        ctrl = wander_controller(_robot_spec_or_default(robot_spec), seed)
        end = sim.clock.now_ns() + int(wander_s * 1e9)
        while sim.clock.now_ns() < end:
            r = sim.robot.read()
            sim.robot.set_wheel_targets(*ctrl.command(r.proximity, r.t_ns))
            sim.clock.sleep_until_ns(r.t_ns + 20_000_000)
            trajectory.append(sim.pose)
    out = check_writable(out_dir)  # one line when the folder cannot be written
    top = draw_topdown(
        w,
        sim.pose,
        ir=sim.ir,
        body_radius_m=sim.drive_params.body_radius_m,
        hfov_rad=sim.camera_params.hfov_rad,
        camera_x_m=sim.camera_params.x_m,
        trajectory=np.array(trajectory) if len(trajectory) > 1 else None,
    )
    view = sim.renderer.render(sim.pose, sim.t_s, np.random.default_rng([seed, 0xC0]))
    paths = (out / f"{w.name}_topdown.png", out / f"{w.name}_camera.png")
    for path, img in zip(paths, (top, view)):
        ok, png = cv2.imencode(".png", img)
        if not ok:
            raise SimCommandError(f"cannot encode {path}")
        with atomic_output(path) as tmp:
            tmp.write_bytes(png.tobytes())
    x, y, th = sim.pose
    return paths, (float(x), float(y), float(th))


def _robot_spec_or_default(robot_spec: Any = None) -> Any:
    from robot_ssl.core.spec import RobotSpec

    return robot_spec or RobotSpec()


def serve_virtual_thymio(
    world: str | None,
    seed: int,
    *,
    split: str = "train",
    robot_spec: Any = None,
    camera_spec: Any = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    pty: bool = False,
    time_scale: float = 1.0,
    duration_s: float | None = None,
    announce: Any = None,
    layout: str = "playground",
) -> None:
    """Serve a simulated Thymio speaking Aseba on TCP and/or a pseudo-terminal for
    `duration_s` (None: until interrupted); `announce(url, world_name)` for each.
    `layout`: the Thymio it is on the wire, "playground" or "firmware14"."""
    import threading

    from sim.virtual_thymio import VirtualThymio

    sim = make_simulator(
        world, seed, split=split, robot_spec=robot_spec, camera_spec=camera_spec, camera=False
    )
    stop = threading.Event()
    with VirtualThymio(sim, time_scale=time_scale, layout=layout) as vt:
        if port:
            h, p = vt.serve_tcp(host, port)
            if announce:
                announce(f"socket://{h}:{p}", sim.world.name)
        if pty:
            url = vt.serve_pty()
            if announce:
                announce(url, sim.world.name)
        stop.wait(duration_s)


def named_worlds() -> tuple[list[tuple[str, Any]], Path]:
    """[(name, World)] of the scenario files that ship with the simulator, and their folder."""
    from sim.world import WORLDS_DIR, list_worlds, load_world

    return [(name, load_world(name)) for name in list_worlds()], Path(WORLDS_DIR)


def write_generated_world(
    out: str | os.PathLike, seed: int, split: str = "train", name: str | None = None
) -> Any:
    """Generate a world from `seed` (train or held-out looks) and write it as YAML."""
    from robot_ssl.io.outputs import atomic_output
    from sim.world import save_world
    from sim.worldgen import WorldGenConfig, generate_world

    w = generate_world(seed, WorldGenConfig(split=split), name=name)
    with atomic_output(out) as tmp:  # one line when it cannot be written
        save_world(w, tmp)
    return w
