"""Robot and camera descriptions (typed, validated, JSON/YAML round trip).

Defaults are a Thymio II with a forward camera; every number here is a default
to be overridden per robot by a YAML/JSON file, never a literal buried in code.
Frames: x forward, y left, z up, origin at the wheel-axle midpoint on the floor.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pinhole import Pinhole
from robot_ssl.core.config import (
    MAX_IMAGE_PX,
    bounded,
    check_bounds,
    check_number,
    checked_fields,
    read_config_file,
)
from robot_ssl.core.errors import SpecError
from robot_ssl.core.label_grid import MAX_SENSORS
from robot_ssl.core.outputs import OutputError, atomic_output, write_error

_MAX_SIZE_M = 10.0  # robot dimensions and mounts (m): a Thymio is 0.11 m across
_MAX_FOCAL_PX = 1e6  # focal lengths and principal points (pixels)
_INT16_MAX = 32767  # wheel speeds and proximity readings are the firmware's int16

THYMIO_SPEED_M_PER_UNIT = 0.000332
"""A Thymio II's nominal wheel-speed factor (m/s per raw unit); robots differ by about 15 %."""
THYMIO_AXLE_LENGTH_M = 0.0935
"""A Thymio II's nominal effective wheel base (m)."""
PLAUSIBLE_FACTOR = (0.8, 1.25)
"""Plausible band of a calibrated `speed_m_per_unit` (and `axle_length_m`) as a factor of
the Thymio nominal, and of one calibration's correction: wider than the ~15 % spread
between robots, narrow enough to refuse a wrong session or a mistyped length."""


SENSOR_KINDS: tuple[str, ...] = ("ir", "range", "contact")
"""The short-range sensor kinds the labeller and the simulator know (docs/robots.md):
"ir" an intensity (raw firmware units, larger = nearer), "range" a distance in mm (sonar,
time-of-flight, a LiDAR beam or an angular sector of a scan), "contact" a bumper (0/1)."""

CONTACT_REACH_M = 0.005
"""A contact sensor's default reach (m): the simulator presses it when an obstacle lies
within this distance of the sensor along its sector; truth labels use the same reach."""


@dataclass(frozen=True)
class ProxSensor:
    """One short-range sensor: name, pose in the robot frame, kind, field of view, reach.

    `kind` (SENSOR_KINDS): "ir" (default; reading raw intensity, obstacle above the
    labeller's threshold), "range" (reading in mm; obstacle when 0 <= reading < reach,
    32767 = no return, negative = invalid), "contact" (1 pressed, 0 not). `fov_rad`:
    0 = one ray along the axis; > 0 an angular sector of that width centred on the
    axis (a range sensor reads its nearest return over the sector; a contact sensor
    covers that arc of the body). `range_m`: the reach (a reading nearer than this is an
    obstacle); None = `RobotSpec.prox_range_m` (CONTACT_REACH_M for a contact sensor).
    A kind outside SENSOR_KINDS is kept (a session written by a newer version still
    opens; `known` is False and the labeller skips the sensor); spec files refuse it.
    """

    name: str
    x_m: float = bounded(min=-_MAX_SIZE_M, max=_MAX_SIZE_M)
    y_m: float = bounded(min=-_MAX_SIZE_M, max=_MAX_SIZE_M)
    theta_rad: float = bounded(min=-2 * math.pi, max=2 * math.pi)
    kind: str = "ir"
    fov_rad: float = bounded(0.0, 0, 2 * math.pi)
    range_m: float | None = bounded(None, 0, _MAX_SIZE_M, min_inclusive=False)

    def __post_init__(self) -> None:
        _check_sensor(self, "ProxSensor")

    @property
    def known(self) -> bool:
        """Whether this version knows the sensor's kind (SENSOR_KINDS)."""
        return self.kind in SENSOR_KINDS


IRSensor = ProxSensor
"""The former name of ProxSensor (every sensor was infrared): kept for old code."""


