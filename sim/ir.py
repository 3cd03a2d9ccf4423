"""Horizontal infrared proximity sensors: Enki's 3-ray response model, and the true distances.

Each sensor casts three rays at -aperture, 0, +aperture. A ray that hits a surface
at x cm (within the range) gives F(x) = m (c - x0^2) / (x^2 - 2 x0 x + c) (m for
x < x0), times the surface's infrared reflectance; the central ray's value is
corrected by -2 F(x / cos(aperture)) as in Enki, so that a flat surface facing the
sensor at distance x reads exactly F(x). The sum gets Gaussian noise and is
clipped to [0, m].

Unlike Enki, a sensor that sees nothing reads exactly 0 (no noise) by default: the
Thymio firmware reports 0 with nothing in range, and the auto-labeller counts any
non-zero reading as an obstacle. Obstacles lower than the sensors are not seen
(the rays pass over them), as in Enki.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sim.checks import check_fields
from sim.errors import SimError
from sim.raycast import RayCaster

__all__ = ["THYMIO_PROX_POSES", "IRParams", "IRSensors", "ir_response"]

THYMIO_PROX_POSES: tuple[tuple[float, float, float], ...] = (
    (0.0630, 0.0493, math.radians(38.0)),
    (0.0756, 0.0261, math.radians(19.0)),
    (0.0800, 0.0, 0.0),
    (0.0756, -0.0261, math.radians(-19.0)),
    (0.0630, -0.0493, math.radians(-38.0)),
    (-0.0300, 0.0305, math.radians(180.0)),
    (-0.0300, -0.0305, math.radians(180.0)),
)
"""(x_m, y_m, theta_rad) of the Thymio II's 7 horizontal sensors (mirrors RobotSpec)."""


@dataclass(frozen=True)
class IRParams:
    """Sensor poses and the response model (Enki's Thymio II values by default)."""

    poses: tuple[tuple[float, float, float], ...] = field(default_factory=lambda: THYMIO_PROX_POSES)
    height_m: float = 0.035  # obstacles lower than this are not seen
    range_m: float = 0.14
    m: float = 4505.0
    x0_cm: float = 0.03
    c_cm2: float = 73.0
    aperture_rad: float = math.radians(15.0)
    noise_std: float = 3.0
    noise_at_zero: bool = False  # Enki adds noise to 0 too; the real firmware reads 0
    rate_hz: float = 10.0

    def __post_init__(self) -> None:
        check_fields(self, "ir")
        object.__setattr__(self, "poses", tuple(tuple(float(v) for v in p) for p in self.poses))
        if not self.poses or any(len(p) != 3 for p in self.poses):
            raise SimError("ir: poses must be (x_m, y_m, theta_rad) triples")
        if self.c_cm2 - self.x0_cm**2 <= 0 or self.m <= 0 or self.range_m <= 0:
            raise SimError("ir: need m > 0, range_m > 0 and c > x0^2")
        if self.noise_std < 0 or self.rate_hz <= 0:
            raise SimError("ir: noise_std must be >= 0 and rate_hz > 0")

    @property
    def num_sensors(self) -> int:
        return len(self.poses)


def ir_response(x_m: np.ndarray | float, params: IRParams = IRParams()) -> np.ndarray:
    """Enki's response F for rays of length x (m): m for x < x0, 0 beyond the range."""
    x_cm = np.asarray(x_m, np.float64) * 100.0
    num = params.m * (params.c_cm2 - params.x0_cm**2)
    den = x_cm * x_cm - 2.0 * params.x0_cm * x_cm + params.c_cm2
    out = num / den
    out = np.where(x_cm < params.x0_cm, params.m, out)
    return np.where(x_cm > params.range_m * 100.0, 0.0, out)


