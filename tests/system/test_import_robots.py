"""Other robots' bags through `robot-ssl import`, by the real CLI: a TurtleBot-like robot
(data/robots/lidar_bot.yaml: camera, a 360-beam LiDAR cut into sectors, a bumper,
odometry at 20 Hz, velocity commands) written by rosbags' own writers as ROS 1, ROS 2
sqlite3 and MCAP bags from one simulated session (tests/robot_bags.py), then label,
train one epoch and eval; a sonar robot without a spec posed by /tf_static; the one-line
errors of a missing topic, a wrong type, a missing field and a bad topic map."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from robot_bags import topic_map, write_lidar_bot_bag, write_range_bag

from robot_ssl.core.spec import RobotSpec
from robot_ssl.io.session import SessionReader

CLI = [sys.executable, "-m", "robot_ssl"]
SPEC = Path("data/robots/lidar_bot.yaml")
WORLD = "arena_boxes"
STORAGES = ("ros1", "sqlite3", "mcap")


def cli(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def robot_bags(tmp_path_factory) -> dict:
    """A 12-second simulated session of the LiDAR robot, its three bags and their imports."""
    d = tmp_path_factory.mktemp("robots")
    session = d / "sim.h5"
    r = cli(
        "sim",
        "record",
        "--world",
        WORLD,
        "--spec",
        SPEC,
        "--minutes",
        "0.2",
        "--no-progress",
        session,
    )
    assert r.returncode == 0, r.stderr
    out: dict = {"session": session, "dir": d}
    for storage in STORAGES:
        bag = write_lidar_bot_bag(
            session, WORLD, d / f"bag_{storage}{'.bag' if storage == 'ros1' else ''}", storage
        )
        topics = d / f"{storage}.yaml"
        topics.write_text(yaml.safe_dump(topic_map(storage)))
        imported = d / f"imported_{storage}.h5"
        r = cli("import", bag, imported, "--topics", topics, "--spec", SPEC)
        assert r.returncode == 0, r.stderr
        out[storage] = (bag, imported)
    return out


def test_every_storage_imports_the_same_session(robot_bags):
    first = None
    for storage in STORAGES:
        with SessionReader(robot_bags[storage][1]) as s:
            streams = (s.camera_t_ns.copy(), *s.proximity(), *s.wheels(), *s.odometry())
            assert s.num_frames > 300 and s.frame_shape[:2] == (240, 320)
        if first is None:
            first = streams
        for a, b in zip(first, streams, strict=True):
            np.testing.assert_array_equal(a, b)


def test_the_scan_sectors_read_what_the_simulator_sensed(robot_bags):
    """The bag's 360 beams cut by the spec's sectors give back the simulator's own sector
    readings (its range sensors, within their reach) up to the LiDAR's 1 cm noise; the
    bumper presses at the same moments; commands become wheel targets."""
    robot = RobotSpec.from_dict(yaml.safe_load(SPEC.read_text())["robot"])
    with SessionReader(robot_bags["session"]) as a, SessionReader(robot_bags["mcap"][1]) as b:
        ta, pa = a.proximity()
        tb, pb = b.proximity()
        _, speed, target = b.wheels()
        _, sim_target = a.wheels()[1:]
    assert pb.shape[1] == robot.num_prox == 12
    assert np.median(np.diff(tb)) == pytest.approx(100e6, rel=0.02)  # the bumper's 10 Hz
    tb = tb - tb[0] + ta[0]  # the bag's clock (1970 + 1.7e9 s) to the simulator's
    k = np.clip(np.searchsorted(tb, ta), 0, len(tb) - 1)
    ranges = robot.kinds.index("contact")
    sim, imp = pa[:, :ranges].astype(int), pb[k, :ranges].astype(int)
    near = sim < 250
    assert near.sum() > 50
    assert np.median(np.abs(sim - imp)[near]) < 30  # mm
    assert ((imp >= 0) & (imp < 300))[near].mean() > 0.95
    assert (pb == -1).mean() < 0.01  # NaN beams are rare: a sector always has a valid one
    assert abs(int(pa[:, ranges].sum()) - int(pb[:, ranges].sum())) <= max(
        3, pa[:, ranges].sum() // 3
    )
    assert np.abs(target).max() > 50 and np.abs(speed).max() > 50
    assert np.abs(target).max() <= np.abs(sim_target).max() + 2


def test_import_label_train_eval(robot_bags, tmp_path):
    _, imported = robot_bags["ros1"]
    labels, run = tmp_path / "labels", tmp_path / "run"
    r = cli("label", imported, "--out", labels, "--no-plot")
    assert r.returncode == 0, r.stderr
    assert (labels / f"{imported.stem}.labels.h5").is_file()
    r = cli(
        "train", "--data", imported, "--labels", labels, "--out", run, "--epochs", "1", "--quiet"
    )
    assert r.returncode == 0, r.stderr
    assert (run / "best.pt").is_file()
    r = cli(
        "eval",
        "--model",
        run / "best.pt",
        "--data",
        imported,
        "--labels",
        labels,
        "--bootstrap",
        "0",
        "--no-cache",
    )
    assert r.returncode == 0, r.stderr
    assert "mean AUC" in r.stdout + r.stderr


def test_a_sonar_robot_without_spec_is_posed_by_its_static_transforms(tmp_path):
    bag = write_range_bag(tmp_path / "sonar")
    out = tmp_path / "sonar.h5"
    r = cli(
        "import",
        bag,
        out,
        "--range",
        "/sonar/left",
        "/sonar/right",
        "--odom-tf",
        "odom:base_link",
        "--camera",
        "",
    )
    assert r.returncode == 0, r.stderr
    with SessionReader(out) as s:
        robot = RobotSpec.from_dict(__import__("json").loads(s._file.attrs["robot_spec"]))
        t, p = s.proximity()
        _, pose = s.odometry()
    left, right = robot.prox_sensors
    assert (left.name, left.kind, right.name) == ("sonar_left", "range", "sonar_right")
    assert (left.x_m, left.y_m, left.theta_rad) == pytest.approx((0.05, 0.04, np.pi / 4))
    assert (right.x_m, right.y_m, right.theta_rad) == pytest.approx((0.05, -0.04, -np.pi / 4))
    assert left.fov_rad == pytest.approx(0.5)
    assert len(t) == 60 and np.diff(t).tolist() == [50_000_000] * 59  # the 20 Hz sonar's rows
    assert p[0].tolist() == [100, 300] and p[10].tolist() == [100, -1]  # NaN: invalid
    assert p[25].tolist() == [32767, 300]  # +inf: no return
    assert p[-1].tolist() == [-1, 300]  # the left sonar fell silent at 1.9 s: stale
    np.testing.assert_allclose(pose[-1], [0.295, 0.0, 0.0])


def _one_line(r: subprocess.CompletedProcess, *says: str) -> None:
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    for text in says:
        assert text in r.stderr, r.stderr


def test_missing_topics_wrong_types_and_fields_are_one_line(robot_bags, tmp_path):
    ros1_bag, mcap_bag = robot_bags["ros1"][0], robot_bags["mcap"][0]
    out = tmp_path / "o.h5"
    base = ("--odom", "/odom", "--spec", SPEC)
    _one_line(cli("import", mcap_bag, out, *base, "--scan", "/nope"), "'/nope'", "--scan", "/scan")
    _one_line(
        cli("import", mcap_bag, out, *base, "--scan", "/odom"), "nav_msgs/msg/Odometry", "LaserScan"
    )
    _one_line(cli("import", mcap_bag, out, *base, "--bumper", "/nope"), "'/nope'", "--bumper")
    _one_line(
        cli("import", mcap_bag, out, *base, "--cmd-vel", "/scan"), "sensor_msgs/msg/LaserScan"
    )
    _one_line(
        cli("import", ros1_bag, out, *base, "--bumper", "/bumper:pressed"), "'pressed'", "state"
    )
    _one_line(
        cli("import", ros1_bag, out, *base, "--range", "/scan"),
        "sensor_msgs/msg/LaserScan",
        "Range",
    )
    _one_line(
        cli("import", mcap_bag, out, "--scan", "/scan", "--odom", "/odom"),
        "--scan /scan: give --spec",
    )
    bad_map = tmp_path / "map.yaml"
    bad_map.write_text("lidar: /scan\n")
    _one_line(cli("import", mcap_bag, out, "--topics", bad_map), "unknown key 'lidar'")
    assert not out.exists()