def _thymio_sensors() -> tuple[ProxSensor, ...]:
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
    """Differential-drive robot with short-range sensors (Thymio II defaults: 7 IR).

    `prox_sensors` may be of any kind (ProxSensor.kind, docs/robots.md), at most
    MAX_SENSORS; `prox_min` / `prox_max` bound the IR readings and `prox_range_m` is the
    default reach of a sensor without its own `range_m`.

    `speed_m_per_unit` converts the firmware's raw wheel-speed units to m/s
    (Thymio: ~0.33 mm/s per unit, +-15% between robots: calibrate it).
    """

    name: str = "thymio2"
    wheel_radius_m: float = bounded(0.022, 0, _MAX_SIZE_M, min_inclusive=False)
    axle_length_m: float = bounded(THYMIO_AXLE_LENGTH_M, 0, _MAX_SIZE_M, min_inclusive=False)
    speed_m_per_unit: float = bounded(THYMIO_SPEED_M_PER_UNIT, 0, 1, min_inclusive=False)
    max_speed_units: int = bounded(500, 1, _INT16_MAX)
    prox_sensors: tuple[ProxSensor, ...] = field(default_factory=_thymio_sensors)
    prox_min: int = bounded(0, -_INT16_MAX - 1, _INT16_MAX)  # the firmware's int16 readings
    prox_max: int = bounded(4505, -_INT16_MAX - 1, _INT16_MAX)
    prox_range_m: float = bounded(0.14, 0, _MAX_SIZE_M, min_inclusive=False)
    front_sensor_indices: tuple[int, ...] = bounded((0, 1, 2, 3, 4), 0, MAX_SENSORS - 1)
    body_radius_m: float = bounded(0.08, 0, _MAX_SIZE_M, min_inclusive=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise SpecError(f"robot.name: must be a string, got {self.name!r}")
        check_bounds(self, "robot", SpecError)
        if not isinstance(self.prox_sensors, (tuple, list)) or not self.prox_sensors:
            raise SpecError("robot.prox_sensors: at least one proximity sensor is required")
        if len(self.prox_sensors) > MAX_SENSORS:
            raise SpecError(f"robot.prox_sensors: at most {MAX_SENSORS} sensors")
        for i, sensor in enumerate(self.prox_sensors):
            if not isinstance(sensor, ProxSensor):
                raise SpecError(f"robot.prox_sensors[{i}]: must be a ProxSensor, got {sensor!r}")
            _check_sensor(sensor, f"robot.prox_sensors[{i}]")
        names = [s.name for s in self.prox_sensors]
        if len(set(names)) != len(names):
            raise SpecError(f"robot.prox_sensors: names must be distinct: {names}")
        n = len(self.prox_sensors)
        if not isinstance(self.front_sensor_indices, (tuple, list)):
            raise SpecError("robot.front_sensor_indices: must be a list of sensor indices")
        for i, index in enumerate(self.front_sensor_indices):
            check_number(
                index, f"robot.front_sensor_indices[{i}]", SpecError, integer=True, min=0, max=n - 1
            )
        # lists from library callers become tuples: hashable, and equal to what from_dict builds
        object.__setattr__(self, "prox_sensors", tuple(self.prox_sensors))
        object.__setattr__(self, "front_sensor_indices", tuple(map(int, self.front_sensor_indices)))
        if self.prox_max <= self.prox_min:
            raise SpecError("robot: prox_max must exceed prox_min")

    @property
    def num_prox(self) -> int:
        return len(self.prox_sensors)

    def reach_m(self, i: int) -> float:
        """Sensor i's reach (m): its own `range_m`, else CONTACT_REACH_M for a contact
        sensor, else `prox_range_m`."""
        sensor = self.prox_sensors[i]
        if sensor.range_m is not None:
            return float(sensor.range_m)
        return CONTACT_REACH_M if sensor.kind == "contact" else float(self.prox_range_m)

    def reaches_m(self) -> tuple[float, ...]:
        """`reach_m` of every sensor, in order."""
        return tuple(self.reach_m(i) for i in range(self.num_prox))

    @property
    def kinds(self) -> tuple[str, ...]:
        """Each sensor's kind, in order."""
        return tuple(s.kind for s in self.prox_sensors)

    def unknown_sensors(self) -> list[int]:
        """Indices of the sensors whose kind this version does not know."""
        return [i for i, s in enumerate(self.prox_sensors) if not s.known]

    def check_kinds(self, what: str = "robot") -> None:
        """SpecError naming the first sensor of an unknown kind (spec files must not
        name one: nothing could simulate or label it)."""
        for i in self.unknown_sensors():
            s = self.prox_sensors[i]
            raise SpecError(
                f"{what}.prox_sensors[{i}] ({s.name}): unknown sensor kind {s.kind!r}"
                f" (expected one of {', '.join(SENSOR_KINDS)})"
            )

    def prox_poses(self) -> list[tuple[float, float, float]]:
        """(x_m, y_m, theta_rad) of each proximity sensor in the robot frame."""
        return [(s.x_m, s.y_m, s.theta_rad) for s in self.prox_sensors]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["prox_sensors"] = [asdict(s) for s in self.prox_sensors]
        d["front_sensor_indices"] = list(self.front_sensor_indices)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, keep_unknown_kinds: bool = False) -> RobotSpec:
        """From a mapping (a spec file's `robot:`, a session's JSON); keys and types checked.

        A sensor of an unknown kind is a SpecError, unless `keep_unknown_kinds` (a session
        reader: the session still opens and the labeller skips that sensor). Mappings of
        earlier versions (sensors without kind, fov_rad, range_m) load as IR sensors.
        """
        robot = cls(**_check_keys(cls, d, "robot"))
        if not keep_unknown_kinds:
            robot.check_kinds()
        return robot


