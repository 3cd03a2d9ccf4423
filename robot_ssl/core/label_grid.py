"""What a label grid is: the labeller's configuration and its output arrays.

Pure data definitions shared by the labeller (robot_ssl.labelling), which computes
labels, and the labels file (robot_ssl.io.labels_file), which stores them; they live
here, below both, so that neither imports the other. Meaning of each cell and
matching rules: robot_ssl.labelling.labeller and docs/labelling.md.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from robot_ssl.core.config import (
    MAX_DURATION_S,
    bounded,
    check_bounds,
    check_types,
    checked_fields,
    is_number,
    parse_json,
    read_config_file,
)
from robot_ssl.core.errors import RobotSSLError

__all__ = [
    "CAMERA_OFFSET_MODES",
    "CAMERA_OFFSET_SOURCES",
    "LABEL_SOURCES",
    "MAX_GRID_CELLS",
    "MAX_LABEL_DISTANCE_M",
    "MAX_SENSORS",
    "SOURCE_CODES",
    "UNKNOWN",
    "CameraOffset",
    "LabelConfig",
    "LabelConfigError",
    "LabelGrid",
    "LabellingError",
    "check_grid_size",
    "check_sources",
    "distance_grid",
]

UNKNOWN = -1  # label of a cell that no later pose matched
CAMERA_OFFSET_MODES = ("auto", "spec")  # LabelConfig.camera_offset, besides seconds
# where the applied camera offset came from ("none": labels from before the correction)
CAMERA_OFFSET_SOURCES = ("estimate", "spec", "config", "none", "sensor")
_MAX_CAMERA_OFFSET_S = 1.0
MAX_SENSORS = 64  # proximity sensors a grid may name (indices 0..63)
MAX_LABEL_DISTANCE_M = 10.0  # distance bins and tolerances (m): the camera sees under 1 m
MAX_GRID_CELLS = 4096  # sensors x distance bins of a label grid (and of a model's output)
LABEL_SOURCES = ("ir", "contact", "traversal")  # in order of precedence (labelling/sources.py)
# per-cell source code of a labels file's `source` dataset; 0: unknown cell
SOURCE_CODES = {"ir": 1, "contact": 2, "traversal": 3}


def check_grid_size(num_sensors: int, num_distances: int, error: type[Exception]) -> None:
    """A label grid (or a model's output grid) of at most MAX_GRID_CELLS cells: every
    frame stores and predicts all of them."""
    if num_sensors * num_distances > MAX_GRID_CELLS:
        raise error(
            f"label grid: {num_sensors} sensors x {num_distances} distances is "
            f"{num_sensors * num_distances} cells, over {MAX_GRID_CELLS}"
        )


class LabellingError(RobotSSLError):
    """Base class of the auto-labeller's errors."""


class LabelConfigError(LabellingError):
    """A labelling configuration is invalid or cannot be read."""


def distance_grid(start_m: float, stop_m: float, step_m: float) -> tuple[float, ...]:
    """Distances start, start + step, ... up to stop (inclusive), rounded to the nanometre."""
    for name, value in (("start", start_m), ("stop", stop_m), ("step", step_m)):
        if not is_number(value) or not math.isfinite(value):
            raise LabelConfigError(f"distances: {name} must be a finite number, got {value!r}")
    if step_m <= 0:
        raise LabelConfigError(f"distances: step must be > 0, got {step_m}")
    if stop_m < start_m:
        raise LabelConfigError(f"distances: stop {stop_m} is below start {start_m}")
    n = math.floor((stop_m - start_m) / step_m + 1e-9) + 1
    if n > MAX_GRID_CELLS:
        raise LabelConfigError(
            f"distances: {start_m}:{stop_m}:{step_m} is {n} bins, over {MAX_GRID_CELLS}"
        )
    return tuple(round(start_m + i * step_m, 9) for i in range(n))


@dataclass(frozen=True)
class _Grid:
    """`distances_m` given as {start, stop, step} in a label config file (for the type checks)."""

    start: float
    stop: float
    step: float


_SOURCE_FIELDS = ("sources", "contact_bearing_tol_rad", "traversal_margin_m")
_UNCERTAINTY_FIELDS = (
    "uncertainty_replays",
    "uncertainty_scale_std",
    "uncertainty_step_std",
    "uncertainty_seed",
)


def _default_distances() -> tuple[float, ...]:
    return distance_grid(0.0, 0.30, 0.01)


@dataclass(frozen=True)
class LabelConfig:
    """Parameters of the labelling rule; defaults are those of the original work.

    sensor_indices: proximity columns to label (Thymio: 0..4 are the front sensors).
    distances_m: bin centres d, sorted, >= 0 (default 0..0.30 m every 0.01 m).
    tol_d_m, tol_y_m, tol_theta_rad: a pose matches bin d when |dx - d| < tol_d_m,
        |dy| < tol_y_m, |wrap(dtheta)| < tol_theta_rad (strict, as the original code,
        so that a robot standing still labels d = 0 only).
    threshold: a raw reading > threshold is an obstacle (Thymio: any non-zero value).
    horizon_s: how far after the frame to look for matches; bounds odometry drift.
    max_gap_s: odometry samples further apart than this split the trajectory; no
        match is ever made across such a gap.
    max_backtrack_m: how far the robot may have been further ahead before reaching
        the matched pose (the backward-motion rule, see the module docstring).
    min_duration_s: a session whose proximity and odometry streams overlap for less
        than this is too short to label.
    camera_offset: the camera's delivery latency, corrected before matching (a frame
        stamped t is matched with the poses at t - offset): "auto" estimates it from the
        session's own images (robot_ssl.labelling.time_offset) and falls back to the
        session's calibrated `CameraSpec.time_offset_s` when the estimate is unreliable;
        "spec" uses that calibrated value; a number is the offset in seconds, in [-1, 1].
    uncertainty_replays: Monte Carlo replays of the wheel odometry whose labels give each
        known cell a confidence, the fraction of replays that agree with its label (0:
        off, no confidence stored; robot_ssl.labelling.uncertainty, docs/labelling.md).
    uncertainty_scale_std: per replay and wheel, the relative error of the speed scale
        (default: the simulator's per-session wheel bias and axle error, combined).
    uncertainty_step_std: per wheel sample, relative speed noise (the simulator's
        measurement noise). uncertainty_seed: the replays' random seed.
    sources: the label sources to use, of "ir" (proximity readings), "contact" (detected
        contacts) and "traversal" (floor the body swept); empty: every source the session
        has (robot_ssl.labelling.sources, docs/labelling.md).
    contact_bearing_tol_rad: a contact labels the sensors whose axis leaves the body
        within this angle of the touched point. traversal_margin_m: a sensor's reach
        counts as swept only this far inside the body's corridor.
    """

    sensor_indices: tuple[int, ...] = bounded((0, 1, 2, 3, 4), 0, MAX_SENSORS - 1)
    distances_m: tuple[float, ...] = bounded(
        default_factory=_default_distances, min=0, max=MAX_LABEL_DISTANCE_M
    )
    tol_d_m: float = bounded(0.01, 0, MAX_LABEL_DISTANCE_M, min_inclusive=False)
    tol_y_m: float = bounded(0.01, 0, MAX_LABEL_DISTANCE_M, min_inclusive=False)
    tol_theta_rad: float = bounded(0.05, 0, math.pi, min_inclusive=False)
    threshold: int = bounded(0, 0, 32767)  # readings are int16
    horizon_s: float = bounded(20.0, 0, 3600, min_inclusive=False)
    max_gap_s: float = bounded(0.5, 0, 3600, min_inclusive=False)
    max_backtrack_m: float = bounded(0.01, 0, MAX_LABEL_DISTANCE_M)
    min_duration_s: float = bounded(1.0, 0, MAX_DURATION_S)
    camera_offset: str | float = "auto"
    uncertainty_replays: int = bounded(0, 0, 1000)
    uncertainty_scale_std: float = bounded(0.02, 0, 0.5)
    uncertainty_step_std: float = bounded(0.03, 0, 0.5)
    uncertainty_seed: int = bounded(0, 0, 2**31 - 1)
    sources: tuple[str, ...] = ()
    contact_bearing_tol_rad: float = bounded(0.2, 0, math.pi)
    traversal_margin_m: float = bounded(0.01, 0, MAX_LABEL_DISTANCE_M)

    def __post_init__(self) -> None:
        check_bounds(self, "label config", LabelConfigError)
        sensors = tuple(int(i) for i in self.sensor_indices)
        dists = tuple(float(d) for d in self.distances_m)
        object.__setattr__(self, "sensor_indices", sensors)
        object.__setattr__(self, "distances_m", dists)
        object.__setattr__(self, "threshold", int(self.threshold))
        for f in fields(self):
            if f.type in (float, "float"):  # integers given for metres and seconds
                object.__setattr__(self, f.name, float(getattr(self, f.name)))
        if not sensors:
            raise LabelConfigError("label config: sensor_indices is empty")
        if len(set(sensors)) != len(sensors):
            raise LabelConfigError(f"label config: sensor_indices must be distinct: {sensors}")
        if not dists:
            raise LabelConfigError("label config: distances_m is empty")
        if any(b <= a for a, b in itertools.pairwise(dists)):
            raise LabelConfigError("label config: distances_m must be strictly increasing")
        check_grid_size(len(sensors), len(dists), LabelConfigError)
        object.__setattr__(self, "camera_offset", _check_camera_offset(self.camera_offset))
        object.__setattr__(self, "sources", check_sources(self.sources))

    @property
    def camera_offset_s(self) -> float | None:
        """The fixed camera offset (s) when `camera_offset` is a number, else None."""
        return None if isinstance(self.camera_offset, str) else float(self.camera_offset)

    @property
    def num_sensors(self) -> int:
        return len(self.sensor_indices)

    @property
    def num_distances(self) -> int:
        return len(self.distances_m)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able mapping (distances as an explicit list)."""
        d = asdict(self)
        d["sensor_indices"] = list(self.sensor_indices)
        d["distances_m"] = list(self.distances_m)
        if not self.uncertainty_replays:  # off: the same config as before the option existed
            for name in _UNCERTAINTY_FIELDS:
                del d[name]
        d["sources"] = list(self.sources)
        defaults = LabelConfig.__dataclass_fields__
        if (
            not self.sources
            and all(  # every source, default rules: the config as before
                getattr(self, k) == defaults[k].default for k in _SOURCE_FIELDS[1:]
            )
        ):
            for name in _SOURCE_FIELDS:
                del d[name]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LabelConfig:
        """Build from a mapping; `distances_m` may be a list or {start, stop, step} (stop inclusive)."""
        d = checked_fields(cls, d, "label config", LabelConfigError, types=False)
        dist = d.get("distances_m")
        if isinstance(dist, Mapping):
            keys = set(dist)
            if keys != {"start", "stop", "step"}:
                raise LabelConfigError(
                    "label config: distances_m as a mapping needs exactly start, stop, step"
                )
            grid = {k: dist[k] for k in ("start", "stop", "step")}
            grid = check_types(_Grid, grid, "label config.distances_m", LabelConfigError)
            d["distances_m"] = distance_grid(grid["start"], grid["stop"], grid["step"])
        return cls(**check_types(cls, d, "label config", LabelConfigError))

    @classmethod
    def from_json(cls, text: str) -> LabelConfig:
        return cls.from_dict(parse_json(text, "label config", LabelConfigError))

    @classmethod
    def load(cls, path: str | Path) -> LabelConfig:
        """Read a YAML (or .json) file holding a flat mapping of the fields; missing keys take defaults."""
        data = read_config_file(path, "label config", LabelConfigError)
        try:
            return cls.from_dict(data or {})
        except LabelConfigError as e:
            raise LabelConfigError(f"{path}: {e}") from None

    def with_overrides(self, **overrides: Any) -> LabelConfig:
        """A copy with the given fields replaced (None values are ignored), validated again."""
        changes = {k: v for k, v in overrides.items() if v is not None}
        try:
            return replace(self, **changes)
        except TypeError as e:
            raise LabelConfigError(f"label config: {e}") from None


def check_sources(value: Any) -> tuple[str, ...]:
    """Label source names: distinct, each one of LABEL_SOURCES (a comma-separated string
    is split); empty means every source the session has."""
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (tuple, list)) or not all(isinstance(v, str) for v in value):
        raise LabelConfigError(f"label config: sources must be a list of names, got {value!r}")
    unknown = [v for v in value if v not in LABEL_SOURCES]
    if unknown:
        raise LabelConfigError(
            f"label config: unknown label source {unknown[0]!r} (known: {', '.join(LABEL_SOURCES)})"
        )
    if len(set(value)) != len(value):
        raise LabelConfigError(f"label config: sources must be distinct: {list(value)}")
    return tuple(value)


def _check_camera_offset(value: Any) -> str | float:
    """ "auto", "spec" or a finite number of seconds in [-1, 1] (returned as float)."""
    if isinstance(value, str):
        if value in CAMERA_OFFSET_MODES:
            return value
    elif is_number(value) and math.isfinite(value) and abs(value) <= _MAX_CAMERA_OFFSET_S:
        return float(value)
    raise LabelConfigError(
        f"label config: camera_offset must be 'auto', 'spec' or seconds in [-1, 1], got {value!r}"
    )


def _num_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


@dataclass(frozen=True)
class CameraOffset:
    """The camera time offset the labels were computed with, and where it came from.

    applied_s: a frame stamped t was matched with the poses at t - applied_s (s).
    source: "estimate" (from the session's images), "spec" (the session's calibrated
        CameraSpec.time_offset_s), "config" (given), "sensor" (0: the frames were
        stamped at their exposure as the camera measured it), or "none" (labels made
        before the correction existed: nothing applied).
    estimate_s, correlation, std_s, yaw_scale: the session's estimate (offset in s,
        peak correlation, bootstrap standard deviation in s, image / odometry yaw);
        NaN when not estimated.
    reliable, reason: whether the estimate was trusted, and why not.
    """

    applied_s: float = 0.0
    source: str = "none"
    estimate_s: float = math.nan
    correlation: float = math.nan
    std_s: float = math.nan
    yaw_scale: float = math.nan
    reliable: bool = False
    reason: str = ""

    def __post_init__(self) -> None:
        if self.source not in CAMERA_OFFSET_SOURCES:
            raise LabelConfigError(
                f"camera offset: source must be one of {list(CAMERA_OFFSET_SOURCES)},"
                f" got {self.source!r}"
            )
        if not is_number(self.applied_s) or not math.isfinite(self.applied_s):
            raise LabelConfigError(
                f"camera offset: applied_s must be finite, got {self.applied_s!r}"
            )
        for name in ("estimate_s", "correlation", "std_s", "yaw_scale"):
            value = getattr(self, name)
            if value is None:
                value = math.nan
            if not is_number(value):
                raise LabelConfigError(f"camera offset: {name} must be a number, got {value!r}")
            object.__setattr__(self, name, float(value))
        object.__setattr__(self, "applied_s", float(self.applied_s))
        object.__setattr__(self, "reliable", bool(self.reliable))
        object.__setattr__(self, "reason", str(self.reason))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able mapping (NaN as null)."""
        return {
            "applied_s": self.applied_s,
            "source": self.source,
            "estimate_s": _num_or_none(self.estimate_s),
            "correlation": _num_or_none(self.correlation),
            "std_s": _num_or_none(self.std_s),
            "yaw_scale": _num_or_none(self.yaw_scale),
            "reliable": self.reliable,
            "reason": self.reason,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CameraOffset:
        """From `to_dict`'s mapping; unknown keys are an error, missing ones take defaults."""
        if not isinstance(d, Mapping):
            raise LabelConfigError(f"camera offset: expected a mapping, got {type(d).__name__}")
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise LabelConfigError(f"camera offset: unknown keys {unknown}")
        if "reliable" in d and not isinstance(d["reliable"], bool):
            raise LabelConfigError("camera offset: reliable must be true or false")
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> CameraOffset:
        return cls.from_dict(parse_json(text, "camera offset", LabelConfigError))

    def describe(self) -> str:
        """Short text for tables: "87.3 ms (estimate)"."""
        return f"{1e3 * self.applied_s:.1f} ms ({self.source})"


@dataclass(frozen=True)
class LabelGrid:
    """Labels of N camera frames for S sensors x D distances (the output of `compute_labels`).

    t_ns: (N,) int64 frame times. labels: (N, S, D) int8 in {-1 unknown, 0, 1}.
    readings: (N, S, D) int16 raw matched readings (-1 unknown). match_index: (N, D)
    int64 index of the matched proximity sample (-1 unknown); match_t_ns: (N, D) its
    time (-1 unknown); match_offset: (N, D, 3) float32 (dx_m, dy_m, dtheta_rad) of the
    matched pose in the frame's robot frame (NaN unknown). The match depends on the
    pose only, so it is shared by all sensors. source: (N, S, D) uint8 code of the
    label source of each cell (SOURCE_CODES, 0 unknown), None: proximity only ("ir").
    """

    t_ns: np.ndarray
    labels: np.ndarray
    readings: np.ndarray
    match_index: np.ndarray
    match_t_ns: np.ndarray
    match_offset: np.ndarray
    sensor_indices: np.ndarray
    distances_m: np.ndarray
    source: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return int(self.t_ns.shape[0])


@dataclass(frozen=True)
class LabelStats:
    """Coverage and positive rate of a label grid, overall and per (sensor, distance)."""

    frames: int
    frames_with_labels: int
    cells: int
    known_cells: int
    positive_cells: int
    coverage: np.ndarray  # (S, D) fraction of frames with a known label
    positive_rate: np.ndarray  # (S, D) fraction of known labels that are 1 (NaN if none)

    @property
    def known_fraction(self) -> float:
        return self.known_cells / self.cells if self.cells else 0.0

    @property
    def positive_fraction(self) -> float:
        """Positives among the known cells."""
        return self.positive_cells / self.known_cells if self.known_cells else 0.0


def label_stats(labels: np.ndarray) -> LabelStats:
    """Summary of an (N, S, D) label grid with -1 for unknown."""
    labels = np.asarray(labels)
    known = labels >= 0
    pos = labels == 1
    n_known = known.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(n_known > 0, pos.sum(axis=0) / np.maximum(n_known, 1), np.nan)
    n = labels.shape[0]
    return LabelStats(
        frames=int(n),
        frames_with_labels=int(known.reshape(n, -1).any(axis=1).sum()) if n else 0,
        cells=int(labels.size),
        known_cells=int(known.sum()),
        positive_cells=int(pos.sum()),
        coverage=n_known / n if n else np.zeros(labels.shape[1:]),
        positive_rate=rate,
    )
