"""Every numeric config field has sane bounds, declared once on the field and enforced
wherever a value comes from: a library call, a file (YAML spec, label config, checkpoint),
a command-line option.

The property tests enumerate every field of every verb's config dataclass (recursing into
the nested ones) and feed each NaN, infinities, negatives, huge values (1e9, 1e12, 10**10)
and wrong types: the config is either built with a value inside the field's bounds, or the
project's error (a RobotSSLError) comes back with a one-line message. Nothing else may be
raised, and nothing may hang. The CLI tests run the real program: the cases a new user met
exit 2 at once, with one line and no traceback.
"""

from __future__ import annotations

import dataclasses
import math
import time
import typing
from typing import Any

import pytest
from budget import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robot_ssl.core.config import (
    check_bounds,
    checked_fields,
    field_bounds,
    in_range,
    number_kind,
)
from robot_ssl.core.errors import ConfigError, RobotSSLError, SpecError
from robot_ssl.core.label_grid import MAX_GRID_CELLS, LabelConfig, LabelConfigError
from robot_ssl.core.spec import CameraSpec, RobotSpec
from robot_ssl.inference.model_config import ModelConfig, ModelError
from robot_ssl.learning.online import LearnConfig
from robot_ssl.learning.pretrain_config import PretrainConfig
from robot_ssl.learning.train import TrainConfig
from robot_ssl.live.run import RunConfig

ROOTS = (
    TrainConfig,
    PretrainConfig,
    LabelConfig,
    RunConfig,
    LearnConfig,
    ModelConfig,
    RobotSpec,
    CameraSpec,
)  # train, pretrain, label, run (live + avoid), learn, checkpoints' model, spec files


@dataclasses.dataclass(frozen=True)
class Site:
    """One field reached from a root config: `path` of (field name, tuple index or None)
    steps; `base` the default instance of the class that holds it."""

    root: type
    path: tuple[tuple[str, int | None], ...]
    cls: type
    base: Any

    @property
    def name(self) -> str:
        return self.path[-1][0]

    def __str__(self) -> str:
        steps = [f"{n}[{i}]" if i is not None else n for n, i in self.path]
        return f"{self.root.__name__}.{'.'.join(steps)}"


def _nested(tp: Any) -> tuple[type | None, bool]:
    """(dataclass, many) when annotation `tp` is a dataclass or a tuple of them."""
    if typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        return (args[0], True) if args and dataclasses.is_dataclass(args[0]) else (None, False)
    return (tp, False) if isinstance(tp, type) and dataclasses.is_dataclass(tp) else (None, False)


def _sites(root: type, cls: type, base: Any, path: tuple = ()) -> list[Site]:
    """Every leaf field under `cls` (an instance `base`), recursing into nested configs."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        inner, many = _nested(hints[f.name])
        value = getattr(base, f.name)
        if inner is not None:
            child = value[0] if many else value
            out += _sites(root, inner, child, (*path, (f.name, 0 if many else None)))
        else:
            out.append(Site(root, (*path, (f.name, None)), cls, base))
    return out


SITES = [s for root in ROOTS for s in _sites(root, root, root())]


def _numeric(cls: type, name: str) -> bool:
    """An int or float field (optional or not), or a tuple of them."""
    tp = typing.get_type_hints(cls)[name]
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, type(int | None)) and len(args) == 1:
        tp = args[0]
    if typing.get_origin(tp) is tuple:
        tp = typing.get_args(tp)[0]
    return tp in (int, float)


NUMERIC = [s for s in SITES if _numeric(s.cls, s.name)]

BAD = [math.nan, math.inf, -math.inf, -1, -1.5, -1e-9, 0, 0.5, 1e9, 1e12, 10**10, -(10**10)]
BAD += [2**64, 1e308, "x", "1", "", [], [1], [math.nan], {}, {"a": 1}, None, True, False]
VALUES = st.one_of(
    st.sampled_from(BAD),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.lists(st.sampled_from(BAD) | st.floats(-1e3, 1e3) | st.integers(-100, 10**6), max_size=4),
    st.text(max_size=5),
)
PROPERTY = settings(
    max_examples=examples(30),
    deadline=2000,  # ms: a 10**10-bin grid or a 1e9-pixel model would blow through it
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)


def _value_at(obj: Any, path: tuple) -> Any:
    for name, index in path:
        obj = getattr(obj, name)
        if index is not None:
            obj = obj[index]
    return obj


def _assert_in_bounds(site: Site, value: Any) -> None:
    """A built config holds a value inside the field's declared bounds."""
    if not _numeric(site.cls, site.name):
        return
    bounds = field_bounds(site.cls, site.name)
    integer, optional, many = number_kind(site.cls, site.name)
    if value is None:
        assert optional, f"{site} is None"
        return
    for item in value if many else (value,):
        assert in_range(item, integer=integer, **bounds.kwargs()), f"{site} = {item!r}"


