"""Fixtures shared by several test modules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

DISTANCES_M = tuple(np.round(np.arange(31) * 0.01, 2).tolist())  # the default 0..30 cm grid


@pytest.fixture(scope="session")
def onnx_model(tmp_path_factory) -> Path:
    """An untrained detector exported to ONNX (real preprocessing and runtime)."""
    pytest.importorskip("onnxruntime")
    torch = pytest.importorskip("torch")
    from robot_ssl.core.spec import CameraSpec
    from robot_ssl.learning.checkpoint import Checkpoint
    from robot_ssl.learning.export import export_model
    from robot_ssl.learning.models import ModelConfig, build_model

    d = tmp_path_factory.mktemp("model")
    cfg = ModelConfig(distances_m=DISTANCES_M, sensor_indices=(0, 1, 2, 3, 4))
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    # trained, as it were, with the default camera (what `sim record` and `--camera sim` use)
    Checkpoint(model.state_dict(), cfg, viewpoint=CameraSpec().pinhole()).save(d / "m.pt")
    return export_model(d / "m.pt", "onnx", d / "m.onnx")


@pytest.fixture
def mount_tmpfs(tmp_path):
    """Factory for real small disks: `mount_tmpfs("64k")` gives a fresh folder on a tmpfs of
    that size (a full disk is a real ENOSPC), `mount_tmpfs("1m", read_only=True)` a read-only
    one (EROFS, even for root). Needs root, as in CI; skips with the reason elsewhere.
    Everything mounted is unmounted at teardown."""
    import subprocess

    mounted: list[Path] = []

    def make(size: str, *, read_only: bool = False) -> Path:
        mnt = tmp_path / f"tmpfs{len(mounted)}"
        mnt.mkdir()
        opts = f"{'ro,' if read_only else ''}size={size}"
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(mnt)], capture_output=True
        )
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
        mounted.append(mnt)
        return mnt

    yield make
    for mnt in mounted:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


_TIERS = {"unit": "unit", "system": "system", "peer": "peer"}


def pytest_collection_modifyitems(config, items):
    """Markers set by folder: tests/unit/** are `unit`, tests/system/** `system`
    (subprocesses, kills, full disks, a browser), tests/peer/** `peer` (asebaplayground
    and Debian's Aseba clients). `make test-fast` runs `-m unit`."""
    root = Path(__file__).resolve().parent
    for item in items:
        try:
            tier = Path(item.fspath).resolve().relative_to(root).parts[0]
        except ValueError:
            continue
        if tier in _TIERS:
            item.add_marker(getattr(pytest.mark, _TIERS[tier]))