_P = Pinhole  # the one pinhole model (pinhole/): its defaults, geometry and viewpoint


@dataclass(frozen=True)
class CameraSpec(Pinhole):
    """Forward pinhole camera: resolution, intrinsics (from field of view unless given), mount.

    The geometry (intrinsics, horizon_row, floor_pixels, the viewpoint a model records)
    is `pinhole.Pinhole`'s, shared with the simulator's camera; the fields are declared
    again here only to carry their bounds. The mount is the optical centre in the robot
    frame; `pitch_rad` > 0 tilts the optical axis down towards the floor. `time_offset_s`
    is the camera's calibrated delivery latency (s, in [-1, 1]): a frame stamped t was
    exposed at t - time_offset_s (`robot-ssl calibrate` measures it; the labeller falls
    back to it when it cannot estimate the offset from a session). Files without it load
    as 0.
    """

    width: int = bounded(_P.width, 1, MAX_IMAGE_PX)
    height: int = bounded(_P.height, 1, MAX_IMAGE_PX)
    hfov_rad: float = bounded(_P.hfov_rad, 0, math.pi, min_inclusive=False, max_inclusive=False)
    fx: float | None = bounded(None, 0, _MAX_FOCAL_PX, min_inclusive=False)
    fy: float | None = bounded(None, 0, _MAX_FOCAL_PX, min_inclusive=False)
    cx: float | None = bounded(None, -_MAX_FOCAL_PX, _MAX_FOCAL_PX)
    cy: float | None = bounded(None, -_MAX_FOCAL_PX, _MAX_FOCAL_PX)
    x_m: float = bounded(_P.x_m, -_MAX_SIZE_M, _MAX_SIZE_M)
    y_m: float = bounded(_P.y_m, -_MAX_SIZE_M, _MAX_SIZE_M)
    z_m: float = bounded(_P.z_m, 0, _MAX_SIZE_M, min_inclusive=False)
    pitch_rad: float = bounded(
        _P.pitch_rad, -math.pi / 2, math.pi / 2, min_inclusive=False, max_inclusive=False
    )
    fps: float = bounded(30.0, 0, 1000, min_inclusive=False)
    time_offset_s: float = bounded(0.0, -1.0, 1.0)

    def __post_init__(self) -> None:
        check_bounds(self, "camera", SpecError)

    def with_overrides(
        self, width: int | None = None, height: int | None = None, fps: float | None = None
    ) -> CameraSpec:
        """This spec with the given (non-None) size and rate: what a camera was asked
        for on the command line, or what it really delivers once opened."""
        changes = {"width": width, "height": height, "fps": fps}
        changes = {k: v for k, v in changes.items() if v is not None}
        if "fps" in changes:
            changes["fps"] = float(changes["fps"])
        return dataclasses.replace(self, **changes) if changes else self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CameraSpec:
        """From a mapping (a spec file's `camera:`, a session's JSON); keys and types checked."""
        return cls(**_check_keys(cls, d, "camera"))


