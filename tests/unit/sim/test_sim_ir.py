"""Proximity sensors: Enki's response curve at known distances (model="enki"), the
physical model (monotonic fall-off for every obstacle width and angle, Lambert
incidence, reflectance, saturation, range), noise, and the truth (sensed distances)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.errors import SimError
from sim.ir import THYMIO_PROX_POSES, IRParams, IRSensors, ir_response
from sim.raycast import cast_rays
from sim.simulator import Simulator
from sim.world import Arena, Box, Surface, World, load_world


def enki(x_cm: float) -> float:
    m, x0, c = 4505.0, 0.03, 73.0
    if x_cm < x0:
        return m
    if x_cm > 14.0:
        return 0.0
    return m * (c - x0 * x0) / (x_cm * x_cm - 2 * x0 * x_cm + c)


def sensors(world: World, **kw) -> IRSensors:
    g = world.geometry()
    return IRSensors(
        IRParams(**kw), g.segments, g.segments_height_m, g.segments_reflectance,
        g.circles, g.circle_height_m, g.circle_reflectance,
    )  # fmt: skip


def raw_sensors(
    segments=(), circles=(), height_m: float = 0.1, reflectance: float = 1.0, **kw
) -> IRSensors:
    """Sensors against bare geometry (no arena): segments (S, 4), circles (C, 3) in m."""
    seg = np.asarray(segments, np.float64).reshape(-1, 4)
    circ = np.asarray(circles, np.float64).reshape(-1, 3)
    return IRSensors(
        IRParams(noise_std=0.0, **kw), seg, np.full(len(seg), height_m),
        np.full(len(seg), reflectance), circ, np.full(len(circ), height_m),
        np.full(len(circ), reflectance),
    )  # fmt: skip


def robot_poses_for_sensor(k: int, xy: np.ndarray, heading: np.ndarray) -> np.ndarray:
    """Robot poses (N, 3) that put sensor k at world positions xy (N, 2), headings (N,)."""
    lx, ly, lth = THYMIO_PROX_POSES[k]
    th = np.asarray(heading, np.float64) - lth
    c, s = np.cos(th), np.sin(th)
    x = xy[:, 0] - (c * lx - s * ly)
    y = xy[:, 1] - (s * lx + c * ly)
    return np.stack([x, y, th], axis=1)


def assert_monotone(v: np.ndarray, what: str) -> None:
    steps = np.diff(v.astype(np.int64))
    assert np.all(steps <= 0), f"{what}: rises by {steps.max()} at step {steps.argmax()}"


def test_response_function_matches_the_model():
    for x_cm in [0.0, 0.02, 0.5, 1, 2, 4, 6, 8, 10, 12, 13.9, 14.0, 14.01, 20, 100]:
        assert ir_response(x_cm / 100) == pytest.approx(enki(x_cm), rel=1e-12)
    assert ir_response(0.15) == 0.0


def test_model_is_validated():
    assert IRParams().model == "physical"
    with pytest.raises(SimError, match=r"^ir\.model: must be one of physical, enki, got 'x'$"):
        IRParams(model="x")
    with pytest.raises(SimError, match="rays"):
        IRParams(rays=0)
    with pytest.raises(SimError, match=r"ir\.rays: must be an integer"):
        IRParams(rays=9.0)


# A wall at x = 0.5 (the arena's east wall); the robot faces it.
WALL_WORLD = World(arena=Arena(1.0, 1.0, surface=Surface(ir_reflectance=1.0)))


@pytest.mark.parametrize("d_cm", [0.5, 1, 2, 3, 5, 7, 9, 11, 13, 13.9])
def test_enki_front_sensor_reads_the_curve_facing_a_wall(d_cm):
    ir = sensors(WALL_WORLD, noise_std=0.0, model="enki")
    x_sensor = 0.08  # front centre sensor, 8 cm ahead of the axle
    pose = np.array([0.5 - d_cm / 100 - x_sensor, 0.0, 0.0])
    values = ir.values(pose)
    assert values.dtype == np.int16
    assert values[2] == round(enki(d_cm))
    assert values[5] == values[6] == 0  # rear sensors see nothing


def test_physical_front_sensor_reads_close_to_the_curve_facing_a_wall():
    ir = sensors(WALL_WORLD, noise_std=0.0)
    d = np.arange(0.01, 0.1301, 0.001)
    poses = np.stack([0.5 - d - 0.08, 0 * d, 0 * d], axis=1)
    v = ir.values_at(poses)
    rel = v[:, 2] / ir_response(d) - 1.0
    assert np.abs(rel).max() < 0.02  # 0.7 % with the defaults
    assert np.all(v[:, 5:] == 0)


@pytest.mark.parametrize("model", ["physical", "enki"])
@pytest.mark.parametrize("d_cm", [14.5, 20, 40])
def test_zero_beyond_the_range(model, d_cm):
    ir = sensors(WALL_WORLD, noise_std=3.0, model=model)
    pose = np.array([0.5 - d_cm / 100 - 0.08, 0.0, 0.0])
    rng = np.random.default_rng(0)
    for _ in range(20):
        assert ir.values(pose, rng)[2] == 0  # nothing in range: exactly 0, noise or not


def test_physical_range_and_saturation():
    ir = sensors(WALL_WORLD, noise_std=0.0)
    at = lambda d: ir.values(np.array([0.5 - d - 0.08, 0.0, 0.0]))[2]  # noqa: E731
    assert at(0.135) > 1000  # about 14 cm of range facing a white wall
    assert at(0.14) > 0 and at(0.1401) == 0
    assert at(0.0) == at(0.001) == at(0.003) == 4505  # saturates at m near contact
    assert at(0.01) < 4505


def test_enki_angled_sensor_and_reflectance():
    dark = World(arena=Arena(1.0, 1.0, surface=Surface(ir_reflectance=0.5)))
    ir_white = sensors(WALL_WORLD, noise_std=0.0, model="enki")
    ir_dark = sensors(dark, noise_std=0.0, model="enki")
    pose = np.array([0.5 - 0.05 - 0.08, 0.0, 0.0])
    assert ir_dark.values(pose)[2] == round(0.5 * enki(5.0))
    # Rotate so that sensor 1 (19 deg left) faces the wall squarely at 4 cm.
    x, y, th = 0.0756, 0.0261, math.radians(19)
    pose = np.array([0.0, 0.0, -th])
    c, s = math.cos(-th), math.sin(-th)
    sx = pose[0] + c * x - s * y
    pose[0] += 0.5 - 0.04 - sx
    assert ir_white.values(pose)[1] == round(enki(4.0))


def test_physical_reflectance_scales_the_reading():
    wall = [(0.0, -1.0, 0.0, 1.0)]
    white, dark = raw_sensors(wall), raw_sensors(wall, reflectance=0.5)
    for k in range(7):
        for incidence in np.radians([0.0, 30.0]):
            d = np.arange(0.002, 0.15, 0.004)
            xy = np.stack([-d * math.cos(incidence), 0 * d], axis=1)
            poses = robot_poses_for_sensor(k, xy, np.full(len(d), incidence))
            vw, vd = white.values_at(poses)[:, k], dark.values_at(poses)[:, k]
            unsat = vw < 4505  # near contact the white wall saturates at m
            np.testing.assert_allclose(vd[unsat], 0.5 * vw[unsat], atol=1.0)
            assert np.all(vd[~unsat] >= 2252) and np.all((vd > 0) == (vw > 0))


def physical_expected(cos_inc: np.ndarray, t: np.ndarray, ir: IRSensors) -> float:
    """The physical model's reading from per-ray incidence cosines and hit distances (m)."""
    offsets = np.radians(np.linspace(-15, 15, 9))
    w = np.exp(-0.5 * (offsets / math.radians(10)) ** 2)
    f = np.where(t <= 0.14, ir_response(np.where(np.isfinite(t), t, 1.0)), 0.0)
    return min(4505.0, ir.scale * float((w * cos_inc * f).sum() / w.sum()))


