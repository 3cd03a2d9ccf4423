"""Huge values a new user gave the real command line: exit 2 in one line, before any work."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from robot_cli import ROBOT_SSL

# -- the real CLI: the cases a new user met ------------------------------------------------

RUN = ["run", "--model", "m.onnx", "--robot", "sim", "--camera", "sim"]


def _big_camera_spec(tmp_path):
    spec = tmp_path / "big.yaml"
    spec.write_text(json.dumps({"camera": {"width": 100000, "height": 100000}}))
    return ["sim", "record", str(tmp_path / "s.h5"), "--minutes", "0.1", "--spec", str(spec)]


CLI_CASES = [
    (["train", "--data", "d", "--out", "r", "--input-width", "1000000000"], "--input-width"),
    (["train", "--data", "d", "--out", "r", "--width", "100000"], "--width"),
    (["train", "--data", "d", "--out", "r", "--num-threads", "1000000000"], "--num-threads"),
    (["train", "--data", "d", "--out", "r", "--threads", "1000000000"], "--threads"),
    (["eval", "--model", "m.pt", "--data", "d", "--bootstrap", "1000000000"], "--bootstrap"),
    (["pretrain", "--data", "d", "--out", "r", "--odo-dt-max-s", "1e12"], "--odo-dt-max-s"),
    (
        [*RUN, "--live.frame-poll-s", "1e12"],
        "--live.frame-poll-s: must be a finite number in (0, 1]",
    ),
    (["label", "s.h5", "--distances", "0:100:0.000000001"], "over 4096"),
    (["label", "s.h5", "--horizon", "1e12"], "--horizon"),
    (_big_camera_spec, "camera.width: must be an integer in 1..8192, got 100000"),
]


@pytest.mark.parametrize(("argv", "words"), CLI_CASES, ids=[w for _, w in CLI_CASES])
def test_cli_refuses_huge_values_at_once(tmp_path, argv, words):
    if callable(argv):
        argv = argv(tmp_path)
    t0 = time.monotonic()
    p = subprocess.run(
        [*ROBOT_SSL, *argv], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    elapsed = time.monotonic() - t0
    assert p.returncode == 2, p.stderr
    assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr, p.stderr
    assert words in p.stderr, p.stderr
    assert elapsed < 30  # parsing, not work: startup (torch import) only
    assert sorted(x.name for x in tmp_path.iterdir()) in ([], ["big.yaml"])  # nothing written
