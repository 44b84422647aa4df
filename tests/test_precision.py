"""--amp: the precision choice (auto, forced, refused), a bf16 CPU run that learns, exact resume under bf16."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from kdtrain.cli.main import cli
from kdtrain.errors import UserError
from kdtrain.models import precision
from kdtrain.models.teachers import load_teacher
from kdtrain.train.config import DistillConfig
from kdtrain.train.distill import distill
from tests._kdtrain_fixtures import write_shards, write_teacher
from tests.conftest import assert_one_line_error, kill_at_first_checkpoint

ROOT = Path(__file__).resolve().parents[1]
QUIET = ["--threads", "1", "--no-tensorboard", "--no-progress"]


@pytest.fixture
def native_bf16(monkeypatch):
    """Pretend the CPU has AMX (the choice logic is what is tested, not the hardware)."""
    monkeypatch.setattr(precision, "cpu_bf16_feature", lambda: "amx_bf16")


@pytest.fixture
def no_bf16(monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_feature", lambda: None)
    monkeypatch.delenv(precision.EMULATE_ENV, raising=False)


def test_auto_picks_bf16_where_native_and_float32_elsewhere(native_bf16):
    assert precision.resolve("auto", "cpu") is torch.bfloat16
    assert precision.resolve("bf16", "cpu") is torch.bfloat16
    assert precision.resolve("off", "cpu") is None
    assert precision.resolve("auto", "cuda") is torch.bfloat16
    assert precision.resolve("fp16", "cuda") is torch.float16
    assert precision.describe(torch.bfloat16, "cpu") == "bf16 autocast (CPU amx_bf16)"


def test_auto_is_float32_and_forced_bf16_refused_without_bf16_units(no_bf16):
    assert precision.resolve("auto", "cpu") is None
    assert precision.describe(None, "cpu") == "float32"
    with pytest.raises(UserError, match="no native bf16 units"):
        precision.resolve("bf16", "cpu")


@pytest.mark.parametrize("amp,match", [("fp8", "not one of"), ("fp16", "CUDA only")])
def test_bad_choices_refused(amp, match):
    with pytest.raises(UserError, match=match):
        precision.resolve(amp, "cpu")


def test_cpu_feature_is_read_from_cpuinfo():
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    expected = next((f for f in ("amx_bf16", "avx512_bf16") if f" {f}" in flags), None)
    assert precision.cpu_bf16_feature() == expected


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("amp")
    write_shards(d / "s", "leaves", 256, 64, size=12, channels=1, labels=False)
    write_teacher(d / "teacher.pt", channels=1, size=12, arch="cnn")
    return d


def test_cli_refuses_an_unknown_amp_in_one_line(world, tmp_path):
    res = CliRunner().invoke(cli, ["distill", "--shards", str(world / "s" / "leaves-*.tar"), "--teacher",
                                   str(world / "teacher.pt"), "--amp", "fp8", "--out", str(tmp_path / "r"), *QUIET])
    assert_one_line_error(res, "Invalid value for '--amp': 'fp8' is not one of")
    assert not (tmp_path / "r").exists()


def test_bf16_cpu_run_learns_and_logs_its_precision(world, tmp_path, native_bf16):
    cfg = DistillConfig(teacher=str(world / "teacher.pt"), shards=[str(world / "s" / "leaves-*.tar")], steps=60,
                        batch_size=32, workers=0, threads=1, out=str(tmp_path / "r"), tensorboard=False,
                        progress=False, eval="none", amp="bf16", preset="none", log_every=10, lr=0.05)
    assert distill(cfg)["precision"] == "bf16 autocast (CPU amx_bf16)"
    rows = [r.split(",") for r in (tmp_path / "r" / "metrics.csv").read_text().splitlines()]
    head = rows[0]
    losses = [float(r[head.index("loss")]) for r in rows[1:] if r[0] == "train"]
    assert len(losses) == 6 and losses[-1] < 0.7 * losses[0], losses
    student = load_teacher(tmp_path / "r" / "student.pt")
    assert all(v.dtype == torch.float32 for v in student.model.state_dict().values() if v.is_floating_point())


def test_bf16_resume_after_sigkill_matches_uninterrupted(world, tmp_path):
    args = ["distill", "--shards", str(world / "s" / "leaves-*.tar"), "--teacher", str(world / "teacher.pt"),
            "--eval", "none", "--batch-size", "16", "--amp", "bf16", "--steps", "60", "--samples-per-epoch",
            "320", "--ckpt-every", "10", "--workers", "1", "--no-export", *QUIET]  # 3 epochs; killed in the first
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", precision.EMULATE_ENV: "1"}
    ref, out = tmp_path / "ref", tmp_path / "killed"
    subprocess.run([sys.executable, "-m", "kdtrain", *args, "--out", str(ref)], env=env, check=True,
                   capture_output=True)
    proc = subprocess.Popen([sys.executable, "-m", "kdtrain", *args, "--out", str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kill_at_first_checkpoint(proc, out)
    assert 0 < torch.load(out / "last.pt", weights_only=True)["step"] < 20
    subprocess.run([sys.executable, "-m", "kdtrain", *args, "--out", str(out), "--resume"], env=env, check=True,
                   capture_output=True)
    a = torch.load(ref / "student.pt", weights_only=True)["state_dict"]
    b = torch.load(out / "student.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((out / "summary.json").read_text())["samples_seen"] == 60 * 16
