"""The Raspberry Pi camera (`--camera picamera2[:WxH[@FPS]]`) against the picamera2 test
double (tests/doubles/picamera2, which follows The Picamera2 Library manual's API):
frames with the double's images in BGR order, stamped at the sensor's mid-exposure on
the session's clock, `record` writing them (and saying so in the session's metadata),
the labeller applying no estimated delay to them, and the faults: no picamera2, no
camera, a capture that raises mid-run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from paths import TESTS
from robot_cli import ROBOT_SSL

from robot_ssl.core.errors import RobotSSLError
from robot_ssl.core.label_grid import LabelConfig
from robot_ssl.core.spec import CameraSpec
from robot_ssl.io.session import SessionReader, SessionWriter
from robot_ssl.labelling.session_labels import resolve_camera_offset
from robot_ssl.recording.device_setup import Picamera2Config
from robot_ssl.recording.picamera2_camera import (
    SENSOR_MID_EXPOSURE,
    Picamera2Camera,
    boottime_to_monotonic_ns,
    mid_exposure_ns,
)
from robot_ssl.recording.recorder import Recorder, RecorderConfig
from robot_ssl.simlink.devices import parse_devices

DOUBLES = TESTS / "doubles"
LATENCY_MS, EXPOSURE_US = 50, 20000  # the double's defaults


@pytest.fixture
def double(monkeypatch):
    """The picamera2 double importable as `picamera2` (a fresh import per test)."""
    monkeypatch.syspath_prepend(str(DOUBLES))
    monkeypatch.delitem(sys.modules, "picamera2", raising=False)
    import picamera2

    return picamera2


def _cli(args: list[str], **env: str) -> subprocess.CompletedProcess:
    """`robot-ssl ARGS` in a process that imports the double as picamera2 (unless
    PYTHONPATH is given), with the double's environment variables `env`."""
    full = {**os.environ, "PYTHONPATH": str(DOUBLES), **env}
    return subprocess.run(
        [*ROBOT_SSL, *args], capture_output=True, text=True, env=full, timeout=120
    )


