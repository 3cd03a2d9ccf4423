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
    "sim_clocks",
    "sim_errors",
    "sim_metadata",
    "sim_params",
    "write_generated_world",
]


class SimCommandError(RobotSSLError):
    """A simulator command failed (bad world, bad option); printed as one line."""


def sim_params(robot_spec: Any, camera_spec: Any) -> tuple[Any, Any, Any]:
    """(DriveParams, IRParams, CameraParams) of the simulator from RobotSpec / CameraSpec.

    The sensor ring is whatever the spec lists: each sensor's pose, kind, field of view
    and reach (`RobotSpec.reach_m`) go to IRParams (sim.ir, sim.range_sensors); a spec
    naming a kind the simulator does not know is a SimCommandError."""
    from sim.camera import CameraParams
    from sim.ir import IRParams
    from sim.kinematics import DriveParams

    drive = DriveParams(
        axle_length_m=robot_spec.axle_length_m,
        speed_m_per_unit=robot_spec.speed_m_per_unit,
        max_speed_units=robot_spec.max_speed_units,
        body_radius_m=robot_spec.body_radius_m,
    )
    unknown = robot_spec.unknown_sensors()
    if unknown:
        s = robot_spec.prox_sensors[unknown[0]]
        raise SimCommandError(f"cannot simulate sensor {s.name!r}: unknown kind {s.kind!r}")
    sensors = robot_spec.prox_sensors
    mixed = any(s.kind != "ir" for s in sensors)
    ir = IRParams(
        poses=tuple(robot_spec.prox_poses()),
        range_m=robot_spec.prox_range_m,
        m=float(robot_spec.prox_max),
        kinds=tuple(s.kind for s in sensors) if mixed else (),
        fov_rad=tuple(float(s.fov_rad) for s in sensors) if mixed else (),
        reach_m=robot_spec.reaches_m() if mixed else (),
        body_radius_m=robot_spec.body_radius_m,
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


def sim_clocks(
    *,
    camera_latency_ms: float | None = None,
    camera_jitter_ms: float | None = None,
    exposure_ms: float | None = None,
    drop_rate: float | None = None,
    ideal_clocks: bool = False,
) -> tuple[Any, Any, bool]:
    """(CameraTiming, RobotTiming, stream) of the simulator: the realistic defaults
    (sim.camera_timing) with the given overrides; `ideal_clocks`: the old simulator's
    (frames stamped at exposure, never late or lost; proximity on the 10 Hz grid from the
    start; polled readings stamped when read), overrides refused."""
    from sim.camera_timing import CameraTiming, RobotTiming

    given = {
        "latency_ms": camera_latency_ms,
        "jitter_ms": camera_jitter_ms,
        "exposure_ms": exposure_ms,
        "drop_rate": drop_rate,
    }
    given = {k: float(v) for k, v in given.items() if v is not None}
    if ideal_clocks:
        if given:
            raise SimCommandError("ideal clocks take no camera timing options")
        return CameraTiming.ideal(), RobotTiming.ideal(), False
    return CameraTiming(**given), RobotTiming(), True


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
    camera_timing: Any = None,
    robot_timing: Any = None,
    stream: bool = True,
    ir_model: str | None = None,
) -> Any:
    """A Simulator for `world` (a World, a name or file, or None: generated from `seed` in
    `split`) with the robot's and camera's parameters from the specs (Thymio defaults).

    `camera_timing` / `robot_timing` (sim.camera_timing; None: the realistic defaults,
    `sim_clocks()` builds them from options), `stream` (the robot pushes its readings,
    else it is polled) and `ir_model` ("physical" or "enki"; None: IRParams' default)."""
    import dataclasses

    from robot_ssl.core.spec import CameraSpec, RobotSpec
    from sim.camera_timing import CameraTiming, RobotTiming
    from sim.simulator import Simulator

    robot_spec = robot_spec or RobotSpec()
    camera_spec = camera_spec or CameraSpec()
    if world is None or isinstance(world, (str, Path)):
        world = resolve_world(str(world) if world is not None else None, seed, split)
    drive, ir, cam = sim_params(robot_spec, camera_spec)
    if ir_model is not None:
        if not any(f.name == "model" for f in dataclasses.fields(ir)):
            raise SimCommandError("this simulator's IR model cannot be chosen (no IRParams.model)")
        ir = dataclasses.replace(ir, model=ir_model)
    return Simulator(
        world,
        seed=seed,
        drive=drive,
        ir=ir,
        camera=cam if camera else None,
        start_ns=start_ns,
        realtime=realtime,
        start_pose=start_pose,
        camera_timing=camera_timing if camera_timing is not None else CameraTiming(),
        robot_timing=robot_timing if robot_timing is not None else RobotTiming(),
        stream=stream,
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
    camera_latency_ms: float | None = None,
    camera_jitter_ms: float | None = None,
    exposure_ms: float | None = None,
    drop_rate: float | None = None,
    ideal_clocks: bool = False,
    ir_model: str | None = None,
    drive: str = "wander",
    start_pose: Any = None,
) -> Any:
    """Record `minutes` of simulated driving (`drive`: "wander" with the IR sensors,
    "contact" by touching, see robot_ssl.recording.record.DRIVES) into the session file
    `out`; returns the recorder's RecordingStats. The file appears only when complete.

    The robot's and camera's clocks are realistic unless `ideal_clocks` (see
    `sim_clocks`; None keeps a default: latency 80 ms, jitter 8 ms, exposure 20 ms, 1 %
    dropped frames, proximity on its own phase, readings streamed over a 3 ms link).
    The session's metadata says which ("sim_camera_timing", "sim_robot_timing",
    "truth_geometry", "ir_model"). `start_pose`: (x_m, y_m, theta_rad), "random" (a free
    pose drawn from `seed`, whatever the world's) or None (the world's, else random)."""
    from tqdm import tqdm

    from robot_ssl.core.outputs import atomic_output
    from robot_ssl.core.spec import CameraSpec, RobotSpec
    from robot_ssl.io.session import SessionWriteError, SessionWriter
    from robot_ssl.recording.record import DRIVES, drive_controller
    from robot_ssl.recording.recorder import Recorder, RecorderConfig
    from robot_ssl.recording.sampler import robot_streams, truth_streams

    out = Path(out)
    if out.exists() and not overwrite:
        raise SessionWriteError(f"{out} exists (pass --overwrite to replace it)")
    if not minutes > 0 or not math.isfinite(minutes):
        raise SimCommandError("--minutes must be > 0")
    if drive not in DRIVES or drive == "none":
        raise SimCommandError(f"--drive: one of wander, contact, not {drive!r}")
    robot_spec = robot_spec or RobotSpec()
    camera_spec = camera_spec or CameraSpec()
    with sim_errors():
        camera_timing, robot_timing, stream = sim_clocks(
            camera_latency_ms=camera_latency_ms,
            camera_jitter_ms=camera_jitter_ms,
            exposure_ms=exposure_ms,
            drop_rate=drop_rate,
            ideal_clocks=ideal_clocks,
        )
    sim = make_simulator(
        world,
        seed,
        split=split,
        robot_spec=robot_spec,
        camera_spec=camera_spec,
        camera_timing=camera_timing,
        robot_timing=robot_timing,
        stream=stream,
        ir_model=ir_model,
        start_pose=start_pose,
    )
    w = sim.world
    metadata = {
        "world": w.name,
        "seed": seed,
        "source": "sim",
        "split": w.split,
        "recorded_by": "robot-ssl sim record",
        "drive": drive,
        **sim_metadata(sim),
    }
    duration_s = minutes * 60.0
    # written beside `out` under a temporary name, renamed when complete; removed on any
    # error, Ctrl-C or SIGTERM (robot_ssl.core.outputs)
    with atomic_output(out) as tmp:
        writer = SessionWriter(
            tmp,
            robot=robot_spec,
            camera=camera_spec,
            frame_format=frame_format,
            jpeg_quality=jpeg_quality,
            metadata=metadata,
            truth_sensors=robot_spec.num_prox,
            # the simulated robot streams its accelerometer; truth: its contact onsets
            streams=(*robot_streams(sim.robot), *truth_streams(sim.robot.truth)),
            overwrite=True,
            # the recorder flushes every 0.5 simulated s (one flush policy, on the
            # simulated clock): the file grows in time order as a real recording does,
            # and the same on every run, whatever the speed of the machine
            flush_interval_s=math.inf,
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
                    camera_fps=_camera_poll_hz(sim), jpeg_quality=jpeg_quality, status=False
                ),
                clock=_ProgressClock(sim.clock, bar),
                controller=drive_controller(drive, robot_spec, seed),
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


