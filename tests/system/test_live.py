"""Live loop: watchdog on camera stall, inference stall and Ctrl-C (checked on the simulated
robot's wheel targets), recording, and the `robot-ssl run` command."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from robot_ssl.io.session import SessionReader, SessionWriter
from robot_ssl.live.loop import LiveConfig, LiveLoop
from robot_ssl.runtime.latency import LatencyStats
from robot_ssl.runtime.watchdog import Watchdog
from robot_ssl.simlink.closed_loop import make_simulator
from sim.camera_timing import CameraTiming

D = np.round(np.arange(31) * 0.01, 2)
LIMIT_S = 0.2  # the watchdog's promise


class StubPredictor:
    """Inference-stage test double: a fixed grid (clear by default, so the controller
    cruises), optionally sleeping or raising on one call."""

    def __init__(self, grid=None, *, sleep_on: int = -1, sleep_s: float = 0.0, raise_on: int = -1):
        self.grid = np.zeros((5, 31), np.float32) if grid is None else grid
        self.calls = 0
        self.sleep_on, self.sleep_s, self.raise_on = sleep_on, sleep_s, raise_on
        self.sleep_started_ns: int | None = None  # loop clock
        self.sleep_wall_ns: tuple[int, int] | None = None  # (start, end), monotonic
        self.clock = None

    def preprocess(self, images):
        return np.zeros((len(images), 1), np.uint8)

    def infer(self, batch):
        self.calls += 1
        if self.calls == self.raise_on:
            raise KeyboardInterrupt
        if self.calls == self.sleep_on:
            self.sleep_started_ns = self.clock.now_ns()
            w0 = time.monotonic_ns()
            time.sleep(self.sleep_s)
            self.sleep_wall_ns = (w0, time.monotonic_ns())
        return np.repeat(self.grid[None], len(batch), axis=0)


class FreezingCamera:
    """Wraps a camera; from `after` frames on, keeps returning the last frame (a stall)."""

    def __init__(self, camera, after: int) -> None:
        self.camera = camera
        self.after = after
        self.delivered = 0
        self.last = None
        self.fps = camera.fps

    def read(self):
        if self.delivered >= self.after:
            return self.last
        f = self.camera.read()
        if f is not None and (self.last is None or f.index != self.last.index):
            self.delivered += 1
            self.last = f
        return f

    def health(self):
        return self.camera.health()  # frozen, not failed: the watchdog must notice

    def close(self) -> None:
        pass


@contextlib.contextmanager
def realtime_sim(seed: int = 1):
    """A simulator with camera stepped in real time by a background thread (as the
    `--robot sim` command line does), plus a thread sampling its wheel targets:
    (simulated time, wall time, targets) every 2 ms."""
    sim = make_simulator("heldout_mixed", seed, camera=True, start_ns=time.monotonic_ns())
    sim.advance_to(time.monotonic_ns())
    stop = threading.Event()
    samples: list[tuple[int, int, tuple[int, int]]] = []

    def sample() -> None:
        while not stop.wait(0.002):
            samples.append((sim.t_ns, time.monotonic_ns(), sim.robot.targets))

    threads = [
        threading.Thread(target=sim.run_realtime, args=(stop,), daemon=True),
        threading.Thread(target=sample, daemon=True),
    ]
    for t in threads:
        t.start()
    try:
        yield sim, samples
    finally:
        stop.set()
        for t in threads:
            t.join(2.0)


def first_zero_after(samples, t_ns: int) -> tuple[int, int]:
    """(simulated, wall) time at which the wheel targets were first (0, 0) at or after t_ns
    (simulated: the loop's clock, in which the watchdog promises 200 ms)."""
    for t, wall, targets in samples:
        if t >= t_ns and targets == (0, 0):
            return t, wall
    raise AssertionError("the motors never stopped")


def test_watchdog_refuses_stale_commands_and_trips_once():
    class Clock:
        t = 0

        def now_ns(self):
            return self.t

    class Robot:
        targets = (0, 0)

        def set_wheel_targets(self, left, right):
            self.targets = (left, right)

        def stop(self):
            self.targets = (0, 0)

    clock, robot = Clock(), Robot()
    trips = []
    wd = Watchdog(robot, clock, 0.15, on_trip=lambda t, msg: trips.append(t))
    assert not wd.check()  # nothing commanded yet
    clock.t = 100_000_000
    assert wd.command(0, 100, 100) and wd.refused == 0  # 100 ms old: fresh, sent
    assert robot.targets == (100, 100)
    clock.t = 160_000_000
    assert wd.check() and robot.targets == (0, 0) and trips == [160_000_000]
    assert not wd.check() and wd.trips == 1  # one trip per stale episode
    assert not wd.command(0, 50, 50) and wd.refused == 1  # stale basis: refused
    assert wd.command(150_000_000, 50, 50) and robot.targets == (50, 50)
    wd.halt()
    assert robot.targets == (0, 0) and not wd.command(160_000_000, 9, 9)


# frames exposed and stamped at k / fps, never late or lost: exact frame counts
IDEAL = CameraTiming.ideal()


def test_config_enforces_the_200ms_promise():
    with pytest.raises(ValueError, match="200 ms"):
        LiveConfig(max_staleness_s=0.19, watchdog_period_s=0.02)
    with pytest.raises(ValueError):
        LiveConfig(drive="wander")


def test_stepped_camera_stall_stops_motors_within_200ms():
    sim = make_simulator("heldout_mixed", 1, camera=True, camera_timing=IDEAL)
    cam = FreezingCamera(sim.camera, after=30)
    loop = LiveLoop(sim.robot, cam, StubPredictor(), D, LiveConfig(drive="avoid"), clock=sim.clock)
    stops: list[int] = []
    loop.watchdog.on_trip = lambda t, msg: stops.append(t)
    result = loop.run_stepped(2.0)
    assert result.commands == 30 and result.watchdog_trips == 1
    assert stops[0] - cam.last.t_ns <= LIMIT_S * 1e9
    assert sim.robot.targets == (0, 0)


def test_stepped_is_deterministic_with_latency():
    def run():
        sim = make_simulator("heldout_mixed", 2, camera=True, camera_timing=IDEAL)
        loop = LiveLoop(
            sim.robot, sim.camera, StubPredictor(), D, LiveConfig(drive="avoid"), clock=sim.clock
        )
        r = loop.run_stepped(1.0, command_latency_s=0.05)
        return sim.pose, r

    (p1, r1), (p2, r2) = run(), run()
    np.testing.assert_array_equal(p1, p2)
    assert r1.frames == 31 and r1.commands == r2.commands == 29  # 2 commands still pending
    # capture-to-command: the modelled 50 ms plus the frame's age at pick-up (< one 10 ms step)
    assert 50.0 <= r1.latency["end_to_end"]["median_ms"] < 60.0


def test_threaded_camera_stall_stops_motors_within_200ms():
    with realtime_sim() as (sim, samples):
        cam = FreezingCamera(sim.camera, after=15)
        loop = LiveLoop(
            sim.robot, cam, StubPredictor(), D, LiveConfig(drive="avoid"), clock=sim.clock
        )
        result = loop.run(1.0)
    assert result.commands >= 10 and result.watchdog_trips == 1
    moving = [t for t, _, targets in samples if targets != (0, 0)]
    assert moving and moving[-1] >= cam.last.t_ns - 50_000_000  # it drove until the stall
    stopped, _ = first_zero_after(samples, cam.last.t_ns)
    assert (stopped - cam.last.t_ns) / 1e9 <= LIMIT_S


def test_threaded_inference_stall_stops_motors_within_200ms_and_recovers():
    pred = StubPredictor(sleep_on=10, sleep_s=1.0)
    with realtime_sim() as (sim, samples):
        pred.clock = sim.clock
        loop = LiveLoop(sim.robot, sim.camera, pred, D, LiveConfig(drive="avoid"), clock=sim.clock)
        result = loop.run(1.6)
    t0 = pred.sleep_started_ns
    stopped, stopped_wall = first_zero_after(samples, t0)
    assert (stopped - t0) / 1e9 <= LIMIT_S
    _, w1 = pred.sleep_wall_ns
    during = [tg for _, wall, tg in samples if stopped_wall <= wall <= w1]
    assert during and all(tg == (0, 0) for tg in during)  # stays stopped while stalled
    after = [tg for _, wall, tg in samples if wall > w1]
    assert any(tg != (0, 0) for tg in after)  # fresh frames: drives again
    assert result.watchdog_trips >= 1 and sim.robot.targets == (0, 0)


def test_keyboard_interrupt_inside_the_loop_stops_motors(tmp_path):
    sim = make_simulator("heldout_mixed", 1, camera=True, camera_timing=IDEAL)
    with SessionWriter(tmp_path / "s.h5", prediction_shape=(5, 31)) as w:
        loop = LiveLoop(
            sim.robot,
            sim.camera,
            StubPredictor(raise_on=20),
            D,
            LiveConfig(drive="avoid"),
            clock=sim.clock,
            writer=w,
        )
        with pytest.raises(KeyboardInterrupt):
            loop.run_stepped(5.0)
        assert sim.robot.targets == (0, 0)
    with SessionReader(tmp_path / "s.h5") as r:
        events = r.events()
        _, _, target = r.wheels()
    assert events[-1].kind == "stop" and "KeyboardInterrupt" in events[-1].message
    assert tuple(target[-1]) == (0, 0) and np.abs(target).max() > 0


def test_request_stop_halts_motors_while_inference_is_stuck():
    pred = StubPredictor(sleep_on=8, sleep_s=1.0)
    with realtime_sim() as (sim, samples):
        pred.clock = sim.clock
        loop = LiveLoop(sim.robot, sim.camera, pred, D, LiveConfig(drive="avoid"), clock=sim.clock)
        runner = threading.Thread(target=loop.run, args=(5.0,))
        runner.start()
        while pred.sleep_started_ns is None:
            time.sleep(0.005)
        t_req = sim.t_ns
        loop.request_stop("SIGINT received")  # what the signal handler does
        time.sleep(0.05)
        assert sim.robot.targets == (0, 0)  # before inference returns
        runner.join(3.0)
    assert first_zero_after(samples, t_req)[0] - t_req <= 0.05e9
    assert loop.result.stop_reason == "SIGINT received"


def test_monitor_never_moves_and_records_predictions(tmp_path):
    sim = make_simulator("heldout_mixed", 3, camera=True, camera_timing=IDEAL)
    path = tmp_path / "live.h5"
    grid = np.zeros((5, 31), np.float32)
    grid[2, 10:] = 0.8
    with SessionWriter(path, truth_sensors=7, prediction_shape=(5, 31)) as w:
        loop = LiveLoop(
            sim.robot,
            sim.camera,
            StubPredictor(grid),
            D,
            LiveConfig(drive="monitor"),
            clock=sim.clock,
            writer=w,
            truth=sim.robot.truth,
        )
        result = loop.run_stepped(1.0)
    assert result.commands == 0 and result.frames == 31
    assert loop.last_clearance_m[2] == pytest.approx(0.24)
    with SessionReader(path) as r:
        t, idx, prob = r.predictions()
        assert prob.shape == (31, 5, 31) and np.allclose(prob[0], grid)
        np.testing.assert_array_equal(idx, np.arange(31))
        assert np.all(t >= r.camera_t_ns[idx])
        _, _, target = r.wheels()
        assert np.all(target == 0)
        # the streaming robot pushes wheels at 100 Hz; truth is kept once per sensor poll
        assert r.streams["wheels"] >= 95 and 45 <= r.streams["truth"] <= 55
        assert r.streams["proximity"] >= 10 and r.streams["odometry"] >= 50


def test_latency_stats_summary():
    s = LatencyStats()
    for v in range(1, 101):
        s.add("inference", v / 1000)
    out = s.summary()["inference"]
    assert out["median_ms"] == pytest.approx(50.5) and out["n"] == 100
    assert "inf 50.5" in s.line()


# ------------------------------------------------------------------------- command line


def _cli(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "robot_ssl", "run", *args]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kw
    )


