import numpy as np
import pytest

from robot_ssl.core.geometry import (
    compose,
    interpolate_poses,
    inverse,
    relative,
    se2_exp,
    se2_log,
    segment_ids,
    wrap_angle,
)

rng = np.random.default_rng(0)


def random_poses(n: int) -> np.ndarray:
    return np.column_stack(
        [rng.uniform(-5, 5, n), rng.uniform(-5, 5, n), rng.uniform(-np.pi, np.pi, n)]
    )


def test_wrap_boundaries():
    assert wrap_angle(np.pi) == pytest.approx(np.pi)
    assert wrap_angle(-np.pi) == pytest.approx(np.pi)
    assert wrap_angle(3 * np.pi) == pytest.approx(np.pi)
    assert wrap_angle(-np.pi + 1e-9) == pytest.approx(-np.pi + 1e-9)
    a = rng.uniform(-100, 100, 10_000)
    w = wrap_angle(a)
    assert np.all(w > -np.pi) and np.all(w <= np.pi)
    assert np.allclose(np.cos(w), np.cos(a)) and np.allclose(np.sin(w), np.sin(a))


def test_compose_with_inverse_is_identity():
    p = random_poses(1000)
    assert np.allclose(compose(p, inverse(p)), 0, atol=1e-12)
    assert np.allclose(compose(inverse(p), p), 0, atol=1e-12)


def test_relative_matches_compose_inverse_and_associativity():
    a, b, c = random_poses(500), random_poses(500), random_poses(500)
    assert np.allclose(relative(a, b), compose(inverse(a), b), atol=1e-12)
    assert np.allclose(compose(compose(a, b), c), compose(a, compose(b, c)), atol=1e-9)
    assert np.allclose(compose(a, relative(a, b)), b, atol=1e-9)


def test_log_exp_round_trip_including_small_angles():
    p = random_poses(1000)
    p[:10, 2] = rng.uniform(-1e-8, 1e-8, 10)
    p[:, 2] = wrap_angle(p[:, 2])
    q = se2_exp(se2_log(p))
    assert np.allclose(q, p, atol=1e-9)


def test_interpolation_on_constant_curvature_arc_is_exact():
    radius, omega = 0.4, 0.7  # m, rad/s
    t_ns = np.arange(0, 10_000_000_001, 500_000_000, dtype=np.int64)  # 2 Hz samples

    def arc(t_s):
        th = omega * t_s
        return np.column_stack([radius * np.sin(th), radius * (1 - np.cos(th)), wrap_angle(th)])

    poses = arc(t_ns / 1e9)
    q = np.sort(rng.integers(0, t_ns[-1], 2000))
    got = interpolate_poses(t_ns, poses, q)
    want = arc(q / 1e9)
    assert np.allclose(got[:, :2], want[:, :2], atol=1e-9)
    assert np.allclose(wrap_angle(got[:, 2] - want[:, 2]), 0, atol=1e-9)


def test_interpolation_refuses_gaps_and_outside():
    t = np.array([0, 10, 20, 100, 110], dtype=np.int64)
    p = np.column_stack([t / 100.0, np.zeros(5), np.zeros(5)])
    q = np.array([-1, 0, 5, 15, 50, 105, 110, 111, 20, 100])
    got = interpolate_poses(t, p, q, max_gap_ns=30)
    nan = np.isnan(got[:, 0])
    assert nan.tolist() == [True, False, False, False, True, False, False, True, False, False]
    assert got[8, 0] == pytest.approx(0.2) and got[9, 0] == pytest.approx(1.0)
    assert got[2, 0] == pytest.approx(0.05)
    assert got[5, 0] == pytest.approx(1.05)


def test_segment_ids():
    t = np.array([0, 10, 20, 100, 110, 500])
    assert segment_ids(t, 30).tolist() == [0, 0, 0, 1, 1, 2]
    assert segment_ids(np.array([], dtype=np.int64), 30).size == 0
