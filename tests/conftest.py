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
    from robot_ssl.learning.export import export_model
    from robot_ssl.learning.models import ModelConfig, build_model

    d = tmp_path_factory.mktemp("model")
    cfg = ModelConfig(distances_m=DISTANCES_M, sensor_indices=(0, 1, 2, 3, 4))
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    torch.save({"model": model.state_dict(), "model_config": cfg.to_dict()}, d / "m.pt")
    return export_model(d / "m.pt", "onnx", d / "m.onnx")
