"""Replay: a video with one output frame per camera frame, overlays, and the live path."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from robot_ssl.cli.main import main
from robot_ssl.io.session import SessionReader, SessionWriter
from robot_ssl.live.replay import ReplayError, ReplayGrids, render_replay, replay_live

D = np.round(np.arange(31) * 0.01, 2)


@pytest.fixture(scope="module")
def sim_session(tmp_path_factory) -> Path:
    """Six simulated seconds at 10 fps (with truth), labelled."""
    d = tmp_path_factory.mktemp("replay")
    path = d / "s.h5"
    args = ["sim", "record", "--world", "arena_boxes", "--minutes", "0.1", "--seed", "3"]
    assert main([*args, "--fps", "10", "--no-progress", str(path)]) == 0
    assert main(["label", str(path), "--no-plot"]) == 0
    return path


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory) -> Path:
    pytest.importorskip("onnxruntime")
    torch = pytest.importorskip("torch")
    from robot_ssl.learning.export import export_model
    from robot_ssl.learning.models import ModelConfig, build_model

    d = tmp_path_factory.mktemp("model")
    cfg = ModelConfig(distances_m=tuple(D), sensor_indices=(0, 1, 2, 3, 4))
    torch.manual_seed(0)
    torch.save({"model": build_model(cfg).state_dict(), "model_config": cfg.to_dict()}, d / "m.pt")
    return export_model(d / "m.pt", "onnx", d / "m.onnx")


def frame_count(video: Path) -> int:
    cap = cv2.VideoCapture(str(video))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def test_replay_video_has_one_frame_per_camera_frame(sim_session, onnx_model, tmp_path):
    video = tmp_path / "r.mp4"
    assert (
        main(["replay", str(sim_session), "--model", str(onnx_model), "--video", str(video)]) == 0
    )
    with SessionReader(sim_session) as r:
        expected = r.num_frames
    assert expected > 50
    assert frame_count(video) == expected
    assert not list(tmp_path.glob(".*.tmp-*"))  # no temporary file left
    cap = cv2.VideoCapture(str(video))
    ok, img = cap.read()
    # camera | map | labels | predictions, each 320 px high
    assert ok and img.shape[0] == 320 and img.shape[1] > 320 * 3


def test_replay_max_frames_and_plain_session(sim_session, tmp_path):
    with SessionReader(sim_session) as r:
        n = render_replay(r, tmp_path / "a.avi", None, max_frames=7)
    assert n == 7 and frame_count(tmp_path / "a.avi") == 7


def test_label_overlay_colours_known_cells(sim_session, tmp_path):
    from robot_ssl.io.labels_file import default_labels_path, read_labels

    labels = read_labels(default_labels_path(sim_session))
    i = int(np.argmax((labels.labels == 1).sum(axis=(1, 2))))  # the frame with most obstacles
    grids = ReplayGrids(labels.sensor_indices, labels.distances_m, {i: labels.labels[i]}, {})
    from robot_ssl.live.replay import iter_replay_frames

    with SessionReader(sim_session) as r:
        frames = iter_replay_frames(r, grids)
        for _ in range(i):
            next(frames)
        img = next(frames)
    panel = img[:, -320:]
    red = (panel[..., 2] > 200) & (panel[..., 1] < 80) & (panel[..., 0] < 80)
    assert red.sum() > 10  # obstacle cells drawn in red


def test_empty_session_is_a_clear_error(tmp_path):
    path = tmp_path / "empty.h5"
    with SessionWriter(path):
        pass
    with SessionReader(path) as r, pytest.raises(ReplayError, match="no camera frames"):
        render_replay(r, tmp_path / "x.mp4")
    assert main(["replay", str(path), "--video", str(tmp_path / "x.mp4")]) == 2


def test_live_replay_runs_the_deploy_path_on_recorded_frames(sim_session, onnx_model):
    from robot_ssl.learning.predictor import load_predictor

    with SessionReader(sim_session) as r:
        result = replay_live(r, load_predictor(onnx_model), speed=4.0)
        n = r.num_frames
    assert result.frames >= n // 2  # at 4x, frames come every 25 ms: most are processed
    assert result.latency["inference"]["median_ms"] > 0
