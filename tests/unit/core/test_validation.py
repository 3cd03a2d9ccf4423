"""Numbers and specs that make no sense: exit 2 with one line naming the option or key.

Command-line options go through robot_ssl.cli.argtypes; spec, train, label and model
configs read from files through robot_ssl.core.config.checked_fields (keys and types from the
dataclass annotations); library users hit the same checks in each config's __post_init__.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, field

import pytest

from robot_ssl.cli import argtypes
from robot_ssl.cli.main import main
from robot_ssl.core.config import check_number, checked_fields, describe_range
from robot_ssl.core.errors import SpecError
from robot_ssl.core.spec import (
    CameraSpec,
    IRSensor,
    RobotSpec,
    load_specs,
    save_specs,
    specs_to_json,
)

NAN, INF = float("nan"), float("inf")


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err, err
    return err


# -- command-line options ------------------------------------------------------------------

OPTION_CASES = [
    # record
    (["record", "--robot", "sim", "--camera", "sim", "o.h5", "--duration", "nan"], "--duration"),
    (["record", "--robot", "sim", "--camera", "sim", "o.h5", "--duration", "inf"], "--duration"),
    (["record", "--robot", "sim", "--camera", "sim", "o.h5", "--duration", "-1"], "--duration"),
    (["record", "--robot", "sim", "--camera", "sim", "o.h5", "--duration", "0"], "--duration"),
    (["record", "--robot", "sim", "--camera", "sim", "o.h5", "--fps", "0"], "--fps"),
    (["record", "--robot", "sim", "--camera", "sim", "o.h5", "--width", "0"], "--width"),
    (["record", "--robot", "sim", "--camera", "sim", "o.h5", "--width", "320.5"], "--width"),
    (["record", "--robot", "sim", "--camera", "sim", "o.h5", "--height", "abc"], "--height"),
    (["record", "--robot", "sim", "--camera", "sim", "o.h5", "--prox-hz", "nan"], "--prox-hz"),
    (["record", "--robot", "sim", "--camera", "sim", "o.h5", "--wheels-hz", "-5"], "--wheels-hz"),
    (["record", "--robot", "sim", "--camera", "sim", "o.h5", "--jpeg-quality", "101"], "--jpeg"),
    (["record", "--robot", "sim", "--camera", "sim", "o.h5", "--seed", "-1"], "--seed"),
    (["record", "--robot", "sim", "--camera", "sim", "o.h5", "--min-free-mb", "nan"], "--min-free"),
    # sim
    (["sim", "record", "o.h5", "--minutes", "nan"], "--minutes"),
    (["sim", "record", "o.h5", "--minutes", "-1"], "--minutes"),
    (["sim", "record", "o.h5", "--minutes", "1e999"], "--minutes"),
    (["sim", "record", "o.h5", "--minutes", "1", "--fps", "nan"], "--fps"),
    (["sim", "record", "o.h5", "--minutes", "1", "--width", "0"], "--width"),
    (["sim", "record", "o.h5", "--minutes", "1", "--jpeg-quality", "0"], "--jpeg-quality"),
    (["sim", "record", "o.h5", "--minutes", "1", "--seed", "1.5"], "--seed"),
    (["sim", "serve", "--port", "70000"], "--port"),
    (["sim", "serve", "--port", "-1"], "--port"),
    (["sim", "serve", "--time-scale", "0"], "--time-scale"),
    (["sim", "serve", "--duration", "nan"], "--duration"),
    (["sim", "show", "--pose", "0", "nan", "0"], "--pose"),
    (["sim", "show", "--wander", "-1"], "--wander"),
    (["sim", "show", "--height", "-3"], "--height"),
    (["sim", "generate", "w.yaml", "--seed", "-1"], "--seed"),
    # label
    (["label", "s.h5", "--tol-d", "nan"], "--tol-d"),
    (["label", "s.h5", "--tol-y", "0"], "--tol-y"),
    (["label", "s.h5", "--tol-theta", "inf"], "--tol-theta"),
    (["label", "s.h5", "--threshold", "-1"], "--threshold"),
    (["label", "s.h5", "--threshold", "0.5"], "--threshold"),
    (["label", "s.h5", "--jobs", "0"], "--jobs"),
    (["label", "s.h5", "--horizon", "inf"], "--horizon"),
    (["label", "s.h5", "--max-gap", "0"], "--max-gap"),
    (["label", "s.h5", "--max-backtrack", "-0.1"], "--max-backtrack"),
    # train
    (["train", "--data", "d", "--out", "r", "--epochs", "0"], "--epochs"),
    (["train", "--data", "d", "--out", "r", "--batch-size", "1.5"], "--batch-size"),
    (["train", "--data", "d", "--out", "r", "--lr", "nan"], "--lr"),
    (["train", "--data", "d", "--out", "r", "--weight-decay", "-1"], "--weight-decay"),
    (["train", "--data", "d", "--out", "r", "--pos-weight", "0"], "--pos-weight"),
    (["train", "--data", "d", "--out", "r", "--width", "0"], "--width"),
    (["train", "--data", "d", "--out", "r", "--height", "nan"], "--height"),
    (["train", "--data", "d", "--out", "r", "--val-fraction", "1"], "--val-fraction"),
    (["train", "--data", "d", "--out", "r", "--seed", "-3"], "--seed"),
    (["train", "--data", "d", "--out", "r", "--threads", "0"], "--threads"),
    # eval, export
    (["eval", "--model", "m.pt", "--data", "d", "--confidence", "1.5"], "--confidence"),
    (["eval", "--model", "m.pt", "--data", "d", "--confidence", "0"], "--confidence"),
    (["eval", "--model", "m.pt", "--data", "d", "--bootstrap", "-1"], "--bootstrap"),
    (["eval", "--model", "m.pt", "--data", "d", "--batch-size", "0"], "--batch-size"),
    (["eval", "--model", "m.pt", "--data", "d", "--seed", "nan"], "--seed"),
    (["export", "--model", "m.pt", "--format", "onnx", "--tolerance", "nan"], "--tolerance"),
    (["export", "--model", "m.pt", "--format", "onnx", "--tolerance", "-0.0001"], "--tolerance"),
    # run
    (["run", "--model", "m.onnx", "--robot", "sim", "--camera", "sim", "--speed", "-1"], "--speed"),
    (["run", "--model", "m.onnx", "--robot", "sim", "--camera", "sim", "--speed", "40000"], "--speed"),
    (["run", "--model", "m.onnx", "--robot", "sim", "--camera", "sim", "--duration", "nan"], "--dur"),
    (["run", "--model", "m.onnx", "--robot", "sim", "--camera", "sim", "--fps", "-30"], "--fps"),
    (["run", "--model", "m.onnx", "--robot", "sim", "--camera", "sim", "--threads", "0"], "--threads"),
    (["run", "--model", "m", "--robot", "sim", "--camera", "sim", "--max-staleness-ms", "500"], "--max"),
    (["run", "--model", "m", "--robot", "sim", "--camera", "sim", "--max-staleness-ms", "nan"], "--max"),
    (["run", "--model", "m", "--robot", "sim", "--camera", "sim", "--jpeg-quality", "0"], "--jpeg"),
    # replay, robot, demo
    (["replay", "s.h5", "--speed", "0"], "--speed"),
    (["replay", "s.h5", "--speed", "nan"], "--speed"),
    (["replay", "s.h5", "--max-frames", "0"], "--max-frames"),
    (["robot", "probe", "--timeout", "nan"], "--timeout"),
    (["robot", "probe", "--timeout", "-1"], "--timeout"),
    (["demo", "--jobs", "0"], "--jobs"),
    (["demo", "--epochs", "-1"], "--epochs"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "option"), OPTION_CASES)
def test_bad_numeric_option_is_one_line_exit_2(tmp_path, monkeypatch, capsys, argv, option):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = one_line_error(capsys)
    assert f"argument {option}" in err and "must be" in err and "got" in err, err
    assert err.startswith(f"robot-ssl {argv[0]}"), err
    assert not list(tmp_path.iterdir())  # nothing written


def test_option_message_names_the_range(capsys):
    argv = ["record", "--duration", "nan", "--robot", "sim", "--camera", "sim", "o.h5"]
    assert main(argv) == 2
    err = one_line_error(capsys)
    assert "argument --duration: must be a finite number in (0, 86400], got 'nan'" in err


def test_other_usage_errors_are_one_line_too(capsys):
    assert main(["sim", "record"]) == 2
    assert "required" in one_line_error(capsys)
    assert main(["nosuchverb"]) == 2
    assert "invalid choice" in one_line_error(capsys)


@pytest.mark.parametrize(
    ("factory", "good", "bad"),
    [
        (argtypes.positive_float, {"1": 1.0, "1e-3": 1e-3, " 2.5 ": 2.5}, ["0", "-1", "nan", "inf", "-inf", "x", ""]),
        (argtypes.non_negative_float, {"0": 0.0, "3": 3.0}, ["-1e-9", "nan", "inf"]),
        (argtypes.positive_int, {"1": 1, "64": 64}, ["0", "-1", "1.5", "1e3", "nan", "x"]),
        (lambda: argtypes.SEED, {"0": 0, str(2**32 - 1): 2**32 - 1}, ["-1", str(2**32), "0.5"]),
        (lambda: argtypes.PORT, {"0": 0, "65535": 65535}, ["-1", "65536"]),
        (lambda: argtypes.JPEG_QUALITY, {"1": 1, "100": 100}, ["0", "101"]),
        (lambda: argtypes.IMAGE_SIZE, {"1": 1, "8192": 8192}, ["0", "8193", "320.5"]),
        (lambda: argtypes.finite_float(0, 1, min_inclusive=False, max_inclusive=False), {"0.5": 0.5}, ["0", "1", "nan"]),
        (lambda: argtypes.finite_float(), {"-7": -7.0, "1e300": 1e300}, ["nan", "inf", "1e999"]),
    ],
)  # fmt: skip
def test_argtypes(factory, good, bad):
    parse = factory()
    for text, value in good.items():
        assert parse(text) == value and type(parse(text)) is type(value)
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError, match=r"must be .*, got"):
            parse(text)


def test_no_bare_numeric_types_left_in_the_cli():
    from pathlib import Path

    import robot_ssl.cli as cli

    for path in Path(cli.__file__).parent.glob("*.py"):
        text = path.read_text()
        assert "type=float" not in text and "type=int" not in text, path.name


# -- spec files through the CLI -----------------------------------------------------------

SENSOR = "{name: a, x_m: 0.08, y_m: 0.0, theta_rad: 0.0}"
SPEC_CASES = [
    ("robots:\n  wheel_radius_m: 0.02\n", "unknown top-level keys ['robots']"),
    ("camra:\n  width: 320\n", "unknown top-level keys ['camra']"),
    ("robot: {}\ncamera: {}\nextra: 1\n", "['extra']"),
    ("robot:\n  wheel_radius: 0.02\n", "robot: unknown keys ['wheel_radius']"),
    ("camera:\n  widht: 320\n", "camera: unknown keys ['widht']"),
    ("robot:\n  wheel_radius_m: abc\n", "robot.wheel_radius_m: must be a finite number, got 'abc'"),
    ("robot:\n  wheel_radius_m: true\n", "robot.wheel_radius_m: must be a finite number, got True"),
    ("robot:\n  wheel_radius_m: -0.02\n", "robot.wheel_radius_m: must be a finite number in (0, 10], got -0.02"),
    ("robot:\n  wheel_radius_m: [0.02]\n", "robot.wheel_radius_m: must be a finite number"),
    ("robot:\n  axle_length_m: 0\n", "robot.axle_length_m: must be a finite number in (0, 10], got 0"),
    ("robot:\n  speed_m_per_unit: .inf\n", "robot.speed_m_per_unit: must be a finite number, got inf"),
    ("robot:\n  speed_m_per_unit: .nan\n", "robot.speed_m_per_unit: must be a finite number, got nan"),
    ("robot:\n  max_speed_units: -100\n", "robot.max_speed_units: must be an integer in 1..32767, got -100"),
    ("robot:\n  max_speed_units: 500.5\n", "robot.max_speed_units: must be an integer, got 500.5"),
    ("robot:\n  max_speed_units: true\n", "robot.max_speed_units: must be an integer, got True"),
    ("robot:\n  prox_range_m: -1\n", "robot.prox_range_m: must be a finite number in (0, 10]"),
    ("robot:\n  prox_max: '4505'\n", "robot.prox_max: must be an integer, got '4505'"),
    ("robot:\n  prox_max: 0\n", "prox_max must exceed prox_min"),
    ("robot:\n  body_radius_m: 0\n", "robot.body_radius_m"),
    ("robot:\n  name: 7\n", "robot.name: must be a string, got 7"),
    ("robot:\n  front_sensor_indices: [0, 9]\n", "robot.front_sensor_indices[1]: must be an integer in 0..6"),
    ("robot:\n  front_sensor_indices: [0.5]\n", "robot.front_sensor_indices[0]: must be an integer"),
    ("robot:\n  front_sensor_indices: 0\n", "robot.front_sensor_indices: must be a list"),
    ("robot:\n  prox_sensors: []\n", "robot.prox_sensors: at least one"),
    ("robot:\n  prox_sensors: 3\n", "robot.prox_sensors: must be a list"),
    ("robot:\n  prox_sensors: [{name: a, x_m: b, y_m: 0, theta_rad: 0}]\n", "robot.prox_sensors[0].x_m: must be a finite number, got 'b'"),
    ("robot:\n  prox_sensors: [{name: a, x_m: 0, y_m: .nan, theta_rad: 0}]\n", "robot.prox_sensors[0].y_m"),
    ("robot:\n  prox_sensors: [{name: a, x_m: 0, y_m: 0}]\n", "robot.prox_sensors[0]: missing keys ['theta_rad']"),
    ("robot:\n  prox_sensors: [{name: a, x_m: 0, y_m: 0, theta_rad: 0, z_m: 0}]\n", "robot.prox_sensors[0]: unknown keys ['z_m']"),
    (f"robot:\n  prox_sensors: [{SENSOR}, 7]\n", "robot.prox_sensors[1]: expected a mapping"),
    (f"robot:\n  prox_sensors: [{SENSOR}, {SENSOR}]\n", "names must be distinct"),
    ("robot: 3\n", "robot: expected a mapping, got int"),
    ("robot: [1, 2]\n", "robot: expected a mapping, got list"),
    ("camera:\n  width: 320.5\n", "camera.width: must be an integer, got 320.5"),
    ("camera:\n  width: 0\n", "camera.width: must be an integer in 1..8192"),
    ("camera:\n  height: true\n", "camera.height: must be an integer, got True"),
    ("camera:\n  fps: .nan\n", "camera.fps: must be a finite number, got nan"),
    ("camera:\n  fps: 0\n", "camera.fps: must be a finite number in (0, 1000]"),
    ("camera:\n  fps: fast\n", "camera.fps: must be a finite number, got 'fast'"),
    ("camera:\n  hfov_rad: 3.2\n", "camera.hfov_rad: must be a finite number in (0, 3.14159)"),
    ("camera:\n  fx: -100\n", "camera.fx: must be a finite number in (0, 1000000] or null"),
    ("camera:\n  fy: .inf\n", "camera.fy: must be a finite number or null"),
    ("camera:\n  cx: abc\n", "camera.cx"),
    ("camera:\n  z_m: 0\n", "camera.z_m: must be a finite number in (0, 10]"),
    ("camera:\n  x_m: .nan\n", "camera.x_m: must be a finite number, got nan"),
    ("camera:\n  pitch_rad: .inf\n", "camera.pitch_rad"),
    ("camera:\n  pitch_rad: 2.0\n", "camera.pitch_rad: must be a finite number in (-1.5708, 1.5708)"),
    ("- robot\n", "expected a mapping with 'robot' and/or 'camera'"),
    ("robot: [1\n", "not valid yaml"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), SPEC_CASES)
def test_bad_spec_file_sim_record_is_one_line_exit_2(tmp_path, capsys, text, message):
    spec = tmp_path / "bad.yaml"
    spec.write_text(text)
    out = tmp_path / "s.h5"
    assert main(["sim", "record", str(out), "--minutes", "0.01", "--spec", str(spec)]) == 2
    err = one_line_error(capsys)
    assert f"{spec}: " in err and message in err, err
    assert not out.exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("camra:\n  width: 320\n", "unknown top-level keys ['camra']"),
        ("robot:\n  wheel_radius_m: abc\n", "robot.wheel_radius_m: must be a finite number"),
        (
            "robot:\n  max_speed_units: -100\n",
            "robot.max_speed_units: must be an integer in 1..32767",
        ),
        ("camera:\n  fps: .nan\n", "camera.fps: must be a finite number, got nan"),
    ],
)
def test_bad_spec_file_record_and_show(tmp_path, monkeypatch, capsys, text, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "robot.yaml").write_text(text)
    argv = ["record", "--robot", "sim", "--camera", "sim", "--duration", "1", "--spec"]
    assert main([*argv, "robot.yaml", "o.h5"]) == 2
    err = one_line_error(capsys)
    assert f"robot.yaml: {message}" in err, err
    assert main(["sim", "show", "--spec", "robot.yaml", "--out", "img"]) == 2
    assert f"robot.yaml: {message}" in one_line_error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["robot.yaml"]


def test_bad_spec_json_file(tmp_path, capsys):
    spec = tmp_path / "bad.json"
    spec.write_text(json.dumps({"camera": {"width": 320, "fps": 1e999}}))  # JSON Infinity
    argv = ["sim", "record", str(tmp_path / "s.h5"), "--minutes", "0.01", "--spec", str(spec)]
    assert main(argv) == 2
    assert "camera.fps: must be a finite number, got inf" in one_line_error(capsys)


def test_good_spec_file_still_records(tmp_path, capsys):
    spec = tmp_path / "robot.yaml"
    spec.write_text(
        "robot:\n  speed_m_per_unit: 0.000345\n  max_speed_units: 500\n"
        "camera:\n  width: 160\n  height: 120\n  hfov_rad: 1.78\n  x_m: 0.03\n"
        "  z_m: 0.095\n  pitch_rad: 0.35\n  fps: 10\n  fx: null\n"
    )
    out = tmp_path / "s.h5"
    argv = ["sim", "record", str(out), "--minutes", "0.01", "--spec", str(spec), "--no-progress"]
    assert main(argv) == 0, capsys.readouterr().err
    from robot_ssl.io.session import SessionReader

    with SessionReader(out) as r:
        assert r.robot.speed_m_per_unit == 0.000345
        assert (r.camera.width, r.camera.height, r.camera.fps) == (160, 120, 10.0)


# -- specs in the library ----------------------------------------------------------------


def test_default_specs_round_trip():
    robot, camera = RobotSpec(), CameraSpec()
    rj, cj = specs_to_json(robot, camera)
    assert RobotSpec.from_dict(json.loads(rj)) == robot
    assert CameraSpec.from_dict(json.loads(cj)) == camera
    assert RobotSpec.from_dict({}) == robot and CameraSpec.from_dict({}) == camera


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_save_load_specs_round_trip(tmp_path, suffix):
    robot = RobotSpec(speed_m_per_unit=0.0003, front_sensor_indices=(1, 2, 3))
    camera = CameraSpec(width=64, height=48, fx=50.0, cy=20.0, fps=15.0)
    save_specs(tmp_path / f"s{suffix}", robot, camera)
    assert load_specs(tmp_path / f"s{suffix}") == (robot, camera)


def test_empty_spec_file_takes_defaults(tmp_path):
    (tmp_path / "e.yaml").write_text("")
    (tmp_path / "n.yaml").write_text("robot:\ncamera:\n")
    assert load_specs(tmp_path / "e.yaml") == (RobotSpec(), CameraSpec())
    assert load_specs(tmp_path / "n.yaml") == (RobotSpec(), CameraSpec())


def test_integers_in_float_fields_are_floats():
    camera = CameraSpec.from_dict({"fps": 30, "hfov_rad": 1})
    assert type(camera.fps) is float and camera == CameraSpec(fps=30.0, hfov_rad=1.0)
    sensor = {"name": "c", "x_m": 0, "y_m": 0, "theta_rad": 0}
    robot = RobotSpec.from_dict({"prox_sensors": [sensor], "front_sensor_indices": [0]})
    assert robot.prox_sensors == (IRSensor("c", 0.0, 0.0, 0.0),)
    assert robot.front_sensor_indices == (0,)


def test_session_files_rebuild_their_specs(tmp_path):
    import h5py
    import numpy as np

    from robot_ssl.io.session import SessionReader, SessionWriter

    robot, camera = RobotSpec(speed_m_per_unit=0.0003), CameraSpec(width=64, height=48)
    path = tmp_path / "s.h5"
    with SessionWriter(path, robot, camera) as w:
        w.write_frame(1_000_000_000, np.zeros((48, 64, 3), np.uint8))
    with SessionReader(path) as r:
        assert r.robot == robot and r.camera == camera
    # an older writer's JSON: integers for floats, explicit nulls
    with h5py.File(path, "r+") as f:
        d = json.loads(f.attrs["camera_spec"])
        d.update(fps=30, x_m=0, fx=None)
        f.attrs["camera_spec"] = json.dumps(d)
    with SessionReader(path) as r:
        assert r.camera == CameraSpec(width=64, height=48, fps=30.0, x_m=0.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"wheel_radius_m": 0}, "robot.wheel_radius_m: must be a finite number in"),
        ({"wheel_radius_m": NAN}, "robot.wheel_radius_m"),
        ({"axle_length_m": INF}, "robot.axle_length_m"),
        ({"speed_m_per_unit": -1e-4}, "robot.speed_m_per_unit"),
        ({"speed_m_per_unit": "0.0003"}, "robot.speed_m_per_unit"),
        ({"max_speed_units": 0}, "robot.max_speed_units: must be an integer in 1..32767"),
        ({"max_speed_units": 500.0}, "robot.max_speed_units: must be an integer"),
        ({"max_speed_units": True}, "robot.max_speed_units"),
        ({"prox_range_m": -1}, "robot.prox_range_m"),
        ({"prox_range_m": NAN}, "robot.prox_range_m"),
        ({"body_radius_m": 0}, "robot.body_radius_m"),
        ({"prox_min": 0.5}, "robot.prox_min"),
        ({"prox_max": INF}, "robot.prox_max"),
        ({"prox_sensors": ()}, "at least one"),
        ({"prox_sensors": ((0.0, 0.0, 0.0),)}, "robot.prox_sensors[0]: must be a ProxSensor"),
        ({"front_sensor_indices": (7,)}, "robot.front_sensor_indices[0]"),
        ({"front_sensor_indices": (-1,)}, "robot.front_sensor_indices[0]"),
        ({"front_sensor_indices": (True,)}, "robot.front_sensor_indices[0]"),
    ],
)
def test_robot_spec_rejects(kwargs, message):
    with pytest.raises(SpecError, match=message.replace("[", r"\[").replace(".", r"\.")):
        RobotSpec(**kwargs)


@pytest.mark.parametrize("bad", [NAN, INF, -INF, "0", None, True])
@pytest.mark.parametrize("name", ["x_m", "y_m", "theta_rad"])
def test_ir_sensor_pose_must_be_finite(name, bad):
    kwargs = {"name": "s", "x_m": 0.0, "y_m": 0.0, "theta_rad": 0.0, name: bad}
    with pytest.raises(SpecError, match=f"ProxSensor.{name}"):
        IRSensor(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "field_name"),
    [
        ({"width": 0}, "width"),
        ({"width": 320.0}, "width"),
        ({"height": -1}, "height"),
        ({"height": False}, "height"),
        ({"hfov_rad": 0}, "hfov_rad"),
        ({"hfov_rad": math.pi}, "hfov_rad"),
        ({"hfov_rad": NAN}, "hfov_rad"),
        ({"fx": 0.0}, "fx"),
        ({"fx": NAN}, "fx"),
        ({"fy": -1.0}, "fy"),
        ({"cx": INF}, "cx"),
        ({"cy": NAN}, "cy"),
        ({"x_m": NAN}, "x_m"),
        ({"y_m": INF}, "y_m"),
        ({"z_m": 0.0}, "z_m"),
        ({"z_m": NAN}, "z_m"),
        ({"pitch_rad": NAN}, "pitch_rad"),
        ({"pitch_rad": math.pi / 2}, "pitch_rad"),
        ({"fps": 0}, "fps"),
        ({"fps": NAN}, "fps"),
        ({"fps": INF}, "fps"),
    ],
)
def test_camera_spec_rejects(kwargs, field_name):
    with pytest.raises(SpecError, match=rf"camera\.{field_name}: must be"):
        CameraSpec(**kwargs)


# -- the other configs -------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"prox_hz": NAN},
        {"prox_hz": 0},
        {"wheels_hz": INF},
        {"camera_fps": NAN},
        {"camera_fps": -1.0},
        {"jpeg_quality": 0},
        {"jpeg_quality": 90.5},
        {"flush_interval_s": NAN},
        {"frame_queue_size": 0},
        {"write_queue_frames": 2.5},
        {"write_queue_rows": True},
        {"robot_retry_s": 0},
        {"target_refresh_s": INF},
        {"camera_stall_s": -1},
        {"max_odometry_gap_ns": 0},
        {"min_free_bytes": -1},
        {"min_free_bytes": NAN},
        {"status_interval_s": NAN},
        {"status": "yes"},
    ],
)
def test_recorder_config_rejects(kwargs):
    from robot_ssl.recording.recorder import RecorderConfig, RecorderError

    with pytest.raises(RecorderError, match=f"recorder config.{next(iter(kwargs))}: must be"):
        RecorderConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_staleness_s": NAN},
        {"watchdog_period_s": INF},
        {"sensor_hz": NAN},
        {"sensor_hz": 0},
        {"prox_every": 0},
        {"prox_every": 2.5},
        {"frame_poll_s": -1},
        {"status_interval_s": NAN},
        {"health_interval_s": 0},
    ],
)
def test_live_config_rejects(kwargs):
    from robot_ssl.live.loop import LiveConfig

    with pytest.raises(ValueError, match=f"live config.{next(iter(kwargs))}: must be"):
        LiveConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"epochs": 2.5},
        {"epochs": True},
        {"batch_size": 0},
        {"eval_batch_size": NAN},
        {"lr": NAN},
        {"lr": INF},
        {"min_lr": NAN},
        {"weight_decay": INF},
        {"warmup_steps": -1},
        {"step_epochs": 0},
        {"step_gamma": NAN},
        {"grad_clip": NAN},
        {"pos_weight": NAN},
        {"pos_weight": 0.0},
        {"val_fraction": NAN},
        {"val_fraction": 1.0},
        {"seed": -1},
        {"seed": 1.5},
        {"num_threads": 0},
        {"decode_workers": -1},
        {"input_width": 0},
        {"input_height": 64.0},
    ],
)
def test_train_config_rejects(kwargs):
    from robot_ssl.learning.train import TrainConfig, TrainError

    with pytest.raises(TrainError, match=f"train config.{next(iter(kwargs))}: must be"):
        TrainConfig(**kwargs)


def test_train_config_from_dict_checks_types():
    from robot_ssl.learning.train import AugmentConfig, TrainConfig, TrainError

    cfg = TrainConfig.from_dict({"augment": {"hflip": False}, "lr": 1, "data": ["a"]})
    assert cfg.augment == AugmentConfig(hflip=False) and cfg.lr == 1.0 and cfg.data == ("a",)
    cases = [
        ({"augment": {"hflip": "no"}}, r"train config\.augment\.hflip: must be true or false"),
        ({"augment": {"brightness": NAN}}, r"augment\.brightness"),
        ({"augment": {"flip": True}}, r"train config\.augment: unknown keys \['flip'\]"),
        ({"epochs": "30"}, r"train config\.epochs: must be an integer"),
        ({"resume": 1}, r"train config\.resume: must be true or false"),
        ({"data": "sessions/"}, r"train config\.data: must be a list"),
        ({"model": []}, r"train config\.model: must be a mapping"),
        ({"pos_weight": "high"}, r"train config\.pos_weight"),
    ]
    for d, message in cases:
        with pytest.raises(TrainError, match=message):
            TrainConfig.from_dict(d)
    with pytest.raises(TrainError, match=r"augment\.contrast"):
        AugmentConfig(contrast="a lot")


def test_model_config_from_dict_checks_types():
    from robot_ssl.learning.models import ModelConfig, ModelError

    cfg = ModelConfig(
        distances_m=tuple(0.01 * i for i in range(31)), sensor_indices=(0, 1, 2, 3, 4)
    )
    assert ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    for d, message in [
        ({"hidden": 1.5}, r"model config\.hidden: must be an integer"),
        ({"dropout": NAN}, r"model config\.dropout"),
        ({"widths": [8, "8"]}, r"model config\.widths\[1\]: must be an integer"),
        ({"arch": 1}, r"model config\.arch: must be a string"),
    ]:
        with pytest.raises(ModelError, match=message):
            ModelConfig.from_dict(d)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"threshold": True}, r"threshold: must be an integer, got True"),
        ({"tol_d_m": NAN}, r"tol_d_m: must be a finite number, got nan"),
        ({"horizon_s": INF}, r"horizon_s: must be a finite number"),
        ({"sensor_indices": [0, 1.5]}, r"sensor_indices\[1\]: must be an integer"),
        ({"sensor_indices": [True]}, r"sensor_indices\[0\]: must be an integer"),
        ({"distances_m": [0.0, "0.1"]}, r"distances_m\[1\]: must be a finite number"),
        ({"distances_m": [0.0, INF]}, r"distances_m\[1\]"),
        ({"distances_m": {"start": 0, "stop": INF, "step": 0.01}}, r"distances_m\.stop"),
        ({"distances_m": {"start": 0, "stop": 0.3, "step": NAN}}, r"distances_m\.step"),
        ({"distances_m": {"start": "0", "stop": 0.3, "step": 0.1}}, r"distances_m\.start"),
    ],
)
def test_label_config_from_dict_checks_types(data, message):
    from robot_ssl.labelling.labeller import LabelConfig, LabelConfigError

    with pytest.raises(LabelConfigError, match=r"label config\." + message):
        LabelConfig.from_dict(data)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tol_d_m": NAN},
        {"tol_y_m": INF},
        {"horizon_s": NAN},
        {"max_backtrack_m": NAN},
        {"min_duration_s": INF},
        {"threshold": True},
        {"threshold": 0.5},
        {"sensor_indices": (0, True)},
        {"sensor_indices": (0, 1.5)},
        {"distances_m": (0.0, NAN)},
        {"distances_m": ("0.1",)},
        {"tol_d_m": "0.01"},
    ],
)
def test_label_config_rejects(kwargs):
    from robot_ssl.labelling.labeller import LabelConfig, LabelConfigError

    with pytest.raises(LabelConfigError, match="label config"):
        LabelConfig(**kwargs)


@pytest.mark.parametrize("what", ["label config", "camera offset"])
def test_label_config_and_camera_offset_from_broken_json(what):
    """A labels file's JSON attributes that do not parse: one line naming which."""
    from robot_ssl.core.label_grid import CameraOffset, LabelConfig, LabelConfigError

    cls = LabelConfig if what == "label config" else CameraOffset
    with pytest.raises(LabelConfigError, match=f"^{what}: not valid JSON: ") as e:
        cls.from_json('{"tol_d_m": 0.01')
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "args", [(0.0, INF, 0.01), (0.0, 0.3, NAN), (NAN, 0.3, 0.01), (0.0, 0.3, INF)]
)
def test_distance_grid_needs_finite_numbers(args):
    from robot_ssl.labelling.labeller import LabelConfigError, distance_grid

    with pytest.raises(LabelConfigError, match="must be a finite number"):
        distance_grid(*args)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("threshold: true\n", "label config.threshold: must be an integer, got True"),
        ("tol_d_m: .nan\n", "label config.tol_d_m: must be a finite number, got nan"),
        ("distances_m: {start: 0, stop: .inf, step: 0.01}\n", "distances_m.stop"),
        ("tol_dm: 0.01\n", "unknown keys ['tol_dm']"),
    ],
)
def test_bad_label_config_file_is_one_line_exit_2(tmp_path, capsys, text, message):
    cfg = tmp_path / "label.yaml"
    cfg.write_text(text)
    assert main(["label", str(tmp_path / "s.h5"), "--config", str(cfg)]) == 2
    err = one_line_error(capsys)
    assert f"{cfg}: " in err and message in err, err


