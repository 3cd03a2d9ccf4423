"""Every config field of train, label and run is settable on the command line (derived
from the dataclasses by tyro), and a bad one is a one-line error."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
import torch

from robot_ssl.cli.main import main
from robot_ssl.learning.dataset import write_synthetic_session
from robot_ssl.learning.train import TrainConfig

ROBOT_SSL = [sys.executable, "-m", "robot_ssl"]
RUN = ["--model", "m.onnx", "--robot", "sim", "--camera", "sim"]


def _help(verb: str) -> str:
    p = subprocess.run([*ROBOT_SSL, verb, "--config-help"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return p.stdout


def _flags(cls: type, prefix: str = "") -> list[str]:
    out = []
    for f in dataclasses.fields(cls):
        name = prefix + f.name.replace("_", "-")
        t = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(t):
            out += _flags(type(t), name + ".")
        else:
            out.append("--" + name)
    return out


@pytest.mark.parametrize("verb", ["train", "label", "run"])
def test_config_help_lists_every_field(verb):
    from robot_ssl.core.label_grid import LabelConfig
    from robot_ssl.live.loop import RunConfig

    cls = {"train": TrainConfig, "label": LabelConfig, "run": RunConfig}[verb]
    text = _help(verb)
    wanted = [f for f in _flags(cls) if f != "--model"]  # free-form dict: --model-field K=V
    missing = [f for f in wanted if f not in text]
    assert not missing


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


@pytest.mark.parametrize(
    ("verb", "args", "words"),
    [
        ("train", ["--data", "x", "--out", "y", "--warmup-steps", "abc"], "--warmup-steps"),
        ("train", ["--data", "x", "--out", "y", "--no-such-field", "1"], "--no-such-field"),
        ("train", ["--data", "x", "--out", "y", "--augment.brightness", "nan"], "brightness"),
        ("label", ["s.h5", "--min-duration-s", "-1"], "min_duration_s"),
        ("run", [*RUN, "--live.sensor-hz", "0"], "sensor_hz"),
        ("run", [*RUN, "--avoid.cruise-speed", "fast"], "--avoid.cruise-speed"),
        ("info", ["s.h5", "--bogus"], "unrecognized arguments"),
    ],
)
def test_a_bad_field_is_one_line_exit_2(tmp_path, capsys, verb, args, words):
    assert main([verb, *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err


def test_label_field_reaches_the_labels_file(tmp_path, capsys):
    s = tmp_path / "s.h5"
    assert main(["sim", "record", "--minutes", "0.1", "--seed", "2", "--no-progress", str(s)]) == 0
    assert main(["label", str(s), "--no-plot", "--tol-y-m", "0.02", "--jobs", "1"]) == 0
    from robot_ssl.io.labels_file import default_labels_path, read_labels

    assert read_labels(default_labels_path(s)).config.tol_y_m == 0.02
    assert "s.labels.h5" in capsys.readouterr().out  # the table printed
