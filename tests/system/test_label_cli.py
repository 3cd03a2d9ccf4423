"""The label command end to end: sessions in parallel, bad sessions, config files and flags, truth reports, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from labelling_sessions import write_session

from robot_ssl.cli.main import main
from robot_ssl.io.labels_file import (
    read_labels,
)


def test_cli_labels_sessions_in_parallel(tmp_path: Path, capsys):
    a = write_session(tmp_path / "a.h5")
    b = write_session(tmp_path / "b.h5", seconds=4.0)
    out = tmp_path / "labels"
    assert main(["label", str(a), str(b), "--jobs", "2", "--out", str(out)]) == 0
    for name in ("a", "b"):
        assert (out / f"{name}.labels.h5").is_file()
        assert (out / f"{name}.labels.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        read_labels(out / f"{name}.labels.h5")
    assert not list(tmp_path.glob("*.labels.h5"))  # nothing written beside the sessions
    table = capsys.readouterr().out
    assert "known" in table and "positive" in table
    assert "a.h5" in table and "b.h5" in table and " 167 " in table  # a.h5 has 167 frames


def test_cli_reports_bad_sessions_and_goes_on(tmp_path: Path, capsys):
    good = write_session(tmp_path / "good.h5")
    empty = write_session(tmp_path / "empty.h5", frames=False)
    no_odo = write_session(tmp_path / "no_odo.h5", odometry=False, wheels=False)
    missing = tmp_path / "missing.h5"
    rc = main(["label", str(empty), str(good), str(no_odo), str(missing), "-j", "2"])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    msgs = [line for line in err if line.startswith("robot-ssl label:")]
    assert (
        "robot-ssl label: good.h5: no acc stream: contacts detected from the wheels alone" in msgs
    )
    msgs = [line for line in msgs if "no acc stream" not in line]  # the failures, in order
    assert len(msgs) == 3
    assert "empty.h5: empty session: no camera frames" in msgs[0]
    assert "no_odo.h5: no odometry" in msgs[1]
    assert "missing.h5" in msgs[2] and "no such file" in msgs[2]
    assert (tmp_path / "good.labels.h5").is_file()
    assert not (tmp_path / "empty.labels.h5").exists()


def test_cli_config_file_and_flags(tmp_path: Path, capsys):
    s = write_session(tmp_path / "s.h5")
    cfg = tmp_path / "label.yaml"
    cfg.write_text(
        "sensor_indices: [2]\ndistances_m: {start: 0, stop: 0.2, step: 0.05}\ntol_d_m: 0.02\n"
    )
    args = ["label", str(s), "--config", str(cfg), "--tol-y", "0.005", "--threshold", "10"]
    assert main([*args, "--no-plot"]) == 0
    labels = read_labels(tmp_path / "s.labels.h5")
    assert labels.config.sensor_indices == (2,)
    assert labels.config.distances_m == (0.0, 0.05, 0.1, 0.15, 0.2)
    assert (labels.config.tol_d_m, labels.config.tol_y_m, labels.config.threshold) == (
        0.02,
        0.005,
        10,
    )
    assert not (tmp_path / "s.labels.png").exists()
    assert main(["label", str(s), "--sensors", "0,1", "--distances", "0,0.1", "--no-plot"]) == 0
    labels = read_labels(tmp_path / "s.labels.h5")
    assert labels.shape[1:] == (2, 2)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--tol-d", "-1"], "--tol-d: must be a finite number in (0, 10]"),
        (["--distances", "0:1"], "START:STOP:STEP"),
        (["--sensors", "a"], "--sensors"),
        (["--config", "/nonexistent/label.yaml"], "cannot read label config"),
    ],
)
def test_cli_bad_config_is_one_line(tmp_path: Path, capsys, extra, message):
    s = write_session(tmp_path / "s.h5")
    assert main(["label", str(s), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_cli_same_output_twice_is_refused(tmp_path: Path, capsys):
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    a = write_session(tmp_path / "x" / "run.h5")
    b = write_session(tmp_path / "y" / "run.h5")
    assert main(["label", str(a), str(b), "--out", str(tmp_path / "out")]) == 2
    assert "would both write" in capsys.readouterr().err


def test_cli_truth_report(tmp_path: Path, capsys):
    sim = write_session(tmp_path / "sim.h5", truth=True)
    real = write_session(tmp_path / "real.h5")
    assert main(["label", str(sim), str(real), "--truth", "--no-plot", "-j", "1"]) == 0
    out = capsys.readouterr().out
    assert "truth agree" in out and "no truth" in out


def test_cli_as_a_subprocess_exits_2_in_one_line(tmp_path: Path):
    r = subprocess.run(
        [sys.executable, "-m", "robot_ssl", "label", str(tmp_path / "nope.h5")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "no such file" in r.stderr
