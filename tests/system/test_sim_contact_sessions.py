"""Recorded simulated sessions carry the simulator's contacts: `contact_truth` rows (one per
onset, consistent with the true pose) beside the accelerometer's `acc` rows, from
`robot-ssl sim record` and from `robot-ssl record --robot sim`."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np

from robot_ssl.cli.main import main
from robot_ssl.core.spec import RobotSpec
from robot_ssl.io.session import SessionReader


def test_sim_record_stores_contact_truth_and_acc(tmp_path):
    """A contact-seeking drive that touches a box: each contact_truth row lies on the body's
    outline, and its world point is the body point placed by the true pose at that time."""
    out = tmp_path / "s.h5"
    args = ["sim", "record", str(out), "--world", "arena_boxes", "--seed", "2"]
    args += ["--minutes", "0.2", "--drive", "contact", "--no-progress"]
    assert main([*args, "--width", "64", "--height", "48", "--fps", "5"]) == 0
    radius = RobotSpec().body_radius_m
    with SessionReader(out) as r:
        contacts = r.read("contact_truth")
        acc = r.read("acc")
        truth = r.read("truth")
    assert contacts is not None and len(contacts.t_ns) >= 1
    assert np.all(np.diff(contacts.t_ns) > 0)
    np.testing.assert_allclose(np.hypot(*contacts.point_m.T), radius, atol=1e-4)
    for t, p, w in zip(contacts.t_ns, contacts.point_m, contacts.world_m, strict=True):
        k = int(np.searchsorted(truth.t_ns, t))  # the truth row at or after the onset
        x, y, th = truth.pose[min(k, len(truth.t_ns) - 1)]
        c, s = math.cos(th), math.sin(th)
        placed = (x + p[0] * c - p[1] * s, y + p[0] * s + p[1] * c)
        np.testing.assert_allclose(placed, w, atol=0.005)  # the body barely moves once touching
    # the accelerometer at 16 Hz: int16 (3,), gravity on z, tap a 0/1 flag
    assert abs(np.median(np.diff(acc.t_ns)) / 1e6 - 62.5) < 3
    assert acc.acc.dtype == np.int16 and acc.acc.shape[1] == 3
    assert np.all(np.abs(acc.acc[:, 2] - 22) <= 3)
    assert set(np.unique(acc.tap).tolist()) <= {0, 1}


def test_record_with_the_simulated_robot_opens_contact_truth(tmp_path):
    """`robot-ssl record --robot sim` (real time, 2 s) writes the simulator's truth with its
    contact_truth stream and the streamed acc rows."""
    out = tmp_path / "r.h5"
    cmd = [sys.executable, "-m", "robot_ssl", "record", "--robot", "sim", "--camera", "none"]
    cmd += ["--duration", "2", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with SessionReader(out) as r:
        assert "contact_truth" in r.streams and r.streams["truth"] > 0
        contacts = r.read("contact_truth")
        acc = r.read("acc")
    assert contacts is not None  # the stream is there, empty when nothing was touched
    assert acc is not None and 25 <= len(acc.t_ns) <= 45
