"""Settings declared once: a dataclass field with its help (`knob`), from which the click options and the
`key=value,...` parser of a one-flag option string (distill's --adv, --refine) are generated.

Both packages use it (kdgen's generator options, kdtrain's DistillConfig, AttackConfig, RefineConfig);
it imports neither torch nor numpy. Field metadata besides `help`: `choices` (a tuple), `min`/`max`
(bounds of a number), `flag` (the click declaration, e.g. "--correlated/--independent") and `show`
(the default as shown in --help, e.g. "64/255").
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import MISSING, field, fields
from fractions import Fraction

import click

from kdgen.errors import UserError


def knob(default, help: str, **meta):
    """A dataclass field with its help text (the CLI flag's help, and the comment in the docs)."""
    if isinstance(default, list):
        return field(default_factory=lambda d=default: list(d), metadata={"help": help, **meta})
    return field(default=default, metadata={"help": help, **meta})


def defaults(cls) -> dict:
    """Field name -> default value of a dataclass."""
    return {f.name: f.default if f.default is not MISSING else f.default_factory() for f in fields(cls)}


def field_type(cls, name: str):
    """The declared type of a field, without its `| None`: bool, int, float, str, list[...] or tuple[...]."""
    tp = typing.get_type_hints(cls)[name]
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    return tp


def to_number(text, kind=float):
    """`0.03`, `8/255` (a float) or `12` (an int); ValueError otherwise, and for NaN or an infinity."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return finite(kind(text))
    if kind is int:
        return int(str(text).strip())
    try:
        return finite(float(Fraction(str(text).strip())))
    except ZeroDivisionError:
        raise ValueError(f"{text!r} divides by zero") from None
    except OverflowError:  # 1e400
        raise ValueError(f"{text!r} is too large") from None


def finite(value):
    """The rule for every float option: NaN passes every range check (each comparison is false) and an
    infinity is no setting, so both are refused (ValueError)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value} is not a finite number")
    return value


class Number(click.ParamType):
    """A click number that also takes fractions (`8/255`)."""

    def __init__(self, kind=float):
        self.kind = kind
        self.name = "INTEGER" if kind is int else "FLOAT"

    def convert(self, value, param, ctx):
        try:
            return to_number(value, self.kind)
        except ValueError:
            self.fail(f"{value!r} is not a{'n integer' if self.kind is int else ' finite number (e.g. 0.03 or 8/255)'}",
                      param, ctx)


class FiniteFloatRange(click.FloatRange):
    """click's FloatRange without NaN and infinities (see `finite`)."""

    def convert(self, value, param, ctx):
        try:
            return finite(super().convert(value, param, ctx))
        except ValueError:
            self.fail(f"{value!r} is not a finite number", param, ctx)


def _float_list(ctx, param, value):
    if value is None:
        return None
    try:
        return [to_number(v) for v in value.split(",")]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated finite numbers, got {value!r}") from None


def _str_tuple(ctx, param, value):
    if value is None or isinstance(value, tuple):
        return value
    return tuple(v.strip() for v in value.split(",") if v.strip())


def dataclass_options(cls, only=None, overrides=None, rename=None):
    """Decorator adding one click option per field of dataclass `cls` (help, bounds and choices from its
    metadata). `only`: the fields to take; `overrides`: other defaults by name; `rename`: flag names by field."""
    overrides, rename = overrides or {}, rename or {}
    base = defaults(cls)

    def deco(fn):
        for f in reversed(fields(cls)):
            if only is None or f.name in only:
                fn = _option(cls, f, overrides.get(f.name, base[f.name]), rename.get(f.name, f.name))(fn)
        return fn

    return deco


def _option(cls, f, default, name: str):
    meta, tp = f.metadata, field_type(cls, f.name)
    flag = "--" + name.replace("_", "-")
    kw = {"help": meta.get("help", ""), "show_default": meta.get("show", default not in (None, []))}
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is bool:
        decl, kw["default"] = meta.get("flag", f"{flag}/--no-{flag[2:]}"), default
    elif origin is list and args[0] is float:  # e.g. --weights 0.7,0.3
        decl, kw["callback"], kw["default"], kw["metavar"] = flag, _float_list, None, "W1,W2,.."
    elif origin is list:  # repeatable
        decl, kw["multiple"], kw["default"] = flag, True, default
    elif origin is tuple:  # comma-separated on the command line
        decl, kw["callback"] = flag, _str_tuple
        kw["default"] = ",".join(default) if default is not None else None
    elif "choices" in meta:
        decl, kw["type"], kw["default"] = flag, click.Choice(meta["choices"]), default
    elif "min" in meta or "max" in meta:  # click shows the range in --help
        rng = click.IntRange if tp is int else FiniteFloatRange
        decl, kw["type"], kw["default"] = flag, rng(meta.get("min"), meta.get("max")), default
    elif tp in (int, float):
        decl, kw["type"], kw["default"] = flag, Number(tp), default
    else:
        decl, kw["type"], kw["default"] = flag, tp, default
    return click.option(decl, f.name, **kw)


def parse_key_values(text: str, cls, extra: dict | None = None, what: str = "option",
                     error: type[Exception] = UserError) -> tuple[dict, dict]:
    """`on` or `key=value,...` -> (values of `cls` fields, values of `extra` keys {name: type}).

    Keys take - or _ alike; numbers take fractions (8/255); a tuple's items are joined by + (the comma
    separates keys); bools are true/false, yes/no, on/off or 1/0. Later keys win. Bad input raises `error`.
    """
    extra = extra or {}
    kinds = {f.name: field_type(cls, f.name) for f in fields(cls)}
    kinds.update(extra)
    meta = {f.name: f.metadata for f in fields(cls)}
    given, more = {}, {}
    for item in [t.strip() for t in str(text).split(",") if t.strip() and t.strip().lower() != "on"]:
        key, sep, value = item.partition("=")
        key, value = key.strip().replace("-", "_"), value.strip()
        if not sep:
            raise error(f"{what} option {item!r} is not key=value; keys: {', '.join(kinds)}")
        if key not in kinds:
            raise error(f"unknown {what} option {key!r}; use {', '.join(kinds)}")
        try:
            val = _value(kinds[key], value)
        except ValueError:
            raise error(f"{what} option {item!r}: bad value") from None
        choices = meta.get(key, {}).get("choices")
        if choices and val not in choices:
            raise error(f"{what} option {item!r}: choose one of {', '.join(choices)}")
        (more if key in extra else given)[key] = val
    return given, more


def _value(kind, text: str):
    if kind is bool:
        low = text.lower()
        if low not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            raise ValueError(text)
        return low in ("1", "true", "yes", "on")
    if kind in (int, float):
        return to_number(text, kind)
    if typing.get_origin(kind) is tuple:
        return tuple(v for v in text.replace("+", " ").split() if v)
    return text
