"""Closed loop in the simulator: the drive loop (robot_ssl.runtime) driving a simulated
robot with the camera policy (`LiveLoop`) or the IR baseline's proximity policy.

This module is command-line layer: it is where `sim` meets the runtime.

- `closed_loop_trial(...)` runs one controller in one world for some simulated minutes
  on the simulator's stepped clock (deterministic for a deterministic predictor, much
  faster than real time) and returns collisions, speeds and latencies.
- `OraclePredictor` is perfect perception: the grid the auto-labeller would give for
  the current pose, from the simulator's geometry. It bounds what a trained detector
  can achieve with the same controller, and is a test double that needs no model.
- `open_virtual_thymio(...)` serves a simulated robot as a virtual Thymio II over a
  pseudo-terminal (or TCP) and opens it with firmware_bridge, exactly like a real
  robot, with a camera rendered from the same simulation (same process: the
  `VirtualThymio` steps the `Simulator` it was given, and `SimCamera` renders it).

Collisions are rising edges of `sim.drive.bumping`, checked after every physics step
(10 ms) by the trial's clock, and debounced: a new contact counts only after the body
was free for `debounce_s` (sliding along a wall or pushing against it is one
collision). Mean forward speed is the true pose's displacement projected on its
heading, summed over physics steps, over the trial time (turning in place and
sliding sideways add nothing, reversing subtracts); the path speed (total distance
over time) is reported too.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from robot_ssl.core.odometry import OdometryIntegrator
from robot_ssl.core.sensor_rule import NO_RETURN_MM, ir_equivalent
from robot_ssl.core.spec import CameraSpec, RobotSpec
from robot_ssl.inference.model_config import ModelConfig
from robot_ssl.inference.predictor import DEFAULT_DISTANCES_M, grid_distances
from robot_ssl.live.controllers import AvoidConfig, CameraAvoidController, IRReactiveController
from robot_ssl.live.loop import LiveConfig, LiveLoop
from robot_ssl.recording.sampler import RobotSampler
from robot_ssl.runtime.loop import DriveLoop, LoopConfig, LoopResult
from robot_ssl.runtime.policies import ProximityPolicy
from robot_ssl.simlink.simulator import make_simulator

__all__ = [
    "DEFAULT_LATENCY_S",
    "OraclePredictor",
    "TrialClock",
    "closed_loop_trial",
    "make_simulator",
    "realtime_trial",
]

# Capture-to-command latency modelled in simulated time, per controller: the camera's
# covers frame pick-up and inference on a Raspberry-Pi-class computer (measured here:
# see docs/live.md), the IR one a serial round trip of the proximity read.
DEFAULT_LATENCY_S = {"camera": 0.05, "ir": 0.02}


class TrialClock:
    """The simulator's clock, stepped one physics step at a time to measure the trial:
    collisions (debounced rising edges of `bumping`), contact time, forward displacement
    along the heading and path length."""

    def __init__(
        self,
        sim: Any,
        debounce_s: float = 0.5,
        *,
        pace: float | None = None,
        mark_every_s: float | None = None,
        on_mark: Any = None,
    ) -> None:
        self.sim = sim
        # pace: simulated seconds per wall second at most (None: as fast as the CPU
        # goes), for what runs on the wall clock beside the loop (a learner thread)
        self.pace = pace
        self._wall0 = time.perf_counter()
        self.mark_ns = None if mark_every_s is None else round(mark_every_s * 1e9)
        self.on_mark = on_mark  # called with the simulated seconds at every mark
        self._next_mark = None if self.mark_ns is None else sim.start_ns + self.mark_ns
        self.debounce_ns = int(debounce_s * 1e9)
        self.collisions = 0
        self.contact_steps = 0
        self.forward_m = 0.0
        self.path_m = 0.0
        self.events: list[tuple[float, float, float, float]] = []  # (t_s, x, y, theta)
        self._last_contact_ns: int | None = None
        self._pose = sim.pose

    def now_ns(self) -> int:
        return self.sim.t_ns

    def sleep_until_ns(self, t_ns: int) -> None:
        sim = self.sim
        while sim.t_ns < t_ns:
            sim.step()
            pose = sim.drive.pose
            dx, dy = pose[0] - self._pose[0], pose[1] - self._pose[1]
            dth = math.atan2(math.sin(pose[2] - self._pose[2]), math.cos(pose[2] - self._pose[2]))
            mid = self._pose[2] + 0.5 * dth
            self.forward_m += dx * math.cos(mid) + dy * math.sin(mid)
            self.path_m += math.hypot(dx, dy)
            self._pose = pose.copy()
            if sim.drive.bumping:
                self.contact_steps += 1
                last = self._last_contact_ns
                if last is None or sim.t_ns - last > self.debounce_ns:
                    self.collisions += 1
                    t_s = (sim.t_ns - sim.start_ns) / 1e9
                    self.events.append((t_s, float(pose[0]), float(pose[1]), float(pose[2])))
                self._last_contact_ns = sim.t_ns
            if self._next_mark is not None and sim.t_ns >= self._next_mark:
                self._next_mark += self.mark_ns
                if self.on_mark is not None:
                    self.on_mark((sim.t_ns - sim.start_ns) / 1e9)
        if self.pace is not None:
            ahead = (sim.t_ns - sim.start_ns) / 1e9 / self.pace - (
                time.perf_counter() - self._wall0
            )
            if ahead > 0:
                time.sleep(ahead)


class OraclePredictor:
    """Perfect perception for the camera controller, from the simulator's geometry.

    Cell (s, d) is 1 when sensor s, noise-free, would read an obstacle after the robot
    drove d straight on from its current true pose: the auto-labeller's rule with
    perfect odometry. Images are ignored (preprocess returns an empty batch row).
    """

    def __init__(
        self,
        sim: Any,
        distances_m: np.ndarray | None = None,
        sensor_indices: tuple[int, ...] = (0, 1, 2, 3, 4),
    ) -> None:
        self.sim = sim
        d = np.asarray(DEFAULT_DISTANCES_M if distances_m is None else distances_m, float)
        self.distances_m = d
        self.sensor_indices = list(sensor_indices)
        self.config = ModelConfig(  # its output grid: what a predictor's config tells
            num_sensors=len(self.sensor_indices),
            num_distances=len(d),
            distances_m=tuple(float(x) for x in d),
            sensor_indices=tuple(self.sensor_indices),
        )

    def grid(self, pose: np.ndarray) -> np.ndarray:
        """(S, D) float32 0/1 grid at a true pose: the simulator's own noise-free IR model
        (sim.ir.IRSensors.values_at) at the poses d straight ahead, in one ray cast."""
        x, y, th = (float(v) for v in pose)
        d = self.distances_m
        ahead = np.stack([x + d * math.cos(th), y + d * math.sin(th), np.full_like(d, th)], 1)
        values = self.sim.ir.values_at(ahead)[:, self.sensor_indices]  # (D, S)
        # a simulated range sensor reads below NO_RETURN_MM only within its reach
        ranged = np.array([self.sim.ir_params.kind(i) == "range" for i in self.sensor_indices])
        hit = np.where(ranged[None, :], values < NO_RETURN_MM, values > 0)
        return hit.T.astype(np.float32)

    def preprocess(self, images_bgr: np.ndarray) -> np.ndarray:
        return np.zeros((len(images_bgr), 1), np.uint8)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return np.stack([self.grid(self.sim.pose) for _ in range(len(batch))])

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self.infer(self.preprocess(np.asarray(images)))


def closed_loop_trial(
    world: Any = None,
    seed: int = 0,
    controller: str = "camera",
    cruise_speed: int = 200,
    minutes: float = 1.0,
    predictor: Any = None,
    camera_spec: CameraSpec | None = None,
    robot_spec: RobotSpec | None = None,
    *,
    avoid: AvoidConfig | None = None,
    latency_s: float | None = None,
    split: str = "heldout",
    fps: float | None = None,
    debounce_s: float = 0.5,
    observers: Any = (),
    pace: float | None = None,
    mark_every_s: float | None = None,
    on_mark: Any = None,
    start_pose: Any = None,
) -> dict[str, Any]:
    """Drive one controller for `minutes` of simulated time in one world; returns a dict:
    world, seed, controller, cruise_speed, minutes, collisions, collisions_per_10min,
    contact_s, mean_forward_speed_m_s, path_speed_m_s, frames, commands,
    watchdog_trips, turns, latency (per stage: median_ms, p99_ms, ...), wall_s.

    `controller`: "camera" (LiveLoop in avoid mode, camera alone; needs `predictor`: a
    Predictor, a model path, or "oracle" for perfect perception) or "ir" (the
    reactive IR baseline at 10 Hz, same steering law over its own range). `world`: a
    World, a name/file, or None for a world generated from `seed` in `split`.
    `latency_s`: capture-to-command latency modelled in simulated time (default
    DEFAULT_LATENCY_S[controller]). `avoid` overrides the law's parameters (its
    cruise_speed is replaced by `cruise_speed`). `observers` watch the camera loop
    (learning while driving); `pace` caps simulated seconds per wall second (a learner
    thread then gets a robot's share of time); `on_mark(t_s)` is called every
    `mark_every_s` of simulated time. `start_pose`: make_simulator's ("random": a free
    pose drawn from `seed`).
    """
    from dataclasses import replace

    if controller not in ("camera", "ir"):
        raise ValueError(f"controller must be 'camera' or 'ir', not {controller!r}")
    if not minutes > 0:
        raise ValueError("minutes must be > 0")
    robot_spec = robot_spec or RobotSpec()
    camera_spec = camera_spec or CameraSpec()
    if fps is not None:
        camera_spec = replace(camera_spec, fps=float(fps))
    if latency_s is None:
        latency_s = DEFAULT_LATENCY_S[controller]
    sim = make_simulator(
        world,
        seed,
        split=split,
        robot_spec=robot_spec,
        camera_spec=camera_spec,
        camera=controller == "camera",
        start_pose=start_pose,
    )
    clock = TrialClock(sim, debounce_s, pace=pace, mark_every_s=mark_every_s, on_mark=on_mark)
    duration_s = minutes * 60.0
    wall0 = time.perf_counter()
    if controller == "camera":
        if predictor is None:
            raise ValueError("the camera controller needs a predictor (or 'oracle')")
        if isinstance(predictor, str) and predictor == "oracle":
            predictor = OraclePredictor(sim)
        elif isinstance(predictor, (str, Path)):
            from robot_ssl.learning.torch_predictor import load_any_predictor

            predictor = load_any_predictor(predictor)
        cfg = replace(avoid or AvoidConfig.for_camera(), cruise_speed=int(cruise_speed))
        loop, ctrl = _camera_loop(sim, predictor, cfg, robot_spec, clock, observers)
        result = loop.run_stepped(duration_s, command_latency_s=latency_s)
        turns = ctrl.law.turns
    else:
        cfg = replace(avoid or AvoidConfig.for_ir(), cruise_speed=int(cruise_speed))
        ir_ctrl = IRReactiveController(
            cfg,
            tuple(robot_spec.front_sensor_indices),
            prox_max=float(robot_spec.prox_max),
            range_m=robot_spec.prox_range_m,
            sensor_poses=np.asarray(robot_spec.prox_poses())[list(robot_spec.front_sensor_indices)],
        )
        result = _ir_trial(sim, ir_ctrl, robot_spec, clock, duration_s, latency_s)
        turns = ir_ctrl.law.turns
    wall_s = time.perf_counter() - wall0
    sim_s = (sim.t_ns - sim.start_ns) / 1e9
    return {
        "world": sim.world.name,
        "seed": seed,
        "controller": controller,
        "cruise_speed": int(cruise_speed),
        "latency_s": latency_s,
        "minutes": sim_s / 60.0,
        "collisions": clock.collisions,
        "collisions_per_10min": clock.collisions * 600.0 / sim_s,
        "collision_poses": [list(e) for e in clock.events],
        "contact_s": clock.contact_steps * sim.dt_ns / 1e9,
        "mean_forward_speed_m_s": clock.forward_m / sim_s,
        "path_speed_m_s": clock.path_m / sim_s,
        "frames": result.frames,
        "commands": result.commands,
        "watchdog_trips": result.watchdog_trips,
        "turns": turns,
        "latency": result.latency,
        "wall_s": wall_s,
        "final_targets": sim.robot.targets,
    }


def _ir_trial(
    sim: Any,
    controller: IRReactiveController,
    robot_spec: RobotSpec,
    clock: Any,
    duration_s: float,
    latency_s: float,
) -> LoopResult:
    """The IR baseline: the drive loop with a proximity policy, deciding on every
    proximity refresh (the simulated IR rate), through the same watchdog."""
    sensors = RobotSampler(sim.robot, OdometryIntegrator(robot_spec), clock)
    command = controller.command
    if any(kind != "ir" for kind in robot_spec.kinds):  # readings as an IR sensor's

        def command(proximity: np.ndarray, *args: Any, **kwargs: Any) -> tuple[int, int]:
            ir = ir_equivalent(np.asarray(proximity).reshape(1, -1), robot_spec)[0]
            return controller.command(ir, *args, **kwargs)

    loop = DriveLoop(
        clock,
        robot=sim.robot,
        sensors=sensors,
        policy=ProximityPolicy(command, trigger="proximity"),
        config=LoopConfig(prox_hz=sim.ir_params.rate_hz),
    )
    return loop.run_stepped(duration_s, command_latency_s=latency_s)


def _camera_loop(
    sim: Any,
    predictor: Any,
    avoid: AvoidConfig,
    robot_spec: RobotSpec,
    clock: Any,
    observers: Any = (),
) -> tuple[LiveLoop, CameraAvoidController]:
    """The camera-only avoidance loop of a trial (avoid mode, the given steering law)."""
    ctrl = CameraAvoidController(
        grid_distances(predictor), avoid, sensor_range_m=robot_spec.prox_range_m
    )
    loop = LiveLoop(
        sim.robot,
        sim.camera,
        predictor,
        ctrl.distances_m,
        LiveConfig(drive="avoid"),
        clock=clock,
        robot_spec=robot_spec,
        controller=ctrl,
        observers=observers,
    )
    return loop, ctrl


def realtime_trial(
    predictor: Any,
    world: Any = None,
    seed: int = 0,
    seconds: float = 10.0,
    cruise_speed: int = 200,
    *,
    split: str = "heldout",
    robot_spec: RobotSpec | None = None,
    camera_spec: CameraSpec | None = None,
    observers: Any = (),
) -> dict[str, Any]:
    """The deploy path on the wall clock: `LiveLoop.run` (threaded: sensor, watchdog and
    capture/inference threads) driving the in-process simulator, stepped in real time by
    a background thread, for `seconds`. Returns frames, commands, watchdog_trips, fps and
    the measured per-stage latency (capture to wheel command: `end_to_end`)."""
    import threading

    robot_spec = robot_spec or RobotSpec()
    sim = make_simulator(
        world,
        seed,
        split=split,
        robot_spec=robot_spec,
        camera_spec=camera_spec,
        start_ns=time.monotonic_ns(),
        realtime=True,
    )
    sim.advance_to(time.monotonic_ns())
    stop = threading.Event()
    stepper = threading.Thread(target=sim.run_realtime, args=(stop,), daemon=True)
    stepper.start()
    try:
        loop, _ = _camera_loop(
            sim, predictor, AvoidConfig.for_camera(cruise_speed), robot_spec, sim.clock, observers
        )
        result = loop.run(seconds)
    finally:
        stop.set()
        stepper.join(2.0)
    return {
        "world": sim.world.name,
        "seconds": result.duration_s,
        "frames": result.frames,
        "fps": result.frames / max(result.duration_s, 1e-9),
        "commands": result.commands,
        "watchdog_trips": result.watchdog_trips,
        "latency": result.latency,
        "final_targets": sim.robot.targets,
    }
