"""Other robots' sensors as proximity columns: REP 117 ranges, LaserScan sectors, sources
at different rates merged with staleness, twists as wheel units, the static tf tree and
the --topics map (robot_ssl.interop.bag_sensors, bag_tf, bag_topics)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from robot_ssl.core.errors import RobotSSLError
from robot_ssl.interop.bag_sensors import (
    INVALID,
    NO_RETURN,
    SensorSource,
    merge_sources,
    range_mm,
    scan_sectors,
    sector_masks,
    twist_to_wheel_units,
)
from robot_ssl.interop.bag_tf import static_pose
from robot_ssl.interop.bag_topics import load_topic_map


def test_ranges_follow_rep_117():
    r = np.array([0.1234, np.inf, -np.inf, np.nan, 0.01, 5.0, 2.0])
    got = range_mm(r, 0.02, 2.0)
    assert got.dtype == np.int16
    assert got.tolist() == [123, NO_RETURN, 0, INVALID, INVALID, INVALID, 2000]


def test_scan_sectors_take_the_nearest_valid_beam_of_each_sector():
    angles = np.radians(np.arange(360))
    masks = sector_masks(angles, np.radians([0.0, 90.0, 180.0, -90.0]), np.radians([20, 20, 20, 0]))
    assert masks.sum(axis=1).tolist() == [21, 21, 21, 1]  # +-10 deg inclusive; a ray: 1 beam
    assert masks[0, 355] and masks[0, 5] and not masks[0, 11]  # wraps around 0
    beams = np.full(360, NO_RETURN, np.int16)
    beams[3], beams[357] = 400, 300  # front: nearest of two returns
    beams[85:96] = INVALID  # left: some invalid beams, one return
    beams[92] = 700
    beams[170:191] = INVALID  # back: nothing valid at all
    out = scan_sectors(beams[None, :], masks)
    assert out.tolist() == [[300, 700, INVALID, NO_RETURN]]


def test_sources_at_different_rates_merge_at_the_fastest_with_staleness():
    fast = SensorSource(
        "a", np.arange(10, dtype=np.int64) * 50, np.arange(10, dtype=np.int16)[:, None], (0,)
    )
    slow_t = np.array([120, 220, 320], np.int64)  # 10 Hz-like, stops after 320
    slow = SensorSource("b", slow_t, np.array([[7], [8], [9]], np.int16), (2,))
    t, v = merge_sources([slow, fast], 3, stale_periods=2.0)
    assert t.tolist() == (np.arange(10) * 50).tolist()  # the fastest source's stamps
    assert v[:, 0].tolist() == list(range(10))
    assert (v[:, 1] == INVALID).all()  # a column no source fills
    # before the first reading, then latest, stale once older than 2 periods (200)
    assert v[:, 2].tolist() == [-1, -1, -1, 7, 7, 8, 8, 9, 9, 9]
    t, v = merge_sources([slow], 3, stale_periods=1.0)
    assert v[:, 2].tolist() == [7, 8, 9]


def test_twists_become_wheel_units():
    lr = twist_to_wheel_units(np.array([0.1, 0.0]), np.array([0.0, 1.0]), 0.2, 0.001)
    assert lr.tolist() == [[100, 100], [-100, 100]]


def test_static_poses_compose_along_the_tree_and_say_none_off_it():
    edges = {
        "mount": ("base_link", (0.1, 0.0, math.pi / 2)),
        "sonar": ("mount", (0.0, 0.05, 0.0)),
        "cycle_a": ("cycle_b", (0, 0, 0)),
        "cycle_b": ("cycle_a", (0, 0, 0)),
    }
    x, y, yaw = static_pose(edges, "base_link", "sonar")
    assert (x, y, yaw) == pytest.approx((0.05, 0.0, math.pi / 2))
    assert static_pose(edges, "base_link", "base_link") == (0.0, 0.0, 0.0)
    assert static_pose(edges, "base_link", "camera") is None
    assert static_pose(edges, "base_link", "cycle_a") is None


def test_topic_map_reads_the_options_and_refuses_what_it_does_not_know(tmp_path):
    p = tmp_path / "map.yaml"
    p.write_text("scan: /scan\ncmd-vel: /cmd_vel\nrange: [/a, /b]\nbumper: /bump:state\n")
    got = load_topic_map(str(p), RobotSSLError)
    assert got == {
        "scan": "/scan",
        "cmd_vel": "/cmd_vel",
        "range": ("/a", "/b"),
        "bumper": ("/bump:state",),
    }
    for text, says in (
        ("lidar: /scan\n", "unknown key 'lidar'"),
        ("- /scan\n", "must be a mapping"),
        ("scan: [/a, /b]\n", "must be a topic name"),
        ("scan: [unclosed\n", "cannot read it"),
    ):
        p.write_text(text)
        with pytest.raises(RobotSSLError, match=says):
            load_topic_map(str(p), RobotSSLError)