@pytest.mark.parametrize("d_cm", [1.0, 4.0, 9.0, 12.0])
def test_physical_incidence_is_lambertian(d_cm):
    """Walls turned by a (ray j at incidence a + offset j) and cylinders (incidence from
    the normal at the hit point) read the weighted mean of cos(incidence) F(t)."""
    d = d_cm / 100
    wall = raw_sensors([(0.0, -1.0, 0.0, 1.0)])
    offsets = np.radians(np.linspace(-15, 15, 9))
    for a in np.radians([0.0, 20.0, 40.0, 60.0]):
        poses = robot_poses_for_sensor(2, np.array([[-d, 0.0]]), np.array([a]))
        cos = np.cos(a + offsets)
        want = physical_expected(cos, d / cos, wall)  # d: perpendicular distance
        assert wall.values_at(poses)[0, 2] == pytest.approx(want, abs=0.5)
    for r in (0.01, 0.025, 0.05):
        cyl = raw_sensors(circles=[(0.0, 0.0, r)])
        poses = robot_poses_for_sensor(2, np.array([[-d - r, 0.0]]), np.zeros(1))
        p = (d + r) * np.sin(offsets)  # each ray's closest approach to the centre
        q = np.sqrt(np.maximum(r * r - p * p, 0.0))
        t = np.where(np.abs(p) < r, (d + r) * np.cos(offsets) - q, np.inf)
        want = physical_expected(q / r, t, cyl)
        assert cyl.values_at(poses)[0, 2] == pytest.approx(want, abs=0.5)


