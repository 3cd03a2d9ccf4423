"""Range sensors (sonar, time-of-flight, LiDAR beams and sectors) and contact sensors
(bumpers): their readings and their true distances, vectorised over robot poses.

A sensor is (x_m, y_m, theta_rad) in the robot frame, a kind, a field of view
`fov_rad` and a reach `reach_m`:

- "range": rays from the sensor's origin, one along the axis when fov_rad is 0, else
  one per degree of the sector (round(deg(fov)) rays at the centres of equal slices
  of [-fov/2, +fov/2]: 8 sectors of 45 deg are a 360-beam LiDAR). The true distance
  is the nearest hit over the rays (m, inf when none), against the obstacles at least
  `height_m` high (the rays pass over lower ones, as the IR's do). The reading is
  that distance in mm (int16, Gaussian noise of std `noise_std_mm` when an rng is
  given, never below 0) when it is within the reach, else NO_RETURN_MM (32767): a
  simulated range sensor reports returns up to its reach (its `range_m`) only.
- "contact": a bumper covering the arc of the body within +-fov/2 of theta_rad (the
  whole body when fov_rad is 2 pi; fov_rad 0: the one direction theta_rad). Rays leave
  the body's centre (`body_offset_x_m` ahead of the axle midpoint) one per degree of
  the arc; the true distance is the smallest gap between the body's outline
  (`body_radius_m`) and an obstacle of any height along them (m, negative when
  penetrating); the reading is 1 while the gap is below the reach (pressed), else 0.
"""

from __future__ import annotations

import math

import numpy as np

from sim.raycast import RayCaster

__all__ = ["CONTACT_REACH_M", "NO_RETURN_MM", "RANGE_KINDS", "ShortRangeSensors", "sector_offsets"]

NO_RETURN_MM = 32767
"""A range sensor's reading when nothing returns within its reach (int16 maximum)."""
CONTACT_REACH_M = 0.005
"""A contact sensor's default reach (m): pressed while the body's gap is below it
(mirrors robot_ssl.core.spec.CONTACT_REACH_M)."""
RANGE_KINDS = ("range", "contact")
"""The kinds this module simulates ("ir" is sim.ir's)."""


def sector_offsets(fov_rad: float) -> np.ndarray:
    """Ray angles (K,) relative to the axis: 0 alone for fov 0, else one per degree of
    the sector, at the centres of K equal slices of [-fov/2, +fov/2]."""
    k = max(1, round(math.degrees(fov_rad)))
    if fov_rad <= 0.0:
        return np.zeros(1)
    return (np.arange(k) + 0.5) * (fov_rad / k) - fov_rad / 2.0


class ShortRangeSensors:
    """The range and contact sensors of one robot in one world (see module docstring).

    `poses` (S, 3), `kinds` (S,) in RANGE_KINDS, `fov_rad` and `reach_m` (S,); `seen`:
    a caster of the obstacles the range rays see (height-filtered), `every`: of all
    obstacles (what the body touches).
    """

    def __init__(
        self,
        poses: np.ndarray,
        kinds: tuple[str, ...],
        fov_rad: np.ndarray,
        reach_m: np.ndarray,
        seen: RayCaster,
        every: RayCaster,
        *,
        body_radius_m: float,
        body_offset_x_m: float = 0.0,
        noise_std_mm: float = 0.0,
    ) -> None:
        poses = np.asarray(poses, np.float64).reshape(-1, 3)
        self.kinds = tuple(kinds)
        self.reach_m = np.asarray(reach_m, np.float64)
        self.is_contact = np.array([k == "contact" for k in self.kinds], bool)
        self.body_radius_m = float(body_radius_m)
        self.noise_std_mm = float(noise_std_mm)
        self._seen, self._every = seen, every
        xy, ang, owner = [], [], []
        for i, (pose, kind, fov) in enumerate(zip(poses, self.kinds, fov_rad)):
            off = sector_offsets(float(fov))
            origin = (body_offset_x_m, 0.0) if kind == "contact" else (pose[0], pose[1])
            xy.append(np.tile(origin, (len(off), 1)))
            ang.append(pose[2] + off)
            owner.append(np.full(len(off), i))
        self._xy = np.concatenate(xy)  # (R, 2) ray origins in the robot frame
        self._ang = np.concatenate(ang)  # (R,) ray headings in the robot frame
        owner_arr = np.concatenate(owner)
        self._starts = np.flatnonzero(np.r_[True, np.diff(owner_arr) != 0])  # per sensor
        self._contact_ray = self.is_contact[owner_arr]

    @property
    def num_sensors(self) -> int:
        return len(self.kinds)

    @property
    def num_rays(self) -> int:
        return len(self._ang)

    def distances_at(self, poses: np.ndarray) -> np.ndarray:
        """True distances (N, S) m at robot poses (N, 3): range sensors the nearest hit
        over their rays (inf: none), contact sensors the body's gap over their arc."""
        poses = np.asarray(poses, np.float64).reshape(-1, 3)
        n, r = len(poses), self.num_rays
        x, y, th = poses[:, 0:1], poses[:, 1:2], poses[:, 2:3]
        c, s = np.cos(th), np.sin(th)
        lx, ly = self._xy[None, :, 0], self._xy[None, :, 1]
        org = np.stack([x + c * lx - s * ly, y + s * lx + c * ly], axis=-1).reshape(-1, 2)
        head = (th + self._ang[None, :]).reshape(-1)
        dirs = np.stack([np.cos(head), np.sin(head)], axis=1)
        contact = np.tile(self._contact_ray, n)
        t = np.empty(n * r)
        if (~contact).any():
            t[~contact] = self._seen.cast(org[~contact], dirs[~contact])[0]
        if contact.any():
            t[contact] = self._every.cast(org[contact], dirs[contact])[0] - self.body_radius_m
        return np.minimum.reduceat(t.reshape(n, r), self._starts, axis=1)

    def readings(
        self, distances_m: np.ndarray, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """int16 readings (N, S) from true distances (N, S): range in mm (NO_RETURN_MM
        beyond the reach), contact 1 / 0; noise on the range readings when rng is given."""
        d = np.asarray(distances_m, np.float64)
        inside = d < self.reach_m
        mm = np.where(inside, d, 0.0) * 1000.0
        if rng is not None and self.noise_std_mm > 0:
            mm = mm + rng.normal(0.0, self.noise_std_mm, mm.shape)
        mm = np.clip(np.rint(mm), 0, NO_RETURN_MM - 1)
        value = np.where(self.is_contact, inside, np.where(inside, mm, NO_RETURN_MM))
        return value.astype(np.int16)
