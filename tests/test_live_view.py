"""The live Rerun view of `robot-ssl run --view`: what it logs (read back) and the page it serves."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytest.importorskip("rerun")

from test_replay import rerun_rows


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "robot_ssl", "run", "--robot", "sim", "--camera", "sim", *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_run_view_logs_camera_grid_map_ir_and_latency(tmp_path, onnx_model):
    out = tmp_path / "view.rrd"
    proc = _run(
        "--model", str(onnx_model), "--drive", "avoid", "--duration", "4",
        "--view-save", str(out),
    )  # fmt: skip
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "wheel targets (0, 0)" in err  # the motors stop as without a view
    rows = rerun_rows(out)
    # about 10 camera frames a second with their predictions, every IR reading, the pose
    assert 25 <= rows["/camera/image"] <= 45, rows
    assert rows["/camera/predicted"] == rows["/camera/image"]
    assert rows["/map/cells"] >= rows["/camera/image"] - 2  # once the first pose is known
    ir = [k for k in rows if k.startswith("/ir/")]
    assert len(ir) == 7 and min(rows[k] for k in ir) >= 30  # 10 Hz for 4 s
    assert rows["/map/robot"] > 100 and rows["/map/odometry"] >= 2
    assert rows["/latency/end_to_end_p99_ms"] >= 2


def test_run_view_serves_the_web_viewer(onnx_model):
    port = _free_port()
    proc = _run("--model", str(onnx_model), "--duration", "60", "--view", str(port))
    try:
        seen = []
        for line in proc.stderr:  # running, and says where the view is
            seen.append(line)
            if "live view at" in line:
                break
        assert f"live view at http://0.0.0.0:{port}" in "".join(seen), seen
        deadline = time.monotonic() + 30
        page = None
        while time.monotonic() < deadline and page is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    page = r.read().decode(errors="replace")
            except OSError:
                time.sleep(0.3)
        assert page is not None and "<html" in page.lower(), page
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "wheel targets (0, 0)" in err  # SIGTERM: the motors stop, the view closes
