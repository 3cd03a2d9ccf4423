"""Range sensors (sonar, ToF, LiDAR beams and sectors) and contact sensors (bumpers) in the
simulated sensor ring, against geometry whose distances are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.errors import SimError
from sim.ir import THYMIO_PROX_POSES, IRParams, IRSensors
from sim.range_sensors import NO_RETURN_MM, sector_offsets

RANGE_POSE = (0.05, 0.0, 0.0)  # a sensor 5 cm ahead of the axle midpoint, facing forward


def ring(segments=(), circles=(), height_m: float = 0.1, **kw) -> IRSensors:
    """A sensor ring against bare geometry: segments (S, 4), circles (C, 3) in m."""
    seg = np.asarray(segments, np.float64).reshape(-1, 4)
    circ = np.asarray(circles, np.float64).reshape(-1, 3)
    return IRSensors(
        IRParams(noise_std=0.0, **kw), seg, np.full(len(seg), height_m), np.ones(len(seg)),
        circ, np.full(len(circ), height_m), np.ones(len(circ)),
    )  # fmt: skip


def wall_at(x_m: float) -> list[tuple[float, float, float, float]]:
    return [(x_m, -5.0, x_m, 5.0)]


@pytest.mark.parametrize("distance_m", [0.03, 0.1, 0.2, 0.499])
def test_a_wall_at_a_known_distance_reads_that_distance_in_mm(distance_m: float):
    sensors = ring(
        wall_at(0.05 + distance_m), poses=(RANGE_POSE,), kinds=("range",), reach_m=(0.5,)
    )
    pose = np.zeros(3)
    assert sensors.values(pose)[0] == round(distance_m * 1000)
    assert sensors.sensed_distances(pose)[0] == pytest.approx(distance_m)
    noisy = [sensors.values(pose, np.random.default_rng(k))[0] for k in range(200)]
    assert abs(np.mean(noisy) - distance_m * 1000) < 1.0  # 2 mm noise, unbiased


def test_nothing_within_the_reach_reads_no_return():
    sensors = ring(wall_at(0.45), poses=(RANGE_POSE,), kinds=("range",), reach_m=(0.3,))
    assert sensors.values(np.zeros(3))[0] == NO_RETURN_MM
    assert sensors.sensed_distances(np.zeros(3))[0] == pytest.approx(0.4)  # truth: any range
    assert ring(poses=(RANGE_POSE,), kinds=("range",)).values(np.zeros(3))[0] == NO_RETURN_MM


def test_a_sector_reads_its_nearest_return_with_one_ray_per_degree():
    assert len(sector_offsets(math.radians(45))) == 45
    assert len(sector_offsets(0.0)) == 1 and sector_offsets(0.0)[0] == 0.0
    post = [(0.05 + 0.2 * math.cos(math.radians(20)), 0.2 * math.sin(math.radians(20)), 0.01)]
    beam = ring(circles=post, poses=(RANGE_POSE,), kinds=("range",), reach_m=(1.0,))
    sector = ring(
        circles=post, poses=(RANGE_POSE,) * 2, kinds=("range", "range"),
        fov_rad=(math.radians(50), math.radians(30)), reach_m=(1.0, 1.0),
    )  # fmt: skip
    assert beam.values(np.zeros(3))[0] == NO_RETURN_MM  # the post is 20 deg off the axis
    wide, narrow = sector.values(np.zeros(3))
    assert abs(wide - 190) <= 3  # the post's near side, 0.2 m - radius
    assert narrow == NO_RETURN_MM  # +-15 deg misses it


def test_a_bumper_is_pressed_while_the_body_touches_within_its_arc():
    kw = dict(
        poses=((0.08, 0.0, 0.0), (-0.08, 0.0, math.pi)),
        kinds=("contact", "contact"),
        fov_rad=(math.pi, math.pi),
        body_radius_m=0.08,
    )
    touching = ring(wall_at(0.0805), **kw)
    assert list(touching.values(np.zeros(3))) == [1, 0]  # front pressed, back not
    gap = touching.sensed_distances(np.zeros(3))
    assert gap[0] == pytest.approx(0.0005, abs=1e-5) and gap[1] == np.inf
    assert list(ring(wall_at(0.1), **kw).values(np.zeros(3))) == [0, 0]
    # a wall at 60 deg to the left touches the front arc, not the back one
    c, s = math.cos(math.radians(60)), math.sin(math.radians(60))
    d = 0.082  # the wall's distance from the body centre along its normal
    side = [(d * c - 5 * s, d * s + 5 * c, d * c + 5 * s, d * s - 5 * c)]
    assert list(ring(side, **kw).values(np.zeros(3))) == [1, 0]


def test_a_mixed_ring_reads_its_ir_sensors_as_an_all_ir_ring_does():
    world = wall_at(0.15)
    ir_only = ring(world)
    mixed = ring(
        world,
        poses=(*THYMIO_PROX_POSES, RANGE_POSE),
        kinds=("ir",) * 7 + ("range",),
        reach_m=(0.14,) * 7 + (0.3,),
    )
    poses = np.array([[0.0, 0.0, 0.0], [0.02, 0.01, 0.1], [0.05, 0.0, -0.2]])
    values = mixed.values_at(poses)
    np.testing.assert_array_equal(values[:, :7], ir_only.values_at(poses))
    th = poses[:, 2]
    along_axis = (0.15 - poses[:, 0] - 0.05 * np.cos(th)) / np.cos(th)
    np.testing.assert_array_equal(values[:, 7], np.rint(along_axis * 1000))
    np.testing.assert_allclose(
        mixed.sensed_distances_at(poses)[:, :7], ir_only.sensed_distances_at(poses)
    )


def test_bad_kinds_and_lengths_are_refused():
    with pytest.raises(SimError, match="unknown sensor kind 'radar'"):
        IRParams(poses=(RANGE_POSE,), kinds=("radar",))
    with pytest.raises(SimError, match=r"ir\.reach_m: 2 entries for 1 sensors"):
        IRParams(poses=(RANGE_POSE,), kinds=("range",), reach_m=(0.1, 0.2))