@pytest.mark.parametrize(
    ("cls_name", "kwargs", "message"),
    [
        ("DriveParams", {"max_speed_units": 500.5}, "drive.max_speed_units: must be an integer"),
        ("DriveParams", {"axle_length_m": NAN}, "drive.axle_length_m: must be a finite number"),
        ("DriveParams", {"wheel_noise_std": INF}, "drive.wheel_noise_std"),
        ("IRParams", {"range_m": NAN}, "ir.range_m: must be a finite number"),
        ("IRParams", {"poses": ((0.0, NAN, 0.0),)}, "ir.poses"),
        ("IRParams", {"noise_at_zero": 1}, "ir.noise_at_zero: must be true or false"),
        ("CameraParams", {"fps": INF}, "camera.fps: must be a finite number"),
        ("CameraParams", {"width": 320.0}, "camera.width: must be an integer"),
        ("CameraParams", {"fx": NAN}, "camera.fx: must be a finite number or null"),
    ],
)
def test_sim_params_reject(cls_name, kwargs, message):
    from sim.camera import CameraParams
    from sim.errors import SimError
    from sim.ir import IRParams
    from sim.kinematics import DriveParams

    classes = {c.__name__: c for c in (DriveParams, IRParams, CameraParams)}
    with pytest.raises(SimError) as e:
        classes[cls_name](**kwargs)
    assert message in str(e.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_leg_s": NAN}, "wander.max_leg_s"),
        ({"cruise_speed": (120, INF)}, "wander.cruise_speed"),
    ],
)
def test_wander_config_rejects(kwargs, message):
    from robot_ssl.recording.recorder import RecorderError
    from robot_ssl.recording.wander import WanderConfig

    with pytest.raises(RecorderError) as e:
        WanderConfig(**kwargs)
    assert message in str(e.value)


