"""Hostile input (issue #15): every file here is built by the test; each test names the item it covers.

Bad input must give one line (`error: ...`) and exit status 2, leave nothing half-written, run no code
from a model file, and never end in a false success.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import pickle
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import webdataset as wds
from click.testing import CliRunner

from kdgen.cli import cli as kdgen_cli
from kdgen.runner import RunConfig, generate, plan
from kdtrain.cli.main import cli as kdtrain_cli
from kdtrain.errors import UserError
from kdtrain.models.registry import create_model
from kdtrain.models.teachers import load_teacher
from tests._kdtrain_fixtures import png, write_shards, write_teacher
from tests.conftest import render_counted, shader_dir

torch.set_num_threads(1)
QUIET = ["--threads", "1", "--no-tensorboard", "--no-progress", "--workers", "0"]
SPEC = {"channels": 1, "height": 12, "width": 12, "mean": [0.5], "std": [0.25]}


def kdgen(*args):
    return CliRunner().invoke(kdgen_cli, [str(a) for a in args])


def kdtrain(*args):
    return CliRunner().invoke(kdtrain_cli, [str(a) for a in args])


def one_line_error(res, needle: str) -> str:
    text = res.output
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    assert res.exit_code == 2, res.output
    assert len(lines) == 1 and lines[0].startswith("error: "), text
    assert needle in lines[0], lines[0]
    assert "Traceback" not in text
    return lines[0]


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    """A grey 12 px teacher (checkpoint), 4 classes, and 40 unlabelled grey 12 px samples in 3 shards."""
    d = tmp_path_factory.mktemp("hostile")
    write_teacher(d / "t.pt", channels=1, size=12, classes=4)
    write_shards(d / "data", "pool", n=40, per_shard=16, size=12, channels=1, labels=False)
    return d


# ---- 1. a .pt2 teacher that runs code ------------------------------------------------------------


class Payload:
    """Unpickling this creates the marker file: proof that code from the model file ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def export(path: Path, batch: int | None = None) -> Path:
    torch.manual_seed(0)
    model = create_model("cnn-tiny", 4, 1).eval()
    x = torch.zeros(2 if batch is None else batch, 1, 12, 12)
    dyn = ({0: torch.export.Dim("batch", min=1)},) if batch is None else None
    torch.export.save(torch.export.export(model, (x,), dynamic_shapes=dyn), str(path))
    path.with_suffix(".json").write_text(json.dumps(SPEC))
    return path


def tamper(src: Path, dst: Path, marker: Path, what: str) -> Path:
    """A copy of an export whose first weight (or sample inputs) became a pickle that runs a command."""
    evil = pickle.dumps(Payload(marker))
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(dst, "w") as out:
        for name in z.namelist():
            data = z.read(name)
            if what == "weights" and name.endswith("weights_config.json"):
                cfg = json.loads(data)
                first = next(iter(cfg["config"].values()))
                first["use_pickle"] = True
                evil_file = first["path_name"]
                data = json.dumps(cfg).encode()
            elif what == "sample_inputs" and "/data/sample_inputs/" in name:
                data = _torch_save_bytes(Payload(marker))
            out.writestr(name, data)
    if what == "weights":  # replace the weight file itself with the payload
        with zipfile.ZipFile(dst) as z:
            items = [(n, z.read(n)) for n in z.namelist()]
        with zipfile.ZipFile(dst, "w") as out:
            for n, data in items:
                out.writestr(n, evil if n.endswith(f"/data/weights/{evil_file}") else data)
    dst.with_suffix(".json").write_text(json.dumps(SPEC))
    return dst


def _torch_save_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return export(tmp_path_factory.mktemp("pt2") / "good.pt2")


def test_item1_plain_export_loads(exported):
    teacher = load_teacher(exported)
    assert teacher.num_classes == 4 and teacher(torch.zeros(3, 1, 12, 12)).shape == (3, 4)


