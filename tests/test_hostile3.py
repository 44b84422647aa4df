"""Hostile input, round 3 (issue #25): every file here is built by the test; each test names the item it covers.

Bad input gives one line (`error: ...`) and exit status 2, or, for one bad sample among good ones, a
warning and a count, never a false success and never a blow-up.
"""

from __future__ import annotations

import json
import os
import struct
import tarfile
import warnings
import zlib
from pathlib import Path

import click
import numpy as np
import pytest
import torch
import webdataset as wds
from click.testing import CliRunner

from kdgen import contract
from kdgen.cli import cli as kdgen_cli
from kdgen.errors import UserError
from kdgen.gl import engine as engine_mod
from kdgen.gl import watchdog
from kdgen.seeding import sample_seed
from kdgen.settings import parse_key_values
from kdtrain.cli.main import cli as kdtrain_cli
from kdtrain.models.teachers import load_teacher
from kdtrain.synth.attack import AttackConfig
from tests._kdtrain_fixtures import png, write_teacher
from tests.conftest import render_counted

torch.set_num_threads(1)
QUIET = ["--threads", "1", "--no-tensorboard", "--no-progress", "--workers", "0"]


def kdgen(*args):
    return CliRunner().invoke(kdgen_cli, [str(a) for a in args])


def kdtrain(*args):
    return CliRunner().invoke(kdtrain_cli, [str(a) for a in args])


def one_line_error(res, needle: str) -> str:
    lines = [ln for ln in res.output.strip().splitlines() if ln.strip()]
    assert res.exit_code == 2, res.output
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A grey 12 px teacher with 10 classes."""
    path = tmp_path_factory.mktemp("hostile3") / "t.pt"
    write_teacher(path, channels=1, size=12, classes=10)
    return path


def grey(i: int) -> bytes:
    return png(np.full((12, 12), (37 * i) % 256, np.uint8))


def write_set(path: Path, samples: list[dict]) -> str:
    """One shard of the given samples (keys added), as kdgen writes them; returns its pattern."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wds.TarWriter(str(path), mtime=0) as w:
        for i, s in enumerate(samples):
            w.write({"__key__": f"{i:09d}", **s})
    return str(path)


def distill(teacher, shards, out, *extra):
    res = kdtrain("distill", "--teacher", teacher, "--shards", shards, "--eval", "none", "--batch-size", 8,
                  "--steps", 4, "--out", out, *QUIET, *extra)
    assert res.exit_code == 0, res.output
    return json.loads((out / "summary.json").read_text())