def _check_sensor(sensor: ProxSensor, what: str) -> None:
    if not isinstance(sensor.name, str) or not sensor.name:
        raise SpecError(f"{what}.name: must be a non-empty string, got {sensor.name!r}")
    if not isinstance(sensor.kind, str) or not sensor.kind:
        raise SpecError(f"{what}.kind: must be a non-empty string, got {sensor.kind!r}")
    check_bounds(sensor, what, SpecError)


def _check_keys(cls: type, d: Any, what: str) -> dict[str, Any]:
    """Keys and value types of `d` against the fields of `cls` (nested sensors included)."""
    return checked_fields(cls, d, what, SpecError)


SPEC_FILE_KEYS = ("robot", "camera")


def specs_to_json(robot: RobotSpec, camera: CameraSpec) -> tuple[str, str]:
    """JSON strings of both specs, as stored in session files."""
    return json.dumps(robot.to_dict()), json.dumps(camera.to_dict())


def load_specs(path: str | Path) -> tuple[RobotSpec, CameraSpec]:
    """Read `{robot: {...}, camera: {...}}` from a YAML or JSON file; missing parts take defaults.

    Any unknown key (a misspelt `camra:` as much as a `robot.wheel_radius:`) or a value of
    the wrong type is a SpecError naming the file and the key path.
    """
    data = read_config_file(path, "spec file", SpecError)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping with 'robot' and/or 'camera'")
    unknown = sorted(set(data) - set(SPEC_FILE_KEYS), key=str)
    if unknown:
        raise SpecError(f"{path}: unknown top-level keys {unknown} (expected robot, camera)")
    try:
        robot = RobotSpec.from_dict(_section(data, "robot"))
        camera = CameraSpec.from_dict(_section(data, "camera"))
    except SpecError as e:
        raise SpecError(f"{path}: {e}") from None
    try:
        check_plausible("robot.speed_m_per_unit", robot.speed_m_per_unit, THYMIO_SPEED_M_PER_UNIT)
    except SpecError as e:
        raise SpecError(f"{path}: {e}; recalibrate (docs/calibration.md)") from None
    return robot, camera


def plausible(value: float, nominal: float) -> bool:
    """True when `value` / `nominal` is finite and within PLAUSIBLE_FACTOR."""
    lo, hi = PLAUSIBLE_FACTOR
    ratio = value / nominal
    return math.isfinite(ratio) and lo <= ratio <= hi


def check_plausible(name: str, value: float, nominal: float) -> None:
    """SpecError unless `value` lies within PLAUSIBLE_FACTOR of the Thymio's `nominal`:
    a spec file with an absurd wheel-speed factor (a failed calibration, a typo) must not
    drive a robot, whose odometry and speeds all scale with it."""
    if not plausible(value, nominal):
        lo, hi = PLAUSIBLE_FACTOR
        raise SpecError(
            f"{name}: {value:.6g} is implausible: a Thymio's is {lo:g}..{hi:g} x the nominal"
            f" {nominal:.6g} ({lo * nominal:.6g}..{hi * nominal:.6g})"
        )


def _section(data: dict[str, Any], key: str) -> Any:
    value = data.get(key)
    return {} if value is None else value