@pytest.mark.parametrize("what", ["weights", "sample_inputs"])
def test_item1_pt2_that_asks_to_unpickle_is_refused_and_runs_nothing(exported, kit, tmp_path, what):
    marker = tmp_path / "PWNED"
    evil = tamper(exported, tmp_path / "evil.pt2", marker, what)
    res = kdtrain("score", "--teacher", evil, "--shards", f"{kit}/data/pool-*.tar", "--out", tmp_path / "sc")
    one_line_error(res, "refusing teacher")
    with pytest.raises(UserError, match="pickle"):  # --student FILE goes through the same loader
        load_teacher(evil)
    assert not marker.exists()
    assert not (tmp_path / "sc").exists()


def test_item1_torchscript_unpickler_resolves_no_python_globals(tmp_path):
    """TorchScript's own unpickler only knows TorchScript types: a pickled os.system is refused (see
    docs/FORMAT.md, 'What a teacher file may do')."""
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(tmp_path / "ts.pt"))
    marker = tmp_path / "PWNED"
    with zipfile.ZipFile(tmp_path / "ts.pt") as z, zipfile.ZipFile(tmp_path / "evil.pt", "w") as out:
        for name in z.namelist():
            data = z.read(name)
            out.writestr(name, pickle.dumps(Payload(marker), protocol=2) if name.endswith("/data.pkl") else data)
    (tmp_path / "evil.json").write_text(json.dumps({"channels": 1, "height": 1, "width": 2, "mean": [0], "std": [1]}))
    with pytest.raises(UserError, match="cannot read teacher"):
        load_teacher(tmp_path / "evil.pt")
    assert not marker.exists()


# ---- 2. memory blow-ups ----------------------------------------------------------------------


@pytest.mark.parametrize("args,needle", [
    (["--n", "1000000000000"], "--n 1000000000000 is more than"),
    (["--n", "10", "--size", "100000"], "--size 100000x100000 is too large"),
    (["--n", "100000000", "--shard-size", "1"], "raise --shard-size"),
])
def test_item2_sizes_are_limited_before_any_work(tmp_path, args, needle):
    one_line_error(kdgen("leaves", *args, "--out", tmp_path / "o"), needle)
    assert not (tmp_path / "o").exists()


def test_item2_the_shard_plan_is_lazy():
    shards = plan(10**9, 1000, rank=1, world_size=4)
    assert not isinstance(shards, list)
    assert list(itertools.islice(shards, 2)) == [(1, 1000, 1000), (5, 5000, 1000)]


# ---- 3. kdgen: one line, exit 2 ------------------------------------------------------------------


@pytest.mark.parametrize("args,needle", [
    (["noise", "--seed", "-1"], "--seed"),
    (["noise", "--variant", "spectral", "--alpha", "3,1"], "--alpha"),
    (["noise", "--variant", "spectral", "--alpha", "nan,nan"], "--alpha"),
    (["leaves", "--exponent", "nan"], "--exponent"),
    (["leaves", "--exponent", "inf"], "--exponent"),
    (["leaves", "--rmin", "1e-9"], "--rmin"),
])
def test_item3_kdgen_values(tmp_path, args, needle):
    one_line_error(kdgen(*args, "--n", 4, "--out", tmp_path / "o"), needle)
    assert not (tmp_path / "o").exists()