def test_sigint_to_robot_ssl_run_stops_motors_and_finalises(tmp_path, onnx_model):
    out = tmp_path / "live.h5"
    proc = _cli(
        "--model", str(onnx_model), "--robot", "sim", "--camera", "sim", "--drive", "avoid",
        "--record", str(out), "--duration", "60", "--status",
    )  # fmt: skip
    try:
        lines = []
        for line in proc.stderr:  # wait for the first status line: it is running
            lines.append(line)
            if line.startswith("frames"):
                break
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = "".join(lines) + err
    assert proc.returncode == 0, err
    assert "SIGINT received" in err and "wheel targets (0, 0)" in err
    with SessionReader(out) as r:
        t, _, prob = r.predictions()
        assert len(t) > 10 and prob.shape[1:] == (5, 31)
        assert np.all((prob >= 0) & (prob <= 1))
        _, _, target = r.wheels()
        assert tuple(target[-1]) == (0, 0)
        stop = [e for e in r.events() if e.kind == "stop"]
        assert stop and "SIGINT" in stop[-1].message
        assert r.truth() is not None and r.streams["proximity"] > 0


def test_run_command_errors_are_one_line_exit_2(tmp_path, onnx_model, capsys):
    from robot_ssl.cli.main import main

    m = str(onnx_model)
    cases = [
        (["--model", str(tmp_path / "none.onnx"), "--robot", "sim", "--camera", "sim"], "no such"),
        (["--model", m, "--robot", "/dev/ttyNOPE9", "--camera", "0"], "robot"),
        (["--model", m, "--robot", "sim", "--camera", str(tmp_path / "v.avi")], "camera"),
        (["--model", m, "--robot", "/dev/ttyNOPE9", "--camera", "sim"], "--camera sim"),
        (["--model", m, "--robot", "sim", "--camera", "sim", "--duration", "-1"], "--duration"),
    ]
    for argv, word in cases:
        assert main(["run", *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and word in err, err
    assert not list(tmp_path.iterdir())  # nothing written


def test_run_checkpoint_uses_onnx_runtime(onnx_model):
    from robot_ssl.learning.torch_predictor import open_predictor

    predictor, line = open_predictor(onnx_model.with_suffix(".pt"))
    assert predictor.kind == "onnx" and "exported to ONNX Runtime" in line
    assert predictor.predict(np.zeros((240, 320, 3), np.uint8)).shape == (1, 5, 31)


def test_run_command_over_virtual_thymio_pty(tmp_path, onnx_model, capsys):
    from robot_ssl.cli.main import main

    out = tmp_path / "pty.h5"
    rc = main(
        ["run", "--model", str(onnx_model), "--robot", "sim:heldout_mixed", "--camera", "sim",
         "--sim-link", "pty", "--drive", "avoid", "--duration", "2", "--record", str(out)]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "via pty" in err and "wheel targets (0, 0)" in err
    with SessionReader(out) as r:
        assert r.metadata["robot_source"].startswith("/dev/")
        assert r.metadata["model_config"]["num_distances"] == 31
        t, idx, _ = r.predictions()
        assert len(t) >= 40 and idx[-1] < r.num_frames
        assert r.streams["proximity"] >= 10
