"""State-consistency loss (Nava et al., RA-L 2021): predictions of one place seen from two
frames related by odometry must agree.

Driving straight, the cell (sensor s, distance d) of frame t1 describes the same place as
the cell (s, d - shift) of a frame t2 taken `shift` grid steps further along the heading.
:func:`match_pairs` pairs each frame with the first later frame of its session at least
`shift_m` ahead, kept only when the drive between them is straight: lateral offset and
heading change within the labeller's tolerances (LabelConfig.tol_y_m, tol_theta_rad, the
same `relative` pose geometry that maps poses to cells). :func:`consistency_loss` is the
mean squared difference of the two frames' probabilities over the matched cells.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["SHIFT_M", "Pairs", "consistency_loss", "frame_poses", "match_pairs"]

SHIFT_M = 0.05  # how far ahead (along the heading) the second frame of a pair is, at least
MAX_AHEAD_FRAMES = 90  # the furthest later frame looked at (3 s at 30 fps)


@dataclass(frozen=True)
class Pairs:
    """Frame pairs: cell (s, d) of frame `anchor[i]` is cell (s, d - shift[i]) of `partner[i]`."""

    anchor: np.ndarray  # int64 (P,) frame rows
    partner: np.ndarray  # int64 (P,) frame rows, later in the same session
    shift: np.ndarray  # int64 (P,) grid steps travelled, >= 1

    def __len__(self) -> int:
        return len(self.anchor)


def frame_poses(session: Any) -> np.ndarray:
    """(N, 3) odometry poses (x_m, y_m, theta_rad) of a SessionData's frames at their
    stamps (NaN where the odometry has a gap or does not reach)."""
    from robot_ssl.core.geometry import interpolate_poses
    from robot_ssl.core.odometry import DEFAULT_MAX_GAP_NS
    from robot_ssl.io.session import SessionReader
    from robot_ssl.labelling.session_labels import session_odometry

    with SessionReader(session.path) as reader:
        odom_t, pose = session_odometry(reader)
        cam_t = np.asarray(reader.camera_t_ns)[np.asarray(session.frame_index, np.int64)]
    if len(odom_t) < 2:
        return np.full((len(cam_t), 3), np.nan)
    return interpolate_poses(odom_t, pose, cam_t, DEFAULT_MAX_GAP_NS)


def match_pairs(
    poses: np.ndarray,
    session_ids: np.ndarray,
    distances_m: np.ndarray,
    *,
    shift_m: float = SHIFT_M,
    tol_y_m: float = 0.01,
    tol_theta_rad: float = 0.05,
    max_ahead: int = MAX_AHEAD_FRAMES,
) -> Pairs:
    """Pair each frame with the first later frame of its session >= `shift_m` ahead, on a
    straight drive (see the module docstring). Frames are rows in time order per session;
    the distance grid must be evenly spaced (else no pairs)."""
    from robot_ssl.core.geometry import relative

    poses = np.asarray(poses, np.float64)
    sid = np.asarray(session_ids)
    d = np.asarray(distances_m, np.float64)
    n = len(poses)
    empty = np.zeros(0, np.int64)
    steps = np.diff(d)
    if len(d) < 2 or not np.allclose(steps, steps[0]) or steps[0] <= 0:
        return Pairs(empty, empty, empty)
    step = float(steps[0])
    partner = np.full(n, -1, np.int64)
    shift = np.zeros(n, np.int64)
    for off in range(1, min(max_ahead, n - 1) + 1):
        a = np.flatnonzero(partner < 0)
        a = a[a + off < n]
        rel = relative(poses[a], poses[a + off])
        ahead = (sid[a] == sid[a + off]) & (rel[:, 0] >= shift_m - 1e-9)  # NaN: False
        a, rel = a[ahead], rel[ahead]
        partner[a] = -2  # decided: the first frame far enough ahead, kept only if straight
        straight = (np.abs(rel[:, 1]) < tol_y_m) & (np.abs(rel[:, 2]) < tol_theta_rad)
        k = np.rint(rel[:, 0] / step).astype(np.int64)
        ok = straight & (k >= 1) & (k < len(d))
        partner[a[ok]] = a[ok] + off
        shift[a[ok]] = k[ok]
    anchor = np.flatnonzero(partner >= 0)
    return Pairs(anchor, partner[anchor], shift[anchor])


def consistency_loss(logits_a: Any, logits_p: Any, shift: Any) -> Any:
    """Mean squared difference of sigmoid probabilities over the matched cells: (P, S, D)
    logits of anchors and partners, `shift` (P,) grid steps; zero (with a gradient) when
    no cell matches."""
    import torch

    n_d = logits_a.shape[-1]
    d = torch.arange(n_d, device=logits_a.device)
    src = d.view(1, -1) - shift.view(-1, 1)  # (P, D): partner's distance bin of each cell
    valid = src >= 0
    idx = src.clamp(min=0).unsqueeze(1).expand_as(logits_p)
    moved = torch.gather(torch.sigmoid(logits_p), 2, idx)
    diff = (torch.sigmoid(logits_a) - moved) ** 2
    mask = valid.unsqueeze(1).expand_as(diff)
    if not bool(mask.any()):
        return logits_a.sum() * 0.0
    return diff[mask].mean()
