"""Small video files for camera tests: a texture scrolling sideways, MJPG in AVI."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def write_video(path: Path, seconds: float, fps: float = 20.0, size=(160, 120)) -> None:
    w, h = size
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    rng = np.random.default_rng(0)
    base = cv2.resize(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8), (2 * w, h))
    for k in range(int(seconds * fps)):
        vw.write(np.ascontiguousarray(base[:, k % w : k % w + w]))
    vw.release()
