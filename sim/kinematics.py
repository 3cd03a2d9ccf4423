"""Differential-drive kinematics with motor lag, wheel slip, noisy speed measurement and
collisions (the round body never passes through an obstacle: it slides along it or stops).

What the robot's odometry sees is the *measured* motor speed; what moves the robot
is the motor speed times a per-wheel slip factor (a fixed bias per session plus a
slowly varying part) over an effective axle that differs slightly from the nominal
one. So integrated odometry drifts from the true pose the way a real Thymio's does.

Contacts are physical: when an obstacle blocks the body, each wheel turns no faster
than the motion the body really made (the wheels stall, the targets stay), and the
measured speed, like the firmware's (sampled at 100 Hz, averaged over 40 ms), falls
towards 0 within a few samples. Every contact onset is kept (`onsets`) with its
point on the body.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from sim.checks import check_fields
from sim.errors import SimError
from sim.raycast import point_distances

__all__ = ["ContactOnset", "DiffDrive", "DriveParams", "integrate_arc", "resolve_penetration"]


class ContactOnset(NamedTuple):
    """Where a contact began: the point of the body nearest the obstacle, in the robot
    frame (x forward, y left, from the axle midpoint) and in the world (metres), and the
    fraction of the step at which the touching sub-step ended (0..1]."""

    point_m: tuple[float, float]
    world_m: tuple[float, float]
    step_fraction: float


@dataclass(frozen=True)
class DriveParams:
    """Drive geometry (Thymio II defaults; the CLI fills them from RobotSpec) and noise.

    Speeds are in the firmware's raw units; `speed_m_per_unit` converts them to m/s.
    The body is a circle of `body_radius_m` centred `body_offset_x_m` ahead of the
    axle midpoint. Set every *_std to 0 and `motor_time_constant_s` to 0 for ideal,
    noise-free kinematics.
    """

    axle_length_m: float = 0.0935
    speed_m_per_unit: float = 0.000332
    max_speed_units: int = 500
    body_radius_m: float = 0.08
    body_offset_x_m: float = 0.0
    motor_time_constant_s: float = 0.1  # first-order response of the wheel-speed loop
    wheel_bias_std: float = 0.01  # per-session multiplicative error per wheel
    wheel_noise_std: float = 0.015  # slowly varying multiplicative slip per wheel
    wheel_noise_corr_s: float = 0.5  # correlation time of that slip
    axle_bias_std: float = 0.015  # per-session relative error of the effective axle length
    speed_noise_std_units: float = 2.0  # noise of the measured wheel speed (raw units)...
    speed_noise_rel: float = 0.03  # ...plus this fraction of the speed
    collision: str = "slide"  # "slide" along obstacles, or "stop" (translation rejected)
    speed_average_samples: int = 4  # the firmware averages the measured speed over 40 ms
    contact_release_m: float = 0.002  # a contact ends once the body is this far from it

    def __post_init__(self) -> None:
        check_fields(self, "drive")
        if self.axle_length_m <= 0 or self.speed_m_per_unit <= 0 or self.body_radius_m <= 0:
            raise SimError("drive: axle_length_m, speed_m_per_unit, body_radius_m must be > 0")
        if self.max_speed_units <= 0:
            raise SimError("drive: max_speed_units must be > 0")
        if self.speed_average_samples < 1 or self.contact_release_m < 0:
            raise SimError("drive: speed_average_samples must be >= 1, contact_release_m >= 0")
        if self.collision not in ("slide", "stop"):
            raise SimError("drive: collision must be 'slide' or 'stop'")
        stds = (
            self.motor_time_constant_s,
            self.wheel_bias_std,
            self.wheel_noise_std,
            self.axle_bias_std,
            self.speed_noise_std_units,
            self.speed_noise_rel,
        )
        if min(stds) < 0 or self.wheel_noise_corr_s <= 0:
            raise SimError("drive: noise levels and time constants must be >= 0")

    @classmethod
    def ideal(cls, **kwargs: float) -> DriveParams:
        """No lag, no slip, no measurement noise (for tests against closed forms)."""
        base = dict(
            motor_time_constant_s=0.0,
            wheel_bias_std=0.0,
            wheel_noise_std=0.0,
            axle_bias_std=0.0,
            speed_noise_std_units=0.0,
            speed_noise_rel=0.0,
        )
        base.update(kwargs)
        return cls(**base)  # type: ignore[arg-type]


def integrate_arc(pose: np.ndarray, v_m_s: float, omega_rad_s: float, dt_s: float) -> np.ndarray:
    """Pose after moving at constant (v, omega) for dt: exact constant-curvature arc."""
    x, y, th = float(pose[0]), float(pose[1]), float(pose[2])
    dth = omega_rad_s * dt_s
    if abs(dth) < 1e-9:
        mid = th + 0.5 * dth
        dist = v_m_s * dt_s
        x += dist * math.cos(mid)
        y += dist * math.sin(mid)
    else:
        r = v_m_s / omega_rad_s
        x += r * (math.sin(th + dth) - math.sin(th))
        y -= r * (math.cos(th + dth) - math.cos(th))
    th = math.atan2(math.sin(th + dth), math.cos(th + dth))
    return np.array([x, y, th])


def resolve_penetration(
    center: np.ndarray,
    radius_m: float,
    segments: np.ndarray,
    circles: np.ndarray,
    iterations: int = 6,
) -> tuple[np.ndarray, bool, float]:
    """Push a disc out of every segment and circle it overlaps (sum of the pushes, repeated
    so that corners converge). Returns the new centre, whether it touched anything, and its
    clearance (gap to the nearest obstacle, 0 when still touching)."""
    c = np.asarray(center, np.float64).copy()
    touched = False
    if len(segments) == 0 and len(circles) == 0:
        return c, False, math.inf
    for _ in range(iterations):
        dist, normal = point_distances(c, segments, circles)
        depth = radius_m - dist
        hit = depth > 1e-9
        if not hit.any():
            return c, touched, max(0.0, float(-depth.max()) - 1e-6)
        touched = True
        c += (normal[hit] * (depth[hit] + 1e-7)[:, None]).sum(axis=0)
    return c, touched, 0.0


class DiffDrive:
    """The simulated drive train and body: state, one fixed step, measured speeds.

    Deterministic: all randomness comes from the generator passed in.
    """

    def __init__(
        self,
        params: DriveParams,
        segments: np.ndarray,
        circles: np.ndarray,
        pose: np.ndarray,
        rng: np.random.Generator,
    ) -> None:
        self.params = params
        self.segments = np.asarray(segments, np.float64).reshape(-1, 4)
        self.circles = np.asarray(circles, np.float64).reshape(-1, 3)
        self.rng = rng
        self.pose = np.asarray(pose, np.float64).copy()
        self.targets = np.zeros(2)  # raw units
        self.motor = np.zeros(2)  # raw units, the wheel-speed loop's actual speed
        self.measured = np.zeros(2, np.int16)
        self.bias = 1.0 + rng.normal(0.0, params.wheel_bias_std, 2)
        self._bias_l, self._bias_r = float(self.bias[0]), float(self.bias[1])
        self.axle_scale = 1.0 + float(rng.normal(0.0, params.axle_bias_std))
        self.slip = np.zeros(2)
        self.bumping = False  # in contact with an obstacle after the last step
        self.contacts = 0  # sub-steps that ended in contact
        self.in_contact = False  # touching, and not yet `contact_release_m` away since
        self.stalled = False  # the last step held a wheel back (body blocked)
        self.onsets: list[ContactOnset] = []  # contact onsets of the last step
        n_avg = params.speed_average_samples
        self._speed_hist: deque[tuple[float, float]] = deque([(0.0, 0.0)] * n_avg, maxlen=n_avg)
        self._speed_sum = [0.0, 0.0]
        self._substep_touched = False
        self._noise_buf = np.zeros((0, 4))
        self._noise_i = 0
        self._travel = 0.0
        self._clearance = 0.0
        self._update_clearance()

    def set_targets(self, left: int, right: int) -> None:
        lim = self.params.max_speed_units
        self.targets = np.clip(np.array([left, right], np.float64), -lim, lim)

    def body_center(self, pose: np.ndarray | None = None) -> np.ndarray:
        p = self.pose if pose is None else pose
        off = self.params.body_offset_x_m
        return np.array([p[0] + off * math.cos(p[2]), p[1] + off * math.sin(p[2])])

    def _normals(self) -> np.ndarray:
        """Four standard normal draws per step (slip x2, measurement x2), drawn in blocks."""
        if self._noise_i >= len(self._noise_buf):
            self._noise_buf = self.rng.standard_normal((1024, 4))
            self._noise_i = 0
        row = self._noise_buf[self._noise_i]
        self._noise_i += 1
        return row

    def step(self, dt_s: float) -> None:
        """Advance by dt: motor lag, slip, arc motion, collisions, speed measurement.
        (Scalar Python floats on purpose: numpy calls on 2-vectors cost more than maths.)"""
        p = self.params
        ml, mr = float(self.motor[0]), float(self.motor[1])
        tl, tr = float(self.targets[0]), float(self.targets[1])
        if p.motor_time_constant_s > 0:
            k = 1.0 - math.exp(-dt_s / p.motor_time_constant_s)
            ml += (tl - ml) * k
            mr += (tr - mr) * k
        else:
            ml, mr = tl, tr
        z = self._normals()
        sl, sr = float(self.slip[0]), float(self.slip[1])
        if p.wheel_noise_std > 0:  # Ornstein-Uhlenbeck slip, exact discretisation
            a = math.exp(-dt_s / p.wheel_noise_corr_s)
            q = p.wheel_noise_std * math.sqrt(1.0 - a * a)
            sl, sr = a * sl + q * float(z[0]), a * sr + q * float(z[1])
        gl = ml * p.speed_m_per_unit * self._bias_l * (1.0 + sl)
        gr = mr * p.speed_m_per_unit * self._bias_r * (1.0 + sr)
        v = 0.5 * (gl + gr)
        omega = (gr - gl) / (p.axle_length_m * self.axle_scale)
        # Sub-steps keep each move far below the body radius (no tunnelling at any dt).
        n = max(1, math.ceil(abs(v) * dt_s / (0.25 * p.body_radius_m)))
        self.onsets = []
        x0, y0, th0 = float(self.pose[0]), float(self.pose[1]), float(self.pose[2])
        touched = False
        for i in range(n):
            self._move(v, omega, dt_s / n, (i + 1) / n)
            touched = touched or self._substep_touched
        self.stalled = False
        if touched:  # blocked: each wheel turns no faster than the body really moved
            ml, mr = self._stall(ml, mr, x0, y0, th0, sl, sr, dt_s)
        # the firmware's measurement: the mean of the last 40 ms of 100 Hz samples
        hist, acc = self._speed_hist, self._speed_sum
        old_l, old_r = hist[0]
        hist.append((ml, mr))
        acc[0] += ml - old_l
        acc[1] += mr - old_r
        avg_l = acc[0] / len(hist)
        avg_r = acc[1] / len(hist)
        sd, rel = p.speed_noise_std_units, p.speed_noise_rel
        meas_l = min(32767, max(-32768, round(avg_l + (sd + rel * abs(avg_l)) * float(z[2]))))
        meas_r = min(32767, max(-32768, round(avg_r + (sd + rel * abs(avg_r)) * float(z[3]))))
        self.motor = np.array([ml, mr])
        self.slip = np.array([sl, sr])
        self.measured = np.array([meas_l, meas_r], np.int16)

    def _stall(
        self,
        ml: float,
        mr: float,
        x0: float,
        y0: float,
        th0: float,
        sl: float,
        sr: float,
        dt: float,
    ) -> tuple[float, float]:
        """Motor speeds after a blocked step: each wheel's speed is cut to what the body's
        true motion over the step implies (forward speed along the mid heading, turn rate),
        never raised nor reversed; a free rotation in place keeps its speeds."""
        p = self.params
        th1 = float(self.pose[2])
        dth = math.atan2(math.sin(th1 - th0), math.cos(th1 - th0))
        mid = th0 + 0.5 * dth
        dx, dy = float(self.pose[0]) - x0, float(self.pose[1]) - y0
        v = (dx * math.cos(mid) + dy * math.sin(mid)) / dt
        half_turn = 0.5 * dth / dt * p.axle_length_m * self.axle_scale
        out = []
        for m, g, bias, slip in (
            (ml, v - half_turn, self._bias_l, sl),
            (mr, v + half_turn, self._bias_r, sr),
        ):
            implied = g / (p.speed_m_per_unit * bias * (1.0 + slip))
            cut = min(max(implied, min(0.0, m)), max(0.0, m))
            if abs(cut) < abs(m) - 0.5:  # held back by more than half a unit
                self.stalled = True
                m = cut
            out.append(m)
        return out[0], out[1]

    def _move(self, v: float, omega: float, dt_s: float, fraction: float = 1.0) -> None:
        new = integrate_arc(self.pose, v, omega, dt_s)
        r = self.params.body_radius_m
        off = self.params.body_offset_x_m
        # Broad phase: skip the exact test while the body has moved less, in total, than
        # its clearance at the last test (nothing can have been reached yet).
        ddx = new[0] - self.pose[0] + off * (math.cos(new[2]) - math.cos(self.pose[2]))
        ddy = new[1] - self.pose[1] + off * (math.sin(new[2]) - math.sin(self.pose[2]))
        self._travel += math.hypot(ddx, ddy)
        if self._travel < self._clearance:
            self.pose = new
            self.bumping = False
            self._substep_touched = False
            if self.in_contact and self._clearance - self._travel > self.params.contact_release_m:
                self.in_contact = False
            return
        c_new = self.body_center(new)
        c_fixed, touched, clearance = resolve_penetration(c_new, r, self.segments, self.circles)
        if touched and self.params.collision == "stop":
            rotated = np.array([self.pose[0], self.pose[1], new[2]])
            _, t_rot, _ = resolve_penetration(
                self.body_center(rotated), r, self.segments, self.circles, iterations=1
            )
            new = self.pose.copy() if t_rot else rotated
            c_fixed, _, clearance = resolve_penetration(
                self.body_center(new), r, self.segments, self.circles
            )
        new[:2] += c_fixed - self.body_center(new)
        self.pose = new
        self.bumping = touched
        self._substep_touched = touched
        self.contacts += int(touched)
        self._clearance, self._travel = clearance, 0.0
        if touched and not self.in_contact:
            self.in_contact = True
            self.onsets.append(self._onset(fraction))
        elif not touched and clearance > self.params.contact_release_m:
            self.in_contact = False

    def _onset(self, fraction: float) -> ContactOnset:
        """The contact point now: the body's point nearest the nearest obstacle."""
        c = self.body_center()
        dist, normal = point_distances(c, self.segments, self.circles)
        k = int(np.argmin(dist))
        r = self.params.body_radius_m
        wx, wy = float(c[0] - r * normal[k, 0]), float(c[1] - r * normal[k, 1])
        x, y, th = float(self.pose[0]), float(self.pose[1]), float(self.pose[2])
        ct, st = math.cos(th), math.sin(th)
        px, py = (wx - x) * ct + (wy - y) * st, -(wx - x) * st + (wy - y) * ct
        return ContactOnset((px, py), (wx, wy), fraction)

    def _update_clearance(self) -> None:
        _, _, self._clearance = resolve_penetration(
            self.body_center(), self.params.body_radius_m, self.segments, self.circles, iterations=1
        )
        self._travel = 0.0
