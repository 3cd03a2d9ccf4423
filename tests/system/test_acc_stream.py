"""The accelerometer and tap from the robot into sessions: `robot-ssl record` against the
virtual Thymio that `robot-ssl sim serve` puts on the wire, the onboard program streaming
`acc` and `tap`, and the session's "acc" stream."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from playground import free_port, sim_serve

from robot_ssl.io.session import SessionReader


def _record(url: str, out, *extra: str) -> subprocess.CompletedProcess:
    argv = ["record", "--robot", url, "--camera", "none", "--duration", "3", *extra, str(out)]
    return subprocess.run(
        [sys.executable, "-m", "robot_ssl", *argv], capture_output=True, text=True, timeout=120
    )


def test_record_from_sim_serve_stores_acc_and_tap(tmp_path) -> None:
    out, polled = tmp_path / "acc.h5", tmp_path / "polled.h5"
    with sim_serve("--port", str(free_port()), "--duration", "120") as (_, urls):
        assert urls and urls[0].startswith("socket://"), urls
        run = _record(urls[0], out)
        assert run.returncode == 0, run.stderr
        run_polled = _record(urls[0], polled, "--poll")
        assert run_polled.returncode == 0, run_polled.stderr
    with SessionReader(out) as r:
        acc = r.read("acc")
        events = r.read("events")
        prox = r.read("proximity")
    assert acc is not None and prox is not None and events is not None
    n = len(acc.t_ns)
    span_s = (int(acc.t_ns[-1]) - int(acc.t_ns[0])) / 1e9
    assert n >= 35 and 14.0 <= (n - 1) / span_s <= 19.0  # the acc event: 100/6 Hz
    assert np.all(np.diff(acc.t_ns) > 0)
    assert acc.acc.dtype == np.int16 and acc.acc.shape == (n, 3)
    assert acc.tap.dtype == np.uint8 and set(np.unique(acc.tap)) <= {0, 1}
    # standing on the floor: gravity on z, about 23 units per g; the axes within -32..32
    assert np.all(np.abs(acc.acc) <= 32)
    assert 15 <= np.median(np.abs(acc.acc[:, 2])) <= 30
    # on the robot's clock, interleaved with the other streams
    assert abs(int(acc.t_ns[0]) - int(prox.t_ns[0])) < 1e9
    notes = [m.decode() for k, m in zip(events.kind, events.message) if k == b"robot_stream"]
    assert any("with acc and tap" in m for m in notes), notes
    with SessionReader(polled) as r:  # polled: no accelerometer stream, none pretended
        assert r.read("acc") is None and len(r.read("proximity").t_ns) > 0
