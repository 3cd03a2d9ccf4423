"""The live view's load on the drive loop: watchdog stops and capture-to-command p99 of
`robot-ssl run` without the view, with it, and with a browser rendering it beside the loop.

    python -m benchmarks live_view_load [--quick] [--rounds 3] [--duration 25]

Each round runs `robot-ssl run --robot sim --camera sim --drive avoid --model M.onnx`
(an untrained default detector exported to ONNX) as a subprocess for `--duration` s
in six ways, one after the other:

- `no view`: the loop alone;
- `view`: with `--view` (served, no browser connected);
- `view + browser`: with `--view` and Debian's Chromium (headless, WebGL in software
  through SwiftShader, as tests/system/test_live_view_browser.py opens it) showing it;
- `control`: the loop without `--view`, and the same browser showing the same kind of
  live view served by another process (synthetic 640x480 frames at 30 Hz with a grid,
  a pose and proximity rows, through RerunLiveView): the load of the browser on the
  robot's cores without our view in the loop's process;
- `view + browser (normal priority)`, `control (normal priority)`: the same with
  `--live.realtime-priority 0`, the loop's threads on Linux's normal policy.

It stores the median over rounds of each way's watchdog stops and p99 capture to command
(ms), read from the summary line `run` prints, and the browser's CPU (cores, all its
processes). Target (issue 26): the view never starves the drive loop: with the view and a
browser no more watchdog stops than the control, and none with the view alone.
Needs /usr/bin/chromium and Playwright (the dev extra).
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import Parser
from benchmarks.live_record import make_model
from benchmarks.results import ROOT, Figure, Target

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
]
VIEWPORT = {"width": 1280, "height": 720}
WAYS = (
    "no view",
    "view",
    "view + browser",
    "control",
    "view + browser (normal priority)",
    "control (normal priority)",
)
SUMMARY = re.compile(
    r"ran ([\d.]+) s: (\d+) frames \(([\d.]+)/s\), (\d+) commands, (\d+) watchdog stops,"
    r" capture-to-command ([\d.]+) ms \(p99 ([\d.]+)\)"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_s(name: str) -> float:
    """CPU seconds of every process whose command name contains `name`."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_text()
        except OSError:
            continue
        if name in stat[stat.index("(") + 1 : stat.rindex(")")]:
            fields = stat[stat.rindex(")") + 2 :].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def serve_synthetic(web_port: int, grpc_port: int, seconds: float) -> None:
    """The control's view: RerunLiveView fed 640x480 frames at 30 Hz (a bar moving over a
    gradient, a random grid), a pose and 10 proximity rows a second, for `seconds`; the URL
    on stdout. Runs at nice 10, as the view's process does."""
    import numpy as np

    from robot_ssl.core.spec import CameraSpec, RobotSpec
    from robot_ssl.io.streams import Record
    from robot_ssl.live.rerun_log import RerunLiveView

    os.nice(10)
    distances = np.round(0.01 * np.arange(31), 2)
    view = RerunLiveView(
        RobotSpec(), np.arange(5), distances, serve=True, web_port=web_port,
        grpc_port=grpc_port, camera=CameraSpec(),
    )  # fmt: skip
    view.start()
    print(view.url, flush=True)
    rng = np.random.default_rng(0)
    gradient = (np.linspace(0, 255, 640)[None, :, None] * np.ones((480, 1, 3))).astype(np.uint8)
    end, k = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        t_ns = time.monotonic_ns()
        image = gradient.copy()
        image[200:280, (k * 7) % 600 :][:, :40] = (0, 0, 200)
        view.on_row(Record.of("odometry", t_ns, pose=np.array([0.001 * k, 0.0, 0.01 * k])))
        if k % 3 == 0:
            prox = rng.integers(0, 4000, 7).astype(np.int16)
            view.on_row(Record.of("proximity", t_ns, horizontal=prox))
        view.on_frame(t_ns, image, rng.random((5, 31)).astype(np.float32))
        k += 1
        time.sleep(1 / 30)
    view.close()


def _url_from(lines, marker: str) -> str:
    for line in lines:
        if marker in line:
            return line.split(marker, 1)[1].strip()
    raise SystemExit(f"live_view_load: no URL (marker {marker!r})")


