"""Shared plumbing for config dataclasses: plain dicts, key and type checks, YAML/JSON files.

`checked_fields` checks a mapping read from a file (or a session, or a checkpoint)
against a dataclass: unknown keys and values of the wrong type (from the field
annotations) are errors naming the key path. `check_number` is the range check the
dataclasses' `__post_init__` and the command-line types (`robot_ssl.cli.argtypes`)
share, so that both say the same thing ("must be a finite number > 0, got nan").

Numeric config fields declare their range once, on the field: `x: float = bounded(0.5, 0, 1)`.
`check_bounds` (called first in each `__post_init__`) enforces every such range, so a
value from the command line, a YAML file, a checkpoint or a library call meets the same
check, and `robot_ssl.cli.argtypes.for_field` builds a flag's type from the same bounds.
The `MAX_*` limits below are the shared upper bounds: large enough for any real robot,
small enough that no typo (1e9 threads, a 100000x100000 camera) runs out of memory or
sleeps for years.
"""

from __future__ import annotations

import functools
import json
import math
import numbers
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Union

import yaml


def plain_dict(obj: Any) -> dict[str, Any]:
    """`asdict` with top-level tuples as lists: safe for JSON and `weights_only` checkpoints."""
    d = asdict(obj)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def checked_fields(
    cls: type, d: Any, what: str, error: type[Exception], *, types: bool = True
) -> dict[str, Any]:
    """A copy of mapping `d` after checking that every key is a field of dataclass `cls`
    and (unless `types` is false) that every value fits the field's annotation.

    Values come back converted: lists to tuples for tuple fields, mappings to
    dataclass instances for dataclass fields, integers to float for float fields.
    """
    if not isinstance(d, Mapping):
        raise error(f"{what}: expected a mapping, got {type(d).__name__}")
    unknown = sorted(set(d) - {f.name for f in fields(cls)}, key=str)
    if unknown:
        raise error(f"{what}: unknown keys {unknown}")
    missing = [
        f.name
        for f in fields(cls)
        if f.init and f.default is MISSING and f.default_factory is MISSING and f.name not in d
    ]
    if missing:
        raise error(f"{what}: missing keys {missing}")
    d = dict(d)
    return check_types(cls, d, what, error) if types else d


def check_types(cls: type, d: Mapping[str, Any], what: str, error: type[Exception]) -> dict:
    """`d` with each value checked against (and converted to) the annotation of field `cls.key`.

    int fields take integers only (not bool, not 320.5), float fields finite
    integers or floats, bool fields booleans, str fields strings; `X | None`,
    `tuple[X, ...]`, `tuple[X, Y]`, `list[X]`, `dict[K, V]` and nested dataclasses
    (from mappings, checked the same way) are followed; other annotations pass.
    """
    hints = _field_types(cls)
    return {k: _convert(v, hints.get(k, Any), f"{what}.{k}", error) for k, v in d.items()}