def _info(path: Path) -> dict:
    p = subprocess.run([*ROBOT_SSL, "info", "--json", str(path)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def _one_line_error(p: subprocess.CompletedProcess, *words: str) -> None:
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    for w in words:
        assert w in lines[0], lines[0]


# -- the camera in-process -----------------------------------------------------------


def test_frames_arrive_with_the_doubles_images_in_bgr_order(double):
    with Picamera2Camera(96, 64, 30) as cam:
        assert (cam.width, cam.height, cam.fps) == (96, 64, 30.0)
        assert cam.model == "imx708_wide"
        time.sleep(0.3)
        frame = cam.read()
        health = cam.health()
    assert frame is not None and frame.image.shape == (64, 96, 3)
    assert frame.image.dtype == np.uint8 and frame.image.flags.c_contiguous
    # the scene's red half is red in OpenCV's order: B, G, R
    assert tuple(frame.image[10, 5]) == double.RED_BGR and double.RED_BGR[2] > 150
    assert tuple(frame.image[10, 90]) == double.BLUE_BGR and double.BLUE_BGR[0] > 150
    assert health.frames_captured >= 3 and not health.failed


def test_frame_times_are_the_sensors_mid_exposure_on_the_session_clock(double):
    frames = {}
    with Picamera2Camera(64, 48, 30) as cam:
        end = time.monotonic() + 0.6
        while time.monotonic() < end:
            f = cam.read()
            if f is not None:
                frames[f.index] = f.t_ns
            time.sleep(0.005)
    log = list(double.Picamera2.log)
    assert len(frames) >= 10
    truth = np.array([d.mid_exposure_ns for d in log])
    delivered = np.array([d.delivered_ns for d in log])
    stamps = np.array(sorted(frames.values()))
    nearest = np.abs(stamps[:, None] - truth[None, :]).argmin(axis=1)
    # each stamp is a frame's true mid-exposure (time.monotonic_ns' clock), within 0.5 ms
    assert np.abs(stamps - truth[nearest]).max() < 0.5e6
    # not its start (20 ms earlier) nor its arrival (50 ms latency + 10 ms later)
    lag_ms = (delivered[nearest] - stamps) / 1e6
    assert np.all(lag_ms > LATENCY_MS + EXPOSURE_US / 2000 - 1)


def test_mid_exposure_converts_the_boottime_stamp_to_the_monotonic_clock():
    # a Pi suspended for 3 s: CLOCK_BOOTTIME runs 3 s ahead of CLOCK_MONOTONIC
    t = mid_exposure_ns(10_000_000_000, 20000, -3_000_000_000)
    assert t == 10_000_000_000 - 10_000_000 - 3_000_000_000
    assert mid_exposure_ns(5_000_000, 333.5, 0) == 5_000_000 - 166_750
    measured = boottime_to_monotonic_ns()
    direct = time.clock_gettime_ns(time.CLOCK_MONOTONIC) - time.clock_gettime_ns(
        time.CLOCK_BOOTTIME
    )
    assert abs(measured - direct) < 1_000_000


def test_a_capture_that_raises_marks_the_camera_failed(double, monkeypatch):
    monkeypatch.setenv("PICAMERA2_DOUBLE_FAIL_AFTER", "5")
    with Picamera2Camera(64, 48, 30) as cam:
        deadline = time.monotonic() + 3
        while not cam.health().failed and time.monotonic() < deadline:
            time.sleep(0.01)
        health = cam.health()
        last = cam.read()
    assert health.failed and health.frames_captured == 5
    assert health.error == "capture error: Camera frontend has timed out!"
    assert last is not None and last.index == 4  # the last frame stays readable


def test_a_camera_only_recording_ends_with_its_camera(double, monkeypatch, tmp_path):
    monkeypatch.setenv("PICAMERA2_DOUBLE_FAIL_AFTER", "12")
    path = tmp_path / "cam.h5"
    started = time.monotonic()
    with (
        Picamera2Camera(64, 48, 30) as cam,
        SessionWriter(path, camera=CameraSpec(width=64, height=48)) as w,
    ):
        stats = Recorder(None, cam, w, RecorderConfig(status=False)).run(20)
        last = cam.read()
    assert time.monotonic() - started < 5  # not the 20 s asked for: nothing left to record
    assert last is not None
    assert stats.camera_failed and stats.stop_reason.startswith("camera failed: capture error")
    with SessionReader(path) as r:
        assert 1 <= r.num_frames <= 12
        assert r.camera_t_ns[-1] == last.t_ns  # up to the camera's last frame
        assert [e.kind for e in r.events()].count("camera_failed") == 1


# -- spellings -----------------------------------------------------------------------


def test_picamera2_spellings_are_typed_configs():
    _, cam = parse_devices("sim", "picamera2:320x240@30")
    assert cam == Picamera2Config(320, 240, 30.0) and cam.kind == "picamera2"
    _, cam = parse_devices("none", "picamera2")
    assert (cam.width, cam.height, cam.fps, cam.camera_num) == (640, 480, 30.0, 0)
    assert cam.source == "picamera2:640x480@30"
    for bad in ("picamera2:320", "picamera2:0x240@30", "picamera2:320x240@0"):
        with pytest.raises(RobotSSLError, match="picamera2"):
            parse_devices("none", bad)


# -- the command line ----------------------------------------------------------------


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    """`record --robot sim --camera picamera2:320x240@30 --duration 2` with the double."""
    out = tmp_path_factory.mktemp("picamera2") / "pi.h5"
    args = ["--robot", "sim", "--camera", "picamera2:320x240@30", "--duration", "2"]
    p = _cli(["record", *args, str(out)])
    assert p.returncode == 0, p.stderr
    return out


def test_record_writes_the_frames_at_their_size_and_rate(recorded):
    info = _info(recorded)
    assert (info["camera"]["width"], info["camera"]["height"]) == (320, 240)
    assert info["camera"]["fps"] == pytest.approx(30)
    assert info["streams"]["camera"]["rate_hz"] == pytest.approx(30, rel=0.1)
    assert info["streams"]["camera"]["count"] >= 50
    assert info["streams"]["proximity"]["count"] > 0  # the simulated robot's streams too
    meta = info["metadata"]
    assert meta["camera_stamp"] == SENSOR_MID_EXPOSURE
    assert meta["camera_source"] == "picamera2:320x240@30"
    with SessionReader(recorded) as r:
        image = r.frame(0)
        assert image.shape == (240, 320, 3)
        # the JPEG's red half is still red (B, G, R order through encode and decode)
        assert image[120, 40, 2] > 150 and image[120, 40, 0] < 80
        assert image[120, 280, 0] > 150 and image[120, 280, 2] < 80


def test_the_labeller_applies_no_delay_to_sensor_stamped_frames(recorded):
    with SessionReader(recorded) as r:
        auto = resolve_camera_offset(r, LabelConfig())
        spec = resolve_camera_offset(r, LabelConfig(camera_offset="spec"))
    assert auto.source == "sensor" and auto.applied_s == 0.0
    assert auto.reason  # the estimate still ran, as a check (too short a session to trust)
    assert spec.source == "spec"


def test_no_picamera2_module_is_one_line_exit_2(tmp_path):
    out = tmp_path / "x.h5"
    p = _cli(["record", "--robot", "none", "--camera", "picamera2", str(out)], PYTHONPATH="")
    _one_line_error(p, "picamera2", "python3-picamera2")
    assert not out.exists()


def test_a_picamera2_that_fails_to_import_is_one_line_exit_2(tmp_path):
    broken = tmp_path / "site" / "picamera2"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text(  # what the OS's simplejpeg says under numpy 2
        'raise ValueError("numpy.dtype size changed, may indicate binary incompatibility.'
        ' Expected 96 from C header, got 88 from PyObject")\n'
    )
    out = tmp_path / "x.h5"
    p = _cli(
        ["record", "--robot", "none", "--camera", "picamera2", str(out)],
        PYTHONPATH=str(broken.parent),
    )
    _one_line_error(p, "importing picamera2 failed: numpy.dtype size changed", "simplejpeg")
    assert not out.exists()


def test_no_camera_is_one_line_exit_2(tmp_path):
    out = tmp_path / "x.h5"
    p = _cli(
        ["record", "--robot", "none", "--camera", "picamera2", str(out)],
        PICAMERA2_DOUBLE_CAMERAS="0",
    )
    _one_line_error(p, "picamera2", "no camera")
    assert not out.exists() and not list(tmp_path.iterdir())


@pytest.mark.parametrize("robot", ["none", "sim"])
def test_capture_raising_mid_run_ends_the_recording_with_the_frames_so_far(tmp_path, robot):
    out = tmp_path / "x.h5"
    duration = "30" if robot == "none" else "3"  # without a robot it ends with its camera
    args = ["--robot", robot, "--camera", "picamera2:160x120@30", "--duration", duration]
    p = _cli(["record", *args, str(out)], PICAMERA2_DOUBLE_FAIL_AFTER="30")
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    reason = [line for line in p.stderr.splitlines() if "camera failed" in line]
    assert len(reason) == 1, p.stderr
    error = "capture error: Camera frontend has timed out!"
    if robot == "none":  # the summary line's stop reason
        assert reason[0].startswith("recorded ") and reason[0].endswith(f"(camera failed: {error})")
    else:
        assert (
            reason[0]
            == f"robot-ssl record: the camera failed ({error}); {out} has its frames up to then"
        )
    info = _info(out)
    assert not info["recovered"]
    assert 10 <= info["streams"]["camera"]["count"] <= 30  # all but those before the start
    if robot == "none":
        assert info["duration_s"] < 5
    else:  # the robot's streams went on to the end
        assert info["duration_s"] > 2.5 and info["streams"]["proximity"]["count"] >= 25
    with SessionReader(out) as r:
        assert r.frame(r.num_frames - 1).shape == (120, 160, 3)
        assert [e.kind for e in r.events()].count("camera_failed") == 1
