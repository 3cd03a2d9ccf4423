"""The camera's delivery latency, estimated from a session's own frames and odometry.

A USB or Pi camera read through OpenCV hands over (and the recorder stamps) a frame
30-150 ms after its exposure, so a frame stamped t shows the robot as it was at
t - offset. This module measures that offset from any session in which the robot
turns: the image rotates with the robot, and the image rotation between two
consecutive frames must equal the odometry's heading change over the same interval
once the frame stamps are shifted by the right offset.

1. Frames are decoded small and grey (`cv2.IMREAD_REDUCED_GRAYSCALE_2`: 160 x 120
   for a 320 x 240 camera) and warped (`HeadingStrip`, one fixed `cv2.remap`) to a
   band of (heading, elevation) around and above the horizon, where a yaw of the
   robot is a pure horizontal shift of one column per `strip.rad_per_col` and the
   parallax of forward motion is small (far away).
2. The shift between consecutive strips (`cv2.phaseCorrelate`, Hanning window)
   is the image yaw step of that frame pair (rad).
3. For every candidate offset tau (default -100..+300 ms every 2 ms) the odometry
   heading step over [t_i - tau, t_i+1 - tau] is interpolated; the Pearson
   correlation of image and odometry steps is maximised, and the peak refined
   with a parabola through its neighbours.
4. Confidence: the offset's standard deviation over a block bootstrap (1-s blocks
   of frame pairs resampled with replacement). The yaw scale (image yaw /
   odometry yaw, least squares through the origin at the offset) is also the
   wheel-speed / axle factor a turn on the spot measures.

Only frame pairs around turns carry timing information, so only those are decoded
(within the search range of each turn), whole turns kept up to `max_pairs` pairs:
a 10-minute 30 fps session takes about 1.6 s on one core, most of it reading the
JPEG bytes from the session file. Convention: offset_s > 0 means the
frame stamps are late; a frame's exposure time is its stamp minus offset_s.

Pure numpy and OpenCV, no file I/O: frames come from a callable (index -> grey
image). `robot_ssl.labelling.session_labels.estimate_session_offset` reads a session.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from robot_ssl.core.config import check_field_types, check_number
from robot_ssl.core.spec import CameraSpec
from robot_ssl.labelling.labeller import LabellingError

__all__ = [
    "CalibrationError",
    "HeadingStrip",
    "OffsetEstimateError",
    "OffsetSearchConfig",
    "SpinMeasurement",
    "StraightRun",
    "TimeOffsetEstimate",
    "TurnCalibration",
    "correlate_offsets",
    "decode_gray",
    "estimate_time_offset",
    "image_yaw_steps",
    "measure_spins",
    "select_pairs",
    "straight_run",
]

_NS_PER_S = 1_000_000_000
_REDUCED_FLAGS = {
    1: cv2.IMREAD_GRAYSCALE,
    2: cv2.IMREAD_REDUCED_GRAYSCALE_2,
    4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
    8: cv2.IMREAD_REDUCED_GRAYSCALE_8,
}
_MIN_STRIP_ROWS = 4
_MIN_STRIP_COLS = 16
_MIN_PAIRS = 30
_MIN_TURN_EVENT_S = 0.2


class OffsetEstimateError(LabellingError):
    """The time-offset search is configured wrongly (not: an estimate that is unreliable)."""


class CalibrationError(LabellingError):
    """A calibration session cannot give what was asked (no turns, no straight run, ...)."""


@dataclass(frozen=True)
class OffsetSearchConfig:
    """How the camera offset is searched and when an estimate counts as reliable.

    min_offset_s, max_offset_s, step_s: candidate offsets (s); offset > 0 = stamps late.
    reduce: JPEG decoding reduction (1, 2, 4 or 8; 2 gives 160 x 120 from 320 x 240).
    min_elevation_rad, max_elevation_rad: the band of elevations (above the
        horizontal, rad) warped into the heading strip; clipped to what the image sees.
    turn_rate_rad_s: the robot turns when its odometry yaw rate exceeds this (rad/s).
    max_pairs: at most this many frame pairs are matched (evenly subsampled).
    min_turns, min_turn_s: reliable only with this many turns (runs of turning of at
        least 0.2 s) and this much turning time (s).
    min_correlation: reliable only when the peak correlation reaches this.
    max_std_s: reliable only when the bootstrap standard deviation is at most this (s).
    block_s, bootstrap, seed: block length (s), resamples and seed of the bootstrap.
    min_response: phase-correlation response below which a frame pair is not used.
    max_gap_s: odometry samples further apart than this split the trajectory.
    """

    min_offset_s: float = -0.1
    max_offset_s: float = 0.3
    step_s: float = 0.002
    reduce: int = 2
    min_elevation_rad: float = math.radians(-10.0)
    max_elevation_rad: float = math.radians(30.0)
    turn_rate_rad_s: float = 0.3
    max_pairs: int = 2000
    min_turns: int = 2
    min_turn_s: float = 1.0
    min_correlation: float = 0.7
    max_std_s: float = 0.01
    block_s: float = 1.0
    bootstrap: int = 200
    seed: int = 0
    min_response: float = 0.02
    max_gap_s: float = 0.5

    def __post_init__(self) -> None:
        check_field_types(self, "offset search", OffsetEstimateError)
        if not self.max_offset_s > self.min_offset_s:
            raise OffsetEstimateError("offset search: max_offset_s must exceed min_offset_s")
        if not 0 < self.step_s <= (self.max_offset_s - self.min_offset_s) / 4:
            raise OffsetEstimateError(
                "offset search: step_s must be > 0 and give at least 5 candidate offsets"
            )
        if self.reduce not in _REDUCED_FLAGS:
            raise OffsetEstimateError(
                f"offset search: reduce must be 1, 2, 4 or 8, got {self.reduce}"
            )
        if not self.max_elevation_rad > self.min_elevation_rad:
            raise OffsetEstimateError(
                "offset search: max_elevation_rad must exceed min_elevation_rad"
            )
        for name in ("turn_rate_rad_s", "min_turn_s", "max_std_s", "block_s", "max_gap_s"):
            check_number(getattr(self, name), f"offset search: {name}", OffsetEstimateError,
                          min=0, min_inclusive=False)  # fmt: skip
        for name in ("max_pairs", "min_turns", "bootstrap"):
            check_number(getattr(self, name), f"offset search: {name}", OffsetEstimateError,
                         integer=True, min=1)  # fmt: skip
        check_number(self.min_correlation, "offset search: min_correlation",
                     OffsetEstimateError, min=-1, max=1)  # fmt: skip

    def offsets_s(self) -> np.ndarray:
        """The candidate offsets (s), from min_offset_s to max_offset_s inclusive."""
        n = math.floor((self.max_offset_s - self.min_offset_s) / self.step_s + 1e-9) + 1
        return self.min_offset_s + self.step_s * np.arange(n)


@dataclass(frozen=True)
class TimeOffsetEstimate:
    """The camera-to-odometry time offset of a session, with how far to trust it.

    offset_s: exposure time = frame stamp - offset_s (s; NaN when nothing was measured).
    correlation: Pearson correlation of image and odometry yaw steps at the offset.
    std_s: block-bootstrap standard deviation of offset_s (s); NaN if not computed.
    yaw_scale: image yaw / odometry yaw at the offset (1 for a calibrated robot; the
        wheel speed / axle length factor).
    pairs_used: frame pairs in the fit (after outliers); frames_decoded: images decoded.
    turns, turn_s: runs of turning and the time spent turning in the session (s).
    reliable, reason: whether to trust offset_s, and why not ("" when reliable).
    offsets_s, correlations: the correlation curve over the candidate offsets.
    """

    offset_s: float
    correlation: float
    std_s: float
    yaw_scale: float
    pairs_used: int
    frames_decoded: int
    turns: int
    turn_s: float
    reliable: bool
    reason: str
    offsets_s: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    correlations: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (no curve); NaN becomes None."""

        def num(x: float) -> float | None:
            return float(x) if math.isfinite(x) else None

        return {
            "offset_s": num(self.offset_s),
            "correlation": num(self.correlation),
            "std_s": num(self.std_s),
            "yaw_scale": num(self.yaw_scale),
            "pairs_used": int(self.pairs_used),
            "frames_decoded": int(self.frames_decoded),
            "turns": int(self.turns),
            "turn_s": float(self.turn_s),
            "reliable": bool(self.reliable),
            "reason": self.reason,
        }

    def describe(self) -> str:
        """One line: "87.3 ms +- 1.2 ms (r 0.97, scale 1.012)" or "unreliable: REASON"."""
        if not math.isfinite(self.offset_s):
            return f"unreliable: {self.reason}"
        std = f" +- {1e3 * self.std_s:.1f} ms" if math.isfinite(self.std_s) else ""
        text = (
            f"{1e3 * self.offset_s:.1f} ms{std} (r {self.correlation:.2f},"
            f" yaw scale {self.yaw_scale:.3f}, {self.turns} turns)"
        )
        return text if self.reliable else f"{text}, unreliable: {self.reason}"