# --- monotonic fall-off of the physical model: fine steps, every sensor, noise-free --------

D_FINE = np.arange(0.0005, 0.30, 0.001)  # 0.5 mm (near contact) to well beyond range


@pytest.mark.parametrize("radius_cm", [1.0, 2.5, 5.0])
@pytest.mark.parametrize("bearing_deg", [0.0, 10.0, -20.0, 20.0])
def test_physical_monotone_for_cylinders(radius_cm, bearing_deg):
    r, b = radius_cm / 100, math.radians(bearing_deg)
    ir = raw_sensors(circles=[(0.0, 0.0, r)])
    heading = 0.3  # any: the sensor is placed relative to the cylinder
    u = np.array([math.cos(heading + b), math.sin(heading + b)])
    for k in range(7):
        xy = -(D_FINE + r)[:, None] * u  # surface distance D_FINE along the bearing
        poses = robot_poses_for_sensor(k, xy, np.full(len(D_FINE), heading))
        v = ir.values_at(poses)[:, k]
        d = ir.sensed_distances_at(poses)[:, k]
        assert_monotone(v, f"cylinder r={radius_cm} cm bearing {bearing_deg} sensor {k}")
        assert v[0] > 2000 and v[-1] == 0 and v.max() <= 4505
        assert np.all((v > 0) == (d <= 0.14))
        if bearing_deg == 0:  # a centre ray always hits: seen all the way to ~14 cm
            assert v[D_FINE <= 0.1395].min() > 0 and d[0] == pytest.approx(D_FINE[0])


@pytest.mark.parametrize("incidence_deg", [0.0, 20.0, -40.0, 40.0, 60.0])
def test_physical_monotone_for_oblique_walls(incidence_deg):
    a = math.radians(incidence_deg)
    ir = raw_sensors([(0.0, -2.0, 0.0, 2.0)])  # the wall x = 0; d along the sensor axis
    for k in range(7):
        xy = np.stack([-D_FINE * math.cos(a), 0 * D_FINE], axis=1)
        poses = robot_poses_for_sensor(k, xy, np.full(len(D_FINE), a))
        v = ir.values_at(poses)[:, k]
        assert_monotone(v, f"wall at {incidence_deg} deg sensor {k}")
        assert v[0] > 2000 and v[-1] == 0 and v.max() <= 4505


