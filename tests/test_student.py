"""`kdtrain student`: teacher file -> a pool of surrogate shaders -> the statistics distance chosen by a probe
batch -> teacher-guided selection -> refinement ->
distillation with the attack -> export, on a tiny budget, end to end in real processes; continuing after a kill;
bad input."""

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch
import yaml

from kdtrain.data.holdout import held_out
from tests._kdtrain_fixtures import write_teacher
from tests.conftest import assert_one_line_error, kill_at_first_checkpoint

ROOT = Path(__file__).resolve().parents[1]
# 48 shader images of 12 px, 12 steps of 16 (3 per epoch: a checkpoint every 3 steps), one thread each
# --stats auto: every stage of the command runs, the probe included
TINY = ["--images", "48", "--budget", "192", "--batch-size", "16", "--workers", "1", "--threads", "1", "--no-progress",
        "--stats", "auto"]


def _cmd(teacher: Path, out: Path, *extra) -> list[str]:
    return [sys.executable, "-m", "kdtrain", "student", "--teacher", str(teacher), "--out", str(out), *TINY, *extra]


def _images(shard: Path) -> dict:
    with tarfile.open(shard) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.name.endswith(".png")}


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A teacher and one uninterrupted run of the command: (teacher, out, completed process)."""
    d = tmp_path_factory.mktemp("student")
    write_teacher(d / "teacher.pt", channels=1, size=12)
    out = d / "run"
    proc = subprocess.run(_cmd(d / "teacher.pt", out), capture_output=True, text=True, timeout=600, env=_env())
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return d / "teacher.pt", out, proc


def test_one_command_from_teacher_to_exported_student(finished):
    _, out, proc = finished
    lines = proc.stdout.splitlines()
    for n, stage in enumerate(("surrogate images: 960 shaders", "statistics distance: raw refinement of 256",
                               "teacher-guided selection: 48", "refinement",
                               "distillation into cnn-tiny with the online attack"), 1):
        assert any(ln.startswith(f"[{n}/5] {stage}") and "done in" in ln for ln in lines), proc.stdout
    pool = json.loads((out / "data" / "shaders_pool-manifest.json").read_text())
    shaders = json.loads((out / "data" / "shaders-manifest.json").read_text())
    refined = json.loads((out / "data" / "shaders_ref-manifest.json").read_text())
    assert pool["num_samples"] == 20 * 48 and pool["generator"] == "shaders"  # --pool 20 times --images
    assert shaders["num_samples"] == refined["num_samples"] == 48 and refined["generator"] == "refine"
    assert shaders["generator"] == "guided" and shaders["summary"]["pool_images"] == 960
    summary = json.loads((out / "summary.json").read_text())
    # --stats auto: raw unless raw refinement of the pool's first 256 images left over half short of their targets;
    # selection and refinement then both use the distance chosen
    probe = summary["stages"]["stats"]
    assert probe["count"] == 256 and probe["stats"] == ("raw" if probe["probe_reached"] >= 0.5 else "kl")
    assert shaders["params"]["stats"] == refined["params"]["refine"]["stats"] == probe["stats"]
    chosen = summary["stages"]["select"]
    assert sum(chosen["class_counts"]) == 48 and sum(chosen["pool_class_counts"]) == 960
    assert 1 <= chosen["groups_kept"] <= chosen["groups"]
    assert summary["steps"] == 12 and summary["samples_seen"] == 192 == summary["budget_samples"]
    assert summary["export"]["pt2"] == str(out / "student" / "student.pt2") and Path(summary["export"]["pt2"]).is_file()
    assert 0 < summary["holdout_samples"] < 48 and 0 <= summary["holdout_agreement"] <= 1
    assert summary["holdout_kl"] >= 0 and summary["student_top1"] is None  # no real test data given
    run_config = yaml.safe_load((out / "student" / "config.yaml").read_text())
    assert run_config["adv"] == "fraction=0.5,every=1" and run_config["shards"] == [f"{out}/data/shaders_ref-0*.tar"]
    # the closing table names every file made, and the quality figure
    table = proc.stdout[proc.stdout.index("stage  "):]
    for made in ("shaders_pool-*.tar", "shaders-*.tar", "shaders_ref-*.tar", "student.pt", "student.pt2",
                 f"statistics distance: {probe['stats']} (raw refinement of a probe batch reached",
                 "held-out refined images", "teacher-guided selection: 48 of 960 pool images, from",
                 "refined images per class (teacher's prediction): relative entropy"):
        assert made in table
    # what refinement gave each class: the teacher's predictions and the targets, both summing to the set
    ref = summary["stages"]["refine"]
    assert sum(ref["class_counts"]) == sum(ref["target_counts"]) == 48 == len(ref["class_counts"]) * 4.8
    assert 0 <= ref["class_entropy"] <= 1 and 0 <= ref["target_entropy"] <= 1 and len(ref["class_names"]) == 10
    assert refined["summary"]["class_counts"] == ref["class_counts"]  # kept in the manifest, as `refine` keeps it
    assert refined["summary"]["class_entropy"] == ref["class_entropy"]
    assert refined["summary"]["target_entropy"] == ref["target_entropy"]
    # the held-out refined images were never in a training batch: the trained shards' keys all pass the hash
    trained = json.loads((out / "student" / "summary.json").read_text())["shards_seen_by_rank"][0]
    assert trained and all(s.startswith("shaders_ref-") for s in trained)
    assert sum(held_out("shaders_ref-000000.tar", f"{i:09d}", 0.05) for i in range(48)) == summary["holdout_samples"]

    again = subprocess.run(_cmd(finished[0], out), capture_output=True, text=True, timeout=300, env=_env())
    assert again.returncode == 0 and again.stdout.count("done earlier") == 5, again.stdout + again.stderr[-2000:]


def test_a_killed_run_continues_from_its_last_stage_to_the_same_student(finished, tmp_path):
    teacher, done, _ = finished
    out = tmp_path / "run"
    proc = subprocess.Popen(_cmd(teacher, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    kill_at_first_checkpoint(proc, out / "student", timeout=600)  # in the distillation stage
    assert json.loads((out / "stages.json").read_text())["done"].keys() == {"surrogate", "stats", "select", "refine"}

    rerun = subprocess.run(_cmd(teacher, out), capture_output=True, text=True, timeout=600, env=_env())
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert rerun.stdout.count("done earlier") == 4 and "[5/5] distillation" in rerun.stdout
    # the same images (their JSON names the folder)
    for name in ("shaders_pool-000000.tar", "shaders-000000.tar", "shaders_ref-000000.tar"):
        assert _images(out / "data" / name) == _images(done / "data" / name)
    a = torch.load(out / "student" / "student.pt", weights_only=True)["state_dict"]
    b = torch.load(done / "student" / "student.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_without_selection_the_rendered_images_are_refined(finished, tmp_path):
    out = tmp_path / "r"
    proc = subprocess.run(_cmd(finished[0], out, "--select", "off", "--budget", "32", "--adv", "off", "--stats", "kl"),
                          capture_output=True, text=True, timeout=600, env=_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[1/3] surrogate images: 48 shaders" in proc.stdout and "[3/3] distillation into cnn-tiny:" in proc.stdout
    assert yaml.safe_load((out / "student" / "config.yaml").read_text())["adv"] is None
    shaders = json.loads((out / "data" / "shaders-manifest.json").read_text())
    assert shaders["generator"] == "shaders" and shaders["num_samples"] == 48
    stages = json.loads((out / "summary.json").read_text())["stages"]
    assert not list((out / "data").glob("shaders_pool*")) and "select" not in stages
    # a distance given, not chosen: no probe stage, and refinement used it
    assert "stats" not in stages and json.loads((out / "data" / "shaders_ref-manifest.json").read_text())[
        "params"]["refine"]["stats"] == "kl"
    # the same images as the first 48 of the guided run's pool: one seed, one generator
    pool = _images(finished[1] / "data" / "shaders_pool-000000.tar")
    first = [v for k, v in pool.items() if int(k[:9]) < 48]
    assert list(_images(out / "data" / "shaders-000000.tar").values()) == first


def test_without_refinement_the_selected_images_are_distilled(finished, tmp_path):
    out = tmp_path / "r"
    proc = subprocess.run(_cmd(finished[0], out, "--no-refine", "--budget", "32"), capture_output=True, text=True,
                          timeout=600, env=_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[3/4] teacher-guided selection" in proc.stdout and "] refinement" not in proc.stdout
    assert "held-out surrogate images" in proc.stdout
    run_config = yaml.safe_load((out / "student" / "config.yaml").read_text())
    assert run_config["shards"] == [f"{out}/data/shaders-0*.tar"] and not list((out / "data").glob("shaders_ref*"))
    # the same selection as the refined run's: one pool, one teacher, one seed
    assert _images(out / "data" / "shaders-000000.tar") == _images(finished[1] / "data" / "shaders-000000.tar")


@pytest.mark.parametrize("extra, needle", [
    (["--budget", "lots"], "--budget 'lots'"),
    (["--images", "5"], "--images must be at least 20"),
    (["--select", "best"], "--select"),
    (["--pool", "1"], "--pool"),
    (["--stats", "l1"], "--stats"),
])
def test_bad_input_is_one_line(finished, tmp_path, extra, needle):
    proc = subprocess.run(_cmd(finished[0], tmp_path / "r", *extra), capture_output=True, text=True, timeout=120,
                          env=_env())
    assert_one_line_error(proc, needle)
    assert not (tmp_path / "r").exists()


def test_other_settings_in_the_same_folder_are_refused(finished):
    teacher, out, _ = finished
    proc = subprocess.run(_cmd(teacher, out, "--seed", "1"), capture_output=True, text=True, timeout=120, env=_env())
    assert_one_line_error(proc, "other settings (seed)")


def test_a_file_that_is_no_teacher_leaves_no_output_folder(tmp_path):
    bad = tmp_path / "teacher.pt"
    bad.write_text("not a model")
    proc = subprocess.run(_cmd(bad, tmp_path / "r"), capture_output=True, text=True, timeout=120, env=_env())
    assert_one_line_error(proc, "cannot read teacher")
    assert not (tmp_path / "r").exists()


def test_a_second_run_into_a_held_folder_is_refused(finished, tmp_path):
    from kdgen.lock import OutputLock

    out = tmp_path / "r"
    with OutputLock(out, "student"):  # as a first `kdtrain student --out r` still running holds it
        proc = subprocess.run(_cmd(finished[0], out), capture_output=True, text=True, timeout=120, env=_env())
    assert_one_line_error(proc, "another")
    assert not (out / "stages.json").exists()
