import json
import subprocess
import sys

import numpy as np

from robot_ssl.cli.main import main
from robot_ssl.io.session import SessionWriter


def write_session(path):
    with SessionWriter(path) as w:
        for i in range(301):  # 10 s
            t = i * 100_000_000 // 3
            w.write_frame(t, np.zeros((240, 320, 3), np.uint8))
            if i % 3 == 0:
                w.write_proximity(t, np.zeros(7))
            w.write_wheels(t, [0, 0], [0, 0])
            w.write_odometry(t, [0, 0, 0])
        w.write_event(5_000_000_000, "robot_gap", "unplugged 0.8 s")


def test_info_json(tmp_path, capsys):
    path = tmp_path / "s.h5"
    write_session(path)
    assert main(["info", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert abs(out["duration_s"] - 10.0) < 1e-6
    assert out["size_bytes"] == path.stat().st_size
    assert out["streams"]["camera"]["count"] == 301
    assert abs(out["streams"]["camera"]["rate_hz"] - 30.0) < 0.01
    assert abs(out["streams"]["proximity"]["rate_hz"] - 10.0) < 0.01
    assert set(out["streams"]) >= {"camera", "proximity", "wheels", "odometry"}
    assert out["events"][0]["kind"] == "robot_gap"
    assert main(["info", str(path)]) == 0
    assert "proximity" in capsys.readouterr().out


def test_info_damaged_file_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 50)  # truncated HDF5 signature
    r = subprocess.run(
        [sys.executable, "-m", "robot_ssl", "info", str(bad)], capture_output=True, text=True
    )
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "error" in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "robot_ssl", "info", str(tmp_path / "nope.h5")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "no such file" in r.stderr


def test_unimplemented_verb_exits_2(capsys):
    # every verb is registered; a verb whose module is missing says so in one line
    from robot_ssl.cli import main as cli

    cli.VERBS["nonexistent_verb_for_test"] = "x"
    try:
        assert main(["nonexistent_verb_for_test"]) == 2
        assert "not implemented" in capsys.readouterr().err
    finally:
        del cli.VERBS["nonexistent_verb_for_test"]
