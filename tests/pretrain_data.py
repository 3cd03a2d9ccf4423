"""Small sessions and encoders for the pretraining tests."""

from __future__ import annotations

import numpy as np

from robot_ssl.core.spec import CameraSpec
from robot_ssl.io.session import SessionWriter
from robot_ssl.learning.dataset import synthetic_frames
from robot_ssl.learning.pretrain import (
    PretrainConfig,
    PretrainData,
    pretrain,
)

FRAME_NS = 33_333_333  # 30 Hz camera


def _circle(t_s: np.ndarray, v: float, w: float, start: np.ndarray) -> np.ndarray:
    """Poses (x, y, theta) of a robot driving at v m/s, w rad/s from pose `start`."""
    r = v / w
    local = np.stack([r * np.sin(w * t_s), r * (1 - np.cos(w * t_s)), w * t_s], axis=1)
    c, s = np.cos(start[2]), np.sin(start[2])
    x = start[0] + c * local[:, 0] - s * local[:, 1]
    y = start[1] + s * local[:, 0] + c * local[:, 1]
    theta = np.pi - np.mod(np.pi - (start[2] + local[:, 2]), 2 * np.pi)  # wrapped, as recorded
    return np.stack([x, y, theta], axis=1)


def _odometry_session(path, n: int = 24, seed: int = 0) -> None:
    """A session of `synthetic_frames` at 80x64 (the network size) with odometry at 100 Hz."""
    images, _ = synthetic_frames(n, size=(80, 64), seed=seed)
    with SessionWriter(path, camera=CameraSpec(width=80, height=64)) as writer:
        for i, image in enumerate(images):
            writer.write_frame(i * FRAME_NS, image)
        t_ns = np.arange(0, n * FRAME_NS, 10_000_000)
        for t, pose in zip(t_ns, _circle(t_ns / 1e9, 0.1, 1.0, np.array([0.2, -0.1, 3.0]))):
            writer.write_odometry(int(t), pose)


def _tiny_encoder(tmp_path, arch: str = "default") -> str:
    images, _ = synthetic_frames(8, size=(80, 64), seed=2)
    data = PretrainData(
        images=images,
        session_ids=np.zeros(8, np.int32),
        pairs=np.zeros((0, 2), np.int64),
        pair_targets=np.zeros((0, 3)),
    )
    cfg = PretrainConfig(
        out_dir=str(tmp_path / f"pre-{arch}"),
        tasks=("denoise",),
        arch=arch,
        epochs=1,
        batch_size=8,
        progress=False,
        device="cpu",
    )
    pretrain(cfg, data)
    return str(tmp_path / f"pre-{arch}" / "encoder.pt")