# -- core.config's generic checks ------------------------------------------------------


@dataclass(frozen=True)
class _Inner:
    a: int
    b: float = 1.0


@dataclass(frozen=True)
class _Outer:
    n: int = 0
    x: float = 0.0
    flag: bool = False
    s: str = ""
    opt: float | None = None
    pair: tuple[int, float] = (0, 0.0)
    many: tuple[float, ...] = ()
    names: list[str] = field(default_factory=list)
    table: dict[str, int] = field(default_factory=dict)
    inner: _Inner | None = None
    inners: tuple[_Inner, ...] = ()
    either: int | str = 0


def test_checked_fields_converts_what_fits():
    d = checked_fields(
        _Outer,
        {
            "n": 3,
            "x": 2,
            "opt": None,
            "pair": [1, 2],
            "many": [1, 2.5],
            "names": ("a",),
            "table": {"k": 1},
            "inner": {"a": 1},
            "inners": [{"a": 2, "b": 3}],
            "either": "e",
        },
        "cfg",
        ValueError,
    )
    assert d["x"] == 2.0 and type(d["x"]) is float
    assert d["pair"] == (1, 2.0) and d["many"] == (1.0, 2.5) and d["names"] == ["a"]
    assert d["inner"] == _Inner(1) and d["inners"] == (_Inner(2, 3.0),) and d["either"] == "e"
    assert _Outer(**d).opt is None


