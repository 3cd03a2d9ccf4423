"""Labelling with sensors of any kind: the proximity rule goes through
robot_ssl.core.sensor_rule.presence; sessions of earlier versions (7 IR, no kind fields)
label as before; a sensor of an unknown kind is skipped with one line."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import h5py
import numpy as np

from robot_ssl.core.label_grid import LabelConfig
from robot_ssl.core.sensor_rule import NO_RETURN_MM, presence
from robot_ssl.core.spec import ProxSensor, RobotSpec
from robot_ssl.io.session import SessionReader, SessionWriter
from robot_ssl.labelling.labeller import compute_labels, truth_labels
from robot_ssl.labelling.session_labels import label_session
from tests.labelling_sessions import JPEG, MS_NS, S_NS, WALL_X, write_session

RULE = LabelConfig(camera_offset=0.0, sources=("ir",))


def _set_robot_json(path: Path, robot: dict) -> None:
    with h5py.File(path, "r+") as f:
        f.attrs["robot_spec"] = json.dumps(robot)


def test_a_session_of_an_earlier_version_opens_and_labels_unchanged(tmp_path: Path):
    new = write_session(tmp_path / "new.h5")
    old = tmp_path / "old.h5"
    shutil.copy(new, old)
    earlier = RobotSpec().to_dict()
    for s in earlier["prox_sensors"]:  # the spec JSON before sensor kinds
        for key in ("kind", "fov_rad", "range_m"):
            del s[key]
    _set_robot_json(old, earlier)
    with SessionReader(old) as reader:
        assert reader.robot == RobotSpec()
    a, b = label_session(new, RULE), label_session(old, RULE)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert (a.labels == 1).sum() > 50 and (a.labels == 0).sum() > 50


def test_a_sensor_of_an_unknown_kind_is_skipped_in_one_line(tmp_path: Path):
    path = write_session(tmp_path / "s.h5")
    known = label_session(path, RULE)
    d = RobotSpec().to_dict()
    d["prox_sensors"][2]["kind"] = "radar"
    _set_robot_json(path, d)
    with SessionReader(path) as reader:  # the session still opens
        assert reader.robot.prox_sensors[2].kind == "radar"
    notes: list[str] = []
    skipped = label_session(path, RULE, notes=notes)
    assert notes == ["sensor 2 (front_center) has unknown kind 'radar': its cells stay unknown"]
    column = list(RULE.sensor_indices).index(2)
    assert (skipped.labels[:, column] == -1).all()
    assert (known.labels[:, column] == 1).any()
    others = [i for i in range(len(RULE.sensor_indices)) if i != column]
    np.testing.assert_array_equal(skipped.labels[:, others], known.labels[:, others])


def _range_robot() -> RobotSpec:
    sensors = list(RobotSpec().prox_sensors)
    sensors[2] = ProxSensor(
        "tof", 0.08, 0.0, 0.0, kind="range", fov_rad=math.radians(20), range_m=0.2
    )
    return RobotSpec(prox_sensors=tuple(sensors))


def test_a_range_sensor_labels_an_obstacle_within_its_reach(tmp_path: Path):
    """The straight approach of tests.labelling_sessions with a ToF in the middle: mm
    readings, 32767 when nothing returns; obstacle where the wall is within 0.2 m."""
    robot = _range_robot()
    path = tmp_path / "tof.h5"
    v = 0.1
    with SessionWriter(path, robot) as w:
        for k in range(501):
            t = k * 10 * MS_NS
            x = v * t / S_NS
            if k % 3 == 0:
                w.write_jpeg(t, JPEG)
            if k % 10 == 5:
                prox = np.zeros(7, np.int16)
                gap_mm = round((WALL_X - (x + 0.08)) * 1000)
                prox[2] = gap_mm if 0 <= gap_mm < 1000 else NO_RETURN_MM
                w.write_proximity(t, prox)
            w.write_odometry(t, [x, 0.0, 0.0])
    labels = label_session(path, RULE)
    grid = labels.labels[:, 2]  # (N, D) of the ToF
    d = np.asarray(labels.distances_m)
    frames_x = v * labels.t_ns / S_NS
    gap = WALL_X - (frames_x[:, None] + d[None, :] + 0.08)  # the wall from the sensor at t + d
    known = grid >= 0
    clear = (np.abs(gap - 0.2) > 0.015) & (gap > 0.015)  # off the reach edge, before the wall
    assert (grid[known & clear] == (gap[known & clear] < 0.2)).all()
    assert (grid == 1).sum() > 100 and (grid == 0).sum() > 100


def test_compute_labels_with_the_ir_presence_is_bit_identical():
    rng = np.random.default_rng(1)
    t = np.arange(0, 6 * S_NS, 100 * MS_NS)
    values = rng.integers(0, 3000, size=(len(t), 7)).astype(np.int16)
    values[rng.random(values.shape) < 0.5] = 0
    odom_t = np.arange(0, 6 * S_NS, 10 * MS_NS)
    pose = np.column_stack([0.05 * odom_t / S_NS, np.zeros(len(odom_t)), np.zeros(len(odom_t))])
    cam = np.arange(0, 5 * S_NS, 33 * MS_NS)
    cfg = LabelConfig(threshold=100)
    plain = compute_labels(cam, t, values, odom_t, pose, cfg)
    ruled = compute_labels(
        cam, t, values, odom_t, pose, cfg, prox_presence=presence(values, RobotSpec(), 100)
    )
    np.testing.assert_array_equal(plain.labels, ruled.labels)
    np.testing.assert_array_equal(plain.readings, ruled.readings)
    unknown = presence(values, RobotSpec(), 100)
    unknown[:, 1] = -1
    partial = compute_labels(cam, t, values, odom_t, pose, cfg, prox_presence=unknown)
    assert (partial.labels[:, 1] == -1).all()
    np.testing.assert_array_equal(partial.labels[:, 0], plain.labels[:, 0])


def test_truth_labels_use_each_sensors_reach():
    t = np.arange(0, 3 * S_NS, 10 * MS_NS)
    pose = np.column_stack([0.1 * t / S_NS, np.zeros(len(t)), np.zeros(len(t))])
    dist = np.full((len(t), 7), 0.15)  # every sensor 0.15 m from something, all the time
    reach = np.array([0.14, 0.2, 0.14, 0.2, 0.14, 0.14, 0.14])
    grid = truth_labels(t[::3], t, pose, dist, reach, LabelConfig(sensor_indices=(0, 1)))
    known = grid.labels >= 0
    assert known.any()
    assert (grid.labels[:, 0][known[:, 0]] == 0).all()  # 0.15 beyond a 0.14 reach
    assert (grid.labels[:, 1][known[:, 1]] == 1).all()  # within a 0.2 reach
