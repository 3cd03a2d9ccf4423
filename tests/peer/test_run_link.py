"""`robot-ssl run` rides out a link loss: a real asebaplayground is stopped for 5 s and
started again while `run --drive avoid` drives its Thymio from a video camera."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
from media import write_video
from playground import (
    Playground,
    PlaygroundRobot,
    free_port,
    playground_or_skip,
    wait_until_thymio_answers,
)

from robot_ssl.io.session import SessionReader


@pytest.mark.playground
def test_run_rides_out_a_5s_playground_outage(tmp_path, onnx_model):
    playground_or_skip()
    video = tmp_path / "clip.avi"
    write_video(video, seconds=4.0, fps=15.0)
    out = tmp_path / "live.h5"
    robots = [PlaygroundRobot("T1", free_port(), x_cm=50, y_cm=30, angle_rad=0.0)]
    pg = Playground(robots, walls=(), workdir=tmp_path)
    try:
        pg.start()
        wait_until_thymio_answers(pg.url())
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
        cmd = [
            sys.executable, "-m", "robot_ssl", "run", "--model", str(onnx_model),
            "--robot", pg.url(), "--camera", str(video), "--loop-video", "--drive", "avoid",
            "--speed", "100", "--record", str(out), "--duration", "20", "--no-status",
        ]  # fmt: skip
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
        time.sleep(5.0)
        assert proc.poll() is None, proc.stderr.read()
        pg.kill()  # the robot is gone (unplugged, out of radio range) ...
        t_down = time.monotonic_ns()
        time.sleep(5.0)
        pg.start()  # ... and back after 5 s, on the same port
        _, err = proc.communicate(timeout=60)
    finally:
        if "proc" in locals() and proc.poll() is None:
            proc.kill()
        pg.stop()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "LinkDown" not in err
    assert "duration 20 s reached" in err
    with SessionReader(out) as r:
        events = r.events()
        kinds = [e.kind for e in events]
        assert "robot_gap" in kinds and "robot_reconnected" in kinds, kinds
        assert "motors_held" in kinds, kinds  # zero targets after the gap until fresh frames
        assert kinds.count("robot_error") <= 2  # logged once per gap, not every 20 ms
        gap = next(e for e in events if e.kind == "robot_gap").t_ns
        back = next(e for e in events if e.kind == "robot_reconnected").t_ns
        assert gap <= t_down + 3_000_000_000 and (back - gap) / 1e9 >= 4.0
        t_cam = r.camera_t_ns
        assert np.count_nonzero((t_cam > gap) & (t_cam < back)) > 20  # the loop went on
        t_pred = r.predictions()[0]
        assert np.count_nonzero(t_pred > back + 1_000_000_000) > 20  # ... and after it
        t_w, speed, target = r.wheels()
        after = t_w > back + 1_000_000_000
        assert np.count_nonzero(after) > 20
        assert np.abs(target[after]).max() > 0  # driving again once perception is fresh
        assert tuple(target[-1]) == (0, 0)  # and stopped at the end
