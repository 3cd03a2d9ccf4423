"""Horizontal infrared proximity sensors: a physical response model (default), Enki's
3-ray model, and the distances used as simulator truth.

Both models use the response curve of Enki's Thymio II, for a ray that hits a surface
at x cm (within the range): F(x) = m (c - x0^2) / (x^2 - 2 x0 x + c) (m for x < x0, 0
beyond `range_m`), times the surface's infrared reflectance.

- `model="physical"` (default): `rays` rays (9) spread evenly over +-aperture (15 deg),
  weighted by a Gaussian emission lobe (std `lobe_std_rad`, 10 deg). Each ray gives
  reflectance * cos(incidence) * F(t) (Lambert: incidence is the angle between the ray
  and the surface normal at the hit); the reading is `scale` times the weighted mean
  over the rays. `scale` (1.017 with the defaults) is fitted so that a white wall
  facing the sensor at x = 1..13 cm reads F(x) within 0.7 %. No term is negative, so
  the reading falls off monotonically as an obstacle of any width recedes, and tends
  to 0 continuously as a ray's incidence becomes grazing; within ~7 mm of contact it
  saturates at m. (A ray exactly through a corner's vertex takes the incidence of
  whichever wall it hits first in floating point, so a vertex crossing rays makes
  steps of up to ~3 %.)
- `model="enki"`: Enki's model, bit for bit: rays at -aperture, 0, +aperture, summed,
  the central ray corrected by -2 F(x / cos(aperture)) so that a flat surface facing
  the sensor reads exactly F(x). The negative correction makes holes: a 2.5 cm cylinder
  straight ahead reads 0 from 8 to 12 cm and 1252 at 13.8 cm; the outer sensors of a
  robot facing a wall 7-8.5 cm away read ~470 instead of ~1800.

The sum gets Gaussian noise (std `noise_std`) and is clipped to [0, m]. Unlike Enki, a
sensor whose rays hit nothing within the range reads exactly 0 (no noise) by default:
the Thymio firmware reports 0 with nothing in range, and the auto-labeller counts any
non-zero reading as an obstacle. Obstacles lower than the sensors (`height_m`) are not
seen (the rays pass over them), as in Enki.

Truth: `sensed_distances` is, per sensor, the nearest hit among the rays the reading
uses, against the same height-filtered geometry, so "sensed distance <= range_m" is
exactly "the reading has something in range" (with the physical model the noise-free
reading is then > 0, except at grazing incidence or on a 0-reflectance surface).
`true_distances` (one ray along each sensor axis, obstacles of any height, unlimited
range) is kept for drawing.

Other kinds in the ring: `IRParams.kinds` names each pose's kind ("ir", "range",
"contact"; empty: all IR, read exactly as above). The range and contact sensors are
sim.range_sensors' (a range sector casts one ray per degree of its `fov_rad`; readings
in mm up to its reach, 32767 beyond; a contact sensor reads 1 while the body touches an
obstacle over its arc); readings and truth keep the poses' order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from sim.checks import check_fields
from sim.errors import SimError
from sim.range_sensors import CONTACT_REACH_M, RANGE_KINDS, ShortRangeSensors
from sim.raycast import RayCaster

__all__ = ["IR_MODELS", "THYMIO_PROX_POSES", "IRParams", "IRSensors", "ir_response"]

IR_MODELS: tuple[str, ...] = ("physical", "enki")
"""The response models `IRParams.model` accepts."""

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
    """Sensor poses and the response model (Enki's Thymio II curve by default).

    `model`: "physical" (default: `rays` rays over +-`aperture_rad`, Gaussian lobe of std
    `lobe_std_rad`, Lambert incidence, no negative terms) or "enki" (Enki's 3 rays at
    -aperture, 0, +aperture with the centre-ray correction); see the module docstring.
    Distances in metres, the curve's x0 (cm) and c (cm^2) in Enki's units, angles in
    radians, `m` and `noise_std` in raw reading units.
    """

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
    model: str = "physical"
    rays: int = 9  # physical model: rays per sensor, evenly over +-aperture_rad
    lobe_std_rad: float = math.radians(10.0)  # physical model: emission lobe std
    # Other kinds of sensor in the ring (sim.range_sensors); empty: every sensor is IR.
    kinds: tuple[str, ...] = ()  # per pose: "ir", "range" or "contact"
    fov_rad: tuple[float, ...] = ()  # per pose: a range sector's / bumper arc's width
    reach_m: tuple[float, ...] = ()  # per pose: reach (empty: range_m; contact 5 mm)
    body_radius_m: float = 0.08  # contact sensors: the body's outline ...
    body_offset_x_m: float = 0.0  # ... centred this far ahead of the axle midpoint
    range_noise_std_mm: float = 2.0  # range readings' Gaussian noise

    def __post_init__(self) -> None:
        check_fields(self, "ir")
        if not isinstance(self.model, str) or self.model not in IR_MODELS:
            raise SimError(f"ir.model: must be one of {', '.join(IR_MODELS)}, got {self.model!r}")
        object.__setattr__(self, "poses", tuple(tuple(float(v) for v in p) for p in self.poses))
        if not self.poses or any(len(p) != 3 for p in self.poses):
            raise SimError("ir: poses must be (x_m, y_m, theta_rad) triples")
        if self.c_cm2 - self.x0_cm**2 <= 0 or self.m <= 0 or self.range_m <= 0:
            raise SimError("ir: need m > 0, range_m > 0 and c > x0^2")
        if self.noise_std < 0 or self.rate_hz <= 0:
            raise SimError("ir: noise_std must be >= 0 and rate_hz > 0")
        if not 0.0 <= self.aperture_rad < math.pi / 2:
            raise SimError(f"ir.aperture_rad: must be in [0, pi/2), got {self.aperture_rad!r}")
        if self.rays < 1 or self.lobe_std_rad <= 0:
            raise SimError("ir: need rays >= 1 and lobe_std_rad > 0")
        n = len(self.poses)
        for name in ("kinds", "fov_rad", "reach_m"):
            value = tuple(getattr(self, name))
            object.__setattr__(self, name, value)
            if value and len(value) != n:
                raise SimError(f"ir.{name}: {len(value)} entries for {n} sensors")
        bad = [k for k in self.kinds if k not in ("ir", *RANGE_KINDS)]
        if bad:
            raise SimError(f"ir.kinds: unknown sensor kind {bad[0]!r} (ir, range, contact)")
        if any(f < 0 or f > 2 * math.pi for f in self.fov_rad):
            raise SimError("ir.fov_rad: each must be in [0, 2 pi]")
        if any(r <= 0 for r in self.reach_m) or self.body_radius_m <= 0:
            raise SimError("ir: reach_m and body_radius_m must be > 0")
        if self.range_noise_std_mm < 0:
            raise SimError("ir.range_noise_std_mm: must be >= 0")

    @property
    def num_sensors(self) -> int:
        return len(self.poses)

    def kind(self, i: int) -> str:
        """Sensor i's kind ("ir" when `kinds` is empty)."""
        return self.kinds[i] if self.kinds else "ir"

    @property
    def mixed(self) -> bool:
        """Whether the ring has sensors other than IR."""
        return any(k != "ir" for k in self.kinds)


def ir_response(x_m: np.ndarray | float, params: IRParams = IRParams()) -> np.ndarray:
    """Enki's response F for rays of length x (m): m for x < x0, 0 beyond the range."""
    x_cm = np.asarray(x_m, np.float64) * 100.0
    x_cm = np.minimum(x_cm, 1e9)  # inf (no hit) reads 0 like any x beyond the range
    num = params.m * (params.c_cm2 - params.x0_cm**2)
    den = x_cm * x_cm - 2.0 * params.x0_cm * x_cm + params.c_cm2
    out = num / den
    out = np.where(x_cm < params.x0_cm, params.m, out)
    return np.where(x_cm > params.range_m * 100.0, 0.0, out)


def _physical_rays(params: IRParams) -> tuple[np.ndarray, np.ndarray, float]:
    """Ray offsets (K,) rad, lobe weights (K,) summing to 1, and the scale that makes a
    white wall facing the sensor read F(x) best (minimax relative error) over 1-13 cm."""
    a = params.aperture_rad
    offsets = np.linspace(-a, a, params.rays) if params.rays > 1 else np.zeros(1)
    w = np.exp(-0.5 * (offsets / params.lobe_std_rad) ** 2)
    w /= w.sum()
    hi = min(0.13, 0.999 * params.range_m * math.cos(a))
    x = np.linspace(min(0.01, hi / 2), hi, 241)
    cos = np.cos(offsets)
    wall = (ir_response(x[:, None] / cos, params) * cos) @ w  # (X,): incidence = offset
    g = wall / ir_response(x, params)
    return offsets, w, float(2.0 / (g.max() + g.min()))


class IRSensors:
    """The sensor ring of one robot in one world (geometry filtered by sensor height).

    Geometry: segments (S, 4) x0, y0, x1, y1 and circles (C, 3) x, y, r in metres, each
    with a height (m) and an IR reflectance. A ring with other kinds (`IRParams.kinds`:
    range, contact) reads each sensor by its kind: the IR ones as below, the others as
    sim.range_sensors says; readings and truth keep the poses' order.
    """

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
        self._alpha = 1.0 / math.cos(a)
        if params.model == "enki":
            self._ray_offsets = np.array([-a, 0.0, a])
            self._ray_weights = np.ones(3)
            self.scale = 1.0
        else:
            self._ray_offsets, self._ray_weights, self.scale = _physical_rays(params)
        self._init_normals()
        self._mixed = params.mixed
        if self._mixed:
            geometry = (segments, segments_height_m, segments_reflectance)
            geometry += (circles, circles_height_m, circles_reflectance)
            self._init_mixed(geometry)

    def _init_mixed(self, geometry: tuple[np.ndarray, ...]) -> None:
        """The IR sensors as a ring of their own, the others as ShortRangeSensors."""
        p = self.params
        kinds = p.kinds
        self._ir_cols = np.array([i for i, k in enumerate(kinds) if k == "ir"], np.int64)
        self._other_cols = np.array([i for i, k in enumerate(kinds) if k != "ir"], np.int64)
        self._ir_ring = None
        if self._ir_cols.size:
            sub = replace(
                p, poses=tuple(p.poses[i] for i in self._ir_cols), kinds=(), fov_rad=(), reach_m=()
            )
            self._ir_ring = IRSensors(sub, *geometry)
        fov = np.asarray(p.fov_rad or (0.0,) * p.num_sensors, np.float64)
        default = [CONTACT_REACH_M if k == "contact" else p.range_m for k in kinds]
        reach = np.asarray(p.reach_m or default, np.float64)
        cols = self._other_cols
        self._others = ShortRangeSensors(
            np.asarray(p.poses, np.float64)[cols],
            tuple(kinds[i] for i in cols),
            fov[cols],
            reach[cols],
            self._seen,
            self._all,
            body_radius_m=p.body_radius_m,
            body_offset_x_m=p.body_offset_x_m,
            noise_std_mm=p.range_noise_std_mm,
        )

    def _mixed_values(self, poses: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        """Readings int16 (N, S) of a mixed ring (noise when rng is given)."""
        out = np.empty((len(poses), self.params.num_sensors), np.int16)
        if self._ir_ring is not None:
            if rng is None:
                out[:, self._ir_cols] = self._ir_ring.values_at(poses)
            else:
                out[:, self._ir_cols] = [self._ir_ring.values(q, rng) for q in poses]
        out[:, self._other_cols] = self._others.readings(self._others.distances_at(poses), rng)
        return out

    def _mixed_distances(self, poses: np.ndarray, ir_truth: str) -> np.ndarray:
        """Truth (N, S) m of a mixed ring: the IR sensors' `ir_truth` method's, the others'
        ShortRangeSensors.distances_at."""
        out = np.empty((len(poses), self.params.num_sensors))
        if self._ir_ring is not None:
            if ir_truth == "sensed":
                out[:, self._ir_cols] = self._ir_ring.sensed_distances_at(poses)
            else:
                out[:, self._ir_cols] = [self._ir_ring.true_distances(q) for q in poses]
        out[:, self._other_cols] = self._others.distances_at(poses)
        return out

    def _init_normals(self) -> None:
        """Per-primitive arrays for the incidence, indexed by the caster's hit index, with
        one padding entry at the end (index -1: no hit, reflectance 0)."""
        seg, circ = self.segments, self.circles
        self._n_seg = len(seg)
        ex, ey = seg[:, 2] - seg[:, 0], seg[:, 3] - seg[:, 1]
        length = np.maximum(np.hypot(ex, ey), 1e-12)
        zc, z1 = np.zeros(len(circ) + 1), np.zeros(1)
        self._nx = np.concatenate([-ey / length, zc])  # segment unit normals (sign free)
        self._ny = np.concatenate([ex / length, zc])
        self._cx = np.concatenate([np.zeros(len(seg)), circ[:, 0], z1])
        self._cy = np.concatenate([np.zeros(len(seg)), circ[:, 1], z1])
        self._cr = np.concatenate([np.ones(len(seg)), circ[:, 2], np.ones(1)])
        self._refl = np.concatenate([self.reflectance, z1])

    @property
    def ray_offsets(self) -> np.ndarray:
        """The rays' angles (K,) in radians relative to each sensor's axis (a copy)."""
        return self._ray_offsets.copy()

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
        if self._mixed:
            return self._mixed_values(np.asarray(pose, np.float64).reshape(1, 3), rng)[0]
        value, anything = self._values(np.asarray(pose, np.float64).reshape(1, 3))
        value, anything = value[0], anything[0]
        if rng is not None and p.noise_std > 0:
            noisy = value + rng.normal(0.0, p.noise_std, len(value))
            value = noisy if p.noise_at_zero else np.where(anything, noisy, value)
        return np.clip(np.rint(value), 0, p.m).astype(np.int16)

    def values_at(self, poses: np.ndarray) -> np.ndarray:
        """Noise-free readings int16 (N, num_sensors) at N robot poses (N, 3), in one cast."""
        if self._mixed:
            return self._mixed_values(np.asarray(poses, np.float64).reshape(-1, 3), None)
        value, _ = self._values(np.asarray(poses, np.float64).reshape(-1, 3))
        return np.clip(np.rint(value), 0, self.params.m).astype(np.int16)

    def _cast(self, poses: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The model's rays from every sensor at robot poses (N, 3): origins (R, 2), unit
        directions (R, 2), hit distances (R,) m (inf: none) and hit indices (R,) (-1: none)
        into the seen [segments..., circles...], R = N * S * K in that order."""
        origins, heading = self._sensor_frames(poses)
        k = len(self._ray_offsets)
        ang = (heading[..., None] + self._ray_offsets).reshape(-1)
        dirs = np.stack([np.cos(ang), np.sin(ang)], axis=1)
        org = np.repeat(origins.reshape(-1, 2), k, axis=0)
        t, idx = self._seen.cast(org, dirs)
        return org, dirs, t, idx

    def _values(self, poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Noise-free float readings (N, S) and whether any ray hit in range (N, S)."""
        if self.params.model == "enki":
            return self._values_enki(poses)
        return self._values_physical(poses)

    def _values_enki(self, poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = self.params
        n, k = len(poses), p.num_sensors
        _, _, t, idx = self._cast(poses)
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

    def _incidence_cos(
        self, org: np.ndarray, dirs: np.ndarray, t: np.ndarray, idx: np.ndarray
    ) -> np.ndarray:
        """cos of the angle between each ray and the surface normal at its hit (R,), in
        [0, 1]; 0 for rays that hit nothing."""
        dx, dy = dirs[:, 0], dirs[:, 1]
        on_seg = (idx >= 0) & (idx < self._n_seg)
        cos_seg = np.abs(dx * self._nx[idx] + dy * self._ny[idx])
        # circle: the hit p = o + t d; (p - centre) . d = -|.| at entry, over the radius
        b = (org[:, 0] - self._cx[idx]) * dx + (org[:, 1] - self._cy[idx]) * dy
        on_circ = idx >= self._n_seg
        cos_circ = -(b + np.where(on_circ, t, 0.0)) / self._cr[idx]
        return np.where(on_seg, cos_seg, np.where(on_circ, np.clip(cos_circ, 0.0, 1.0), 0.0))

    def _values_physical(self, poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = self.params
        n, s, k = len(poses), p.num_sensors, len(self._ray_offsets)
        org, dirs, t, idx = self._cast(poses)
        in_range = t <= p.range_m
        f = np.where(in_range, ir_response(np.where(in_range, t, 0.0), p), 0.0)
        ray = self._refl[idx] * self._incidence_cos(org, dirs, t, idx) * f
        value = ray.reshape(n, s, k) @ (self.scale * self._ray_weights)
        return value, in_range.reshape(n, s, k).any(axis=-1)

    def sensed_distances(self, pose: np.ndarray) -> np.ndarray:
        """Truth with the sensor's geometry: per sensor (S,), the nearest hit (m) among the
        rays of the active model, against the obstacles the sensors can see (at least
        `height_m` high); inf when no ray hits. A distance <= range_m is exactly "the
        reading has something in range"."""
        return self.sensed_distances_at(np.asarray(pose, np.float64).reshape(1, 3))[0]

    def sensed_distances_at(self, poses: np.ndarray) -> np.ndarray:
        """`sensed_distances` (N, S) in metres at N robot poses (N, 3), in one cast."""
        poses = np.asarray(poses, np.float64).reshape(-1, 3)
        if self._mixed:
            return self._mixed_distances(poses, "sensed")
        _, _, t, _ = self._cast(poses)
        return t.reshape(len(poses), self.params.num_sensors, -1).min(axis=-1)

    def true_distances(self, pose: np.ndarray) -> np.ndarray:
        """Distance (m) from each sensor along its axis to the nearest obstacle of any
        height, unlimited range (inf when the ray leaves the world); a mixed ring's range and
        contact sensors: their ShortRangeSensors distances."""
        if self._mixed:
            return self._mixed_distances(np.asarray(pose, np.float64).reshape(1, 3), "axis")[0]
        origins, heading = self.sensor_frames(pose)
        dirs = np.stack([np.cos(heading), np.sin(heading)], axis=1)
        t, _ = self._all.cast(origins, dirs)
        return t