def corner(half_angle_deg: float, tilt_deg: float, **kw) -> IRSensors:
    """Two 1 m walls from the origin at tilt +- half angle from +x (< 90 deg: a convex
    corner pointing at a sensor west of it; > 90 deg: a concave one it looks into)."""
    h, t = math.radians(half_angle_deg), math.radians(tilt_deg)
    segs = [(0.0, 0.0, math.cos(t + s * h), math.sin(t + s * h)) for s in (1, -1)]
    return raw_sensors(segs, **kw)


@pytest.mark.parametrize("half_angle_deg", [45.0, 60.0, 120.0, 135.0])
@pytest.mark.parametrize(("tilt_deg", "bearing_deg"), [(0.0, 0.0), (0.0, 5.0), (10.0, 1.875),
                                                       (-25.0, -5.625), (25.0, 9.375)])  # fmt: skip
def test_physical_monotone_for_corners(half_angle_deg, tilt_deg, bearing_deg):
    """The sensor looks along +x; the corner's vertex is at `bearing` off its axis and
    recedes along that line of sight. (A ray exactly through the vertex of an asymmetric
    corner takes the incidence of whichever wall floating point picks, so tilted corners
    are seen between two rays; the next test covers vertices crossing rays.)"""
    ir = corner(half_angle_deg, tilt_deg)
    b = math.radians(bearing_deg)
    for k in range(7):
        xy = -D_FINE[:, None] * np.array([math.cos(b), math.sin(b)])
        poses = robot_poses_for_sensor(k, xy, np.zeros(len(D_FINE)))
        v = ir.values_at(poses)[:, k]
        assert_monotone(v, f"corner {half_angle_deg}/{tilt_deg} deg sensor {k}")
        assert v[0] > 1500 and v[-1] == 0


@pytest.mark.parametrize("half_angle_deg", [45.0, 60.0, 120.0, 135.0])
@pytest.mark.parametrize("offset_cm", [0.5, 1.0, 2.0, -4.0])
def test_physical_corner_vertex_crossing_rays_rises_little(half_angle_deg, offset_cm):
    """A vertex off the axis, receding along the axis, crosses rays: each ray switching to
    the other wall changes its incidence at once: a step up of at most 3 % of the reading
    (Enki's model jumps by ~1000-2400 units)."""
    ir, enki_ir = corner(half_angle_deg, 0.0), corner(half_angle_deg, 0.0, model="enki")
    e = offset_cm / 100
    d = np.arange(2 * abs(e) + 0.005, 0.2, 0.0005)  # the sensor stays clear of the walls
    poses = robot_poses_for_sensor(2, np.stack([-d, np.full(len(d), e)], axis=1), 0 * d)
    v = ir.values_at(poses)[:, 2].astype(np.int64)
    assert np.all(np.diff(v) <= 0.03 * v[:-1]) and v[0] > 500
    assert np.diff(enki_ir.values_at(poses)[:, 2].astype(np.int64)).max() > 1000


def test_physical_monotone_for_the_front_sensors_facing_a_wall():
    """The robot backs away from a wall: all five front sensors fall off monotonically
    (Enki's outer sensors drop to ~470 at 7-8.5 cm and jump back up)."""
    d = np.arange(0.0, 0.25, 0.0005)
    poses = np.stack([0.5 - d - 0.08, 0 * d, 0 * d], axis=1)
    v = sensors(WALL_WORLD, noise_std=0.0).values_at(poses)
    for k in range(5):
        assert_monotone(v[:, k], f"sensor {k}")
        assert v[0, k] > 1500 and v[-1, k] == 0


