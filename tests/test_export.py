"""The deployable student (student.pt2 written by every run) and the held-out surrogate slice (--holdout)."""

import csv
import json
import subprocess
import sys

import pytest
import torch

from kdtrain.data.holdout import held_out, load_held_out
from kdtrain.data.shards import expand_patterns
from kdtrain.errors import UserError
from kdtrain.models.export import export_model
from kdtrain.models.teachers import load_teacher
from kdtrain.train.config import DistillConfig
from kdtrain.train.distill import distill
from tests._kdtrain_fixtures import write_shards, write_teacher

torch.set_num_threads(1)

# What a user of the export runs: plain torch, no kdtrain, in a fresh process.
RUN_EXPORT = """
import sys, torch
model = torch.export.load(sys.argv[1]).module()
torch.save({n: model(x) for n, x in torch.load(sys.argv[2], weights_only=True).items()}, sys.argv[3])
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """RGB 16 px unlabelled surrogate shards and a random grey 12 px teacher with its own mean/std."""
    d = tmp_path_factory.mktemp("export")
    write_shards(d / "s", "leaves", 160, 40, size=16, channels=3, labels=False)
    write_teacher(d / "teacher.pt", channels=1, size=12)
    return d


def _config(world, out, **kw) -> DistillConfig:
    base = dict(teacher=str(world / "teacher.pt"), shards=[str(world / "s" / "leaves-*.tar")], steps=6, batch_size=16,
                workers=0, threads=1, out=str(out), tensorboard=False, progress=False, eval="none", log_every=2)
    return DistillConfig(**{**base, **kw})


def test_export_runs_in_a_fresh_process_like_the_trained_student(world, tmp_path):
    out = tmp_path / "run"
    summary = distill(_config(world, out, student="resnet8"))
    assert summary["export"] == {"pt2": str(out / "student.pt2"), "onnx": summary["export"]["onnx"]}
    side = json.loads((out / "student.json").read_text())
    assert side["spec"]["mean"] == [0.0] and side["normalization"]["mean"] == [0.5] and side["num_classes"] == 10

    trained = load_teacher(out / "student.pt")  # the checkpoint, normalising with its spec, float32
    inputs = {"one": torch.rand(1, 1, 12, 12), "seven": torch.rand(7, 1, 12, 12)}  # dynamic batch
    torch.save(inputs, tmp_path / "x.pt")
    proc = subprocess.run([sys.executable, "-c", RUN_EXPORT, str(out / "student.pt2"), str(tmp_path / "x.pt"),
                           str(tmp_path / "y.pt")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = torch.load(tmp_path / "y.pt", weights_only=True)
    with torch.no_grad():
        for name, x in inputs.items():
            want = trained(x).float()
            assert got[name].shape == want.shape and got[name].dtype == torch.float32
            assert (got[name] - want).abs().max() <= 1e-4, name

    again = load_teacher(out / "student.pt2")  # the export, with its JSON, also loads as a teacher
    assert again.num_classes == 10 and torch.allclose(again(inputs["seven"]), got["seven"], atol=1e-5)


def test_onnx_export_matches_the_model(world, tmp_path):
    pytest.importorskip("onnxscript", reason="the onnx extra (pip install '.[onnx]') is not installed")
    from onnx.reference import ReferenceEvaluator

    teacher = load_teacher(world / "teacher.pt")
    files = export_model(teacher.model, teacher.spec, tmp_path / "t.pt2", teacher.class_names, onnx=True)
    x = torch.rand(3, 1, 12, 12)
    (y,) = ReferenceEvaluator(files["onnx"]).run(None, {"images": x.numpy()})
    with torch.no_grad():
        assert abs(torch.from_numpy(y) - teacher(x)).max() <= 1e-4


def test_held_out_samples_are_measured_and_never_trained_on(world, tmp_path):
    urls = expand_patterns([str(world / "s" / "leaves-*.tar")])
    trained = []

    def record(batch, step):
        trained.extend(zip(batch["urls"], batch["keys"], strict=True))
        return batch

    out = tmp_path / "h"
    summary = distill(_config(world, out, holdout=0.25, epochs=2, steps=None, batch_size=32, workers=1), record)
    assert len(trained) == summary["samples_seen"] == 2 * 160 // 32 * 32
    assert not any(held_out(u, k, 0.25) for u, k in trained)
    images, names = load_held_out([urls], load_teacher(world / "teacher.pt").spec, 0.25, 1000)
    assert 20 < len(names) < 60 and len(images) == len(names) == summary["holdout_samples"]
    assert not {n for n in names} & {f"{u.rsplit('/', 1)[-1]}/{k}" for u, k in trained}
    assert 0 <= summary["holdout_agreement"] <= 1 and summary["holdout_kl"] >= 0
    rows = [r for r in csv.DictReader((out / "metrics.csv").open()) if r["kind"] == "eval"]
    assert len(rows) == 2 and all(0 <= float(r["holdout_agreement"]) <= 1 for r in rows)
    # the key hash keeps about the asked-for share out of training
    assert sum(held_out(u, f"{i:09d}", 0.05) for u in urls for i in range(1000)) in range(150, 250)


def test_no_export_writes_only_the_checkpoint_and_a_resume_may_export_it(world, tmp_path):
    out = tmp_path / "run"
    summary = distill(_config(world, out, export=False))
    assert summary["export"] is None and json.loads((out / "summary.json").read_text())["export"] is None
    assert sorted(f.name for f in out.glob("student.*")) == ["student.pt"]
    # the setting changes no training, so the finished run continues with it changed, and exports
    again = distill(_config(world, out, resume=True))
    assert again["steps"] == 6 and again["export"]["pt2"] == str(out / "student.pt2")
    assert load_teacher(out / "student.pt2").num_classes == 10


def test_export_setting_must_be_a_bool():
    with pytest.raises(UserError, match="--export must be true or false, got no"):
        DistillConfig(teacher="t.pt", data="fashion-mnist", export="no").validate()
