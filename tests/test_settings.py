"""kdgen.settings: a dataclass field declares a setting once; click options and key=value parsing follow."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import kdgen.generators  # noqa: F401  (fills the registry)
from kdgen.errors import UserError
from kdgen.registry import GENERATORS
from kdgen.settings import dataclass_options, defaults, knob, parse_key_values, seed_knob


@dataclass(frozen=True)
class Demo:
    eps: float = knob(8 / 255, "radius", show="8/255")
    steps: int = knob(3, "steps", min=1, max=9)
    mode: str = knob("a", "mode", choices=("a", "b"))
    fast: bool = knob(True, "go fast")
    stages: tuple[str, ...] = knob(("pre", "post"), "kept")
    name: str | None = knob(None, "optional")


def _command():
    @click.command()
    @dataclass_options(Demo)
    def cmd(**o):
        click.echo(repr(Demo(**o)))

    return cmd


def test_click_options_take_their_defaults_help_and_types_from_the_fields():
    res = CliRunner().invoke(_command(), [])
    assert res.exit_code == 0 and eval(res.output, {"Demo": Demo}) == Demo()
    res = CliRunner().invoke(_command(), ["--eps", "16/255", "--steps", "4", "--mode", "b", "--no-fast",
                                          "--stages", "post", "--name", "x"])
    assert eval(res.output, {"Demo": Demo}) == Demo(16 / 255, 4, "b", False, ("post",), "x")
    help_text = CliRunner().invoke(_command(), ["--help"]).output
    assert "radius" in help_text and "8/255" in help_text and "1<=x<=9" in help_text
    assert CliRunner().invoke(_command(), ["--steps", "10"]).exit_code == 2
    assert CliRunner().invoke(_command(), ["--mode", "c"]).exit_code == 2
    assert CliRunner().invoke(_command(), ["--eps", "x"]).exit_code == 2


def test_key_values_parse_by_field_type_with_extra_keys():
    given, extra = parse_key_values("on,eps=1/2,max-x=3,fast=no,stages=pre+post,mode=b", Demo, {"max_x": int})
    assert given == {"eps": 0.5, "fast": False, "stages": ("pre", "post"), "mode": "b"} and extra == {"max_x": 3}
    assert parse_key_values("on", Demo) == ({}, {})
    assert parse_key_values("steps=2,steps=5", Demo)[0] == {"steps": 5}  # later keys win


@pytest.mark.parametrize("text, message", [
    ("colour=red", "unknown demo option 'colour'"), ("steps", "is not key=value"), ("steps=x", "bad value"),
    ("fast=maybe", "bad value"), ("eps=1/0", "bad value"), ("mode=c", "choose one of a, b"),
])
def test_key_value_errors_are_one_user_error(text, message):
    with pytest.raises(UserError, match=message):
        parse_key_values(text, Demo, what="demo")


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_generator_flags_and_constructor_share_their_defaults(name):
    """A generator's flags are generated from its options dataclass, so `kdgen NAME` with no options and
    the class built without params describe the same parameters."""
    gen = GENERATORS[name]
    seen = {}

    @click.command()
    def cmd(**o):
        seen.update(o)

    for opt in reversed(gen.options):
        cmd = opt(cmd)
    assert CliRunner().invoke(cmd, []).exit_code == 0
    cls = getattr(gen, "Options", None)
    if cls is not None:
        assert seen == defaults(cls)


@dataclass
class Flags:
    out: Path | None = knob(None, "where", required=True, file_okay=False)
    limit: int | None = knob(None, "at most", flag="--n", min=1)
    fmt: str = knob("png", "format", flag="--format", choices=("png", "jpg"))
    overwrite: bool = knob(False, "replace", flag="--overwrite")
    progress: bool = knob(True, "bar", flag="--progress/--no-progress, /--quiet")
    seed: int = seed_knob("seed")


def test_knobs_declare_required_flags_other_names_paths_and_the_seed_rule(tmp_path):
    @click.command()
    @dataclass_options(Flags)
    def cmd(**o):
        click.echo(repr(Flags(**o)))

    res = CliRunner().invoke(cmd, ["--out", str(tmp_path), "--n", "3", "--format", "jpg", "--overwrite", "--quiet"])
    assert res.exit_code == 0, res.output
    assert eval(res.output, {"Flags": Flags, "PosixPath": Path}) == Flags(tmp_path, 3, "jpg", True, False, 0)
    for args, needle in ((["--n", "1"], "Missing option '--out'"), (["--out", "x", "--n", "0"], "--n"),
                         (["--out", "x", "--seed", str(2**63)], "0<=x<2**63"),
                         (["--out", "x", "--format", "gif"], "gif")):
        res = CliRunner().invoke(cmd, args)
        assert res.exit_code == 2 and needle in res.output, (args, res.output)
    (tmp_path / "f").write_text("")
    assert CliRunner().invoke(cmd, ["--out", str(tmp_path / "f")]).exit_code == 2  # a file, not a folder


def test_key_values_keep_to_the_bounds_of_their_fields():
    with pytest.raises(UserError, match="must be in 1..9"):
        parse_key_values("steps=10", Demo, what="demo")


def test_torchrun_rank_is_read_in_one_place(monkeypatch):
    from kdgen.clitools import launcher_rank, torchrun_rank

    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT"):
        monkeypatch.delenv(key, raising=False)
    assert torchrun_rank() == (0, 0, 1) and launcher_rank() == (0, 1)
    monkeypatch.setenv("RANK", "3"), monkeypatch.setenv("LOCAL_RANK", "1"), monkeypatch.setenv("WORLD_SIZE", "4")
    assert torchrun_rank() == (3, 1, 4) and launcher_rank() == (3, 4)
