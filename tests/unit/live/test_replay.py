"""Replay: a video with one output frame per camera frame, overlays, and the live path."""

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from rerun_files import rerun_column, rerun_rows, rerun_scalars

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


def expected_fps(session: Path) -> float:
    with SessionReader(session) as r:
        ct = r.camera_t_ns
    return (len(ct) - 1) / ((ct[-1] - ct[0]) / 1e9)


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
    # H.264 in yuv420p at the recorded rate: what browsers and GitHub play
    import av

    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        assert stream.frames == expected
        assert float(stream.average_rate) == pytest.approx(expected_fps(sim_session), rel=0.01)


def test_replay_max_frames_and_plain_session(sim_session, tmp_path):
    with SessionReader(sim_session) as r:
        n = render_replay(r, tmp_path / "a.avi", None, max_frames=7)
    assert n == 7 and frame_count(tmp_path / "a.avi") == 7


def test_replay_of_a_session_without_odometry_draws_an_empty_map(tmp_path):
    from robot_ssl.learning.dataset import write_synthetic_session

    path, _ = write_synthetic_session(tmp_path / "s.h5", n=12)  # frames, no odometry
    with SessionReader(path) as r:
        assert len(r.odometry()[0]) == 0
        n = render_replay(r, tmp_path / "a.avi", None)
    assert n == 12 and frame_count(tmp_path / "a.avi") == 12


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
    from robot_ssl.inference.predictor import load_predictor

    with SessionReader(sim_session) as r:
        result = replay_live(r, load_predictor(onnx_model), speed=4.0)
        n = r.num_frames
    assert result.frames >= n // 2  # at 4x, frames come every 25 ms: most are processed
    assert result.latency["inference"]["median_ms"] > 0


def test_replay_to_a_rerun_recording(sim_session, onnx_model, tmp_path):
    pytest.importorskip("rerun")
    out = tmp_path / "s.rrd"
    argv = ["replay", str(sim_session), "--model", str(onnx_model), "--rerun", str(out)]
    assert main([*argv, "--max-frames", "40"]) == 0
    rows = rerun_rows(out)
    with SessionReader(sim_session) as r:
        prox_t, prox = r.proximity()
        names = [s.name for s in r.robot.prox_sensors]
    # every frame's image, grids and cells; every IR reading; both trajectories
    for entity in ("/camera/image", "/camera/labels", "/camera/predicted", "/map/cells"):
        assert rows[entity] == 40, (entity, rows)
    # the cells over the image: where the camera sees them on the floor, inside the frame
    assert rows["/camera/image/cells"] == 40
    with SessionReader(sim_session) as r:
        cam, sensors = r.camera, len(r.robot.prox_sensors)
    (points,) = rerun_column(out, "/camera/image/cells", "Points2D:positions")[:1]
    uv = np.array(points, float)
    assert len(uv) >= 10 and np.all((uv >= -0.5) & (uv < [cam.width, cam.height]))
    assert len(np.unique(np.round(uv[:, 0]))) >= min(5, sensors)  # spread across the width
    assert rows["/map/robot"] == 40 and rows["/map/odometry"] == 1 and rows["/map/truth"] == 1
    assert rows[f"/ir/{names[2]}"] == len(prox_t)
    np.testing.assert_array_equal(rerun_scalars(out, f"/ir/{names[2]}"), prox[:, 2])
    assert rows["/wheels/left"] > 0
    assert not list(tmp_path.glob(".*.tmp-*"))


def test_replay_rerun_to_a_full_disk_is_one_line_and_keeps_the_old_file(sim_session, mount_tmpfs):
    """The recording (~0.7 MB) does not fit: exit 2 with one line, the old file whole, no
    temporary file left (Rerun's own file sink would block forever there)."""
    pytest.importorskip("rerun")
    folder = mount_tmpfs("256k")
    (folder / "s.rrd").write_bytes(b"an older recording")
    cmd = [sys.executable, "-m", "robot_ssl", "replay", str(sim_session), "--rerun"]
    proc = subprocess.run(
        [*cmd, str(folder / "s.rrd")], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"robot-ssl replay: error: cannot write {folder / 's.rrd'}: no space left on device"
    ]
    assert sorted(p.name for p in folder.iterdir()) == ["s.rrd"]
    assert (folder / "s.rrd").read_bytes() == b"an older recording"