def test_enki_model_has_holes():
    """The documented artefact of Enki's negative centre-ray correction."""
    cyl = raw_sensors(circles=[(0.0, 0.0, 0.025)], model="enki")
    phys = raw_sensors(circles=[(0.0, 0.0, 0.025)])
    at = lambda ir, d: ir.values(np.array([-0.025 - d - 0.08, 0.0, 0.0]))[2]  # noqa: E731
    assert at(cyl, 0.02) > 4000 and at(cyl, 0.138) > 1000
    assert at(cyl, 0.08) == at(cyl, 0.10) == at(cyl, 0.12) == 0  # 0 between 8 and 12 cm
    assert all(at(phys, d) > 0 for d in (0.08, 0.10, 0.12, 0.138))
    wall = sensors(WALL_WORLD, noise_std=0.0, model="enki")
    outer = lambda d: wall.values(np.array([0.5 - d - 0.08, 0.0, 0.0]))[[0, 4]]  # noqa: E731
    assert np.all(outer(0.065) > 1700) and np.all(outer(0.075) < 600)  # the hole
    assert np.all(outer(0.09) > 2500)  # and back up


@pytest.mark.parametrize("model", ["physical", "enki"])
def test_noise_level_and_low_obstacles_unseen(model):
    ir = sensors(WALL_WORLD, noise_std=3.0, model=model)
    pose = np.array([0.5 - 0.06 - 0.08, 0.0, 0.0])
    rng = np.random.default_rng(1)
    v = np.array([ir.values(pose, rng)[2] for _ in range(2000)], float)
    assert v.mean() == pytest.approx(ir.values(pose)[2], abs=0.5)
    assert v.mean() == pytest.approx(enki(6.0), rel=0.02 if model == "physical" else 1e-3)
    assert v.std() == pytest.approx(3.0, rel=0.1)
    low = World(arena=Arena(3.0, 3.0), obstacles=(Box(0.2, 0.0, 0.1, 0.3, 0.02),))
    pose = np.array([0.2 - 0.05 - 0.04 - 0.08, 0.0, 0.0])  # 4 cm from a 2 cm high box
    assert sensors(low, noise_std=0.0, model=model).values(pose)[2] == 0
    tall = World(arena=Arena(3.0, 3.0), obstacles=(Box(0.2, 0.0, 0.1, 0.3, 0.1),))
    assert sensors(tall, noise_std=0.0, model=model).values(pose)[2] == pytest.approx(
        enki(4.0), rel=0.02 if model == "physical" else 0.0, abs=0.5
    )


def test_true_distances_along_the_axes():
    ir = sensors(WALL_WORLD)
    pose = np.array([0.1, 0.0, 0.0])
    d = ir.true_distances(pose)
    assert d[2] == pytest.approx(0.5 - 0.18)
    assert d[5] == pytest.approx(0.1 + 0.5 - 0.03)  # rear sensors look at the west wall
    assert d[0] == pytest.approx((0.5 - 0.1 - 0.063) / math.cos(math.radians(38)))


# --- truth with the sensor's geometry ----------------------------------------------------


def _geometry_args(world: World) -> tuple[np.ndarray, ...]:
    g = world.geometry()
    return (
        g.segments, g.segments_height_m, g.segments_reflectance,
        g.circles, g.circle_height_m, g.circle_reflectance,
    )  # fmt: skip


def _random_poses(world: World, n: int, seed: int) -> np.ndarray:
    sim = Simulator(world, seed=0, camera=None)
    rng = np.random.default_rng(seed)
    return np.array([sim.random_free_pose(rng, clearance_m=0.0) for _ in range(n)])


@pytest.mark.parametrize(("model", "offsets_deg"), [("physical", np.linspace(-15, 15, 9)),
                                                    ("enki", [-15.0, 0.0, 15.0])])  # fmt: skip
