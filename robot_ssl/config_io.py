"""Shared plumbing for config dataclasses: plain dicts, key checks, YAML/JSON files."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import yaml


def plain_dict(obj: Any) -> dict[str, Any]:
    """`asdict` with top-level tuples as lists: safe for JSON and `weights_only` checkpoints."""
    d = asdict(obj)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def checked_fields(cls: type, d: Any, what: str, error: type[Exception]) -> dict[str, Any]:
    """A copy of mapping `d` after checking that every key is a field of dataclass `cls`."""
    if not isinstance(d, Mapping):
        raise error(f"{what}: expected a mapping, got {type(d).__name__}")
    unknown = sorted(set(d) - {f.name for f in fields(cls)})
    if unknown:
        raise error(f"{what}: unknown keys {unknown}")
    return dict(d)


def read_config_file(path: str | Path, what: str, error: type[Exception]) -> Any:
    """Parse a YAML file (JSON when the suffix is .json) with `safe_load`; one-line errors."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise error(f"cannot read {what} {path}: {e.strerror}") from None
    try:
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise error(f"{path}: not valid {path.suffix.lstrip('.') or 'YAML'}: {e}") from None
