"""Honest evaluation of a detector: ROC AUC per (sensor, distance) cell over known labels.

- AUC is the Mann-Whitney statistic, P(score of a positive > score of a
  negative) with ties counted 1/2, computed exactly with numpy from the
  sorted scores (no sklearn).
- Confidence intervals come from a percentile bootstrap: each replicate draws
  frames with replacement (one weight vector per replicate, shared by all
  cells, so the mean and the band means get intervals too) and recomputes
  every AUC with frame weights, vectorised over replicates. Frames at 30 fps
  are not independent, so `evaluate` uses a BLOCK bootstrap (:class:`Blocks`):
  each session's frames are cut into contiguous blocks of `block_s` seconds
  (default 10 s, from the session's first evaluated frame), and each replicate
  draws, per session, as many blocks as it has, with replacement. `block_s=0`
  (and :func:`auc_report` without blocks) is the frame bootstrap, whose
  intervals are optimistic on correlated frames; held-out worlds are the real
  test either way. `bootstrap_unit="session"` (:meth:`Blocks.by_session`, issue 27)
  resamples whole sessions instead, per world: with several recorded drives of each
  world, a replicate draws, per world, as many of its drives as it has, with
  replacement, so the intervals carry the drive-to-drive spread.
- With simulator truth (`evaluate(truth=True)`, `robot-ssl eval --truth`), the
  same scores are also compared with the true label grid of each simulated
  session (robot_ssl.learning.truth_grid), and both comparisons are summarised
  per world and per band with block-bootstrap intervals (:func:`truth_comparison`).
- A session of the evaluation that is among the model's training sessions
  (robot_ssl.learning.truth_grid.training_data_of: SHA-256 identities where
  known, else names) triggers a one-line warning and `training_overlap.warning`.
- A cell whose known labels are all of one class (or that has none) has no
  AUC: it is reported as null with its counts, listed, and excluded from every
  mean (never averaged in as 0.5).
- Distance bands, in cm: "0-10" is 0 <= d < 10, "10-20" is 10 <= d < 20,
  "20-30" is 20 <= d <= 30 (the last band is closed so that the 30 cm cell of
  the usual 0..30 cm grid belongs to it). Cells beyond 30 cm, if any, form a
  band "30+".

:func:`evaluate` checks its options and that every output can be written
before it loads the model (whose integrity
robot_ssl.learning.torch_predictor.load_any_predictor checks) or any data, renders every output in memory and only then writes them
all, each atomically: a failure leaves no report beside stale plots.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from robot_ssl.core.config import MAX_BATCH, MAX_BOOTSTRAP, MAX_THREADS, check_number
from robot_ssl.core.errors import RobotSSLError
from robot_ssl.core.outputs import OutputError, atomic_output, check_writable
from robot_ssl.learning.dataset import DEFAULT_INPUT_SIZE, FrameSet
from robot_ssl.learning.eval_config import BOOTSTRAP_UNITS, DEFAULT_BLOCK_S, EvalConfig

if TYPE_CHECKING:
    from robot_ssl.learning.truth_grid import SessionTargets

__all__ = [
    "BANDS_CM",
    "Blocks",
    "EvalError",
    "auc_report",
    "band_of_distances",
    "cell_aucs",
    "evaluate",
    "evaluate_config",
    "load_eval_data",
    "plot_auc_vs_distance",
    "plot_heatmap",
    "roc_auc",
    "truth_comparison",
    "weighted_auc",
]

BANDS_CM: tuple[tuple[str, float, float], ...] = (
    ("0-10", 0.0, 10.0),
    ("10-20", 10.0, 20.0),
    ("20-30", 20.0, 30.0),
)
BAND_DEFINITION = (
    "distance d in cm: 0-10 is 0 <= d < 10, 10-20 is 10 <= d < 20, 20-30 is 20 <= d <= 30, "
    "30+ is d > 30"
)
REPORT_FORMAT = "robot-ssl/eval"
REPORT_VERSION = 1
FALLBACK_FPS = 30.0  # frame times of a frame set given without stamps
NO_WORLD = "(none)"  # the world of sessions recorded outside the simulator


class EvalError(RobotSSLError):
    """Evaluation options are invalid or the report cannot be written."""


# -- bootstrap blocks ----------------------------------------------------------------------


@dataclass(frozen=True)
class Blocks:
    """Contiguous time blocks of the evaluation frames, the unit of the block bootstrap.

    `of_frame[i]` is the block of frame i, `stratum[b]` the session of block b:
    a replicate draws, per session, as many of its blocks as it has, with
    replacement, and a frame's weight is how often its block was drawn.
    """

    of_frame: np.ndarray  # int64 (N,)
    stratum: np.ndarray  # int64 (B,)
    block_s: float | None  # None: whole sessions (:meth:`by_session`)
    unit: str = "block"  # "block": time blocks per session; "session": whole sessions

    @classmethod
    def from_times(
        cls, session_ids: np.ndarray, t_s: np.ndarray, block_s: float = DEFAULT_BLOCK_S
    ) -> Blocks:
        """Blocks of `block_s` seconds per session from its first frame (<= 0: one per frame)."""
        sid = np.asarray(session_ids, np.int64)
        t = np.asarray(t_s, np.float64)
        if sid.shape != t.shape or sid.ndim != 1:
            raise ValueError("session_ids and t_s must be (N,) arrays")
        if block_s > 0 and sid.size:
            t0 = np.full(int(sid.max()) + 1, np.inf)
            np.minimum.at(t0, sid, t)
            k = np.floor((t - t0[sid]) / block_s).astype(np.int64)
        else:
            k = np.arange(sid.size, dtype=np.int64)
        keys, of_frame = np.unique(np.stack([sid, k], axis=1), axis=0, return_inverse=True)
        return cls(of_frame.reshape(-1), keys[:, 0].copy(), float(max(block_s, 0.0)))

    @classmethod
    def by_session(cls, session_ids: np.ndarray, session_strata: np.ndarray) -> Blocks:
        """Each session one block, the sessions of one stratum resampled among themselves.

        The drive bootstrap (issue 27): with `session_strata[s]` the world of session s,
        a replicate draws, per world, as many of its drives as it has, with replacement,
        so the intervals carry the drive-to-drive spread that one drive per world hides.
        A stratum of one session always draws it (no spread from it)."""
        sid = np.asarray(session_ids, np.int64)
        strata = np.asarray(session_strata, np.int64)
        if sid.ndim != 1 or strata.ndim != 1:
            raise ValueError("session_ids and session_strata must be 1-D arrays")
        if sid.size and (sid.min() < 0 or sid.max() >= strata.size):
            raise ValueError("a session id has no stratum")
        used, of_frame = np.unique(sid, return_inverse=True)
        return cls(of_frame.reshape(-1), strata[used].copy(), None, "session")

    @property
    def num_blocks(self) -> int:
        return int(self.stratum.size)

    @property
    def num_strata(self) -> int:
        return int(np.unique(self.stratum).size)

    def subset(self, mask: np.ndarray) -> Blocks:
        """The blocks of the frames where `mask` (N,) is true, renumbered."""
        used, of_frame = np.unique(self.of_frame[np.asarray(mask, bool)], return_inverse=True)
        return Blocks(of_frame.reshape(-1), self.stratum[used], self.block_s, self.unit)

    def block_counts(self, rng: np.random.Generator, replicates: int) -> np.ndarray:
        """(replicates, B) float32: how often each block is drawn, per stratum as many
        draws as it has blocks, with replacement."""
        counts = np.zeros((replicates, self.num_blocks), np.float32)
        for s in np.unique(self.stratum):
            idx = np.flatnonzero(self.stratum == s)
            counts[:, idx] = rng.multinomial(
                idx.size, np.full(idx.size, 1.0 / idx.size), replicates
            )
        return counts

    def weights(self, rng: np.random.Generator, replicates: int) -> np.ndarray:
        """(replicates, N) float32 frame weights of `replicates` block-bootstrap draws."""
        return self.block_counts(rng, replicates)[:, self.of_frame]


# -- AUC -----------------------------------------------------------------------------------


def _sort_cell(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray, Any]:
    """(order, positive in score order, tie-group starts or None when all scores differ)."""
    order = np.argsort(scores, kind="stable")
    s = scores[order]
    ties = s[1:] == s[:-1]
    starts = np.flatnonzero(np.r_[True, ~ties]) if ties.any() else None
    return order, positive[order], starts


def _auc_sorted(positive: np.ndarray, starts: np.ndarray | None, w: np.ndarray) -> np.ndarray:
    """Weighted AUC per row of `w` (R, n), columns already in increasing score order."""
    pos = positive.astype(w.dtype)
    neg = 1.0 - pos
    if starts is None:  # no ties: a positive's own column carries no negative weight
        neg_cum = np.cumsum(w * neg, axis=1)
        num = (w * neg_cum) @ pos
    else:  # tie groups: W+(g) * (W-(below g) + W-(g) / 2)
        w_pos = np.add.reduceat(w * pos, starts, axis=1)
        w_neg = np.add.reduceat(w * neg, starts, axis=1)
        below = np.cumsum(w_neg, axis=1) - w_neg
        num = np.sum(w_pos * (below + 0.5 * w_neg), axis=1)
    den = (w @ pos).astype(np.float64) * (w @ neg)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def weighted_auc(scores: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC of `scores` (n,) for the boolean `positive` (n,), once per weight row (R, n).

    Weights are sample multiplicities (a bootstrap replicate is a row of
    counts; all ones gives the plain AUC): AUC = sum over positives i and
    negatives j of w_i w_j ([s_i > s_j] + [s_i = s_j] / 2) / (W+ W-),
    computed from one sort and cumulative sums. Rows with no positive or no
    negative weight give NaN.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if scores.size == 0:
        return np.full(weights.shape[0], np.nan)
    order, pos_sorted, starts = _sort_cell(scores, positive)
    return _auc_sorted(pos_sorted, starts, weights[:, order])


def block_pair_counts(
    scores: np.ndarray, positive: np.ndarray, block: np.ndarray, num_blocks: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Mann-Whitney counts between blocks: U (B, B), n_pos (B,), n_neg (B,).

    U[a, b] counts the pairs of a positive of block a and a negative of block b with the
    positive scored higher (ties 1/2). With frame weights constant within a block (block
    counts c, one row per replicate) the weighted AUC is c U c^T / ((c n_pos)(c n_neg)):
    one sort per cell, then each replicate costs O(B^2) instead of O(N), which is what makes
    the session bootstrap over long sessions cheap."""
    order = np.argsort(scores, kind="stable")
    s, pos, b = scores[order], np.asarray(positive, bool)[order], np.asarray(block)[order]
    group = np.cumsum(np.r_[True, s[1:] != s[:-1]]) - 1  # tie groups, in score order
    size = (int(group[-1]) + 1 if s.size else 0) * num_blocks
    key = group * num_blocks + b
    pos_gb = np.bincount(key[pos], minlength=size).reshape(-1, num_blocks).astype(np.float64)
    neg_gb = np.bincount(key[~pos], minlength=size).reshape(-1, num_blocks).astype(np.float64)
    below = np.cumsum(neg_gb, axis=0) - neg_gb
    return pos_gb.T @ (below + 0.5 * neg_gb), pos_gb.sum(axis=0), neg_gb.sum(axis=0)


