"""Contacts in the simulator: the wheels stall against an obstacle, the accelerometer feels
the shock, the firmware's tap fires on hard bumps only, and truth records each onset."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.accelerometer import AccParams
from sim.errors import SimError
from sim.kinematics import DriveParams
from sim.simulator import Simulator
from sim.world import Arena, Wall, World

WALL_X = 0.5  # a thin wall across the arena, 0.5 m ahead of the start
HALF_THICK = 0.005
WORLD = World(
    arena=Arena(2.0, 2.0),
    obstacles=(Wall(WALL_X, -0.6, WALL_X, 0.6, thickness_m=2 * HALF_THICK, height_m=0.2),),
)
R = DriveParams().body_radius_m


def into_wall(speed: int, seed: int = 1, seconds: float = 8.0, collision: str = "slide"):
    """Drive straight at the wall; per step: (t_ns, measured left/right, target, acc)."""
    sim = Simulator(
        WORLD,
        seed=seed,
        camera=None,
        start_pose=(0.0, 0.0, 0.0),
        drive=DriveParams(collision=collision),
    )
    sim.robot.set_wheel_targets(speed, speed)
    t, meas, target, acc = [], [], [], []
    for _ in range(round(seconds * 100)):
        sim.step()
        t.append(sim.t_ns)
        meas.append(sim.drive.measured.copy())
        target.append(sim.drive.targets.copy())
        acc.append(sim.acc_units.copy())
    return sim, np.array(t), np.array(meas), np.array(target), np.array(acc)


@pytest.mark.parametrize("collision", ["slide", "stop"])
def test_the_wheels_stall_within_100_ms_against_a_wall(collision):
    """After the onset, the measured speed (the firmware's 40 ms mean) falls below 20 % of
    the target within 100 ms, and stays there while the robot pushes; the target stays."""
    sim, t, meas, target, _ = into_wall(300, collision=collision)
    (onset,) = sim.contacts
    before = (t < onset.t_ns - 100_000_000) & (t > onset.t_ns - 1_000_000_000)
    assert meas[before].mean() > 0.9 * 300  # at full speed just before
    stalled = (t >= onset.t_ns + 100_000_000) & (t <= onset.t_ns + 2_000_000_000)
    assert np.all(np.abs(meas[stalled]) < 0.2 * 300)
    assert np.all(target[stalled] == 300)
    assert sim.drive.stalled


def test_one_contact_at_the_front_of_the_body_for_a_long_push():
    """Pushing the wall for several seconds is one contact; its point is the body's front
    in the robot frame and on the wall's face in the world."""
    sim, t, *_ = into_wall(300, seconds=8.0)
    assert t[-1] - sim.contacts[0].t_ns > 3e9  # pushed for more than 3 s
    (c,) = sim.contacts
    assert c.point_m == pytest.approx([R, 0.0], abs=0.01)
    assert math.hypot(*c.point_m) == pytest.approx(R, abs=1e-4)
    assert c.world_m[0] == pytest.approx(WALL_X - HALF_THICK, abs=1e-4)
    assert sim.pose[0] == pytest.approx(WALL_X - HALF_THICK - R, abs=1e-3)


def test_touching_again_after_backing_off_is_a_new_contact():
    sim = Simulator(WORLD, seed=3, camera=None, start_pose=(0.3, 0.0, 0.0))
    for targets, seconds in [((300, 300), 2.0), ((-200, -200), 1.0), ((300, 300), 2.0)]:
        sim.robot.set_wheel_targets(*targets)
        sim.advance_to(sim.t_ns + round(seconds * 1e9))
    assert len(sim.contacts) == 2
    assert sim.contacts[1].t_ns - sim.contacts[0].t_ns > 1e9
    drained = sim.robot.truth().contacts
    assert [c.t_ns for c in drained] == [c.t_ns for c in sim.contacts]
    assert sim.robot.truth().contacts == ()  # drained once


def test_a_bump_shows_as_a_shock_in_the_forward_axis():
    """acc[1] (front to back, apparent gravity) drops well below its noise on a head-on
    bump; the lateral axis and gravity stay as they were."""
    sim, t, _, _, acc = into_wall(400)
    onset = sim.contacts[0].t_ns
    calm = (t > onset - 1_500_000_000) & (t < onset - 300_000_000)
    shock = (t >= onset) & (t <= onset + 200_000_000)
    assert np.abs(acc[calm, :2]).max() <= 2
    assert acc[shock, 1].min() <= -4
    assert np.abs(acc[shock, 0]).max() <= 2
    assert np.all(np.abs(acc[:, 2] - 22) <= 3)


def test_tap_fires_on_a_hard_bump_not_on_a_gentle_one():
    hard, *_ = into_wall(500)
    gentle, *_ = into_wall(120, seconds=14.0)
    assert len(hard.contacts) == 1 and hard.tap_count == 1
    assert len(gentle.contacts) == 1 and gentle.tap_count == 0


def test_normal_driving_for_a_minute_gives_no_tap_and_acc_within_noise():
    """A minute of the wander controller's kind of driving in an open arena (cruise at
    random speeds, spins in place, reversals): no contact, no tap, acc near (0, 0, 22)."""
    sim = Simulator(World(arena=Arena(20.0, 20.0)), seed=4, camera=None, start_pose=(0, 0, 0))
    rng = np.random.default_rng(4)
    acc = []
    while sim.t_s < 60.0:
        kind = rng.integers(3)
        s = int(rng.integers(120, 400))
        targets = [(s, s), (-s, s), (-150, -150)][kind]
        sim.robot.set_wheel_targets(*targets)
        end = sim.t_ns + int(rng.uniform(0.5, 2.0) * 1e9)
        while sim.t_ns < end:
            sim.step()
            acc.append(sim.acc_units.copy())
    acc = np.array(acc)
    assert len(sim.contacts) == 0 and sim.tap_count == 0
    assert np.abs(acc[:, :2]).max() <= 4
    assert np.abs(acc[:, :2]).mean() < 1.0
    assert np.abs(acc[:, 2] - 22).max() <= 3


def test_spinning_in_place_against_a_wall_is_not_a_stall():
    """Pure rotation in place stays possible (and unstalled) with the body touching."""
    sim = Simulator(WORLD, seed=5, camera=None, start_pose=(0.2, 0.0, 0.0))
    sim.robot.set_wheel_targets(300, 300)
    sim.advance_to(sim.t_ns + 3_000_000_000)
    assert len(sim.contacts) == 1
    th0 = sim.pose[2]
    sim.robot.set_wheel_targets(-200, 200)
    sim.advance_to(sim.t_ns + 1_000_000_000)
    assert not sim.drive.stalled
    assert abs(sim.drive.measured[1] - 200) < 30 and abs(sim.drive.measured[0] + 200) < 30
    assert abs(math.remainder(sim.pose[2] - th0, math.tau)) > 1.0


def test_streamed_acc_at_16_hz_with_the_tap_flag():
    """SimStreamBatch.acc: 16 Hz, stamped a link latency after the sample, int16 (3,),
    the tap flag set on the one sample after the bump; same seed, same stream."""

    def run():
        sim = Simulator(WORLD, seed=6, camera=None, start_pose=(0.0, 0.0, 0.0))
        sim.robot.set_wheel_targets(500, 500)
        out = []
        while sim.t_s < 5.0:
            sim.advance_to(sim.t_ns + 100_000_000)
            out += sim.robot.drain_stream().acc
        return sim, out

    sim, samples = run()
    t = np.array([s.t_ns for s in samples])
    true_t = np.array([s.sample_t_ns for s in samples])
    assert np.diff(true_t) == pytest.approx(62_500_000, abs=1)
    assert np.all(np.diff(t) > 0)
    assert 0 < np.median(t - true_t) / 1e6 < 10
    assert all(s.acc.dtype == np.int16 and s.acc.shape == (3,) for s in samples)
    taps = [s for s in samples if s.tap]
    assert len(taps) == 1 == sim.tap_count
    assert 0 <= taps[0].sample_t_ns - sim.contacts[0].t_ns < 62_500_000 + 10_000_000
    _, again = run()
    assert [(s.t_ns, s.acc.tolist(), s.tap) for s in again] == [
        (s.t_ns, s.acc.tolist(), s.tap) for s in samples
    ]


def test_acc_params_are_checked():
    with pytest.raises(SimError, match="rate_hz"):
        AccParams(rate_hz=0.0)
    with pytest.raises(SimError, match="must be a finite number"):
        AccParams(window_s=float("nan"))
