"""Known-answer tests of the auto-labeller (robot_ssl.labelling.labeller) on synthetic streams."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from robot_ssl.core.geometry import compose, interpolate_poses, relative, wrap_angle
from robot_ssl.labelling.labeller import (
    LabelConfig,
    LabelConfigError,
    LabelInputError,
    NothingToLabelError,
    compare_with_truth,
    compute_labels,
    distance_grid,
    label_stats,
    truth_labels,
)

S_NS = 1_000_000_000
MS_NS = 1_000_000


def straight_odometry(
    t_end_s: float, speed_m_s: float, rate_hz: float = 100.0, start=(0.0, 0.0, 0.0)
) -> tuple[np.ndarray, np.ndarray]:
    """Odometry of a robot driving straight from `start` at constant speed."""
    t = np.arange(0, round(t_end_s * S_NS) + 1, round(S_NS / rate_hz), dtype=np.int64)
    s = speed_m_s * t / S_NS
    local = np.column_stack([s, np.zeros_like(s), np.zeros_like(s)])
    return t, compose(np.asarray(start, dtype=float), local)


def poses_from_twists(t_ns: np.ndarray, v_m_s: np.ndarray, w_rad_s: np.ndarray) -> np.ndarray:
    """Integrate piecewise-constant (v, w) held over each interval (Euler at the left end)."""
    dt = np.diff(t_ns) / S_NS
    theta = np.concatenate([[0.0], np.cumsum(w_rad_s[:-1] * dt)])
    x = np.concatenate([[0.0], np.cumsum(v_m_s[:-1] * np.cos(theta[:-1]) * dt)])
    y = np.concatenate([[0.0], np.cumsum(v_m_s[:-1] * np.sin(theta[:-1]) * dt)])
    return np.column_stack([x, y, wrap_angle(theta)])


def reference_labels(cam_t, prox_t, values, odom_t, odom_pose, cfg: LabelConfig):
    """Slow, obviously-correct labeller: plain loops over frames, samples and bins."""
    gap_ns = round(cfg.max_gap_s * S_NS)
    horizon_ns = round(cfg.horizon_s * S_NS)
    fpose = interpolate_poses(odom_t, odom_pose, cam_t, gap_ns)
    spose = interpolate_poses(odom_t, odom_pose, prox_t, gap_ns)
    dist = list(cfg.distances_m)
    match = np.full((len(cam_t), len(dist)), -1, dtype=np.int64)
    for f, t0 in enumerate(cam_t):
        if np.isnan(fpose[f]).any():
            continue
        best: list[tuple[float, int] | None] = [None] * len(dist)
        ahead = 0.0  # furthest forward displacement seen so far (the pose at t counts)
        for m, t1 in enumerate(prox_t):
            if t1 < t0 or t1 > t0 + horizon_ns:
                continue
            # any odometry interval overlapping (t0, t1) longer than the gap limit?
            overlapping = (odom_t[:-1] < t1) & (odom_t[1:] > t0)
            if np.any(np.diff(odom_t)[overlapping] > gap_ns):
                break
            if np.isnan(spose[m]).any():
                continue
            dx, dy, dth = relative(fpose[f], spose[m])
            forward_ok = dx >= ahead - cfg.max_backtrack_m
            ahead = max(ahead, dx)
            if not forward_ok or abs(dy) >= cfg.tol_y_m or abs(dth) >= cfg.tol_theta_rad:
                continue
            for k, d in enumerate(dist):
                err = abs(dx - d)
                if err < cfg.tol_d_m and (best[k] is None or err < best[k][0]):
                    best[k] = (err, m)
        for k, b in enumerate(best):
            if b is not None:
                match[f, k] = b[1]
    sel = values[:, list(cfg.sensor_indices)]
    labels = np.full((len(cam_t), len(cfg.sensor_indices), len(dist)), -1, dtype=np.int8)
    for f in range(len(cam_t)):
        for k in range(len(dist)):
            if match[f, k] >= 0:
                labels[f, :, k] = sel[match[f, k]] > cfg.threshold
    return match, labels


# -- straight approach to a wall -----------------------------------------------------------


def test_straight_approach_to_wall_gives_exact_grid():
    # 0.1 m/s along +x for 4 s: proximity every 100 ms = every 1 cm exactly.
    odom_t, pose = straight_odometry(4.0, 0.1)
    prox_t = np.arange(0, 4 * S_NS + 1, 100 * MS_NS, dtype=np.int64)
    x_s = 0.1 * prox_t / S_NS
    wall_x = 0.555  # front-centre sensor (8 cm ahead of the axle) sees < 14 cm from x > 0.335
    values = np.zeros((prox_t.size, 7), dtype=np.int16)
    values[:, 2] = np.where(wall_x - (x_s + 0.08) < 0.14, 1234, 0)
    # frames at x = 0.002 + 0.01 j: the nearest sample for bin d > 0 is 2 mm behind d; for
    # d = 0 the sample 2 mm behind is before the frame, so the one 8 mm ahead is used
    cam_t = (20 + 100 * np.arange(10)) * MS_NS
    grid = compute_labels(cam_t, prox_t, values, odom_t, pose)
    j = np.arange(10)[:, None]
    i = np.arange(31)[None, :]
    sample = j + np.maximum(i, 1)  # sample x = 0.01 * sample
    expected_centre = (sample >= 34).astype(np.int8)  # wall seen from x > 0.335
    assert grid.labels.shape == (10, 5, 31)
    np.testing.assert_array_equal(grid.labels[:, 2, :], expected_centre)
    for s in (0, 1, 3, 4):
        np.testing.assert_array_equal(grid.labels[:, s, :], 0)
    np.testing.assert_array_equal(grid.readings[:, 2, :], expected_centre.astype(int) * 1234)
    np.testing.assert_array_equal(grid.match_index, sample)
    np.testing.assert_array_equal(grid.match_t_ns, prox_t[sample])
    np.testing.assert_allclose(
        grid.match_offset[..., 0], 0.01 * sample - 0.01 * j - 0.002, atol=1e-6
    )
    np.testing.assert_allclose(grid.match_offset[..., 1:], 0.0, atol=1e-6)
    stats = label_stats(grid.labels)
    assert stats.known_fraction == 1.0
    assert stats.positive_cells == int(expected_centre.sum())


def test_cells_beyond_the_end_of_the_drive_are_unknown():
    odom_t, pose = straight_odometry(2.0, 0.1)  # drives 0.20 m
    prox_t = np.arange(50, 2000, 100, dtype=np.int64) * MS_NS  # x = 0.005, 0.015, ..., 0.195
    values = np.zeros((prox_t.size, 7), dtype=np.int16)
    grid = compute_labels(np.array([0]), prox_t, values, odom_t, pose)
    known = grid.labels[0, 0] >= 0
    np.testing.assert_array_equal(known, np.arange(31) <= 20)


def test_turning_robot_gives_no_labels_beyond_the_turn():
    # 1 s straight at 0.1 m/s, 1 s turning in place by 90 deg, 3 s straight again
    t = np.arange(0, 5 * S_NS + 1, 10 * MS_NS, dtype=np.int64)
    ts = t / S_NS
    v = np.where((ts < 1) | (ts >= 2), 0.1, 0.0)
    w = np.where((ts >= 1) & (ts < 2), math.pi / 2, 0.0)
    pose = poses_from_twists(t, v, w)
    prox_t = np.arange(50, 5000, 100, dtype=np.int64) * MS_NS  # 5 mm off the bin centres
    values = np.full((prox_t.size, 7), 7, dtype=np.int16)
    grid = compute_labels(np.array([0, 200 * MS_NS]), prox_t, values, odom_t_ns := t, pose)
    del odom_t_ns
    # frame 0 at x=0: bins up to the turn point (0.10 m) only; frame 1 at x=0.02: up to 0.08
    np.testing.assert_array_equal(grid.labels[0, 0] >= 0, np.arange(31) <= 10)
    np.testing.assert_array_equal(grid.labels[1, 0] >= 0, np.arange(31) <= 8)
    assert np.all(grid.match_t_ns[grid.match_t_ns >= 0] <= 1100 * MS_NS)


@pytest.mark.parametrize("heading", [math.pi, -math.pi + 1e-9, math.pi - 1e-9])
def test_heading_near_pi_labels_like_heading_zero(heading):
    rng = np.random.default_rng(3)
    odom_t, pose0 = straight_odometry(4.0, 0.1)
    pose0[:, 2] += rng.normal(0, 1e-3, odom_t.size)  # heading jitter that crosses +-pi
    moved = compose(np.array([1.5, -2.0, heading]), pose0)
    assert moved[:, 2].min() < -3 and moved[:, 2].max() > 3  # it does wrap
    prox_t = np.arange(0, 4 * S_NS + 1, 100 * MS_NS, dtype=np.int64)
    values = rng.integers(0, 3, (prox_t.size, 7)).astype(np.int16)
    cam_t = np.arange(0, 2 * S_NS, 33 * MS_NS, dtype=np.int64)
    a = compute_labels(cam_t, prox_t, values, odom_t, pose0)
    b = compute_labels(cam_t, prox_t, values, odom_t, moved)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.match_index, b.match_index)
    assert (b.labels >= 0).mean() > 0.9


def test_stationary_robot_labels_only_d0():
    odom_t = np.arange(0, 10 * S_NS + 1, 10 * MS_NS, dtype=np.int64)
    pose = np.tile([0.3, -0.2, 2.0], (odom_t.size, 1))
    prox_t = np.arange(5 * MS_NS, 10 * S_NS, 100 * MS_NS, dtype=np.int64)
    values = np.zeros((prox_t.size, 7), dtype=np.int16)
    values[:, 1] = 50
    cam_t = np.arange(0, 9 * S_NS, 33 * MS_NS, dtype=np.int64)
    grid = compute_labels(cam_t, prox_t, values, odom_t, pose)
    np.testing.assert_array_equal(grid.labels[:, :, 1:], -1)
    np.testing.assert_array_equal(grid.labels[:, :, 0], [[0, 1, 0, 0, 0]] * cam_t.size)
    # the earliest sample at or after the frame wins the tie
    np.testing.assert_array_equal(grid.match_index[:, 0], np.searchsorted(prox_t, cam_t))


def test_no_match_across_an_odometry_gap():
    odom_t, pose = straight_odometry(4.0, 0.1)
    keep = (odom_t <= 1 * S_NS) | (odom_t >= 2 * S_NS)  # no odometry in (1 s, 2 s)
    odom_t, pose = odom_t[keep], pose[keep]
    prox_t = np.arange(50, 4000, 100, dtype=np.int64) * MS_NS
    values = np.zeros((prox_t.size, 7), dtype=np.int16)
    cam_t = np.arange(0, 4 * S_NS, 33 * MS_NS, dtype=np.int64)
    grid = compute_labels(cam_t, prox_t, values, odom_t, pose)
    before = cam_t < S_NS
    inside = (cam_t > S_NS) & (cam_t < 2 * S_NS)
    after = cam_t >= 2 * S_NS
    mt = grid.match_t_ns
    assert np.all(mt[before][mt[before] >= 0] <= S_NS)
    assert np.all(grid.labels[inside] == -1)
    assert np.all(mt[after][mt[after] >= 0] >= 2 * S_NS)
    # the frame at 0 knows only the first 10 cm (+ tolerance): what was driven before the gap
    np.testing.assert_array_equal(grid.labels[0, 0] >= 0, np.arange(31) <= 10)
    # and never uses a sample whose own pose falls in the gap
    assert not np.any(np.isin(mt, prox_t[(prox_t > S_NS) & (prox_t < 2 * S_NS)]))


def test_frames_outside_the_odometry_are_unknown():
    odom_t, pose = straight_odometry(4.0, 0.1)
    odom_t = odom_t + 2 * S_NS
    prox_t = np.arange(0, 8 * S_NS + 1, 100 * MS_NS, dtype=np.int64)
    values = np.zeros((prox_t.size, 7), dtype=np.int16)
    cam_t = np.arange(0, 8 * S_NS, 33 * MS_NS, dtype=np.int64)
    grid = compute_labels(cam_t, prox_t, values, odom_t, pose)
    outside = (cam_t < 2 * S_NS) | (cam_t > 6 * S_NS)
    assert np.all(grid.labels[outside] == -1)
    assert np.all(grid.labels[~outside][:, :, 0] >= 0)


def test_backward_motion_never_labels_the_forward_grid():
    # forward 0 -> 0.2 m in 2 s, then back to 0 in 2 s
    odom_t = np.arange(0, 4 * S_NS + 1, 10 * MS_NS, dtype=np.int64)
    ts = odom_t / S_NS
    x = np.where(ts <= 2, 0.1 * ts, 0.2 - 0.1 * (ts - 2))
    pose = np.column_stack([x, 0 * x, 0 * x])
    # forward-pass samples sit 4 mm past the bin centres, backward-pass ones exactly on them:
    # without the rule the backward pass (error 0) would win every bin.
    fwd_t = np.arange(40, 2000, 100) * MS_NS
    back_t = np.arange(2100, 4001, 100) * MS_NS
    prox_t = np.concatenate([fwd_t, back_t])
    values = np.zeros((prox_t.size, 7), dtype=np.int16)
    values[: fwd_t.size] = 100
    values[fwd_t.size :] = 200
    cam_t = np.arange(0, 4 * S_NS, 33 * MS_NS, dtype=np.int64)
    grid = compute_labels(cam_t, prox_t, values, odom_t, pose)
    r0 = grid.readings[0, 0]
    np.testing.assert_array_equal(r0[:19], 100)  # d = 0 .. 0.18 from the forward pass
    assert r0[19] in (100, 200)  # 0.19 m: within max_backtrack_m of the turning point
    assert r0[20] == 100
    np.testing.assert_array_equal(r0[21:], -1)
    # frames taken while reversing: nothing beyond d = 0
    reversing = cam_t > 2 * S_NS + 50 * MS_NS
    assert np.all(grid.labels[reversing][:, :, 1:] == -1)
    # without the rule (huge backtrack allowance) the backward pass would be used
    loose = compute_labels(cam_t, prox_t, values, odom_t, pose, LabelConfig(max_backtrack_m=10.0))
    assert np.all(loose.readings[0, 0, 1:19] == 200)


def test_reversing_then_driving_forward_labels_from_the_forward_drive():
    # back 0.1 m, then forward 0.5 m: the places ahead of the frame are reached driving forward
    odom_t = np.arange(0, 6 * S_NS + 1, 10 * MS_NS, dtype=np.int64)
    ts = odom_t / S_NS
    x = np.where(ts <= 1, -0.1 * ts, -0.1 + 0.1 * (ts - 1))
    pose = np.column_stack([x, 0 * x, 0 * x])
    prox_t = np.arange(0, 6 * S_NS + 1, 100 * MS_NS, dtype=np.int64)
    values = np.zeros((prox_t.size, 7), dtype=np.int16)
    grid = compute_labels(np.array([0]), prox_t, values, odom_t, pose)
    assert np.all(grid.labels[0] >= 0)
    assert np.all(grid.match_t_ns[0, 1:] > 2 * S_NS)


def test_samples_before_the_frame_are_never_used():
    odom_t, pose = straight_odometry(4.0, 0.1)
    prox_t = np.arange(0, 4 * S_NS + 1, 100 * MS_NS, dtype=np.int64)
    values = np.zeros((prox_t.size, 7), dtype=np.int16)
    cam_t = np.arange(0, 4 * S_NS, 7 * MS_NS, dtype=np.int64)
    grid = compute_labels(cam_t, prox_t, values, odom_t, pose)
    known = grid.match_t_ns >= 0
    assert np.all(grid.match_t_ns[known] >= np.broadcast_to(cam_t[:, None], known.shape)[known])


def test_horizon_limits_matches():
    odom_t, pose = straight_odometry(10.0, 0.02)  # slow: 2 cm/s
    prox_t = np.arange(50, 10000, 100, dtype=np.int64) * MS_NS  # x = 0.001 + 0.002 k
    values = np.zeros((prox_t.size, 7), dtype=np.int16)
    grid = compute_labels(np.array([0]), prox_t, values, odom_t, pose, LabelConfig(horizon_s=5.0))
    # 5 s at 2 cm/s = 10 cm (+ tolerance)
    np.testing.assert_array_equal(grid.labels[0, 0] >= 0, np.arange(31) <= 10)


# -- against the slow reference --------------------------------------------------------------


def random_session(seed: int, duration_s: float = 30.0):
    """Random wander: straight runs, stops, reversals, turns, odometry gaps, jittered clocks."""
    rng = np.random.default_rng(seed)
    dt = rng.integers(5, 15, int(duration_s * 110)) * MS_NS
    gaps = rng.random(dt.size) < 0.004
    dt[gaps] += rng.integers(300, 1500, gaps.sum()) * MS_NS  # some longer than max_gap
    odom_t = np.cumsum(dt)
    n_seg = 40
    cuts = np.sort(rng.integers(0, odom_t.size, n_seg))
    seg = np.searchsorted(cuts, np.arange(odom_t.size), side="right")
    kind = rng.integers(0, 5, n_seg + 1)
    v = np.choose(kind, [0.1, 0.05, 0.0, -0.08, 0.1])[seg] + rng.normal(0, 0.002, odom_t.size)
    w = np.choose(kind, [0.0, 0.02, 1.5, 0.0, -0.8])[seg] + rng.normal(0, 0.01, odom_t.size)
    v[np.choose(kind, [0, 0, 1, 0, 0])[seg] == 1] = 0.0  # exact stops: ties in the error
    pose = poses_from_twists(odom_t, v, w)
    pose = compose(np.array([0.5, 0.5, rng.uniform(-np.pi, np.pi)]), pose)
    t_end = int(odom_t[-1])
    prox_t = np.sort(rng.integers(-S_NS, t_end + S_NS, int(duration_s * 10)))
    prox_t[5] = prox_t[4]  # equal timestamps happen
    values = rng.integers(0, 4, (prox_t.size, 7)).astype(np.int16)
    cam_t = np.sort(rng.integers(-S_NS, t_end + S_NS, int(duration_s * 30)))
    return cam_t, prox_t, values, odom_t, pose


@pytest.mark.parametrize("seed", range(6))
def test_random_trajectories_match_the_reference(seed):
    cam_t, prox_t, values, odom_t, pose = random_session(seed)
    cfg = LabelConfig(
        sensor_indices=(0, 2, 6),
        distances_m=distance_grid(0.0, 0.2, 0.02),
        tol_d_m=0.015,
        tol_y_m=0.02,
        tol_theta_rad=0.3,
        threshold=1,
        horizon_s=4.0,
        max_gap_s=0.25,
        max_backtrack_m=0.005 * (seed % 3),
    )
    grid = compute_labels(cam_t, prox_t, values, odom_t, pose, cfg, chunk_cells=500 + 997 * seed)
    match, labels = reference_labels(cam_t, prox_t, values, odom_t, pose, cfg)
    assert (match >= 0).sum() > 200  # the test exercises real matches
    np.testing.assert_array_equal(grid.match_index, match)
    np.testing.assert_array_equal(grid.labels, labels)
    known = match >= 0
    np.testing.assert_array_equal(grid.match_t_ns[known], prox_t[match[known]])
    assert np.all(grid.match_t_ns[~known] == -1)
    assert np.all(np.isnan(grid.match_offset[~known]))
    fp = interpolate_poses(odom_t, pose, cam_t, round(cfg.max_gap_s * S_NS))
    sp = interpolate_poses(odom_t, pose, prox_t, round(cfg.max_gap_s * S_NS))
    rows = np.nonzero(known)[0]
    np.testing.assert_allclose(
        grid.match_offset[known], relative(fp[rows], sp[match[known]]), atol=1e-6
    )


def test_default_config_on_a_random_trajectory_matches_the_reference():
    cam_t, prox_t, values, odom_t, pose = random_session(11, duration_s=20.0)
    cfg = LabelConfig(horizon_s=3.0)
    grid = compute_labels(cam_t, prox_t, values, odom_t, pose, cfg)
    match, labels = reference_labels(cam_t, prox_t, values, odom_t, pose, cfg)
    assert (match >= 0).sum() > 50
    np.testing.assert_array_equal(grid.match_index, match)
    np.testing.assert_array_equal(grid.labels, labels)


def test_result_does_not_depend_on_chunking():
    cam_t, prox_t, values, odom_t, pose = random_session(5, duration_s=60.0)
    cfg = LabelConfig(tol_theta_rad=0.2)
    a = compute_labels(cam_t, prox_t, values, odom_t, pose, cfg, chunk_cells=1)
    b = compute_labels(cam_t, prox_t, values, odom_t, pose, cfg, chunk_cells=1 << 24)
    np.testing.assert_array_equal(a.match_index, b.match_index)
    np.testing.assert_array_equal(a.readings, b.readings)


@pytest.mark.parametrize("offset_s", [0.085, -0.03])
def test_camera_offset_labels_the_exposure_times(offset_s):
    """Frames stamped late by offset_s are labelled as at their exposure; t_ns keeps the stamps."""
    cam_t, prox_t, values, odom_t, pose = random_session(4)
    cfg = LabelConfig(tol_theta_rad=0.2)
    exposure = compute_labels(cam_t, prox_t, values, odom_t, pose, cfg)
    late = cam_t + round(offset_s * S_NS)
    a = compute_labels(late, prox_t, values, odom_t, pose, cfg, camera_offset_s=offset_s)
    b = compute_labels(late, prox_t, values, odom_t, pose, replace(cfg, camera_offset=offset_s))
    for grid in (a, b):
        np.testing.assert_array_equal(grid.t_ns, late)
        np.testing.assert_array_equal(grid.match_index, exposure.match_index)
        np.testing.assert_array_equal(grid.labels, exposure.labels)
    # "auto" and "spec" are resolved by label_session: the pure function applies none
    auto = compute_labels(late, prox_t, values, odom_t, pose, cfg)
    assert not np.array_equal(auto.match_index, exposure.match_index)


def test_progress_reports_every_frame():
    cam_t, prox_t, values, odom_t, pose = random_session(2)
    done = []
    compute_labels(cam_t, prox_t, values, odom_t, pose, chunk_cells=2000, progress=done.append)
    assert sum(done) == cam_t.size and len(done) > 1


# -- inputs and config ----------------------------------------------------------------------


def _streams():
    odom_t, pose = straight_odometry(4.0, 0.1)
    prox_t = np.arange(0, 4 * S_NS + 1, 100 * MS_NS, dtype=np.int64)
    values = np.zeros((prox_t.size, 7), dtype=np.int16)
    cam_t = np.arange(0, 4 * S_NS, 33 * MS_NS, dtype=np.int64)
    return cam_t, prox_t, values, odom_t, pose


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: (s[0][:0], *s[1:]), "no camera frames"),
        (lambda s: (s[0], s[1][:0], s[2][:0], *s[3:]), "no proximity"),
        (lambda s: (*s[:3], s[3][:0], s[4][:0]), "no odometry"),
        (lambda s: (*s[:3], s[3][:1], s[4][:1]), "no odometry"),
        (lambda s: (*s[:3], s[3][:50], s[4][:50]), "too short"),
        (lambda s: (s[0][:3], s[1][:5], s[2][:5], *s[3:]), "too short"),
        (lambda s: (s[0] + 10 * S_NS, *s[1:]), "no camera frame within"),
    ],
)
def test_nothing_to_label_gives_a_reason(change, message):
    with pytest.raises(NothingToLabelError, match=message):
        compute_labels(*change(_streams()))


def test_bad_inputs_are_rejected():
    cam_t, prox_t, values, odom_t, pose = _streams()
    with pytest.raises(LabelInputError, match="not sorted"):
        compute_labels(cam_t, prox_t[::-1], values, odom_t, pose)
    with pytest.raises(LabelInputError, match="not sorted"):
        compute_labels(cam_t, prox_t, values, odom_t[::-1], pose)
    with pytest.raises(LabelInputError, match="proximity values"):
        compute_labels(cam_t, prox_t, values[:-1], odom_t, pose)
    with pytest.raises(LabelInputError, match="out of range"):
        compute_labels(cam_t, prox_t, values[:, :3], odom_t, pose)
    with pytest.raises(LabelInputError, match="integer nanoseconds"):
        compute_labels(cam_t / 1e9, prox_t, values, odom_t, pose)


def test_duplicate_odometry_timestamps_are_tolerated():
    cam_t, prox_t, values, odom_t, pose = _streams()
    dup_t = np.insert(odom_t, 51, odom_t[50])
    dup_p = np.insert(pose, 51, pose[50] + 1.0, axis=0)  # the first of equal stamps is kept
    a = compute_labels(cam_t, prox_t, values, odom_t, pose)
    b = compute_labels(cam_t, prox_t, values, dup_t, dup_p)
    np.testing.assert_array_equal(a.match_index, b.match_index)


def test_default_config_is_the_original_one():
    cfg = LabelConfig()
    assert cfg.sensor_indices == (0, 1, 2, 3, 4)
    assert len(cfg.distances_m) == 31 and cfg.distances_m[0] == 0.0
    assert cfg.distances_m[-1] == 0.3 and cfg.distances_m[7] == 0.07
    assert (cfg.tol_d_m, cfg.tol_y_m, cfg.tol_theta_rad, cfg.threshold) == (0.01, 0.01, 0.05, 0)


def test_config_round_trips_through_json_and_yaml(tmp_path):
    cfg = LabelConfig(sensor_indices=(2,), distances_m=(0.0, 0.05, 0.1), tol_d_m=0.02)
    assert LabelConfig.from_json(cfg.to_json()) == cfg
    p = tmp_path / "label.yaml"
    p.write_text(
        "sensor_indices: [1, 2]\n"
        "distances_m: {start: 0.0, stop: 0.1, step: 0.02}\n"
        "tol_theta_rad: 0.1\nthreshold: 100\n"
    )
    loaded = LabelConfig.load(p)
    assert loaded.sensor_indices == (1, 2)
    assert loaded.distances_m == (0.0, 0.02, 0.04, 0.06, 0.08, 0.1)
    assert loaded.tol_theta_rad == 0.1 and loaded.threshold == 100 and loaded.tol_d_m == 0.01
    j = tmp_path / "label.json"
    j.write_text(cfg.to_json())
    assert LabelConfig.load(j) == cfg
    assert cfg.with_overrides(tol_d_m=None, threshold=5).threshold == 5


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"tol_d": 0.01}, "unknown keys"),
        ({"tol_d_m": 0}, r"tol_d_m: must be a finite number in \(0, 10\], got 0"),
        ({"distances_m": [0.1, 0.05]}, "strictly increasing"),
        ({"distances_m": [-0.1, 0.05]}, r"distances_m\[0\]: must be a finite number in \[0, 10\]"),
        ({"distances_m": {"start": 0, "stop": 0.1}}, "start, stop, step"),
        ({"distances_m": {"start": 0, "stop": 0.1, "step": 0}}, "step must be > 0"),
        ({"sensor_indices": []}, "empty"),
        ({"sensor_indices": [1, 1]}, "distinct"),
        ({"sensor_indices": "012"}, "must be a list"),
        ({"threshold": 0.5}, "integer"),
        ({"horizon_s": "long"}, "label config"),
        ({"max_backtrack_m": -1}, r"max_backtrack_m: must be a finite number in \[0, 10\]"),
    ],
)
def test_bad_config_is_rejected(data, message):
    with pytest.raises(LabelConfigError, match=message):
        LabelConfig.from_dict(data)


def test_bad_config_file_names_the_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("tol_d_m: [1\n")
    with pytest.raises(LabelConfigError, match=r"bad\.yaml"):
        LabelConfig.load(p)
    p.write_text("- 1\n- 2\n")
    with pytest.raises(LabelConfigError, match="mapping"):
        LabelConfig.load(p)
    with pytest.raises(LabelConfigError, match="cannot read"):
        LabelConfig.load(tmp_path / "missing.yaml")


# -- agreement with the truth -----------------------------------------------------------------


def _wall_truth(odom_scale: float):
    """Straight approach to a wall; perfect IR readings; odometry scaled by odom_scale."""
    t_true, pose_true = straight_odometry(4.0, 0.1, rate_hz=50.0)
    wall_x = 0.555
    dist = np.full((t_true.size, 7), np.inf)
    dist[:, 2] = wall_x - (pose_true[:, 0] + 0.08)
    prox_t = np.arange(0, 4 * S_NS + 1, 100 * MS_NS, dtype=np.int64)
    d_at_prox = np.interp(prox_t, t_true, dist[:, 2])
    values = np.zeros((prox_t.size, 7), dtype=np.int16)
    values[:, 2] = np.where(d_at_prox < 0.14, 900, 0)
    odom = pose_true.copy()
    odom[:, 0] *= odom_scale
    cam_t = np.arange(0, 2 * S_NS, 33 * MS_NS, dtype=np.int64)
    return cam_t, prox_t, values, t_true, odom, pose_true, dist


def test_truth_agreement_is_perfect_with_perfect_odometry():
    cam_t, prox_t, values, t_true, odom, pose_true, dist = _wall_truth(1.0)
    grid = compute_labels(cam_t, prox_t, values, t_true, odom)
    truth = truth_labels(cam_t, t_true, pose_true, dist, 0.14)
    agreement = compare_with_truth(grid.labels, truth.labels)
    assert agreement.compared > 1000
    assert agreement.agreement == 1.0
    assert agreement.true_positive > 0 and agreement.precision == 1.0 and agreement.recall == 1.0
    assert np.all(np.nan_to_num(agreement.per_cell_agreement, nan=1.0) == 1.0)


def test_truth_agreement_degrades_with_odometry_scale_error():
    cam_t, prox_t, values, t_true, odom, pose_true, dist = _wall_truth(0.85)
    grid = compute_labels(cam_t, prox_t, values, t_true, odom)
    truth = truth_labels(cam_t, t_true, pose_true, dist, 0.14)
    agreement = compare_with_truth(grid.labels, truth.labels)
    # odometry says the robot went less far than it did: obstacles appear too close
    assert agreement.false_positive > 0
    assert 0.5 < agreement.agreement < 1.0
    assert agreement.summary()["compared"] == agreement.compared


def test_compare_with_truth_counts():
    labels = np.array([[[1, 0, -1, 1, 0, -1]]], dtype=np.int8)
    truth = np.array([[[1, 1, 1, -1, 0, -1]]], dtype=np.int8)
    a = compare_with_truth(labels, truth)
    assert (a.compared, a.agree, a.label_only, a.truth_only) == (3, 2, 1, 1)
    assert (a.true_positive, a.false_positive, a.false_negative) == (1, 0, 1)
    assert a.precision == 1.0 and a.recall == 0.5
    with pytest.raises(LabelInputError):
        compare_with_truth(labels, truth[:, :, :3])
