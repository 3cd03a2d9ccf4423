"""The CLI says what is true (issue 24): no "motors stopped" when the robot did not take
the stop, a warning that a polled robot keeps driving when the host is killed, a line
naming a recovered session that was used, no silent training without validation, no
replay over another session's labels. Real CLI in a subprocess, real files."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import h5py
import pytest
from playground import FakeAsebaNode
from robot_cli import ROBOT_SSL

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def wait_for_line(proc: subprocess.Popen, word: str, timeout_s: float = 60.0) -> list[str]:
    """Lines of `proc`'s stderr up to the first one holding `word`."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if word in line:
            return lines
    raise AssertionError(f"no {word!r} in {lines}")


def test_run_does_not_claim_motors_stopped_when_the_robot_is_gone(onnx_model):
    """The robot falls silent mid-run: the final stop cannot reach it, and the summary
    says so instead of "motors stopped"; --poll warns that a killed host leaves it driving."""
    with FakeAsebaNode() as node:
        url = node.listen()
        cmd = [
            *ROBOT_SSL, "run", "--model", str(onnx_model), "--robot", url, "--poll",
            "--camera", "synthetic:64x48@15", "--drive", "avoid", "--duration", "3",
            "--no-status",
        ]  # fmt: skip
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=ENV)
        try:
            head = wait_for_line(proc, "Ctrl-C stops")
            time.sleep(0.5)
            node.silent = True  # unplugged: nothing answers any more
            node.drop_connection()
            _, rest = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    err = "".join(head) + rest
    assert "Traceback" not in err, err
    warning = [line for line in head if line.startswith("warning: polling the robot")]
    assert len(warning) == 1 and "keeps driving" in warning[0], head
    summary = [line for line in err.splitlines() if line.startswith("ran ")]
    assert len(summary) == 1, err
    assert "motors stopped" not in summary[0]
    assert "motors NOT confirmed stopped: the robot did not answer the stop" in summary[0]


def test_run_says_motors_stopped_when_they_were(onnx_model):
    cmd = [
        *ROBOT_SSL, "run", "--model", str(onnx_model), "--camera", "synthetic:64x48@15",
        "--duration", "1", "--no-status",
    ]  # fmt: skip
    with FakeAsebaNode() as node:
        cmd += ["--robot", node.listen()]
        r = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "motors stopped, wheel targets (0, 0)" in r.stderr
    assert "warning: polling the robot (onboard program" in r.stderr  # fell back to polling


def test_record_with_poll_warns_that_a_killed_host_leaves_the_robot_driving(tmp_path: Path):
    out = tmp_path / "s.h5"
    with FakeAsebaNode() as node:
        r = cli(
            "record", str(out), "--robot", node.listen(), "--poll", "--camera",
            "synthetic:64x48@15", "--duration", "1", "--no-status",
        )  # fmt: skip
    assert r.returncode == 0, r.stderr
    warning = [x for x in r.stderr.splitlines() if x.startswith("warning: polling the robot")]
    assert warning == [
        "warning: polling the robot (polling requested (--poll)): no onboard watchdog, so if"
        " this process is killed the robot keeps driving at its last wheel targets"
    ], r.stderr
    assert out.exists()


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*ROBOT_SSL, *args], capture_output=True, text=True, env=ENV, timeout=300)


@pytest.fixture(scope="module")
def sessions(tmp_path_factory) -> dict[str, Path]:
    """Two short simulated sessions ("a", "b") and a copy of "a" cut at 90 % ("cut": the
    truth and events written last are lost, the frames are intact), all labelled."""
    d = tmp_path_factory.mktemp("sessions")
    out = {}
    for name, seed in (("a", "3"), ("b", "4")):
        out[name] = d / f"{name}.h5"
        r = cli(
            "sim", "record", "--minutes", "0.1", "--seed", seed, "--no-progress", str(out[name])
        )
        assert r.returncode == 0, r.stderr
    data = out["a"].read_bytes()
    out["cut"] = d / "cut.h5"
    out["cut"].write_bytes(data[: len(data) * 9 // 10])
    return out


def test_label_train_eval_name_a_recovered_session_they_used(sessions, tmp_path: Path):
    cut = sessions["cut"]
    r = cli("label", str(cut), "--no-plot")
    assert r.returncode == 0, r.stderr
    line = f"robot-ssl label: {cut}: recovered session: truncated file"
    notes = [x for x in r.stderr.splitlines() if x.startswith(line)]
    assert len(notes) == 1 and "frames intact" in notes[0], r.stderr
    run = tmp_path / "run"
    r = cli(
        "train", "--data", str(cut), "--out", str(run), "--epochs", "1", "--batch-size", "4",
        "--val-fraction", "0", "--quiet", "--no-cache", "--threads", "1",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert f"robot-ssl train: {cut}: recovered session: truncated file" in r.stderr
    assert "robot-ssl train: no validation set" in r.stderr  # and not silently
    r = cli("eval", "--model", str(run / "best.pt"), "--data", str(cut), "--no-cache", "--quiet")
    assert r.returncode == 0, r.stderr
    assert f"robot-ssl eval: {cut}: recovered session: truncated file" in r.stderr
    r = cli("label", str(sessions["a"]), "--no-plot")  # an intact session: no such line
    assert r.returncode == 0 and "recovered" not in r.stderr, r.stderr


def test_replay_refuses_labels_of_another_session(sessions, tmp_path: Path):
    a, b = sessions["a"], sessions["b"]
    for s in (a, b):
        assert cli("label", str(s), "--no-plot").returncode == 0
    other = a.with_name("a.labels.h5")
    video = tmp_path / "b.mp4"
    r = cli("replay", str(b), "--labels", str(other), "--max-frames", "3", "--video", str(video))
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr, r.stderr
    assert f"{other}: labels of another session (a.h5" in r.stderr and str(b) in r.stderr
    assert not video.exists()
    r = cli("replay", str(b), "--max-frames", "3", "--video", str(video))  # its own labels
    assert r.returncode == 0, r.stderr
    assert video.stat().st_size > 0 and "labels of another session" not in r.stderr
    # a labels file that records no hash (an old writer): replayed, with a warning
    old = tmp_path / "old.labels.h5"
    old.write_bytes(b.with_name("b.labels.h5").read_bytes())
    with h5py.File(old, "r+") as f:
        f.attrs["session_sha256"] = ""
    r = cli("replay", str(b), "--labels", str(old), "--max-frames", "3", "--video", str(video))
    assert r.returncode == 0, r.stderr
    assert f"robot-ssl replay: warning: {old} records no session identity" in r.stderr
    # its own labels after the session changed (damaged since labelling): said as such
    changed = tmp_path / "b.h5"
    changed.write_bytes(b.read_bytes()[:-1000])
    (tmp_path / "b.labels.h5").write_bytes(b.with_name("b.labels.h5").read_bytes())
    r = cli("replay", str(changed), "--max-frames", "3", "--video", str(video))
    assert r.returncode == 2 and "recovered: truncated file" in r.stderr, r.stderr
    assert f"{changed} changed since it was labelled" in r.stderr.splitlines()[-1]
