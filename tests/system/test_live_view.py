"""The live Rerun view of `robot-ssl run --view`: what it logs (read back) and the page it serves."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

pytest.importorskip("rerun")

from rerun_files import rerun_rows

from robot_ssl.live.view_io import reachable_host


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
    # about 5 camera frames a second (raw, at most 320 px wide) with their predictions and
    # the pose at each, every IR reading (one row of 7 sensors), the latency once a second
    assert 12 <= rows["/camera/image"] <= 26, rows
    assert rows["/camera/predicted"] == rows["/camera/image"]
    assert rows["/map/cells"] >= rows["/camera/image"] - 2  # once the first pose is known
    assert rows["/map/robot"] >= rows["/camera/image"] - 2  # the path: once it moved 1 cm
    assert rows["/ir"] >= 30 + 1  # 10 Hz for 4 s, and the sensors' names
    assert not [k for k in rows if k.startswith("/ir/")]  # not a plot per sensor
    assert rows["/latency/end_to_end_p99_ms"] >= 2
    assert _blueprint_views(out) == {
        ("2D", "camera/image"), ("2D", "/"), ("2D", "camera/predicted"),
        ("TimeSeries", "ir"), ("TimeSeries", "latency"),
    }  # fmt: skip


def _blueprint_views(path) -> set[tuple[str, str]]:
    """(kind, origin) of each view in the layout a .rrd carries."""
    from rerun.chunk import RrdReader

    reader = RrdReader(path)
    views = set()
    for chunk in reader.store(store=reader.blueprints()[0]).stream():
        batch = chunk.to_record_batch()
        if "ViewBlueprint:space_origin" in batch.schema.names:
            (kind,) = batch.column("ViewBlueprint:class_identifier").to_pylist()[-1]
            (origin,) = batch.column("ViewBlueprint:space_origin").to_pylist()[-1]
            views.add((kind, origin))
    return views


def _wait_for_view(proc: subprocess.Popen) -> str:
    """The URL a starting `run --view` prints (its stderr lines up to that one)."""
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "live view at" in line:
            return line.split("live view at", 1)[1].strip()
    raise AssertionError(f"no view URL: {seen}")


def _get(url: str, timeout_s: float = 30.0, **headers: str) -> tuple[int, dict, str]:
    """Status, headers and body of a GET (an OPTIONS when asked), retried while the server
    starts."""
    method = headers.pop("method", "GET")
    deadline = time.monotonic() + timeout_s
    while True:
        request = urllib.request.Request(url, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=2) as r:
                return r.status, dict(r.headers), r.read().decode(errors="replace")
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def _check_view_url(url: str, web_port: int, grpc_port: int) -> None:
    """The printed URL: this machine's address (not 0.0.0.0), the chosen ports, a gRPC proxy
    address in `url`; the page answers 200, the gRPC port takes a TCP connection and lets a
    page from any origin call it (CORS)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname
    assert parts.scheme == "http" and parts.port == web_port, url
    assert host == reachable_host() and host != "0.0.0.0", url
    socket.inet_aton(host)  # an IPv4 address
    (proxy,) = urllib.parse.parse_qs(parts.query)["url"]
    assert proxy == f"rerun+http://{host}:{grpc_port}/proxy", url
    status, _, page = _get(url)
    assert status == 200 and "<html" in page.lower(), page[:200]
    with socket.create_connection((host, grpc_port), timeout=5):
        pass
    origin = "http://192.168.1.50:8080"  # a browser on another machine
    _, headers, _ = _get(
        f"http://{host}:{grpc_port}/rerun.redap.v1alpha1.MessageProxyService/ReadMessages",
        method="OPTIONS",
        Origin=origin,
        **{"Access-Control-Request-Method": "POST"},
    )
    assert headers.get("access-control-allow-origin") == origin, headers


def test_two_live_views_on_chosen_ports_serve_pages_that_connect(onnx_model):
    """Two runs on one machine, each with its own ports: both serve a URL that works from
    another machine; a third run on a port one of them holds stops before anything runs."""
    web = [_free_port(), _free_port()]
    grpc = [_free_port(), _free_port()]
    procs = [
        _run("--model", str(onnx_model), "--duration", "60", "--view", str(w),
             "--view-grpc-port", str(g))
        for w, g in zip(web, grpc)
    ]  # fmt: skip
    try:
        for proc, w, g in zip(procs, web, grpc):
            _check_view_url(_wait_for_view(proc), w, g)
        third = _run("--model", str(onnx_model), "--duration", "60", "--view", str(_free_port()),
                     "--view-grpc-port", str(grpc[0]))  # fmt: skip
        _, err = third.communicate(timeout=60)
        assert third.returncode == 2, err
        assert err.strip().splitlines() == [
            f"robot-ssl run: error: port {grpc[0]} (--view-grpc-port) is in use by another "
            "program or live view; choose another with --view-grpc-port"
        ]
    finally:
        for proc in procs:
            proc.terminate()
        errs = [proc.communicate(timeout=30)[1] for proc in procs]
    assert all("wheel targets (0, 0)" in err for err in errs), errs  # SIGTERM: motors stop


@pytest.mark.parametrize("taken", ["--view", "--view-grpc-port"])
def test_run_view_on_a_taken_port_is_one_line_before_anything_runs(onnx_model, taken):
    web, grpc = _free_port(), _free_port()
    with socket.socket() as holder:  # another program serving on the port
        holder.bind(("0.0.0.0", web if taken == "--view" else grpc))
        holder.listen()
        proc = _run("--model", str(onnx_model), "--drive", "avoid", "--duration", "60",
                    "--view", str(web), "--view-grpc-port", str(grpc))  # fmt: skip
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    option = "--view PORT" if taken == "--view" else "--view-grpc-port"
    port = web if taken == "--view" else grpc
    assert err.strip().splitlines() == [
        f"robot-ssl run: error: port {port} ({option}) is in use by another program or live "
        f"view; choose another with {option}"
    ]  # not even the model was opened: the robot never moved


def _files(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_view_save_to_a_read_only_or_full_disk_is_one_line_before_anything_runs(
    onnx_model, mount_tmpfs
):
    read_only = mount_tmpfs("1m", read_only=True)
    full = mount_tmpfs("256k")
    (full / "filler").write_bytes(b"x" * (256 * 1024 - 4096))
    for folder, reason in ((read_only, "read-only file system"), (full, "MB free")):
        proc = _run("--model", str(onnx_model), "--drive", "avoid", "--duration", "60",
                    "--view-save", str(folder / "v.rrd"))  # fmt: skip
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("robot-ssl run: error: cannot write"), err
        assert reason in lines[0], err
    assert _files(read_only) == [] and _files(full) == ["filler"]


def test_view_save_on_a_disk_that_fills_stops_the_run_and_leaves_no_rrd(onnx_model, mount_tmpfs):
    """The disk fills while driving: the run stops at once (motors stopped), exit 2 with one
    error line, and neither a partial .rrd nor its temporary file stays."""
    folder = mount_tmpfs("1200k")  # above the 1 MB checked at the start; full in seconds
    start = time.monotonic()
    proc = _run("--model", str(onnx_model), "--drive", "avoid", "--duration", "60",
                "--view-save", str(folder / "v.rrd"))  # fmt: skip
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 2, err
    assert time.monotonic() - start < 45, err  # stopped early, not after the 60 s asked
    assert "live view: cannot write" in err and "wheel targets (0, 0)" in err, err
    assert err.strip().splitlines()[-1] == (
        f"robot-ssl run: error: cannot write {folder / 'v.rrd'}: no space left on device"
    )
    assert "Traceback" not in err and _files(folder) == []
