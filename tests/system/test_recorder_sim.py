"""Recorder on the included simulator: stepped (deterministic) and real time (threaded)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from robot_ssl.core.spec import CameraSpec
from robot_ssl.io.session import SessionReader, SessionWriter
from robot_ssl.recording.recorder import Recorder, RecorderConfig

# Submodules, not the package: an editable install made before sim/__init__.py existed
# exposes `sim` as a namespace package when the repository root is not on sys.path.
from robot_ssl.recording.wander import WanderController
from sim.simulator import Simulator
from sim.worldgen import generate_world


def _record_stepped(path, seed: int, duration_s: float = 3.0, **sim_options):
    world = generate_world(seed)
    s = Simulator(world, seed=seed, **sim_options)
    spec = CameraSpec(width=s.camera_params.width, height=s.camera_params.height, fps=30.0)
    # frames arrive jittered: look for them every physics step (as `sim record` does)
    poll_hz = 30.0 if s.camera_timing.is_ideal else 100.0
    with SessionWriter(path, camera=spec, truth_sensors=7, metadata={"world": world.name}) as w:
        rec = Recorder(
            s.robot,
            s.camera,
            w,
            RecorderConfig(status=False, camera_fps=poll_hz),
            clock=s.clock,
            controller=WanderController(seed=seed),
            truth=s.robot.truth,
        )
        t0 = time.perf_counter()
        stats = rec.run_stepped(duration_s)
        wall_s = time.perf_counter() - t0
    return stats, wall_s, s


def test_stepped_sim_recording_is_deterministic_and_fast(tmp_path):
    stats, wall_s, s = _record_stepped(tmp_path / "a.h5", seed=4)
    _record_stepped(tmp_path / "b.h5", seed=4)
    assert wall_s < 3.0  # faster than real time, even on a busy CI machine
    assert s.robot.targets == (0, 0)  # motors stopped at the end
    with SessionReader(tmp_path / "a.h5") as a, SessionReader(tmp_path / "b.h5") as b:
        # streamed: every 100 Hz wheel sample that arrived in the 3 s, every 10 Hz refresh
        assert 297 <= a.streams["wheels"] <= 300 and a.streams["truth"] == 151
        assert a.streams["proximity"] == 30
        # 30 fps, the first ~80 ms in flight, ~1 % lost
        assert 80 <= a.num_frames <= 89
        for name in ("proximity", "wheels", "odometry", "truth"):
            for x, y in zip(getattr(a, name)(), getattr(b, name)()):
                np.testing.assert_array_equal(x, y)
        assert all(a.jpeg(i) == b.jpeg(i) for i in range(a.num_frames))
        assert a.events() == b.events()
        _, speed, target = a.wheels()
        assert np.abs(target).max() > 0 and np.abs(speed).max() > 50  # it wandered
        # live odometry follows the true pose over a few seconds (noise and slip aside)
        t_pose = a.truth()[1]
        odo = a.odometry()[1]
        moved_true = np.linalg.norm(t_pose[-1, :2] - t_pose[0, :2])
        moved_odo = np.linalg.norm(odo[-1, :2] - odo[0, :2])
        assert moved_odo == pytest.approx(moved_true, rel=0.3, abs=0.02)
    assert stats.frames_dropped == 0 and stats.counts["camera"] == a.num_frames


def test_stepped_sim_recording_with_ideal_clocks_is_aligned(tmp_path):
    """The old clocks: polled at the recorder's grid, frames at k / fps."""
    from sim.camera_timing import CameraTiming, RobotTiming

    ideal = dict(camera_timing=CameraTiming.ideal(), robot_timing=RobotTiming.ideal())
    stats, _, _ = _record_stepped(tmp_path / "i.h5", seed=4, stream=False, **ideal)
    with SessionReader(tmp_path / "i.h5") as a:
        assert a.streams["wheels"] == 151 and a.streams["truth"] == 151
        assert a.streams["proximity"] == 31 and a.num_frames == 91
        assert np.all(a.proximity()[0] % 100_000_000 == 0)
        assert np.array_equal(a.camera_t_ns, np.round(np.arange(91) * 1e9 / 30).astype(np.int64))
    assert stats.frames_missed == 0


