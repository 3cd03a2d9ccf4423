"""The camera viewpoint travels with the model: training records it (and refuses sessions
of two viewpoints), checkpoints and exports carry it, and `run`, `eval` and `replay`
refuse a model trained with another camera in one line unless told to go on."""

from __future__ import annotations

import math
import subprocess
from dataclasses import replace

import pytest
import yaml
from robot_cli import ROBOT_SSL

from pinhole import Pinhole
from robot_ssl.cli.main import main
from robot_ssl.core.spec import CameraSpec
from robot_ssl.inference.predictor import load_predictor
from robot_ssl.learning.checkpoint import Checkpoint
from robot_ssl.learning.dataset import write_synthetic_session
from sim.camera import CameraParams

torch = pytest.importorskip("torch")

PITCH_35 = math.radians(35.0)


def _model(tmp_path, name: str, viewpoint: Pinhole | None):
    """An untrained detector's checkpoint with `viewpoint`, exported to ONNX."""
    from robot_ssl.learning.export import export_model
    from robot_ssl.learning.models import ModelConfig, build_model

    cfg = ModelConfig(arch="paper", distances_m=tuple(round(0.01 * i, 2) for i in range(31)))
    torch.manual_seed(0)
    Checkpoint(build_model(cfg).eval().state_dict(), cfg, viewpoint).save(tmp_path / f"{name}.pt")
    return export_model(tmp_path / f"{name}.pt", "onnx", tmp_path / f"{name}.onnx")


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_one_pinhole_model_for_the_spec_and_the_simulator():
    """CameraSpec and the simulator's CameraParams are the same pinhole (pinhole.Pinhole):
    same defaults, same geometry, one viewpoint."""
    spec, params = CameraSpec(), CameraParams()
    assert isinstance(spec, Pinhole) and isinstance(params, Pinhole)
    assert spec.pinhole() == params.pinhole() == Pinhole()
    tilted = dict(pitch_rad=0.5, fx=200.0, cy=100.0)
    assert CameraSpec(**tilted).intrinsics() == CameraParams(**tilted).intrinsics()
    assert CameraSpec(**tilted).horizon_row() == CameraParams(**tilted).horizon_row()


def test_viewpoint_differences_ignore_the_size_not_the_pitch():
    base = CameraSpec()
    assert base.viewpoint_differences(CameraSpec(width=640, height=480)) == []
    assert base.viewpoint_differences(replace(base, pitch_rad=base.pitch_rad + 0.01)) == []
    assert base.viewpoint_differences(CameraSpec(pitch_rad=PITCH_35)) == ["pitch 20.0 vs 35.0 deg"]
    wide = base.viewpoint_differences(CameraSpec(width=320, height=180))  # 16:9 crop
    assert len(wide) == 1 and wide[0].startswith("vertical fov")
    assert base.viewpoint_differences(CameraSpec(z_m=0.15)) == ["mount z_m 0.095 vs 0.150"]
    with pytest.raises(ValueError, match="viewpoint"):
        Pinhole.from_viewpoint_dict({"width": 320})
    assert Pinhole.from_viewpoint_dict(base.viewpoint_dict()) == base.pinhole()


def test_checkpoint_round_trip_and_older_files(tmp_path):
    """The Checkpoint type saves and loads every key; a file of an earlier version (a dict
    with only model and model_config) loads with no viewpoint."""
    from robot_ssl.learning.models import ModelConfig, build_model

    cfg = ModelConfig(arch="paper")
    state = build_model(cfg).state_dict()
    Checkpoint(state, cfg, CameraSpec(pitch_rad=PITCH_35).pinhole(), epoch=3).save(
        tmp_path / "new.pt"
    )
    new = Checkpoint.load(tmp_path / "new.pt")
    assert new.viewpoint == CameraSpec(pitch_rad=PITCH_35).pinhole() and new.epoch == 3
    assert torch.load(tmp_path / "new.pt", weights_only=True)["format"] == "robot-ssl/checkpoint"
    torch.save({"model": state, "model_config": cfg.to_dict()}, tmp_path / "old.pt")
    old = Checkpoint.load(tmp_path / "old.pt")
    assert old.viewpoint is None and old.model_config == cfg and old.best_epoch == -1


