"""Sensor kinds in the robot description (ProxSensor: ir, range, contact; fov, reach) and
the rule that turns a reading of each kind into obstacle, free or unknown."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from robot_ssl.core.errors import SpecError
from robot_ssl.core.sensor_rule import (
    NO_RETURN_MM,
    body_insets_m,
    ir_equivalent,
    presence,
)
from robot_ssl.core.spec import (
    CONTACT_REACH_M,
    CameraSpec,
    IRSensor,
    ProxSensor,
    RobotSpec,
    load_specs,
    save_specs,
)
from tests.paths import REPO

ROBOTS = REPO / "data" / "robots"


def mixed_robot() -> RobotSpec:
    return RobotSpec(
        name="mixed",
        prox_range_m=0.2,
        prox_sensors=(
            ProxSensor("ir0", 0.08, 0.0, 0.0),
            ProxSensor(
                "sonar", 0.08, 0.0, 0.0, kind="range", fov_rad=math.radians(30), range_m=0.3
            ),
            ProxSensor("tof", 0.08, 0.0, 0.0, kind="range"),  # reach: prox_range_m
            ProxSensor("bumper", 0.08, 0.0, 0.0, kind="contact", fov_rad=math.pi),
        ),
        front_sensor_indices=(0, 1, 2, 3),
    )


def test_ir_sensor_is_the_former_name_of_prox_sensor():
    assert IRSensor is ProxSensor
    s = IRSensor("a", 0.0, 0.0, 0.0)
    assert (s.kind, s.fov_rad, s.range_m, s.known) == ("ir", 0.0, None, True)


def test_spec_with_kinds_round_trips_through_yaml_and_json(tmp_path: Path):
    robot = mixed_robot()
    assert RobotSpec.from_dict(json.loads(json.dumps(robot.to_dict()))) == robot
    for name in ("spec.yaml", "spec.json"):
        save_specs(tmp_path / name, robot, CameraSpec())
        assert load_specs(tmp_path / name)[0] == robot


def test_reach_per_sensor_follows_its_own_range_then_its_kind():
    robot = mixed_robot()
    assert robot.reaches_m() == (0.2, 0.3, 0.2, CONTACT_REACH_M)
    assert robot.kinds == ("ir", "range", "range", "contact")
    assert RobotSpec().reaches_m() == (0.14,) * 7


def test_a_spec_file_with_an_unknown_kind_is_one_line_naming_the_sensor(tmp_path: Path):
    d = mixed_robot().to_dict()
    d["prox_sensors"][2]["kind"] = "radar"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"robot": d}))
    with pytest.raises(SpecError) as e:
        load_specs(path)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg == (
        f"{path}: robot.prox_sensors[2] (tof): unknown sensor kind 'radar'"
        " (expected one of ir, range, contact)"
    )


def test_a_session_spec_with_an_unknown_kind_is_kept_and_flagged():
    d = mixed_robot().to_dict()
    d["prox_sensors"][2]["kind"] = "radar"
    robot = RobotSpec.from_dict(d, keep_unknown_kinds=True)
    assert robot.prox_sensors[2].kind == "radar" and not robot.prox_sensors[2].known
    assert robot.unknown_sensors() == [2]
    assert RobotSpec.from_dict(robot.to_dict(), keep_unknown_kinds=True) == robot


def test_an_earlier_spec_without_kind_fields_loads_as_seven_ir():
    d = RobotSpec().to_dict()
    for s in d["prox_sensors"]:
        for key in ("kind", "fov_rad", "range_m"):
            del s[key]
    assert RobotSpec.from_dict(d) == RobotSpec()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kind": ""}, "kind: must be a non-empty string"),
        ({"fov_rad": -0.1}, "fov_rad"),
        ({"fov_rad": 7.0}, "fov_rad"),
        ({"range_m": 0.0}, "range_m"),
        ({"range_m": math.inf}, "range_m"),
    ],
)
def test_sensor_fields_are_bounded(changes: dict, message: str):
    with pytest.raises(SpecError, match=message):
        ProxSensor("s", 0.0, 0.0, 0.0, **changes)


def test_example_robots_load():
    thymio = load_specs(ROBOTS / "thymio.yaml")
    assert thymio == (RobotSpec(), CameraSpec())
    lidar, _ = load_specs(ROBOTS / "lidar_bot.yaml")
    scan = [i for i, s in enumerate(lidar.prox_sensors) if s.kind == "range"]
    beams = sum(round(math.degrees(lidar.prox_sensors[i].fov_rad)) for i in scan)
    assert beams == 360  # a 360-beam LiDAR, one beam per degree
    assert [s.kind for s in lidar.prox_sensors].count("contact") == 1
    assert lidar.body_radius_m == pytest.approx(0.1)
    sonar, _ = load_specs(ROBOTS / "sonar_bot.yaml")
    assert set(sonar.kinds) == {"range"} and sonar.num_prox >= 3


def test_presence_per_kind():
    robot = mixed_robot()
    readings = np.array(
        [
            # ir  sonar(300 mm)  tof(200 mm)  bumper
            [0, 299, 200, 0],
            [1, 300, 199, 1],
            [50, NO_RETURN_MM, 0, 0],
            [0, -1, -1, -1],
        ],
        np.int16,
    )
    got = presence(readings, robot, threshold=0)
    expected = [[0, 1, 0, 0], [1, 0, 1, 1], [1, 0, 1, 0], [0, -1, -1, -1]]
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == np.int8
    np.testing.assert_array_equal(
        presence(readings[:, :1], robot.prox_sensors[:1], 40), [[0], [0], [1], [0]]
    )


def test_presence_of_an_unknown_kind_is_unknown():
    d = mixed_robot().to_dict()
    d["prox_sensors"][0]["kind"] = "radar"
    robot = RobotSpec.from_dict(d, keep_unknown_kinds=True)
    got = presence(np.array([[500, 10, 10, 1]], np.int16), robot, threshold=0)
    np.testing.assert_array_equal(got, [[-1, 1, 1, 1]])


def test_presence_of_ir_is_the_labellers_threshold_rule():
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 4505, size=(500, 7)).astype(np.int16)
    np.testing.assert_array_equal(presence(raw, RobotSpec(), 1000), (raw > 1000).astype(np.int8))


def test_ir_equivalent_reads_range_as_a_thymio_would_from_the_body():
    lidar, _ = load_specs(ROBOTS / "lidar_bot.yaml")
    inset = body_insets_m(lidar)
    assert inset[2] == pytest.approx(0.13)  # the scanner sits 0.03 m behind the centre
    assert inset[11] == pytest.approx(0.0)  # the bumper is on the outline
    far = np.full((1, lidar.num_prox), NO_RETURN_MM, np.int16)
    far[0, 11] = 0
    assert (ir_equivalent(far, lidar) == 0).all()
    near = far.copy()
    near[0, 2] = 130 + 30  # 3 cm beyond the body's front
    near[0, 11] = 1
    value = ir_equivalent(near, lidar)[0]
    assert 3000 < value[2] < 4505 and value[11] == lidar.prox_max
    raw = np.array([[0, 10, 4000, 0, 0, 0, 0]], np.int16)
    np.testing.assert_array_equal(ir_equivalent(raw, RobotSpec()), raw)