def save_specs(path: str | Path, robot: RobotSpec, camera: CameraSpec) -> None:
    """Write both specs to YAML (or JSON when the suffix is .json), atomically: a
    temporary file in the same folder replaces the target once complete (keeping the
    target's permissions when it exists). Raises SpecError when it cannot be written."""
    path = Path(path)
    data = {"robot": robot.to_dict(), "camera": camera.to_dict()}
    _write_text_atomically(path, _dump(path, data))


def update_spec_file(path: str | Path, updates: dict[tuple[str, str], float]) -> None:
    """Set `(section, key) -> value` in an existing spec file and change nothing else.

    YAML: each value is replaced in place (or its key added under its section), so every
    other key, value, comment and the order stay as written; where the file's layout does
    not allow that (flow style, anchors), the file is rewritten from its parsed content
    with the updates (other keys and values kept, comments lost). JSON: parsed, updated
    and rewritten in its key order. Written atomically as by save_specs."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise SpecError(f"cannot read {path}: {e.strerror or e}") from None
    data = read_config_file(path, "spec file", SpecError) or {}
    expected = copy.deepcopy(data)
    for (section, key), value in updates.items():
        if not isinstance(expected.get(section), dict):
            expected[section] = {}
        expected[section][key] = value
    new_text = None if path.suffix == ".json" else _yaml_edited(text, updates)
    if new_text is None or yaml.safe_load(new_text) != expected:
        new_text = _dump(path, expected)
    _write_text_atomically(path, new_text)


def _dump(path: Path, data: dict[str, Any]) -> str:
    if path.suffix == ".json":
        return json.dumps(data, indent=2) + "\n"
    return yaml.safe_dump(data, sort_keys=False)


def _yaml_edited(text: str, updates: dict[tuple[str, str], float]) -> str | None:
    """`text` with each block-style `section:` / `  key: value` line set; None when a
    section is not a plain block mapping (the caller then rewrites the whole file)."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    for (section, key), value in updates.items():
        scalar = yaml.safe_dump(value).splitlines()[0]
        if not _yaml_set(lines, section, key, scalar):
            return None
    return "".join(lines)


def _yaml_set(lines: list[str], section: str, key: str, scalar: str) -> bool:
    """Set `key` in the top-level block mapping `section` of `lines` in place."""
    header = re.compile(rf"^{re.escape(section)}:\s*(#.*)?$")
    at = next((i for i, line in enumerate(lines) if header.match(line.rstrip("\n"))), None)
    if at is None:
        if any(re.match(rf"^{re.escape(section)}\s*:", line) for line in lines):
            return False  # e.g. `robot: {name: t}`
        lines.append(f"{section}:\n  {key}: {scalar}\n")
        return True
    end = at + 1
    while end < len(lines) and (lines[end][:1] in (" ", "\t", "#") or not lines[end].strip()):
        end += 1
    body = [i for i in range(at + 1, end) if lines[i].strip() and lines[i][:1] != "#"]
    indent = re.match(r"^\s*", lines[body[0]]).group(0) if body else "  "
    item = re.compile(rf"^{indent}{re.escape(key)}:(\s*)([^#\n]*?)(\s+#.*)?$")
    for i in body:
        m = item.match(lines[i].rstrip("\n"))
        if m:
            lines[i] = f"{indent}{key}:{m.group(1) or ' '}{scalar}{m.group(3) or ''}\n"
            return True
    lines.insert((body[-1] if body else at) + 1, f"{indent}{key}: {scalar}\n")
    return True


def _write_text_atomically(path: Path, text: str) -> None:
    """Replace `path` by `text` with the one atomic writer (core/outputs.py), keeping the
    mode of the file it replaces (a spec chmod'ed 0o600 stays so); SpecError otherwise."""
    try:
        mode = path.stat().st_mode & 0o7777 if path.exists() else None
        with atomic_output(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
            if mode is not None:
                os.chmod(tmp, mode)
    except OutputError as e:  # the folder cannot be written: already one line
        raise SpecError(str(e)) from None
    except OSError as e:  # a full or read-only disk: "cannot write PATH: no space left ..."
        raise SpecError(str(write_error(path, e))) from None