class IRSensors:
    """The sensor ring of one robot in one world (geometry filtered by sensor height)."""

    def __init__(
        self,
        params: IRParams,
        segments: np.ndarray,
        segments_height_m: np.ndarray,
        segments_reflectance: np.ndarray,
        circles: np.ndarray,
        circles_height_m: np.ndarray,
        circles_reflectance: np.ndarray,
    ) -> None:
        self.params = params
        seen_s = np.asarray(segments_height_m) >= params.height_m
        seen_c = np.asarray(circles_height_m) >= params.height_m
        self.segments = np.asarray(segments, np.float64).reshape(-1, 4)[seen_s]
        self.circles = np.asarray(circles, np.float64).reshape(-1, 3)[seen_c]
        self.reflectance = np.concatenate(
            [np.asarray(segments_reflectance)[seen_s], np.asarray(circles_reflectance)[seen_c]]
        ).astype(np.float64)
        self.all_segments = np.asarray(segments, np.float64).reshape(-1, 4)
        self.all_circles = np.asarray(circles, np.float64).reshape(-1, 3)
        self._seen = RayCaster(self.segments, self.circles)
        self._all = RayCaster(self.all_segments, self.all_circles)
        poses = np.asarray(params.poses, np.float64)
        self._local_xy = poses[:, :2]
        self._local_th = poses[:, 2]
        a = params.aperture_rad
        self._ray_offsets = np.array([-a, 0.0, a])
        self._alpha = 1.0 / math.cos(a)

    def _sensor_frames(self, poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sensor origins (N, S, 2) and headings (N, S) for robot poses (N, 3)."""
        x, y, th = poses[:, 0:1], poses[:, 1:2], poses[:, 2:3]
        c, s = np.cos(th), np.sin(th)
        lx, ly = self._local_xy[None, :, 0], self._local_xy[None, :, 1]
        origins = np.stack([x + c * lx - s * ly, y + s * lx + c * ly], axis=-1)
        return origins, th + self._local_th[None, :]

    def sensor_frames(self, pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sensor origins (S, 2) and headings (S,) in the world at one robot pose."""
        origins, heading = self._sensor_frames(np.asarray(pose, np.float64).reshape(1, 3))
        return origins[0], heading[0]

    def values(self, pose: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Raw readings int16 (num_sensors,) at a robot pose; noise-free when rng is None."""
        p = self.params
        value, anything = self._values(np.asarray(pose, np.float64).reshape(1, 3))
        value, anything = value[0], anything[0]
        if rng is not None and p.noise_std > 0:
            noisy = value + rng.normal(0.0, p.noise_std, len(value))
            value = noisy if p.noise_at_zero else np.where(anything, noisy, value)
        return np.clip(np.rint(value), 0, p.m).astype(np.int16)

    def values_at(self, poses: np.ndarray) -> np.ndarray:
        """Noise-free readings int16 (N, num_sensors) at N robot poses (N, 3), in one cast."""
        value, _ = self._values(np.asarray(poses, np.float64).reshape(-1, 3))
        return np.clip(np.rint(value), 0, self.params.m).astype(np.int16)

    def _values(self, poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Noise-free float readings (N, S) and whether any ray hit in range (N, S)."""
        p = self.params
        origins, heading = self._sensor_frames(poses)
        n, k = heading.shape
        ang = (heading[..., None] + self._ray_offsets).reshape(-1)
        dirs = np.stack([np.cos(ang), np.sin(ang)], axis=1)
        org = np.repeat(origins.reshape(-1, 2), 3, axis=0)
        t, idx = self._seen.cast(org, dirs)
        refl = np.zeros(t.shape)
        hit = idx >= 0
        refl[hit] = self.reflectance[idx[hit]]
        in_range = t <= p.range_m  # Enki: a ray counts only when it hits within the range
        ray = np.where(in_range, ir_response(np.where(in_range, t, 0.0), p), 0.0)
        ray = ray.reshape(n, k, 3)
        t3 = t.reshape(n, k, 3)
        in3 = in_range.reshape(n, k, 3)
        centre_corr = np.where(in3[..., 1], ir_response(t3[..., 1] * self._alpha, p), 0.0)
        ray[..., 1] -= 2.0 * centre_corr
        value = (ray * refl.reshape(n, k, 3)).sum(axis=-1)
        return value, in3.any(axis=-1)

    def true_distances(self, pose: np.ndarray) -> np.ndarray:
        """Distance (m) from each sensor along its axis to the nearest obstacle of any
        height, unlimited range (inf when the ray leaves the world)."""
        origins, heading = self.sensor_frames(pose)
        dirs = np.stack([np.cos(heading), np.sin(heading)], axis=1)
        t, _ = self._all.cast(origins, dirs)
        return t
