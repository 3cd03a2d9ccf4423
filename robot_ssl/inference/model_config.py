"""What a detector is, without torch: the ModelConfig saved in every checkpoint and export.

Kept apart from robot_ssl.learning.models (the torch networks) so that the robot,
which runs exported ONNX files, reads a model's description without torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from robot_ssl.core.config import MAX_INPUT_PX, bounded, check_bounds, checked_fields, plain_dict
from robot_ssl.core.errors import RobotSSLError
from robot_ssl.core.label_grid import (
    MAX_GRID_CELLS,
    MAX_LABEL_DISTANCE_M,
    MAX_SENSORS,
    check_grid_size,
)

__all__ = ["ARCHS", "ModelConfig", "ModelError"]

ARCHS = ("default", "paper")
_DEFAULT_WIDTHS = {"paper": (10, 10, 8), "default": (24, 32, 64, 96)}
_MAX_CHANNELS = 4096  # convolution channels per layer


class ModelError(RobotSSLError):
    """A model configuration or a model file is invalid."""


@dataclass
class ModelConfig:
    """Everything needed to rebuild a detector network (saved in every checkpoint and export).

    `widths` are the convolution channel counts (None: the architecture's
    default, (10, 10, 8) for "paper"). `distances_m` and `sensor_indices`
    describe the output grid (copied from the label files) so that a model
    file alone says what its cells mean.
    """

    arch: str = "default"
    input_width: int = bounded(80, 1, MAX_INPUT_PX)
    input_height: int = bounded(64, 1, MAX_INPUT_PX)
    num_sensors: int = bounded(5, 1, MAX_SENSORS)
    num_distances: int = bounded(31, 1, MAX_GRID_CELLS)
    widths: tuple[int, ...] | None = bounded(None, 1, _MAX_CHANNELS)
    hidden: int = bounded(256, 1, 65536)
    head_channels: int = bounded(32, 1, _MAX_CHANNELS)
    dropout: float = bounded(0.2, 0, 1, max_inclusive=False)
    distances_m: tuple[float, ...] | None = bounded(None, 0, MAX_LABEL_DISTANCE_M)
    sensor_indices: tuple[int, ...] | None = bounded(None, 0, MAX_SENSORS - 1)

    def __post_init__(self) -> None:
        check_bounds(self, "model config", ModelError)
        check_grid_size(self.num_sensors, self.num_distances, ModelError)
        if self.arch not in ARCHS:
            raise ModelError(f"unknown arch {self.arch!r}; choose one of {', '.join(ARCHS)}")
        if self.widths is None:
            self.widths = _DEFAULT_WIDTHS[self.arch]
        self.widths = tuple(int(w) for w in self.widths)
        if self.arch == "paper" and len(self.widths) != 3:
            raise ModelError("arch 'paper' has exactly three convolution widths")
        if not self.widths or min(self.widths) <= 0:
            raise ModelError("widths must be positive channel counts")
        down = 2 ** len(self.widths)
        if self.input_width < down or self.input_height < down:
            raise ModelError(
                f"input {self.input_width}x{self.input_height} is too small for "
                f"{len(self.widths)} stride-2 stages (need >= {down} pixels per side)"
            )
        for name in ("num_sensors", "num_distances", "hidden", "head_channels"):
            if getattr(self, name) <= 0:
                raise ModelError(f"{name} must be > 0")
        if not 0.0 <= self.dropout < 1.0:
            raise ModelError("dropout must be in [0, 1)")
        if self.distances_m is not None:
            self.distances_m = tuple(float(d) for d in self.distances_m)
            if len(self.distances_m) != self.num_distances:
                raise ModelError("len(distances_m) must equal num_distances")
        if self.sensor_indices is not None:
            self.sensor_indices = tuple(int(s) for s in self.sensor_indices)
            if len(self.sensor_indices) != self.num_sensors:
                raise ModelError("len(sensor_indices) must equal num_sensors")

    @property
    def input_size(self) -> tuple[int, int]:
        """(width, height) of the network input, as OpenCV's resize expects it."""
        return self.input_width, self.input_height

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/`weights_only`-safe dict (tuples become lists)."""
        return plain_dict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        d = checked_fields(cls, d, "model config", ModelError)
        d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**d)
