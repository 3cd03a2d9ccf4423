"""The simulator: one world, one robot, one camera on a simulated clock.

`Simulator` owns the state and steps physics at a fixed `dt` (10 ms by default):
motor lag, slip and collisions every step, measured wheel speeds every step
(100 Hz, like the Thymio firmware), proximity every 1/rate (10 Hz). Its three
faces implement robot_ssl's device protocols by shape (without importing it):

- `SimClock` (`sim.clock`): `now_ns()`, and `sleep_until_ns(t)`, which steps the
  physics until the simulated time reaches t (it may overshoot by less than one
  step, like a real sleep). In real-time mode it also waits for the wall clock.
- `SimRobot` (`sim.robot`): `read()`, `set_wheel_targets()`, `stop()`, `close()`,
  plus `truth()` (true pose and true distance along every sensor axis).
- `SimCamera` (`sim.camera`): `read()` gives the newest frame, rendered at its
  own capture time (frames at k / fps) from the pose interpolated between physics
  steps; a frame is rendered once however often it is read.

Deterministic: every random draw comes from generators seeded from `seed`
(numpy SeedSequence, one stream per component; the camera noise of frame k is
seeded by (seed, k), so it does not depend on how often frames are read).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from typing import NamedTuple

import numpy as np

from sim.camera import CameraParams, Renderer
from sim.errors import SimError
from sim.ir import IRParams, IRSensors
from sim.kinematics import DiffDrive, DriveParams
from sim.raycast import point_distances
from sim.world import World

__all__ = ["SimCamera", "SimClock", "SimFrame", "SimReading", "SimRobot", "SimTruth", "Simulator"]


_DEFAULT_CAMERA = CameraParams()


class SimReading(NamedTuple):
    """One robot read: proximity int16 (7,), measured wheel speeds int16 (2,), targets."""

    t_ns: int
    proximity: np.ndarray
    wheel_speed: np.ndarray
    wheel_target: np.ndarray


class SimFrame(NamedTuple):
    """One camera frame: capture time, BGR uint8 image, capture counter."""

    t_ns: int
    image: np.ndarray
    index: int


class SimTruth(NamedTuple):
    """Simulator truth at t_ns: true pose (x_m, y_m, theta_rad) and the true distance (m)
    from each proximity sensor along its axis to the nearest obstacle."""

    t_ns: int
    pose: np.ndarray
    prox_distance_m: np.ndarray


class Simulator:
    """A world, a robot and a camera stepped on a simulated clock.

    Faces: `clock` (SimClock), `robot` (SimRobot), `camera` (SimCamera or None).
    Internals other tools may read: `drive` (DiffDrive: true `pose`, `bumping`,
    `measured`), `ir` (IRSensors: `values(pose)`, `true_distances(pose)`), `renderer`
    (Renderer or None), `t_ns`, `start_ns`, `dt_ns`, `lock` (held while stepping).
    """

    def __init__(
        self,
        world: World,
        *,
        seed: int = 0,
        drive: DriveParams | None = None,
        ir: IRParams | None = None,
        camera: CameraParams | None = _DEFAULT_CAMERA,
        dt_s: float = 0.01,
        start_pose: tuple[float, float, float] | None = None,
        start_ns: int = 0,
        realtime: bool = False,
        time_scale: float = 1.0,
    ) -> None:
        """`camera=None` simulates no camera (faster). `start_pose` overrides the world's;
        with neither, a free pose is drawn from the seed. `realtime` paces the clock to the
        wall clock (`time_scale` simulated seconds per wall second)."""
        if dt_s <= 0 or time_scale <= 0:
            raise SimError("dt_s and time_scale must be > 0")
        self.world = world
        self.seed = int(seed)
        self.drive_params = drive or DriveParams()
        self.ir_params = ir or IRParams()
        self.camera_params = camera
        self.dt_ns = round(dt_s * 1e9)
        self.lock = threading.RLock()
        geo = world.geometry()
        ss = np.random.SeedSequence([self.seed, 0x51A])
        s_drive, s_ir, s_start = ss.spawn(3)
        self._camera_seed = [self.seed, 0xCA3]
        self.ir = IRSensors(
            self.ir_params,
            geo.segments,
            geo.segments_height_m,
            geo.segments_reflectance,
            geo.circles,
            geo.circle_height_m,
            geo.circle_reflectance,
        )
        self._ir_rng = np.random.default_rng(s_ir)
        if start_pose is None:
            start_pose = world.start_pose
        if start_pose is None:
            start_pose = self.random_free_pose(np.random.default_rng(s_start))
        self.drive = DiffDrive(
            self.drive_params,
            geo.segments,
            geo.circles,
            np.asarray(start_pose, float),
            np.random.default_rng(s_drive),
        )
        self.t_ns = int(start_ns)
        self.start_ns = int(start_ns)
        self.ir_period_ns = round(1e9 / self.ir_params.rate_hz)
        self._next_ir_ns = self.t_ns
        self.proximity = np.zeros(self.ir_params.num_sensors, np.int16)
        self._history: deque[tuple[int, np.ndarray]] = deque(maxlen=256)
        self._history.append((self.t_ns, self.drive.pose.copy()))
        self._update_ir()
        self.renderer = Renderer(world, camera) if camera is not None else None
        self.clock = SimClock(self, realtime=realtime, time_scale=time_scale)
        self.robot = SimRobot(self)
        self.camera = SimCamera(self) if camera is not None else None

    # ------------------------------------------------------------------ state

    @property
    def pose(self) -> np.ndarray:
        """True robot pose (x_m, y_m, theta_rad) now."""
        return self.drive.pose.copy()

    @property
    def t_s(self) -> float:
        """Simulated seconds since the start."""
        return (self.t_ns - self.start_ns) / 1e9

    def random_free_pose(self, rng: np.random.Generator, clearance_m: float = 0.06) -> np.ndarray:
        """A pose whose body is at least `clearance_m` away from every obstacle."""
        geo = self.world.geometry()
        xmin, ymin, xmax, ymax = geo.arena_bounds
        r = self.drive_params.body_radius_m + clearance_m
        off = self.drive_params.body_offset_x_m
        for _ in range(10000):
            x, y = rng.uniform(xmin + r, xmax - r), rng.uniform(ymin + r, ymax - r)
            th = rng.uniform(-math.pi, math.pi)
            c = np.array([x + off * math.cos(th), y + off * math.sin(th)])
            d, _ = point_distances(c, geo.segments, geo.circles)
            if d.size == 0 or d.min() >= r:
                return np.array([x, y, th])
        raise SimError(f"world {self.world.name!r}: no free space for the robot")

    def pose_at(self, t_ns: int) -> np.ndarray:
        """True pose at a past time within the last ~2.5 s, interpolated between steps."""
        with self.lock:
            hist = self._history
            if t_ns >= hist[-1][0]:
                return hist[-1][1].copy()
            if t_ns <= hist[0][0]:
                return hist[0][1].copy()
            for i in range(len(hist) - 1, 0, -1):
                t0, p0 = hist[i - 1]
                if t0 <= t_ns:
                    t1, p1 = hist[i]
                    a = (t_ns - t0) / (t1 - t0)
                    dth = math.atan2(math.sin(p1[2] - p0[2]), math.cos(p1[2] - p0[2]))
                    out = p0 + a * (p1 - p0)
                    out[2] = math.atan2(math.sin(p0[2] + a * dth), math.cos(p0[2] + a * dth))
                    return out
            return hist[0][1].copy()

    # ------------------------------------------------------------------ stepping

    def step(self) -> None:
        """One physics step of dt."""
        with self.lock:
            self.drive.step(self.dt_ns / 1e9)
            self.t_ns += self.dt_ns
            self._history.append((self.t_ns, self.drive.pose.copy()))
            if self.t_ns >= self._next_ir_ns:
                self._update_ir()

    def _update_ir(self) -> None:
        self.proximity = self.ir.values(self.drive.pose, self._ir_rng)
        while self._next_ir_ns <= self.t_ns:
            self._next_ir_ns += self.ir_period_ns

    def advance_to(self, t_ns: int) -> None:
        """Step until the simulated time is at or after t_ns."""
        while self.t_ns < t_ns:
            self.step()

    def truth(self) -> SimTruth:
        """True pose and true distances along the sensor axes now."""
        with self.lock:
            pose = self.drive.pose.copy()
            return SimTruth(self.t_ns, pose, self.ir.true_distances(pose))

    def render_at(self, t_ns: int, index: int) -> np.ndarray:
        """The camera image at a (recent) time; noise seeded by (seed, index)."""
        if self.renderer is None:
            raise SimError("this simulator has no camera")
        pose = self.pose_at(t_ns)
        rng = np.random.default_rng([*self._camera_seed, index])
        return self.renderer.render(pose, (t_ns - self.start_ns) / 1e9, rng)

    def run_realtime(self, stop: threading.Event, time_scale: float | None = None) -> None:
        """Step in real time until `stop` is set (for a server's background thread)."""
        scale = time_scale or self.clock.time_scale
        wall0 = time.monotonic_ns()
        sim0 = self.t_ns
        while not stop.is_set():
            target = sim0 + int((time.monotonic_ns() - wall0) * scale)
            with self.lock:
                self.advance_to(target)
            next_wall = wall0 + int((self.t_ns + self.dt_ns - sim0) / scale)
            delay = (next_wall - time.monotonic_ns()) / 1e9
            if delay > 0:
                stop.wait(delay)


class SimClock:
    """The simulated clock: waiting on it is what advances the simulation."""

    def __init__(self, sim: Simulator, realtime: bool = False, time_scale: float = 1.0) -> None:
        self.sim = sim
        self.realtime = realtime
        self.time_scale = time_scale
        self._wall0: int | None = None
        self._sim0 = sim.t_ns

    def now_ns(self) -> int:
        """Simulated time (ns)."""
        return self.sim.t_ns

    def sleep_until_ns(self, t_ns: int) -> None:
        """Step the physics until t_ns (at most one step past it); in real-time mode also
        wait until the wall clock has caught up."""
        if self.realtime:
            if self._wall0 is None:
                self._wall0, self._sim0 = time.monotonic_ns(), self.sim.t_ns
            wall_target = self._wall0 + (t_ns - self._sim0) / self.time_scale
            delay = (wall_target - time.monotonic_ns()) / 1e9
            if delay > 0:
                time.sleep(delay)
        self.sim.advance_to(t_ns)


class SimRobot:
    """The simulated Thymio as a robot_ssl `Robot` (by shape)."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.closed = False

    def read(self) -> SimReading:
        """Proximity (updated at 10 Hz) and measured wheel speeds (100 Hz) now."""
        s = self.sim
        with s.lock:
            return SimReading(
                s.t_ns,
                s.proximity.copy(),
                s.drive.measured.copy(),
                s.drive.targets.astype(np.int16),
            )

    def set_wheel_targets(self, left: int, right: int) -> None:
        """Command wheel speeds in raw units (clipped to +-max_speed_units)."""
        with self.sim.lock:
            self.sim.drive.set_targets(int(left), int(right))

    @property
    def targets(self) -> tuple[int, int]:
        t = self.sim.drive.targets
        return int(t[0]), int(t[1])

    def stop(self) -> None:
        self.set_wheel_targets(0, 0)

    def close(self) -> None:
        """Stop the motors; idempotent."""
        if not self.closed:
            self.stop()
            self.closed = True

    def truth(self) -> SimTruth:
        """(t_ns, true pose (3,), true distance per proximity sensor (m))."""
        return self.sim.truth()


class SimCamera:
    """The simulated camera as a robot_ssl `Camera` (by shape): frames at k / fps."""

    def __init__(self, sim: Simulator) -> None:
        if sim.camera_params is None:
            raise SimError("the simulator has no camera")
        self.sim = sim
        self.fps = sim.camera_params.fps
        self._cache: SimFrame | None = None
        self.renders = 0  # frames actually rendered (the cache makes re-reads free)

    def frame_time_ns(self, index: int) -> int:
        return self.sim.start_ns + round(index * 1e9 / self.fps)

    def read(self) -> SimFrame | None:
        """The newest frame captured at or before now (rendered on first read)."""
        sim = self.sim
        with sim.lock:
            now = sim.t_ns
            k = math.floor((now - sim.start_ns) * self.fps / 1e9 + 1e-9)
            if self.frame_time_ns(k) > now:
                k -= 1
            if k < 0:
                return None
            if self._cache is not None and self._cache.index == k:
                return self._cache
            t = self.frame_time_ns(k)
            image = sim.render_at(t, k)
            self.renders += 1
            self._cache = SimFrame(t, image, k)
            return self._cache

    def close(self) -> None:
        """Nothing to release."""
