"""Vectorised 2-D ray casting and distances against segments and circles (numpy, no loops).

Shared by the proximity sensors, the simulator truth, collisions and the camera.
Rays are origin + t * direction with unit directions and t >= 0 in metres.
"""

from __future__ import annotations

import numpy as np

__all__ = ["cast_rays", "point_distances", "ray_circle_hits", "ray_segment_hits"]

_EPS = 1e-12


def ray_segment_hits(
    origins: np.ndarray, dirs: np.ndarray, segments: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Hit distance t (R, S) (inf when missed) and position along each segment s in [0, 1].

    origins, dirs: (R, 2) or (2,) (one origin for all rays); segments: (S, 4) x0, y0, x1, y1.
    """
    o = np.asarray(origins, np.float64)
    d = np.asarray(dirs, np.float64)
    seg = np.asarray(segments, np.float64).reshape(-1, 4)
    ex = seg[:, 2] - seg[:, 0]
    ey = seg[:, 3] - seg[:, 1]
    dx = d[..., 0:1]
    dy = d[..., 1:2]
    denom = dx * ey - dy * ex  # cross(d, e)  (R, S)
    wx = seg[:, 0] - o[..., 0:1]  # p - o
    wy = seg[:, 1] - o[..., 1:2]
    parallel = np.abs(denom) < _EPS
    safe = np.where(parallel, 1.0, denom)
    t = (wx * ey - wy * ex) / safe
    s = (wx * dy - wy * dx) / safe
    hit = (t >= 0.0) & (s >= 0.0) & (s <= 1.0) & ~parallel
    return np.where(hit, t, np.inf), s


def ray_circle_hits(
    origins: np.ndarray, dirs: np.ndarray, circles: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Entry and exit distances (R, C) of rays through circles (inf when missed or behind)."""
    o = np.asarray(origins, np.float64)
    d = np.asarray(dirs, np.float64)
    c = np.asarray(circles, np.float64).reshape(-1, 3)
    ox = o[..., 0:1] - c[:, 0]
    oy = o[..., 1:2] - c[:, 1]
    b = ox * d[..., 0:1] + oy * d[..., 1:2]
    cc = ox * ox + oy * oy - c[:, 2] ** 2
    disc = b * b - cc
    ok = disc >= 0.0
    root = np.sqrt(np.where(ok, disc, 0.0))
    t_in = -b - root
    t_out = -b + root
    outside = cc >= 0.0  # origin outside the circle
    hit = ok & (t_in >= 0.0) & outside
    return np.where(hit, t_in, np.inf), np.where(hit, t_out, np.inf)


def cast_rays(
    origins: np.ndarray,
    dirs: np.ndarray,
    segments: np.ndarray,
    circles: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest hit per ray: distance (R,) (inf when none) and the primitive index (R,)
    into [segments..., circles...] (-1 when none)."""
    d = np.asarray(dirs, np.float64)
    n_rays = d.shape[0]
    parts = []
    if len(segments):
        parts.append(ray_segment_hits(origins, d, segments)[0])
    if len(circles):
        parts.append(ray_circle_hits(origins, d, circles)[0])
    if not parts:
        return np.full(n_rays, np.inf), np.full(n_rays, -1, np.int64)
    t = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
    idx = np.argmin(t, axis=1)
    best = t[np.arange(n_rays), idx]
    return best, np.where(np.isfinite(best), idx, -1)


def point_distances(
    point: np.ndarray, segments: np.ndarray, circles: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Distance from one point to every segment then every circle (outline), and the unit
    vector from the nearest point of each primitive towards the point ((S + C), 2).

    For a point inside a circle the distance is negative (minus the depth).
    """
    p = np.asarray(point, np.float64)
    seg = np.asarray(segments, np.float64).reshape(-1, 4)
    a = seg[:, :2]
    e = seg[:, 2:] - a
    ee = np.maximum(np.einsum("ij,ij->i", e, e), _EPS)
    u = np.clip(((p - a) * e).sum(axis=1) / ee, 0.0, 1.0)
    closest = a + u[:, None] * e
    v = p - closest
    dist_s = np.hypot(v[:, 0], v[:, 1])
    n_s = v / np.maximum(dist_s, _EPS)[:, None]
    c = np.asarray(circles, np.float64).reshape(-1, 3)
    vc = p - c[:, :2]
    r = np.hypot(vc[:, 0], vc[:, 1])
    dist_c = r - c[:, 2]
    n_c = vc / np.maximum(r, _EPS)[:, None]
    return np.concatenate([dist_s, dist_c]), np.concatenate([n_s, n_c])


class RayCaster:
    """`cast_rays` against a fixed set of segments and circles, with the per-primitive
    terms precomputed (for rays cast many times a second against the same world)."""

    def __init__(self, segments: np.ndarray, circles: np.ndarray) -> None:
        seg = np.asarray(segments, np.float64).reshape(-1, 4)
        self.px, self.py = seg[:, 0], seg[:, 1]
        self.ex, self.ey = seg[:, 2] - seg[:, 0], seg[:, 3] - seg[:, 1]
        c = np.asarray(circles, np.float64).reshape(-1, 3)
        self.cx, self.cy, self.r2 = c[:, 0], c[:, 1], c[:, 2] ** 2
        self.n_seg, self.n_circ = len(seg), len(c)

    def cast(self, origins: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest hit distance (R,) (inf when none) and primitive index (R,) (-1 when none)
        into [segments..., circles...]."""
        ox, oy = origins[:, 0:1], origins[:, 1:2]
        dx, dy = dirs[:, 0:1], dirs[:, 1:2]
        parts = []
        if self.n_seg:
            denom = dx * self.ey - dy * self.ex
            parallel = np.abs(denom) < _EPS
            inv = 1.0 / np.where(parallel, 1.0, denom)
            wx, wy = self.px - ox, self.py - oy
            t = (wx * self.ey - wy * self.ex) * inv
            s = (wx * dy - wy * dx) * inv
            parts.append(np.where((t >= 0.0) & (s >= 0.0) & (s <= 1.0) & ~parallel, t, np.inf))
        if self.n_circ:
            rx, ry = ox - self.cx, oy - self.cy
            b = rx * dx + ry * dy
            cc = rx * rx + ry * ry - self.r2
            disc = b * b - cc
            t_in = -b - np.sqrt(np.maximum(disc, 0.0))
            parts.append(np.where((disc >= 0.0) & (t_in >= 0.0) & (cc >= 0.0), t_in, np.inf))
        n = dirs.shape[0]
        if not parts:
            return np.full(n, np.inf), np.full(n, -1, np.int64)
        t = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
        idx = t.argmin(axis=1)
        best = t[np.arange(n), idx]
        return best, np.where(best < np.inf, idx, -1)