def test_sensed_distances_are_the_min_over_the_models_rays(model, offsets_deg):
    world = load_world("cluttered")
    ir = IRSensors(IRParams(model=model), *_geometry_args(world))
    np.testing.assert_allclose(np.degrees(ir.ray_offsets), offsets_deg, atol=1e-12)
    poses = _random_poses(world, 200, seed=4)
    got = ir.sensed_distances_at(poses)
    assert got.shape == (200, 7) and got.dtype == np.float64
    for i in range(0, 200, 20):
        origins, heading = ir.sensor_frames(poses[i])
        ang = (heading[:, None] + np.radians(offsets_deg)).reshape(-1)
        dirs = np.stack([np.cos(ang), np.sin(ang)], axis=1)
        org = np.repeat(origins, len(offsets_deg), axis=0)
        t, _ = cast_rays(org, dirs, ir.segments, ir.circles)  # the height-filtered geometry
        want = t.reshape(7, -1).min(axis=1)
        np.testing.assert_allclose(got[i], want, rtol=1e-12)
        np.testing.assert_array_equal(ir.sensed_distances(poses[i]), got[i])


def test_sensed_distances_skip_low_obstacles():
    square = lambda x0, y0, x1, y1: [  # noqa: E731
        (x0, y0, x1, y0), (x1, y0, x1, y1), (x1, y1, x0, y1), (x0, y1, x0, y0)
    ]  # fmt: skip
    box = square(0.2, -0.15, 0.3, 0.15)
    pose = np.array([0.2 - 0.04 - 0.08, 0.0, 0.0])  # front sensor 4 cm from the box
    for model in ("physical", "enki"):
        low = raw_sensors(box, height_m=0.02, model=model)
        assert np.all(low.values(pose) == 0)
        assert np.all(np.isinf(low.sensed_distances(pose)))
        assert low.true_distances(pose)[2] == pytest.approx(0.04)  # the axis ray hits it
        tall = raw_sensors(box, height_m=0.1, model=model)
        assert tall.sensed_distances(pose)[2] == pytest.approx(0.04)
        assert tall.values(pose)[2] > 3000


@pytest.mark.parametrize("name", ["cluttered", "heldout_clutter"])
def test_physical_readings_agree_with_sensed_distances(name):
    """Noise-free reading > 0 exactly where a ray of the cone hits within range; the only
    allowed exceptions (reading 0 though sensed in range) are grazing incidences."""
    world = load_world(name)
    ir = IRSensors(IRParams(noise_std=0.0), *_geometry_args(world))
    poses = _random_poses(world, 1500, seed=7)
    v, d = ir.values_at(poses), ir.sensed_distances_at(poses)
    within = d <= ir.params.range_m
    assert within.sum() > 1000
    assert not np.any((v > 0) & ~within)
    grazing = within & (v == 0)
    assert grazing.sum() <= 0.01 * within.sum()  # 0 of ~1800 with these seeds
    rng = np.random.default_rng(0)
    noisy = IRSensors(IRParams(), *_geometry_args(world))
    for i in range(0, 1500, 50):  # noise only where something is in range
        assert np.all(noisy.values(poses[i], rng)[~within[i]] == 0)


def test_proximity_updates_at_10_hz_in_the_simulator():
    sim = Simulator(WALL_WORLD, seed=0, camera=None, start_pose=(0.3, 0.0, 0.0))
    sim.robot.set_wheel_targets(-100, -100)  # back away slowly: readings change
    changes = []
    last = sim.robot.read().proximity
    for _ in range(100):  # 1 s
        sim.step()
        r = sim.robot.read()
        if not np.array_equal(r.proximity, last):
            changes.append(sim.t_ns)  # the simulated instant (stamps carry link latency)
        last = r.proximity
    assert len(changes) >= 5
    gaps = np.diff(changes)  # refreshes on the robot's own phase, every 100 ms
    assert np.all(gaps % 100_000_000 == 0) and gaps.min() == 100_000_000
