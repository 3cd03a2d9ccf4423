"""Masked loss, augmentation, the training loop, checkpoints and resume (tiny synthetic data)."""

import json

import numpy as np
import pytest
import torch

from robot_ssl.learning.dataset import synthetic_frameset
from robot_ssl.learning.train import (
    AugmentConfig,
    TrainConfig,
    TrainError,
    augment_batch,
    lr_schedule,
    masked_bce_loss,
)

torch.set_num_threads(1)


# -- loss ----------------------------------------------------------------------------------


def test_masked_loss_ignores_unknown_cells():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(-1, 2, (8, 5, 31), generator=g, dtype=torch.int8)
    unknown = labels < 0
    logits = torch.randn(8, 5, 31, generator=g, requires_grad=True)
    loss = masked_bce_loss(logits, labels)
    loss.backward()
    grad = logits.grad.clone()

    changed = logits.detach().clone()
    changed[unknown] = torch.randn(int(unknown.sum()), generator=g) * 100
    changed.requires_grad_(True)
    loss2 = masked_bce_loss(changed, labels)
    loss2.backward()
    assert loss2.item() == pytest.approx(loss.item(), abs=0)
    assert torch.equal(changed.grad, grad)
    assert torch.all(grad[unknown] == 0)

    known = ~unknown
    manual = torch.nn.functional.binary_cross_entropy_with_logits(
        logits.detach()[known], labels[known].float()
    )
    assert loss.item() == pytest.approx(manual.item(), rel=1e-6)  # mean over known cells


def test_masked_loss_pos_weight_and_all_unknown():
    logits = torch.zeros(2, 1, 2, requires_grad=True)
    labels = torch.tensor([[[1, 0]], [[-1, -1]]], dtype=torch.int8)
    assert masked_bce_loss(logits, labels, pos_weight=3.0).item() == pytest.approx(
        (3 * np.log(2) + np.log(2)) / 2
    )
    empty = masked_bce_loss(logits, torch.full((2, 1, 2), -1, dtype=torch.int8))
    empty.backward()
    assert empty.item() == 0.0 and torch.all(logits.grad == 0)


# -- augmentation --------------------------------------------------------------------------


def test_flip_mirrors_image_and_sensor_axis():
    fs = synthetic_frameset(16, seed=3, size=(40, 32))
    x = torch.from_numpy(fs.images).float()
    y = torch.from_numpy(fs.labels)
    only_flip = AugmentConfig(
        brightness=0,
        contrast=0,
        channel_gain=0,
        gradient=0,
        noise_std=0,
        channel_shuffle=0,
        grayscale=0,
    )
    xa, ya = augment_batch(x, y, only_flip, torch.Generator().manual_seed(0))
    flipped = [bool(torch.equal(xa[i], x[i].flip(1))) for i in range(16)]
    assert 0 < sum(flipped) < 16
    for i in range(16):
        if flipped[i]:
            assert torch.equal(ya[i], y[i].flip(0))  # sensor s -> S-1-s
            assert torch.equal(ya[i, 0], y[i, -1])
        else:
            assert torch.equal(xa[i], x[i]) and torch.equal(ya[i], y[i])


def test_photometric_augmentation_is_seeded_bounded_and_keeps_labels():
    fs = synthetic_frameset(8, seed=4, size=(40, 32))
    x = torch.from_numpy(fs.images).float()
    y = torch.from_numpy(fs.labels)
    cfg = AugmentConfig(hflip=False)
    a1, l1 = augment_batch(x, y, cfg, torch.Generator().manual_seed(5))
    a2, _ = augment_batch(x, y, cfg, torch.Generator().manual_seed(5))
    a3, _ = augment_batch(x, y, cfg, torch.Generator().manual_seed(6))
    assert torch.equal(a1, a2) and not torch.equal(a1, a3)
    assert torch.equal(l1, y) and not torch.equal(a1, x)
    assert a1.min() >= 0 and a1.max() <= 255
    off, _ = augment_batch(x, y, AugmentConfig(enabled=False), torch.Generator())
    assert off is x


def test_colour_augmentation_permutes_channels_or_drops_colour():
    fs = synthetic_frameset(16, seed=5, size=(40, 32))
    x = torch.from_numpy(fs.images).float()
    x[..., 1] *= 0.5  # make channels distinguishable
    y = torch.from_numpy(fs.labels)
    none = {"brightness": 0, "contrast": 0, "channel_gain": 0, "gradient": 0, "noise_std": 0}
    shuffle = AugmentConfig(hflip=False, channel_shuffle=1.0, grayscale=0.0, **none)
    xa, _ = augment_batch(x, y, shuffle, torch.Generator().manual_seed(1))
    changed = 0
    for i in range(16):
        sums = sorted(xa[i].sum(dim=(0, 1)).tolist())
        assert sums == pytest.approx(sorted(x[i].sum(dim=(0, 1)).tolist()))
        changed += not torch.equal(xa[i], x[i])
    assert changed > 0
    grey = AugmentConfig(hflip=False, channel_shuffle=0.0, grayscale=1.0, **none)
    xg, _ = augment_batch(x, y, grey, torch.Generator().manual_seed(1))
    assert torch.allclose(xg[..., 0], xg[..., 2]) and torch.allclose(xg[..., 0], xg[..., 1])


def test_lr_schedule_warmup_cosine_step():
    cfg = TrainConfig(lr=1e-3, min_lr=1e-5, warmup_steps=10)
    assert lr_schedule(cfg, 100).at(0, 0) < lr_schedule(cfg, 100).at(9, 0) < 1e-3
    assert lr_schedule(cfg, 100).at(10, 0) == pytest.approx(1e-3)
    assert lr_schedule(cfg, 100).at(100, 9) == pytest.approx(1e-5)
    step = TrainConfig(lr=1e-3, min_lr=0, warmup_steps=0, schedule="step", step_epochs=2)
    assert lr_schedule(step, 100).at(50, 2) == pytest.approx(3e-4)


def test_config_validation():
    with pytest.raises(TrainError):
        TrainConfig(epochs=0)
    with pytest.raises(TrainError, match="schedule"):
        TrainConfig(schedule="linear")
    with pytest.raises(TrainError, match="unknown or reserved"):
        TrainConfig(model={"num_sensors": 3})
    with pytest.raises(TrainError, match="exclude"):
        TrainConfig(resume=True, overwrite=True)
    cfg = TrainConfig(model={"widths": [8, 8, 8, 8]}, val_worlds=("a",))
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


# -- the loop ------------------------------------------------------------------------------