def test_run_refuses_a_model_trained_at_another_pitch(tmp_path, onnx_model):
    """The done-when check: a model trained at 20 degrees, a spec at 35: `run` exits 2 in one
    line before the robot moves; --allow-viewpoint-mismatch goes on with a warning."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"camera": {"pitch_rad": PITCH_35}}))
    run = [*ROBOT_SSL, "run", "--model", str(onnx_model), "--robot", "sim", "--camera", "sim"]
    run += ["--spec", str(spec), "--drive", "avoid", "--duration", "1", "--no-status"]
    p = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    line = _one_line(p.stderr)
    assert line.startswith("robot-ssl run: error: ") and "pitch 20.0 vs 35.0 deg" in line
    assert "--allow-viewpoint-mismatch" in line and p.stdout == ""
    p = subprocess.run(
        [*run, "--allow-viewpoint-mismatch"], capture_output=True, text=True, timeout=120
    )
    assert p.returncode == 0, p.stderr
    assert "warning:" in p.stderr and "pitch 20.0 vs 35.0 deg" in p.stderr


def test_replay_refuses_and_warns(tmp_path, capsys):
    """replay: a model of another pitch is refused in one line; one without a viewpoint (an
    older file) is used with a one-line warning."""
    session, _ = write_synthetic_session(tmp_path / "s.h5", 12, seed=1)  # default camera
    tilted = _model(tmp_path, "tilted", CameraSpec(pitch_rad=PITCH_35).pinhole())
    live = ["--live", "--speed", "100"]
    assert main(["replay", str(session), "--model", str(tilted), *live]) == 2
    out, err = capsys.readouterr()
    line = _one_line(err)
    assert line.startswith("robot-ssl replay: error: ") and "pitch 35.0 vs 20.0 deg" in line
    assert "live replay" not in out  # refused before the first frame
    older = _model(tmp_path, "older", None)
    assert main(["replay", str(session), "--model", str(older), *live]) == 0
    out, err = capsys.readouterr()
    assert "live replay: ran" in out
    assert "warning:" in _one_line(err) and "records no camera viewpoint" in err


def test_training_records_the_viewpoint_and_refuses_two(tmp_path, capsys):
    """train stores its sessions' viewpoint in the checkpoint and the export; sessions of two
    viewpoints are refused in one line; eval refuses sessions of another viewpoint."""
    from robot_ssl.learning.dataset import DatasetError
    from robot_ssl.learning.export import export_model
    from robot_ssl.learning.train import TrainConfig, train

    tilt = CameraSpec(width=160, height=120, pitch_rad=PITCH_35)
    a, _ = write_synthetic_session(tmp_path / "a.h5", 48, seed=1, camera=tilt)
    b, _ = write_synthetic_session(tmp_path / "b.h5", 48, seed=2, camera=tilt)
    c, _ = write_synthetic_session(tmp_path / "c.h5", 48, seed=3)  # the default pitch
    cfg = dict(arch="paper", epochs=1, batch_size=16, progress=False, num_threads=1)
    with pytest.raises(DatasetError, match="camera viewpoints differ") as e:
        train(TrainConfig(data=(str(a), str(c)), out_dir=str(tmp_path / "mixed"), **cfg))
    assert "\n" not in str(e.value) and "pitch 35.0 vs 20.0 deg" in str(e.value)
    assert not (tmp_path / "mixed" / "last.pt").exists()

    result = train(TrainConfig(data=(str(a), str(b)), out_dir=str(tmp_path / "run"), **cfg))
    assert Checkpoint.load(result.best_path).viewpoint == tilt.pinhole()
    onnx = export_model(result.best_path, "onnx", tmp_path / "m.onnx")
    assert load_predictor(onnx).viewpoint == tilt.pinhole()

    assert main(["eval", "--model", str(onnx), "--data", str(c), "--quiet", "--no-cache"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("robot-ssl eval: error: ") and "pitch 35.0 vs 20.0 deg" in line
    allowed = ["--allow-viewpoint-mismatch", "--bootstrap", "0"]
    assert main(["eval", "--model", str(onnx), "--data", str(c), "--quiet", *allowed]) == 0
    assert "warning:" in capsys.readouterr().err
