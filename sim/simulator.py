"""The simulator: one world, one robot, one camera on a simulated clock.

`Simulator` owns the state and steps physics at a fixed `dt` (10 ms by default):
motor lag, slip, collisions and stalls every step, measured wheel speeds every step
(100 Hz, like the Thymio firmware), proximity every 1/rate (10 Hz) and the
accelerometer at 16 Hz, each on the robot's own phase; contact onsets are kept as truth. Its three faces implement robot_ssl's device protocols by shape (without
importing it):

- `SimClock` (`sim.clock`): `now_ns()`, and `sleep_until_ns(t)`, which steps the
  physics until the simulated time reaches t (it may overshoot by less than one
  step, like a real sleep). In real-time mode it also waits for the wall clock.
- `SimRobot` (`sim.robot`): `read()`, `set_wheel_targets()`, `stop()`, `close()`,
  `truth()` (true pose and true distance per sensor) and, like a Thymio running the
  onboard program, `drain_stream()`: every proximity refresh and every 100 Hz wheel
  sample since the previous drain, stamped when it reaches the host (its instant plus
  the USB link's latency, `RobotTiming`). `Simulator(stream=False)` polls instead.
- `SimCamera` (`sim.camera`): `read()` gives the newest frame delivered by now. Frame
  k is exposed around t_k = start + phase + k / fps, rendered at the pose at t_k with
  the motion blur of the exposure, delivered and stamped a latency (with jitter) later,
  or lost (`CameraTiming`); a frame is rendered once however often it is read.

`CameraTiming.ideal()`, `RobotTiming.ideal()` and `stream=False` give the old clocks:
frames stamped at k / fps, proximity refreshed at start + n / rate, readings stamped
when read.

Deterministic: every random draw comes from generators seeded from `seed`
(numpy SeedSequence, one stream per component; the draws of frame k and of streamed
sample k are seeded by (seed, k), so they do not depend on how often things are read).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from sim.accelerometer import Accelerometer, AccParams
from sim.camera import CameraParams, Renderer
from sim.camera_timing import CameraTiming, RobotTiming, SampleDraws, bounded_jitter_ns
from sim.errors import SimError
from sim.ir import IRParams, IRSensors
from sim.kinematics import DiffDrive, DriveParams
from sim.raycast import point_distances
from sim.world import World

__all__ = [
    "SimAccSample",
    "SimCamera",
    "SimClock",
    "SimContact",
    "SimFrame",
    "SimProxSample",
    "SimReading",
    "SimRobot",
    "SimStreamBatch",
    "SimTruth",
    "SimWheelSample",
    "Simulator",
]


_DEFAULT_CAMERA = CameraParams()
_DEFAULT_CAMERA_TIMING = CameraTiming()
_DEFAULT_ROBOT_TIMING = RobotTiming()
_MIN_BLUR_PX = 0.5  # shorter motion blur is invisible: not applied (the renderer's bound)
_WHEELS_KEPT = 4096  # streamed samples kept for the next drain (~41 s of wheels)
_PROX_KEPT = 512  # (~51 s of proximity)
_ACC_KEPT = 1024  # (~64 s of accelerometer)
_CONTACTS_KEPT = 100_000  # contact onsets kept in `Simulator.contacts`


class SimReading(NamedTuple):
    """One robot read: proximity int16 (7,), measured wheel speeds int16 (2,), targets."""

    t_ns: int
    proximity: np.ndarray
    wheel_speed: np.ndarray
    wheel_target: np.ndarray


class SimFrame(NamedTuple):
    """One camera frame: delivery time (the host's stamp), BGR uint8 image, frame counter
    k, and the true mid-exposure time t_k (stamp - exposure_t_ns: the camera's latency)."""

    t_ns: int
    image: np.ndarray
    index: int
    exposure_t_ns: int


class SimTruth(NamedTuple):
    """Simulator truth at t_ns: true pose (x_m, y_m, theta_rad), the true distance (m)
    from each proximity sensor to the nearest obstacle it can see (see Simulator.truth),
    and the contact onsets since the previous `SimRobot.truth()` (() from
    `Simulator.truth()`, which drains nothing)."""

    t_ns: int
    pose: np.ndarray
    prox_distance_m: np.ndarray
    contacts: tuple[SimContact, ...] = ()


class SimProxSample(NamedTuple):
    """A streamed proximity refresh (firmware_bridge.stream.ProxSample's shape): arrival
    time at the host, sequence number, the 7 values, the measured speeds at the refresh,
    and the true refresh instant."""

    t_ns: int
    seq: int
    proximity: np.ndarray  # int16 (7,)
    wheel_speed: np.ndarray  # int16 (2,)
    refresh_t_ns: int


class SimWheelSample(NamedTuple):
    """A streamed wheel sample (firmware_bridge.stream.WheelSample's shape): arrival time,
    sequence number, measured speeds, targets, and the true sample instant."""

    t_ns: int
    seq: int
    wheel_speed: np.ndarray  # int16 (2,)
    wheel_target: np.ndarray  # int16 (2,)
    sample_t_ns: int


class SimAccSample(NamedTuple):
    """A streamed accelerometer refresh (16 Hz): arrival time at the host, the firmware's
    acc[0..2], whether a tap fired since the previous refresh, and the true instant."""

    t_ns: int
    acc: np.ndarray  # int16 (3,)
    tap: bool
    sample_t_ns: int


class SimContact(NamedTuple):
    """A contact onset (truth): true time, the point on the body in the robot frame
    (x forward, y left, from the axle midpoint) and in the world (metres)."""

    t_ns: int
    point_m: np.ndarray  # (2,)
    world_m: np.ndarray  # (2,)


class SimStreamBatch(NamedTuple):
    """What arrived since the previous drain (firmware_bridge.stream.StreamBatch's shape);
    `streaming` False (a polled simulator): only notes, call read()."""

    streaming: bool
    proximity: list[SimProxSample]
    wheels: list[SimWheelSample]
    acc: list[SimAccSample]
    notes: list[tuple[int, str, str]]  # (t_ns, kind, message)


def _wrap(a: float) -> float:
    return math.atan2(math.sin(a), math.cos(a))


class Simulator:
    """A world, a robot and a camera stepped on a simulated clock.

    Faces: `clock` (SimClock), `robot` (SimRobot), `camera` (SimCamera or None).
    Contacts: `acc_units` (the firmware's acc, int16 (3,), 16 Hz), `tap_count` (tap
    events so far), `contacts` (every contact onset, SimContact) and `drain_contacts()`;
    `accelerometer` (sim.accelerometer.Accelerometer).
    Internals other tools may read: `drive` (DiffDrive: true `pose`, `bumping`,
    `stalled`, `in_contact`, `measured`), `ir` (IRSensors: `values(pose)`, `true_distances(pose)`), `renderer`
    (Renderer or None), `t_ns`, `start_ns`, `dt_ns`, `lock` (held while stepping),
    `prox_phase_ns` and `prox_updates` (the true refresh instants and values, newest
    256), `camera_timing`, `robot_timing`, `stream`.
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
        start_pose: tuple[float, float, float] | str | None = None,
        start_ns: int = 0,
        realtime: bool = False,
        time_scale: float = 1.0,
        camera_timing: CameraTiming = _DEFAULT_CAMERA_TIMING,
        robot_timing: RobotTiming = _DEFAULT_ROBOT_TIMING,
        stream: bool = True,
        acc: AccParams | None = None,
    ) -> None:
        """`camera=None` simulates no camera (faster). `start_pose` overrides the world's;
        with neither, or with "random", a free pose is drawn from the seed (so that drives
        of one world with different seeds start in different places). `realtime` paces the clock to the
        wall clock (`time_scale` simulated seconds per wall second). `camera_timing` and
        `robot_timing`: the devices' clocks (their `ideal()`: the old simulator's);
        `stream`: the robot pushes its readings (`drain_stream`), else it is polled;
        `acc`: the accelerometer (AccParams() by default)."""
        if dt_s <= 0 or time_scale <= 0:
            raise SimError("dt_s and time_scale must be > 0")
        self.world = world
        self.seed = int(seed)
        self.drive_params = drive or DriveParams()
        self.ir_params = ir or IRParams()
        self.acc_params = acc or AccParams()
        self.camera_params = camera
        self.camera_timing = camera_timing
        self.robot_timing = robot_timing
        self.stream = bool(stream)
        self.dt_ns = round(dt_s * 1e9)
        self.lock = threading.RLock()
        self.stepper_running = False  # run_realtime is stepping from another thread
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
        self._sensed = getattr(self.ir, "sensed_distances", None)
        self._ir_rng = np.random.default_rng(s_ir)
        if isinstance(start_pose, str) and start_pose != "random":
            raise SimError(
                f"start_pose must be (x_m, y_m, theta_rad) or 'random', not {start_pose!r}"
            )
        if start_pose is None:
            start_pose = world.start_pose
        if start_pose is None or isinstance(start_pose, str):
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
        self.accelerometer = Accelerometer(self.acc_params, self.drive.pose, dt_s)
        self.tap_count = 0  # tap events so far (the firmware's `tap`)
        self.contacts: deque[SimContact] = deque(maxlen=_CONTACTS_KEPT)  # onsets, oldest first
        self._contacts_out: deque[SimContact] = deque(maxlen=_CONTACTS_KEPT)  # not drained
        self._history: deque[tuple[int, np.ndarray]] = deque(maxlen=256)
        self._history.append((self.t_ns, self.drive.pose.copy()))
        self._init_robot_clocks()
        self.renderer = Renderer(world, camera) if camera is not None else None
        self.clock = SimClock(self, realtime=realtime, time_scale=time_scale)
        self.robot = SimRobot(self)
        self.camera = SimCamera(self) if camera is not None else None

    def _init_robot_clocks(self) -> None:
        rt = self.robot_timing
        self.ir_period_ns = round(1e9 / self.ir_params.rate_hz)
        if rt.prox_phase_ms is None:
            rng = np.random.default_rng([self.seed, 0x9A5E])
            self.prox_phase_ns = int(rng.integers(0, self.ir_period_ns))
        else:
            self.prox_phase_ns = round(rt.prox_phase_ms * 1e6)
        self._prox_n = 0  # index of the next refresh, at start + phase + n * period
        self._next_ir_ns = self.start_ns + self.prox_phase_ns
        self._steps = 0
        self._link_ns = rt.link_latency_ms * 1e6
        self._link_jitter_ns = rt.link_jitter_ms * 1e6
        self._prox_draws = SampleDraws([self.seed, 0x11E, 0])
        self._wheel_draws = SampleDraws([self.seed, 0x11E, 1])
        self._acc_draws = SampleDraws([self.seed, 0x11E, 2])
        # accelerometer: 16 Hz on its own phase, noise from its own stream
        self.acc_period_ns = round(1e9 / self.acc_params.rate_hz)
        acc_rng = np.random.default_rng([self.seed, 0xACC])
        self.acc_phase_ns = int(acc_rng.integers(0, self.acc_period_ns))
        self._acc_rng = np.random.default_rng([self.seed, 0xACC, 1])
        self._acc_n = 0
        self._next_acc_ns = self.start_ns + self.acc_phase_ns
        self._acc_taps = 0  # tap_count at the previous acc refresh
        self._acc_out: deque[SimAccSample] = deque(maxlen=_ACC_KEPT)
        self.acc_units = self.accelerometer.reading(self._acc_rng)  # the firmware's acc now
        self.prox_updates: deque[tuple[int, np.ndarray]] = deque(maxlen=256)
        # streaming: samples on their way (arrival after now), then arrived, not drained
        self._in_flight: deque[SimProxSample | SimWheelSample | SimAccSample] = deque()
        self._prox_out: deque[SimProxSample] = deque(maxlen=_PROX_KEPT)
        self._wheels_out: deque[SimWheelSample] = deque(maxlen=_WHEELS_KEPT)
        self._lost = 0
        self._notes: list[tuple[int, str, str]] = []
        zeros = np.zeros(2, np.int16)
        # The robot ran before the start: the reading before it (at phase - period; the
        # refresh at the start itself when the phase is 0) is what a first read returns.
        self.proximity = self.ir.values(self.drive.pose, self._ir_rng)
        self.latest_prox = SimProxSample(self.start_ns, 0, self.proximity.copy(), zeros, 0)
        self.latest_wheels = SimWheelSample(
            self.start_ns, 0, self.drive.measured.copy(), self.drive.targets.astype(np.int16), 0
        )
        if self.prox_phase_ns == 0:
            self._refreshed(self.start_ns, self.proximity)
        if self.stream:
            self._notes.append(
                (
                    self.start_ns,
                    "robot_stream",
                    f"simulated onboard stream: proximity {self.ir_params.rate_hz:g} Hz "
                    f"(phase {self.prox_phase_ns / 1e6:.1f} ms), wheels "
                    f"{1e9 / self.dt_ns:g} Hz, link {rt.link_latency_ms:g} ms "
                    f"(jitter {rt.link_jitter_ms:g} ms)",
                )
            )

    # ------------------------------------------------------------------ state

    @property
    def pose(self) -> np.ndarray:
        """True robot pose (x_m, y_m, theta_rad) now."""
        return self.drive.pose.copy()

    @property
    def t_s(self) -> float:
        """Simulated seconds since the start."""
        return (self.t_ns - self.start_ns) / 1e9

    @property
    def truth_geometry(self) -> str:
        """What `truth()` distances measure: "sensor_cone" (the sensor's own rays against
        the geometry it sees) or "sensor_axis" (along the axis, any height)."""
        return "sensor_cone" if self._sensed is not None else "sensor_axis"

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
        """True pose at a past time within the last ~2.5 s, interpolated between steps
        (clamped to the oldest and newest known poses)."""
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
                    dth = _wrap(p1[2] - p0[2])
                    out = p0 + a * (p1 - p0)
                    out[2] = _wrap(p0[2] + a * dth)
                    return out
            return hist[0][1].copy()

    # ------------------------------------------------------------------ stepping

    def step(self) -> None:
        """One physics step of dt: motion, the wheel sample, the proximity refreshes that
        fell in it, and the arrival of streamed samples."""
        with self.lock:
            drive = self.drive
            drive.step(self.dt_ns / 1e9)
            t0 = self.t_ns
            self.t_ns += self.dt_ns
            self._steps += 1
            self._history.append((self.t_ns, drive.pose.copy()))
            if drive.onsets:
                self._contacted(t0)
            if self.accelerometer.step(drive.pose):
                self.tap_count += 1
            while self.t_ns >= self._next_acc_ns:
                self._acc_refresh()
            if self.stream:
                self._send(
                    SimWheelSample(
                        self.t_ns + self._link_delay(self._wheel_draws, self._steps, self.dt_ns),
                        self._steps & 0xFFFF,
                        self.drive.measured.copy(),
                        self.drive.targets.astype(np.int16),
                        self.t_ns,
                    )
                )
            while self.t_ns >= self._next_ir_ns:
                t_refresh = self._next_ir_ns
                self.proximity = self.ir.values(self.pose_at(t_refresh), self._ir_rng)
                self._refreshed(t_refresh, self.proximity)
            if self.stream:
                self._arrive()

    def _contacted(self, t0_ns: int) -> None:
        """Keep the contact onsets of the step that began at t0_ns (truth)."""
        for o in self.drive.onsets:
            t = t0_ns + round(o.step_fraction * self.dt_ns)
            c = SimContact(t, np.array(o.point_m), np.array(o.world_m))
            self.contacts.append(c)
            self._contacts_out.append(c)

    def drain_contacts(self) -> list[SimContact]:
        """The contact onsets since the previous drain (SimRobot.truth drains them too)."""
        with self.lock:
            out = list(self._contacts_out)
            self._contacts_out.clear()
            return out

    def _acc_refresh(self) -> None:
        """Accelerometer refresh n (16 Hz): new `acc_units`, streamed with its tap flag."""
        n = self._acc_n
        t = self._next_acc_ns
        self.acc_units = self.accelerometer.reading(self._acc_rng)
        tap = self.tap_count != self._acc_taps
        self._acc_taps = self.tap_count
        if self.stream:
            delay = self._link_delay(self._acc_draws, n, self.acc_period_ns)
            self._send(SimAccSample(t + delay, self.acc_units.copy(), tap, t))
        self._acc_n = n + 1
        self._next_acc_ns = self.start_ns + self.acc_phase_ns + (n + 1) * self.acc_period_ns

    def _refreshed(self, t_ns: int, values: np.ndarray) -> None:
        """Refresh n happened at t_ns: keep it, stream it, schedule the next one."""
        n = self._prox_n
        self.prox_updates.append((t_ns, values.copy()))
        if self.stream:
            self._send(
                SimProxSample(
                    t_ns + self._link_delay(self._prox_draws, n, self.ir_period_ns),
                    n & 0xFFFF,
                    values.copy(),
                    self.drive.measured.copy(),
                    t_ns,
                )
            )
        self._prox_n = n + 1
        self._next_ir_ns = self.start_ns + self.prox_phase_ns + (n + 1) * self.ir_period_ns

    def _link_delay(self, draws: SampleDraws, k: int, period_ns: int) -> int:
        if self._link_jitter_ns <= 0:
            return round(self._link_ns)
        return bounded_jitter_ns(draws.normal(k), self._link_ns, self._link_jitter_ns, period_ns)

    def _send(self, sample: SimProxSample | SimWheelSample | SimAccSample) -> None:
        self._in_flight.append(sample)

    def _arrive(self) -> None:
        """Samples whose arrival time has come move to the drain's queues."""
        now = self.t_ns
        flight = self._in_flight
        # in flight: a few, each stream in order, the streams interleaved: scan them all
        if not flight or min(s.t_ns for s in flight) > now:
            return
        keep: deque[SimProxSample | SimWheelSample | SimAccSample] = deque()
        for s in sorted(flight, key=lambda s: s.t_ns):
            if s.t_ns > now:
                keep.append(s)
            elif isinstance(s, SimProxSample):
                self._lost += len(self._prox_out) == _PROX_KEPT
                self._prox_out.append(s)
                self.latest_prox = s
            elif isinstance(s, SimAccSample):
                self._lost += len(self._acc_out) == _ACC_KEPT
                self._acc_out.append(s)
            else:
                self._lost += len(self._wheels_out) == _WHEELS_KEPT
                self._wheels_out.append(s)
                self.latest_wheels = s
        self._in_flight = keep

    def drain_stream(self) -> SimStreamBatch:
        """Everything that arrived since the previous call (see SimRobot.drain_stream)."""
        with self.lock:
            notes, self._notes = self._notes, []
            if not self.stream:
                return SimStreamBatch(False, [], [], [], notes)
            if self._lost:
                notes.append(
                    (self.t_ns, "stream_overflow", f"{self._lost} samples not drained in time")
                )
                self._lost = 0
            batch = SimStreamBatch(
                True, list(self._prox_out), list(self._wheels_out), list(self._acc_out), notes
            )
            self._prox_out.clear()
            self._wheels_out.clear()
            self._acc_out.clear()
            return batch

    def advance_to(self, t_ns: int) -> None:
        """Step until the simulated time is at or after t_ns."""
        while self.t_ns < t_ns:
            self.step()

    def truth(self) -> SimTruth:
        """True pose and, per sensor, the true distance now: with the IR model's
        `sensed_distances`, the smallest hit distance among the sensor's own rays against
        the geometry it can see (`truth_geometry` "sensor_cone"), else the distance along
        its axis to anything (`true_distances`, "sensor_axis")."""
        with self.lock:
            pose = self.drive.pose.copy()
            fn = self._sensed if self._sensed is not None else self.ir.true_distances
            return SimTruth(self.t_ns, pose, fn(pose))

    def render_at(
        self, t_ns: int, index: int, blur_px: tuple[float, float] | None = None
    ) -> np.ndarray:
        """The camera image at a (recent) time; noise seeded by (seed, index); `blur_px`
        (bx, by): linear motion blur along that pixel vector (Renderer.render's, applied
        before the sensor noise)."""
        if self.renderer is None:
            raise SimError("this simulator has no camera")
        pose = self.pose_at(t_ns)
        rng = np.random.default_rng([*self._camera_seed, index])
        t_s = (t_ns - self.start_ns) / 1e9
        if blur_px is None:
            return self.renderer.render(pose, t_s, rng)
        return self.renderer.render(pose, t_s, rng, blur_px=blur_px)

    def run_realtime(self, stop: threading.Event, time_scale: float | None = None) -> None:
        """Step in real time until `stop` is set (for a server's background thread)."""
        scale = time_scale or self.clock.time_scale
        wall0 = time.monotonic_ns()
        sim0 = self.t_ns
        self.stepper_running = True
        try:
            while not stop.is_set():
                target = sim0 + int((time.monotonic_ns() - wall0) * scale)
                with self.lock:
                    self.advance_to(target)
                next_wall = wall0 + int((self.t_ns + self.dt_ns - sim0) / scale)
                delay = (next_wall - time.monotonic_ns()) / 1e9
                if delay > 0:
                    stop.wait(delay)
        finally:
            self.stepper_running = False


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
    """The simulated Thymio as a robot_ssl `Robot` (by shape); streaming like a Thymio
    running the onboard program unless the simulator was made with `stream=False`."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.closed = False

    @property
    def streaming(self) -> bool:
        """True when the robot pushes its readings (`drain_stream`)."""
        return self.sim.stream

    @property
    def gives_acc(self) -> bool:
        """True when the stream carries the accelerometer (`drain_stream().acc`)."""
        return self.sim.stream

    def read(self) -> SimReading:
        """Proximity, measured speeds and the targets in force, stamped now (the read
        time, so that `sleep_until_ns(read().t_ns + dt)` loops advance). Streaming: the
        newest proximity and speeds that reached the host (firmware_bridge's ThymioRobot
        stamps these with the newest refresh's arrival instead; recorders take the
        stream's own stamps from `drain_stream`). Polled: proximity (refreshed at 10 Hz)
        and measured speeds (100 Hz) now."""
        s = self.sim
        with s.lock:
            target = s.drive.targets.astype(np.int16)
            if not s.stream:
                return SimReading(s.t_ns, s.proximity.copy(), s.drive.measured.copy(), target)
            p, w = s.latest_prox, s.latest_wheels
            speed = p.wheel_speed if w.t_ns < p.t_ns else w.wheel_speed
            return SimReading(s.t_ns, p.proximity.copy(), speed.copy(), target)

    def drain_stream(self) -> SimStreamBatch:
        """The proximity refreshes and wheel samples (100 Hz) that reached the host since
        the previous call, each stamped with its arrival (true instant + link latency),
        and notes (the stream's start, overflow when not drained for ~40 s). Polled
        (`streaming` False): only the notes."""
        return self.sim.drain_stream()

    def wait_for_targets(self, timeout_s: float = 0.25) -> bool:
        """Streaming: until a wheel sample carrying the targets in force has arrived (so
        that a run's last rows show its stop), at most `timeout_s` (simulated time when
        the caller steps the simulation, wall time when run_realtime does); False on
        timeout or when polled."""
        s = self.sim
        if not s.stream:
            return False

        def arrived() -> bool:
            with s.lock:
                want = s.drive.targets.astype(np.int16)
                return bool(np.array_equal(s.latest_wheels.wheel_target, want))

        if s.stepper_running:
            deadline = time.monotonic() + timeout_s
            while not arrived() and time.monotonic() < deadline:
                time.sleep(0.002)
        else:
            end = s.t_ns + round(timeout_s * 1e9)
            while not arrived() and s.t_ns < end:
                s.step()
        return arrived()

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
        """(t_ns, true pose (3,), true distance per proximity sensor (m), the contact
        onsets since the previous call): the recorder's truth source, one call per row."""
        s = self.sim
        with s.lock:
            return s.truth()._replace(contacts=tuple(s.drain_contacts()))


@dataclass(frozen=True)
class SimCameraHealth:
    """What `SimCamera.health` says: it never fails."""

    failed: bool = False
    error: str = ""


class SimCamera:
    """The simulated camera as a robot_ssl `Camera` (by shape), on `CameraTiming`."""

    def __init__(self, sim: Simulator) -> None:
        if sim.camera_params is None:
            raise SimError("the simulator has no camera")
        self.sim = sim
        self.timing = sim.camera_timing
        self.fps = sim.camera_params.fps
        self.period_ns = 1e9 / self.fps
        tm = self.timing
        if tm.random_phase:
            rng = np.random.default_rng([sim.seed, 0xCA9])
            self.phase_ns = int(rng.integers(0, int(self.period_ns)))
        else:
            self.phase_ns = 0
        self._latency_ns = tm.latency_ms * 1e6
        self._jitter_ns = tm.jitter_ms * 1e6
        self._half_exposure_ns = round(tm.exposure_ms * 1e6 / 2)
        # the earliest delivery after exposure (jitter clipped as in bounded_jitter_ns)
        h = max(0.0, 0.5 * self.period_ns - 1000.0)
        self._min_delay_ns = (
            round(self._latency_ns - min(self._latency_ns, h))
            if self._jitter_ns > 0
            else round(self._latency_ns)
        )
        self._draws = SampleDraws([sim.seed, 0xCA7])
        self._fx = sim.camera_params.intrinsics()[0]
        self._cache: SimFrame | None = None
        self.renders = 0  # frames actually rendered (the cache makes re-reads free)

    def health(self) -> SimCameraHealth:
        """A simulated camera never fails (robot_ssl's Camera protocol asks)."""
        return SimCameraHealth()

    def exposure_time_ns(self, index: int) -> int:
        """Mid-exposure time t_k of frame `index` (ns)."""
        return self.sim.start_ns + self.phase_ns + round(index * 1e9 / self.fps)

    def delivery_time_ns(self, index: int) -> int:
        """When frame `index` reaches the host, and its stamp (ns): t_k + latency + jitter."""
        t = self.exposure_time_ns(index)
        if self._jitter_ns <= 0:
            return t + round(self._latency_ns)
        z = self._draws.normal(index)
        return t + bounded_jitter_ns(z, self._latency_ns, self._jitter_ns, self.period_ns)

    def dropped(self, index: int) -> bool:
        """True when frame `index` is lost (never delivered)."""
        rate = self.timing.drop_rate
        return rate > 0 and self._draws.uniform(index) < rate

    def blur_px(self, index: int) -> tuple[float, float] | None:
        """Motion blur (bx, by) px of frame `index`: the yaw change over its exposure times
        fx horizontally (translation's blur is neglected); None under 0.5 px."""
        if self._half_exposure_ns <= 0:
            return None
        t = self.exposure_time_ns(index)
        p0 = self.sim.pose_at(t - self._half_exposure_ns)
        p1 = self.sim.pose_at(t + self._half_exposure_ns)
        bx = self._fx * _wrap(float(p1[2] - p0[2]))
        return (bx, 0.0) if abs(bx) >= _MIN_BLUR_PX else None

    def read(self) -> SimFrame | None:
        """The newest frame delivered at or before now (rendered on first read); None
        before the first delivery."""
        sim = self.sim
        with sim.lock:
            now = sim.t_ns
            x = now - sim.start_ns - self.phase_ns - self._min_delay_ns
            if x < 0:
                return None
            k = math.floor(x * self.fps / 1e9 + 1e-9) + 1
            while k >= 0 and self.exposure_time_ns(k) + self._min_delay_ns > now:
                k -= 1
            while k >= 0 and (self.delivery_time_ns(k) > now or self.dropped(k)):
                k -= 1
            if k < 0:
                return None
            if self._cache is not None and self._cache.index == k:
                return self._cache
            t = self.exposure_time_ns(k)
            image = sim.render_at(t, k, self.blur_px(k))
            self.renders += 1
            self._cache = SimFrame(self.delivery_time_ns(k), image, k, t)
            return self._cache

    def close(self) -> None:
        """Nothing to release."""
