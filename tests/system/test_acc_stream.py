"""The accelerometer and tap from the robot into sessions: `robot-ssl record` against the
virtual Thymio that `robot-ssl sim serve` puts on the wire, the onboard program streaming
`acc` and `tap`, and the session's "acc" stream."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import numpy as np
from playground import free_port, sim_serve

from robot_ssl.io.session import SessionReader, SessionWriter


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
        probe = subprocess.run(
            [sys.executable, "-m", "robot_ssl", "robot", "probe", "--port", urls[0]],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert probe.returncode == 0, probe.stderr
    lines = dict(line.split(":", 1) for line in probe.stdout.splitlines() if ":" in line)
    stream = re.fullmatch(
        r"\s*\d+ proximity, \d+ wheel, (\d+) acc events in 1 s, 0 lost", lines["stream"]
    )
    assert stream and 14 <= int(stream[1]) <= 19, lines["stream"]
    acc_line = lines["acc"].split("(")[0].split()
    assert len(acc_line) == 3 and 15 <= abs(int(acc_line[2])) <= 30, lines["acc"]
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
    info = subprocess.run(
        [sys.executable, "-m", "robot_ssl", "info", "--json", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert 14.0 <= json.loads(info.stdout)["streams"]["acc"]["rate_hz"] <= 19.0
    with SessionReader(polled) as r:  # polled: no accelerometer stream, none pretended
        assert r.read("acc") is None and len(r.read("proximity").t_ns) > 0


class _Straight:
    """Straight ahead at `speed` (raw units), whatever the proximity says."""

    def __init__(self, speed: int) -> None:
        self.speed = speed

    def command(self, proximity: np.ndarray, t_ns: int) -> tuple[int, int]:
        return self.speed, self.speed


def test_a_bump_reaches_the_session_as_a_tap_over_a_pty(tmp_path) -> None:
    """The whole path of a tap: the simulated body bumps a wall, the virtual Thymio's
    `tap` event fires, the onboard program sends it over a pseudo-terminal, the stream
    flags the next acc sample, the recorder writes it."""
    from firmware_bridge.thymio import ThymioRobot
    from robot_ssl.recording.recorder import Recorder, RecorderConfig
    from robot_ssl.recording.sampler import robot_streams
    from sim.simulator import Simulator
    from sim.virtual_thymio import VirtualThymio
    from sim.world import load_world

    start = (0.0, -1.1, -np.pi / 2)  # facing the arena's wall, 12 cm away
    s = Simulator(
        load_world("arena_boxes"),
        seed=0,
        camera=None,
        start_pose=start,
        start_ns=time.monotonic_ns(),
    )
    s.advance_to(time.monotonic_ns())  # catch up the set-up time: one clock
    out = tmp_path / "bump.h5"
    with VirtualThymio(s) as vt:
        robot = ThymioRobot.open(vt.serve_pty())
        try:
            assert robot.gives_acc and robot_streams(robot) == ("acc",)
            with SessionWriter(out, streams=robot_streams(robot)) as w:
                stats = Recorder(
                    robot, None, w, RecorderConfig(status=False), controller=_Straight(400)
                ).run(3.0)
        finally:
            robot.close()
        contacts = [c.t_ns for c in s.contacts]
        taps = s.tap_count
    assert stats.robot_gaps == 0
    assert contacts and taps >= 1  # the body did bump
    with SessionReader(out) as r:
        acc = r.read("acc")
    assert acc is not None and len(acc.t_ns) >= 35
    tapped = acc.t_ns[acc.tap == 1]
    assert len(tapped) == taps
    # on one clock (the simulator's runs at the monotonic one): the flag follows the bump
    assert 0 <= int(tapped[0]) - contacts[0] <= 0.3e9
