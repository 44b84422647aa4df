import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from click.testing import CliRunner

from kdtrain.cli.main import cli
from kdtrain.errors import UserError
from kdtrain.models.teachers import load_teacher
from kdtrain.train.config import DistillConfig
from kdtrain.train.distill import distill, kd_loss
from tests._kdtrain_fixtures import write_shards, write_teacher
from tests.conftest import assert_one_line_error, kill_at_first_checkpoint

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
QUIET = ["--threads", "1", "--no-tensorboard", "--no-progress"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Surrogate shards (RGB 16 px, unlabelled), labelled grey 12 px test shards, a random grey 12 px teacher."""
    d = tmp_path_factory.mktemp("kd")
    write_shards(d / "s", "leaves", 128, 32, size=16, channels=3, labels=False)
    write_shards(d / "e", "test", 64, 32, size=12, channels=1, seed=5)
    write_teacher(d / "teacher.pt", channels=1, size=12)
    return d


def _args(world, out, *extra):
    return ["distill", "--shards", str(world / "s" / "leaves-*.tar"), "--teacher", str(world / "teacher.pt"),
            "--eval", str(world / "e" / "test-*.tar"), "--batch-size", "16", "--out", str(out), *QUIET, *extra]


def test_kd_loss():
    s, t = torch.randn(5, 4), torch.randn(5, 4)
    assert kd_loss(t, t, 3.0).abs() < 1e-6
    p = F.softmax(t / 2, -1)
    ref = (p * (p.log() - F.log_softmax(s / 2, -1))).sum(-1).mean() * 4
    assert torch.allclose(kd_loss(s, t, 2.0), ref, atol=1e-6)


def test_end_to_end_cli(world, tmp_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(cli, _args(world, out, "--epochs", "2", "--workers", "1", "--tensorboard"))
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 16 and summary["samples_seen"] == 256 and summary["eval_samples"] == 64
    assert 0 <= summary["student_top1"] <= 1 and summary["teacher_top1"] is not None
    assert (out / "config.yaml").exists() and list((out / "tb").iterdir())
    rows = (out / "metrics.csv").read_text().splitlines()
    assert sum(r.startswith("eval,") for r in rows) == 2
    student = load_teacher(out / "student.pt")  # a student is a usable model file
    assert student.spec.height == 12 and student.num_classes == 10
    assert summary["export"]["pt2"] == str(out / "student.pt2")  # exported by default


def test_reference_student_on_real_labelled_data(world, tmp_path):
    cfg = DistillConfig(teacher=str(world / "teacher.pt"), data=str(world / "e" / "test-*.tar"), steps=3,
                        batch_size=16, workers=0, threads=1, out=str(tmp_path / "r"), tensorboard=False,
                        progress=False, ce_weight=0.5, eval=str(world / "e" / "test-*.tar"))
    summary = distill(cfg)
    assert summary["steps"] == 3 and summary["eval_samples"] == 64


def test_batch_hook_sees_mixed_batch(world, tmp_path):
    seen = []

    def hook(batch, step):
        seen.append((step, batch["images"].shape, batch["mix"] is not None))
        return batch

    cfg = DistillConfig(teacher=str(world / "teacher.pt"), shards=[str(world / "s" / "leaves-*.tar")], steps=2,
                        batch_size=16, workers=0, threads=1, out=str(tmp_path / "h"), tensorboard=False,
                        progress=False, eval="none", mixup=True)
    distill(cfg, batch_hook=hook)
    assert seen == [(0, (16, 1, 12, 12), True), (1, (16, 1, 12, 12), True)]


def _run_cli(args, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "kdtrain", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


def test_resume_after_sigkill_matches_uninterrupted(world, tmp_path):
    # three epochs of 20 steps: the kill falls in the first, the resumed run crosses two epoch ends
    extra = ["--steps", "60", "--samples-per-epoch", "320", "--ckpt-every", "10", "--workers", "1",
             "--eval-limit", "16", "--no-export"]
    ref = tmp_path / "ref"
    assert CliRunner().invoke(cli, _args(world, ref, *extra)).exit_code == 0
    out = tmp_path / "killed"
    proc = _run_cli(_args(world, out, *extra))
    kill_at_first_checkpoint(proc, out)
    # the run records the command line that made it (what `kdtrain report` prints)
    command = yaml.safe_load((out / "config.yaml").read_text())["command"]
    assert command.startswith("kdtrain distill --shards ") and f"--teacher {world / 'teacher.pt'}" in command
    step = torch.load(out / "last.pt", weights_only=True)["step"]
    assert 0 < step < 20
    res = CliRunner().invoke(cli, [*_args(world, out, *extra), "--resume"])
    assert res.exit_code == 0, res.output
    a = torch.load(ref / "student.pt", weights_only=True)["state_dict"]
    b = torch.load(out / "student.pt", weights_only=True)["state_dict"]
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)
    assert json.loads((out / "summary.json").read_text())["samples_seen"] == 60 * 16


def test_ddp_two_gloo_processes_read_disjoint_shards(world, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    out = tmp_path / "ddp"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    res = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "kdtrain",
                          *_args(world, out, "--steps", "4", "--workers", "0", "--eval", "none")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stdout + res.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["samples_seen"] == 4 * 16 * 2
    r0, r1 = (set(s) for s in summary["shards_seen_by_rank"])
    assert r0 and r1 and not r0 & r1


@pytest.mark.parametrize("case", ["pattern", "noimage", "teacher_missing", "teacher_corrupt", "student_classes",
                                  "eval_classes"])
def test_bad_input_one_line_exit_2(world, tmp_path, case):
    import webdataset as wds

    out = tmp_path / "run"
    args = _args(world, out, "--steps", "1", "--workers", "0")
    if case == "pattern":
        args[args.index("--shards") + 1] = str(tmp_path / "nothing-*.tar")
    elif case == "noimage":
        with wds.TarWriter(str(tmp_path / "x-000000.tar")) as w:
            w.write({"__key__": "000000000", "json": b"{}"})
        args[args.index("--shards") + 1] = str(tmp_path / "x-*.tar")
    elif case == "teacher_missing":
        args[args.index("--teacher") + 1] = str(tmp_path / "none.pt")
    elif case == "teacher_corrupt":
        (tmp_path / "bad.pt").write_bytes(b"\x00" * 100)
        args[args.index("--teacher") + 1] = str(tmp_path / "bad.pt")
    elif case == "student_classes":
        write_teacher(tmp_path / "s5.pt", channels=1, size=12, classes=5)
        args += ["--student", str(tmp_path / "s5.pt")]
    elif case == "eval_classes":
        write_shards(tmp_path / "e3", "test", 8, 8, size=12, channels=1, classes=3)
        (tmp_path / "e3" / "test-manifest.json").write_text(json.dumps({"class_names": ["a", "b", "c"]}))
        args[args.index("--eval") + 1] = str(tmp_path / "e3" / "test-*.tar")
    assert_one_line_error(CliRunner().invoke(cli, args))
    assert not out.exists()


def test_match_stats_gives_images_the_teacher_input_statistics():
    from kdtrain.train.distill import match_stats

    x = torch.rand(4, 1, 28, 28) * 0.3 + 0.5  # bright, low-contrast surrogate images
    mean, std = torch.tensor([0.286]).view(1, 1, 1, 1), torch.tensor([0.2]).view(1, 1, 1, 1)
    y = match_stats(x, mean, std)
    assert torch.allclose(y.mean(dim=(2, 3)), torch.full((4, 1), 0.286), atol=0.01)
    assert torch.allclose(y.std(dim=(2, 3)), torch.full((4, 1), 0.2), atol=0.01)
    assert y.min() >= 0 and y.max() <= 1


def test_temperature_schedule_runs_linearly_from_start_to_end():
    from types import SimpleNamespace

    from kdtrain.train.distill import Run

    run = SimpleNamespace(cfg=DistillConfig(temperature=2.0, temperature_end=8.0), total_steps=4)
    assert [Run.temperature(run, s) for s in range(4)] == [2.0, 4.0, 6.0, 8.0]
    run.cfg = DistillConfig(temperature=5.0)
    assert Run.temperature(run, 3) == 5.0
    with pytest.raises(UserError, match="--temperature-end must be a positive"):
        DistillConfig(temperature_end=0.0, out="runs/x").validate()


def test_augmentation_on_the_device_trains_the_same_student(world, tmp_path):
    """--augment-on device: the workers only decode and the step augments each batch from the seed it carries,
    so on the CPU the student is the one the loader-augmented run makes, bit for bit."""
    students = {}
    for where in ("loader", "device"):
        cfg = DistillConfig(teacher=str(world / "teacher.pt"), shards=[str(world / "s" / "leaves-*.tar")], steps=4,
                            batch_size=16, workers=1, threads=1, out=str(tmp_path / where), tensorboard=False,
                            progress=False, eval="none", augment_on=where)
        distill(cfg)
        students[where] = torch.load(tmp_path / where / "student.pt", weights_only=True)["state_dict"]
    a, b = students["loader"], students["device"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(UserError, match="--augment-on must be one of device, loader"):
        DistillConfig(out=str(tmp_path / "x"), augment_on="gpu").validate()


def test_batches_are_labelled_by_a_batchnorm_folded_copy_of_the_teacher(tmp_path):
    from kdtrain.train.distill import labelling_teacher

    write_teacher(tmp_path / "t.pt", channels=1, size=12, arch="resnet8")
    teacher = load_teacher(tmp_path / "t.pt")
    for m in teacher.model.modules():  # statistics away from the identity, so folding has work to do
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(generator=torch.Generator().manual_seed(1))
            m.running_var.uniform_(0.5, 2.0, generator=torch.Generator().manual_seed(2))
    labeller = labelling_teacher(teacher)
    x = torch.rand(8, 1, 12, 12, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.allclose(labeller(x), teacher(x), atol=1e-5)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in labeller.model.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in teacher.model.modules())  # the hooks' teacher keeps them