def _assert_one_line_error(site: Site, error: BaseException) -> None:
    assert isinstance(error, RobotSSLError), f"{site}: {type(error).__name__}: {error}"
    text = str(error)
    assert text and "\n" not in text, f"{site}: {text!r}"


def _build_directly(site: Site, value: Any) -> Any:
    """The root config, built by library calls with `value` in the field."""

    def rebuild(obj: Any, path: tuple) -> Any:
        (name, index), rest = path[0], path[1:]
        if not rest:
            return dataclasses.replace(obj, **{name: value})
        child = getattr(obj, name)
        if index is None:
            return dataclasses.replace(obj, **{name: rebuild(child, rest)})
        items = list(child)
        items[index] = rebuild(items[index], rest)
        return dataclasses.replace(obj, **{name: tuple(items)})

    return rebuild(site.root(), site.path)


def _mapping(obj: Any) -> Any:
    """The plain mapping a file would hold for config `obj` (JSON types)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: _mapping(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (tuple, list)):
        return [_mapping(x) for x in obj]
    return obj


def _read_as_a_file_would(site: Site, value: Any) -> Any:
    """The root config read from a mapping (a spec or label file, a checkpoint) that
    sets `value` in the field and leaves out every other key, as a short file does
    (a list of mappings, the spec's sensors, keeps its other items and keys)."""

    def nest(obj: Any, path: tuple) -> dict:
        (name, index), rest = path[0], path[1:]
        if not rest:
            return {name: value}
        child = getattr(obj, name)
        if index is None:
            return {name: nest(child, rest)}
        items = _mapping(child)
        items[index] = {**items[index], **nest(child[index], rest)}
        return {name: items}

    d = nest(site.root(), site.path)
    if hasattr(site.root, "from_dict"):
        return site.root.from_dict(d)
    return site.root(**checked_fields(site.root, d, site.root.__name__, ConfigError))


def test_the_roots_reach_every_config_class():
    classes = {s.cls.__name__ for s in SITES}
    wanted = {"TrainConfig", "AugmentConfig", "PretrainConfig", "LabelConfig", "LiveConfig"}
    wanted |= {"AvoidConfig", "LearnConfig", "ReplayConfig", "ModelConfig", "RobotSpec"}
    wanted |= {"ProxSensor", "CameraSpec"}
    assert wanted <= classes, wanted - classes
    assert len(NUMERIC) > 100


@pytest.mark.parametrize("site", NUMERIC, ids=str)
def test_every_numeric_field_declares_finite_bounds(site):
    bounds = field_bounds(site.cls, site.name)
    assert bounds is not None, f"{site}: declare it with bounded(default, lo, hi)"
    assert bounds.min is not None and bounds.max is not None, f"{site}: {bounds}"
    assert math.isfinite(bounds.min) and math.isfinite(bounds.max) and bounds.min < bounds.max
    _assert_in_bounds(site, getattr(site.base, site.name))  # the default fits


@pytest.mark.parametrize("site", NUMERIC, ids=str)
@PROPERTY
@given(value=VALUES)
def test_a_library_call_gets_a_value_in_bounds_or_a_one_line_error(site, value):
    try:
        cfg = _build_directly(site, value)
    except Exception as e:  # the property: only a RobotSSLError, in one line
        _assert_one_line_error(site, e)
        return
    _assert_in_bounds(site, _value_at(cfg, site.path))


@pytest.mark.parametrize("site", SITES, ids=str)
@PROPERTY
@given(value=VALUES)
def test_a_file_gets_a_value_in_bounds_or_a_one_line_error(site, value):
    try:
        cfg = _read_as_a_file_would(site, value)
    except Exception as e:  # the property: only a RobotSSLError, in one line
        _assert_one_line_error(site, e)
        return
    _assert_in_bounds(site, _value_at(cfg, site.path))


def test_the_message_names_the_field_and_its_range():
    with pytest.raises(SpecError) as e:
        CameraSpec(width=100000)
    assert str(e.value) == "camera.width: must be an integer in 1..8192, got 100000"
    with pytest.raises(ConfigError) as e:
        LearnConfig(threads=10**9)
    assert str(e.value) == "learn config.threads: must be an integer in 1..256, got 1000000000"
    with pytest.raises(ModelError, match=r"model config\.input_width: must be an integer in 1\.\."):
        ModelConfig.from_dict({"input_width": 10**9})
    with pytest.raises(LabelConfigError, match=r"horizon_s: must be a finite number in \(0, "):
        LabelConfig(horizon_s=1e12)


def test_check_bounds_reads_the_fields_own_bounds():
    from robot_ssl.core.config import bounded

    @dataclasses.dataclass
    class Cfg:
        n: int = bounded(3, 1, 5)
        x: float | None = bounded(None, 0, 1, min_inclusive=False)
        xs: tuple[float, ...] = bounded((0.5,), 0, 1)
        free: str = "anything"

    check_bounds(Cfg(), "cfg", ValueError)
    for kwargs, message in [
        ({"n": 6}, "cfg.n: must be an integer in 1..5, got 6"),
        ({"n": 2.0}, "cfg.n: must be an integer in 1..5, got 2.0"),
        ({"x": 0}, "cfg.x: must be a finite number in (0, 1] or null, got 0"),
        ({"x": math.nan}, "cfg.x: must be a finite number in (0, 1] or null, got nan"),
        ({"xs": (0.5, 2)}, "cfg.xs[1]: must be a finite number in [0, 1], got 2"),
        ({"xs": "ab"}, "cfg.xs: must be a list, got 'ab'"),
    ]:
        with pytest.raises(ValueError) as e:
            check_bounds(Cfg(**kwargs), "cfg", ValueError)
        assert str(e.value) == message


def test_label_grid_size_is_capped_fast():
    t0 = time.monotonic()
    with pytest.raises(LabelConfigError, match=f"over {MAX_GRID_CELLS}"):
        LabelConfig.from_dict({"distances_m": {"start": 0, "stop": 10, "step": 1e-9}})
    with pytest.raises(LabelConfigError, match=f"over {MAX_GRID_CELLS}"):
        LabelConfig(
            sensor_indices=tuple(range(64)), distances_m=tuple(0.001 * i for i in range(65))
        )
    with pytest.raises(ModelError, match=f"over {MAX_GRID_CELLS}"):
        ModelConfig(num_sensors=64, num_distances=4096)
    assert time.monotonic() - t0 < 1.0
    big = LabelConfig(
        sensor_indices=tuple(range(64)), distances_m=tuple(0.001 * i for i in range(64))
    )
    assert big.num_sensors * big.num_distances == MAX_GRID_CELLS


def test_flags_take_their_bounds_from_the_field():
    import argparse

    from robot_ssl.cli import argtypes

    parse = argtypes.for_field(LabelConfig, "horizon_s")
    assert parse("3600") == 3600.0
    with pytest.raises(argparse.ArgumentTypeError, match=r"must be a finite number in \(0, 3600\]"):
        parse("3601")
    parse = argtypes.for_field(LabelConfig, "threshold")
    assert parse("7") == 7
    with pytest.raises(argparse.ArgumentTypeError, match=r"must be an integer in 0\.\.32767"):
        parse("1e9")
