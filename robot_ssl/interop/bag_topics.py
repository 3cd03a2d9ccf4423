"""`robot-ssl import --topics map.yaml`: the topics of a robot's bags, written once.

The map's keys are the import's options (`camera`, `range`, `scan`, `bumper`, `odom`,
`odom_tf`, `cmd_vel`, `proximity`, `stamps`, `spec`, `base_frame`; `-` or `_`), e.g.

    camera: /camera/image_raw/compressed
    scan: /scan
    bumper: /bumper
    odom: /odom
    cmd_vel: /cmd_vel

A list key (`range`, `bumper`) takes one topic or a list. An option given on the command
line (a value other than its default) wins over the map.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["LIST_KEYS", "MAP_KEYS", "load_topic_map"]

MAP_KEYS = (
    "camera",
    "range",
    "scan",
    "bumper",
    "odom",
    "odom_tf",
    "cmd_vel",
    "proximity",
    "stamps",
    "spec",
    "base_frame",
)
LIST_KEYS = ("range", "bumper")


def load_topic_map(path: str, error: type[Exception]) -> dict[str, Any]:
    """The map at `path` as {field: value}; `error` (one line) for an unreadable file,
    a mapping that is not one, an unknown key or a value of the wrong type."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise error(f"--topics {path}: cannot read it ({e.__class__.__name__}: {e})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise error(f"--topics {path}: must be a mapping of option: topic")
    out: dict[str, Any] = {}
    for key, value in data.items():
        field = str(key).replace("-", "_")
        if field not in MAP_KEYS:
            raise error(f"--topics {path}: unknown key {key!r} (known: {', '.join(MAP_KEYS)})")
        items = value if isinstance(value, list) and field in LIST_KEYS else [value]
        if not all(isinstance(v, str) for v in items):
            raise error(f"--topics {path}: {key} must be a topic name (a string), got {value!r}")
        out[field] = tuple(items) if field in LIST_KEYS else items[0]
    return out
