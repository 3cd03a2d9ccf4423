"""Simulator: device protocols by shape, clock semantics, camera timing and cache,
determinism by seed, defaults that mirror the robot description, wander controller."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from robot_ssl.recording.wander import WanderConfig, WanderController
from sim.camera import CameraParams
from sim.camera_timing import CameraTiming, RobotTiming
from sim.ir import IRParams
from sim.kinematics import DriveParams
from sim.simulator import Simulator
from sim.world import load_world

SMALL = CameraParams(width=80, height=64)


def drive(sim: Simulator, seconds: float, seed: int = 0, frames: bool = True):
    ctrl = WanderController(seed=seed)
    out = []
    end = sim.clock.now_ns() + int(seconds * 1e9)
    while sim.clock.now_ns() < end:
        r = sim.robot.read()
        sim.robot.set_wheel_targets(*ctrl.command(r.proximity, r.t_ns))
        tr = sim.robot.truth()
        f = sim.camera.read() if frames and sim.camera else None
        out.append((r, tr, f))
        sim.clock.sleep_until_ns(r.t_ns + 20_000_000)
    return out, ctrl


def test_satisfies_the_device_protocols():
    from robot_ssl.core.devices import Camera, Clock, Robot

    sim = Simulator(load_world("arena_boxes"), seed=0, camera=SMALL)
    assert isinstance(sim.robot, Robot)
    assert isinstance(sim.camera, Camera)
    assert isinstance(sim.clock, Clock)
    r = sim.robot.read()
    assert r.proximity.dtype == np.int16 and r.proximity.shape == (7,)
    assert r.wheel_speed.dtype == np.int16 and r.wheel_speed.shape == (2,)
    t = sim.robot.truth()
    assert t.pose.shape == (3,) and t.prox_distance_m.shape == (7,)
    assert np.all(t.prox_distance_m > 0)
    assert sim.camera.read() is None  # the first frame is on its way (latency)
    sim.clock.sleep_until_ns(200_000_000)
    f = sim.camera.read()
    assert f.image.shape == (64, 80, 3) and f.image.dtype == np.uint8 and f.index >= 0
    assert f.t_ns > f.exposure_t_ns  # stamped at delivery
    sim.robot.close()
    sim.robot.close()  # idempotent
    assert sim.robot.targets == (0, 0)


def test_clock_steps_the_physics():
    sim = Simulator(load_world("arena_boxes"), seed=0, camera=None)
    assert sim.clock.now_ns() == 0
    sim.clock.sleep_until_ns(35_000_000)
    assert 35_000_000 <= sim.clock.now_ns() < 35_000_000 + sim.dt_ns
    before = sim.clock.now_ns()
    sim.clock.sleep_until_ns(1_000)  # the past: nothing happens
    assert sim.clock.now_ns() == before


def test_camera_frames_on_their_own_schedule_and_cached():
    """Ideal clocks: frames stamped at k / fps (the realistic ones: test_sim_clocks.py)."""
    sim = Simulator(
        load_world("corridor"),
        seed=0,
        camera=SMALL,
        camera_timing=CameraTiming.ideal(),
        robot_timing=RobotTiming.ideal(),
        stream=False,
    )
    sim.robot.set_wheel_targets(200, 200)
    seen = {}
    for _ in range(100):  # 1 s, read every 10 ms
        f = sim.camera.read()
        seen[f.index] = f
        sim.step()
    assert sorted(seen) == list(range(30))  # t = 0 .. 990 ms
    assert all(f.t_ns == f.exposure_t_ns == round(k * 1e9 / 30) for k, f in seen.items())
    assert sim.camera.renders == 30  # each frame rendered once though read ~3 times
    assert not np.array_equal(seen[0].image, seen[29].image)


def test_same_seed_same_bytes_other_seed_other_data():
    def run(seed: int):
        sim = Simulator(load_world("cluttered"), seed=seed, camera=SMALL)
        out, _ = drive(sim, 6.0, seed)
        prox = np.array([r.proximity for r, _, _ in out])
        speed = np.array([r.wheel_speed for r, _, _ in out])
        poses = np.array([t.pose for _, t, _ in out])
        frames = b"".join(f.image.tobytes() for _, _, f in out[::5] if f is not None)
        return prox.tobytes() + speed.tobytes() + poses.tobytes(), frames

    a, b = run(4), run(4)
    assert a[0] == b[0] and a[1] == b[1]
    c = run(5)
    assert a[0] != c[0] and a[1] != c[1]


def test_random_start_pose_is_free_and_seeded():
    w = dataclasses.replace(load_world("cluttered"), start_pose=None)
    p1 = Simulator(w, seed=1, camera=None).pose
    p2 = Simulator(w, seed=1, camera=None).pose
    p3 = Simulator(w, seed=2, camera=None).pose
    assert np.array_equal(p1, p2) and not np.array_equal(p1, p3)


def test_random_start_overrides_the_worlds_start_pose():
    """`start_pose="random"` draws a free pose from the seed even in a world with a start pose, so that
    drives of one world with different seeds start apart (the hard suite's 3 drives)."""
    from sim.errors import SimError

    w = load_world("hard_tiles")
    assert w.start_pose is not None
    fixed = [Simulator(w, seed=s, camera=None).pose for s in (1, 2)]
    drawn = [Simulator(w, seed=s, camera=None, start_pose="random").pose for s in (1, 2, 1)]
    assert np.array_equal(fixed[0], fixed[1]) and np.allclose(fixed[0], w.start_pose)
    assert not np.array_equal(drawn[0], drawn[1]) and np.array_equal(drawn[0], drawn[2])
    assert not np.allclose(drawn[0], w.start_pose)
    with pytest.raises(SimError, match="random"):
        Simulator(w, seed=1, camera=None, start_pose="anywhere")


def test_sim_defaults_mirror_the_robot_and_camera_specs():
    """sim cannot import robot_ssl, so its Thymio defaults are copies: keep them in sync."""
    from robot_ssl.core.spec import CameraSpec, RobotSpec
    from robot_ssl.simlink.simulator import sim_params

    robot, camera = RobotSpec(), CameraSpec()
    d, ir, cam = DriveParams(), IRParams(), CameraParams()
    d2, _ir2, cam2 = sim_params(robot, camera)
    for f in ("axle_length_m", "speed_m_per_unit", "max_speed_units", "body_radius_m"):
        assert getattr(d, f) == getattr(d2, f) == getattr(robot, f)
    np.testing.assert_allclose(ir.poses, robot.prox_poses())
    assert ir.range_m == robot.prox_range_m and ir.m == robot.prox_max
    for f in ("width", "height", "hfov_rad", "x_m", "y_m", "z_m", "pitch_rad", "fps"):
        assert getattr(cam, f) == getattr(cam2, f) == getattr(camera, f)
    assert cam.intrinsics() == camera.intrinsics()


def test_wander_meets_obstacles_head_on_and_at_angles_and_never_sticks():
    sim = Simulator(load_world("arena_boxes"), seed=3, camera=None)
    out, ctrl = drive(sim, 180.0, seed=3, frames=False)
    assert ctrl.legs >= 15 and ctrl.stops >= 8
    poses = np.array([t.pose for _, t, _ in out])
    # it explores: covers a good part of the arena, and is never stuck for long
    span = poses[:, :2].max(0) - poses[:, :2].min(0)
    assert span.min() > 1.0
    step = np.hypot(*np.diff(poses[:, :2], axis=0).T) + np.abs(np.diff(np.unwrap(poses[:, 2])))
    still = np.convolve(step < 1e-4, np.ones(500), "valid")  # 10 s windows
    assert still.max() < 500
    # when it stops in front of something, the obstacle is at varied bearings
    prox = np.array([r.proximity for r, _, _ in out])
    front = prox[:, :5].astype(float)
    seen = front.max(1) > 2000
    bearing = (front[seen] * np.linspace(1, -1, 5)).sum(1) / front[seen].sum(1)
    assert bearing.std() > 0.2
    assert (np.abs(bearing) < 0.15).any()  # some head on


def test_wander_controller_is_pure_and_deterministic():
    prox = np.zeros(7, np.int16)
    a, b = WanderController(seed=1), WanderController(seed=1)
    seq_a = [a.command(prox, t * 20_000_000) for t in range(500)]
    seq_b = [b.command(prox, t * 20_000_000) for t in range(500)]
    assert seq_a == seq_b
    # a close obstacle stops the forward leg and the robot backs off then turns
    c = WanderController(WanderConfig(pause_s=(0.0, 0.0)), seed=2)
    t = 0
    for _ in range(10):
        c.command(prox, t)
        t += 20_000_000
    assert c.state == c.FORWARD
    close = np.array([0, 0, 4000, 0, 0, 0, 0], np.int16)
    states = []
    for _ in range(200):
        left, right = c.command(close if c.state == c.FORWARD else prox, t)
        states.append((c.state, left, right))
        t += 20_000_000
    kinds = [s for s, _, _ in states]
    assert "back" in kinds and "turn" in kinds
    back = [(lft, rgt) for s, lft, rgt in states if s == "back"]
    assert all(lft < 0 and rgt < 0 for lft, rgt in back)
    turn = [(lft, rgt) for s, lft, rgt in states if s == "turn"]
    assert all(lft == -rgt and lft != 0 for lft, rgt in turn)


@pytest.mark.parametrize("seconds", [0.5])
def test_realtime_mode_tracks_the_wall_clock(seconds):
    import threading
    import time

    sim = Simulator(load_world("arena_boxes"), seed=0, camera=None)
    stop = threading.Event()
    th = threading.Thread(target=sim.run_realtime, args=(stop,))
    t0 = time.monotonic()
    th.start()
    time.sleep(seconds)
    stop.set()
    th.join()
    elapsed = time.monotonic() - t0
    assert sim.t_s == pytest.approx(elapsed, abs=0.15)
