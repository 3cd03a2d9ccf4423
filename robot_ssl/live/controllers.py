"""Obstacle-avoidance controllers: pure functions of perception to wheel targets (raw units).

`CameraAvoidController` drives from the detector's (sensor, distance) grid alone;
`IRReactiveController` is the classic baseline that reacts to the proximity sensors.
Both feed one steering law (`SteeringLaw`) with the same quantity, the distance in
metres from each front sensor to the obstacle it faces (inf: nothing seen), so that a
comparison measures perception only. Each has its own range and so its own defaults
(`AvoidConfig.for_camera`, `AvoidConfig.for_ir`):

- the grid cell (s, d) says "after driving d straight on, sensor s will read an
  obstacle", and a sensor reads an obstacle within its range (Thymio: ~14 cm), so
  the first positive distance d* puts the obstacle about d* + range ahead of the
  sensor: the camera sees from the IR range out to range + 30 cm (0.14..0.44 m);
- the IR sensors see 0..0.14 m, and their distance comes from inverting the IR
  response model (rough: it assumes a white surface, so dark ones look farther).

The law: an obstacle ahead closer than `stop_distance_m` -> turn in place (for at
least `min_turn_s`, in one direction, until the way ahead is clear again); otherwise
drive at a speed that falls linearly from `cruise_speed` at `slow_distance_m` to
`min_speed_fraction` x cruise at `stop_distance_m`, and steer away from the nearer
side in proportion to how close it is. Given the odometry pose, both controllers keep
the obstacles they saw for `memory_s` (`ObstacleMemory`), moved with the robot, so an
obstacle that left the sensors' view (beside the body) still counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from robot_ssl.core.config import bounded, check_bounds
from robot_ssl.core.errors import ConfigError

__all__ = [
    "AvoidConfig",
    "CameraAvoidController",
    "IRReactiveController",
    "ObstacleMemory",
    "SteeringLaw",
    "ir_distance_m",
]

THYMIO_IR_RANGE_M = 0.14  # DESIGN.md; RobotSpec.prox_range_m carries the per-robot value
_MAX_RANGE_M = 10.0  # steering distances (m): a Thymio's camera sees well under a metre


@dataclass(frozen=True)
class AvoidConfig:
    """Steering-law parameters; speeds in raw wheel units, distances in metres from the
    sensors to the obstacle, times in seconds.

    The defaults suit the camera grid (obstacles seen out to ~0.44 m); use
    `AvoidConfig.for_ir()` for the IR sensors' 0.14 m.
    """

    cruise_speed: int = bounded(200, 0, 32767)
    turn_speed: int = bounded(150, 1, 32767)  # wheel speed (+/-) when turning in place
    # obstacle ahead closer than this: turn in place
    stop_distance_m: float = bounded(0.16, 0, _MAX_RANGE_M)
    # obstacle ahead closer than this: slow down
    slow_distance_m: float = bounded(0.40, 0, _MAX_RANGE_M, min_inclusive=False)
    # speed at stop_distance_m, as a fraction of cruise
    min_speed_fraction: float = bounded(0.35, 0, 1, min_inclusive=False)
    # wheel-speed difference / speed when a side obstacle is at stop
    steer_gain: float = bounded(0.6, 0, 100)
    # side obstacles steer below this (None: slow_distance_m)
    side_distance_m: float | None = bounded(None, 0, _MAX_RANGE_M)
    # a turn ends when ahead > stop_distance_m + this
    clear_margin_m: float = bounded(0.03, 0, _MAX_RANGE_M)
    # keep turning at least this long once started (no dithering)
    min_turn_s: float = bounded(0.5, 0, 3600)
    # obstacles seen are kept this long, moved by odometry (0: off)
    memory_s: float = bounded(2.0, 0, 3600)
    # only obstacles seen nearer than this are remembered
    memory_range_m: float = bounded(0.30, 0, _MAX_RANGE_M)
    # a remembered obstacle counts for a sensor within this angle
    memory_cone_rad: float = bounded(0.26, 0, math.pi / 2, min_inclusive=False, max_inclusive=False)
    # camera: weight of the previous grid in an exponential average
    smoothing: float = bounded(0.0, 0, 1, max_inclusive=False)
    # a side obstacle at stop distance cuts speed by this much
    side_slow_fraction: float = bounded(0.0, 0, 1, max_inclusive=False)
    # probability above which a grid cell counts as an obstacle
    threshold: float = bounded(0.5, 0, 1)

    def __post_init__(self) -> None:
        check_bounds(self, "avoid config", ConfigError)  # finite numbers, integer speeds
        if not self.stop_distance_m < self.slow_distance_m:
            raise ConfigError("avoid config: need stop_distance_m < slow_distance_m")

    @classmethod
    def for_camera(cls, cruise_speed: int = 200, **changes: float) -> AvoidConfig:
        """Defaults for the camera grid (sees obstacles 0.14..0.44 m ahead of the sensors)."""
        return replace(cls(), cruise_speed=int(cruise_speed), **changes)

    @classmethod
    def for_ir(cls, cruise_speed: int = 200, **changes: float) -> AvoidConfig:
        """Defaults for the IR sensors (0..0.14 m): the same law over their shorter range."""
        base = cls(
            cruise_speed=int(cruise_speed),
            stop_distance_m=0.08,
            slow_distance_m=THYMIO_IR_RANGE_M + 0.01,
            clear_margin_m=0.02,
        )
        return replace(base, **changes)

    @property
    def side_m(self) -> float:
        return self.slow_distance_m if self.side_distance_m is None else self.side_distance_m


def _groups(n: int) -> tuple[slice, slice, slice]:
    """(left, ahead, right) slices of n sensors ordered left to right.

    Five sensors (Thymio): left = 0-1, ahead = 1-3, right = 3-4. Fewer sensors: every
    sensor counts as ahead, the outer halves as left and right.
    """
    half = n // 2
    left, right = slice(0, half), slice(n - half, n)
    ahead = slice(1, n - 1) if n >= 5 else slice(0, n)
    return left, ahead, right


def _min(a: np.ndarray) -> float:
    return float(a.min()) if a.size else math.inf


class SteeringLaw:
    """Per-sensor obstacle distances (left to right, m; inf: none) -> wheel targets.
    Stateful only through the current turn in place (direction, earliest end)."""

    def __init__(self, cfg: AvoidConfig) -> None:
        self.cfg = cfg
        self._turn_dir = 0  # 0: not turning; +1: turning left (counter-clockwise); -1: right
        self._turn_until_ns = 0
        self._last_dir = 1
        self.turns = 0  # turns in place started so far

    @property
    def turning(self) -> bool:
        return self._turn_dir != 0

    def reset(self) -> None:
        """Forget the current turn (after a stop, before driving again)."""
        self._turn_dir = 0

    def command(self, distance_m: np.ndarray, t_ns: int) -> tuple[int, int]:
        cfg = self.cfg
        d = np.asarray(distance_m, dtype=np.float64).reshape(-1)
        ls, as_, rs = _groups(d.size)
        left, ahead, right = _min(d[ls]), _min(d[as_]), _min(d[rs])
        if self._turn_dir != 0:
            done = t_ns >= self._turn_until_ns and ahead > cfg.stop_distance_m + cfg.clear_margin_m
            if not done:
                s = cfg.turn_speed * self._turn_dir
                return -s, s
            self._turn_dir = 0
        if ahead < cfg.stop_distance_m:
            # Turn towards the freer side; on a tie keep the last direction (corners).
            if left > right:
                self._turn_dir = 1
            elif right > left:
                self._turn_dir = -1
            else:
                self._turn_dir = self._last_dir
            self._last_dir = self._turn_dir
            self._turn_until_ns = t_ns + int(cfg.min_turn_s * 1e9)
            self.turns += 1
            s = cfg.turn_speed * self._turn_dir
            return -s, s
        span = cfg.slow_distance_m - cfg.stop_distance_m
        frac = float(np.clip((ahead - cfg.stop_distance_m) / span, 0.0, 1.0))
        speed = cfg.cruise_speed * (cfg.min_speed_fraction + (1 - cfg.min_speed_fraction) * frac)
        side_span = max(cfg.side_m - cfg.stop_distance_m, 1e-6)
        near_l = float(np.clip((cfg.side_m - left) / side_span, 0.0, 1.0))
        near_r = float(np.clip((cfg.side_m - right) / side_span, 0.0, 1.0))
        # Squeezing past something: slower, so that steering has time to act.
        speed *= 1.0 - cfg.side_slow_fraction * max(near_l, near_r)
        # Steer away from whichever side is closer, harder the closer it is.
        turn = cfg.steer_gain * speed * (near_r - near_l)  # > 0: obstacle right -> turn left
        return round(speed - turn), round(speed + turn)


def _front_poses(indices: tuple[int, ...] | None, n: int) -> np.ndarray:
    """(n, 3) sensor poses (x_m, y_m, theta_rad) from the default robot description."""
    from robot_ssl.core.spec import RobotSpec

    poses = np.asarray(RobotSpec().prox_poses(), dtype=np.float64)
    idx = list(indices) if indices is not None else list(range(n))
    return poses[idx]


class ObstacleMemory:
    """Obstacles seen in the last `horizon_s`, kept as points in the odometry frame.

    The front sensors (and the camera) do not see beside the body: an obstacle passed
    or turned away from drops out of view although it is still there. Each update
    adds the obstacle point of every sensor with a finite distance (sensor origin +
    distance along its axis); `distances` gives, per sensor, the distance to the
    nearest remembered point within `cone_rad` of its axis, the outermost sensors
    also covering the side out to 90 degrees. Odometry drift over a few seconds is
    small against the distances involved.
    """

    def __init__(
        self,
        sensor_poses: np.ndarray,
        horizon_s: float,
        cone_rad: float,
        max_distance_m: float = math.inf,
    ) -> None:
        self.sensor_poses = np.asarray(sensor_poses, dtype=np.float64).reshape(-1, 3)
        self.horizon_ns = int(horizon_s * 1e9)
        self.max_distance_m = float(max_distance_m)
        self.cone_rad = float(cone_rad)
        self._points = np.zeros((0, 2))
        self._t_ns = np.zeros(0, dtype=np.int64)
        th = self.sensor_poses[:, 2]
        n = len(th)
        # allowed bearing offsets (relative to each sensor's axis): [low, high]
        self._low = np.full(n, -self.cone_rad)
        self._high = np.full(n, self.cone_rad)
        if n > 1:
            self._high[int(np.argmax(th))] = math.pi / 2 - th.max()  # leftmost: out to +90 deg
            self._low[int(np.argmin(th))] = -math.pi / 2 - th.min()  # rightmost: to -90 deg

    def __len__(self) -> int:
        return len(self._t_ns)

    def clear(self) -> None:
        self._points = np.zeros((0, 2))
        self._t_ns = np.zeros(0, dtype=np.int64)

    def add(self, pose: np.ndarray, t_ns: int, distance_m: np.ndarray) -> None:
        """Remember the obstacle point of each sensor nearer than `max_distance_m` (far
        detections are seen again, nearer, before they matter; noise is not kept)."""
        d = np.asarray(distance_m, dtype=np.float64)
        ok = d <= self.max_distance_m
        if not ok.any():
            return
        sp = self.sensor_poses[ok]
        local = sp[:, :2] + d[ok, None] * np.stack([np.cos(sp[:, 2]), np.sin(sp[:, 2])], axis=1)
        x, y, th = (float(v) for v in pose)
        c, s = math.cos(th), math.sin(th)
        world = np.stack(
            [x + c * local[:, 0] - s * local[:, 1], y + s * local[:, 0] + c * local[:, 1]], 1
        )
        self._points = np.concatenate([self._points, world])
        self._t_ns = np.concatenate([self._t_ns, np.full(len(world), t_ns, dtype=np.int64)])

    def distances(self, pose: np.ndarray, t_ns: int) -> np.ndarray:
        """Per sensor, the distance (m) to the nearest remembered point it covers (inf: none)."""
        keep = self._t_ns >= t_ns - self.horizon_ns
        if not keep.all():
            self._points, self._t_ns = self._points[keep], self._t_ns[keep]
        out = np.full(len(self.sensor_poses), np.inf)
        if not len(self._points):
            return out
        x, y, th = (float(v) for v in pose)
        c, s = math.cos(th), math.sin(th)
        dx, dy = self._points[:, 0] - x, self._points[:, 1] - y
        px, py = c * dx + s * dy, -s * dx + c * dy  # robot frame
        ahead = px > 0.0
        if not ahead.any():
            return out
        px, py = px[ahead], py[ahead]
        sp = self.sensor_poses
        vx, vy = px[None, :] - sp[:, :1], py[None, :] - sp[:, 1:2]  # (S, P)
        rel = np.arctan2(vy, vx) - sp[:, 2:3]
        rel = np.arctan2(np.sin(rel), np.cos(rel))
        covered = (rel >= self._low[:, None]) & (rel <= self._high[:, None])
        dist = np.where(covered, np.hypot(vx, vy), np.inf)
        return dist.min(axis=1)


class _MemoryMixin:
    """Distances now, combined with the obstacle memory when a pose is given."""

    cfg: AvoidConfig
    memory: ObstacleMemory | None

    def _with_memory(self, now_m: np.ndarray, t_ns: int, pose: np.ndarray | None) -> np.ndarray:
        if self.memory is None or pose is None:
            return now_m
        remembered = self.memory.distances(pose, t_ns)
        self.memory.add(pose, t_ns, now_m)
        return np.minimum(now_m, remembered)


class CameraAvoidController(_MemoryMixin):
    """Camera-only avoidance from predicted obstacle probabilities (S sensors x D distances).

    `distances_m` are the grid's distance bins; `sensor_range_m` is the IR range the
    labels were made with (a positive cell at d means an obstacle within that range of
    the sensor after driving d), so the obstacle is about d + sensor_range_m ahead.
    `sensor_poses` (S, 3) place the grid's sensors on the robot (default: the Thymio's
    five front sensors) for the obstacle memory, used when `command` gets a pose.
    """

    def __init__(
        self,
        distances_m: np.ndarray,
        cfg: AvoidConfig | None = None,
        sensor_range_m: float = THYMIO_IR_RANGE_M,
        sensor_poses: np.ndarray | None = None,
    ) -> None:
        self.cfg = cfg or AvoidConfig.for_camera()
        self.distances_m = np.asarray(distances_m, dtype=np.float64)
        self.sensor_range_m = float(sensor_range_m)
        self.law = SteeringLaw(self.cfg)
        self.sensor_poses = sensor_poses
        self._avg: np.ndarray | None = None
        self.memory: ObstacleMemory | None = None
        if self.cfg.memory_s > 0:
            poses = _front_poses(None, 5) if sensor_poses is None else np.asarray(sensor_poses)
            self.memory = ObstacleMemory(
                poses, self.cfg.memory_s, self.cfg.memory_cone_rad, self.cfg.memory_range_m
            )

    def free_travel_m(self, prob: np.ndarray) -> np.ndarray:
        """Per sensor, the first distance bin whose probability exceeds the threshold: how far
        the robot can drive before that sensor would see an obstacle (inf: none in the grid)."""
        hit = np.asarray(prob) > self.cfg.threshold
        first = np.where(hit.any(axis=1), hit.argmax(axis=1), -1)
        return np.where(first >= 0, self.distances_m[np.maximum(first, 0)], np.inf)

    def clearance(self, prob: np.ndarray) -> np.ndarray:
        """Per sensor, the estimated distance (m) from the sensor to the obstacle (inf: none)."""
        return self.free_travel_m(prob) + self.sensor_range_m

    def command(
        self, prob: np.ndarray, t_ns: int, pose: np.ndarray | None = None
    ) -> tuple[int, int]:
        """Wheel targets from a grid; `pose` (odometry x, y, theta) enables the memory."""
        prob = np.asarray(prob, dtype=np.float32)
        if self.cfg.smoothing > 0:
            a = self.cfg.smoothing
            prob = prob if self._avg is None else a * self._avg + (1 - a) * prob
            self._avg = prob
        return self.law.command(self._with_memory(self.clearance(prob), t_ns, pose), t_ns)

    def reset(self) -> None:
        self.law.reset()
        self._avg = None
        if self.memory is not None:
            self.memory.clear()


def ir_distance_m(
    proximity: np.ndarray, m: float = 4505.0, x0_cm: float = 0.03, c: float = 73.0
) -> np.ndarray:
    """Invert the IR response F(x) = m(c - x0^2)/(x^2 - 2 x0 x + c) (x in cm) to metres.

    Zero readings (nothing in range) give inf. Defaults are the Thymio/Enki model in
    DESIGN.md for a white surface; darker surfaces read lower and so look farther.
    """
    f = np.asarray(proximity, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        disc = x0_cm**2 - c + m * (c - x0_cm**2) / f
        x_cm = x0_cm + np.sqrt(np.maximum(disc, 0.0))
    return np.where(f > 0, x_cm / 100.0, np.inf)


class IRReactiveController(_MemoryMixin):
    """Baseline: the same steering law (and obstacle memory) on distances read from the
    front IR sensors."""

    def __init__(
        self,
        cfg: AvoidConfig | None = None,
        front_indices: tuple[int, ...] = (0, 1, 2, 3, 4),
        prox_max: float = 4505.0,
        range_m: float = THYMIO_IR_RANGE_M,
        sensor_poses: np.ndarray | None = None,
    ) -> None:
        self.cfg = cfg or AvoidConfig.for_ir()
        self.front_indices = tuple(front_indices)
        self.prox_max = float(prox_max)
        self.range_m = float(range_m)
        self.law = SteeringLaw(self.cfg)
        self.memory: ObstacleMemory | None = None
        if self.cfg.memory_s > 0:
            poses = (
                _front_poses(self.front_indices, len(self.front_indices))
                if sensor_poses is None
                else np.asarray(sensor_poses)
            )
            self.memory = ObstacleMemory(
                poses, self.cfg.memory_s, self.cfg.memory_cone_rad, self.cfg.memory_range_m
            )

    def clearance(self, proximity: np.ndarray) -> np.ndarray:
        """Distance (m) per front sensor from the inverted IR model (inf: nothing in range),
        at most the sensor range: any non-zero reading means an obstacle within it, however
        dark its surface (the inversion assumes a white one)."""
        d = ir_distance_m(np.asarray(proximity)[list(self.front_indices)], m=self.prox_max)
        return np.where(np.isfinite(d), np.minimum(d, self.range_m), np.inf)

    def command(
        self, proximity: np.ndarray, t_ns: int, pose: np.ndarray | None = None
    ) -> tuple[int, int]:
        """Wheel targets from a proximity reading; `pose` (odometry) enables the memory."""
        return self.law.command(self._with_memory(self.clearance(proximity), t_ns, pose), t_ns)

    def reset(self) -> None:
        self.law.reset()
        if self.memory is not None:
            self.memory.clear()
