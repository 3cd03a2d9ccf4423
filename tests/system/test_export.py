"""Export to TorchScript and ONNX: parity with PyTorch, metadata, runtime selection."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from robot_ssl.cli.main import main
from robot_ssl.core.spec import CameraSpec
from robot_ssl.inference.predictor import ModelFileError
from robot_ssl.learning.checkpoint import Checkpoint
from robot_ssl.learning.dataset import synthetic_frames
from robot_ssl.learning.export import ExportError, export_model
from robot_ssl.learning.models import ModelConfig, build_model
from robot_ssl.learning.torch_predictor import load_any_predictor

torch.set_num_threads(1)


def _checkpoint(path, arch):
    """A checkpoint of a randomly initialised model (run in train mode once, as after training)."""
    cfg = ModelConfig(arch=arch, distances_m=tuple(np.arange(31) * 0.01))
    torch.manual_seed(0)
    model = build_model(cfg).train()
    images, _ = synthetic_frames(32, seed=9)
    with torch.no_grad():
        for _ in range(3):
            model(torch.from_numpy(images))
    Checkpoint(model.eval().state_dict(), cfg, viewpoint=CameraSpec(pitch_rad=0.3).pinhole()).save(
        path
    )
    return path


@pytest.mark.parametrize("arch", ["default", "paper"])
@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_export_parity_on_camera_frames(tmp_path, arch, fmt):
    ckpt = _checkpoint(tmp_path / "m.pt", arch)
    frames, _ = synthetic_frames(16, size=(320, 240), seed=3)  # full camera frames
    out = export_model(ckpt, fmt, check_images=frames)
    assert out == tmp_path / ("m.ts" if fmt == "torchscript" else "m.onnx")
    reference = load_any_predictor(ckpt)
    exported = load_any_predictor(out)
    assert reference.kind == "checkpoint" and exported.kind == fmt
    assert exported.config == reference.config  # metadata travels with the file
    assert exported.viewpoint == reference.viewpoint == CameraSpec(pitch_rad=0.3).pinhole()
    expected = reference.predict(frames)
    got = exported.predict(frames)
    assert got.shape == (16, 5, 31) and got.dtype == np.float32
    assert np.max(np.abs(got - expected)) < 1e-4
    assert np.all((got >= 0) & (got <= 1))
    # live-loop halves and a single image
    assert np.allclose(exported.infer(exported.preprocess(frames[:1])), got[:1], atol=1e-6)
    assert exported.predict(frames[0]).shape == (1, 5, 31)


def test_cli_export_and_errors(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "m.pt", "default")
    rc = main(
        ["export", "--model", str(ckpt), "--format", "onnx", "--out", str(tmp_path / "x.onnx")]
    )
    assert rc == 0 and (tmp_path / "x.onnx").is_file()
    assert "parity" in capsys.readouterr().out
    assert load_any_predictor(tmp_path / "x.onnx").kind == "onnx"
    with pytest.raises(ExportError, match="unknown format"):
        export_model(ckpt, "tflite")
    (tmp_path / "junk.bin").write_bytes(b"junk")
    with pytest.raises(ModelFileError, match="not a checkpoint"):
        load_any_predictor(tmp_path / "junk.bin")
    with pytest.raises(ModelFileError, match="no such"):
        load_any_predictor(tmp_path / "missing.onnx")
    assert main(["export", "--model", str(tmp_path / "missing.pt"), "--format", "onnx"]) == 2


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_cli_export_to_a_full_disk_is_one_line_and_writes_nothing(tmp_path, mount_tmpfs, fmt):
    """The model (~1.8 MB) does not fit on the disk: exit 2 with one line, no file left."""
    ckpt = _checkpoint(tmp_path / "m.pt", "default")
    folder = mount_tmpfs("512k")
    cmd = [sys.executable, "-m", "robot_ssl", "export", "--model", str(ckpt), "--format", fmt]
    proc = subprocess.run(
        [*cmd, "--out", str(folder / "m.out")], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"robot-ssl export: error: cannot write {folder / 'm.out'}: no space left on device"
    ]
    assert list(folder.iterdir()) == []
