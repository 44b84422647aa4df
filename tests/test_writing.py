"""The shard-set writer every producer shares (kdgen/shardset.py): one run per output at a time, partial
manifests marked as such, a full disk as one line and a byte-identical continuation, the producer's version
in every manifest, and the label (.cls) of every labelled set."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from kdgen import manifest, writer
from kdgen.cli import cli as kdgen_cli
from kdgen.errors import UserError
from kdgen.lock import OutputLock, hold_run_folder
from kdgen.runner import RunConfig, generate
from kdtrain.cli.main import cli as kdtrain_cli
from kdtrain.data.shards import expand_patterns, iterate_raw
from kdtrain.quality import curate
from kdtrain.synth import attack, refine
from tests._kdtrain_fixtures import write_shards, write_teacher
from tests.conftest import assert_one_line_error

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]


def kdtrain(*args):
    return CliRunner().invoke(kdtrain_cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    """A grey 12 px teacher with BatchNorm (4 classes) and 24 unlabelled grey samples in 3 shards."""
    d = tmp_path_factory.mktemp("writing")
    write_teacher(d / "t.pt", channels=1, size=12, classes=4)
    write_shards(d / "data", "pool", n=24, per_shard=8, size=12, channels=1, labels=False)
    return d


def disk_full_after(monkeypatch, samples: int):
    """Shard writes fail with ENOSPC after `samples` samples, as on a full disk: at ShardFile's one write of
    shard bytes. Returns the function that gives the disk its space back."""
    real, calls = writer.ShardFile.write_packed, [0]

    def write_packed(self, members):
        calls[0] += 1
        if calls[0] > samples:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(self, members)

    monkeypatch.setattr(writer.ShardFile, "write_packed", write_packed)
    return lambda: monkeypatch.setattr(writer.ShardFile, "write_packed", real)


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_partial_kdgen_manifest_says_complete_false(tmp_path, monkeypatch):
    cfg = RunConfig("noise", n=12, size=(8, 8), out=tmp_path, shard_size=4, progress=False)
    restore = disk_full_after(monkeypatch, 5)
    with pytest.raises(UserError, match=r"No space left on device; the shards kept \(1\) are complete"):
        generate(cfg)
    meta = manifest.load(tmp_path / "noise-manifest.json")
    assert meta["complete"] is False and meta["shards"] == {"noise-000000.tar": 4}
    restore()
    generate(cfg)
    assert manifest.load(tmp_path / "noise-manifest.json")["complete"] is True


@pytest.mark.parametrize("cmd,extra", [("refine", ["--steps", 2, "--no-progress"]), ("curate", ["--per-class", 5])])
def test_a_full_disk_in_refine_and_curate_is_one_line_and_a_rerun_continues_byte_identically(
        kit, tmp_path, monkeypatch, cmd, extra):
    out = tmp_path / "o" / "set"
    args = [cmd, "--teacher", kit / "t.pt", "--shards", f"{kit}/data/pool-*.tar", "--out", out, "--shard-size", 4,
            "--batch-size", 8, *extra]
    clean = kdtrain(*args)
    assert clean.exit_code == 0, clean.output
    want = folder_bytes(out.parent)
    for f in out.parent.iterdir():
        f.unlink()

    restore = disk_full_after(monkeypatch, 6)
    full = kdtrain(*args)
    assert_one_line_error(full, "No space left on device; the shards kept (1) are complete")
    assert "rerun the same command" in full.output and "byte-identical" in full.output
    assert sorted(p.name for p in out.parent.iterdir()) == ["set-000000.tar", "set-manifest.json"]
    assert manifest.load(out.parent / "set-manifest.json")["complete"] is False
    restore()
    again = kdtrain(*args)
    assert again.exit_code == 0, again.output
    assert folder_bytes(out.parent) == want


def test_every_set_records_its_producers_version_and_refuses_another(kit, tmp_path, monkeypatch):
    from kdtrain.quality import curate

    out = tmp_path / "cur"
    args = ["curate", "--teacher", kit / "t.pt", "--shards", f"{kit}/data/pool-*.tar", "--out", out,
            "--shard-size", 4, "--per-class", 5]
    restore = disk_full_after(monkeypatch, 5)
    assert kdtrain(*args).exit_code == 2
    restore()
    monkeypatch.setattr(curate, "VERSION", 99)
    assert_one_line_error(kdtrain(*args), "made by curate version 1, this is version 99")
    monkeypatch.setattr(curate, "VERSION", 1)
    assert kdtrain(*args).exit_code == 0
    assert manifest.load(tmp_path / "cur-manifest.json")["generator_version"] == 1


@pytest.mark.parametrize("cmd,extra", [("attack", ["--max-steps", 2, "--deeper-steps", 0]),
                                       ("refine", ["--steps", 2, "--no-progress"]),
                                       ("curate", ["--per-class", 3])])
def test_every_labelled_set_carries_the_teachers_prediction_as_cls(kit, tmp_path, cmd, extra):
    out = tmp_path / cmd
    res = kdtrain(cmd, "--teacher", kit / "t.pt", "--shards", f"{kit}/data/pool-*.tar", "--out", out, *extra)
    assert res.exit_code == 0, res.output
    samples = list(iterate_raw(expand_patterns([f"{out}-*.tar"])))
    assert samples and all(s["label"] == s["meta"]["params"]["teacher_pred"] >= 0 for s in samples)
    versions = {"attack": attack.VERSION, "refine": refine.VERSION, "curate": curate.VERSION}
    assert manifest.load(tmp_path / f"{cmd}-manifest.json")["generator_version"] == versions[cmd]


def test_a_second_kdgen_run_into_the_same_dataset_is_refused_naming_the_first(tmp_path):
    out = tmp_path / "same"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    first = subprocess.Popen([sys.executable, "-m", "kdgen", "leaves", "--n", "4000", "--out", str(out), "--quiet"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        lock, deadline = out / ".leaves.lock", time.time() + 120
        while time.time() < deadline and not (lock.exists() and lock.read_text().strip()):
            time.sleep(0.02)
        assert first.poll() is None, first.communicate()
        second = CliRunner().invoke(kdgen_cli, ["leaves", "--n", "4000", "--out", str(out), "--quiet"])
        assert_one_line_error(second, f"another run (pid {first.pid}) is writing to --out {out}")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    with OutputLock(out, "leaves"):  # a killed holder holds nothing: the kernel released its lock
        pass
    assert not lock.exists()


def test_a_second_distill_or_curate_into_a_held_folder_is_refused(kit, tmp_path):
    run = tmp_path / "run"
    with hold_run_folder(run):
        res = kdtrain("distill", "--teacher", kit / "t.pt", "--shards", f"{kit}/data/pool-*.tar", "--steps", 2,
                      "--out", run, "--eval", "none", "--no-progress", "--no-tensorboard", "--workers", 0)
        assert_one_line_error(res, f"another run (pid {os.getpid()}) is writing to --out {run}")
        assert sorted(p.name for p in run.iterdir()) == [".run.lock"]  # no metrics.csv, no config
    assert not run.exists()  # the holder made the folder and leaves it as it found it
    with OutputLock(tmp_path, "cur"):
        res = kdtrain("curate", "--teacher", kit / "t.pt", "--shards", f"{kit}/data/pool-*.tar", "--out",
                      tmp_path / "cur", "--per-class", 3)
        assert_one_line_error(res, "another run")
    assert not list(tmp_path.glob("cur*"))
