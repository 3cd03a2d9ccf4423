"""Damaged camera frames: skipped, counted, named in one line per session; a session
with no intact frame is refused in one line.

The sessions are real HDF5 files whose stored JPEG bytes are damaged afterwards with
h5py, as storage damages them (zeroed bytes), plus one frame whose bytes are a valid
JPEG of another size than the camera's. Every verb runs through the real CLI.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from robot_ssl.cli.main import main
from robot_ssl.core.spec import CameraSpec
from robot_ssl.io.labels_file import write_labels
from robot_ssl.io.session import DamagedFrameError, SessionReader, SessionWriter
from robot_ssl.labelling.labeller import LabelConfig
from robot_ssl.learning.dataset import labels_path_for, synthetic_frames, synthetic_label_set

FRAME_NS = 33_333_333
DAMAGED = (3, 10, 20)  # 3 and 10: zeroed bytes; 20: a JPEG of another size


def write_session(path: Path, n: int, seed: int, damaged: Sequence[int] = ()) -> Path:
    """A labelled 30 fps session of `synthetic_frames` (160x120) driving straight at
    0.1 m/s, odometry at 50 Hz, the frames `damaged` damaged (damage_frames) before it
    was labelled; its labels file beside it."""
    config = LabelConfig()
    images, labels = synthetic_frames(n, size=(160, 120), num_sensors=config.num_sensors, seed=seed)
    t_ns = np.arange(n, dtype=np.int64) * FRAME_NS
    with SessionWriter(path, camera=CameraSpec(width=160, height=120)) as w:
        for t, image in zip(t_ns, images):
            w.write_frame(int(t), image)
        for t in range(0, int(t_ns[-1]) + 20_000_000, 20_000_000):
            w.write_odometry(t, [0.1 * t * 1e-9, 0.0, 0.0])
    damage_frames(path, damaged)
    write_labels(labels_path_for(path), synthetic_label_set(path, t_ns, labels, config))
    return path


def damage_frames(path: Path, frames: Sequence[int]) -> None:
    """Zero the first 16 JPEG bytes of `frames` (their header: undecodable); frame 20,
    when listed, becomes a valid JPEG of 80x60 instead (another size than the camera's).
    The file keeps its size."""
    size_before = path.stat().st_size
    with h5py.File(path, "r+") as f:
        g = f["camera"]
        for i in frames:
            off, size = int(g["jpeg_offset"][i]), int(g["jpeg_size"][i])
            if i == 20:
                ok, small = cv2.imencode(".jpg", np.full((60, 80, 3), 128, np.uint8))
                assert ok and small.size < size
                g["jpeg_data"][off : off + small.size] = small.reshape(-1)
                g["jpeg_size"][i] = small.size
            else:
                g["jpeg_data"][off : off + 16] = 0
    assert path.stat().st_size == size_before


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """s1.h5 (90 frames, 3 damaged) and s2.h5 (40 intact frames), labelled."""
    d = tmp_path_factory.mktemp("damaged") / "data"
    d.mkdir()
    write_session(d / "s1.h5", 90, seed=1, damaged=DAMAGED)
    write_session(d / "s2.h5", 40, seed=2)
    return d


@pytest.fixture(scope="module")
def all_damaged(tmp_path_factory) -> Path:
    """A labelled session of 12 frames, every one damaged."""
    path = tmp_path_factory.mktemp("all_damaged") / "bad.h5"
    write_session(path, 12, seed=3, damaged=range(12))
    return path


def damage_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "damaged JPEG" in line]


def test_the_reader_names_a_damaged_frame(data):
    with SessionReader(data / "s1.h5") as r:
        assert r.frame(2).shape == (120, 160, 3)
        for i in DAMAGED:
            with pytest.raises(DamagedFrameError, match=f"frame {i} is a damaged JPEG"):
                r.frame(i)


def test_train_eval_pretrain_skip_damaged_frames_with_one_line_per_session(data, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--data", str(data), "--out", str(run), "--epochs", "1"]
    argv += ["--val-fraction", "0", "--quiet", "--no-cache", "--device", "cpu", "--threads", "1"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert damage_lines(err) == [
        "robot-ssl: s1.h5: 3 of 90 labelled frames are damaged JPEGs, skipped"
    ]

    # eval, twice through the frame cache: the damaged frames stay skipped and reported
    for _ in range(2):
        report = tmp_path / "eval.json"
        argv = ["eval", "--model", str(run / "best.pt"), "--data", str(data), "--quiet"]
        argv += ["--cache-dir", str(tmp_path / "cache"), "--json", str(report)]
        assert main(argv) == 0
        err = capsys.readouterr().err
        assert damage_lines(err) == [
            "robot-ssl: s1.h5: 3 of 90 labelled frames are damaged JPEGs, skipped"
        ]
        assert json.loads(report.read_text())["num_frames"] == 87 + 40

    pre = tmp_path / "pre"
    argv = ["pretrain", "--data", str(data), "--out", str(pre), "--epochs", "1"]
    argv += ["--tasks", "patch,denoise,odometry", "--batch-size", "16", "--quiet"]
    assert main([*argv, "--device", "cpu", "--threads", "1"]) == 0
    err = capsys.readouterr().err
    assert damage_lines(err) == ["robot-ssl: s1.h5: 3 of 90 frames are damaged JPEGs, skipped"]
    import torch

    encoder = torch.load(pre / "encoder.pt", weights_only=True)
    assert [s["num_frames"] for s in encoder["sessions"]] == [87, 40]


def test_replay_video_skips_damaged_frames_and_counts_them(data, tmp_path, capsys):
    video = tmp_path / "r.avi"
    assert main(["replay", str(data / "s1.h5"), "--video", str(video)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [
        f"wrote {video} (87 frames)",
        "s1.h5: 3 of 90 frames are damaged JPEGs, skipped",
    ]
    cap = cv2.VideoCapture(str(video))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 87


def test_a_session_with_no_intact_frame_is_refused_in_one_line(
    all_damaged, onnx_model, tmp_path, capsys
):
    out = tmp_path / "out"
    expect = f"{all_damaged}: all 12"
    argvs = [
        ["train", "--data", str(all_damaged), "--out", str(out), "--no-cache", "--quiet"],
        ["eval", "--model", str(onnx_model), "--data", str(all_damaged), "--no-cache", "--quiet"],
        ["pretrain", "--data", str(all_damaged), "--out", str(out), "--quiet"],
    ]
    for argv in argvs:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expect in err and "damaged JPEGs; nothing to use" in err
    # replay in its own process: what a user sees, exit status and stderr, no video
    video = out / "r.mp4"
    r = subprocess.run(
        [sys.executable, "-m", "robot_ssl", "replay", str(all_damaged), "--video", str(video)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and expect in r.stderr and "Traceback" not in r.stderr
    assert not video.exists() and not (out / "encoder.pt").exists()


def test_live_replay_stops_after_max_frames_and_prints_lines(data, onnx_model, capsys):
    argv = ["replay", str(data / "s1.h5"), "--live", "--model", str(onnx_model)]
    assert main([*argv, "--max-frames", "30"]) == 0
    out = capsys.readouterr().out
    assert "{" not in out and "}" not in out  # no Python dict
    summary = out.splitlines()[0]
    assert summary.startswith("live replay: ran ") and " 30 frames (" in summary
    assert summary.endswith("; 30 frames processed")