def test_realtime_sim_threaded(tmp_path):
    """The simulator stepped in real time by its own thread; the recorder threaded."""
    world = generate_world(2)
    s = Simulator(world, seed=2, start_ns=time.monotonic_ns(), realtime=True)
    stop = threading.Event()
    stepper = threading.Thread(target=s.run_realtime, args=(stop,), daemon=True)
    stepper.start()
    spec = CameraSpec(width=320, height=240, fps=30.0)
    try:
        with SessionWriter(tmp_path / "rt.h5", camera=spec, truth_sensors=7) as w:
            rec = Recorder(
                s.robot,
                s.camera,
                w,
                RecorderConfig(status=False),
                clock=s.clock,
                controller=WanderController(seed=2),
                truth=s.robot.truth,
            )
            stats = rec.run(2.0)
    finally:
        stop.set()
        stepper.join(timeout=2)
    assert stats.frames_dropped == 0
    with SessionReader(tmp_path / "rt.h5") as r:

        def rate(t):
            return (len(t) - 1) / ((t[-1] - t[0]) / 1e9)

        assert rate(r.wheels()[0]) == pytest.approx(100, rel=0.15)  # streamed
        assert rate(r.truth()[0]) == pytest.approx(50, rel=0.15)  # one per poll
        assert rate(r.proximity()[0]) == pytest.approx(10, rel=0.15)
        assert rate(r.camera_t_ns) == pytest.approx(30, rel=0.15)
        # one clock: all streams within the same second or so
        assert abs(int(r.camera_t_ns[0]) - int(r.wheels()[0][0])) < 0.5e9


def test_cli_record_sim_realtime_then_info(tmp_path):
    out = tmp_path / "sim.h5"
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "robot_ssl",
            "record",
            "--robot",
            "sim",
            "--camera",
            "sim",
            "--duration",
            "2.5",
            "--drive",
            "wander",
            "--seed",
            "3",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    info = json.loads(
        subprocess.run(
            [sys.executable, "-m", "robot_ssl", "info", "--json", str(out)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    s = info["streams"]
    assert s["proximity"]["rate_hz"] == pytest.approx(10, rel=0.1)
    assert s["wheels"]["rate_hz"] == pytest.approx(100, rel=0.1)  # streamed
    assert s["camera"]["rate_hz"] == pytest.approx(30, rel=0.1)
    assert s["truth"]["rate_hz"] == pytest.approx(50, rel=0.1)  # one per recorder poll
    meta = info["metadata"]
    assert meta["world"] and meta["seed"] == 3
    assert meta["sim_camera_timing"]["latency_ms"] == 80.0
    assert meta["sim_robot_timing"]["stream"] is True


def test_cli_record_sim_unknown_world_one_line_exit_2(tmp_path):
    out = tmp_path / "x.h5"
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "robot_ssl",
            "record",
            "--robot",
            "sim:no_such_world",
            "--camera",
            "sim",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 2 and "no_such_world" in p.stderr
    assert p.stderr.strip().count("\n") == 0 and not out.exists()


def test_virtual_thymio_over_pty_with_sim_camera_then_info(tmp_path):
    """The whole real-robot path: firmware_bridge over a pseudo-terminal to the simulator's
    virtual Thymio, the simulator's camera, the threaded recorder, then `robot-ssl info`."""
    from firmware_bridge.thymio import ThymioRobot
    from robot_ssl.core.spec import RobotSpec
    from robot_ssl.recording.wander import wander_controller
    from sim.virtual_thymio import VirtualThymio

    # Simulated time set to the monotonic clock, so the camera's stamps (simulated) and
    # the link's (monotonic, at reply arrival) are on one clock.
    s = Simulator(generate_world(5), seed=5, start_ns=time.monotonic_ns())
    s.advance_to(time.monotonic_ns())  # catch up the time spent building the world
    out = tmp_path / "pty.h5"
    spec = CameraSpec(width=320, height=240, fps=30.0)
    with VirtualThymio(s) as vt:
        robot = ThymioRobot.open(vt.serve_pty())
        try:
            with SessionWriter(out, camera=spec, metadata={"world": s.world.name}) as w:
                stats = Recorder(
                    robot,
                    s.camera,
                    w,
                    RecorderConfig(status=False),
                    controller=wander_controller(RobotSpec(), 5),
                ).run(3.0)
        finally:
            robot.close()
        assert s.robot.targets == (0, 0)  # stopped through the link at the end
    assert stats.frames_dropped == 0 and stats.robot_gaps == 0
    info = json.loads(
        subprocess.run(
            [sys.executable, "-m", "robot_ssl", "info", "--json", str(out)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    st = info["streams"]
    assert st["proximity"]["rate_hz"] == pytest.approx(10, rel=0.15)
    assert st["wheels"]["rate_hz"] == pytest.approx(50, rel=0.15)
    assert st["camera"]["rate_hz"] == pytest.approx(30, rel=0.15)
    with SessionReader(out) as r:
        assert abs(int(r.camera_t_ns[0]) - int(r.wheels()[0][0])) < 0.15e9  # one clock
        assert np.abs(r.wheels()[1]).max() > 50  # the virtual robot moved
