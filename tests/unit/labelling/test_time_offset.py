"""The camera time-offset estimate (robot_ssl.labelling.time_offset) and the labeller's
latency correction, on simulated sessions whose frame stamps are shifted by known offsets.

Test data: the simulator driven by a script of wheel targets, frames rendered at their
exposure times and stamped `offset` later (what a camera read through OpenCV does), so
the truth is known exactly (tests/scripted_drives.py, shared with
tests/system/test_calibrate.py).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
from scripted_drives import MS, S, Streams, simulate, straight_script, wander_script, write_session

from robot_ssl.cli.main import main
from robot_ssl.core.label_grid import CameraOffset, LabelConfig, LabelConfigError
from robot_ssl.core.spec import CameraSpec, SpecError
from robot_ssl.io.labels_file import default_labels_path, read_labels, write_labels
from robot_ssl.io.session import SessionWriter
from robot_ssl.labelling.labeller import compare_with_truth, compute_labels
from robot_ssl.labelling.session_labels import label_session
from robot_ssl.labelling.time_offset import (
    HeadingStrip,
    OffsetEstimateError,
    OffsetSearchConfig,
    correlate_offsets,
    estimate_time_offset,
    select_pairs,
)

OFFSETS_MS = (0, 50, 100, 150)


@pytest.fixture(scope="module")
def wander() -> Streams:
    return simulate(wander_script, 30.0)


@pytest.fixture(scope="module")
def straight() -> Streams:
    return simulate(straight_script, 10.0, start_pose=(-1.0, 0.0, 0.0))


# -- the estimate ------------------------------------------------------------------------------


@pytest.mark.parametrize("offset_ms", OFFSETS_MS)
def test_estimate_recovers_a_known_offset(wander: Streams, offset_ms: int):
    """Against the true poses as odometry the offset is the stamp shift, within 10 ms."""
    est = estimate_time_offset(
        wander.frame_t + offset_ms * MS,
        wander.gray(),
        wander.wheel_t,
        wander.truth_pose,
        wander.camera,
    )
    assert est.reliable, est.reason
    assert abs(1e3 * est.offset_s - offset_ms) < 10
    assert est.correlation > 0.9 and est.std_s < 0.005
    assert 0.9 < est.yaw_scale < 1.2  # parallax of nearby walls makes it a little > 1
    assert est.turns >= 6 and est.pairs_used > 100


# Wheel odometry lags the true motion by ~20 ms: a measured speed is the firmware's mean of
# the last four 10 ms samples (15 ms), each covering the step before it (5 ms). Offsets
# estimated against odometry are relative to it, which is what the labeller matches.
ODOMETRY_LAG_MS = 20


def test_estimate_with_wheel_odometry(wheel_offset_ms=100):
    """The estimate against wheel odometry is the offset less the odometry's lag."""
    streams = simulate(wander_script, 24.0, seed=1, start_pose=(0.2, 0.1, 1.0))
    est = estimate_time_offset(
        streams.frame_t + wheel_offset_ms * MS,
        streams.gray(),
        streams.wheel_t,
        streams.odometry(),
        streams.camera,
    )
    assert est.reliable, est.reason
    assert abs(1e3 * est.offset_s - (wheel_offset_ms - ODOMETRY_LAG_MS)) < 10


def test_straight_driving_is_unreliable(straight: Streams):
    est = estimate_time_offset(
        straight.frame_t, straight.gray(), straight.wheel_t, straight.odometry(), straight.camera
    )
    assert not est.reliable and "no turns" in est.reason
    assert est.frames_decoded == 0  # nothing decoded: the odometry says why first
    assert math.isnan(est.offset_s) and "unreliable" in est.describe()


def test_textureless_frames_are_unreliable(wander: Streams):
    blank = np.full((120, 160), 128, np.uint8)
    est = estimate_time_offset(
        wander.frame_t, lambda i: blank, wander.wheel_t, wander.truth_pose, wander.camera
    )
    assert not est.reliable and "image match" in est.reason


