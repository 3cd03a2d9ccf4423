"""Session files against a killed writer process and a real full disk."""

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from paths import REPO, TESTS

from robot_ssl.core.spec import CameraSpec
from robot_ssl.io.session import (
    SessionReader,
    SessionWriteError,
    SessionWriter,
)

CAM = CameraSpec(width=64, height=48)


def test_sigkill_at_random_moments_leaves_readable_file(tmp_path):
    """Kill a real writer process with SIGKILL several times: every file opens and holds
    everything flushed more than ~1 s before the kill."""
    killer = TESTS / "session_killer.py"
    rnd = random.Random(1234)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for trial in range(5):
        out, log = tmp_path / f"k{trial}.h5", tmp_path / f"k{trial}.log"
        proc = subprocess.Popen([sys.executable, str(killer), str(out), str(log)], env=env)
        deadline = time.monotonic() + 30
        while (not log.exists() or log.stat().st_size == 0) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(rnd.uniform(0.3, 2.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kill_ns = time.monotonic_ns()
        flushed = [tuple(map(int, line.split())) for line in log.read_text().split("\n") if line]
        must_have = max((n for t, n in flushed if t < kill_ns - 1_000_000_000), default=0)
        with SessionReader(out) as r:
            assert r.recovered
            t, p = r.proximity()
            assert len(t) >= must_have, (trial, len(t), must_have)
            assert len(t) >= flushed[-1][1] - 1 or len(t) >= must_have
            assert np.all(np.diff(t) > 0)
            assert p[-1, 0] == (len(t) - 1) % 4000
            if r.num_frames:
                assert r.frame(r.num_frames - 1).shape == (240, 320, 3)
            assert len(r.wheels()[0]) >= must_have


def test_full_disk_stops_with_clear_error_and_keeps_flushed_data(mount_tmpfs):
    tiny_disk = mount_tmpfs("16m")
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)  # ~170 kB JPEG each
    path = tiny_disk / "s.h5"
    written = 0
    with (
        pytest.raises(SessionWriteError, match="disk full"),
        SessionWriter(path, flush_interval_s=0.05) as w,
    ):
        for i in range(10_000):
            w.write_frame(i * 1_000_000, noise)
            w.write_proximity(i * 1_000_000, np.full(7, i))
            written = i
    with SessionReader(path) as r:
        assert r.recovered  # not finalised: the recording did not end normally
        assert 20 < r.num_frames <= written + 1
        assert r.frame(r.num_frames - 1).shape == (240, 320, 3)
        t, p = r.proximity()
        assert np.array_equal(p[:, 0], np.arange(len(t)))