def one_run(model: Path, way: str, duration: float) -> dict[str, float]:
    """One `run` in `way`: watchdog stops, p99 ms, frames/s, browser cores."""
    from playwright.sync_api import sync_playwright

    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "robot_ssl", "run", "--robot", "sim", "--camera", "sim",
           "--model", str(model), "--drive", "avoid", "--duration", f"{duration:g}"]  # fmt: skip
    control = None
    url = None
    if way.startswith("control"):
        code = (
            "import sys; from benchmarks.live_view_load import serve_synthetic as s; "
            "s(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))"
        )
        args = [str(_free_port()), str(_free_port()), f"{duration + 60:g}"]
        control = subprocess.Popen(
            [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True, env=env,
            cwd=ROOT,
        )  # fmt: skip
        assert control.stdout is not None
        url = control.stdout.readline().strip()
        if not url.startswith("http"):
            raise SystemExit(f"live_view_load: the control view did not start ({url!r})")
    if way.startswith("view"):
        cmd += ["--view", str(_free_port()), "--view-grpc-port", str(_free_port())]
    if way.endswith("(normal priority)"):
        cmd += ["--live.realtime-priority", "0"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    assert proc.stderr is not None
    head = []
    for line in proc.stderr:
        head.append(line)
        if ("live view at" if way.startswith("view") else "Ctrl-C stops") in line:
            break
    if way.startswith("view + browser"):
        url = _url_from(head, "live view at")
    pw = browser = None
    c0, t0 = _cpu_s("chromium"), time.monotonic()
    try:
        if url is not None:
            pw = sync_playwright().start()
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(f"{url}&renderer=webgl", timeout=30_000)
        rest = proc.stderr.read()
        proc.wait()
        browser_cores = max(0.0, _cpu_s("chromium") - c0) / (time.monotonic() - t0)
    finally:
        if browser is not None:
            browser.close()
        if pw is not None:
            pw.stop()
        if control is not None:
            control.terminate()
            control.wait(30)
        if proc.poll() is None:
            proc.kill()
    err = "".join(head) + rest
    m = SUMMARY.search(err)
    if m is None:
        raise SystemExit(f"live_view_load: no summary from run ({way}):\n{err[-2000:]}")
    print(f"  {way:32} {m.group(0)}; browser {browser_cores:.2f} cores", flush=True)
    return {
        "stops": float(m.group(5)),
        "p99_ms": float(m.group(7)),
        "fps": float(m.group(3)),
        "browser_cores": browser_cores,
    }


def parser() -> argparse.ArgumentParser:
    ap = Parser(prog="python -m benchmarks live_view_load", description=__doc__)
    ap.add_argument("--rounds", type=int, default=None, help="rounds (3; quick 1)")
    ap.add_argument("--duration", type=float, default=None, help="seconds per run (25; quick 8)")
    ap.add_argument("--ways", default=",".join(WAYS), help="which ways, comma-separated")
    return ap


def run(quick: bool, argv: list[str]) -> list[Figure]:
    """The four ways, one after the other in each round; medians over rounds."""
    args = parser().parse_args(argv)
    rounds = args.rounds or (1 if quick else 3)
    duration = args.duration or (8.0 if quick else 25.0)
    ways = [w.strip() for w in args.ways.split(",")]
    if unknown := [w for w in ways if w not in WAYS]:
        raise SystemExit(f"live_view_load: unknown ways {unknown} (known: {', '.join(WAYS)})")
    if any(w != "no view" and w != "view" for w in ways) and not Path(CHROMIUM).exists():
        raise SystemExit(f"live_view_load: {CHROMIUM} is missing (Debian package chromium)")
    runs: dict[str, list[dict[str, float]]] = {w: [] for w in ways}
    with tempfile.TemporaryDirectory(prefix="live-view-load-") as tmp:
        model = make_model(Path(tmp))
        for r in range(rounds):
            print(f"round {r + 1} of {rounds} ({duration:g} s runs)", flush=True)
            for way in ways:
                runs[way].append(one_run(model, way, duration))
    med = {w: {k: statistics.median(x[k] for x in v) for k in v[0]} for w, v in runs.items() if v}
    print(f"{'':32}{'stops':>7}{'p99 ms':>8}{'fps':>6}{'browser cores':>15}  (medians)")
    for w, m in med.items():
        print(f"{w:32}{m['stops']:7.0f}{m['p99_ms']:8.1f}{m['fps']:6.1f}{m['browser_cores']:15.2f}")
    values = {
        f"{key}_{re.sub(r'[^a-z]+', '_', w).strip('_')}": m[key]
        for w, m in med.items()
        for key in ("stops", "p99_ms")
    }
    values["browser_cores"] = med.get("view + browser", {}).get("browser_cores")
    targets = []
    if "view + browser" in med and "control" in med:
        ok = med["view + browser"]["stops"] <= med["control"]["stops"]
        targets.append(Target("with a browser: stops <= control", ok))
    if "view" in med:
        targets.append(Target("view, no browser: 0 stops", med["view"]["stops"] == 0))
    result = "; ".join(
        f"{w}: {m['stops']:.0f} stops, p99 {m['p99_ms']:.0f} ms" for w, m in med.items()
    )
    return [
        Figure(
            "`robot-ssl run` (sim robot and camera, ONNX, 2 cores) with the live view: watchdog "
            f"stops and p99 capture to command, {rounds} x {duration:g} s, medians; a browser "
            "(headless Chromium, WebGL in software) on the same cores",
            result,
            tuple(targets),
            values,
        )
    ]