def test_too_few_turns_is_unreliable(wander: Streams):
    """Cut to the first spin only: one turn is not enough by default."""
    n_odo = np.searchsorted(wander.wheel_t, 5 * S)
    n_frames = np.searchsorted(wander.frame_t, 5 * S)
    est = estimate_time_offset(
        wander.frame_t[:n_frames],
        wander.gray(),
        wander.wheel_t[:n_odo],
        wander.truth_pose[:n_odo],
        wander.camera,
    )
    assert est.turns == 1 and not est.reliable and "too few turns" in est.reason


def test_offset_outside_the_search_range_is_flagged(wander: Streams):
    cfg = OffsetSearchConfig(min_offset_s=-0.05, max_offset_s=0.05)
    est = estimate_time_offset(
        wander.frame_t + 150 * MS, wander.gray(), wander.wheel_t, wander.truth_pose,
        wander.camera, cfg,
    )  # fmt: skip
    assert not est.reliable
    assert "edge of the search range" in est.reason or "correlation" in est.reason


def test_subsampling_keeps_the_estimate(wander: Streams):
    cfg = OffsetSearchConfig(max_pairs=150)
    pairs, turns, _ = select_pairs(wander.frame_t, wander.wheel_t, wander.truth_pose, cfg)
    assert 0 < pairs.size <= 150 and turns >= 6
    est = estimate_time_offset(
        wander.frame_t + 50 * MS, wander.gray(), wander.wheel_t, wander.truth_pose,
        wander.camera, cfg,
    )  # fmt: skip
    assert est.frames_decoded <= 2 * 150
    assert abs(1e3 * est.offset_s - 50) < 10