def hostile_set(folder: Path, case: str) -> Path:
    """A small noise set, then spoiled: a truncated shard, a corrupt first PNG, or first samples without images."""
    generate(RunConfig(generator="noise", n=12, size=(8, 8), out=folder, shard_size=4, progress=False))
    first = folder / "noise-000000.tar"
    if case == "truncated":
        data = first.read_bytes()
        first.write_bytes(data[: len(data) // 3])
    else:
        with tarfile.open(first) as tar:
            members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
        with tarfile.open(first, "w", format=tarfile.USTAR_FORMAT) as tar:
            for m, data in members:
                if m.name.endswith(".png") and m.name.startswith(("000000000", "000000001")):
                    if case == "no-image":
                        continue
                    data = b"\x89PNG\r\n\x1a\n broken"
                m.size = len(data)
                tar.addfile(m, io.BytesIO(data))
    return folder / "noise"


@pytest.mark.parametrize("case", ["truncated", "corrupt-png", "no-image"])
def test_item3_preview_passes_over_bad_samples(tmp_path, case):
    dataset = hostile_set(tmp_path, case)
    res = kdgen("preview", dataset, "-o", tmp_path / "sheet.png", "--count", 16, "--cell", 8)
    assert res.exit_code == 0, res.output
    assert "skipped" in res.output and "unreadable" in res.output
    assert (tmp_path / "sheet.png").stat().st_size > 0


def test_item3_manifest_that_is_not_an_object(tmp_path):
    (tmp_path / "x-manifest.json").write_text("[1, 2, 3]")
    for cmd in ("info", "preview"):
        one_line_error(kdgen(cmd, tmp_path / "x"), "not an object")
    (tmp_path / "y-manifest.json").write_text('{"name": "y"}')
    one_line_error(kdgen("info", tmp_path / "y"), "not a kdgen manifest")


# ---- 4 and 5. kdtrain: one line, exit 2, and no false success --------------------------------------


def distill_args(kit, out, *extra):
    return ["distill", "--teacher", kit / "t.pt", "--shards", f"{kit}/data/pool-*.tar", "--eval", "none",
            "--batch-size", 8, "--out", out, *QUIET, *extra]


@pytest.mark.parametrize("extra,needle", [
    (["--lr", "-1"], "--lr"),
    (["--lr", "nan"], "--lr"),
    (["--batch-size", "0"], "--batch-size"),
    (["--steps", "-5"], "--steps"),
    (["--steps", "0"], "--steps"),
    (["--eval-limit", "-1"], "--eval-limit"),
    (["--temperature", "0"], "--temperature"),
])
def test_item4_5_distill_values_are_checked_up_front(kit, tmp_path, extra, needle):
    one_line_error(kdtrain(*distill_args(kit, tmp_path / "run"), *extra), needle)
    assert not (tmp_path / "run").exists()


def test_item5_teacher_epochs_negative(tmp_path):
    res = kdtrain("teacher", "--data", "fashion-mnist", "--epochs", "-1", "--out", tmp_path / "run", *QUIET)
    one_line_error(res, "--epochs")
    assert not (tmp_path / "run").exists()


def test_item4_out_is_a_file_or_unwritable(kit, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    one_line_error(kdtrain(*distill_args(kit, blocker)), "is a file")
    one_line_error(kdtrain("teacher", "--data", "fashion-mnist", "--out", blocker, *QUIET), "is a file")
    if os.access("/proc", os.W_OK) and not Path("/proc/self").exists():
        pytest.skip("no /proc here")
    under_proc = "/proc/kdtrain-test/run"
    one_line_error(kdtrain(*distill_args(kit, under_proc)), "cannot write")
    one_line_error(kdtrain("teacher", "--data", "fashion-mnist", "--out", under_proc, *QUIET), "cannot write")
    one_line_error(kdtrain("score", "--teacher", kit / "t.pt", "--shards", f"{kit}/data/pool-*.tar", "--out",
                           under_proc), "cannot write")
    one_line_error(kdtrain("report", "--runs", tmp_path, "--data", tmp_path, "--out", f"{under_proc}/r.md"),
                   "cannot write")


def test_item4_fixed_batch_export_and_non_model_files(kit, tmp_path):
    fixed = export(tmp_path / "fixed.pt2", batch=1)
    one_line_error(kdtrain(*distill_args(kit, tmp_path / "r1", "--teacher", fixed)), "dynamic batch")
    text = tmp_path / "notes.pt"
    text.write_text("everything is fine\n")
    noise = tmp_path / "noise.pt"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    for bad in (text, noise):
        line = one_line_error(kdtrain(*distill_args(kit, tmp_path / "r2", "--teacher", bad)), "accepted:")
        assert "weights_only=False" not in line and "KeyError" not in line
    not_zip = tmp_path / "x.pt2"
    not_zip.write_text("hello")
    one_line_error(kdtrain(*distill_args(kit, tmp_path / "r3", "--teacher", not_zip)), "not a .pt2 archive")


def test_item5_non_finite_loss_stops_the_run(kit, tmp_path):
    ckpt = torch.load(kit / "t.pt", weights_only=True)
    ckpt["state_dict"] = {k: v.float().fill_(float("nan")) if v.is_floating_point() else v
                          for k, v in ckpt["state_dict"].items()}
    torch.save(ckpt, tmp_path / "nan.pt")
    out = tmp_path / "run"
    res = kdtrain(*distill_args(kit, out, "--teacher", tmp_path / "nan.pt", "--steps", 4, "--log-every", 2))
    one_line_error(res, "non-finite" if "non-finite" in res.output else "loss became nan")
    assert not (out / "student.pt").exists() and not (out / "summary.json").exists()


# ---- 6 and 10. a named shader folder that yields nothing; a failed run leaves no folder ----------------


BAD_SHADERS = {"broken.glsl": "void mainImage(out vec4 c, in vec2 p) { c = vec4(1.0) + ; }",
               "flat.glsl": "void mainImage(out vec4 c, in vec2 p) { c = vec4(0.5, 0.5, 0.5, 1.0); }"}


def test_item6_and_10_shader_dir_of_bad_shaders_fails_and_leaves_no_folder(tmp_path):
    root = tmp_path / "shaders"
    root.mkdir()
    for name, text in BAD_SHADERS.items():
        (root / name).write_text(text)
    out = tmp_path / "new" / "out"
    for flags in (["--shader-dir", root, "--source", "library"], ["--shader-dir", root], ["--source", root]):
        res = kdgen("shaders", "--n", 4, "--size", 16, *flags, "--out", out, "--quiet")
        one_line_error(res, "every imported shader was rejected")
        assert not (tmp_path / "new").exists()  # item 10: the folders the run made are gone
    assert "--source DIR renders only" in kdgen("shaders", "--help").output


def test_item10_failed_generation_removes_the_folders_it_made(tmp_path, monkeypatch):
    from kdgen import errors
    from kdgen.generators.leaves import Leaves

    def fail(self, rngs):
        raise errors.UserError("simulated failure while rendering")

    monkeypatch.setattr(Leaves, "render_rngs", fail)
    one_line_error(kdgen("leaves", "--n", 4, "--out", tmp_path / "a" / "b", "--quiet"), "simulated failure")
    assert not (tmp_path / "a").exists()


# ---- 7. attack and curate resume after a kill ---------------------------------------------------


KILL_AFTER = """
import os, sys
from kdgen import writer
limit, written = int(sys.argv[1]), [0]
plain = writer.ShardFile.write
def write(self, sample):
    written[0] += 1
    if written[0] > limit:
        self.stream.flush()
        os._exit(9)  # a kill: no cleanup runs, the temporary shard stays behind
    plain(self, sample)
writer.ShardFile.write = write
from kdtrain.cli.main import cli
cli(sys.argv[2:])
"""


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("cmd,extra", [
    ("attack", ["--stages", "pre,post", "--max-steps", 3, "--deeper-steps", 0]),
    ("curate", ["--per-class", 6, "--fill-with-attack", "--max-steps", 3, "--deeper-steps", 0]),
])
def test_item7_killed_attack_and_curate_resume_to_the_same_bytes(kit, tmp_path, cmd, extra):
    out = tmp_path / "o" / "set"
    args = [cmd, "--teacher", kit / "t.pt", "--shards", f"{kit}/data/pool-*.tar", "--out", out, "--shard-size", 3,
            "--batch-size", 8, *extra]
    args = [str(a) for a in args]
    full = kdtrain(*args)
    assert full.exit_code == 0, full.output
    want = folder_bytes(out.parent)
    assert sum(n.endswith(".tar") for n in want) >= 3
    for f in out.parent.iterdir():
        f.unlink()
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    killed = subprocess.run([sys.executable, "-c", KILL_AFTER, "7", *args], env=env, capture_output=True, text=True,
                            timeout=300)
    assert killed.returncode == 9, killed.stderr
    left = sorted(p.name for p in out.parent.iterdir())
    assert "set-000001.tar" in left and any(".tmp" in n for n in left) and "set-manifest.json" in left
    again = kdtrain(*args)
    assert again.exit_code == 0, again.output
    assert folder_bytes(out.parent) == want
    one_line_error(kdtrain(*args), "already exists")  # a finished set is not silently redone


# ---- 8. the slow-shader probe runs at the real frame size ---------------------------------------------


SLOW_WHEN_LARGE = """
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    float x = fragCoord.x * 0.01 + iTime;
    if (iResolution.x > 20.0) {  // cheap at a small probe size, very slow at the real one
        for (int i = 0; i < 2000; i++) {
            // llvmpipe caps a loop's iterations (65,535): the work per iteration makes it slow
            for (int j = 0; j < 2000; j++) { x = sin(sin(sin(sin(x * 1.7 + 0.3) + x) + x) + x); }
        }
    }
    fragColor = vec4(fract(x), fract(fragCoord.y * 0.05), fract(x * 3.0), 1.0);
}
"""


def test_item8_probe_at_real_size_catches_resolution_dependent_slowness(tmp_path):
    from kdgen.registry import get_generator
    from kdgen.seeding import sample_seed

    root = shader_dir(tmp_path, "toy_rings.glsl")
    (root / "sly.glsl").write_text(SLOW_WHEN_LARGE)
    gen = get_generator("shaders")((32, 32), source=str(root), supersample=1, probe_timeout=2.0)
    out, counters = render_counted(gen, [sample_seed(0, i) for i in range(4)])
    assert counters["programs_too_slow"] == 1
    assert {m["program"] for _, m in out} == {"dir/toy_rings.glsl"}


# ---- 9. a FIFO among the shards -------------------------------------------------------------------


def test_item9_fifo_matched_by_shards_is_refused(kit, tmp_path):
    data = tmp_path / "data"
    write_shards(data, "pool", n=16, per_shard=16, size=12, channels=1, labels=False)
    os.mkfifo(data / "pool-000001.tar")
    res = kdtrain(*distill_args(kit, tmp_path / "run", "--shards", f"{data}/pool-*.tar"))
    one_line_error(res, "not a regular file")


# ---- 11. one warning line per shard, counts in the summary ------------------------------------------


def test_item11_bad_samples_give_one_line_per_shard(kit, tmp_path):
    data = tmp_path / "bad"
    data.mkdir()
    for s in range(2):
        with wds.TarWriter(str(data / f"bad-{s:06d}.tar"), mtime=0) as w:
            for i in range(12):
                key = f"{s * 12 + i:09d}"
                img = png(np.full((12, 12), 100, np.uint8)) if i >= 10 else b"\x89PNG\r\n\x1a\n not a png"
                w.write({"__key__": key, "png": img})
    res = kdtrain("score", "--teacher", kit / "t.pt", "--shards", f"{data}/bad-*.tar", "--out", tmp_path / "sc")
    assert res.exit_code == 0, res.output
    warnings = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(warnings) == 2 and all(ln.startswith("warning: ") and "10 bad samples" in ln for ln in warnings)
    assert "skipped 20 bad samples" in res.stdout