def sim_metadata(sim: Any, camera: bool = True) -> dict[str, Any]:
    """What a session needs to know of the simulator's clocks and truth: the camera's
    timing ("sim_camera_timing": latency_ms, jitter_ms, exposure_ms, drop_rate, phase_ms;
    a frame's stamp is its mid-exposure plus latency_ms on average), the robot's
    ("sim_robot_timing": streamed or polled, proximity phase, link latency and jitter),
    the truth's geometry and the IR model; `camera` False: not the simulator's camera."""
    rt = sim.robot_timing
    out: dict[str, Any] = {
        "sim_robot_timing": {
            "stream": bool(sim.stream),
            "prox_phase_ms": sim.prox_phase_ns / 1e6,
            "link_latency_ms": float(rt.link_latency_ms),
            "link_jitter_ms": float(rt.link_jitter_ms),
        },
        "truth_geometry": sim.truth_geometry,
    }
    if camera and sim.camera is not None:
        out["sim_camera_timing"] = sim.camera_timing.as_metadata(sim.camera.phase_ns)
    model = getattr(sim.ir_params, "model", None)
    if model is not None:
        out["ir_model"] = str(model)
    return out


def _camera_poll_hz(sim: Any) -> float:
    """How often the stepped recorder looks for a frame: at its rate when frames come on
    the recorder's grid (ideal clocks), else every physics step (frames arrive jittered;
    polling at the frame rate would miss those that arrive two in one poll period)."""
    fps = float(sim.camera_params.fps)
    if sim.camera is None or sim.camera_timing.is_ideal:
        return fps
    return max(fps, 1e9 / sim.dt_ns)


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

    from robot_ssl.core.outputs import atomic_output, check_writable
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
    `layout`: the Thymio it is on the wire, "playground" or "firmware14". A transport
    that cannot open (port in use, unknown host, no pseudo-terminal) raises
    sim.errors.ServeError, which the CLI prints as one line (`sim_errors`). The robot is
    a Thymio: a spec whose sensors are not 7 IR is a SimCommandError (its
    `prox.horizontal` has 7 IR words)."""
    import threading

    from sim.virtual_thymio import VirtualThymio

    kinds = tuple(s.kind for s in robot_spec.prox_sensors) if robot_spec is not None else ()
    if robot_spec is not None and kinds != ("ir",) * 7:
        raise SimCommandError(
            f"the virtual Thymio has 7 IR sensors (prox.horizontal): the spec lists"
            f" {len(kinds)} ({', '.join(dict.fromkeys(kinds))}); record such a robot with"
            " `sim record --spec` or `record --robot sim`"
        )

    sim = make_simulator(
        world,
        seed,
        split=split,
        robot_spec=robot_spec,
        camera_spec=camera_spec,
        camera=False,
        stream=False,  # the VirtualThymio is the robot: it reads the simulator directly
    )
    stop = threading.Event()
    with VirtualThymio(sim, time_scale=time_scale, layout=layout) as vt:
        urls = []  # every transport opens before any is announced: a failure is one line
        if port:
            h, p = vt.serve_tcp(host, port)
            urls.append(f"socket://{h}:{p}")
        if pty:
            urls.append(vt.serve_pty())
        for url in urls if announce else ():
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
    from robot_ssl.core.outputs import atomic_output
    from sim.world import save_world
    from sim.worldgen import WorldGenConfig, generate_world

    w = generate_world(seed, WorldGenConfig(split=split), name=name)
    with atomic_output(out) as tmp:  # one line when it cannot be written
        save_world(w, tmp)
    return w
