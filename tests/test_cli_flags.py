"""Flags generated from dataclass fields: bad choices, seeds and devices are refused by the command line
before any teacher is loaded, shard counted or file written (one line, exit 2); both tools share one
progress flag, a --version, and help texts that match their own defaults."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from kdgen.cli import cli as kdgen_cli
from kdtrain.cli.main import cli as kdtrain_cli
from tests._kdtrain_fixtures import write_shards, write_teacher
from tests.conftest import assert_one_line_error

torch.set_num_threads(1)


def kdtrain(*args):
    return CliRunner().invoke(kdtrain_cli, [str(a) for a in args])


@pytest.fixture
def world(tmp_path):
    write_teacher(tmp_path / "t.pt", channels=1, size=12, classes=4)
    write_shards(tmp_path / "data", "pool", n=8, per_shard=8, size=12, channels=1, labels=False)
    return tmp_path


def written(folder) -> list:
    """Everything under `folder` but the inputs the fixture wrote."""
    return sorted(p for p in folder.rglob("*") if p.name != "t.pt" and "pool-" not in p.name and p.is_file())


# A teacher and shards that do not exist: a message about the flag, not about them, shows that the flag
# was refused before either was opened.
@pytest.mark.parametrize("flags,needle", [
    (["--amp", "fp8"], "--amp"),
    (["--optimizer", "lbfgs"], "--optimizer"),
    (["--preset", "fancy"], "--preset"),
    (["--adv", "epsilon=3"], "unknown attack option 'epsilon'"),
    (["--adv", "target=random"], "choose one of uniform, fair, least-predicted, proportional"),
    (["--adv", "every=0"], "every must be >= 1"),
    (["--refine", "colour=red"], "unknown refine option 'colour'"),
    (["--refine", "target=random"], "choose one of"),
    (["--seed", 2**70], "--seed"),
    (["--seed", -1], "--seed"),
])
def test_distill_refuses_bad_flags_before_the_teacher_or_shards(tmp_path, flags, needle):
    out = tmp_path / "run"
    res = kdtrain("distill", "--teacher", tmp_path / "absent.pt", "--shards", tmp_path / "absent-*.tar", "--out",
                  out, *flags)
    assert_one_line_error(res, needle)
    assert "absent" not in res.output and not out.exists()


COMMON = [(["--seed", 2**70], "--seed"), (["--seed", -1], "--seed"), (["--amp", "fp8"], "--amp"),
          (["--device", "tpu"], "--device 'tpu'")]
WRITERS = [(["--format", "bmp"], "--format"), (["--target", "random"], "--target")]  # score writes no shards
QUALITY = [(cmd, *case) for cmd in ("attack", "refine", "score", "curate")
           for case in COMMON + (WRITERS if cmd != "score" else [])]


@pytest.mark.parametrize("cmd,flags,needle", QUALITY, ids=[f"{c}-{f[0]}={f[1]}" for c, f, _ in QUALITY])
def test_quality_commands_refuse_bad_flags_before_the_teacher_or_shards(tmp_path, cmd, flags, needle):
    extra = {"score": [], "curate": ["--per-class", 1]}.get(cmd, [])
    res = kdtrain(cmd, "--teacher", tmp_path / "none.pt", "--shards", tmp_path / "none-*.tar",
                  "--out", tmp_path / "out", *extra, *flags)
    assert_one_line_error(res, needle)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("cmd", ["attack", "refine", "score", "curate", "distill"])
def test_an_unknown_device_is_one_clean_line_everywhere(world, cmd):
    extra = {"curate": ["--per-class", 1], "distill": ["--steps", 1, "--eval", "none"]}.get(cmd, [])
    out = world / "data" / "out"
    res = kdtrain(cmd, "--teacher", world / "t.pt", "--shards", f"{world}/data/pool-*.tar", "--out", out,
                  "--device", "tpu", *extra)
    assert_one_line_error(res, "--device 'tpu' is not a device; use auto, cpu, cuda or cuda:N")
    assert written(world) == []


def test_missing_cuda_is_named_with_its_fix():
    from kdtrain.device import resolve_device
    from kdtrain.errors import UserError

    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA device is available here; use --device cpu"):
            resolve_device("cuda:0")
    with pytest.raises(UserError, match="kdtrain runs on cpu or cuda"):
        resolve_device("meta")


def test_kdgen_seed_follows_the_same_rule(tmp_path):
    for seed in (2**70, -1):
        res = CliRunner().invoke(kdgen_cli, ["noise", "--n", "4", "--out", str(tmp_path), "--seed", str(seed)])
        assert_one_line_error(res, "0<=x<2**63")
    assert not list(tmp_path.iterdir())
    big = CliRunner().invoke(kdgen_cli, ["noise", "--n", "2", "--size", "8", "--out", str(tmp_path), "--seed",
                                         str(2**63 - 1), "--no-progress"])
    assert big.exit_code == 0, big.output


def test_both_tools_have_a_version_and_one_progress_flag(tmp_path):
    for cli, name in ((kdgen_cli, "kdgen"), (kdtrain_cli, "kdtrain")):
        res = CliRunner().invoke(cli, ["--version"])
        assert res.exit_code == 0 and res.output.startswith(f"{name}, version ")
    for cmd in (["noise"], ["attack"], ["score"], ["curate"], ["refine"], ["distill"], ["teacher"]):
        cli = kdgen_cli if cmd == ["noise"] else kdtrain_cli
        assert "--progress / --no-progress" in CliRunner().invoke(cli, [*cmd, "--help"]).output, cmd
    # --quiet stays an alias of --no-progress, for scripts written before
    res = CliRunner().invoke(kdgen_cli, ["noise", "--n", "2", "--size", "8", "--out", str(tmp_path), "--quiet"])
    assert res.exit_code == 0 and "it/s" not in res.output


def test_quality_commands_run_with_and_without_a_progress_bar(world):
    d = world / "data"
    for flag in ("--progress", "--no-progress"):
        res = kdtrain("curate", "--teacher", world / "t.pt", "--shards", f"{d}/pool-*.tar", "--per-class", 1,
                      "--out", d / f"cur{flag.count('no')}", flag)
        assert res.exit_code == 0, res.output


def flag_help(help_text: str, flag: str) -> str:
    """The help of one flag in a command's --help, its wrapped lines joined."""
    block = help_text[help_text.index(f"\n  {flag} "):]
    return " ".join(block[: block.index("\n  --", 3)].split())