def _pair_auc(counts: tuple[np.ndarray, np.ndarray, np.ndarray], c: np.ndarray) -> np.ndarray:
    """AUC per row of block counts `c` (R, B) from :func:`block_pair_counts` (NaN: one class)."""
    u, n_pos, n_neg = counts
    num = np.einsum("ra,ab,rb->r", c, u, c)
    den = (c @ n_pos) * (c @ n_neg)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC for binary `labels` (0/1 or bool); NaN when only one class is present."""
    scores = np.asarray(scores)
    return float(weighted_auc(scores, np.asarray(labels) > 0, np.ones((1, scores.size)))[0])


def cell_aucs(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AUC (S, D) with NaN where undefined, and the counts n_pos, n_neg (S, D) of known labels."""
    _, n_s, n_d = labels.shape
    auc = np.full((n_s, n_d), np.nan)
    known = labels >= 0
    n_pos = (labels == 1).sum(axis=0)
    n_neg = (labels == 0).sum(axis=0)
    for s in range(n_s):
        for d in range(n_d):
            if n_pos[s, d] and n_neg[s, d]:
                k = known[:, s, d]
                auc[s, d] = roc_auc(probs[k, s, d], labels[k, s, d])
    return auc, n_pos, n_neg


def band_of_distances(distances_m: np.ndarray) -> list[str]:
    """The band name of each distance (see the module docstring for the edges)."""
    names = []
    for d_cm in np.round(np.asarray(distances_m, dtype=np.float64) * 100.0, 6):
        name = "30+"
        for band, lo, hi in BANDS_CM:
            last = band == BANDS_CM[-1][0]
            if lo <= d_cm < hi or (last and d_cm == hi):
                name = band
                break
        if d_cm < 0:
            raise ValueError(f"negative distance {d_cm} cm")
        names.append(name)
    return names


