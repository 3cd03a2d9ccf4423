"""The contact detector (robot_ssl.core.contact) on synthetic drives: a wheel-speed loop
with a Thymio's lag and 40 ms speed average, a body that stops dead at a contact, an
accelerometer at 16 Hz, the firmware's tap."""

from __future__ import annotations

import math

import numpy as np
import pytest

from robot_ssl.core.contact import (
    ContactConfig,
    ContactError,
    ContactMonitor,
    detect_contacts,
    score_contacts,
)

WHEEL_DT_S = 0.01  # the firmware's 100 Hz speed samples
ACC_DT_S = 1 / 16


def drive(
    schedule: list[tuple[float, float, float]],
    duration_s: float,
    contacts_s: tuple[tuple[float, float], ...] = (),
    lag_s: float = 0.1,
    noise: float = 0.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wheel rows of a drive: `schedule` (start_s, left, right) targets; `contacts_s`
    (start_s, end_s): the body is blocked (wheels held at 0) in between. Returns stamps
    (ns), measured speeds and targets (N, 2), the measurement averaged over 40 ms."""
    rng = np.random.default_rng(seed)
    n = round(duration_s / WHEEL_DT_S)
    t = np.arange(n) * WHEEL_DT_S
    target = np.zeros((n, 2))
    for start, left, right in schedule:
        target[t >= start] = (left, right)
    motor = np.zeros((n, 2))
    k = 1 - math.exp(-WHEEL_DT_S / lag_s)
    for i in range(1, n):
        motor[i] = motor[i - 1] + (target[i - 1] - motor[i - 1]) * k
        if any(a <= t[i] < b for a, b in contacts_s):
            motor[i] = 0.0
    kernel = np.ones(4) / 4
    measured = np.column_stack([np.convolve(motor[:, j], kernel)[:n] for j in range(2)])
    measured += rng.normal(0, noise, measured.shape) if noise else 0.0
    return (t * 1e9).astype(np.int64), np.round(measured).astype(np.int16), target


def accel(duration_s: float, shocks_s: tuple[float, ...] = (), size: float = 15.0):
    """Accelerometer rows at 16 Hz: gravity on z, a little noise, a one-row shock on x."""
    rng = np.random.default_rng(1)
    t = np.arange(0, duration_s, ACC_DT_S)
    acc = np.column_stack([rng.normal(0, 0.6, len(t)), rng.normal(0, 0.6, len(t))])
    acc = np.column_stack([acc, np.full(len(t), 22.0)])
    for s in shocks_s:
        acc[np.nonzero(t >= s)[0][0], 0] += size
    return (t * 1e9).astype(np.int64), np.round(acc).astype(np.int16), np.zeros(len(t), np.uint8)


def test_a_blocked_body_is_one_stall_contact_with_its_onset():
    # forward at 300 from 1 s, blocked from 3 s to 4 s, then the targets stop
    t, speed, target = drive([(1.0, 300, 300), (4.0, 0, 0)], 6.0, contacts_s=((3.0, 4.0),))
    events = detect_contacts(t, speed, target)
    assert events.cause == ("stall",)
    assert abs(events.t_ns[0] / 1e9 - 3.0) <= 0.06
    # the stall had to last stall_s before it was believed
    assert events.fired_t_ns[0] - events.t_ns[0] >= ContactConfig().stall_s * 1e9 - 1


def test_motor_lag_is_not_a_contact():
    # start from standstill, reverse at once, turn in place both ways, arcs, stop; noisy
    schedule = [
        (0.5, 400, 400),
        (2.0, -250, -250),
        (3.0, -300, 300),
        (4.0, 300, -300),
        (5.0, 150, 400),
        (6.0, 400, 150),
        (7.0, 0, 0),
        (7.5, 250, 250),
        (8.0, -250, -250),
    ]
    t, speed, target = drive(schedule, 10.0, noise=3.0)
    assert len(detect_contacts(t, speed, target)) == 0


def test_a_motor_slower_than_the_lag_range_needs_a_wider_range():
    # a motor twice as slow as the simulator's (0.2 s): in the default range, no contact
    schedule = [(0.5, 300, 300), (2.0, -300, -300), (3.5, 0, 0)]
    t, speed, target = drive(schedule, 5.0, lag_s=0.2)
    assert len(detect_contacts(t, speed, target)) == 0
    # one far slower than the slowest model (0.6 s) looks stalled on every start...
    t, speed, target = drive(schedule, 5.0, lag_s=0.6)
    assert len(detect_contacts(t, speed, target)) >= 1
    # ...until the range covers it
    wide = ContactConfig(motor_lag_s=(0.05, 0.7))
    assert len(detect_contacts(t, speed, target, config=wide)) == 0


def test_a_shock_is_a_contact_at_its_row_and_a_slow_tilt_is_not():
    t, speed, target = drive([], 5.0)
    at, acc, tap = accel(5.0, shocks_s=(2.0,))
    events = detect_contacts(t, speed, target, at, acc, tap)
    assert events.cause == ("shock",)
    assert events.t_ns[0] == at[np.nonzero(at >= 2e9)[0][0]]
    # a slow tilt (10 units over 4 s) moves the baseline, not a shock
    _, tilt, _ = accel(5.0)
    tilt[:, 1] += np.linspace(0, 10, len(at)).round().astype(np.int16)
    assert len(detect_contacts(t, speed, target, at, tilt, tap)) == 0
    # a shock below the threshold is nothing; the threshold is a setting
    _, small, _ = accel(5.0, shocks_s=(2.0,), size=4.0)
    assert len(detect_contacts(t, speed, target, at, small, tap)) == 0
    sensitive = ContactConfig(shock_threshold=3.0)
    assert len(detect_contacts(t, speed, target, at, small, tap, config=sensitive)) == 1


def test_the_tap_event_is_a_contact_unless_turned_off():
    t, speed, target = drive([], 3.0)
    at, acc, tap = accel(3.0)
    tap[20] = 1
    events = detect_contacts(t, speed, target, at, acc, tap)
    assert events.cause == ("tap",) and events.t_ns[0] == at[20]
    off = ContactConfig(use_tap=False)
    assert len(detect_contacts(t, speed, target, at, acc, tap, config=off)) == 0


def test_evidence_of_one_contact_merges_and_the_onset_is_the_earliest():
    # a collision at 3 s: stall from 3 s, a shock at 3.1 s, a tap at 3.2 s; another at 8 s
    t, speed, target = drive([(1.0, 300, 300)], 10.0, contacts_s=((3.0, 3.8), (8.0, 9.0)))
    at, acc, tap = accel(10.0, shocks_s=(3.1, 8.05))
    tap[np.nonzero(at >= 3.2e9)[0][0]] = 1
    events = detect_contacts(t, speed, target, at, acc, tap)
    assert len(events) == 2
    # the stall began first (its onset is known only after stall_s, when the shock and
    # tap had fired already): the contact's onset moves back to it
    assert events.cause[0] == "stall" and abs(events.t_ns[0] / 1e9 - 3.0) <= 0.06
    assert events.fired_t_ns[0] == at[np.nonzero(at >= 3.1e9)[0][0]]
    assert abs(events.t_ns[1] / 1e9 - 8.0) <= 0.1
    # no merging: the tap, after the contact's evidence so far, is a contact of its own
    apart = detect_contacts(t, speed, target, at, acc, tap, config=ContactConfig(refractory_s=0))
    assert apart.cause == ("stall", "tap", "stall")


def test_the_online_monitor_fires_what_the_batch_finds():
    t, speed, target = drive([(1.0, 300, 300)], 10.0, contacts_s=((3.0, 3.8), (8.0, 9.0)))
    at, acc, tap = accel(10.0, shocks_s=(5.5,))
    batch = detect_contacts(t, speed, target, at, acc, tap)
    monitor = ContactMonitor()
    fired = []
    rows = sorted(
        [(int(x), 0, i) for i, x in enumerate(t)] + [(int(x), 1, i) for i, x in enumerate(at)]
    )
    for stamp, kind, i in rows:
        found = (
            monitor.wheels(stamp, speed[i], target[i])
            if kind == 0
            else monitor.acc(stamp, acc[i], tap[i])
        )
        if found is not None:
            fired.append(found.fired_t_ns)
    assert len(batch) == 3
    np.testing.assert_array_equal(batch.fired_t_ns, fired)
    np.testing.assert_array_equal(monitor.contacts.t_ns, batch.t_ns)
    assert batch.counts() == {"stall": 2, "shock": 1, "tap": 0}


def test_stall_s_says_how_long_the_robot_has_been_stalled():
    t, speed, target = drive([(1.0, 300, 300)], 3.5, contacts_s=((3.0, 4.0),))
    monitor = ContactMonitor()
    for i in range(len(t)):
        monitor.wheels(t[i], speed[i], target[i])
    assert 0.4 <= monitor.stall_s <= 0.5
    assert abs(monitor.stall_since_ns / 1e9 - 3.0) <= 0.06
    assert monitor.expected_speed == pytest.approx(300, abs=1)


def test_scoring_matches_one_to_one_within_the_tolerance():
    s = 1_000_000_000
    truth = np.array([10, 20, 30, 40]) * s
    detected = np.array([10.1 * s, 10.2 * s, 20.4 * s, 31 * s, 100 * s], np.int64)
    score = score_contacts(detected, truth, duration_s=300.0, tolerance_s=0.5)
    assert (score.matched, score.missed, score.false_positives) == (2, 2, 3)
    assert score.precision == pytest.approx(2 / 5) and score.recall == pytest.approx(0.5)
    assert score.false_per_10min == pytest.approx(3 / 300 * 600)
    assert score.matched_pairs.tolist() == [[0, 0], [2, 1]]
    assert score.delay_s == pytest.approx(0.25)
    empty = score_contacts(np.zeros(0), np.zeros(0), duration_s=60.0)
    assert math.isnan(empty.precision) and math.isnan(empty.recall)
    assert empty.false_per_10min == 0.0


def test_bad_input_is_a_one_line_error():
    t, speed, target = drive([], 1.0)
    with pytest.raises(ContactError, match="speed must have shape"):
        detect_contacts(t, speed[:-1], target)
    with pytest.raises(ContactError, match="acc must have shape"):
        detect_contacts(t, speed, target, np.arange(3), np.zeros((3, 1)))
    with pytest.raises(ContactError, match="not finite"):
        detect_contacts(t, speed.astype(float) * np.nan, target)
    with pytest.raises(ContactError, match=r"contact.stall_ratio"):
        ContactConfig(stall_ratio=1.5)
    with pytest.raises(ContactError, match="fastest first"):
        ContactConfig(motor_lag_s=(0.3, 0.1))
    with pytest.raises(ContactError, match="all off"):
        ContactConfig(use_stall=False, use_shock=False, use_tap=False)
    with pytest.raises(ContactError, match="duration_s"):
        score_contacts(np.zeros(0), np.zeros(0), duration_s=0.0)
