"""`robot-ssl sim record --drive contact`: the drive that explores by touching, in a real
process against the simulator; the contacts the detector finds in the session are the
simulator's true ones."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from robot_ssl.core.contact import detect_contacts, score_contacts
from robot_ssl.io.session import SessionReader


def _sim_record(out, *extra: str) -> subprocess.CompletedProcess:
    argv = ["sim", "record", str(out), "--world", "arena_boxes", "--minutes", "1"]
    argv += ["--width", "64", "--height", "48", "--fps", "2", "--no-progress", *extra]
    return subprocess.run(
        [sys.executable, "-m", "robot_ssl", *argv], capture_output=True, text=True, timeout=300
    )


def test_sim_record_contact_drive_finds_the_true_contacts(tmp_path) -> None:
    out = tmp_path / "contact.h5"
    run = _sim_record(out, "--drive", "contact", "--seed", "1")
    assert run.returncode == 0, run.stderr
    with SessionReader(out) as r:
        assert r.metadata["drive"] == "contact"
        wheels, acc, truth = r.read("wheels"), r.read("acc"), r.read("contact_truth")
        duration_s = r.duration_s
    assert wheels is not None and acc is not None and truth is not None
    # it drove forward legs, backed off and turned in place
    fwd = wheels.target.astype(int).sum(axis=1)
    assert (fwd > 0).any() and (fwd < 0).any()
    assert ((wheels.target[:, 0] == -wheels.target[:, 1]) & (wheels.target[:, 0] != 0)).any()
    assert np.abs(wheels.target).max() <= 250  # Thymio-safe speeds only
    events = detect_contacts(wheels.t_ns, wheels.speed, wheels.target, acc.t_ns, acc.acc, acc.tap)
    score = score_contacts(events.t_ns, truth.t_ns, duration_s)
    assert score.true >= 3, "a minute of the contact drive in arena_boxes touches things"
    assert score.recall >= 0.75 and score.precision >= 0.75, score
    # each contact ended a forward leg: the targets go back within a second of its onset
    for t in truth.t_ns[score.matched_pairs[:, 1]]:
        after = (wheels.t_ns > t) & (wheels.t_ns < t + 1_000_000_000)
        assert (fwd[after] <= 0).any()


def test_sim_record_wander_says_its_drive(tmp_path) -> None:
    out = tmp_path / "wander.h5"
    run = _sim_record(out, "--minutes", "0.1")
    assert run.returncode == 0, run.stderr
    with SessionReader(out) as r:
        assert r.metadata["drive"] == "wander"
    bad = _sim_record(tmp_path / "x.h5", "--drive", "fly")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
    assert not (tmp_path / "x.h5").exists()
