"""One command-line option per config field, generated from the verb's config dataclass.

A verb declares its config dataclass and, for the fields the README spells otherwise,
a `Flag` (aliases such as `--out` for `out_dir`, a negative spelling such as `--quiet`
for `progress`, a metavar, a help line). `add_config_options` then adds exactly one
argparse action per field, nested dataclasses as `--nested.field-name`, so a field has
one option (its generated `--field-name` and its aliases) and a second option for the
same field is impossible: argparse refuses two actions with one option string, and
`config_from_args` builds the config from the fields given, on top of the dataclass's
defaults (or a base the verb loads, such as `label --config FILE`). Values are checked
by the dataclass itself (`__post_init__`, bounds declared once on the fields with
`robot_ssl.core.config.bounded`); a flag's type reads the same bounds, so a bad value
is one line before anything runs. `VERB --config-help` lists every field's option.

Types: bool fields get `--name` / `--no-name`; int and float fields a number within
the field's bounds; `tuple[X, ...]` one or more items (an item may hold several,
comma-separated, where the verb says so); `X | None` fields may name a spelling that
sets None (`--no-cache`); `dict` fields `KEY=VALUE` items (YAML values) merged.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

from robot_ssl.core.errors import RobotSSLError

__all__ = [
    "ConfigFieldError",
    "Flag",
    "add_config_help",
    "add_config_options",
    "config_from_args",
    "given_fields",
]

_DEST = "cfg:"  # namespace attributes of config fields: "cfg:augment.noise_std"


class ConfigFieldError(RobotSSLError):
    """A config field given on the command line is unknown or has a bad value."""


@dataclass(frozen=True)
class Flag:
    """How one config field is spelled on the command line beyond `--field-name`.

    `aliases`: more spellings of the same option (the README's `--out`, `--threads`);
    `off`: spellings that set the field False (bool) or None (`X | None`);
    `name`: replaces the generated `--field-name` (None: keep it); `positional`: the
    field is the verb's positional argument; `parse`: turns one item of text into a
    value (for a tuple field, a tuple of items); `alias_parse`: a parser per alias
    (`--camera-offset-ms` reads milliseconds into the seconds field); `choices`:
    the allowed strings, listed in the help; `flatten`: a nested dataclass whose
    fields are spelled without the `nested.` prefix; `const`: the value of the option
    given without one (`--view` alone: port 9090).
    """

    aliases: tuple[str, ...] = ()
    off: tuple[str, ...] = ()
    name: str | None = None
    positional: bool = False
    required: bool = False
    metavar: str | None = None
    help: str | None = None
    choices: tuple[str, ...] | None = None
    parse: Callable[[str], Any] | None = None
    alias_parse: Mapping[str, Callable[[str], Any]] = dataclasses.field(default_factory=dict)
    flatten: bool = False
    hidden: bool = False
    const: Any = None


# -- the generated options ----------------------------------------------------------------


def add_config_options(
    parser: argparse.ArgumentParser,
    cls: type,
    flags: Mapping[str, Flag] | None = None,
    *,
    exclusive: Sequence[tuple[str, ...]] = (),
    prog: str = "",
    namespace: str = "cfg",
) -> None:
    """Add one option per field of dataclass `cls` (recursively) to `parser`.

    `flags` maps a field's dotted path ("augment.hflip") to its `Flag`; `exclusive`
    lists groups of paths that may not be given together. Also adds `--config-help`,
    once: a second dataclass on the same parser (the device options beside a verb's
    config) takes its own `namespace`, read back by `given_fields(args, namespace)`.
    """
    flags = dict(flags or {})
    groups: dict[str, Any] = {}
    for group in exclusive:
        g = parser.add_mutually_exclusive_group()
        groups.update(dict.fromkeys(group, g))
    default = _default_instance(cls)
    _add_fields(parser, cls, default, "", flags, groups, namespace + ":")
    unused = sorted(set(flags) - set(_paths(cls)))
    if unused:
        raise ValueError(f"{cls.__name__}: flags for no field: {unused}")
    if not any(a.dest == "config_help" for a in parser._actions):
        add_config_help(parser, prog or parser.prog)


def _paths(cls: type, prefix: str = "") -> list[str]:
    out = []
    for f in dataclasses.fields(cls):
        out.append(prefix + f.name)
        tp = _hints(cls)[f.name]
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            out += _paths(tp, prefix + f.name + ".")
    return out


def _default_instance(cls: type) -> Any:
    """`cls()` when every field has a default, else None (defaults then come per field)."""
    try:
        return cls()
    except (TypeError, RobotSSLError):
        return None


def _add_fields(parser, cls, default, prefix, flags, groups, dest) -> None:
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        path = prefix + f.name
        flag = flags.get(path, Flag())
        tp = hints[f.name]
        value = getattr(default, f.name) if default is not None else _field_default(f)
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            sub_prefix = prefix if flag.flatten else path + "."
            _add_nested(parser, tp, value, path, sub_prefix, flags, groups, dest)
            continue
        container = groups.get(path, parser)
        _add_field(container, cls, f.name, tp, value, path, flag, dest)


def _add_nested(parser, tp, value, path, sub_prefix, flags, groups, dest) -> None:
    """The fields of nested dataclass `tp` (field `path`), spelled with `sub_prefix`."""
    sub_flags = {k[len(path) + 1 :]: v for k, v in flags.items() if k.startswith(path + ".")}
    renamed: dict[str, Flag] = {}
    for f in dataclasses.fields(tp):
        flag = sub_flags.get(f.name, Flag())
        if sub_prefix != path + "." and flag.name is None:
            flag = dataclasses.replace(flag, name="--" + f.name.replace("_", "-"))
        renamed[path + "." + f.name] = flag
    hints = _hints(tp)
    for f in dataclasses.fields(tp):
        if not f.init:
            continue
        p = path + "." + f.name
        flag = renamed[p]
        v = getattr(value, f.name) if value is not None else _field_default(f)
        ftp = hints[f.name]
        if isinstance(ftp, type) and dataclasses.is_dataclass(ftp):
            _add_nested(parser, ftp, v, p, p + ".", flags, groups, dest)
            continue
        _add_field(groups.get(p, parser), tp, f.name, ftp, v, p, flag, dest)


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _option_name(path: str, flag: Flag) -> str:
    if flag.name is not None:
        return flag.name
    *outer, last = path.split(".")
    return "--" + ".".join([*outer, last]).replace("_", "-")


def _add_field(container, cls, name, tp, value, path, flag: Flag, dest: str = _DEST) -> None:
    """The one argparse action of field `path` (of type `tp`, default `value`), stored
    in the namespace attribute `dest + path`."""
    if flag.hidden:
        return
    dest = dest + path
    kind, optional, item = _kind(tp)
    help_text = _help(flag, value, kind)
    if flag.positional:
        container.add_argument(
            dest,
            nargs="+" if kind == "tuple" else None,
            type=_item_parser(cls, name, item, flag, kind),
            metavar=flag.metavar or name.upper(),
            help=help_text,
        )
        return
    main = _option_name(path, flag)
    if kind == "bool":
        negative = "--" + _negate(main[2:])
        container.add_argument(
            *dict.fromkeys((main, negative, *flag.aliases, *flag.off)),
            dest=dest,
            action=_BoolAction,
            off=(negative, *flag.off),
            default=argparse.SUPPRESS,
            help=help_text,
        )
        return
    parsers = {a: p for a, p in flag.alias_parse.items()}
    container.add_argument(
        *dict.fromkeys((main, *flag.aliases, *flag.off)),
        dest=dest,
        action=_ValueAction,
        kind=kind,
        const_value=flag.const,
        off=flag.off if optional or flag.off else (),
        parsers=parsers,
        parse=_item_parser(cls, name, item, flag, kind),
        nargs="+" if kind == "tuple" and flag.parse is None else None,  # "0,1,2": one item
        metavar=flag.metavar or _metavar(item, flag, kind),
        required=flag.required,
        default=argparse.SUPPRESS,
        help=help_text,
    )


def _negate(name: str) -> str:
    """`augment.hflip` -> `augment.no-hflip`; `progress` -> `no-progress`."""
    outer, _, last = name.rpartition(".")
    return f"{outer}.no-{last}" if outer else f"no-{last}"


def _kind(tp: Any) -> tuple[str, bool, Any]:
    """(kind, optional, item type): kind is bool, number, str, tuple, dict or other."""
    args = typing.get_args(tp)
    optional = typing.get_origin(tp) in (Union, types.UnionType) and type(None) in args
    if optional:
        rest = [a for a in args if a is not type(None)]
        tp = rest[0] if len(rest) == 1 else Union[tuple(rest)]  # noqa: UP007
    origin = typing.get_origin(tp)
    if tp is bool:
        return "bool", optional, bool
    if tp in (int, float):
        return "number", optional, tp
    if origin is tuple:
        return "tuple", optional, (typing.get_args(tp) or (str,))[0]
    if origin in (dict, Mapping):
        return "dict", optional, Any
    return ("str" if tp is str else "other"), optional, tp


def _item_parser(cls, name, item, flag: Flag, kind: str) -> Callable[[str], Any]:
    if flag.parse is not None:
        return flag.parse
    if kind == "dict":
        return _key_value
    from robot_ssl.cli.argtypes import for_field
    from robot_ssl.core.config import field_bounds

    if item in (int, float):
        if field_bounds(cls, name) is not None:
            return for_field(cls, name)
        return _number(item)
    if flag.choices:
        return _choice(flag.choices)
    if item is str:
        return str
    return _yaml_value


def _number(tp: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = int(text, 10) if tp is int else float(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value):
            what = "an integer" if tp is int else "a finite number"
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    return parse


def _choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            options = ", ".join(repr(c) for c in choices)
            raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {options})")
        return text

    return parse


def _yaml_value(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise argparse.ArgumentTypeError(f"not a value: {text!r}") from None


def _key_value(text: str) -> dict[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return {key.strip(): _yaml_value(value)}


def _metavar(item: Any, flag: Flag, kind: str) -> str:
    if flag.choices:
        return "{" + ",".join(flag.choices) + "}"
    if kind == "dict":
        return "KEY=VALUE"
    return {int: "N", float: "X", str: "TEXT"}.get(item, "VALUE")


def _help(flag: Flag, value: Any, kind: str) -> str:
    text = flag.help or ""
    if flag.required or flag.positional:
        return text
    if value in (None, (), {}) and text:
        return text
    if isinstance(value, tuple) and len(value) > 8:
        shown = f"{len(value)} items"
    elif kind == "dict" and not value:
        return text
    else:
        shown = value
    return f"{text} (default: {shown})" if text else f"default: {shown}"


class _BoolAction(argparse.Action):
    """A bool field: True from its positive spellings, False from `off` ones."""

    def __init__(self, option_strings, dest, off=(), **kwargs):
        super().__init__(option_strings, dest, nargs=0, **kwargs)
        self.off = set(off)

    def __call__(self, parser, namespace, values, option_string=None):
        _once(parser, namespace, self, option_string)
        setattr(namespace, self.dest, option_string not in self.off)


def _once(parser, namespace, action: argparse.Action, option_string: str | None) -> None:
    """Refuse a field given twice (`--out a --out-dir b`, `--no-cache --cache-dir D`):
    one field, one value, never a later spelling that silently wins."""
    if hasattr(namespace, action.dest):
        spellings = ", ".join(action.option_strings)
        parser.error(f"argument {option_string}: given twice (one field: {spellings})")


class _ValueAction(argparse.Action):
    """A valued field: parses its items (one, or several for a tuple; KEY=VALUE pairs
    merged for a dict, the one field that may repeat); an `off` spelling sets None and
    takes no value."""

    def __init__(
        self, option_strings, dest, kind, off, parsers, parse, const_value=None, nargs=None, **kw
    ):
        self.kind, self.off, self.parsers, self.parse = kind, set(off), parsers, parse
        self.const_value = const_value
        if off or const_value is not None:  # `--no-cache`, `--view`: no value
            nargs = "*" if nargs == "+" else "?"
        super().__init__(option_strings, dest, nargs=nargs, **kw)

    def __call__(self, parser, namespace, values, option_string=None):
        if self.kind != "dict":
            _once(parser, namespace, self, option_string)
        if option_string in self.off:
            if values not in (None, []):
                parser.error(f"argument {option_string}: takes no value")
            setattr(namespace, self.dest, None)
            return
        if values in (None, []) and self.const_value is not None:
            setattr(namespace, self.dest, self.const_value)
            return
        if values in (None, []):
            parser.error(f"argument {option_string}: expected a value")
        parse = self.parsers.get(option_string, self.parse)
        items = values if isinstance(values, list) else [values]
        try:
            parsed = [parse(v) for v in items]
        except argparse.ArgumentTypeError as e:
            parser.error(f"argument {option_string or self.metavar}: {e}")
        if self.kind == "dict":
            merged = dict(getattr(namespace, self.dest, None) or {})
            for d in parsed:
                merged.update(d)
            setattr(namespace, self.dest, merged)
        elif self.kind == "tuple":
            flat: list[Any] = []
            for v in parsed:
                flat.extend(v if isinstance(v, tuple) else (v,))
            setattr(namespace, self.dest, tuple(flat))
        else:
            setattr(namespace, self.dest, parsed[0])


# -- the config from the parsed options -----------------------------------------------------


def given_fields(args: argparse.Namespace, namespace: str = "cfg") -> dict[str, Any]:
    """{dotted field path: value} of the config fields given on the command line (of the
    dataclass added with `namespace`)."""
    dest = namespace + ":"
    out = {k[len(dest) :]: v for k, v in vars(args).items() if k.startswith(dest)}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in out.items()}


def config_from_args(
    cls: type,
    args: argparse.Namespace,
    base: Any = None,
    *,
    cli_defaults: Mapping[str, Any] | None = None,
    namespace: str = "cfg",
) -> Any:
    """An instance of `cls`: `base` (default: the dataclass's defaults, with
    `cli_defaults` where the command line's default differs) with the fields given on
    the command line set, checked by the dataclass's own `__post_init__`."""
    given = {**(cli_defaults or {}), **given_fields(args, namespace)}
    if base is None:
        top = {k: v for k, v in given.items() if "." not in k}
        base = cls(**top)
        given = {k: v for k, v in given.items() if "." in k}
    return with_fields(base, given)


def with_fields(obj: Any, given: Mapping[str, Any]) -> Any:
    """A copy of dataclass instance `obj` with dotted paths set (nested ones rebuilt)."""
    top: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for path, value in given.items():
        head, _, rest = path.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            top[head] = value
    for head, sub in nested.items():
        top[head] = with_fields(top.get(head, getattr(obj, head)), sub)
    return dataclasses.replace(obj, **top) if top else obj


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


# -- --config-help -------------------------------------------------------------------------


def add_config_help(parser: argparse.ArgumentParser, prog: str) -> None:
    """`--config-help`: print every config field's option (the verb's help) and exit."""

    class ConfigHelp(argparse.Action):
        def __call__(self, p: Any, namespace: Any, values: Any, option: Any = None) -> None:
            parser.print_help()
            sys.exit(0)

    parser.add_argument(
        "--config-help",
        nargs=0,
        action=ConfigHelp,
        help=f"list every config field's option and exit ({prog} --help lists them too)",
    )
