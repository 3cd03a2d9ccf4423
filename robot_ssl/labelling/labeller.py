"""The auto-labeller: which (sensor, distance) cells of each camera frame show an obstacle.

For a camera frame taken at time t and a distance bin d, the labeller looks for a
later moment t' (t <= t' <= t + horizon, same odometry segment) at which the
robot stood d straight ahead of its pose at t: with the pose at t' expressed in
the frame of the pose at t as (dx, dy, dtheta), it needs |dx - d| < tol_d,
|dy| < tol_y and |wrap(dtheta)| < tol_theta. Among those moments it keeps the
one closest to the bin centre (smallest |dx - d|, then the earliest); the label
of sensor s is whether that moment's raw reading of s exceeds a threshold, and
is unknown (-1) where no moment matched.

Candidate moments are the proximity samples themselves (10 Hz on a Thymio),
with poses interpolated from the odometry at their exact times, and every
camera frame is labelled (30 fps), not only the frames next to a proximity
sample as in the original method: that is where the extra labels come from.

Backward motion: a sample only counts when the robot reached it driving
forward, i.e. it was never further ahead of the pose at t before (more than
`max_backtrack_m`) than it is at the sample: dx(t') >= max(0, max dx(t''),
t <= t'' < t') - max_backtrack_m, the maximum taken over the proximity samples
in between. A robot that drives forward and then reverses therefore labels its
frames from the forward pass only, and a robot that only reverses gives no
labels beyond the tolerance of d = 0.

Everything here is pure numpy on arrays (no file I/O): `compute_labels` takes
the three streams and a `LabelConfig`; `robot_ssl.io.labels_file` reads and
writes labels files. The hot path loops only over chunks of frames and over the
(at most a few) distance bins a pose can fall into.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from robot_ssl.core.geometry import interpolate_poses, relative, segment_ids
from robot_ssl.core.label_grid import (
    UNKNOWN,
    LabelConfig,
    LabelConfigError,
    LabelGrid,
    LabellingError,
    LabelStats,
    distance_grid,
    label_stats,
)

__all__ = [
    "LabelConfig",
    "LabelConfigError",
    "LabelGrid",
    "LabelInputError",
    "LabelStats",
    "LabellingError",
    "NothingToLabelError",
    "TruthAgreement",
    "compare_with_truth",
    "compute_labels",
    "distance_grid",
    "label_stats",
    "truth_labels",
]

_NS_PER_S = 1_000_000_000
# Widening of the coarse distance filters before the exact tolerance test (m).
_BIN_SEARCH_EPS_M = 1e-9


class LabelInputError(LabellingError):
    """The streams given to the labeller have wrong shapes or unsorted timestamps."""


class NothingToLabelError(LabellingError):
    """The session has nothing to label: no frames, no proximity, no odometry, or too short."""


def _as_1d_int64(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 1:
        raise LabelInputError(f"{name} must be 1-D, got shape {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise LabelInputError(f"{name} must hold integer nanoseconds, got {a.dtype}")
    return a.astype(np.int64, copy=False)


def _check_inputs(
    camera_t_ns: np.ndarray,
    prox_t_ns: np.ndarray,
    prox_values: np.ndarray,
    odom_t_ns: np.ndarray,
    odom_pose: np.ndarray,
    config: LabelConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validate shapes, order and content; raise NothingToLabelError with a one-line reason."""
    cam_t = _as_1d_int64(camera_t_ns, "camera t_ns")
    prox_t = _as_1d_int64(prox_t_ns, "proximity t_ns")
    odom_t = _as_1d_int64(odom_t_ns, "odometry t_ns")
    values = np.asarray(prox_values)
    pose = np.asarray(odom_pose, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] != prox_t.shape[0]:
        raise LabelInputError(
            f"proximity values must be (M, sensors) with M={prox_t.shape[0]}, got {values.shape}"
        )
    if pose.ndim != 2 or pose.shape != (odom_t.shape[0], 3):
        raise LabelInputError(f"odometry poses must be ({odom_t.shape[0]}, 3), got {pose.shape}")
    if cam_t.size == 0:
        raise NothingToLabelError("empty session: no camera frames")
    if prox_t.size == 0:
        raise NothingToLabelError("no proximity readings")
    if odom_t.size == 0:
        raise NothingToLabelError("no odometry")
    if np.any(np.diff(prox_t) < 0):
        raise LabelInputError("proximity timestamps are not sorted")
    if np.any(np.diff(odom_t) < 0):
        raise LabelInputError("odometry timestamps are not sorted")
    if np.any(np.diff(odom_t) == 0):  # keep the first of equal timestamps
        keep = np.concatenate([[True], np.diff(odom_t) > 0])
        odom_t, pose = odom_t[keep], pose[keep]
    if odom_t.size < 2:
        raise NothingToLabelError("no odometry: fewer than 2 samples")
    if not np.all(np.isfinite(pose)):
        raise LabelInputError("odometry poses contain NaN or infinity")
    bad = [i for i in config.sensor_indices if i >= values.shape[1]]
    if bad:
        raise LabelInputError(
            f"sensor_indices {bad} out of range: proximity has {values.shape[1]} sensors"
        )
    overlap_ns = min(int(prox_t[-1]), int(odom_t[-1])) - max(int(prox_t[0]), int(odom_t[0]))
    if overlap_ns < config.min_duration_s * _NS_PER_S:
        raise NothingToLabelError(
            f"too short to label: proximity and odometry overlap for {max(overlap_ns, 0) / 1e9:.2f} s"
            f" (need {config.min_duration_s:g} s)"
        )
    if not np.any((cam_t >= odom_t[0]) & (cam_t <= odom_t[-1])):
        raise NothingToLabelError("no camera frame within the odometry's time span")
    return cam_t, prox_t, values, odom_t, pose


