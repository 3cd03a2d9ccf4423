"""Self-supervised pretraining: pretext tasks, odometry targets, encoder.pt and `train --init`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pretrain_data import FRAME_NS, _circle, _odometry_session, _tiny_encoder

from robot_ssl.cli.main import main
from robot_ssl.learning.dataset import synthetic_frames, write_synthetic_session
from robot_ssl.learning.models import ModelConfig, build_model
from robot_ssl.learning.pretrain import (
    PretrainConfig,
    PretrainError,
    PretrainNet,
    load_encoder,
    odometry_pairs,
    patch_pairs,
    rotated_crops,
    task_losses,
    vicreg_loss,
)
from robot_ssl.learning.train import TrainConfig, train

torch.set_num_threads(1)


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


@pytest.mark.parametrize(
    ("task", "steps"),
    [("patch", 200), ("denoise", 40), ("odometry", 40), ("rotation", 60), ("views", 40)],
)
def test_each_pretext_task_learns_on_tiny_data(task, steps):
    """Loss falls on 16 frames; the patch and rotation tasks also beat chance (1/8, 1/4)."""
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
        accuracy.append(float(out.get(f"{task}_acc", 0.0)))
    assert np.all(np.isfinite(losses))
    assert np.mean(losses[-10:]) < 0.9 * np.mean(losses[:5]), losses
    if task == "patch":
        assert np.mean(accuracy[-20:]) > 0.18  # chance: 0.125
    if task == "rotation":
        assert np.mean(accuracy[-10:]) > 0.4  # chance: 0.25


def test_rotated_crops_are_square_quarter_turns():
    """A 48x64 image: the crop is 48x48 and turning it back by k quarters restores a crop."""
    images = torch.arange(8 * 48 * 64 * 3, dtype=torch.float32).reshape(8, 48, 64, 3)
    turned, k = rotated_crops(images, torch.Generator().manual_seed(0))
    assert turned.shape == (8, 48, 48, 3) and set(k.tolist()) <= {0, 1, 2, 3}
    assert len(set(k.tolist())) > 1
    for i in range(8):
        back = torch.rot90(turned[i], -int(k[i]), dims=(0, 1))
        left = int(back[0, 0, 0] // 3) % 64
        torch.testing.assert_close(back, images[i, :, left : left + 48])


def test_vicreg_loss_rewards_agreeing_spread_views():
    """Equal, decorrelated, unit-spread projections cost ~0; collapsed ones cost the variance
    term (25); unrelated ones cost the invariance term."""
    z = torch.randn(256, 16, generator=torch.Generator().manual_seed(0))
    assert vicreg_loss(z, z) < 1.0
    collapsed = torch.zeros(256, 16)
    assert vicreg_loss(collapsed, collapsed) > 24.0
    assert vicreg_loss(z, torch.randn(256, 16)) > 25.0


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


def test_train_init_from_rotation_and_views_pretraining(tmp_path, capsys):
    """`pretrain --tasks rotation,views` then `train --init`: the heads stay out of encoder.pt
    and the detector starts from the encoder."""
    _odometry_session(tmp_path / "data/s0.h5", seed=0)
    pre = tmp_path / "pre"
    argv = ["pretrain", "--data", str(tmp_path / "data"), "--out", str(pre), "--epochs", "1"]
    argv += ["--batch-size", "12", "--quiet", "--threads", "1", "--tasks", "rotation,views"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "device cpu (--device auto), 1 process" in out
    enc = load_encoder(pre / "encoder.pt")
    assert enc["tasks"] == ["rotation", "views"] and enc["device"] == "cpu"
    row = enc["history"][-1]
    assert np.isfinite(row["rotation"]) and np.isfinite(row["views"]) and "rotation_acc" in row
    assert row["device"] == "cpu" and row["world_size"] == 1
    trunk = build_model(ModelConfig()).features.state_dict()
    assert enc["encoder"].keys() == trunk.keys()
    assert {k.split(".")[1] for k in enc["heads"]} == {"rotation", "views"}

    write_synthetic_session(tmp_path / "labelled/s0.h5", 16)
    cfg = TrainConfig(
        data=(str(tmp_path / "labelled"),),
        out_dir=str(tmp_path / "run"),
        init=str(pre / "encoder.pt"),
        epochs=1,
        lr=1e-12,
        min_lr=0.0,
        weight_decay=0.0,
        warmup_steps=0,
        val_fraction=0.0,
        progress=False,
        device="cpu",
    )
    result = train(cfg)
    for k, v in enc["encoder"].items():
        torch.testing.assert_close(result.final_state[f"features.{k}"], v, atol=1e-8, rtol=0)


def test_pretrain_refuses_cuda_without_a_gpu_in_one_line(tmp_path, capsys):
    assert not torch.cuda.is_available()  # this test is about a machine without one
    _odometry_session(tmp_path / "data/s0.h5", seed=0)
    argv = ["pretrain", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "pre")]
    argv += ["--device", "cuda", "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "cuda" in err and "not available" in err
    assert not (tmp_path / "pre" / "encoder.pt").exists()