# ---- 1. decompression bombs ------------------------------------------------------------------------


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(side: int, rgb: bool = False, pixels: bool = True) -> bytes:
    """A side x side PNG of zeros: 1-bit grey (12000 px: 17 KB on disk, 144 MB decoded as L) or 8-bit RGB;
    `pixels=False` writes the header with a token IDAT (enough for what is read before decoding)."""
    row = b"\0" * (1 + (3 * side if rgb else -(-side // 8)))
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(side if pixels else 1)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8 if rgb else 1, 2 if rgb else 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def test_item1_the_limit_follows_the_input_side_and_the_environment(monkeypatch):
    monkeypatch.delenv(contract.MAX_SIDE_ENV, raising=False)
    assert contract.max_image_side(12) == 4096 and contract.max_image_side(512) == 16 * 512
    monkeypatch.setenv(contract.MAX_SIDE_ENV, "20000")
    assert contract.max_image_side(12) == 20000
    for bad in ("0", "lots", "-5"):
        monkeypatch.setenv(contract.MAX_SIDE_ENV, bad)
        with pytest.raises(UserError, match=contract.MAX_SIDE_ENV):
            contract.max_image_side(12)


@pytest.mark.parametrize("side,rgb,pixels", [(12000, False, True), (13000, True, False), (20000, True, False)])
def test_item1_a_bomb_is_refused_from_its_header_without_pillow_warnings(side, rgb, pixels):
    data = png_bomb(side, rgb, pixels)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning would fail here
        with pytest.raises(contract.ImageTooLarge, match="not decoded"):
            contract.decode_image(data, max_side=4096)
    assert contract.decode_image(grey(3), max_side=4096).shape == (12, 12)


def test_item1_score_and_distill_skip_and_count_a_bomb(teacher, tmp_path):
    bomb = png_bomb(12000)  # a real one: decoded it would take 144 MB
    shards = write_set(tmp_path / "data" / "b-000000.tar", [{"png": bomb if i == 5 else grey(i)} for i in range(8)])
    res = kdtrain("score", "--teacher", teacher, "--shards", shards, "--out", tmp_path / "sc")
    assert res.exit_code == 0, res.output
    assert "b; skipped 1 bad samples" in res.stdout
    (line,) = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert line.startswith("warning: ") and "12000x12000, past the limit of 4096 pixels a side" in line
    summary = distill(teacher, shards, tmp_path / "run")
    assert summary["skipped_samples"] >= 1


def test_item1_import_images_skips_and_counts_bombs_quietly(tmp_path, monkeypatch):
    src = tmp_path / "imgs"
    src.mkdir()
    (src / "bomb1.png").write_bytes(png_bomb(12000))
    (src / "bombrgb.png").write_bytes(png_bomb(13000, rgb=True, pixels=False))
    for i in range(3):
        (src / f"ok{i}.png").write_bytes(grey(i))
    res = kdgen("import-images", src, "--out", tmp_path / "out", "--size", 16, "--quiet")
    assert res.exit_code == 0, res.output
    assert "wrote 3 samples" in res.output and "too_large_skipped 2" in res.output
    assert "DecompressionBomb" not in res.output
    for name in ("bomb1", "bombrgb"):
        (src / f"{name}.png").rename(tmp_path / f"{name}.png")
    (src / "bomb1.png").write_bytes(png_bomb(12000))  # a folder of nothing but a bomb: one line, no folder
    for i in range(3):
        (src / f"ok{i}.png").unlink()
    one_line_error(kdgen("import-images", src, "--out", tmp_path / "none", "--quiet"), contract.MAX_SIDE_ENV)
    assert not (tmp_path / "none").exists()
    monkeypatch.setenv(contract.MAX_SIDE_ENV, "lots")
    one_line_error(kdgen("import-images", src, "--out", tmp_path / "none", "--quiet"), "not a positive number")
    assert not (tmp_path / "none").exists()


# ---- 2 (item 9). the slow-shader decision is stable on a busy machine ----------------------------------


MEDIUM_SLOW = """
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    float x = fragCoord.x * 0.01 + iTime;
    for (int i = 0; i < 3000; i++) { x = sin(sin(sin(sin(x * 1.7 + 0.3) + x) + x) + x); }
    fragColor = vec4(fract(x), fract(fragCoord.y * 0.05), fract(x * 3.0), 1.0);
}
"""


def test_item9_one_fast_timing_does_not_pass_a_slow_program():
    import time

    pauses = iter([0.0, 0.06, 0.06])  # the first draw ran while the machine was idle, the others not
    assert watchdog.timed_draws(lambda: time.sleep(next(pauses))) >= 0.05
    pauses = iter([2.5])  # far too slow: timed once, not three times
    assert watchdog.timed_draws(lambda: time.sleep(next(pauses))) >= 2.5


def test_item9_the_too_slow_decision_repeats(tmp_path, monkeypatch):
    from kdgen.gl.imports import from_text
    from kdgen.registry import get_generator

    root = tmp_path / "shaders"
    root.mkdir()
    (root / "medium.glsl").write_text(MEDIUM_SLOW)
    dog = watchdog.Watchdog(30.0, 16, 16)
    try:
        verdict, cost = dog.check(from_text(MEDIUM_SLOW, "dir/medium.glsl"))
    finally:
        dog.stop()
    assert verdict == "ok" and cost > 0
    monkeypatch.setattr(engine_mod, "MAX_FRAME_S", cost / 2)  # clearly too slow under this budget ...
    for _ in range(3):  # ... in every run, with a fresh probe process each time
        gen = get_generator("shaders")((16, 16), source=str(root), supersample=1, probe_timeout=30.0)
        with pytest.raises(UserError, match="every imported shader was rejected .*too slow"):
            render_counted(gen, [sample_seed(0, 0)])
    monkeypatch.setattr(engine_mod, "MAX_FRAME_S", cost * 3)  # and clearly fast enough under this one
    gen = get_generator("shaders")((16, 16), source=str(root), supersample=1, probe_timeout=30.0)
    out, counters = render_counted(gen, [sample_seed(0, i) for i in range(2)])
    assert {m["program"] for _, m in out} == {"dir/medium.glsl"} and not counters.get("programs_too_slow")


# ---- 3 (item 10). non-finite floats ------------------------------------------------------------------


def float_options():
    """(generator command, flag) of every float option of every generator."""
    for name, cmd in sorted(kdgen_cli.commands.items()):
        for p in cmd.params:
            if isinstance(p, click.Option) and not p.is_flag and "float" in p.type.name.lower():
                yield name, p.opts[0]


def test_item10_every_generator_has_float_options_to_check():
    flags = set(float_options())
    assert {("photos", "--min-std"), ("leaves", "--exponent"), ("shaders", "--probe-timeout")} <= flags


@pytest.mark.parametrize("command,flag", sorted(float_options()))
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400"])
def test_item10_non_finite_floats_are_refused_by_every_generator(tmp_path, command, flag, value):
    one_line_error(kdgen(command, flag, value, "--n", 2, "--out", tmp_path / "o"), flag)
    assert not (tmp_path / "o").exists()


def test_item10_non_finite_floats_in_ranges_and_key_values(tmp_path):
    one_line_error(kdgen("photos", "--ratio", "1,inf", "--n", 2, "--out", tmp_path / "o"), "--ratio")
    with pytest.raises(UserError, match="eps=nan"):
        parse_key_values("eps=nan", AttackConfig, what="--adv")
    assert not (tmp_path / "o").exists()


# ---- 4 (item 11). a .cls past the teacher's classes ----------------------------------------------------


def test_item11_score_warns_about_and_counts_labels_past_the_classes(teacher, tmp_path):
    model = load_teacher(teacher)
    images = [np.full((12, 12), (37 * i) % 256, np.uint8) for i in range(12)]
    with torch.no_grad():
        pred = model(torch.from_numpy(np.stack(images))[:, None].float() / 255).argmax(1).tolist()
    samples = [{"png": png(img), "cls": (b"999" if i % 4 == 0 else str(p).encode())}
               for i, (img, p) in enumerate(zip(images, pred, strict=True))]
    shards = write_set(tmp_path / "data" / "l-000000.tar", samples)
    res = kdtrain("score", "--teacher", teacher, "--shards", shards, "--out", tmp_path / "sc")
    assert res.exit_code == 0, res.output
    (line,) = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert line.startswith("warning: ") and "3 bad labels" in line and ".cls 999" in line
    assert "l; skipped 3 bad labels" in res.stdout
    report = json.loads((tmp_path / "sc" / "score.json").read_text())
    assert report["sets"]["l"]["teacher_accuracy"] == 1.0  # the 999s are no label, not wrong predictions
    summary = distill(teacher, shards, tmp_path / "run", "--ce-weight", 1)  # no IndexError from the loss
    assert summary["bad_labels"] >= 1


# ---- 5 (item 12). file names that are not UTF-8 -------------------------------------------------------


def test_item12_import_images_writes_names_every_reader_takes(tmp_path):
    src = os.fsencode(tmp_path / "imgs")
    for folder, name in ((b"cat", b"a.png"), (b"d\xf6g", b"caf\xe9.png"), (b"d\xf6g", b"b.png")):
        os.makedirs(os.path.join(src, folder), exist_ok=True)
        with open(os.path.join(src, folder, name), "wb") as f:
            f.write(grey(len(name)))
    out = tmp_path / "out"
    res = kdgen("import-images", os.fsdecode(src), "--out", out, "--size", 12, "--quiet")
    assert res.exit_code == 0, res.output
    texts = [(out / "imgs-manifest.json").read_bytes()]
    with tarfile.open(out / "imgs-000000.tar") as tar:
        texts += [tar.extractfile(m).read() for m in tar.getmembers() if m.name.endswith(".json")]
    metas = [json.loads(t.decode("utf-8", errors="strict")) for t in texts]
    for meta in metas:
        json.dumps(meta, ensure_ascii=False).encode("utf-8", errors="strict")  # no lone surrogates
    assert metas[0]["class_names"] == ["cat", "d\\xf6g"]
    assert {m["params"]["source"] for m in metas[1:]} == {"cat/a.png", "d\\xf6g/caf\\xe9.png", "d\\xf6g/b.png"}
    datasets = pytest.importorskip("datasets", reason="Hugging Face datasets is not installed")
    ds = datasets.load_dataset("webdataset", data_files={"train": str(out / "imgs-*.tar")}, split="train",
                               cache_dir=str(tmp_path / "hf"))
    assert len(ds) == 3 and "d\\xf6g/caf\\xe9.png" in {j["params"]["source"] for j in ds["json"]}


# ---- 6 (item 13). samples without an image, wherever they are ------------------------------------------


@pytest.mark.parametrize("at", [0, 5])
def test_item13_a_sample_without_an_image_is_skipped_and_counted_anywhere(teacher, tmp_path, at):
    samples = [{"json": b"{}"} if i == at else {"png": grey(i), "json": b"{}"} for i in range(8)]
    shards = write_set(tmp_path / "data" / "n-000000.tar", samples)
    summary = distill(teacher, shards, tmp_path / "run")
    assert summary["skipped_samples"] >= 1


def test_item13_a_set_without_any_image_is_refused(teacher, tmp_path):
    shards = write_set(tmp_path / "data" / "e-000000.tar", [{"json": b"{}", "cls": b"1"} for _ in range(4)])
    one_line_error(kdtrain("distill", "--teacher", teacher, "--shards", shards, "--eval", "none",
                           "--out", tmp_path / "run", *QUIET), "no image field")
    assert not (tmp_path / "run").exists()
