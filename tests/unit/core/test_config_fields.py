"""Every config field of train, label, record, run, pretrain and eval is settable on the
command line (options generated from the dataclasses), and a bad one is a one-line error."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import typing

import pytest
from robot_cli import ROBOT_SSL

from robot_ssl.cli.main import main
from robot_ssl.learning.train_config import TrainConfig
from robot_ssl.live.run import RunConfig

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
    from robot_ssl.live.run import RunConfig

    cls = {"train": TrainConfig, "label": LabelConfig, "run": RunConfig}[verb]
    text = _help(verb)
    wanted = [f for f in _flags(cls) if f != "--model"]  # free-form dict: --model-field K=V
    missing = [f for f in wanted if f not in text]
    assert not missing


@pytest.mark.parametrize(
    ("verb", "args", "words"),
    [
        ("train", ["--data", "x", "--out", "y", "--warmup-steps", "abc"], "--warmup-steps"),
        ("train", ["--data", "x", "--out", "y", "--no-such-field", "1"], "--no-such-field"),
        ("train", ["--data", "x", "--out", "y", "--augment.brightness", "nan"], "brightness"),
        ("label", ["s.h5", "--min-duration-s", "-1"], "--min-duration-s"),
        ("run", [*RUN, "--live.sensor-hz", "0"], "--live.sensor-hz"),
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


def _verb_parser(verb: str):
    from robot_ssl.cli.main import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "verb")
    return sub.choices[verb]


def _field_paths(cls: type, prefix: str = "") -> list[str]:
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            out += _field_paths(tp, prefix + f.name + ".")
        else:
            out.append(prefix + f.name)
    return out


def _verb_config(verb: str) -> type:
    from robot_ssl.labelling.label_job import LabelJob
    from robot_ssl.learning.eval_config import EvalConfig
    from robot_ssl.learning.pretrain_config import PretrainConfig
    from robot_ssl.live.replay_job import ReplayJob
    from robot_ssl.recording.record import RecordConfig

    configs = {"train": TrainConfig, "label": LabelJob, "record": RecordConfig}
    configs.update(run=RunConfig, pretrain=PretrainConfig, eval=EvalConfig, replay=ReplayJob)
    return configs[verb]


@pytest.mark.parametrize("verb", ["train", "label", "record", "run", "pretrain", "eval", "replay"])
def test_one_field_one_option(verb):
    """The options are generated from the config: each field has exactly one argparse
    action (its --field-name and the README's aliases), and no option string is shared,
    the device options of record and run (`dev:`, from DeviceOptions) included."""
    parser = _verb_parser(verb)
    actions = [a for a in parser._actions if a.dest.startswith("cfg:")]
    dests = [a.dest.removeprefix("cfg:") for a in actions]
    assert sorted(dests) == sorted(_field_paths(_verb_config(verb)))
    generated = [a for a in parser._actions if a.dest.startswith(("cfg:", "dev:"))]
    strings = [s for a in generated for s in a.option_strings]
    assert len(strings) == len(set(strings))
    others = [a.dest for a in parser._actions if not a.dest.startswith(("cfg:", "dev:"))]
    assert sorted(others) == ["config_help", "help"]  # no option typed by hand


@pytest.mark.parametrize(
    ("verb", "args", "words"),
    [
        ("train", ["--data", "x", "--out", "a", "--out-dir", "b"], "--out-dir: given twice"),
        ("train", ["--data", "x", "--out", "a", "--no-cache", "--cache-dir", "c"], "given twice"),
        ("train", ["--data", "x", "--out", "a", "--lr", "1e-3", "--lr", "2e-3"], "given twice"),
        ("label", ["s.h5", "--tol-y", "0.02", "--tol-y-m", "0.03"], "--tol-y-m: given twice"),
        ("label", ["s.h5", "--camera-offset", "auto", "--camera-offset-ms", "5"], "given twice"),
    ],
)
def test_a_field_given_twice_is_one_line_exit_2(verb, args, words):
    """Two spellings of one field no longer let the later one win silently."""
    p = subprocess.run([*ROBOT_SSL, verb, *args], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
    assert words in p.stderr


def test_train_config_takes_what_the_command_line_takes():
    """`train --lr 5e-5` and `TrainConfig(lr=5e-5)` are the same config: min_lr follows lr."""
    from robot_ssl.cli.train import config_from

    cfg = TrainConfig(lr=5e-5)
    assert cfg.min_lr == 5e-5
    assert TrainConfig().min_lr == 1e-4
    args = _verb_parser("train").parse_args(["--data", "d", "--out", "r", "--lr", "5e-5"])
    parsed = config_from(args)
    assert (parsed.lr, parsed.min_lr, parsed.data, parsed.out_dir) == (5e-5, 5e-5, ("d",), "r")
    assert parsed.cache_dir is not None  # the command line caches frames by default
    argv = ["--data", "d", "--out", "r", "--no-cache"]
    no_cache = config_from(_verb_parser("train").parse_args(argv))
    assert no_cache.cache_dir is None


def test_label_options_and_config_file_build_one_job(tmp_path):
    """The rule comes from --config, the rule's options override it, aliases included."""
    from robot_ssl.cli.label import config_from

    rule = tmp_path / "rule.yaml"
    rule.write_text("tol_y_m: 0.03\nthreshold: 5\n")
    argv = ["a.h5", "b.h5", "--config", str(rule), "--tol-y", "0.02", "--sensors", "0,1"]
    argv += ["--distances", "0:0.1:0.05", "--camera-offset-ms", "50", "--no-plot", "-j", "1"]
    job = config_from(_verb_parser("label").parse_args(argv))
    assert job.sessions == ("a.h5", "b.h5") and job.plot is False and job.jobs == 1
    assert job.rule.tol_y_m == 0.02 and job.rule.threshold == 5  # option over file
    assert job.rule.sensor_indices == (0, 1) and job.rule.distances_m == (0.0, 0.05, 0.1)
    assert job.rule.camera_offset == 0.05


def test_parsing_train_and_label_needs_no_torch():
    """The configs live in torch-free modules: the robot's install parses every verb."""
    code = (
        "import sys\n"
        "from robot_ssl.cli.main import build_parser\n"
        "from robot_ssl.cli import train, label\n"
        "p = build_parser()\n"
        "train.config_from(p.parse_args(['train', '--data', 'd', '--out', 'r']))\n"
        "label.config_from(p.parse_args(['label', 's.h5', '--tol-y', '0.02']))\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr


def test_learn_settings_are_a_nested_config_of_run_and_replay():
    """`--learn DIR` sets `learn.out_dir`; every LearnConfig field is `--learn.FIELD`."""
    from robot_ssl.cli.config_fields import config_from_args
    from robot_ssl.cli.run import config_from
    from robot_ssl.live.replay_job import ReplayJob

    argv = [*RUN, "--learn", "d", "--learn.lr", "1e-3", "--learn.augment.noise-std", "0.05"]
    cfg = config_from(_verb_parser("run").parse_args([*argv, "--threads", "2"]))
    assert (cfg.learn.out_dir, cfg.learn.lr, cfg.learn.augment.noise_std) == ("d", 1e-3, 0.05)
    assert config_from(_verb_parser("run").parse_args(RUN)).learn.out_dir is None
    argv = ["s.h5", "--live", "--model", "m.pt", "--learn", "d", "--learn.ema", "0.5"]
    job = config_from_args(ReplayJob, _verb_parser("replay").parse_args(argv))
    assert (job.session, job.learn.out_dir, job.learn.ema) == ("s.h5", "d", 0.5)


@pytest.mark.parametrize(
    ("verb", "args", "words"),
    [
        ("run", [*RUN, "--learn", "a", "--learn.out-dir", "b"], "given twice"),
        ("run", [*RUN, "--learn.ema", "1"], "--learn.ema"),
        ("run", [*RUN, "--learn.threads", "3", "--threads", "2"], "share torch's threads"),
        ("replay", ["s.h5", "--learn", "d"], "--learn needs --live and --model"),
        ("replay", ["s.h5", "--speed", "0"], "--speed"),
    ],
)
def test_a_bad_learn_or_replay_setting_is_one_line_exit_2(tmp_path, capsys, verb, args, words):
    """Refused before any file is opened or model loaded (no such session here)."""
    assert main([verb, *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err