def test_correlate_offsets_on_synthetic_steps():
    """The pure search: image steps = 1.1 x odometry steps 70 ms earlier, plus noise."""
    rng = np.random.default_rng(0)
    t = np.arange(0, 60 * S, 10 * MS)
    rate = np.where((t // (3 * S)) % 2 == 1, 1.5, 0.0) * np.sign(np.sin(t / 7e9))
    rate = np.convolve(rate, np.ones(20) / 20, mode="same")  # 0.2 s ramps
    heading = np.cumsum(rate) * 0.01
    pose = np.zeros((t.size, 3))
    pose[:, 2] = heading
    frames = np.arange(0, 59 * S, 33 * MS) + 200 * MS
    true = np.interp(frames - 70 * MS, t, heading)
    yaw = 1.1 * np.diff(true) + rng.normal(0, 0.002, frames.size - 1)
    est = correlate_offsets(frames[:-1], frames[1:], yaw, t, pose, turns=9, turn_s=25.0)
    assert est.reliable, est.reason
    assert abs(est.offset_s - 0.070) < 0.003 and abs(est.yaw_scale - 1.1) < 0.02


def test_heading_strip_shift_is_the_yaw():
    """Two renders 0.05 rad apart (turning left) shift the strip by +0.05 rad."""
    from robot_ssl.simlink.simulator import make_simulator

    sim = make_simulator("arena_boxes", 0, start_pose=(0.0, 0.0, 0.3))
    a = sim.renderer.render(np.array([0.0, 0.0, 0.3]))
    b = sim.renderer.render(np.array([0.0, 0.0, 0.35]))
    gray = [cv2.cvtColor(cv2.resize(x, (160, 120), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
            for x in (a, b)]  # fmt: skip
    strip = HeadingStrip(CameraSpec(), gray[0].shape)
    assert strip.usable and strip.cols > 60 and strip.rows > 10
    step, response = strip.shift(strip(gray[0]), strip(gray[1]))
    assert response > 0.1 and step == pytest.approx(0.05, rel=0.15)


def test_heading_strip_of_tiny_images_is_unusable():
    strip = HeadingStrip(CameraSpec(), (2, 2))
    assert not strip.usable
    with pytest.raises(OffsetEstimateError, match="too small"):
        strip(np.zeros((2, 2), np.uint8))


def test_search_config_is_validated():
    with pytest.raises(OffsetEstimateError, match="max_offset_s"):
        OffsetSearchConfig(min_offset_s=0.1, max_offset_s=0.0)
    with pytest.raises(OffsetEstimateError, match="reduce"):
        OffsetSearchConfig(reduce=3)
    with pytest.raises(OffsetEstimateError, match="max_pairs"):
        OffsetSearchConfig(max_pairs=0)
    assert OffsetSearchConfig().offsets_s()[[0, -1]].tolist() == pytest.approx([-0.1, 0.3])


# -- the labeller's correction -----------------------------------------------------------------


def test_corrected_labels_match_labels_from_true_stamps(tmp_path: Path, wander: Streams):
    """Stamps 100 ms late: "auto" finds the offset, and its labels agree with the labels of
    the true (exposure) stamps; the labels file keeps the frames' own stamps."""
    path = write_session(tmp_path / "late.h5", wander, 100)
    labels = label_session(path)
    off = labels.camera_offset
    assert off.source == "estimate" and off.reliable
    assert abs(1e3 * off.applied_s - (100 - ODOMETRY_LAG_MS)) < 10
    assert off.estimate_s == off.applied_s
    np.testing.assert_array_equal(labels.t_ns, wander.frame_t + 100 * MS)
    np.testing.assert_array_equal(labels.exposure_t_ns, wander.frame_t + 100 * MS
                                  - round(off.applied_s * 1e9))  # fmt: skip
    ref = compute_labels(
        wander.frame_t, wander.prox_t, wander.prox, wander.wheel_t, wander.odometry(),
        LabelConfig(), camera_offset_s=0.0,
    )  # fmt: skip
    good = compare_with_truth(labels.labels, ref.labels)
    assert good.compared > 10_000 and good.agreement > 0.99
    # without the correction the same frames are matched with poses 100 ms too late
    raw = label_session(path, LabelConfig(camera_offset=0.0))
    assert raw.camera_offset.source == "config" and raw.camera_offset.applied_s == 0.0
    bad = compare_with_truth(raw.labels, ref.labels)
    assert bad.agreement < good.agreement and bad.label_only + bad.truth_only > (
        good.label_only + good.truth_only
    )


def test_auto_falls_back_to_the_spec_offset(tmp_path: Path, straight: Streams):
    cam = dataclasses.replace(straight.camera, time_offset_s=0.085)
    path = write_session(tmp_path / "straight.h5", straight, 85, camera=cam)
    labels = label_session(path)
    off = labels.camera_offset
    assert off.source == "spec" and off.applied_s == 0.085
    assert not off.reliable and "no turns" in off.reason
    spec = label_session(path, LabelConfig(camera_offset="spec")).camera_offset
    assert spec.source == "spec" and spec.applied_s == 0.085 and spec.reason == ""
    fixed = compute_labels(
        straight.frame_t + 85 * MS, straight.prox_t, straight.prox, straight.wheel_t,
        straight.odometry(), LabelConfig(camera_offset=0.085),
    )  # fmt: skip
    np.testing.assert_array_equal(fixed.labels, labels.labels)


def test_labels_file_round_trips_the_offset(tmp_path: Path, wander: Streams):
    path = write_session(tmp_path / "late.h5", wander, 50)
    labels = label_session(path)
    out = write_labels(default_labels_path(path), labels)
    back = read_labels(out)
    a, b = labels.camera_offset, back.camera_offset
    assert b.source == a.source == "estimate" and b.reliable
    for name in ("applied_s", "estimate_s", "correlation", "std_s", "yaw_scale"):
        assert getattr(b, name) == getattr(a, name)
    with h5py.File(out) as f:
        assert f.attrs["version"] == 1 and "camera_offset" in f.attrs


def test_old_labels_files_read_as_uncorrected(tmp_path: Path, wander: Streams):
    """A file written before the correction: no camera_offset attribute, no config key."""
    import json

    path = write_session(tmp_path / "s.h5", wander)
    out = write_labels(
        default_labels_path(path), label_session(path, LabelConfig(camera_offset=0.0))
    )
    with h5py.File(out, "r+") as f:
        del f.attrs["camera_offset"]
        cfg = json.loads(f.attrs["config"])
        del cfg["camera_offset"]
        f.attrs["config"] = json.dumps(cfg)
    back = read_labels(out)
    assert back.camera_offset.source == "none" and back.camera_offset.applied_s == 0.0
    assert math.isnan(back.camera_offset.estimate_s)
    np.testing.assert_array_equal(back.exposure_t_ns, back.t_ns)


def test_cli_prints_the_offset_per_session(tmp_path: Path, wander: Streams, capsys):
    late = write_session(tmp_path / "late.h5", wander, 100)
    assert main(["label", str(late), "--no-plot", "-j", "1", "--truth"]) == 0
    out = capsys.readouterr().out
    assert "camera offset" in out and " ms est" in out and "truth agree" in out
    assert main(["label", str(late), "--no-plot", "--camera-offset-ms", "42"]) == 0
    assert "42.0 ms set" in capsys.readouterr().out
    assert read_labels(default_labels_path(late)).camera_offset.applied_s == pytest.approx(0.042)
    assert main(["label", str(late), "--no-plot", "--camera-offset-ms", "nan"]) == 2
    assert "--camera-offset-ms" in capsys.readouterr().err


# -- specs and config --------------------------------------------------------------------------


def test_camera_spec_time_offset_field():
    assert CameraSpec().time_offset_s == 0.0
    old = CameraSpec().to_dict()
    del old["time_offset_s"]  # a session or spec file from before the field
    assert CameraSpec.from_dict(old).time_offset_s == 0.0
    assert CameraSpec.from_dict({"time_offset_s": 0.08}).to_dict()["time_offset_s"] == 0.08
    for bad in (1.5, float("nan"), "0.1"):
        with pytest.raises(SpecError, match="time_offset_s"):
            CameraSpec.from_dict({"time_offset_s": bad})


def test_label_config_camera_offset():
    assert LabelConfig().camera_offset == "auto"
    assert LabelConfig(camera_offset=0).camera_offset == 0.0
    assert LabelConfig.from_dict({"camera_offset": "spec"}).camera_offset == "spec"
    assert LabelConfig.from_json(LabelConfig(camera_offset=0.05).to_json()).camera_offset_s == 0.05
    for bad in ("late", 2.0, True, None, float("inf")):
        with pytest.raises(LabelConfigError, match="camera_offset"):
            LabelConfig(camera_offset=bad)
    with pytest.raises(LabelConfigError, match="source"):
        CameraOffset(source="guess")


def test_raw_frame_sessions_are_estimated_too(tmp_path: Path, wander: Streams):
    path = tmp_path / "raw.h5"
    with SessionWriter(path, wander.robot, wander.camera, frame_format="raw") as w:
        for t, jpeg in zip(wander.frame_t, wander.jpegs):
            w.write_frame(int(t) + 60 * MS, cv2.imdecode(np.frombuffer(jpeg, np.uint8), 1))
        for t, pose in zip(wander.wheel_t, wander.truth_pose):
            w.write_odometry(int(t), pose)
    from robot_ssl.io.session import SessionReader
    from robot_ssl.labelling.session_labels import estimate_session_offset

    with SessionReader(path) as r:
        est = estimate_session_offset(r)
    assert est.reliable and abs(1e3 * est.offset_s - 60) < 10


def test_true_exposure_times():
    from robot_ssl.labelling.session_labels import true_exposure_times

    stamps = np.array([100, 200, 300, 400])
    rows = (np.array([300, 100, 400]), np.array([220, 20, 320]))  # frame 200 has no row
    np.testing.assert_array_equal(true_exposure_times(stamps, rows), [20, 200, 220, 320])
    np.testing.assert_array_equal(true_exposure_times(stamps, None), stamps)


def test_truth_agreement_uses_the_true_exposure_times(tmp_path: Path, wander: Streams):
    if not hasattr(SessionWriter, "write_frame_truth"):
        pytest.skip("this session format has no frame_truth stream")
    from robot_ssl.labelling.session_labels import session_truth_agreement

    path = tmp_path / "late.h5"
    write_session(path, wander, 100)
    with h5py.File(path, "r+") as f:  # frame_truth rows as a camera with latency writes them
        g = f["frame_truth"]
        for name, data in (("t_ns", wander.frame_t + 100 * MS), ("exposure_t_ns", wander.frame_t)):
            g[name].resize((data.size,))
            g[name][:] = data
    corrected = session_truth_agreement(path, label_session(path))
    raw = session_truth_agreement(path, label_session(path, LabelConfig(camera_offset=0.0)))
    assert corrected is not None and raw is not None
    assert corrected[0].agreement > raw[0].agreement
    assert corrected[0].label_only < raw[0].label_only
