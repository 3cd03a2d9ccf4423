"""Summary of a session file (what `robot-ssl info` prints): durations, rates, gaps, specs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robot_ssl.io.session import SessionReader

DATA_STREAMS = ("camera", "proximity", "wheels", "odometry")


@dataclass(frozen=True)
class StreamStats:
    count: int
    rate_hz: float
    max_gap_s: float


@dataclass
class SessionInfo:
    path: str
    duration_s: float
    size_bytes: int
    recovered: bool
    start_time_utc: str
    streams: dict[str, StreamStats]
    events: list[dict[str, Any]]
    robot: dict[str, Any]
    camera: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    start_ns: int | None = None  # first timestamp of any stream: event times count from it
    # recovered files: why, one-line summary, per stream {intact, stored, note}
    recovery: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def stream_stats(t_ns: np.ndarray) -> StreamStats:
    """Count, mean rate over the stream's own span, and the largest gap between samples."""
    n = int(t_ns.size)
    if n < 2:
        return StreamStats(n, 0.0, 0.0)
    span_s = (int(t_ns[-1]) - int(t_ns[0])) / 1e9
    rate = (n - 1) / span_s if span_s > 0 else 0.0
    return StreamStats(n, rate, float(np.diff(t_ns).max()) / 1e9)


def session_info(reader: SessionReader) -> SessionInfo:
    streams = {}
    for name in [*DATA_STREAMS, "acc", "truth", "frame_truth", "contact_truth", "predictions"]:
        if name in reader.streams:
            streams[name] = stream_stats(reader._read(name, "t_ns"))
    start = reader.start_ns
    events = [
        {**asdict(e), "t_s": (e.t_ns - start) / 1e9 if start is not None else 0.0}
        for e in reader.events()
    ]
    recovery = None
    if reader.recovered:
        recovery = {
            "reason": reader.recovery_reason,
            "summary": reader.recovery_summary,
            "streams": {s: asdict(r) for s, r in reader.stream_recovery.items()},
        }
    return SessionInfo(
        path=str(reader.path),
        duration_s=reader.duration_s,
        size_bytes=reader.size_bytes,
        recovered=reader.recovered,
        start_time_utc=reader.start_time_utc,
        streams=streams,
        events=events,
        robot=reader.robot.to_dict(),
        camera=reader.camera.to_dict(),
        metadata=reader.metadata,
        start_ns=start,
        recovery=recovery,
    )


def format_info(info: SessionInfo) -> str:
    """Human-readable multi-line summary."""
    cam = info.camera
    lines = [
        f"session   {info.path}",
        f"started   {info.start_time_utc}",
        f"duration  {info.duration_s:.2f} s",
        f"size      {info.size_bytes / 1e6:.2f} MB",
        f"robot     {info.robot['name']}  ({_sensor_kinds(info.robot['prox_sensors'])},"
        f" {info.robot['speed_m_per_unit'] * 1000:.3f} mm/s per unit)",
        f"camera    {cam['width']}x{cam['height']} @ {cam['fps']:g} fps,"
        f" mount z={cam['z_m']:.3f} m pitch={np.degrees(cam['pitch_rad']):.1f} deg",
    ]
    if info.recovery is not None:
        lines.append(f"recovered {info.recovery['summary']}")
        for name, r in info.recovery["streams"].items():
            if r["note"]:
                lines.append(f"  {name}: {r['note']}")
    if info.metadata:
        lines.append("metadata  " + ", ".join(f"{k}={v}" for k, v in info.metadata.items()))
    lines.append(f"{'stream':<14}{'count':>7}{'rate Hz':>10}{'max gap s':>11}")
    for name, s in info.streams.items():
        lines.append(f"{name:<14}{s.count:>7}{s.rate_hz:>10.2f}{s.max_gap_s:>11.3f}")
    lines.append(f"events    {len(info.events)}  (times from the session start)")
    for e in info.events[:20]:
        lines.append(f"  {e['t_s']:+11.3f} s  {e['kind']:<16} {e['message']}")
    if len(info.events) > 20:
        lines.append(f"  ... {len(info.events) - 20} more")
    return "\n".join(lines)


def recovered_notes(paths: Iterable[str | Path]) -> list[str]:
    """ "PATH: recovered session: SUMMARY" for each recovered (damaged, unfinished) session
    among `paths` (files, or folders searched for *.h5 as the learning verbs do), with the
    summary `info` prints after "recovered": why, and how much of each stream is intact.
    `label`, `train` and `eval` print these so that a result built on part of a session
    says so. Files that cannot be opened are left to the verb, which reports them."""
    from robot_ssl.core.errors import RobotSSLError
    from robot_ssl.io.labels_file import is_labels_file

    files: list[Path] = []
    for p in map(Path, paths):
        files += sorted(p.rglob("*.h5")) if p.is_dir() else [p] if p.is_file() else []
    notes = []
    for f in dict.fromkeys(files):
        try:
            if is_labels_file(f):
                continue
            with SessionReader(f) as reader:
                if reader.recovered:
                    notes.append(f"{f}: recovered session: {reader.recovery_summary}")
        except (RobotSSLError, OSError):
            continue
    return notes


def print_recovered_notes(paths: Iterable[str | Path], verb: str) -> None:
    """One line on stderr per recovered (damaged) session among `paths`, as `robot-ssl
    VERB: NOTE`: what is labelled, trained or evaluated on is then only its intact part."""
    import sys

    for note in recovered_notes(paths):
        print(f"robot-ssl {verb}: {note}", file=sys.stderr)


def _sensor_kinds(sensors: list[dict[str, Any]]) -> str:
    """'7 proximity sensors: 7 ir' / '12 proximity sensors: 11 range, 1 contact' (kinds in
    order of first appearance; sensors of sessions before kinds count as ir)."""
    kinds = [str(s.get("kind", "ir")) for s in sensors]
    counts = {k: kinds.count(k) for k in dict.fromkeys(kinds)}
    return f"{len(kinds)} proximity sensors: " + ", ".join(f"{n} {k}" for k, n in counts.items())
