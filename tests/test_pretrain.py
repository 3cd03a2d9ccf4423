"""Self-supervised pretraining: pretext tasks, odometry targets, encoder.pt and `train --init`."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from robot_ssl.cli.main import main
from robot_ssl.core.spec import CameraSpec
from robot_ssl.io.session import SessionWriter
from robot_ssl.learning.dataset import synthetic_frames, write_synthetic_session
from robot_ssl.learning.models import ModelConfig, build_model
from robot_ssl.learning.pretrain import (
    PretrainConfig,
    PretrainData,
    PretrainError,
    PretrainNet,
    load_encoder,
    odometry_pairs,
    patch_pairs,
    pretrain,
    task_losses,
)
from robot_ssl.learning.step import TrainingDiverged
from robot_ssl.learning.train import TrainConfig, train

torch.set_num_threads(1)

FRAME_NS = 33_333_333  # 30 Hz camera


def _circle(t_s: np.ndarray, v: float, w: float, start: np.ndarray) -> np.ndarray:
    """Poses (x, y, theta) of a robot driving at v m/s, w rad/s from pose `start`."""
    r = v / w
    local = np.stack([r * np.sin(w * t_s), r * (1 - np.cos(w * t_s)), w * t_s], axis=1)
    c, s = np.cos(start[2]), np.sin(start[2])
    x = start[0] + c * local[:, 0] - s * local[:, 1]
    y = start[1] + s * local[:, 0] + c * local[:, 1]
    theta = np.pi - np.mod(np.pi - (start[2] + local[:, 2]), 2 * np.pi)  # wrapped, as recorded
    return np.stack([x, y, theta], axis=1)


def _odometry_session(path, n: int = 24, seed: int = 0) -> None:
    """A session of `synthetic_frames` at 80x64 (the network size) with odometry at 100 Hz."""
    images, _ = synthetic_frames(n, size=(80, 64), seed=seed)
    with SessionWriter(path, camera=CameraSpec(width=80, height=64)) as writer:
        for i, image in enumerate(images):
            writer.write_frame(i * FRAME_NS, image)
        t_ns = np.arange(0, n * FRAME_NS, 10_000_000)
        for t, pose in zip(t_ns, _circle(t_ns / 1e9, 0.1, 1.0, np.array([0.2, -0.1, 3.0]))):
            writer.write_odometry(int(t), pose)


# -- odometry targets ----------------------------------------------------------------------


def test_odometry_pairs_on_a_circle_across_the_angle_wrap():
    v, w = 0.1, 1.5  # m/s, rad/s; starting at theta 3.0 rad the heading wraps through +-pi
    odo_t = np.arange(0, 4_000_000_000, 1_000_000)  # 1 kHz for 4 s
    pose = _circle(odo_t / 1e9, v, w, np.array([1.0, 2.0, 3.0]))
    frames = np.arange(0, 5_000_000_000, FRAME_NS)  # camera runs 1 s past the odometry
    pairs, targets = odometry_pairs(frames, odo_t, pose, 0.3, 1.0, per_frame=3)
    assert len(pairs) > 0 and pairs.shape[1] == 2
    dt = (frames[pairs[:, 1]] - frames[pairs[:, 0]]) / 1e9
    assert np.all((dt >= 0.3 - 1e-9) & (dt <= 1.0 + 1e-9))
    assert frames[pairs].max() <= odo_t[-1]  # no extrapolation past the odometry
    assert np.all(np.bincount(pairs[:, 0]) <= 3)
    r = v / w
    want = np.stack([r * np.sin(w * dt), r * (1 - np.cos(w * dt)), w * dt], axis=1)
    np.testing.assert_allclose(targets, want, atol=1e-5)

    pairs, _ = odometry_pairs(frames, odo_t[:1], pose[:1], 0.3, 1.0)
    assert len(pairs) == 0  # one sample: nothing to interpolate


# -- pretext tasks -------------------------------------------------------------------------


def test_patch_pairs_come_from_the_named_neighbour():
    h, w = 48, 64
    rows, cols = np.mgrid[0:h, 0:w]
    image = np.stack([rows, cols, np.zeros_like(rows)], axis=-1).astype(np.float32)
    images = torch.from_numpy(np.repeat(image[None], 32, axis=0))
    size, gap, jitter = 12, 2, 1
    centre, neighbour, pos = patch_pairs(
        images, size, gap, jitter, torch.Generator().manual_seed(0)
    )
    assert centre.shape == (32, size, size, 3) and set(pos.tolist()) <= set(range(8))
    cell = pos + (pos >= 4).long()
    dy = neighbour[:, 0, 0, 0] - centre[:, 0, 0, 0]
    dx = neighbour[:, 0, 0, 1] - centre[:, 0, 0, 1]
    assert torch.all((dy - (cell // 3 - 1) * (size + gap)).abs() <= jitter)
    assert torch.all((dx - (cell % 3 - 1) * (size + gap)).abs() <= jitter)


@pytest.mark.parametrize(("task", "steps"), [("patch", 200), ("denoise", 40), ("odometry", 40)])
def test_each_pretext_task_learns_on_tiny_data(task, steps):
    """Loss falls on 16 frames; the patch task also beats chance (1/8) clearly."""
    cfg = PretrainConfig(
        tasks=(task,), input_width=48, input_height=48, patch_size=12, patch_gap=2, patch_jitter=1
    )
    images, _ = synthetic_frames(16, size=(48, 48), seed=1)
    x = torch.from_numpy(images).float()
    rng = np.random.default_rng(0)
    pick = rng.integers(0, 16, (16, 2))
    y = torch.from_numpy(rng.normal(size=(16, 3))).float()  # memorisable targets
    a, b = x[pick[:, 0]], x[pick[:, 1]]
    torch.manual_seed(0)
    net = PretrainNet(ModelConfig(input_width=48, input_height=48, widths=(8, 16, 16)), (task,))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    losses, accuracy = [], []
    for _ in range(steps):
        out = task_losses(net, x, a, b, y, cfg, gen)
        opt.zero_grad()
        out[task].backward()
        opt.step()
        losses.append(out[task].item())
        accuracy.append(float(out.get("patch_acc", 0.0)))
    assert np.all(np.isfinite(losses))
    assert np.mean(losses[-10:]) < 0.9 * np.mean(losses[:5]), losses
    if task == "patch":
        assert np.mean(accuracy[-20:]) > 0.18  # chance: 0.125


def test_config_checks():
    with pytest.raises(PretrainError, match="tasks"):
        PretrainConfig(tasks=("patch", "jigsaw"))
    with pytest.raises(PretrainError, match="patch grid"):
        PretrainConfig(input_width=32, input_height=32)
    with pytest.raises(PretrainError, match="odo_dt_min_s"):
        PretrainConfig(odo_dt_min_s=2.0, odo_dt_max_s=1.0)


# -- the command line and train --init -----------------------------------------------------


def test_pretrain_cli_writes_a_weights_only_encoder(tmp_path, capsys):
    for i in range(2):
        _odometry_session(tmp_path / f"data/s{i}.h5", seed=i)
    out = tmp_path / "pre"
    argv = ["pretrain", "--data", str(tmp_path / "data"), "--out", str(out), "--epochs", "2"]
    argv += ["--batch-size", "16", "--quiet", "--device", "cpu", "--threads", "1"]
    assert main(argv) == 0
    enc = torch.load(out / "encoder.pt", weights_only=True)
    assert load_encoder(out / "encoder.pt")["tasks"] == enc["tasks"]  # the checked reader
    assert enc["tasks"] == ["patch", "denoise", "odometry"]
    assert [s["name"] for s in enc["sessions"]] == ["s0", "s1"] and enc["num_frames"] == 48
    assert enc["num_odometry_pairs"] > 0 and len(enc["sessions"][0]["sha256"]) == 64
    trunk = build_model(ModelConfig()).features.state_dict()
    assert enc["encoder"].keys() == trunk.keys()  # the encoder only, not the detector head
    assert len(enc["history"]) == 2
    for task in ("patch", "denoise", "odometry"):
        assert np.isfinite(enc["history"][-1][task])
    assert main(argv) == 2  # refuses to replace it without --overwrite
    assert "already holds" in capsys.readouterr().err


def _tiny_encoder(tmp_path, arch: str = "default") -> str:
    images, _ = synthetic_frames(8, size=(80, 64), seed=2)
    data = PretrainData(
        images=images,
        session_ids=np.zeros(8, np.int32),
        pairs=np.zeros((0, 2), np.int64),
        pair_targets=np.zeros((0, 3)),
    )
    cfg = PretrainConfig(
        out_dir=str(tmp_path / f"pre-{arch}"),
        tasks=("denoise",),
        arch=arch,
        epochs=1,
        batch_size=8,
        progress=False,
        device="cpu",
    )
    pretrain(cfg, data)
    return str(tmp_path / f"pre-{arch}" / "encoder.pt")


def test_train_init_starts_from_the_pretrained_encoder(tmp_path, capsys):
    encoder = _tiny_encoder(tmp_path)
    write_synthetic_session(tmp_path / "data/s0.h5", 16)
    cfg = TrainConfig(
        data=(str(tmp_path / "data"),),
        out_dir=str(tmp_path / "run"),
        init=encoder,
        epochs=1,
        lr=1e-12,  # AdamW moves each weight by about lr per step: 0 for this test
        min_lr=0.0,
        weight_decay=0.0,
        warmup_steps=0,
        val_fraction=0.0,
        progress=False,
        device="cpu",
    )
    result = train(cfg)
    pretrained = torch.load(encoder, weights_only=True)["encoder"]
    for k, v in pretrained.items():
        torch.testing.assert_close(result.final_state[f"features.{k}"], v, atol=1e-8, rtol=0)

    # a mismatched architecture: one line, exit 2
    paper = _tiny_encoder(tmp_path, arch="paper")
    argv = ["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "r2")]
    argv += ["--init", paper, "--epochs", "1", "--val-fraction", "0", "--quiet", "--no-cache"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "arch 'paper'" in err and "arch 'default'" in err


# -- divergence ----------------------------------------------------------------------------


def _robot_ssl(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "robot_ssl", *args, "--quiet", "--threads", "1"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_a_diverging_pretraining_stops_at_its_step_and_writes_no_encoder(tmp_path):
    """lr 1e12 (past the config's bounds, which refuse it): the first non-finite step ends
    the run with the step named; no encoder.pt or metrics.json is written."""
    images, _ = synthetic_frames(16, size=(80, 64), seed=2)
    data = PretrainData(
        images, np.zeros(16, np.int32), np.zeros((0, 2), np.int64), np.zeros((0, 3))
    )
    cfg = PretrainConfig(
        out_dir=str(tmp_path / "pre"), tasks=("denoise",), epochs=2, batch_size=4, warmup_steps=0
    )
    cfg.lr, cfg.progress, cfg.device = 1e12, False, "cpu"
    with pytest.raises(TrainingDiverged, match=r"^training diverged at step \d+ \(epoch 1, "):
        pretrain(cfg, data)
    assert not (tmp_path / "pre").exists()  # nothing was written, not even the folder

    # on the command line: one line, exit 2, no encoder
    _odometry_session(tmp_path / "data/s0.h5")
    r = _robot_ssl("pretrain", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "p"),
                   "--epochs", "1", "--lr", "1e12")  # fmt: skip
    err = r.stderr.strip()
    assert r.returncode == 2 and "\n" not in err and err.startswith("robot-ssl pretrain: error: ")
    assert "argument --lr:" in err or "diverged at step" in err, err  # its bounds, or the step
    assert not (tmp_path / "p/encoder.pt").exists()


def test_train_init_refuses_an_encoder_whose_pretraining_diverged(tmp_path):
    """An encoder.pt with NaN weights (written before this check existed): one line, exit 2,
    before any training."""
    encoder = torch.load(_tiny_encoder(tmp_path), weights_only=True)
    first = next(iter(encoder["encoder"]))
    encoder["encoder"][first][0] = float("nan")
    torch.save(encoder, tmp_path / "nan.pt")
    write_synthetic_session(tmp_path / "data/s0.h5", 16)
    r = _robot_ssl("train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"),
                   "--init", str(tmp_path / "nan.pt"), "--epochs", "1", "--no-cache")  # fmt: skip
    err = r.stderr.strip()
    assert r.returncode == 2 and "\n" not in err, r.stderr
    assert err == (
        f"robot-ssl train: error: {tmp_path / 'nan.pt'}: the encoder's weights are not finite "
        "(NaN or inf): its pretraining diverged; pretrain again with a lower --lr"
    )
    assert not (tmp_path / "run/best.pt").exists() and not (tmp_path / "run/last.pt").exists()