def _segment_of(odom_t: np.ndarray, seg: np.ndarray, query_t: np.ndarray) -> np.ndarray:
    """Odometry segment id of the interval that contains each query time."""
    i = np.searchsorted(odom_t, query_t, side="right") - 1
    return seg[np.clip(i, 0, odom_t.size - 1)]


def compute_labels(
    camera_t_ns: np.ndarray,
    prox_t_ns: np.ndarray,
    prox_values: np.ndarray,
    odom_t_ns: np.ndarray,
    odom_pose: np.ndarray,
    config: LabelConfig | None = None,
    *,
    chunk_cells: int = 1 << 20,
    progress: Callable[[int], None] | None = None,
    camera_offset_s: float | None = None,
    prox_presence: np.ndarray | None = None,
) -> LabelGrid:
    """Label every camera frame from the proximity stream and the odometry (see module docstring).

    camera_t_ns (N,), prox_t_ns (M,) sorted, prox_values (M, P) raw readings,
    odom_t_ns (K,) sorted, odom_pose (K, 3) (x_m, y_m, theta_rad). `chunk_cells`
    bounds the (frames x window) block held at once (memory ~ 200 bytes per cell);
    `progress(n)` is called with the number of frames done after each chunk.
    `camera_offset_s` (s): frames stamped t are matched with the poses at
    t - camera_offset_s (their exposure); None: `config.camera_offset` when it is a
    number, else 0 ("auto" and "spec" are resolved by `label_session`, which reads
    the images and the spec). The grid's `t_ns` keeps the frames' own stamps.
    `prox_presence` (M, P) int8: each sample's obstacle (1) / free (0) / unknown (-1)
    per sensor, from `robot_ssl.core.sensor_rule.presence` (the rule for any sensor
    kind); a cell matched to an unknown sample stays unknown. None: the IR rule on the
    raw readings (obstacle when > `config.threshold`).
    Raises NothingToLabelError (empty streams, too short) or LabelInputError.
    """
    cfg = config if config is not None else LabelConfig()
    if camera_offset_s is None:
        camera_offset_s = cfg.camera_offset_s or 0.0
    if not math.isfinite(camera_offset_s):
        raise LabelInputError(f"camera offset must be finite, got {camera_offset_s}")
    stamps = _as_1d_int64(camera_t_ns, "camera t_ns")
    cam_t, prox_t, values, odom_t, pose = _check_inputs(
        stamps - round(camera_offset_s * _NS_PER_S), prox_t_ns, prox_values, odom_t_ns, odom_pose,
        cfg,
    )  # fmt: skip
    n_frames = cam_t.size
    dist = np.asarray(cfg.distances_m, dtype=np.float64)
    n_dist = dist.size
    max_gap_ns = round(cfg.max_gap_s * _NS_PER_S)
    horizon_ns = round(cfg.horizon_s * _NS_PER_S)

    # Poses at frame and sample times; NaN outside the odometry or inside a gap.
    seg = segment_ids(odom_t, max_gap_ns)
    seg_end_t = odom_t[np.concatenate([np.flatnonzero(np.diff(seg)), [odom_t.size - 1]])]
    frame_pose = interpolate_poses(odom_t, pose, cam_t, max_gap_ns)
    sample_pose = interpolate_poses(odom_t, pose, prox_t, max_gap_ns)
    frame_ok = np.isfinite(frame_pose).all(axis=1)

    # Candidate window per frame: samples in [t, min(t + horizon, end of its segment)].
    lo = np.searchsorted(prox_t, cam_t, side="left")
    end_t = np.minimum(cam_t + horizon_ns, seg_end_t[_segment_of(odom_t, seg, cam_t)])
    hi = np.searchsorted(prox_t, end_t, side="right")
    width = np.where(frame_ok, np.maximum(hi - lo, 0), 0)

    match_index = np.full((n_frames, n_dist), UNKNOWN, dtype=np.int64)
    match_offset = np.full((n_frames, n_dist, 3), np.nan, dtype=np.float32)
    w_max = int(width.max()) if n_frames else 0
    chunk = max(1, chunk_cells // max(w_max, 1))
    # coarse range filter, a hair wider than the exact per-bin test done later
    lo_d = dist[0] - cfg.tol_d_m - _BIN_SEARCH_EPS_M
    hi_d = dist[-1] + cfg.tol_d_m + _BIN_SEARCH_EPS_M
    for a in range(0, n_frames, chunk):
        b = min(a + chunk, n_frames)
        w = width[a:b]
        wc = int(w.max())
        if wc > 0:
            _match_chunk(
                a, frame_pose[a:b], lo[a:b], w, wc, sample_pose, dist, lo_d, hi_d, cfg,
                match_index, match_offset,
            )  # fmt: skip
        if progress is not None:
            progress(b - a)

    known = match_index >= 0
    sel = values[:, list(cfg.sensor_indices)]  # (M, S)
    raw = sel[np.where(known, match_index, 0)].transpose(0, 2, 1)  # (N, S, D)
    known_sd = np.broadcast_to(known[:, None, :], raw.shape)
    readings = np.where(known_sd, raw, UNKNOWN).astype(np.int16)
    if prox_presence is None:
        labels = np.where(known_sd, raw > cfg.threshold, UNKNOWN).astype(np.int8)
    else:
        pres = np.asarray(prox_presence)
        if pres.shape != values.shape:
            raise LabelInputError(
                f"presence must be shaped as the proximity values {values.shape}, got {pres.shape}"
            )
        cell = pres[:, list(cfg.sensor_indices)][np.where(known, match_index, 0)]
        labels = np.where(known_sd, cell.transpose(0, 2, 1), UNKNOWN).astype(np.int8)
    match_t = np.where(known, prox_t[np.where(known, match_index, 0)], UNKNOWN)
    return LabelGrid(
        t_ns=stamps.copy(),
        labels=labels,
        readings=readings,
        match_index=match_index,
        match_t_ns=match_t.astype(np.int64),
        match_offset=match_offset,
        sensor_indices=np.asarray(cfg.sensor_indices, dtype=np.int64),
        distances_m=dist,
    )


def _match_chunk(
    first: int,
    frame_pose: np.ndarray,
    lo: np.ndarray,
    width: np.ndarray,
    wc: int,
    sample_pose: np.ndarray,
    dist: np.ndarray,
    lo_d: float,
    hi_d: float,
    cfg: LabelConfig,
    match_index: np.ndarray,
    match_offset: np.ndarray,
) -> None:
    """Match a block of frames (rows) against their candidate windows (columns), in place."""
    n_rows, n_dist = frame_pose.shape[0], dist.size
    cols = np.arange(wc)
    in_window = cols[None, :] < width[:, None]
    idx = np.minimum(lo[:, None] + cols[None, :], sample_pose.shape[0] - 1)
    rel = relative(frame_pose[:, None, :], sample_pose[idx])  # (rows, wc, 3)
    dx = np.where(in_window, rel[..., 0], np.nan)
    # Backward-motion rule: never further ahead before (pose at t counts as dx = 0).
    ahead = np.maximum(np.fmax.accumulate(dx, axis=1), 0.0)
    ok = dx >= ahead - cfg.max_backtrack_m
    ok &= (dx > lo_d) & (dx < hi_d)
    ok &= np.abs(rel[..., 1]) < cfg.tol_y_m
    ok &= np.abs(rel[..., 2]) < cfg.tol_theta_rad
    rows, wins = np.nonzero(ok)
    if rows.size == 0:
        return
    cdx = dx[rows, wins]
    # Each pose falls into a handful of bins: loop over that small axis only.
    k_lo = np.searchsorted(dist, cdx - cfg.tol_d_m - _BIN_SEARCH_EPS_M, side="left")
    k_hi = np.searchsorted(dist, cdx + cfg.tol_d_m + _BIN_SEARCH_EPS_M, side="right")
    groups, errs, cands = [], [], []
    for j in range(int((k_hi - k_lo).max())):
        k = k_lo + j
        m = k < k_hi
        err = np.abs(cdx[m] - dist[k[m]])
        acc = err < cfg.tol_d_m
        groups.append(rows[m][acc] * n_dist + k[m][acc])
        errs.append(err[acc])
        cands.append(wins[m][acc])
    g = np.concatenate(groups)
    if g.size == 0:
        return
    err = np.concatenate(errs)
    win = np.concatenate(cands)
    # Per (frame, bin): smallest error, then earliest sample.
    best_err = np.full(n_rows * n_dist, np.inf)
    np.minimum.at(best_err, g, err)
    tie = err == best_err[g]
    best_win = np.full(n_rows * n_dist, wc, dtype=np.int64)
    np.minimum.at(best_win, g[tie], win[tie])
    cells = np.flatnonzero(best_win < wc)
    r, k = np.divmod(cells, n_dist)
    wsel = best_win[cells]
    match_index[first + r, k] = lo[r] + wsel
    match_offset[first + r, k] = rel[r, wsel]


def truth_labels(
    camera_t_ns: np.ndarray,
    truth_t_ns: np.ndarray,
    truth_pose: np.ndarray,
    truth_distance_m: np.ndarray,
    range_m: float | np.ndarray,
    config: LabelConfig | None = None,
    *,
    chunk_cells: int = 1 << 20,
) -> LabelGrid:
    """The labels a perfect robot would get: true poses, obstacle = true distance < reach.

    truth_distance_m (T, P) is the simulator's true distance along each sensor's axis
    (over its sector for a sector sensor) to the nearest obstacle (NaN or inf:
    nothing); `range_m` the reach, one for all sensors or one per sensor (P,)
    (`RobotSpec.reaches_m()`). The same matching rule as
    `compute_labels` is applied to the true trajectory at the given times (no camera
    offset: pass the frames' true exposure times), so the cell (t, s, d) is 1
    when, at the true pose d ahead of the true pose at t, sensor s truly had an
    obstacle within range (its reading would be non-zero).
    """
    cfg = config if config is not None else LabelConfig()
    d = np.asarray(truth_distance_m, dtype=np.float64)
    reach = np.asarray(range_m, dtype=np.float64)  # () or (P,): broadcast over the rows
    present = (np.isfinite(d) & (d < reach)).astype(np.int16)
    return compute_labels(
        camera_t_ns,
        truth_t_ns,
        present,
        truth_t_ns,
        truth_pose,
        replace(cfg, threshold=0),
        chunk_cells=chunk_cells,
        camera_offset_s=0.0,
    )


@dataclass(frozen=True)
class TruthAgreement:
    """How labels compare with the true labels, on the cells both know."""

    compared: int  # cells known in both
    label_only: int  # labelled, but the true robot never stood there (odometry error)
    truth_only: int  # truly reachable, but not labelled
    agree: int
    true_positive: int
    false_positive: int
    false_negative: int
    per_cell_agreement: np.ndarray  # (S, D), NaN where nothing compared

    @property
    def agreement(self) -> float:
        return self.agree / self.compared if self.compared else math.nan

    @property
    def precision(self) -> float:
        n = self.true_positive + self.false_positive
        return self.true_positive / n if n else math.nan

    @property
    def recall(self) -> float:
        n = self.true_positive + self.false_negative
        return self.true_positive / n if n else math.nan

    def summary(self) -> dict[str, float | int]:
        return {
            "compared": self.compared,
            "agreement": self.agreement,
            "precision": self.precision,
            "recall": self.recall,
            "label_only": self.label_only,
            "truth_only": self.truth_only,
        }


def compare_with_truth(labels: np.ndarray, truth: np.ndarray) -> TruthAgreement:
    """Cell-by-cell comparison of two (N, S, D) grids with -1 for unknown (labels vs truth)."""
    labels = np.asarray(labels)
    truth = np.asarray(truth)
    if labels.shape != truth.shape:
        raise LabelInputError(f"label grids differ in shape: {labels.shape} vs {truth.shape}")
    lk, tk = labels >= 0, truth >= 0
    both = lk & tk
    eq = both & (labels == truth)
    n_both = both.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_cell = np.where(n_both > 0, eq.sum(axis=0) / np.maximum(n_both, 1), np.nan)
    return TruthAgreement(
        compared=int(both.sum()),
        label_only=int((lk & ~tk).sum()),
        truth_only=int((tk & ~lk).sum()),
        agree=int(eq.sum()),
        true_positive=int((both & (labels == 1) & (truth == 1)).sum()),
        false_positive=int((both & (labels == 1) & (truth == 0)).sum()),
        false_negative=int((both & (labels == 0) & (truth == 1)).sum()),
        per_cell_agreement=per_cell,
    )
