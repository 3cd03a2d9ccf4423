"""OpenCV camera (video files as a paced stand-in, missing devices) and the synthetic camera."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from robot_ssl.recording.cameras import (
    CameraError,
    CameraNotFound,
    OpenCVCamera,
    OpenCVCameraConfig,
    SyntheticCamera,
    parse_synthetic,
)


def write_video(path, frames: int = 12, fps: float = 20.0, size=(80, 60)) -> None:
    """A small MJPG .avi whose frame k is a flat grey of level 10 * k."""
    w, h = size
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert vw.isOpened()
    for k in range(frames):
        vw.write(np.full((h, w, 3), (10 * k) % 256, np.uint8))
    vw.release()


def _collect(cam, seconds: float) -> list:
    seen, end = {}, time.monotonic() + seconds
    while time.monotonic() < end:
        f = cam.read()
        if f is not None:
            seen[f.index] = f
        time.sleep(0.004)
    return [seen[i] for i in sorted(seen)]


def test_video_file_is_paced_at_its_frame_rate(tmp_path):
    path = tmp_path / "v.avi"
    write_video(path, frames=12, fps=20.0)
    with OpenCVCamera(OpenCVCameraConfig(str(path))) as cam:
        assert (cam.width, cam.height) == (80, 60)
        assert cam.fps == pytest.approx(20.0)
        frames = _collect(cam, 0.9)
        health = cam.health()
    assert [f.index for f in frames] == list(range(12))  # nothing skipped, nothing repeated
    dt = np.diff([f.t_ns for f in frames]) / 1e9
    assert np.median(dt) == pytest.approx(0.05, abs=0.01)
    assert abs(int(frames[5].image.mean()) - 50) <= 3  # the right frame at the right time
    assert health.failed and health.error == "video file ended"
    assert health.frames_captured == 12


def test_video_file_loops_when_asked(tmp_path):
    path = tmp_path / "v.avi"
    write_video(path, frames=5, fps=50.0)
    with OpenCVCamera(OpenCVCameraConfig(str(path), loop=True)) as cam:
        time.sleep(0.5)
        h = cam.health()
    assert not h.failed and h.frames_captured >= 12
    assert h.last_frame_age_s is not None and h.last_frame_age_s < 0.3


def test_newest_frame_only(tmp_path):
    path = tmp_path / "v.avi"
    write_video(path, frames=30, fps=100.0)
    with OpenCVCamera(OpenCVCameraConfig(str(path))) as cam:
        deadline = time.monotonic() + 5.0  # 0.2 s at 100 fps; longer on a loaded machine
        while cam.health().frames_captured < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        f = cam.read()
        assert f is not None and f.index >= 15  # not the first, queued frame


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ("/nonexistent/clip.avi", "no such video file"),
        ("/dev/video97", "no such device"),
        (97, "/dev/video97 does not exist"),
        ("97", "/dev/video97 does not exist"),
        ("/dev/null", "not a video device|cannot be opened|no frame"),
        ("v4l2src ! videoconvert ! appsink", "GStreamer"),
    ],
)
def test_missing_camera_raises_precise_error(source, match):
    with pytest.raises(CameraNotFound, match=match):
        OpenCVCamera(OpenCVCameraConfig(source, open_timeout_s=0.5))


def test_not_a_video_file(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    with pytest.raises(CameraNotFound):
        OpenCVCamera(OpenCVCameraConfig(str(bad), open_timeout_s=0.5))


def test_config_kinds_and_checks():
    assert OpenCVCameraConfig("0").source == 0
    assert OpenCVCameraConfig(0).kind == "index"
    assert OpenCVCameraConfig("/dev/video0").kind == "device"
    assert OpenCVCameraConfig("rtsp://cam/stream").kind == "url"
    assert OpenCVCameraConfig("a ! appsink").kind == "pipeline"
    assert OpenCVCameraConfig("clip.mp4").kind == "file"
    with pytest.raises(CameraError):
        OpenCVCameraConfig(0, fourcc="MJPEG")
    with pytest.raises(CameraError):
        OpenCVCameraConfig(0, fps=0)


def test_synthetic_camera_paced_and_textured():
    with SyntheticCamera(320, 240, 25) as cam:
        frames = _collect(cam, 0.6)
        h = cam.health()
    assert 12 <= len(frames) <= 17
    assert [f.index for f in frames] == list(range(frames[0].index, frames[-1].index + 1))
    dt = np.diff([f.t_ns for f in frames]) / 1e9
    assert np.median(dt) == pytest.approx(0.04, abs=0.005)
    assert frames[0].image.shape == (240, 320, 3) and frames[0].image.std() > 10
    assert not np.array_equal(frames[0].image, frames[1].image)
    assert not h.failed


def test_synthetic_camera_failure_is_reported():
    with SyntheticCamera(64, 48, 100, fail_after_frames=3) as cam:
        deadline = time.monotonic() + 3.0
        while not cam.health().failed and time.monotonic() < deadline:
            time.sleep(0.01)
        h = cam.health()
    assert h.failed and h.frames_captured == 3 and "synthetic" in h.error


def test_parse_synthetic():
    assert parse_synthetic("synthetic") == (640, 480, 30.0)
    assert parse_synthetic("synthetic:320x240") == (320, 240, 30.0)
    assert parse_synthetic("synthetic:320x240@15") == (320, 240, 15.0)
    assert parse_synthetic("/dev/video0") is None


@pytest.mark.parametrize(
    "bad", ["synthetic:0x0", "synthetic:1x1@1.2.3", "synthetic:5x5@0", "synthetic:9x"]
)
def test_synthetic_camera_string_is_checked(bad):
    from robot_ssl.recording.cameras import CameraError, parse_synthetic

    with pytest.raises(CameraError, match="camera"):
        parse_synthetic(bad)


def test_record_with_a_bad_synthetic_camera_is_one_line(tmp_path, capsys):
    from robot_ssl.cli.main import main

    assert (
        main(["record", str(tmp_path / "s.h5"), "--robot", "none", "--camera", "synthetic:0x0"])
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "synthetic:0x0" in err[0]
    assert not (tmp_path / "s.h5").exists()