@pytest.mark.parametrize(
    ("d", "message"),
    [
        ({"n": 1.0}, "cfg.n: must be an integer, got 1.0"),
        ({"n": False}, "cfg.n: must be an integer, got False"),
        ({"n": None}, "cfg.n: must be an integer, got None"),
        ({"x": "1"}, "cfg.x: must be a finite number, got '1'"),
        ({"x": NAN}, "cfg.x: must be a finite number, got nan"),
        ({"flag": 0}, "cfg.flag: must be true or false, got 0"),
        ({"s": 1}, "cfg.s: must be a string, got 1"),
        ({"opt": INF}, "cfg.opt: must be a finite number or null, got inf"),
        ({"pair": [1]}, "cfg.pair: must be a list of 2 items"),
        ({"pair": [1.5, 2]}, "cfg.pair[0]: must be an integer"),
        ({"many": "12"}, "cfg.many: must be a list, got '12'"),
        ({"many": {"a": 1}}, "cfg.many: must be a list"),
        ({"many": [1, None]}, "cfg.many[1]: must be a finite number, got None"),
        ({"names": [1]}, "cfg.names[0]: must be a string"),
        ({"table": [1]}, "cfg.table: must be a mapping"),
        ({"table": {"k": "v"}}, "cfg.table.k: must be an integer"),
        ({"inner": {"b": 1}}, "cfg.inner: missing keys ['a']"),
        ({"inner": {"a": 1, "c": 1}}, "cfg.inner: unknown keys ['c']"),
        ({"inner": 3}, "cfg.inner: expected a mapping, got int"),
        ({"inners": [{"a": 1}, {"a": "x"}]}, "cfg.inners[1].a: must be an integer, got 'x'"),
        ({"either": 1.5}, "cfg.either: must be an integer or a string, got 1.5"),
        ({"zz": 1, "n": 1}, "cfg: unknown keys ['zz']"),
    ],
)
def test_checked_fields_rejects_with_the_key_path(d, message):
    with pytest.raises(ValueError) as e:
        checked_fields(_Outer, d, "cfg", ValueError)
    assert str(e.value).startswith(message), str(e.value)