def _nanmean_rows(a: np.ndarray) -> np.ndarray:
    """Mean over the last axis ignoring NaN; NaN where a row has no finite value."""
    finite = np.isfinite(a)
    count = finite.sum(axis=-1)
    total = np.where(finite, a, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


def _grid(a: np.ndarray) -> list[list[float | None]]:
    return [[_num(v) for v in row] for row in a]


def auc_report(
    probs: np.ndarray,
    labels: np.ndarray,
    distances_m: Sequence[float] | np.ndarray,
    sensor_indices: Sequence[int] | np.ndarray | None = None,
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    chunk: int = 100,
    blocks: Blocks | None = None,
) -> dict[str, Any]:
    """The evaluation report (a JSON-ready dict) for predictions `probs` (N, S, D) vs `labels`.

    Keys: `mean_auc`, `auc_by_band` ({"0-10", "10-20", "20-30"[, "30+"]}),
    their bootstrap intervals (`mean_auc_ci`, `auc_by_band_ci`),
    `auc_by_distance`, `auc_by_sensor`, the per-cell `grid` (`auc`, `ci_low`,
    `ci_high`, `n_pos`, `n_neg`, each S x D with nulls), cell counts and the
    list of single-class cells. `n_bootstrap=0` skips the intervals. With
    `blocks` the bootstrap resamples those blocks (see :class:`Blocks`), else frames.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if probs.shape != labels.shape or labels.ndim != 3:
        raise ValueError(f"probs {probs.shape} and labels {labels.shape} must both be (N, S, D)")
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be in (0, 1)")
    n, n_s, n_d = labels.shape
    distances_m = np.asarray(distances_m, dtype=np.float64)
    if distances_m.shape != (n_d,):
        raise ValueError("distances_m must have one entry per distance column")
    if blocks is not None and blocks.of_frame.shape != (n,):
        raise ValueError("blocks must have one entry per frame")
    sensors = np.arange(n_s) if sensor_indices is None else np.asarray(sensor_indices)
    bands = band_of_distances(distances_m)
    band_names = [b for b, _, _ in BANDS_CM] + (["30+"] if "30+" in bands else [])
    band_cols = {b: [j for j, x in enumerate(bands) if x == b] for b in band_names}

    auc, n_pos, n_neg = cell_aucs(probs, labels)
    defined = np.isfinite(auc)
    has_known = (n_pos + n_neg) > 0

    def summaries(a: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Mean over cells and per band, for a[..., S, D] (leading axes: replicates)."""
        flat = a.reshape(*a.shape[:-2], -1)
        by_band = {
            b: _nanmean_rows(a[..., cols].reshape(*a.shape[:-2], -1))
            if cols
            else np.full(a.shape[:-2], np.nan)
            for b, cols in band_cols.items()
        }
        return _nanmean_rows(flat), by_band

    mean_auc, auc_by_band = summaries(auc)

    ci_low = np.full((n_s, n_d), np.nan)
    ci_high = np.full((n_s, n_d), np.nan)
    mean_ci: list[float | None] = [None, None]
    band_ci: dict[str, list[float | None]] = {b: [None, None] for b in band_names}
    if n_bootstrap > 0 and n > 0 and defined.any():
        rng = np.random.default_rng(seed)
        boot = np.full((n_bootstrap, n_s, n_d), np.nan)
        sessions = blocks if blocks is not None and blocks.unit == "session" else None
        cells = []  # per defined cell: frame indices in score order, labels, tie groups
        pairs = []  # whole sessions: per defined cell, the counts between sessions
        for s, d in zip(*np.nonzero(defined)):
            idx = np.flatnonzero(labels[:, s, d] >= 0)
            positive = labels[idx, s, d] == 1
            if sessions is not None:
                block_of = sessions.of_frame[idx]
                pair = block_pair_counts(probs[idx, s, d], positive, block_of, sessions.num_blocks)
                pairs.append((s, d, pair))
                continue
            order, pos_sorted, starts = _sort_cell(probs[idx, s, d], positive)
            cells.append((s, d, idx[order], pos_sorted, starts))
        for start in range(0, n_bootstrap, chunk):
            r = min(chunk, n_bootstrap - start)
            if sessions is not None:  # the draws of `weights`, per block: O(B^2) a replicate
                counts = sessions.block_counts(rng, r).astype(np.float64)
                for s, d, pair in pairs:
                    boot[start : start + r, s, d] = _pair_auc(pair, counts)
                continue
            # float32 counts are exact; one weight row per replicate, shared by all cells
            if blocks is None:
                weights = rng.multinomial(n, np.full(n, 1.0 / n), size=r).astype(np.float32)
            else:
                weights = blocks.weights(rng, r)
            for s, d, idx, pos_sorted, starts in cells:
                boot[start : start + r, s, d] = _auc_sorted(pos_sorted, starts, weights[:, idx])
        alpha = (1.0 - confidence) / 2.0
        q = [100.0 * alpha, 100.0 * (1.0 - alpha)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices give NaN: fine
            lo, hi = np.nanpercentile(boot, q, axis=0)
            boot_mean, boot_bands = summaries(boot)
            mean_ci = [_num(v) for v in np.nanpercentile(boot_mean, q)]
            band_ci = {b: [_num(v) for v in np.nanpercentile(x, q)] for b, x in boot_bands.items()}
        ci_low = np.where(defined, lo, np.nan)
        ci_high = np.where(defined, hi, np.nan)

    single = np.argwhere(has_known & ~defined)
    return {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "num_frames": int(n),
        "mean_auc": _num(mean_auc),
        "mean_auc_ci": mean_ci,
        "auc_by_band": {b: _num(v) for b, v in auc_by_band.items()},
        "auc_by_band_ci": band_ci,
        "band_definition": BAND_DEFINITION,
        "auc_by_distance": [_num(v) for v in _nanmean_rows(auc.T)],
        "auc_by_sensor": [_num(v) for v in _nanmean_rows(auc)],
        "num_cells": int(n_s * n_d),
        "num_cells_defined": int(defined.sum()),
        "num_cells_single_class": len(single),
        "num_cells_without_labels": int((~has_known).sum()),
        "single_class_cells": [[int(s), int(d)] for s, d in single],
        "sensor_indices": [int(s) for s in sensors],
        "distances_m": [float(d) for d in distances_m],
        "bootstrap": {
            "replicates": int(n_bootstrap),
            "confidence": confidence,
            "unit": "frame" if blocks is None else blocks.unit,
            "block_s": None if blocks is None else blocks.block_s,
            "num_blocks": int(n) if blocks is None else blocks.num_blocks,
            "num_strata": None if blocks is None else blocks.num_strata,
        },
        "grid": {
            "auc": _grid(auc),
            "ci_low": _grid(ci_low),
            "ci_high": _grid(ci_high),
            "n_pos": n_pos.astype(int).tolist(),
            "n_neg": n_neg.astype(int).tolist(),
        },
    }


_SUMMARY_KEYS = (
    "num_frames",
    "num_cells_defined",
    "mean_auc",
    "mean_auc_ci",
    "auc_by_band",
    "auc_by_band_ci",
    "auc_by_distance",
    "auc_by_sensor",
)
NO_TRUTH = "no truth"


def truth_comparison(
    probs: np.ndarray,
    labels: np.ndarray,
    truth: np.ndarray,
    has_truth: np.ndarray,
    frame_worlds: Sequence[str],
    distances_m: Sequence[float] | np.ndarray,
    blocks: Blocks,
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """AUC vs the auto-labels and vs the simulator truth, overall and per world, per band.

    `truth` (N, S, D) holds the true labels of the frames where `has_truth` (N,)
    (other rows are ignored); `frame_worlds` (N,) names each frame's world.
    Each group gives, for "labels" (all its frames) and "truth" (its frames with
    truth; null and `truth_status` "no truth" when none), the mean AUC, the AUC
    per band, per distance and per sensor, with block-bootstrap intervals.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels, truth = np.asarray(labels), np.asarray(truth)
    has_truth = np.asarray(has_truth, bool)
    frame_worlds = np.asarray(frame_worlds, dtype=object)

    def summary(sel: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
        rep = auc_report(
            probs[sel],
            targets[sel],
            distances_m,
            n_bootstrap=n_bootstrap,
            confidence=confidence,
            seed=seed,
            blocks=blocks.subset(sel),
        )
        return {k: rep[k] for k in _SUMMARY_KEYS}

    def group(sel: np.ndarray) -> dict[str, Any]:
        with_truth = sel & has_truth
        n_truth = int(with_truth.sum())
        status = "ok" if n_truth == int(sel.sum()) else ("partial" if n_truth else NO_TRUTH)
        return {
            "num_frames": int(sel.sum()),
            "num_truth_frames": n_truth,
            "truth_status": status,
            "labels": summary(sel, labels),
            "truth": summary(with_truth, truth) if n_truth else None,
        }

    worlds = sorted({str(w) for w in frame_worlds})
    return {
        "bootstrap": {
            "replicates": int(n_bootstrap),
            "confidence": confidence,
            "unit": blocks.unit,
            "block_s": blocks.block_s,
        },
        "band_definition": BAND_DEFINITION,
        "overall": group(np.ones(len(probs), bool)),
        "by_world": {w: group(frame_worlds == w) for w in worlds},
    }


# -- plots ---------------------------------------------------------------------------------


def _png(fig: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def _write_files(outputs: dict[Path, bytes]) -> None:
    """Write every output atomically; all contents are ready before the first one appears."""
    current = None
    try:
        with contextlib.ExitStack() as stack:
            tmps = [(p, stack.enter_context(atomic_output(p)), data) for p, data in outputs.items()]
            for path, tmp, data in tmps:
                current = path
                tmp.write_bytes(data)
    except OutputError:
        raise
    except OSError as e:
        raise EvalError(f"cannot write {current or 'the report'}: {e.strerror or e}") from None


def _save_figure(fig: Any, path: Path) -> None:
    _write_files({path: _png(fig)})


def _as_array(grid: list[list[float | None]]) -> np.ndarray:
    return np.array([[np.nan if v is None else v for v in row] for row in grid], dtype=np.float64)


def plot_heatmap(report: dict[str, Any], path: str | Path, title: str = "ROC AUC") -> Path:
    """Heatmap of the per-cell AUC (sensors x distances); undefined cells are grey."""
    path = Path(path)
    _save_figure(_heatmap_figure(report, title), path)
    return path


def _heatmap_figure(report: dict[str, Any], title: str = "ROC AUC") -> Any:
    from matplotlib.figure import Figure

    auc = _as_array(report["grid"]["auc"])
    d_cm = np.asarray(report["distances_m"]) * 100.0
    fig = Figure(figsize=(10, 2.6 + 0.25 * auc.shape[0]))
    ax = fig.add_subplot()
    cmap = __import__("matplotlib").colormaps["viridis"].with_extremes(bad="0.75")
    im = ax.imshow(np.ma.masked_invalid(auc), aspect="auto", cmap=cmap, vmin=0.5, vmax=1.0)
    step = max(1, len(d_cm) // 16)
    ax.set_xticks(range(0, len(d_cm), step), [f"{d:g}" for d in d_cm[::step]])
    ax.set_yticks(range(auc.shape[0]), [f"s{s}" for s in report["sensor_indices"]])
    ax.set_xlabel("distance ahead [cm]")
    ax.set_ylabel("sensor")
    mean = report["mean_auc"]
    ax.set_title(f"{title} (mean {mean:.3f})" if mean is not None else title)
    fig.colorbar(im, ax=ax, label="AUC (grey: single class / no labels)")
    return fig


def plot_auc_vs_distance(report: dict[str, Any], path: str | Path) -> Path:
    """AUC against distance: one thin line per sensor, the sensor mean bold, band means as steps."""
    path = Path(path)
    _save_figure(_auc_vs_distance_figure(report), path)
    return path


def _auc_vs_distance_figure(report: dict[str, Any]) -> Any:
    from matplotlib.figure import Figure

    auc = _as_array(report["grid"]["auc"])
    d_cm = np.asarray(report["distances_m"]) * 100.0
    fig = Figure(figsize=(8, 4.5))
    ax = fig.add_subplot()
    for s, row in zip(report["sensor_indices"], auc):
        ax.plot(d_cm, row, lw=0.8, alpha=0.6, label=f"sensor {s}")
    mean = np.array([np.nan if v is None else v for v in report["auc_by_distance"]])
    ax.plot(d_cm, mean, "k-", lw=2.2, label="mean over sensors")
    for band, lo, hi in BANDS_CM:
        v = report["auc_by_band"].get(band)
        if v is not None:
            ax.hlines(v, lo, hi, colors="tab:red", linestyles="--", lw=1.2)
            ax.text(
                (lo + hi) / 2,
                v + 0.015,
                f"{band}: {v:.3f}",
                ha="center",
                color="tab:red",
                bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"},
            )
    ax.axhline(0.5, color="0.5", lw=0.8, ls=":")
    ax.set_ylim(0.4, 1.02)
    ax.set_xlabel("distance ahead [cm]")
    ax.set_ylabel("ROC AUC")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left", ncol=2)
    return fig


def _truth_figure(comparison: dict[str, Any], distances_m: Sequence[float]) -> Any:
    """Mean AUC over sensors against distance, vs the auto-labels and vs truth, per world."""
    from matplotlib.figure import Figure

    d_cm = np.asarray(distances_m) * 100.0
    fig = Figure(figsize=(8, 4.5))
    ax = fig.add_subplot()
    from matplotlib import colormaps

    groups = {"all": comparison["overall"], **comparison["by_world"]}
    palette = colormaps["tab20"]  # distinct colours for up to 20 worlds (the default has 10)
    for i, (name, g) in enumerate(groups.items()):
        colour = "k" if name == "all" else palette(i % 20)
        lw = 2.2 if name == "all" else 1.0
        for key, style in (("labels", "--"), ("truth", "-")):
            if g[key] is None:
                continue
            y = np.array([np.nan if v is None else v for v in g[key]["auc_by_distance"]])
            ax.plot(d_cm, y, style, color=colour, lw=lw, label=f"{name} vs {key}")
    ax.axhline(0.5, color="0.5", lw=0.8, ls=":")
    ax.set_ylim(0.4, 1.02)
    ax.set_xlabel("distance ahead [cm]")
    ax.set_ylabel("ROC AUC (mean over sensors)")
    ax.set_title("AUC vs auto-labels (dashed) and vs simulator truth (solid)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left", ncol=2)
    return fig


def _training_overlap(
    model_path: str | Path, kind: str, sessions: Sequence[tuple[str, str | None]] | None
) -> dict[str, Any]:
    """The `training_overlap` entry of the report (see robot_ssl.learning.truth_grid)."""
    from robot_ssl.learning.truth_grid import training_data_of

    if sessions is None:
        return {"checked": False, "reason": "frames given without session files", "warning": False}
    try:
        record = training_data_of(model_path, kind)
    except RobotSSLError as e:
        return {"checked": False, "reason": str(e), "warning": False}
    if record.method is None:
        return {
            "checked": False,
            "reason": record.reason,
            "source": record.source,
            "warning": False,
        }
    overlap = record.overlap(sessions)
    return {
        "checked": True,
        "method": record.method,
        "source": record.source,
        "num_training_sessions": max(len(record.identities), len(record.names)),
        "sessions": overlap,
        "warning": bool(overlap),
    }


# -- the whole evaluation ------------------------------------------------------------------


def predict_frames(predictor: Any, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Probabilities (N, S, D) of `predictor` (robot_ssl.inference.predictor.Predictor) over images."""
    out = [predictor.predict(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
    if not out:
        s, d = predictor.config.num_sensors, predictor.config.num_distances
        return np.zeros((0, s, d), np.float32)
    return np.concatenate(out)


def load_eval_data(
    data: Sequence[str | Path],
    *,
    labels_dir: str | Path | None = None,
    size: tuple[int, int] = DEFAULT_INPUT_SIZE,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    truth: bool = False,
) -> tuple[FrameSet, list[SessionTargets]]:
    """The frames of labelled sessions and, per session, its stamps (and truth): what
    :func:`evaluate` scores; load once to evaluate several models."""
    from robot_ssl.learning.dataset import load_sessions
    from robot_ssl.learning.truth_grid import session_targets

    sessions = load_sessions(
        data, labels_dir=labels_dir, size=size, cache_dir=cache_dir, progress=progress
    )
    targets = [
        session_targets(
            s.path, s.frame_index, labels_dir=labels_dir, world=s.world, with_truth=truth
        )
        for s in sessions
    ]
    return FrameSet.from_sessions(sessions), targets


def _session_worlds(session_ids: np.ndarray, worlds: Sequence[str | None]) -> np.ndarray:
    """The world name of each session (NO_WORLD where none), one per session id."""
    ids = np.asarray(session_ids, np.int64)
    n_sessions = max(int(ids.max()) + 1 if ids.size else 0, len(worlds))
    padded = list(worlds) + [None] * (n_sessions - len(worlds))
    return np.array([NO_WORLD if w is None else str(w) for w in padded], dtype=object)


def _session_blocks(session_ids: np.ndarray, worlds: Sequence[str | None]) -> Blocks:
    """Whole sessions as bootstrap blocks, stratified by world; a one-line warning names
    the worlds with a single session (always drawn: their intervals lack its spread)."""
    import sys

    world_of = _session_worlds(session_ids, worlds)
    names_w, strata = np.unique(world_of.astype(str), return_inverse=True)
    blocks = Blocks.by_session(session_ids, strata)
    counts = np.bincount(blocks.stratum, minlength=names_w.size)
    single = [str(w) for w, c in zip(names_w, counts) if c == 1]
    if single:
        print(
            f"warning: session bootstrap: {len(single)} world(s) with one session "
            f"({', '.join(single[:6])}{', ...' if len(single) > 6 else ''}) add no "
            f"session-to-session spread to the intervals ({blocks.num_blocks} sessions)",
            file=sys.stderr,
        )
    return blocks


def _check_viewpoint(predictor: Any, frames: FrameSet, allow: bool) -> None:
    """The model's camera viewpoint against the sessions' (one line on stderr when it
    cannot be checked or a mismatch is allowed; ViewpointMismatch otherwise)."""
    import sys

    from robot_ssl.inference.viewpoint import check_viewpoint

    if frames.viewpoint is None:  # frames given without their sessions' camera
        return
    line = check_viewpoint(
        predictor.viewpoint,
        frames.viewpoint,
        model_name=str(predictor.path),
        camera_name="the sessions' camera",
        allow=allow,
    )
    if line:
        print(line, file=sys.stderr)


def evaluate(
    model_path: str | Path,
    data: Sequence[str | Path],
    *,
    labels_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    json_out: str | Path | None = None,
    out_dir: str | Path | None = None,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    batch_size: int = 256,
    num_threads: int | None = None,
    progress: bool = True,
    frames: FrameSet | None = None,
    targets: Sequence[SessionTargets] | None = None,
    truth: bool = False,
    block_s: float = DEFAULT_BLOCK_S,
    allow_viewpoint_mismatch: bool = False,
    bootstrap_unit: str = "block",
) -> dict[str, Any]:
    """Evaluate a model file (checkpoint, TorchScript or ONNX) on labelled sessions.

    Writes the JSON report to `json_out` and, with `out_dir`, `report.json`,
    `auc_heatmap.png` and `auc_vs_distance.png` there (and `auc_truth.png` with
    `truth`). `frames` replaces loading `data` (tests, benchmarks), with
    `targets` (one SessionTargets per session of `frames`, from
    :func:`load_eval_data`) for stamps, truth and the training-overlap check;
    without `targets`, frames are taken 1/30 s apart, with no truth. Intervals
    come from a block bootstrap over `block_s`-second blocks (0: over frames), or with
    `bootstrap_unit` "session" over whole sessions, resampled per world (the drives of a
    world: :meth:`Blocks.by_session`; a world with one session is warned about).
    With `truth`, the report's `truth` entry compares the scores with the
    auto-labels and with the simulator truth per world and band
    (:func:`truth_comparison`). A session among the model's training sessions
    is warned about on stderr and flagged in `training_overlap`. Sessions recorded with
    another camera viewpoint than the model's are refused (ViewpointMismatch) unless
    `allow_viewpoint_mismatch` (robot_ssl.inference.viewpoint). Returns the report.

    Bad options raise EvalError, an output that cannot be written OutputError,
    both before the model or any data is loaded.
    """
    from robot_ssl.learning.dataset import DatasetError
    from robot_ssl.learning.torch_predictor import load_any_predictor

    if not (isinstance(confidence, (int, float)) and 0.0 < confidence < 1.0):
        raise EvalError(f"confidence must be a number in (0, 1), got {confidence}")
    check_number(n_bootstrap, "n_bootstrap", EvalError, integer=True, min=0, max=MAX_BOOTSTRAP)
    check_number(batch_size, "batch_size", EvalError, integer=True, min=1, max=MAX_BATCH)
    check_number(
        num_threads, "num_threads", EvalError, integer=True, optional=True, min=1, max=MAX_THREADS
    )
    if not (isinstance(block_s, (int, float)) and math.isfinite(block_s) and block_s >= 0):
        raise EvalError(f"block_s must be a number of seconds >= 0, got {block_s}")
    if bootstrap_unit not in BOOTSTRAP_UNITS:
        raise EvalError(f"bootstrap_unit must be one of {', '.join(BOOTSTRAP_UNITS)}")
    outputs_to_write: list[Path] = []
    if json_out is not None:
        json_out = Path(json_out)
        if json_out.is_dir():
            raise EvalError(f"{json_out} is a folder; name the JSON file to write")
        outputs_to_write.append(json_out)
    if out_dir is not None:
        out_dir = Path(out_dir)
        if out_dir.exists() and not out_dir.is_dir():
            raise OutputError(f"cannot write to {out_dir}: not a directory")
        outputs_to_write += [
            out_dir / n for n in ("report.json", "auc_heatmap.png", "auc_vs_distance.png")
        ]
        if truth:
            outputs_to_write.append(out_dir / "auc_truth.png")
    for folder in dict.fromkeys(t.parent for t in outputs_to_write):
        check_writable(folder)

    predictor = load_any_predictor(model_path, num_threads=num_threads)
    cfg = predictor.config
    session_targets = None if targets is None else list(targets)
    if frames is None:
        frames, session_targets = load_eval_data(
            data,
            labels_dir=labels_dir,
            size=cfg.input_size,
            cache_dir=cache_dir,
            progress=progress,
            truth=truth,
        )
    _check_viewpoint(predictor, frames, allow_viewpoint_mismatch)
    if session_targets is not None and len(session_targets) != len(frames.session_names):
        raise EvalError(
            f"{len(session_targets)} session targets for {len(frames.session_names)} sessions"
        )
    if frames.grid_shape != (cfg.num_sensors, cfg.num_distances):
        raise DatasetError(
            f"labels have a {frames.grid_shape} (sensors, distances) grid, the model "
            f"predicts {(cfg.num_sensors, cfg.num_distances)}"
        )
    if cfg.distances_m is not None and not np.allclose(cfg.distances_m, frames.distances_m):
        raise DatasetError("the labels' distances differ from the ones the model was trained on")
    if session_targets is not None:
        t_s = np.concatenate([t.t_s for t in session_targets])
    else:  # frames without stamps: consecutive frames of each session at 30 fps
        ids = np.asarray(frames.session_ids, np.int64)
        t_s = np.zeros(len(ids))
        for i in np.unique(ids):
            t_s[ids == i] = np.arange(int((ids == i).sum())) / FALLBACK_FPS
    if bootstrap_unit == "session":
        blocks = _session_blocks(frames.session_ids, frames.worlds)
    else:
        blocks = Blocks.from_times(frames.session_ids, t_s, float(block_s))
    probs = predict_frames(predictor, frames.images, batch_size)
    report = auc_report(
        probs,
        frames.labels,
        frames.distances_m,
        frames.sensor_indices,
        n_bootstrap=n_bootstrap,
        confidence=confidence,
        seed=seed,
        blocks=blocks,
    )
    report["model"] = str(model_path)
    report["model_kind"] = predictor.kind
    report["arch"] = cfg.arch
    report["sessions"] = list(frames.session_names)
    report["worlds"] = sorted({str(w) for w in frames.worlds if w is not None})
    named = None
    if session_targets is not None:
        named = [(t.name, t.sha256) for t in session_targets]
    report["training_overlap"] = _training_overlap(model_path, predictor.kind, named)
    if report["training_overlap"]["warning"]:
        import sys

        print(
            "warning: evaluating on training sessions of the model: "
            + ", ".join(report["training_overlap"]["sessions"]),
            file=sys.stderr,
        )
    if truth:
        truth_grid = np.full(frames.labels.shape, -1, np.int8)
        has_truth = np.zeros(len(frames), bool)
        ids = np.asarray(frames.session_ids)
        for i, t in enumerate(session_targets or []):
            if t.truth is not None:
                truth_grid[ids == i] = t.truth
                has_truth[ids == i] = True
        world_of = _session_worlds(ids, frames.worlds)
        report["truth"] = truth_comparison(
            probs,
            frames.labels,
            truth_grid,
            has_truth,
            world_of[ids],
            frames.distances_m,
            blocks,
            n_bootstrap=n_bootstrap,
            confidence=confidence,
            seed=seed,
        )
        report["truth"]["sessions_with_truth"] = [
            t.name for t in (session_targets or []) if t.truth is not None
        ]
    text = (json.dumps(report, indent=1) + "\n").encode()
    outputs: dict[Path, bytes] = {}
    if json_out is not None:
        outputs[json_out] = text
    if out_dir is not None:
        outputs[out_dir / "report.json"] = text
        outputs[out_dir / "auc_heatmap.png"] = _png(_heatmap_figure(report))
        outputs[out_dir / "auc_vs_distance.png"] = _png(_auc_vs_distance_figure(report))
        if truth:
            outputs[out_dir / "auc_truth.png"] = _png(
                _truth_figure(report["truth"], report["distances_m"])
            )
    _write_files(outputs)
    return report


def evaluate_config(cfg: EvalConfig) -> dict[str, Any]:
    """`robot-ssl eval` in-process: `evaluate` with the settings of `cfg` (the report)."""
    if not cfg.model or not cfg.data:
        raise EvalError("eval needs a model and data")
    return evaluate(
        cfg.model,
        cfg.data,
        labels_dir=cfg.labels_dir,
        cache_dir=cfg.cache_dir,
        json_out=cfg.json_out,
        out_dir=cfg.out_dir,
        n_bootstrap=cfg.bootstrap,
        confidence=cfg.confidence,
        seed=cfg.seed,
        batch_size=cfg.batch_size,
        num_threads=cfg.num_threads,
        progress=cfg.progress,
        truth=cfg.truth,
        block_s=cfg.block_s,
        allow_viewpoint_mismatch=cfg.allow_viewpoint_mismatch,
        bootstrap_unit=cfg.bootstrap_unit,
    )


def _fmt(v: float | None) -> str:
    return "  n/a" if v is None else f"{v:.3f}"


def _with_ci(v: float | None, ci: list[float | None]) -> str:
    lo, hi = ci
    return f"{_fmt(v)} [{_fmt(lo)}, {_fmt(hi)}]" if lo is not None else f"{_fmt(v)}"


def _print_truth_table(comparison: dict) -> None:
    """World x band: AUC vs the auto-labels and vs simulator truth, with intervals."""
    boot = comparison["bootstrap"]
    unit = "sessions per world" if boot["unit"] == "session" else f"{boot['block_s']:g} s blocks"
    print(f"AUC vs auto-labels and vs simulator truth ({100 * boot['confidence']:g}% CI, {unit})")
    print(f"  {'world':<16} {'band':>6}  {'vs labels':<22}  vs truth")
    groups = {"all": comparison["overall"], **comparison["by_world"]}
    for name, g in groups.items():
        rows = [("mean", "mean_auc", "mean_auc_ci", None)]
        rows += [(b, "auc_by_band", "auc_by_band_ci", b) for b in g["labels"]["auc_by_band"]]
        for i, (label, key, ci_key, band) in enumerate(rows):
            cells = []
            for part in (g["labels"], g["truth"]):
                if part is None:
                    cells.append("no truth")
                elif band is None:
                    cells.append(_with_ci(part[key], part[ci_key]))
                else:
                    cells.append(_with_ci(part[key][band], part[ci_key][band]))
            world = name if i == 0 else ""
            print(f"  {world:<16} {label:>6}  {cells[0]:<22}  {cells[1]}")


def run_eval(cfg: EvalConfig) -> dict[str, Any]:
    """`robot-ssl eval` in-process: the recovered sessions said on stderr, `evaluate_config`,
    then the mean AUC, the AUC per band and (with `truth`) the world x band table on
    stdout; returns the report."""
    from robot_ssl.io.session_summary import print_recovered_notes

    print_recovered_notes(list(cfg.data), "eval")
    report = evaluate_config(cfg)
    lo, hi = report["mean_auc_ci"]
    ci = f" [{_fmt(lo)}, {_fmt(hi)}]" if lo is not None else ""
    print(
        f"{report['num_frames']} frames, {report['num_cells_defined']}/{report['num_cells']} cells "
        f"with both classes ({report['num_cells_single_class']} single-class)"
    )
    print(f"mean AUC {_fmt(report['mean_auc'])}{ci}")
    for band, v in report["auc_by_band"].items():
        lo, hi = report["auc_by_band_ci"][band]
        ci = f" [{_fmt(lo)}, {_fmt(hi)}]" if lo is not None else ""
        print(f"  {band:>6} cm  {_fmt(v)}{ci}")
    if "truth" in report:
        _print_truth_table(report["truth"])
    return report
