"""The robot's install needs no torch: `record`, `info`, `label`, `replay` and
`run --model x.onnx` run in processes where `import torch` fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from robot_cli import ROBOT_SSL


@pytest.fixture(scope="module")
def no_torch_env(tmp_path_factory) -> dict[str, str]:
    """An environment whose Python cannot import torch (a `torch` package that refuses),
    as on a Raspberry Pi with the base install."""
    shadow = tmp_path_factory.mktemp("no_torch")
    (shadow / "torch").mkdir()
    (shadow / "torch" / "__init__.py").write_text(
        'raise ImportError("torch is not installed (robot install)")\n'
    )
    path = os.pathsep.join([str(shadow), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
    check = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True)
    assert check.returncode != 0 and b"robot install" in check.stderr
    return env


def _ok(args: list[str], env: dict[str, str], timeout: float = 180) -> str:
    p = subprocess.run(
        [*ROBOT_SSL, *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Traceback" not in p.stderr
    return p.stdout + p.stderr


def test_robot_verbs_run_without_torch(tmp_path, no_torch_env, onnx_model):
    env = no_torch_env
    s = tmp_path / "s.h5"
    _ok(["sim", "record", "--minutes", "0.2", "--seed", "3", "--no-progress", str(s)], env)
    rec = tmp_path / "rec.h5"
    sim_devices = ["--robot", "sim", "--camera", "sim"]
    _ok(
        ["record", str(rec), *sim_devices, "--drive", "wander", "--duration", "2", "--no-status"],
        env,
    )
    out = _ok(["info", str(rec)], env)
    assert "camera" in out and "proximity" in out
    out = _ok(["label", str(s), "--jobs", "2"], env)
    assert Path(str(s).removesuffix(".h5") + ".labels.h5").is_file()
    live = tmp_path / "live.h5"
    drive = ["--drive", "avoid", "--duration", "3", "--record", str(live), "--no-status"]
    _ok(["run", "--model", str(onnx_model), *sim_devices, *drive], env)
    video = tmp_path / "v" / "s.mp4"
    _ok(["replay", str(live), "--model", str(onnx_model), "--video", str(video)], env)
    assert video.stat().st_size > 1000
    # ...and what needs torch says so in one line
    p = subprocess.run(
        [*ROBOT_SSL, "train", "--data", str(tmp_path), "--out", str(tmp_path / "run")],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert "torch" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_the_inference_package_runs_without_torch(no_torch_env, onnx_model):
    """robot_ssl.inference (also held by an import contract: lint-imports) opens and runs an
    ONNX file, with its viewpoint, where torch cannot be imported; a checkpoint, which needs
    torch, is refused in one line naming the way out."""
    code = (
        "import sys, numpy as np\n"
        "from robot_ssl.inference.predictor import ModelFileError, load_predictor\n"
        "p = load_predictor(sys.argv[1])\n"
        "print(p.predict(np.zeros((2, 120, 160, 3), np.uint8)).shape, p.viewpoint.pitch_rad)\n"
        "try:\n"
        "    load_predictor(sys.argv[2])\n"
        "except ModelFileError as e:\n"
        "    print(e)\n"
    )
    checkpoint = onnx_model.with_suffix(".pt")
    p = subprocess.run(
        [sys.executable, "-c", code, str(onnx_model), str(checkpoint)],
        env=no_torch_env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    shape, refusal = p.stdout.strip().splitlines()
    assert shape == "(2, 5, 31) 0.3490658503988659"
    assert refusal == f"{checkpoint}: a checkpoint needs torch; export it to ONNX " + (
        "(robot-ssl export) to run it without torch"
    )


def test_import_and_export_without_rosbags_say_which_extra(tmp_path):
    """Without the `interop` extra, `import` and a session `export` name it in one line."""
    shadow = tmp_path / "no_rosbags"
    (shadow / "rosbags").mkdir(parents=True)
    (shadow / "rosbags" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'rosbags'\", name='rosbags')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(shadow)}
    session = tmp_path / "s.h5"
    _ok(["sim", "record", "--minutes", "0.05", "--no-progress", str(session)], env)
    (tmp_path / "x.mcap").write_bytes(b"a bag from elsewhere")
    for argv in (["import", str(tmp_path / "x.mcap"), str(tmp_path / "x.h5")],
                 ["export", str(session), str(tmp_path / "s.mcap")]):  # fmt: skip
        p = subprocess.run([*ROBOT_SSL, *argv], env=env, capture_output=True, text=True)
        assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
        assert p.stderr.strip().splitlines() == [
            f"robot-ssl {argv[0]}: error: needs rosbags, which is not installed (this install "
            "has no ROS bag support): pip install 'robot-ssl[interop]'"
        ]
