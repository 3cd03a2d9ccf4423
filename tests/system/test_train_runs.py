"""Training runs end to end on a synthetic task: learning, checkpoints and resume, early
stop, run folders, divergence, and the train command's one-line errors."""

import json
import subprocess
import sys

import pytest
import torch

from robot_ssl.learning.checkpoint import Checkpoint
from robot_ssl.learning.dataset import synthetic_frameset, write_synthetic_session
from robot_ssl.learning.models import model_from_checkpoint
from robot_ssl.learning.step import TrainingDiverged
from robot_ssl.learning.train import (
    TrainConfig,
    TrainError,
    train,
)

torch.set_num_threads(1)


# -- loss ----------------------------------------------------------------------------------


def _cfg(tmp_path, **kw):
    base = dict(
        out_dir=str(tmp_path / "run"),
        epochs=2,
        batch_size=32,
        lr=3e-3,
        warmup_steps=5,
        progress=False,
        num_threads=1,
        patience=None,  # the tests below count epochs; test_early_stop sets it
        model={"widths": [16, 24, 32, 48], "hidden": 128},
    )
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def toy():
    return synthetic_frameset(384, seed=1), synthetic_frameset(96, seed=2)


def test_learns_synthetic_task(tmp_path, toy):
    result = train(_cfg(tmp_path, epochs=10), data=toy)
    assert result.best_score > 0.9, result.history
    run = tmp_path / "run"
    for name in ("best.pt", "last.pt", "metrics.csv", "metrics.json", "curves.png", "config.json"):
        assert (run / name).is_file(), name
    rows = json.loads((run / "metrics.json").read_text())
    assert [r["epoch"] for r in rows] == list(range(1, 11))
    assert {"train_loss", "val_loss", "val_auc", "val_auc_0-10", "lr"} <= set(rows[0])
    assert (run / "metrics.csv").read_text().splitlines()[0].startswith("epoch,")
    assert not list(run.glob("*.tmp"))


def test_checkpoint_round_trip_and_resume(tmp_path, toy):
    # A constant LR keeps the schedule independent of the epoch count, so that a
    # 2-epoch run extended to 3 must equal a 3-epoch run.
    paper = dict(arch="paper", model={}, schedule="constant")
    full = train(_cfg(tmp_path / "a", epochs=3, **paper), data=toy)
    train(_cfg(tmp_path / "b", epochs=2, **paper), data=toy)
    resumed = train(_cfg(tmp_path / "b", epochs=3, resume=True, **paper), data=toy)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]

    ckpt = torch.load(tmp_path / "b/run/last.pt", weights_only=True)  # safe loading works
    assert ckpt["epoch"] == 2 and ckpt["model_config"]["arch"] == "paper"
    assert {"model", "optimizer", "train_config", "metrics", "seed", "history"} <= set(ckpt)
    # Shuffling, augmentation and dropout are seeded per epoch: resuming reproduces the run.
    ref = Checkpoint.load(tmp_path / "a/run/last.pt").model
    for k, v in ckpt["model"].items():
        assert torch.allclose(v, ref[k], atol=1e-5), k
    assert resumed.history[-1]["train_loss"] == pytest.approx(
        full.history[-1]["train_loss"], rel=1e-4
    )

    model, cfg = model_from_checkpoint(tmp_path / "b/run/best.pt")
    assert cfg.num_sensors == 5 and cfg.distances_m is not None and len(cfg.distances_m) == 31
    assert not model.training


def test_early_stop_after_patience_epochs_without_a_better_score(tmp_path, toy):
    # A learning rate of ~0 leaves the weights, hence the validation AUC, unchanged:
    # epoch 1 is the best and never beaten, so the run stops after 1 + patience epochs.
    frozen = dict(lr=1e-12, min_lr=0.0, epochs=8, augment={"enabled": False})
    result = train(_cfg(tmp_path, patience=2, **frozen), data=toy)
    assert [r["epoch"] for r in result.history] == [1, 2, 3] and result.best_epoch == 1
    # resuming a stopped run trains nothing more
    again = train(_cfg(tmp_path, patience=2, resume=True, **frozen), data=toy)
    assert len(again.history) == 3
    assert len(train(_cfg(tmp_path / "b", **frozen), data=toy).history) == 8  # no patience


def test_run_directory_guards(tmp_path, toy):
    small = (synthetic_frameset(64, seed=1), None)
    with pytest.raises(TrainError, match="cannot resume"):
        train(_cfg(tmp_path, resume=True), data=small)
    result = train(_cfg(tmp_path, epochs=1), data=small)  # no validation: best by train loss
    assert result.best_epoch == 1 and "val_auc" not in result.history[0]
    with pytest.raises(TrainError, match="already holds a run"):
        train(_cfg(tmp_path, epochs=1), data=small)
    train(_cfg(tmp_path, epochs=1, overwrite=True), data=small)
    done = train(_cfg(tmp_path, epochs=1, resume=True), data=small)  # nothing left to do
    assert len(done.history) == 1


def test_cli_train_errors_are_one_line(tmp_path, capsys):
    from robot_ssl.cli.main import main

    assert main(["train", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("robot-ssl train: error: no such session") and "\n" not in err


# -- divergence ----------------------------------------------------------------------------


@pytest.mark.parametrize("setting", [{"lr": 1e12}, {"weight_decay": 1e12}])
def test_a_diverging_run_stops_at_its_step_and_writes_no_checkpoint(tmp_path, setting):
    """A rate far too high (the config's bounds refuse it; set here past them, as NaN from
    elsewhere would come): the first non-finite step ends the run, before any checkpoint."""
    cfg = _cfg(tmp_path, epochs=2, batch_size=8, warmup_steps=0, schedule="constant")
    for name, value in setting.items():
        setattr(cfg, name, value)
    with pytest.raises(TrainingDiverged, match=r"^training diverged at step \d+ \(epoch 1, "):
        train(cfg, data=(synthetic_frameset(64, seed=1), None))
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["config.json"]


def test_cli_refuses_rates_that_diverge_in_one_line(tmp_path):
    write_synthetic_session(tmp_path / "data/s0.h5", 16)
    argv = [sys.executable, "-m", "robot_ssl", "train", "--data", str(tmp_path / "data")]
    argv += ["--epochs", "1", "--batch-size", "2", "--quiet", "--no-cache", "--threads", "1"]
    for option in ("--lr", "--weight-decay"):
        out = tmp_path / option.strip("-")
        r = subprocess.run(
            [*argv, "--out", str(out), option, "1e12"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        err = r.stderr.strip()
        assert r.returncode == 2 and "\n" not in err, r.stderr
        field = option.strip("-").replace("-", "_")  # refused by its bounds or diverged
        assert err.startswith("robot-ssl train: error: "), err
        bounds = (f"config.{field}:", f"argument {option}: must be")  # the field's, or its flag's
        assert any(b in err for b in bounds) or "diverged at step" in err, err
        assert not (out / "best.pt").exists() and not (out / "last.pt").exists()
        assert "best epoch" not in r.stdout