def check_field_types(obj: Any, what: str, error: type[Exception]) -> None:
    """`check_types` on the current field values of dataclass instance `obj` (for
    `__post_init__`): int fields hold integers, float fields finite numbers, and so on."""
    check_types(type(obj), {f.name: getattr(obj, f.name) for f in fields(obj)}, what, error)


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _describe(tp: Any) -> str:
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a finite number"
    if tp is str:
        return "a string"
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _describe(a) for a in typing.get_args(tp))
    if origin in (tuple, list):
        return "a list"
    if origin in (dict, Mapping) or (isinstance(tp, type) and is_dataclass(tp)):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _fail(error: type[Exception], path: str, tp: Any, value: Any) -> Exception:
    return error(f"{path}: must be {_describe(tp)}, got {_short(value)}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _convert(value: Any, tp: Any, path: str, error: type[Exception]) -> Any:
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _fail(error, path, tp, value)
    if tp is int:
        if is_integer(value):
            return int(value)
        raise _fail(error, path, tp, value)
    if tp is float:
        if is_number(value) and math.isfinite(value):
            return float(value)
        raise _fail(error, path, tp, value)
    if tp is str:
        if isinstance(value, str):
            return value
        raise _fail(error, path, tp, value)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1 and options[0] not in (bool, int, float, str):
            if value is None:
                raise _fail(error, path, tp, value)
            return _convert(value, options[0], path, error)
        for option in options:
            try:
                return _convert(value, option, path, error)
            except error:
                pass
        raise _fail(error, path, tp, value)
    if origin in (tuple, list):
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple)):
            raise _fail(error, path, tp, value)
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise error(f"{path}: must be a list of {len(args)} items, got {_short(value)}")
            items = [
                _convert(v, a, f"{path}[{i}]", error) for i, (v, a) in enumerate(zip(value, args))
            ]
        else:
            item = args[0] if args else Any
            items = [_convert(v, item, f"{path}[{i}]", error) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise _fail(error, path, tp, value)
        kt, vt = args if len(args) == 2 else (Any, Any)
        return {
            _convert(k, kt, f"{path} key", error): _convert(v, vt, f"{path}.{k}", error)
            for k, v in value.items()
        }
    if isinstance(tp, type) and is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return tp(**checked_fields(tp, value, path, error))
    return value


# -- numbers ---------------------------------------------------------------------------------


def is_integer(value: Any) -> bool:
    """An integer (Python or numpy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A real number (Python or numpy int or float, possibly nan or inf), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def describe_range(
    *,
    integer: bool = False,
    min: float | None = None,
    max: float | None = None,
    min_inclusive: bool = True,
    max_inclusive: bool = True,
) -> str:
    """What `check_number` accepts, in words: "a finite number > 0", "an integer in 1..100"."""
    kind = "an integer" if integer else "a finite number"
    if min is not None and max is not None:
        if integer and min_inclusive and max_inclusive:
            return f"{kind} in {_fmt(min)}..{_fmt(max)}"
        lo = "[" if min_inclusive else "("
        hi = "]" if max_inclusive else ")"
        return f"{kind} in {lo}{_fmt(min)}, {_fmt(max)}{hi}"
    if min is not None:
        return f"{kind} {'>=' if min_inclusive else '>'} {_fmt(min)}"
    if max is not None:
        return f"{kind} {'<=' if max_inclusive else '<'} {_fmt(max)}"
    return kind


def _fmt(x: float) -> str:
    if float(x).is_integer() and abs(x) < 1e15:
        return str(int(x))
    return f"{x:g}"


def in_range(
    value: Any,
    *,
    integer: bool = False,
    min: float | None = None,
    max: float | None = None,
    min_inclusive: bool = True,
    max_inclusive: bool = True,
) -> bool:
    """Whether `value` is a finite number (an integer with `integer`) within the bounds."""
    if not (is_integer(value) if integer else is_number(value) and math.isfinite(value)):
        return False
    if min is not None and not (value >= min if min_inclusive else value > min):
        return False
    return max is None or (value <= max if max_inclusive else value < max)


def check_number(
    value: Any,
    name: str,
    error: type[Exception],
    *,
    integer: bool = False,
    optional: bool = False,
    min: float | None = None,
    max: float | None = None,
    min_inclusive: bool = True,
    max_inclusive: bool = True,
) -> Any:
    """`value` if it is a finite number (an integer with `integer`; None too with
    `optional`) within the bounds, else `error("NAME: must be ..., got VALUE")`."""
    if value is None and optional:
        return None
    bounds = dict(min=min, max=max, min_inclusive=min_inclusive, max_inclusive=max_inclusive)
    if in_range(value, integer=integer, **bounds):
        return value
    what = describe_range(integer=integer, **bounds)
    raise error(f"{name}: must be {what}{' or null' if optional else ''}, got {_short(value)}")


def check_numbers(obj: Any, what: str, error: type[Exception], rules: Mapping[str, dict]) -> None:
    """`check_number` on attribute NAME of `obj` (named WHAT.NAME) for each NAME: kwargs in `rules`."""
    for name, kwargs in rules.items():
        check_number(getattr(obj, name), f"{what}.{name}", error, **kwargs)


def parse_json(text: str, what: str, error: type[Exception]) -> Any:
    """`text` parsed as JSON; `error` in one line ("WHAT: not valid JSON: ...") otherwise."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise error(f"{what}: not valid JSON: {e}") from None


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
        reason = " ".join(str(e).split())  # YAML's messages span lines: one line here
        raise error(f"{path}: not valid {path.suffix.lstrip('.') or 'YAML'}: {reason}") from None


# -- bounds declared on the fields ------------------------------------------------------------

MAX_IMAGE_PX = 8192
"""Camera image widths and heights (pixels): beyond 8K, a typo."""

MAX_INPUT_PX = 4096
"""Network input widths and heights (pixels)."""

MAX_THREADS = 256
"""Threads, processes and workers."""

MAX_BATCH = 65536
"""Batch sizes (frames)."""

MAX_EPOCHS = 100_000
"""Epochs and steps counted in epochs."""

MAX_STEPS = 10_000_000
"""Optimiser steps (warm-up and the like)."""

MAX_BOOTSTRAP = 100_000
"""Bootstrap replicates (eval)."""

MAX_SEED = 2**32 - 1
"""Random seeds (numpy's SeedSequence takes non-negative integers)."""

MAX_DURATION_S = 24 * 3600.0
"""Time constants and durations (s): up to a day."""

MAX_FRAMES = 10_000_000
"""Frame counts (buffers, queues)."""

_BOUNDS_KEY = "bounds"


@dataclass(frozen=True)
class Bounds:
    """The range of a numeric config field, as `check_number` takes it (None: open)."""

    min: float | None = None
    max: float | None = None
    min_inclusive: bool = True
    max_inclusive: bool = True

    def kwargs(self) -> dict[str, Any]:
        """`check_number`'s and `describe_range`'s range keywords."""
        return dict(
            min=self.min,
            max=self.max,
            min_inclusive=self.min_inclusive,
            max_inclusive=self.max_inclusive,
        )


def bounded(
    default: Any = MISSING,
    min: float | None = None,
    max: float | None = None,
    *,
    min_inclusive: bool = True,
    max_inclusive: bool = True,
    default_factory: Any = MISSING,
) -> Any:
    """A dataclass field whose value (each item, for a tuple field) must be a finite
    number in the range; `check_bounds` checks it, integer or not and `None` allowed
    or not as the field's annotation says."""
    bounds = Bounds(min, max, min_inclusive, max_inclusive)
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata={_BOUNDS_KEY: bounds})
    return field(default=default, metadata={_BOUNDS_KEY: bounds})


