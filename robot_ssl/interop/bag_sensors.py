"""Other robots' short-range sensors as the session's proximity columns (pure numpy).

A bag's sensor topics arrive as separate streams at their own rates: sensor_msgs/Range
(one distance per message), sensor_msgs/LaserScan (a fan of beams, cut here into the
spec's range sensors by angle sector) and bumpers (a Bool-like 0/1). `import_bag`
turns each into a `SensorSource` (stamps and int16 columns in the session's units: range
in mm, contact 0/1) and `merge_sources` puts them onto the one proximity stream.

Range readings follow REP 117: +inf is "no return within range" (32767), -inf "too
close to measure" (0 mm: an obstacle at the sensor), NaN and finite values outside
[range_min, range_max] are invalid (-1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "INVALID",
    "NO_RETURN",
    "SensorSource",
    "merge_sources",
    "range_mm",
    "scan_sectors",
    "sector_masks",
    "twist_to_wheel_units",
]

NO_RETURN = 32767
"""A range reading with nothing within the sensor's range (int16 max)."""
INVALID = -1
"""A reading that says nothing (invalid, stale, or before the sensor's first message)."""


@dataclass(frozen=True)
class SensorSource:
    """One bag topic's readings: `t_ns` int64 (N,) sorted, `values` int16 (N, K) for the
    proximity columns `columns` (K indices into the spec's sensors)."""

    topic: str
    t_ns: np.ndarray
    values: np.ndarray
    columns: tuple[int, ...]

    def median_period_ns(self) -> float:
        """The median gap between messages (inf with fewer than two)."""
        return float(np.median(np.diff(self.t_ns))) if len(self.t_ns) > 1 else float("inf")


def range_mm(r_m: np.ndarray, range_min_m: np.ndarray, range_max_m: np.ndarray) -> np.ndarray:
    """Distances (m, any shape; bounds broadcast) as int16 mm per REP 117: +inf
    NO_RETURN, -inf 0, NaN or finite outside [range_min, range_max] INVALID."""
    r = np.asarray(r_m, np.float64)
    lo, hi = np.asarray(range_min_m, np.float64), np.asarray(range_max_m, np.float64)
    finite = np.isfinite(r)
    valid = finite & (r >= lo) & (r <= hi)
    mm = np.rint(np.where(valid, r, 0.0) * 1000.0).clip(0, NO_RETURN - 1)
    out = np.where(valid, mm, INVALID)
    out = np.where(np.isposinf(r), NO_RETURN, out)
    out = np.where(np.isneginf(r), 0, out)
    return out.astype(np.int16)


def sector_masks(
    beam_angles_rad: np.ndarray, centres_rad: np.ndarray, fovs_rad: np.ndarray
) -> np.ndarray:
    """bool (S, B): beam b lies within sensor s's sector [theta - fov/2, theta + fov/2]
    (angles in the robot frame, compared modulo 2 pi). A sensor of zero field of view
    takes the one beam nearest its axis."""
    a = np.asarray(beam_angles_rad, np.float64)[None, :]
    c = np.asarray(centres_rad, np.float64)[:, None]
    d = np.abs((a - c + np.pi) % (2 * np.pi) - np.pi)  # angular distance, [0, pi]
    half = np.asarray(fovs_rad, np.float64)[:, None] / 2
    mask = d <= half + 1e-9
    nearest = d == d.min(axis=1, keepdims=True)
    return np.where(half > 0, mask, nearest & (np.cumsum(nearest, axis=1) == 1))


def scan_sectors(readings_mm: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """int16 (N, S) from beam readings int16 (N, B) (`range_mm` of each beam) and
    `sector_masks` (S, B): per sector the nearest valid return; with none, NO_RETURN if
    any beam saw nothing in range, else INVALID (no beam, or only invalid ones)."""
    r = np.asarray(readings_mm, np.int32)[:, None, :]  # (N, 1, B)
    m = masks[None, :, :]
    valid = m & (r >= 0) & (r < NO_RETURN)
    nearest = np.where(valid, r, NO_RETURN).min(axis=2)
    any_valid = valid.any(axis=2)
    any_clear = (m & (r == NO_RETURN)).any(axis=2)
    out = np.where(any_valid, nearest, np.where(any_clear, NO_RETURN, INVALID))
    return out.astype(np.int16)


def merge_sources(
    sources: list[SensorSource], num_sensors: int, stale_periods: float
) -> tuple[np.ndarray, np.ndarray]:
    """One proximity stream from sources at different rates: rows at the stamps of the
    fastest source (the shortest median period), each column its source's latest
    reading at or before the row while fresh (no older than `stale_periods` of that
    source's median period), INVALID when stale, before its first message, or a
    column no source fills. Returns t_ns int64 (M,), values int16 (M, num_sensors)."""
    if not sources:
        return np.zeros(0, np.int64), np.zeros((0, num_sensors), np.int16)
    fastest = min(sources, key=lambda s: (s.median_period_ns(), -len(s.t_ns)))
    t = fastest.t_ns
    out = np.full((len(t), num_sensors), INVALID, np.int16)
    for s in sources:
        i = np.searchsorted(s.t_ns, t, side="right") - 1
        ok = i >= 0
        period = s.median_period_ns()
        if np.isfinite(period):
            ok &= (t - s.t_ns[np.maximum(i, 0)]) <= stale_periods * period
        vals = np.where(ok[:, None], s.values[np.maximum(i, 0)], INVALID)
        out[:, list(s.columns)] = vals
    return t, out


def twist_to_wheel_units(
    v_m_s: np.ndarray, w_rad_s: np.ndarray, axle_m: float, speed_m_per_unit: float
) -> np.ndarray:
    """Wheel speeds int16 (N, 2) (left, right; the robot's raw units) of a differential
    drive moving at linear v and angular w."""
    v, w = np.asarray(v_m_s, np.float64), np.asarray(w_rad_s, np.float64)
    lr = np.stack([v - w * axle_m / 2, v + w * axle_m / 2], axis=-1) / speed_m_per_unit
    return np.rint(lr).clip(-32768, 32767).astype(np.int16)
