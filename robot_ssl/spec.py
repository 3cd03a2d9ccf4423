"""Robot and camera descriptions (typed, validated, JSON/YAML round trip).

Defaults are a Thymio II with a forward camera; every number here is a default
to be overridden per robot by a YAML/JSON file, never a literal buried in code.
Frames: x forward, y left, z up, origin at the wheel-axle midpoint on the floor.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from robot_ssl.config_io import checked_fields, read_config_file
from robot_ssl.errors import SpecError


@dataclass(frozen=True)
class IRSensor:
    """One horizontal proximity sensor: name and pose in the robot frame."""

    name: str
    x_m: float
    y_m: float
    theta_rad: float


def _thymio_sensors() -> tuple[IRSensor, ...]:
    d = math.radians
    return (
        IRSensor("front_left", 0.0630, 0.0493, d(38.0)),
        IRSensor("front_center_left", 0.0756, 0.0261, d(19.0)),
        IRSensor("front_center", 0.0800, 0.0, 0.0),
        IRSensor("front_center_right", 0.0756, -0.0261, d(-19.0)),
        IRSensor("front_right", 0.0630, -0.0493, d(-38.0)),
        IRSensor("back_left", -0.0300, 0.0305, d(180.0)),
        IRSensor("back_right", -0.0300, -0.0305, d(180.0)),
    )


@dataclass(frozen=True)
class RobotSpec:
    """Differential-drive robot with horizontal IR proximity sensors (Thymio II defaults).

    `speed_m_per_unit` converts the firmware's raw wheel-speed units to m/s
    (Thymio: ~0.33 mm/s per unit, +-15% between robots: calibrate it).
    """

    name: str = "thymio2"
    wheel_radius_m: float = 0.022
    axle_length_m: float = 0.0935
    speed_m_per_unit: float = 0.000332
    max_speed_units: int = 500
    prox_sensors: tuple[IRSensor, ...] = field(default_factory=_thymio_sensors)
    prox_min: int = 0
    prox_max: int = 4505
    prox_range_m: float = 0.14
    front_sensor_indices: tuple[int, ...] = (0, 1, 2, 3, 4)
    body_radius_m: float = 0.08

    def __post_init__(self) -> None:
        if self.wheel_radius_m <= 0 or self.axle_length_m <= 0 or self.speed_m_per_unit <= 0:
            raise SpecError("robot: wheel_radius_m, axle_length_m, speed_m_per_unit must be > 0")
        if not self.prox_sensors:
            raise SpecError("robot: at least one proximity sensor is required")
        n = len(self.prox_sensors)
        bad = [i for i in self.front_sensor_indices if not 0 <= i < n]
        if bad:
            raise SpecError(f"robot: front_sensor_indices {bad} out of range 0..{n - 1}")
        if self.prox_max <= self.prox_min:
            raise SpecError("robot: prox_max must exceed prox_min")

    @property
    def num_prox(self) -> int:
        return len(self.prox_sensors)

    @property
    def prox_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.prox_sensors)

    def prox_poses(self) -> list[tuple[float, float, float]]:
        """(x_m, y_m, theta_rad) of each proximity sensor in the robot frame."""
        return [(s.x_m, s.y_m, s.theta_rad) for s in self.prox_sensors]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["prox_sensors"] = [asdict(s) for s in self.prox_sensors]
        d["front_sensor_indices"] = list(self.front_sensor_indices)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RobotSpec:
        d = _check_keys(cls, d, "robot")
        if "prox_sensors" in d:
            try:
                d["prox_sensors"] = tuple(IRSensor(**s) for s in d["prox_sensors"])
            except TypeError as e:
                raise SpecError(f"robot.prox_sensors: {e}") from None
        if "front_sensor_indices" in d:
            d["front_sensor_indices"] = tuple(int(i) for i in d["front_sensor_indices"])
        return cls(**d)


@dataclass(frozen=True)
class CameraSpec:
    """Forward pinhole camera: resolution, intrinsics (from field of view unless given), mount.

    The mount is the optical centre in the robot frame; `pitch_rad` > 0 tilts the
    optical axis down towards the floor.
    """

    width: int = 320
    height: int = 240
    hfov_rad: float = math.radians(102.0)  # Raspberry Pi Camera Module 3 Wide
    fx: float | None = None
    fy: float | None = None
    cx: float | None = None
    cy: float | None = None
    x_m: float = 0.03
    y_m: float = 0.0
    z_m: float = 0.095
    pitch_rad: float = math.radians(20.0)
    fps: float = 30.0

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise SpecError("camera: width and height must be > 0")
        if not 0 < self.hfov_rad < math.pi:
            raise SpecError("camera: hfov_rad must be in (0, pi)")
        if self.fps <= 0:
            raise SpecError("camera: fps must be > 0")

    def intrinsics(self) -> tuple[float, float, float, float]:
        """(fx, fy, cx, cy) in pixels; derived from hfov with square pixels when not given."""
        f = self.width / 2.0 / math.tan(self.hfov_rad / 2.0)
        fx = self.fx if self.fx is not None else f
        fy = self.fy if self.fy is not None else fx
        cx = self.cx if self.cx is not None else (self.width - 1) / 2.0
        cy = self.cy if self.cy is not None else (self.height - 1) / 2.0
        return fx, fy, cx, cy

    def horizon_row(self) -> float:
        """Image row (pixels, may be outside the image) where the horizon projects."""
        _, fy, _, cy = self.intrinsics()
        return cy - fy * math.tan(self.pitch_rad)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CameraSpec:
        return cls(**_check_keys(cls, d, "camera"))


def _check_keys(cls: type, d: Any, what: str) -> dict[str, Any]:
    return checked_fields(cls, d, what, SpecError)


def specs_to_json(robot: RobotSpec, camera: CameraSpec) -> tuple[str, str]:
    """JSON strings of both specs, as stored in session files."""
    return json.dumps(robot.to_dict()), json.dumps(camera.to_dict())


def load_specs(path: str | Path) -> tuple[RobotSpec, CameraSpec]:
    """Read `{robot: {...}, camera: {...}}` from a YAML or JSON file; missing parts take defaults."""
    data = read_config_file(path, "spec file", SpecError) or {}
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping with 'robot' and/or 'camera'")
    robot = RobotSpec.from_dict(data.get("robot") or {})
    camera = CameraSpec.from_dict(data.get("camera") or {})
    return robot, camera


def save_specs(path: str | Path, robot: RobotSpec, camera: CameraSpec) -> None:
    """Write both specs to YAML (or JSON when the suffix is .json)."""
    path = Path(path)
    data = {"robot": robot.to_dict(), "camera": camera.to_dict()}
    if path.suffix == ".json":
        path.write_text(json.dumps(data, indent=2) + "\n")
    else:
        path.write_text(yaml.safe_dump(data, sort_keys=False))
