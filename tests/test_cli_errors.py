"""Bad input: a one-line error naming the problem, exit status 2, no traceback, nothing half-written."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from kdgen.cli import cli
from tests.conftest import assert_one_line_error, run_cli

BAD = [
    (["leaves", "--n", "0"], "--n"),
    (["leaves", "--n", "-5"], "--n"),
    (["noise", "--size", "0"], "--size"),
    (["noise", "--size", "-32"], "--size"),
    (["noise", "--size", "abc"], "size"),
    (["bogus"], "bogus"),
    (["noise", "--variant", "pink"], "variant"),
    (["leaves", "--shape", "star"], "shape"),
    (["leaves", "--format", "bmp"], "format"),
    (["leaves", "--rank", "2", "--world-size", "2"], "rank"),
    (["leaves", "--rmin", "2", "--rmax", "1"], "rmin"),
    (["noise", "--mean", "a,b"], "--mean"),
    (["info", "nowhere/none"], "manifest"),
]


@pytest.mark.parametrize("args,needle", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_in_process(args, needle, tmp_path):
    out = tmp_path / "out"
    args = args + (["--out", str(out), "--n", "5"] if args[0] in ("leaves", "noise") and "--n" not in args
                   else (["--out", str(out)] if args[0] in ("leaves", "noise") else []))
    result = CliRunner().invoke(cli, args)
    assert_one_line_error(result, needle)
    assert not list(out.glob("*.tar"))  # an empty list where the folder was never made


@pytest.mark.parametrize("args,needle", BAD[:6:2], ids=[" ".join(a) for a, _ in BAD[:6:2]])
def test_bad_input_as_a_subprocess(args, needle, tmp_path):
    result = run_cli("kdgen", *args, "--out", tmp_path) if args[0] != "bogus" else run_cli("kdgen", *args)
    assert_one_line_error(result, needle)
    assert not list(tmp_path.glob("*.tar"))


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run_cli("kdgen", "noise", "--n", "4", "--out", blocker / "sub")
    assert_one_line_error(result, "cannot write to --out")


def test_help_works():
    result = CliRunner().invoke(cli, ["leaves", "--help"])
    assert result.exit_code == 0 and "--shape" in result.output


def test_python_dash_m_runs_both_commands():
    """`python -m kdgen` / `python -m kdtrain` work where only a Python is at hand (e.g. a bare GPU box)."""
    import subprocess
    import sys

    for pkg, sub in (("kdgen", "leaves"), ("kdtrain", "distill")):
        out = subprocess.run([sys.executable, "-m", pkg, sub, "--help"], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and "Usage:" in out.stdout, out.stderr
