"""Wheel odometry: measured wheel speeds (raw firmware units) to SE(2) poses.

Between two samples the speeds are taken as the mean of both ends (trapezoidal
rule) and held constant, and the pose follows the exact constant-curvature arc.
Steps longer than `max_gap_ns` are not integrated through: the pose is held
and the gap is reported, so nothing downstream trusts motion nobody measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from robot_ssl.core.geometry import wrap_angle
from robot_ssl.core.spec import RobotSpec

DEFAULT_MAX_GAP_NS = 500_000_000  # 0.5 s: several missed 50-100 Hz wheel samples


@dataclass(frozen=True)
class OdometryGap:
    """A stretch with no wheel data longer than the limit: not integrated."""

    start_ns: int
    end_ns: int


def _body_twist(speed_units: np.ndarray, robot: RobotSpec) -> tuple[np.ndarray, np.ndarray]:
    """(v_m_s, omega_rad_s) for (..., 2) left/right wheel speeds in raw units."""
    s = np.asarray(speed_units, dtype=np.float64) * robot.speed_m_per_unit
    v = 0.5 * (s[..., 0] + s[..., 1])
    omega = (s[..., 1] - s[..., 0]) / robot.axle_length_m
    return v, omega


def integrate_wheel_odometry(
    t_ns: np.ndarray,
    speed_units: np.ndarray,
    robot: RobotSpec,
    *,
    max_gap_ns: int = DEFAULT_MAX_GAP_NS,
    initial_pose: np.ndarray | None = None,
) -> tuple[np.ndarray, list[OdometryGap]]:
    """Poses (K, 3) at each wheel sample time, and the gaps that were not integrated.

    Vectorised: one pass of trig and cumulative sums, no per-sample Python loop.
    """
    t = np.asarray(t_ns, dtype=np.int64)
    k = t.size
    pose0 = np.zeros(3) if initial_pose is None else np.asarray(initial_pose, dtype=np.float64)
    if k == 0:
        return np.zeros((0, 3)), []
    if np.any(np.diff(t) <= 0):
        raise ValueError("wheel timestamps must be strictly increasing")
    v, omega = _body_twist(speed_units, robot)
    dt_s = np.diff(t) / 1e9
    gap = np.diff(t) > max_gap_ns
    v_mid = 0.5 * (v[1:] + v[:-1])
    w_mid = 0.5 * (omega[1:] + omega[:-1])
    dist = v_mid * dt_s
    dtheta = w_mid * dt_s
    dist[gap] = 0.0
    dtheta[gap] = 0.0
    # Exact arc: the chord has length dist * sinc(dtheta / 2) and points along the
    # heading at the middle of the step. Cumulative sums keep theta unwrapped.
    theta = pose0[2] + np.concatenate([[0.0], np.cumsum(dtheta)])
    chord = dist * np.sinc(dtheta / (2.0 * np.pi))
    mid = theta[:-1] + 0.5 * dtheta
    dx = chord * np.cos(mid)
    dy = chord * np.sin(mid)
    poses = np.empty((k, 3))
    poses[:, 0] = pose0[0] + np.concatenate([[0.0], np.cumsum(dx)])
    poses[:, 1] = pose0[1] + np.concatenate([[0.0], np.cumsum(dy)])
    poses[:, 2] = wrap_angle(theta)
    gaps = [OdometryGap(int(t[i]), int(t[i + 1])) for i in np.flatnonzero(gap)]
    return poses, gaps


class OdometryIntegrator:
    """Incremental form of `integrate_wheel_odometry` for live recording (same maths)."""

    def __init__(
        self,
        robot: RobotSpec,
        max_gap_ns: int = DEFAULT_MAX_GAP_NS,
        initial_pose: np.ndarray | None = None,
    ) -> None:
        self.robot = robot
        self.max_gap_ns = max_gap_ns
        self.pose = np.zeros(3) if initial_pose is None else np.asarray(initial_pose, float)
        self._last_t: int | None = None
        self._last_speed: tuple[float, float] = (0.0, 0.0)

    def update(self, t_ns: int, speed_units: np.ndarray) -> tuple[np.ndarray, OdometryGap | None]:
        """Advance to t_ns with a new measured speed; returns (pose copy, gap or None).

        Scalar maths (no array allocation): this runs once per wheel sample on the robot.
        """
        left, right = float(speed_units[0]), float(speed_units[1])
        gap = None
        if self._last_t is not None and t_ns > self._last_t:
            if t_ns - self._last_t > self.max_gap_ns:
                gap = OdometryGap(self._last_t, int(t_ns))
            else:
                k = self.robot.speed_m_per_unit
                pl, pr = self._last_speed
                dt_s = (t_ns - self._last_t) / 1e9
                dist = 0.25 * k * (left + right + pl + pr) * dt_s
                dtheta = 0.5 * k * (right - left + pr - pl) / self.robot.axle_length_m * dt_s
                half = 0.5 * dtheta
                chord = dist * (math.sin(half) / half if abs(half) > 1e-9 else 1.0)
                x, y, th = self.pose
                mid = th + half
                th = th + dtheta
                self.pose = np.array(
                    [
                        x + chord * math.cos(mid),
                        y + chord * math.sin(mid),
                        math.atan2(math.sin(th), math.cos(th)),
                    ]
                )
        if self._last_t is None or t_ns > self._last_t:
            self._last_t, self._last_speed = int(t_ns), (left, right)
        return self.pose.copy(), gap
