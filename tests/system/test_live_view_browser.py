"""The live view as a person sees it: `run --view` on the simulator, its printed URL opened in
a real browser (Debian's Chromium, headless, WebGL in software), screenshots judged by their
pixels and saved beside the test (view_first.png, view_later.png).

Needs /usr/bin/chromium (Debian package chromium) and Playwright (the dev extra; it drives the
system browser, it downloads none). Skips with the reason where they are missing, except
under ROBOT_SSL_REQUIRE_PLAYGROUND=1 or CI, where it fails instead.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rerun")

CHROMIUM = "/usr/bin/chromium"
# WebGL in software: no GPU in CI (the Rerun viewer refuses to start without WebGL)
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
]
VIEWPORT = {"width": 1280, "height": 720}  # a laptop's browser window
# the blueprint's regions (fractions of the page: x0, y0, x1, y1), inside their panels
CAMERA = (0.10, 0.15, 0.50, 0.70)  # left three fifths, top four fifths
MAP = (0.62, 0.08, 0.98, 0.38)  # right column, top half
GRID = (0.62, 0.45, 0.98, 0.75)  # right column, bottom half
FREE_RGB, OBSTACLE_RGB = np.array([80, 190, 80]), np.array([230, 40, 40])  # viz.FREE, OBSTACLE
SUMMARY = re.compile(
    r"ran ([\d.]+) s: (\d+) frames \(([\d.]+)/s\), (\d+) commands, (\d+) watchdog stops,"
    r" capture-to-command ([\d.]+) ms \(p99 ([\d.]+)\)"
)


def _browser_or_skip() -> None:
    """Skip when Chromium or Playwright is missing; fail where they must be there (CI)."""
    reasons = []
    if not Path(CHROMIUM).exists():
        reasons.append(f"{CHROMIUM} not installed (Debian package chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reasons.append("playwright not installed (pip install -e '.[dev]')")
    if not reasons:
        return
    if os.environ.get("ROBOT_SSL_REQUIRE_PLAYGROUND") == "1" or os.environ.get("CI"):
        pytest.fail("; ".join(reasons) + " (required here: ROBOT_SSL_REQUIRE_PLAYGROUND=1 or CI)")
    pytest.skip("; ".join(reasons))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_run(model: Path) -> tuple[subprocess.Popen, str]:
    """`robot-ssl run --view` driving the simulated robot; the URL it prints."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "robot_ssl", "run", "--robot", "sim", "--camera", "sim",
           "--model", str(model), "--drive", "avoid", "--duration", "120",
           "--view", str(_free_port()), "--view-grpc-port", str(_free_port())]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "live view at" in line:
            return proc, line.split("live view at", 1)[1].strip()
    proc.wait(10)
    raise AssertionError(f"no view URL: {seen}")


def _region(image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    h, w = image.shape[:2]
    x0, y0, x1, y1 = box
    return image[round(y0 * h) : round(y1 * h), round(x0 * w) : round(x1 * w)]


def _cell_pixels(rgb: np.ndarray) -> int:
    """Pixels of the grid cells' colours: a blend of free (green) and obstacle (red), as
    the view colours each cell by its predicted probability (within 30 levels of it)."""
    px = rgb.reshape(-1, 3).astype(np.float64)
    d = OBSTACLE_RGB - FREE_RGB
    t = np.clip((px - FREE_RGB) @ d / (d @ d), 0, 1)
    distance = np.linalg.norm(px - (FREE_RGB + t[:, None] * d), axis=1)
    return int(np.sum(distance < 30))


def _shows_the_robot(rgb: np.ndarray) -> bool:
    """The page shows the stream (not the welcome screen, not an empty viewer): the camera
    panel holds an image (grey levels spread out) with cells drawn on it, and the map
    and the predicted grid panels hold cells."""
    camera = _region(rgb, CAMERA)
    return (
        float(camera.mean(axis=2).std()) > 12
        and _cell_pixels(camera) > 100
        and _cell_pixels(_region(rgb, MAP)) > 50
        and _cell_pixels(_region(rgb, GRID)) > 100
    )


def _screenshot(page, path: Path) -> np.ndarray:
    import cv2

    png = page.screenshot(path=str(path), timeout=20_000)
    return cv2.cvtColor(
        cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB
    )


@pytest.mark.timeout(150)
def test_live_view_in_a_browser_shows_the_camera_map_and_grid_and_keeps_up(onnx_model, tmp_path):
    """What a person beside the robot checks: the printed URL opens the view connected to
    the robot (camera image with its cells, map, predicted grid where the layout puts
    them), the camera image changes, and the drive loop kept its pace meanwhile."""
    _browser_or_skip()
    from playwright.sync_api import sync_playwright

    proc, url = _start_run(onnx_model)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(url + "&renderer=webgl", timeout=30_000)
            deadline = time.monotonic() + 75
            first = _screenshot(page, tmp_path / "view_first.png")
            while not _shows_the_robot(first):
                assert time.monotonic() < deadline, f"no live view: see {tmp_path}/view_first.png"
                time.sleep(1.0)
                first = _screenshot(page, tmp_path / "view_first.png")
            time.sleep(3.0)
            later = _screenshot(page, tmp_path / "view_later.png")
            browser.close()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert _shows_the_robot(later), f"see {tmp_path}/view_later.png"
    change = np.abs(_region(first, CAMERA).astype(int) - _region(later, CAMERA)).mean()
    assert change > 0.5, f"the camera panel did not change ({change:.2f}): see {tmp_path}"
    # the loop was not starved by the view and the browser rendering beside it
    summary = SUMMARY.search(err)
    assert summary is not None and "wheel targets (0, 0)" in err, err
    print(summary.group(0))
    _, _, fps, _, trips, _, p99_ms = (float(g) for g in summary.groups())
    assert fps >= 20 and p99_ms < 100, summary.group(0)
    # watchdog stops are printed (-s), not asserted: with the browser rendering in
    # software on the same two cores (on a robot it runs on another machine) a few
    # 150 ms gaps occur on a loaded machine (docs/live.md gives the figures)
    print(f"watchdog stops with a browser beside the loop: {trips:.0f}")