def field_bounds(cls: type, name: str) -> Bounds | None:
    """The bounds declared on field `name` of dataclass `cls` (None: none declared)."""
    for f in fields(cls):
        if f.name == name:
            return f.metadata.get(_BOUNDS_KEY)
    raise KeyError(f"{cls.__name__} has no field {name!r}")


def number_kind(cls: type, name: str) -> tuple[bool, bool, bool]:
    """(integer, optional, many) of numeric field `cls.name` from its annotation:
    `int`, `float`, `X | None`, `tuple[X, ...]` (many: each item is a number)."""
    tp = _field_types(cls)[name]
    args = typing.get_args(tp)
    optional = typing.get_origin(tp) in (Union, types.UnionType) and type(None) in args
    if optional:
        tp = next(a for a in args if a is not type(None))
    many = typing.get_origin(tp) is tuple
    if many:
        tp = typing.get_args(tp)[0]
    return tp is int, optional, many


def check_bounds(obj: Any, what: str, error: type[Exception]) -> None:
    """`check_number` on every field of dataclass instance `obj` declared with `bounded`,
    named WHAT.FIELD (WHAT.FIELD[i] for tuple items): one line, "must be ..., got ..."."""
    for f in fields(obj):
        bounds = f.metadata.get(_BOUNDS_KEY)
        if bounds is None:
            continue
        integer, optional, many = number_kind(type(obj), f.name)
        value, name = getattr(obj, f.name), f"{what}.{f.name}"
        if many and not (optional and value is None):
            if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (tuple, list)):
                raise error(f"{name}: must be a list, got {_short(value)}")
            for i, item in enumerate(value):
                check_number(item, f"{name}[{i}]", error, integer=integer, **bounds.kwargs())
        else:
            check_number(value, name, error, integer=integer, optional=optional, **bounds.kwargs())
