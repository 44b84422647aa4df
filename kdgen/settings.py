"""Settings declared once: a dataclass field with its help (`knob`), from which the click options and the
`key=value,...` parser of a one-flag option string (distill's --adv, --refine) are generated.

Both packages use it (kdgen's generator options, kdtrain's DistillConfig, AttackConfig, RefineConfig);
it imports neither torch nor numpy. Field metadata besides `help`: `choices` (a tuple), `min`/`max`
(bounds of a number), `flag` (the click declaration when it is not `--field-name`, e.g. "--n" or
"--correlated/--independent"), `required`, `show` (the default as shown in --help, e.g. "64/255"),
and for a `Path` field `file_okay`/`dir_okay`. `seed_knob` is every command's seed, under one rule.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import MISSING, field, fields
from fractions import Fraction
from pathlib import Path

import click

from kdgen.errors import UserError


def knob(default, help: str, **meta):
    """A dataclass field with its help text (the CLI flag's help, and the comment in the docs)."""
    if isinstance(default, list):
        return field(default_factory=lambda d=default: list(d), metadata={"help": help, **meta})
    return field(default=default, metadata={"help": help, **meta})


SEED_MAX = 2**63 - 1  # numpy and torch both take any seed in 0..2**63-1


class SeedRange(click.IntRange):
    """0 <= seed < 2**63, as --help and the error name it (not as 19 digits)."""

    def __init__(self):
        super().__init__(0, SEED_MAX)

    def _describe_range(self) -> str:
        return "0<=x<2**63"


def seed_knob(help: str, default: int = 0):
    """A seed field: one rule in every command (0 <= seed < 2**63), checked by click before any work."""
    return knob(default, help, min=0, max=SEED_MAX, type=SeedRange())


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


def dataclass_options(cls, only=None, overrides=None, rename=None, helps=None, required=()):
    """Decorator adding one click option per field of dataclass `cls` (help, bounds and choices from its
    metadata). `only`: the fields to take; `overrides`: other defaults by name; `rename`: flag names by
    field; `helps`: other help texts by name (a command whose field means something else there);
    `required`: fields this command requires."""
    overrides, rename, helps = overrides or {}, rename or {}, helps or {}
    base = defaults(cls)

    def deco(fn):
        for f in reversed(fields(cls)):
            if only is None or f.name in only:
                meta = {**f.metadata, **({"help": helps[f.name]} if f.name in helps else {}),
                        **({"required": True} if f.name in required else {})}
                fn = _option(cls, f, meta, overrides.get(f.name, base[f.name]), rename.get(f.name))(fn)
        return fn

    return deco


def _option(cls, f, meta, default, name: str | None):
    tp = field_type(cls, f.name)
    flag = "--" + (name or f.name).replace("_", "-")
    if not name and "flag" in meta:
        flag = meta["flag"]
    required = meta.get("required", False)
    kw = {"help": meta.get("help", ""), "required": required,
          "show_default": meta.get("show", not required and default not in (None, []))}
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is bool:  # --x/--no-x, or a plain flag (`flag="--overwrite"`) that is off unless given
        decl, kw["default"] = flag if "/" in flag or "flag" in meta else f"{flag}/--no-{flag[2:]}", default
        kw["is_flag"] = True
        if "/" not in decl:
            kw["show_default"] = False
    elif "type" in meta:  # a click type of its own, e.g. kdgen's sizes
        decl, kw["type"], kw["default"] = flag, meta["type"], default
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
    elif tp is Path:
        kw["type"] = click.Path(path_type=Path, file_okay=meta.get("file_okay", True),
                                dir_okay=meta.get("dir_okay", True))
        decl, kw["default"] = flag, default
    else:
        decl, kw["type"], kw["default"] = flag, tp, default
    if required:  # click takes an explicit default (even None) as given
        kw.pop("default")
    # several names by commas: "-o,--output", or "--progress/--no-progress, /--quiet" (an alias of one side)
    return click.option(*decl.split(","), f.name, **kw)


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
        m = meta.get(key, {})
        if m.get("choices") and val not in m["choices"]:
            raise error(f"{what} option {item!r}: choose one of {', '.join(m['choices'])}")
        if m.get("min") is not None and val < m["min"] or m.get("max") is not None and val > m["max"]:
            raise error(f"{what} option {item!r}: must be in {m.get('min', '')}..{m.get('max', '')}")
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
