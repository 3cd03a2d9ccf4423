"""Type and finiteness checks of the simulator's parameter dataclasses (from their annotations).

`check_fields(params, "drive")` raises SimError for any field that is not what its
annotation says: int fields take integers (not bool), float fields finite numbers,
bool fields booleans, `X | None` also None, `tuple[str, ...]` strings, and every number
inside another tuple field must be finite. Range checks stay in each class's `__post_init__`.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import fields
from typing import Any

from sim.errors import SimError


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_finite(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def _finite_items(v: Any) -> bool:
    if isinstance(v, (tuple, list)):
        return all(_finite_items(x) for x in v)
    return _is_finite(v)


def check_fields(obj: Any, what: str, error: type[Exception] = SimError) -> None:
    """Raise `error("WHAT.FIELD: must be ..., got VALUE")` for the first field that does not fit."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        optional = t.endswith("| None")
        base = t.removesuffix("| None").strip()
        if optional and value is None:
            continue
        if base == "int":
            ok, want = _is_int(value), "an integer"
        elif base == "float":
            ok, want = _is_finite(value), "a finite number"
        elif base == "bool":
            ok, want = isinstance(value, bool), "true or false"
        elif base == "tuple[str, ...]":
            ok = isinstance(value, (tuple, list)) and all(isinstance(x, str) for x in value)
            want = "a list of strings"
        elif base.startswith("tuple["):
            ok, want = _finite_items(value), "a list of finite numbers"
        else:
            continue
        if not ok:
            none = " or null" if optional else ""
            raise error(f"{what}.{f.name}: must be {want}{none}, got {value!r}")