def _failed(reason: str, **counts: Any) -> TimeOffsetEstimate:
    base = dict(pairs_used=0, frames_decoded=0, turns=0, turn_s=0.0)
    base.update(counts)
    return TimeOffsetEstimate(
        offset_s=math.nan,
        correlation=math.nan,
        std_s=math.nan,
        yaw_scale=math.nan,
        reliable=False,
        reason=reason,
        **base,
    )


# -- images ----------------------------------------------------------------------------------


def decode_gray(jpeg: bytes | np.ndarray, reduce: int = 2) -> np.ndarray | None:
    """A JPEG decoded to grey at 1/`reduce` of its size (uint8), or None if undecodable."""
    buf = np.frombuffer(jpeg, np.uint8) if isinstance(jpeg, (bytes, bytearray)) else jpeg
    if buf.size == 0:
        return None
    return cv2.imdecode(buf, _REDUCED_FLAGS[reduce])


class HeadingStrip:
    """Warps a grey camera image to a (elevation x heading) strip where yaw is a shift.

    Column j of the strip looks along heading psi_j = psi_max - j * rad_per_col
    (left of the robot's axis positive, so the strip reads left to right like the
    image), row k along elevation e_k = e_max - k * rad_per_row, both in the robot's
    level frame. A yaw of the robot by +a (to the left) shifts the scene by
    +a / rad_per_col columns (to the right). Resolution matches the image centre's.
    """

    def __init__(
        self,
        camera: CameraSpec,
        image_shape: tuple[int, int],
        min_elevation_rad: float = math.radians(-10.0),
        max_elevation_rad: float = math.radians(30.0),
    ) -> None:
        """`image_shape` (rows, cols) of the images given (a reduced decode of the camera's)."""
        h, w = int(image_shape[0]), int(image_shape[1])
        self.image_shape = (h, w)
        fx, fy, cx, cy = camera.intrinsics()
        sx, sy = w / camera.width, h / camera.height
        # pixel-centre convention: u_small = (u + 0.5) * s - 0.5
        self._k = (fx * sx, fy * sy, (cx + 0.5) * sx - 0.5, (cy + 0.5) * sy - 0.5)
        self._pitch = camera.pitch_rad
        fxs, fys = self._k[0], self._k[1]
        self.rad_per_col = 1.0 / fxs
        self.rad_per_row = 1.0 / fys
        e_lo, e_hi, psi_max = self._extent(min_elevation_rad, max_elevation_rad)
        self.rows = max(math.floor((e_hi - e_lo) / self.rad_per_row) + 1, 0)
        self.cols = max(2 * math.floor(psi_max / self.rad_per_col) + 1, 0)
        self.usable = self.rows >= _MIN_STRIP_ROWS and self.cols >= _MIN_STRIP_COLS
        if not self.usable:
            self._map = None
            self._window = None
            return
        psi = (self.cols - 1) / 2 * self.rad_per_col - self.rad_per_col * np.arange(self.cols)
        elev = e_hi - self.rad_per_row * np.arange(self.rows)
        u, v = self._project(psi[None, :], elev[:, None])
        self._map = np.dstack([u, v]).astype(np.float32)
        self._window = cv2.createHanningWindow((self.cols, self.rows), cv2.CV_32F)

    def _project(self, psi: np.ndarray, elev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel (u, v) of the ray at heading psi and elevation elev (NaN behind the camera)."""
        fx, fy, cx, cy = self._k
        cp, sp = math.cos(self._pitch), math.sin(self._pitch)
        ce = np.cos(elev)
        dx, dy, dz = ce * np.cos(psi), ce * np.sin(psi), np.sin(elev) + 0 * psi
        z_c = dx * cp - dz * sp  # along the optical axis (cos p, 0, -sin p)
        x_c = -dy  # image right
        y_c = -dx * sp - dz * cp  # image down
        with np.errstate(divide="ignore", invalid="ignore"):
            u = np.where(z_c > 1e-6, cx + fx * x_c / z_c, np.nan)
            v = np.where(z_c > 1e-6, cy + fy * y_c / z_c, np.nan)
        return u, v

    def _inside(self, psi: np.ndarray, elev: np.ndarray) -> np.ndarray:
        h, w = self.image_shape
        u, v = self._project(psi, elev)
        with np.errstate(invalid="ignore"):
            return (u >= 0) & (u <= w - 1) & (v >= 0) & (v <= h - 1)

    def _extent(self, e_min: float, e_max: float) -> tuple[float, float, float]:
        """(e_lo, e_hi, psi_max): the rectangle |psi| <= psi_max, e_lo <= e <= e_hi of
        largest area within [e_min, e_max] that the image sees entirely (the whole
        visible band when the image sees too little of [e_min, e_max])."""
        elev = np.linspace(-math.pi / 2 + 0.01, math.pi / 2 - 0.01, 359)
        seen = self._inside(np.zeros(1), elev)
        if not seen.any():
            return 0.0, -1.0, 0.0
        lo, hi = max(e_min, float(elev[seen].min())), min(e_max, float(elev[seen].max()))
        if (hi - lo) / self.rad_per_row < 2 * _MIN_STRIP_ROWS:  # horizon (nearly) unseen
            lo, hi = float(elev[seen].min()), float(elev[seen].max())
        band = np.linspace(lo, hi, 48)
        psis = np.linspace(0.0, math.pi / 2, 181)
        ok = self._inside(psis[:, None], band[None, :]) & self._inside(-psis[:, None], band)
        # widest |psi| seen at each elevation (index of the first unseen psi, prefix-wise)
        reach = np.where(ok.all(axis=0), psis.size, np.argmin(ok, axis=0))
        # a band [a, b] reaches the minimum over its rows; maximise (b - a) * psi_max
        a, b = np.triu_indices(band.size, k=1)
        run_min = np.minimum.accumulate(
            np.where(np.arange(band.size)[None, :] >= np.arange(band.size)[:, None],
                     reach[None, :], psis.size + 1), axis=1,
        )  # fmt: skip
        width = run_min[a, b]
        area = (band[b] - band[a]) * psis[np.clip(width - 1, 0, None)] * (width > 0)
        best = int(np.argmax(area))
        if area[best] <= 0:
            return 0.0, -1.0, 0.0
        return float(band[a[best]]), float(band[b[best]]), float(psis[width[best] - 1])

    def __call__(self, gray: np.ndarray) -> np.ndarray:
        """The strip (rows x cols float32) of a grey image of `image_shape`."""
        if self._map is None:
            raise OffsetEstimateError("the heading strip is empty: the images are too small")
        if gray.shape[:2] != self.image_shape:
            gray = cv2.resize(gray, self.image_shape[::-1], interpolation=cv2.INTER_AREA)
        return cv2.remap(gray.astype(np.float32), self._map, None, cv2.INTER_LINEAR)

    def shift(self, a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
        """(yaw step in rad from strip a to strip b, phase-correlation response)."""
        (dx, _), response = cv2.phaseCorrelate(a, b, self._window)
        return dx * self.rad_per_col, response


def image_yaw_steps(
    strips_a: list[np.ndarray], strips_b: list[np.ndarray], strip: HeadingStrip
) -> tuple[np.ndarray, np.ndarray]:
    """Yaw step (rad, left positive) and response of each strip pair (a[i] -> b[i])."""
    out = np.full((len(strips_a), 2), np.nan)
    for i, (a, b) in enumerate(zip(strips_a, strips_b)):
        if a is None or b is None or float(a.std()) < 1e-3 or float(b.std()) < 1e-3:
            continue  # textureless (or missing): phase correlation is meaningless
        out[i] = strip.shift(a, b)
    return out[:, 0], out[:, 1]


# -- odometry --------------------------------------------------------------------------------


def _unwrapped_heading(odom_pose: np.ndarray) -> np.ndarray:
    return np.unwrap(np.asarray(odom_pose, np.float64)[:, 2])


def _turning_runs(
    odom_t_ns: np.ndarray, heading: np.ndarray, cfg: OffsetSearchConfig
) -> tuple[np.ndarray, np.ndarray]:
    """(start_ns, end_ns) of each run of odometry intervals turning faster than the threshold."""
    dt = np.diff(odom_t_ns) / _NS_PER_S
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(dt > 0, np.diff(heading) / dt, 0.0)
    turning = (np.abs(rate) > cfg.turn_rate_rad_s) & (dt <= cfg.max_gap_s)
    edges = np.diff(np.concatenate([[0], turning.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return odom_t_ns[starts], odom_t_ns[ends]


def select_pairs(
    frame_t_ns: np.ndarray,
    odom_t_ns: np.ndarray,
    odom_pose: np.ndarray,
    config: OffsetSearchConfig | None = None,
) -> tuple[np.ndarray, int, float]:
    """Frame pairs (i, i+1) worth matching: those near a turn, evenly thinned to max_pairs.

    Returns (first indices i, number of turns, seconds spent turning). A pair is
    near a turn when its midpoint lies within (search range + 0.2 s) of a run of
    turning, so every candidate offset sees the turn's start and end.
    """
    cfg = config or OffsetSearchConfig()
    frame_t = np.asarray(frame_t_ns, np.int64)
    odom_t = np.asarray(odom_t_ns, np.int64)
    if frame_t.size < 2 or odom_t.size < 2:
        return np.zeros(0, np.int64), 0, 0.0
    heading = _unwrapped_heading(odom_pose)
    starts, ends = _turning_runs(odom_t, heading, cfg)
    long_enough = (ends - starts) >= _MIN_TURN_EVENT_S * _NS_PER_S
    turns = int(long_enough.sum())
    turn_s = float((ends - starts).sum() / _NS_PER_S)
    if starts.size == 0:
        return np.zeros(0, np.int64), turns, turn_s
    margin = round((max(abs(cfg.min_offset_s), abs(cfg.max_offset_s)) + 0.2) * _NS_PER_S)
    mid = frame_t[:-1] // 2 + frame_t[1:] // 2
    # a midpoint is inside a dilated run when the last run starting before it ends after it
    k = np.searchsorted(starts - margin, mid, side="right") - 1
    near = (k >= 0) & (mid <= ends[np.clip(k, 0, None)] + margin)
    near &= np.diff(frame_t) > 0
    pairs = np.flatnonzero(near)
    if pairs.size > cfg.max_pairs:  # keep whole turns (both edges, frames shared by pairs)
        group = np.concatenate([[0], np.cumsum(np.diff(pairs) > 1)])
        sizes = np.bincount(group)
        n_keep = max(1, int(sizes.size * cfg.max_pairs / pairs.size))
        chosen = np.unique(np.linspace(0, sizes.size - 1, n_keep).round().astype(np.int64))
        pairs = pairs[np.isin(group, chosen)]
    return pairs.astype(np.int64), turns, turn_s


# -- the search ------------------------------------------------------------------------------


def _pearson(sx: Any, sy: Any, sxx: Any, syy: Any, sxy: Any, n: Any) -> np.ndarray:
    """Pearson correlation from the sums of x, y, x^2, y^2, xy and the count (broadcast)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        cov = sxy - sx * sy / n
        vx = sxx - sx * sx / n
        vy = syy - sy * sy / n
        return cov / np.sqrt(vx * vy)


def _peak(offsets: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(refined offset, refined peak value, index of the grid maximum) of each curve in r
    (..., T) over the grid `offsets` (T,): a parabola through the maximum and its two
    neighbours (none at the grid's edges)."""
    r = np.where(np.isfinite(r), r, -np.inf)
    k = np.argmax(r, axis=-1)
    kk = np.clip(k, 1, r.shape[-1] - 2)
    take = lambda j: np.take_along_axis(r, j[..., None], axis=-1)[..., 0]  # noqa: E731
    a, b, c = take(kk - 1), take(kk), take(kk + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        den = a - 2 * b + c
        delta = np.where((den < 0) & np.isfinite(den), 0.5 * (a - c) / den, 0.0)
    delta = np.clip(delta, -1.0, 1.0)
    delta = np.where(k == kk, delta, 0.0)  # no refinement at the edges
    step = offsets[1] - offsets[0]
    off = offsets[kk] + delta * step
    off = np.where(k == kk, off, offsets[k])
    val = np.where(k == kk, b - 0.25 * (a - c) * delta, take(k))
    return off, val, k


def correlate_offsets(
    t0_ns: np.ndarray,
    t1_ns: np.ndarray,
    image_yaw: np.ndarray,
    odom_t_ns: np.ndarray,
    odom_pose: np.ndarray,
    config: OffsetSearchConfig | None = None,
    *,
    turns: int = 0,
    turn_s: float = 0.0,
    frames_decoded: int = 0,
) -> TimeOffsetEstimate:
    """The offset that best aligns image yaw steps with odometry heading steps.

    Pair p is a frame stamped t0_ns[p] followed by one stamped t1_ns[p] whose image
    turned by image_yaw[p] (rad, left positive; NaN: not measured). Candidate offsets
    tau shift the odometry times: the odometry step is heading(t1 - tau) -
    heading(t0 - tau). Returns the estimate; `turns`, `turn_s` and `frames_decoded`
    (from `select_pairs` and the decoding) are passed through and enter the
    reliability test.
    """
    cfg = config or OffsetSearchConfig()
    counts = dict(turns=turns, turn_s=turn_s, frames_decoded=frames_decoded)
    t0 = np.asarray(t0_ns, np.int64)
    t1 = np.asarray(t1_ns, np.int64)
    y = np.asarray(image_yaw, np.float64)
    odom_t = np.asarray(odom_t_ns, np.int64)
    if odom_t.size < 2:
        return _failed("no odometry", **counts)
    heading = _unwrapped_heading(odom_pose)
    offsets = cfg.offsets_s()
    tau_ns = np.round(offsets * _NS_PER_S).astype(np.int64)

    # pairs whose whole search span lies inside one odometry segment
    gap = np.diff(odom_t) > cfg.max_gap_s * _NS_PER_S
    seg = np.concatenate([[0], np.cumsum(gap)])
    lo_t, hi_t = t0 - tau_ns[-1], t1 - tau_ns[0]
    i_lo = np.searchsorted(odom_t, lo_t, side="right") - 1
    i_hi = np.searchsorted(odom_t, hi_t, side="left")
    inside = (i_lo >= 0) & (i_hi < odom_t.size)
    same = inside & (
        seg[np.clip(i_lo, 0, odom_t.size - 1)] == seg[np.clip(i_hi, 0, odom_t.size - 1)]
    )
    valid = same & np.isfinite(y)
    if int(valid.sum()) < _MIN_PAIRS:
        why = "no turns" if turns == 0 else "too few frame pairs with an image match"
        return _failed(f"{why} ({int(valid.sum())} usable frame pairs)", **counts)
    t0, t1, y = t0[valid], t1[valid], y[valid]

    # odometry heading steps (T, P) for every candidate offset
    rel = (odom_t - odom_t[0]).astype(np.float64)
    base = float(odom_t[0])
    q0 = (t0[None, :] - tau_ns[:, None]) - base
    q1 = (t1[None, :] - tau_ns[:, None]) - base
    x = np.interp(q1.ravel(), rel, heading).reshape(q1.shape)
    x -= np.interp(q0.ravel(), rel, heading).reshape(q0.shape)

    keep = np.ones(y.size, bool)
    for _ in range(2):  # fit, drop gross mismatches (> 5 robust sigma), fit again
        r = _pearson(x[:, keep].sum(1), y[keep].sum(), (x[:, keep] ** 2).sum(1),
                     (y[keep] ** 2).sum(), (x[:, keep] * y[keep]).sum(1), keep.sum())  # fmt: skip
        _, _, k = _peak(offsets, r)
        xb = x[int(k)]
        scale = float((xb[keep] * y[keep]).sum() / max((xb[keep] ** 2).sum(), 1e-300))
        res = y - scale * xb
        mad = float(np.median(np.abs(res[keep] - np.median(res[keep]))))
        floor = 1e-4 + 0.02 * float(np.median(np.abs(y[keep])))
        keep = np.abs(res - np.median(res[keep])) <= max(5 * 1.4826 * mad, floor)
        if keep.sum() < _MIN_PAIRS:
            keep = np.ones(y.size, bool)
            break
    xk, yk = x[:, keep], y[keep]
    sx, sxx, sxy = xk.sum(1), (xk**2).sum(1), (xk * yk).sum(1)
    r = _pearson(sx, yk.sum(), sxx, (yk**2).sum(), sxy, yk.size)
    off, val, k = _peak(offsets, r)
    off, val, k = float(off), float(val), int(k)
    # the scale at the refined offset: interpolate the sums between grid neighbours
    j = int(np.clip(np.searchsorted(offsets, off) - 1, 0, offsets.size - 2))
    w = float(np.clip((off - offsets[j]) / (offsets[j + 1] - offsets[j]), 0, 1))
    sxy_o = (1 - w) * sxy[j] + w * sxy[j + 1]
    sxx_o = (1 - w) * sxx[j] + w * sxx[j + 1]
    scale = float(sxy_o / sxx_o) if sxx_o > 0 else math.nan

    std = _bootstrap_std(offsets, xk, yk, t0[keep], k, scale, cfg)
    reason = ""
    if turns == 0:
        reason = f"no turns: the odometry never turns faster than {cfg.turn_rate_rad_s:g} rad/s"
    elif turns < cfg.min_turns:
        reason = f"too few turns: {turns} (need {cfg.min_turns})"
    elif turn_s < cfg.min_turn_s:
        reason = f"too little turning: {turn_s:.1f} s (need {cfg.min_turn_s:g} s)"
    elif not val >= cfg.min_correlation:
        reason = f"low correlation {val:.2f} (need {cfg.min_correlation:g})"
    elif k in (0, offsets.size - 1):
        reason = (
            f"best offset at the edge of the search range"
            f" ({1e3 * cfg.min_offset_s:g}..{1e3 * cfg.max_offset_s:g} ms)"
        )
    elif not std <= cfg.max_std_s:
        reason = f"uncertain: spread {1e3 * std:.1f} ms (need <= {1e3 * cfg.max_std_s:g} ms)"
    elif not 0.5 <= scale <= 2.0:
        reason = f"image and odometry yaw disagree (scale {scale:.2f})"
    return TimeOffsetEstimate(
        offset_s=off,
        correlation=val,
        std_s=std,
        yaw_scale=scale,
        pairs_used=int(yk.size),
        frames_decoded=frames_decoded,
        turns=turns,
        turn_s=turn_s,
        reliable=not reason,
        reason=reason,
        offsets_s=offsets,
        correlations=r,
    )


def _bootstrap_std(
    offsets: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    t0: np.ndarray,
    k: int,
    scale: float,
    cfg: OffsetSearchConfig,
) -> float:
    """Standard deviation (s) of the peak offset over a block bootstrap of the residuals.

    The fitted signal (scale * odometry steps at the grid offset k) is kept and the
    residuals are redrawn in blocks of `block_s` (which keeps their correlation in time):
    the spread the image noise and mismatches alone would give the estimate.
    """
    n = y.size
    pair_s = float(np.median(np.diff(t0))) / _NS_PER_S if n > 1 else 1.0
    length = int(np.clip(round(cfg.block_s / max(pair_s, 1e-6)), 1, n))
    fit = scale * x[k] if math.isfinite(scale) else np.zeros(n)
    res = y - fit
    rng = np.random.default_rng(cfg.seed)
    n_blocks = -(-n // length)
    starts = rng.integers(0, n - length + 1, size=(cfg.bootstrap, n_blocks))
    idx = (starts[:, :, None] + np.arange(length)).reshape(cfg.bootstrap, -1)[:, :n]
    y_star = fit + res[idx]  # (R, P)
    sx, sxx = x.sum(1), (x * x).sum(1)  # (T,)
    sy, syy = y_star.sum(1, keepdims=True), (y_star**2).sum(1, keepdims=True)  # (R, 1)
    sxy = y_star @ x.T  # (R, T)
    r = _pearson(sx[None, :], sy, sxx[None, :], syy, sxy, n)
    off, _, _ = _peak(offsets, r)
    return float(np.std(off, ddof=1))


class _Strips:
    """Heading strips of frames by index, decoded on demand (the strip is built from the
    first image's size); remembers the last few, as pairs come in order."""

    def __init__(
        self,
        load_gray: Callable[[int], np.ndarray | None],
        camera: CameraSpec,
        cfg: OffsetSearchConfig,
        keep: int = 4,
    ) -> None:
        self._load, self._camera, self._cfg, self._keep = load_gray, camera, cfg, keep
        self.strip: HeadingStrip | None = None
        self.decoded = 0
        self._cache: dict[int, np.ndarray | None] = {}

    @property
    def too_small(self) -> bool:
        return self.strip is not None and not self.strip.usable

    def get(self, i: int) -> np.ndarray | None:
        if i in self._cache:
            return self._cache[i]
        gray = self._load(i)
        self.decoded += 1
        out = None
        if gray is not None and gray.ndim == 2:
            if self.strip is None:
                c = self._cfg
                self.strip = HeadingStrip(
                    self._camera, gray.shape, c.min_elevation_rad, c.max_elevation_rad
                )
            out = self.strip(gray) if self.strip.usable else None
        self._cache[i] = out
        if len(self._cache) > self._keep:
            self._cache.pop(next(iter(self._cache)))
        return out


def estimate_time_offset(
    frame_t_ns: np.ndarray,
    load_gray: Callable[[int], np.ndarray | None],
    odom_t_ns: np.ndarray,
    odom_pose: np.ndarray,
    camera: CameraSpec,
    config: OffsetSearchConfig | None = None,
) -> TimeOffsetEstimate:
    """Estimate a session's camera offset (see the module docstring).

    frame_t_ns (N,) camera stamps; `load_gray(i)` the grey image of frame i (any size
    with the camera's aspect; a reduced decode, see `decode_gray`), or None when it
    cannot be read; odom_t_ns (K,) sorted, odom_pose (K, 3) (x_m, y_m, theta_rad);
    `camera` gives the intrinsics and mount. Never raises for a session it cannot
    measure: the estimate is then unreliable, with the reason.
    """
    cfg = config or OffsetSearchConfig()
    frame_t = np.asarray(frame_t_ns, np.int64)
    odom_t = np.asarray(odom_t_ns, np.int64)
    pose = np.asarray(odom_pose, np.float64).reshape(-1, 3)
    if odom_t.size >= 2:
        keep = np.concatenate([[True], np.diff(odom_t) > 0])
        odom_t, pose = odom_t[keep], pose[keep]
    if frame_t.size < 2:
        return _failed("fewer than 2 camera frames")
    if odom_t.size < 2:
        return _failed("no odometry")
    pairs, turns, turn_s = select_pairs(frame_t, odom_t, pose, cfg)
    counts = dict(turns=turns, turn_s=turn_s)
    if turns == 0:
        return _failed(
            f"no turns: the odometry never turns faster than {cfg.turn_rate_rad_s:g} rad/s",
            **counts,
        )
    strips = _Strips(load_gray, camera, cfg)
    yaw = np.full(pairs.size, np.nan)
    for p, i in enumerate(pairs):
        a, b = strips.get(int(i)), strips.get(int(i) + 1)
        if strips.too_small:
            return _failed("the images are too small for the heading strip", **counts)
        if a is None or b is None:
            continue
        step, response = image_yaw_steps([a], [b], strips.strip)  # type: ignore[arg-type]
        if response[0] >= cfg.min_response:
            yaw[p] = step[0]
    return correlate_offsets(
        frame_t[pairs],
        frame_t[pairs + 1],
        yaw,
        odom_t,
        pose,
        cfg,
        turns=turns,
        turn_s=turn_s,
        frames_decoded=strips.decoded,
    )


# -- calibration: turns on the spot and straight runs ----------------------------------------


@dataclass(frozen=True)
class SpinMeasurement:
    """One turn on the spot between two stops, measured by odometry and by the image.

    start_s, end_s: the still moments around it (s since the odometry's start).
    odometry_yaw_rad, image_yaw_rad: its rotation (rad, left positive) by each.
    method: "closed" when the views before and after it were matched directly (the
        rotation is then exact: whole turns counted from the image steps plus the
        residual angle between the two still views), "summed" when the image rotation
        is the sum of the frame-to-frame steps (biased by parallax near walls).
    pairs, missing: frame pairs in the spin, and those without an image match (filled
        in from the odometry).
    """

    start_s: float
    end_s: float
    odometry_yaw_rad: float
    image_yaw_rad: float
    method: str
    pairs: int
    missing: int

    @property
    def factor(self) -> float:
        """image / odometry rotation of this spin."""
        return self.image_yaw_rad / self.odometry_yaw_rad


@dataclass(frozen=True)
class TurnCalibration:
    """Turns on the spot of a calibration session and the yaw factor they measure.

    factor: total |image rotation| / total |odometry rotation| (the odometry's yaw is
        `factor` times too small: speed_m_per_unit / axle_length_m is that much too
        small); NaN without spins. spread: standard deviation of the spins' factors
        (NaN with one spin). reliable, reason: as for the offset estimate.
    """

    spins: tuple[SpinMeasurement, ...]
    factor: float
    spread: float
    reliable: bool
    reason: str


def _still_windows(
    odom_t: np.ndarray, pose: np.ndarray, heading: np.ndarray, min_s: float
) -> list[tuple[int, int]]:
    """(first, last) odometry sample index of each run of standing still lasting min_s."""
    dt = np.diff(odom_t) / _NS_PER_S
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.abs(np.diff(heading)) / dt
        speed = np.hypot(*np.diff(pose[:, :2], axis=0).T) / dt
    still = (dt > 0) & (rate < 0.05) & (speed < 0.005)
    edges = np.diff(np.concatenate([[0], still.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    keep = (odom_t[ends] - odom_t[starts]) >= min_s * _NS_PER_S
    return [(int(a), int(b)) for a, b in zip(starts[keep], ends[keep])]


def measure_spins(
    frame_t_ns: np.ndarray,
    load_gray: Callable[[int], np.ndarray | None],
    odom_t_ns: np.ndarray,
    odom_pose: np.ndarray,
    camera: CameraSpec,
    config: OffsetSearchConfig | None = None,
    *,
    offset_s: float = 0.0,
    still_s: float = 0.3,
    min_spin_rad: float = 1.0,
    max_translation_m: float = 0.03,
) -> TurnCalibration:
    """Measure each turn on the spot (between two stops of at least `still_s`, turning by
    more than `min_spin_rad`, the axle moving less than `max_translation_m`) by odometry
    and by image rotation, and the factor between them.

    Frames are placed at their exposure times (stamp - `offset_s`). Every frame of a
    spin is matched with the next; a spin of about whole turns (the views before and
    after overlap) is then measured exactly from the two still views, which makes it
    free of parallax: spin two or three full turns in the calibration.
    """
    cfg = config or OffsetSearchConfig()
    frame_t = np.asarray(frame_t_ns, np.int64) - round(offset_s * _NS_PER_S)
    odom_t = np.asarray(odom_t_ns, np.int64)
    pose = np.asarray(odom_pose, np.float64).reshape(-1, 3)
    if odom_t.size < 2 or frame_t.size < 2:
        return TurnCalibration((), math.nan, math.nan, False, "no odometry or no frames")
    heading = _unwrapped_heading(pose)
    windows = _still_windows(odom_t, pose, heading, still_s)
    margin_ns = 50_000_000
    spins: list[SpinMeasurement] = []
    rel = (odom_t - odom_t[0]).astype(np.float64)
    cache = _Strips(load_gray, camera, cfg, keep=1)

    for (a0, a1), (b0, b1) in itertools.pairwise(windows):
        yaw_odo = float(heading[b0] - heading[a1])
        path = pose[a1 : b0 + 1, :2] - pose[a1, :2]
        if abs(yaw_odo) < min_spin_rad or np.hypot(*path.T).max() > max_translation_m:
            continue
        # last frame still before the spin, first frame still after it
        i0 = int(np.searchsorted(frame_t, odom_t[a1] - margin_ns, side="right")) - 1
        i1 = int(np.searchsorted(frame_t, odom_t[b0] + margin_ns, side="left"))
        if i0 < 0 or i1 >= frame_t.size or frame_t[i0] < odom_t[a0] or frame_t[i1] > odom_t[b1]:
            continue
        strips = [cache.get(i) for i in range(i0, i1 + 1)]
        strip = cache.strip
        if strip is None or cache.too_small:
            return TurnCalibration((), math.nan, math.nan, False, "the images are too small")
        steps, response = image_yaw_steps(strips[:-1], strips[1:], strip)
        ok = np.isfinite(steps) & (response >= cfg.min_response)
        t0, t1 = frame_t[i0:i1] - odom_t[0], frame_t[i0 + 1 : i1 + 1] - odom_t[0]
        odo_steps = np.interp(t1, rel, heading) - np.interp(t0, rel, heading)
        if ok.sum() < 0.5 * ok.size:
            continue
        moving = ok & (np.abs(odo_steps) > 1e-3)
        ratio = float(np.median(steps[moving] / odo_steps[moving])) if moving.any() else 1.0
        summed = float(np.where(ok, steps, ratio * odo_steps).sum())
        yaw_img, method = summed, "summed"
        if strips[0] is not None and strips[-1] is not None:
            residual, resp = strip.shift(strips[0], strips[-1])
            whole = round((summed - residual) / (2 * math.pi))
            closed = residual + 2 * math.pi * whole
            if resp >= 0.1 and abs(closed - summed) < max(0.15, 0.05 * abs(summed)):
                yaw_img, method = closed, "closed"
        if yaw_img * yaw_odo <= 0:
            continue
        spins.append(
            SpinMeasurement(
                start_s=float((odom_t[a1] - odom_t[0]) / _NS_PER_S),
                end_s=float((odom_t[b0] - odom_t[0]) / _NS_PER_S),
                odometry_yaw_rad=yaw_odo,
                image_yaw_rad=yaw_img,
                method=method,
                pairs=int(ok.size),
                missing=int((~ok).sum()),
            )
        )
    if not spins:
        return TurnCalibration(
            (), math.nan, math.nan, False,
            f"no turn on the spot: the robot never turned by more than {min_spin_rad:g} rad"
            f" between two stops of {still_s:g} s without driving",
        )  # fmt: skip
    img = sum(abs(s.image_yaw_rad) for s in spins)
    odo = sum(abs(s.odometry_yaw_rad) for s in spins)
    factors = np.array([s.factor for s in spins])
    spread = float(np.std(factors, ddof=1)) if factors.size > 1 else math.nan
    reason = ""
    if not 0.5 <= img / odo <= 2.0:
        reason = f"image and odometry rotation disagree (factor {img / odo:.2f})"
    return TurnCalibration(tuple(spins), img / odo, spread, not reason, reason)


@dataclass(frozen=True)
class StraightRun:
    """A straight run by odometry: chord from the first to the last still pose.

    distance_m: odometry distance between the start and end poses (m); heading_change_rad:
    the heading change over the run (rad; a straight run keeps it near 0); duration_s;
    path_m: the length of the odometry path (m; equals distance_m on a straight line);
    max_heading_deviation_rad: the largest |heading - start heading| on the way (rad; a
    wander or a spin shows here even when it ends facing the way it started).
    """

    distance_m: float
    heading_change_rad: float
    duration_s: float
    path_m: float = 0.0
    max_heading_deviation_rad: float = 0.0


def straight_run(odom_t_ns: np.ndarray, odom_pose: np.ndarray) -> StraightRun:
    """The odometry chord of a session in which the robot drives one straight line (start
    and end standing still: the first and last poses of the session are used)."""
    odom_t = np.asarray(odom_t_ns, np.int64)
    pose = np.asarray(odom_pose, np.float64).reshape(-1, 3)
    if odom_t.size < 2:
        return StraightRun(0.0, 0.0, 0.0)
    heading = _unwrapped_heading(pose)
    return StraightRun(
        distance_m=float(np.hypot(*(pose[-1, :2] - pose[0, :2]))),
        heading_change_rad=float(heading[-1] - heading[0]),
        duration_s=float((odom_t[-1] - odom_t[0]) / _NS_PER_S),
        path_m=float(np.hypot(*np.diff(pose[:, :2], axis=0).T).sum()),
        max_heading_deviation_rad=float(np.abs(heading - heading[0]).max()),
    )
