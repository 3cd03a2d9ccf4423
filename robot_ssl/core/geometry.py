"""SE(2) geometry on numpy arrays: poses are (..., 3) arrays of (x_m, y_m, theta_rad).

All functions broadcast over leading dimensions and never loop in Python.
"""

from __future__ import annotations

import numpy as np

_SMALL_RAD = 1e-6


def wrap_angle(a_rad: np.ndarray | float) -> np.ndarray:
    """Wrap angles to the half-open interval (-pi, pi]."""
    a = np.asarray(a_rad, dtype=np.float64)
    return np.pi - np.mod(np.pi - a, 2.0 * np.pi)


def compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a ∘ b: the pose b (expressed in frame a) expressed in a's parent frame."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    c, s = np.cos(a[..., 2]), np.sin(a[..., 2])
    x = a[..., 0] + c * b[..., 0] - s * b[..., 1]
    y = a[..., 1] + s * b[..., 0] + c * b[..., 1]
    return np.stack([x, y, wrap_angle(a[..., 2] + b[..., 2])], axis=-1)


def inverse(a: np.ndarray) -> np.ndarray:
    """The pose p with a ∘ p = identity."""
    a = np.asarray(a, dtype=np.float64)
    c, s = np.cos(a[..., 2]), np.sin(a[..., 2])
    x = -(c * a[..., 0] + s * a[..., 1])
    y = s * a[..., 0] - c * a[..., 1]
    return np.stack([x, y, wrap_angle(-a[..., 2])], axis=-1)


def relative(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pose b expressed in the frame of pose a (a⁻¹ ∘ b), vectorised without building a⁻¹."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    c, s = np.cos(a[..., 2]), np.sin(a[..., 2])
    dx = b[..., 0] - a[..., 0]
    dy = b[..., 1] - a[..., 1]
    return np.stack([c * dx + s * dy, -s * dx + c * dy, wrap_angle(b[..., 2] - a[..., 2])], axis=-1)


def _v_coeffs(th: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """sin(th)/th and (1 - cos th)/th with Taylor series near zero."""
    small = np.abs(th) < _SMALL_RAD
    safe = np.where(small, 1.0, th)
    a = np.where(small, 1.0 - th**2 / 6.0, np.sin(safe) / safe)
    b = np.where(small, th / 2.0 - th**3 / 24.0, (1.0 - np.cos(safe)) / safe)
    return a, b


def se2_log(p: np.ndarray) -> np.ndarray:
    """Twist (vx, vy, omega) whose unit-time exponential is pose p (constant-curvature arc)."""
    p = np.asarray(p, dtype=np.float64)
    th = wrap_angle(p[..., 2])
    a, b = _v_coeffs(th)
    det = a * a + b * b
    vx = (a * p[..., 0] + b * p[..., 1]) / det
    vy = (-b * p[..., 0] + a * p[..., 1]) / det
    return np.stack([vx, vy, th], axis=-1)


def se2_exp(xi: np.ndarray) -> np.ndarray:
    """Pose reached by following twist xi = (vx, vy, omega) for unit time."""
    xi = np.asarray(xi, dtype=np.float64)
    th = xi[..., 2]
    a, b = _v_coeffs(th)
    x = a * xi[..., 0] - b * xi[..., 1]
    y = b * xi[..., 0] + a * xi[..., 1]
    return np.stack([x, y, wrap_angle(th)], axis=-1)


def segment_ids(t_ns: np.ndarray, max_gap_ns: int) -> np.ndarray:
    """Integer id per sample; it increases wherever consecutive samples are > max_gap_ns apart."""
    t = np.asarray(t_ns, dtype=np.int64)
    if t.size == 0:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([[0], np.cumsum(np.diff(t) > max_gap_ns)]).astype(np.int64)


def interpolate_poses(
    t_ns: np.ndarray,
    poses: np.ndarray,
    query_t_ns: np.ndarray,
    max_gap_ns: int | None = None,
) -> np.ndarray:
    """Poses at `query_t_ns` by SE(2) interpolation of a timestamped pose stream.

    Between two samples the robot is assumed to follow a constant-curvature arc,
    which is exact for a differential drive at constant wheel speeds. Queries
    outside [t_ns[0], t_ns[-1]] or inside a gap longer than `max_gap_ns` give NaN.
    `t_ns` must be strictly increasing.
    """
    t = np.asarray(t_ns, dtype=np.int64)
    p = np.asarray(poses, dtype=np.float64)
    q = np.asarray(query_t_ns, dtype=np.int64)
    out = np.full((*q.shape, 3), np.nan)
    if t.size == 0:
        return out
    if t.size == 1:
        out[q == t[0]] = p[0]
        return out
    i = np.searchsorted(t, q, side="right") - 1  # t[i] <= q < t[i+1]
    i = np.clip(i, 0, t.size - 2)
    t0, t1 = t[i], t[i + 1]
    ok = (q >= t[0]) & (q <= t[-1])
    if max_gap_ns is not None:
        ok &= (t1 - t0) <= max_gap_ns
    span = (t1 - t0).astype(np.float64)
    alpha = np.where(span > 0, (q - t0) / np.where(span > 0, span, 1.0), 0.0)
    p0, p1 = p[i], p[i + 1]
    xi = se2_log(relative(p0, p1)) * alpha[..., None]
    interp = compose(p0, se2_exp(xi))
    out[ok] = interp[ok]
    # a query exactly on a sample is that sample, even next to a gap
    j = np.clip(np.searchsorted(t, q), 0, t.size - 1)
    exact = t[j] == q
    out[exact] = p[j[exact]]
    return out