def test_checked_fields_without_types_only_checks_keys():
    assert checked_fields(_Outer, {"n": "x"}, "cfg", ValueError, types=False) == {"n": "x"}
    with pytest.raises(ValueError, match="expected a mapping, got list"):
        checked_fields(_Outer, [], "cfg", ValueError)


def test_check_number_and_its_words():
    assert describe_range(min=0, min_inclusive=False) == "a finite number > 0"
    assert describe_range(integer=True, min=1, max=100) == "an integer in 1..100"
    assert describe_range(min=0, max=1, max_inclusive=False) == "a finite number in [0, 1)"
    assert describe_range(max=5, max_inclusive=False) == "a finite number < 5"
    assert check_number(3, "n", ValueError, integer=True, min=1) == 3
    assert check_number(None, "n", ValueError, optional=True) is None
    import numpy as np

    assert check_number(np.int64(3), "n", ValueError, integer=True) == 3
    assert check_number(np.float32(0.5), "x", ValueError, min=0) == 0.5
    for bad in (NAN, INF, True, "1", None, np.nan):
        with pytest.raises(ValueError, match="x: must be a finite number, got"):
            check_number(bad, "x", ValueError)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cruise_speed": 200.5},
        {"turn_speed": True},
        {"steer_gain": NAN},
        {"memory_s": INF},
        {"side_distance_m": NAN},
        {"threshold": NAN},
    ],
)
def test_avoid_config_rejects(kwargs):
    from robot_ssl.live.controllers import AvoidConfig

    with pytest.raises(ValueError, match=f"avoid config.{next(iter(kwargs))}: must be"):
        AvoidConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"width": 320.5},
        {"height": True},
        {"fps": NAN},
        {"open_timeout_s": INF},
        {"stall_timeout_s": NAN},
        {"max_consecutive_failures": 1.5},
        {"loop": "yes"},
    ],
)
def test_opencv_camera_config_rejects(kwargs):
    from robot_ssl.recording.cameras import CameraError, OpenCVCameraConfig

    with pytest.raises(CameraError, match=f"camera.{next(iter(kwargs))}: must be"):
        OpenCVCameraConfig(**kwargs)