def test_help_texts_match_their_own_command():
    teacher = kdtrain("teacher", "--help").output
    arch = flag_help(teacher, "--arch")
    assert "student" not in arch and "teacher's architecture" in arch and "[default: resnet8]" in arch
    preset = flag_help(teacher, "--preset")
    assert "[default: crop-flip]" in preset and "the default" not in preset
    assert "[default: paper-shader]" in flag_help(kdtrain("distill", "--help").output, "--preset")
    name = flag_help(CliRunner().invoke(kdgen_cli, ["import-images", "--help"]).output, "--name")
    assert "FOLDER's name" in name and "generator" not in name


@pytest.mark.parametrize("cmd,flag", [("attack", "--out"), ("refine", "--shards"), ("score", "--teacher"),
                                      ("curate", "--per-class"), ("report", "--runs")])
def test_required_flags_are_required(tmp_path, cmd, flag):
    given = {"--teacher": tmp_path / "t.pt", "--shards": tmp_path / "p-*.tar", "--out": tmp_path / "o"}
    if cmd == "curate":
        given["--per-class"] = 1
    if cmd == "report":
        given = {"--data": tmp_path, "--out": tmp_path / "r.md"}
    args = [str(a) for k, v in given.items() if k != flag for a in (k, v)]
    assert_one_line_error(CliRunner().invoke(kdtrain_cli, [cmd, *args]), f"Missing option '{flag}'")
    assert not list(tmp_path.iterdir())


def test_one_name_for_the_user_error():
    from kdgen import errors as kdgen_errors
    from kdtrain import errors as kdtrain_errors

    assert not hasattr(kdgen_errors, "KdgenError") and not hasattr(kdtrain_errors, "KDError")
    assert kdtrain_errors.UserError.__name__ == kdgen_errors.UserError.__name__ == "UserError"
    assert issubclass(kdtrain_errors.UserError, (kdgen_errors.UserError, ValueError))


def test_the_largest_seed_runs_in_every_kdtrain_command(world):
    """The top of the seed rule (2**63 - 1) is a seed every random stream takes, not an overflow later."""
    d, big = world / "data", 2**63 - 1
    common = ["--teacher", world / "t.pt", "--shards", f"{d}/pool-*.tar", "--seed", big]
    runs = {"distill": ["--out", world / "run", "--steps", 1, "--batch-size", 4, "--workers", 0, "--eval", "none",
                        "--no-progress", "--no-tensorboard", "--adv", "every=1", "--refine", "fraction=0.5"],
            "attack": ["--out", d / "adv", "--max-steps", 1], "refine": ["--out", d / "ref", "--steps", 1],
            "score": ["--out", world / "sc"], "curate": ["--out", d / "cur", "--per-class", 1]}
    for cmd, extra in runs.items():
        res = kdtrain(cmd, *common, *extra)
        assert res.exit_code == 0, (cmd, res.output)
