"""Devices are typed configs: the README's `--robot` / `--camera` spellings each become one
config of a known kind (parsed in one place), and `record` takes them in-process."""

from __future__ import annotations

import pytest

from robot_ssl.recording.device_setup import (
    NoCameraConfig,
    NoRobotConfig,
    SyntheticCameraConfig,
)
from robot_ssl.recording.record import RecordConfig, record
from robot_ssl.simlink.devices import DeviceOptions, DeviceSpellingError, parse_devices

SPELLINGS = [
    ("/dev/ttyACM0", "0", "thymio", "opencv"),
    ("auto", "/dev/video2", "thymio", "opencv"),
    ("socket://127.0.0.1:33333", "clip.avi", "tcp", "file"),
    ("tcp:robot.local:33334", "synthetic:160x120@20", "tcp", "synthetic"),
    ("sim", "sim", "sim", "sim"),
    ("sim:arena_boxes", "none", "sim", "none"),
    ("none", "rtsp://cam/stream", "none", "opencv"),
    ("/dev/ttyACM0", "picamera2:320x240@30", "thymio", "picamera2"),
    ("none", "picamera2", "none", "picamera2"),
]


@pytest.mark.parametrize(("robot", "camera", "robot_kind", "camera_kind"), SPELLINGS)
def test_each_spelling_is_one_typed_config(robot, camera, robot_kind, camera_kind):
    r, c = parse_devices(robot, camera, seed=4)
    assert (r.kind, c.kind) == (robot_kind, camera_kind)


def test_spellings_carry_their_fields_and_options():
    options = DeviceOptions(sim_link="pty")
    r, c = parse_devices("sim:arena_boxes", "sim", seed=7, options=options)
    assert (r.world, r.seed, r.link, r.source) == ("arena_boxes", 7, "pty", "sim:arena_boxes")
    r, c = parse_devices("tcp:robot.local:33334", "synthetic:160x120@20", seed=3)
    assert (r.host, r.port, r.source) == ("robot.local", 33334, "socket://robot.local:33334")
    assert (c.width, c.height, c.fps, c.seed) == (160, 120, 20.0, 3)
    r, c = parse_devices("/dev/ttyACM0", "0")
    assert r.port == "/dev/ttyACM0" and c.source == 0


@pytest.mark.parametrize(
    ("robot", "camera", "options", "words"),
    [
        ("none", "sim", DeviceOptions(), "--camera sim needs --robot sim"),
        ("/dev/ttyACM0", "0", DeviceOptions(sim_link="tcp"), "--sim-link needs --robot sim"),
        ("tcp:host:notaport", "none", DeviceOptions(), "expected socket://HOST:PORT"),
        ("socket://host:70000", "none", DeviceOptions(), "expected socket://HOST:PORT"),
        ("none", "synthetic:0x0", DeviceOptions(), "synthetic"),
    ],
)
def test_a_spelling_that_fits_no_device_is_refused(robot, camera, options, words):
    from robot_ssl.core.errors import RobotSSLError

    with pytest.raises(RobotSSLError, match=words) as e:
        parse_devices(robot, camera, options=options)
    assert "\n" not in str(e.value)
    assert isinstance(e.value, (DeviceSpellingError, RobotSSLError))


def test_record_takes_typed_devices_in_process(tmp_path, capsys):
    out = tmp_path / "s.h5"
    cfg = RecordConfig(str(out), camera=SyntheticCameraConfig(64, 48, 20.0, seed=1), duration_s=0.5)
    result = record(cfg)
    assert result.exit_status == 0 and out.exists()
    assert result.stats.counts.get("camera", 0) > 3
    assert f"to {out}" in capsys.readouterr().err


def test_record_of_nothing_is_refused_before_any_file():
    from robot_ssl.core.errors import RobotSSLError

    with pytest.raises(RobotSSLError, match="nothing to record"):
        RecordConfig("x.h5", NoRobotConfig(), NoCameraConfig())
