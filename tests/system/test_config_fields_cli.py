"""Config fields through the real command line in a subprocess."""

from __future__ import annotations

import torch

from robot_ssl.cli.main import main
from robot_ssl.learning.dataset import write_synthetic_session


def test_train_takes_fields_the_short_options_do_not_have(tmp_path):
    for i in range(2):
        write_synthetic_session(tmp_path / f"data/s{i}.h5", 24, world=f"w{i}", seed=i)
    argv = ["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run")]
    argv += ["--epochs", "1", "--val-worlds", "w1", "--no-cache", "--quiet", "--device", "cpu"]
    argv += ["--warmup-steps", "3", "--min-lr", "2e-05", "--grad-clip", "0.5"]
    argv += ["--augment.noise-std", "0.05", "--augment.channel-shuffle", "0.0"]
    argv += ["--model-field", "widths=[8, 8, 8, 8]", "--model-field", "hidden=32"]
    assert main(argv) == 0
    cfg = torch.load(tmp_path / "run/last.pt", weights_only=True)["train_config"]
    assert cfg["warmup_steps"] == 3 and cfg["min_lr"] == 2e-05 and cfg["grad_clip"] == 0.5
    assert cfg["augment"]["noise_std"] == 0.05 and cfg["augment"]["channel_shuffle"] == 0.0
    assert cfg["epochs"] == 1  # the short options still apply
    assert cfg["model"] == {"widths": [8, 8, 8, 8], "hidden": 32}
