"""Rerun recordings read back with the SDK's own reader, for the replay and live view tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def rerun_rows(path: Path) -> dict[str, int]:
    """Rows per entity of a Rerun recording, read back with the SDK's own reader."""
    from rerun.chunk import RrdReader

    rows: dict[str, int] = {}
    for chunk in RrdReader(path).store().stream():
        rows[chunk.entity_path] = rows.get(chunk.entity_path, 0) + chunk.num_rows
    return rows


def rerun_column(path: Path, entity: str, column: str) -> list:
    """One component's values, row by row, of an entity of a Rerun recording."""
    from rerun.chunk import RrdReader

    values = []
    for chunk in RrdReader(path).store().stream():
        if chunk.entity_path == entity:
            values += chunk.to_record_batch().column(column).to_pylist()
    return values


def rerun_scalars(path: Path, entity: str) -> np.ndarray:
    return np.array([v[0] for v in rerun_column(path, entity, "Scalars:scalars")])
