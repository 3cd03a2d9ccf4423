import json
import subprocess
import sys

import h5py
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


def test_an_unknown_verb_is_one_line_and_exit_2():
    """Every verb has its module (cli/<verb>.py); a verb that is not one is refused by the
    parser in one line naming it."""
    r = subprocess.run(
        [sys.executable, "-m", "robot_ssl", "nonexistent_verb"], capture_output=True, text=True
    )
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "'nonexistent_verb'" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_event_times_are_relative_to_the_session_start(tmp_path, capsys):
    path = tmp_path / "late.h5"
    t0 = 1_234_000_000_000  # monotonic clocks start anywhere
    with SessionWriter(path) as w:
        for i in range(31):
            w.write_proximity(t0 + i * 100_000_000, np.zeros(7))
        w.write_event(t0 + 1_250_000_000, "robot_gap", "unplugged 0.2 s")
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "+1.250 s  robot_gap" in out and "1235.250" not in out
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["start_ns"] == t0 and info["events"][0]["t_s"] == 1.25
    assert info["events"][0]["t_ns"] == t0 + 1_250_000_000  # the raw stamp stays


def test_errors_name_the_path_once(tmp_path, capsys):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = 1
    for verb in (["info"], ["label", "--no-plot"], ["replay"]):
        assert main([verb[0], str(other), *verb[1:]]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "not a robot-ssl session" in err, err
        assert err.count(str(other)) == 1, err


def test_info_several_sessions(tmp_path, capsys):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    write_session(a)
    write_session(b)
    assert main(["info", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert f"session   {a}" in out and f"session   {b}" in out
    assert main(["info", str(a), str(b), "--json"]) == 0
    assert [i["path"] for i in json.loads(capsys.readouterr().out)] == [str(a), str(b)]
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"junk")
    assert main(["info", str(a), str(junk), str(b)]) == 2  # the others are still shown
    out, err = capsys.readouterr()
    assert out.count("session   ") == 2
    assert err == f"robot-ssl info: error: {junk}: not an HDF5 file\n"
