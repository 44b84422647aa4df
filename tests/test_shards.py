"""The shard contract: layout, manifest, round trip through webdataset, determinism, resume, ranks."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import webdataset as wds

from kdgen import manifest
from kdgen.errors import UserError
from kdgen.runner import RunConfig, generate
from tests.conftest import BIN, run_cli


def make(out, **kw) -> dict:
    cfg = dict(generator="leaves", n=25, size=(16, 16), out=out, shard_size=10, progress=False)
    cfg.update(kw)
    return generate(RunConfig(**cfg))


def shard_bytes(folder: Path, name: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(Path(folder).glob(f"{name}-[0-9]*.tar"))}


def test_layout_manifest_and_webdataset_round_trip(tmp_path):
    summary = make(tmp_path)
    assert summary["samples"] == 25 and summary["shards"] == 3
    assert sorted(p.name for p in tmp_path.glob("leaves-*.tar")) == [
        "leaves-000000.tar", "leaves-000001.tar", "leaves-000002.tar"]
    meta = json.loads((tmp_path / "leaves-manifest.json").read_text())
    assert meta["num_samples"] == 25 and meta["complete"]
    assert meta["shards"] == {"leaves-000000.tar": 10, "leaves-000001.tar": 10, "leaves-000002.tar": 5}
    assert meta["generator"] == "leaves" and meta["size"] == [16, 16] and meta["params"]["shape"] == "mixed"
    info = json.loads((tmp_path / "_info.json").read_text())
    split = info["splits"]["leaves"]
    assert split["name"] == "leaves" and split["num_samples"] == 25
    assert split["filenames"] == sorted(meta["shards"]) and split["shard_lengths"] == [10, 10, 5]

    samples = list(wds.WebDataset(str(tmp_path / "leaves-{000000..000002}.tar"), shardshuffle=False,
                                  empty_check=False))
    assert [s["__key__"] for s in samples] == [f"{i:09d}" for i in range(25)]
    for i, s in enumerate(samples):
        assert set(s) >= {"__key__", "png", "json"} and "cls" not in s
        m = json.loads(s["json"])
        assert m["generator"] == "leaves" and m["index"] == i and m["seed"] == 0 and "leaves" in m["params"]
    members = [m for m in __import__("tarfile").open(tmp_path / "leaves-000000.tar").getmembers()]
    assert all(m.mtime == 0 for m in members) and [m.name for m in members][:2] == ["000000000.json",
                                                                                      "000000000.png"]


def test_shard_bytes_equal_webdataset_tarwriter(tmp_path):
    """Our packed members and end-of-archive padding are exactly what webdataset's TarWriter writes."""
    import numpy as np

    from kdgen import writer

    samples = [writer.encode_sample(i, np.full((9, 7, 3), i * 40, np.uint8), {"index": i}, "png", 95,
                                    cls=i if i % 2 else None) for i in range(5)]
    ours = writer.ShardFile(tmp_path / "ours.tar")
    for sample in samples:
        ours.write(sample)
    ours.commit()
    with open(tmp_path / "theirs.tar", "wb") as stream:
        tw = wds.TarWriter(stream, encoder=False, mtime=writer.TAR_MTIME, user="kdgen", group="kdgen")
        for sample in samples:
            tw.write(dict(sample))
        tw.close()
    assert (tmp_path / "ours.tar").read_bytes() == (tmp_path / "theirs.tar").read_bytes()


def test_png_files_are_byte_for_byte_pillows():
    """Our batch PNG encoder writes the bytes Pillow writes at PNG_COMPRESS_LEVEL: grey and RGB, flat,
    noisy and smooth rows (every filter type wins somewhere), one-pixel edges, several IDAT chunks."""
    import io

    import numpy as np
    from PIL import Image

    from kdgen import writer

    rng = np.random.default_rng(0)
    batches = []
    for shape in [(32, 32, 3), (12, 16, 3), (32, 32), (1, 1, 3), (1, 5), (7, 1, 3), (64, 48, 3), (256, 256)]:
        ramp = np.linspace(0, 255, shape[1]).reshape((1, 1, shape[1]) + (1,) * (len(shape) - 2))
        batches += [rng.integers(0, 256, (3, *shape), dtype=np.uint8), np.zeros((2, *shape), np.uint8),
                    (np.broadcast_to(ramp, (3, *shape)) + rng.integers(0, 3, (3, *shape))).astype(np.uint8),
                    rng.integers(0, 4, (3, *shape), dtype=np.uint8) * 60]
    batches.append(rng.integers(0, 256, (1, 400, 400, 3), dtype=np.uint8))  # 480 kB: 8 IDAT chunks
    for batch in batches:
        for img, ours in zip(batch, writer.encode_images(batch, "png")):
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="PNG", compress_level=writer.PNG_COMPRESS_LEVEL)
            assert ours == buf.getvalue(), img.shape
            assert ours == writer.encode_image(img, "png")


def test_png_levels_other_than_the_default():
    """Levels 1-9 are Pillow's bytes too; level 0 (the shaders generator's) stores the same pixels."""
    import io

    import numpy as np
    from PIL import Image

    from kdgen import writer

    rng = np.random.default_rng(1)
    batch = (np.linspace(0, 200, 32)[None, None, :, None] + rng.integers(0, 40, (4, 24, 32, 3))).astype(np.uint8)
    for level in (1, 9):
        for img, ours in zip(batch, writer.encode_images(batch, "png", png_level=level)):
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="PNG", compress_level=level)
            assert ours == buf.getvalue()
    for images in (batch, batch[..., 0]):
        stored = writer.encode_images(images, "png", png_level=0)
        for img, data in zip(images, stored):
            assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), img)
            assert len(data) > img.size  # stored, not deflated
    with pytest.raises(ValueError, match="0-9"):
        writer.encode_images(batch, "png", png_level=10)


def test_tar_headers_are_byte_for_byte_tarfiles():
    from kdgen import writer

    names = ["000000001.png", "000000001.json", "x" * 99, "x" * 100, "d/" + "y" * 90 + "/z.png", "\u00e9.png", ""]
    for name in names:
        for size in (0, 1, 511, 512, 2271, 8 ** 11 - 1):
            assert writer._tar_header(name, size) == writer._tarfile_header(name, size), (name, size)
    for name, size in (("y" * 150, 1), ("a.png", 8 ** 11)):  # refused as tarfile refuses them
        with pytest.raises(ValueError):
            writer._tar_header(name, size)


def test_same_seed_same_bytes_whatever_workers(tmp_path):
    for gen in ("leaves", "noise"):
        make(tmp_path / "w1", generator=gen, n=40, shard_size=16, workers=1)
        make(tmp_path / "w2", generator=gen, n=40, shard_size=16, workers=2)
        one, two = shard_bytes(tmp_path / "w1", gen), shard_bytes(tmp_path / "w2", gen)
        assert one and one == two


def test_samples_do_not_depend_on_shard_size(tmp_path):
    make(tmp_path / "a", shard_size=10)
    make(tmp_path / "b", shard_size=7)

    def images(folder):
        return [s["png"] for s in wds.WebDataset(sorted(map(str, Path(folder).glob("leaves-*.tar"))),
                                                  shardshuffle=False, empty_check=False)]

    assert images(tmp_path / "a") == images(tmp_path / "b")


def test_extending_a_dataset_equals_making_it_at_once(tmp_path):
    make(tmp_path / "grown", n=25)
    make(tmp_path / "grown", n=40)
    make(tmp_path / "once", n=40)
    assert shard_bytes(tmp_path / "grown", "leaves") == shard_bytes(tmp_path / "once", "leaves")
    assert manifest.load(tmp_path / "grown" / "leaves-manifest.json")["num_samples"] == 40


def test_conflicting_settings_are_refused_unless_overwrite(tmp_path):
    make(tmp_path)
    with pytest.raises(UserError, match="seed"):
        make(tmp_path, seed=1)
    with pytest.raises(UserError, match="overwrite"):
        make(tmp_path, n=5)
    make(tmp_path, seed=1, n=12, overwrite=True)
    meta = manifest.load(tmp_path / "leaves-manifest.json")
    assert meta["seed"] == 1 and meta["num_samples"] == 12
    assert len(list(tmp_path.glob("leaves-*.tar"))) == 2


def test_disk_full_leaves_no_partial_shard(tmp_path, monkeypatch):
    from kdgen import writer

    real = writer.ShardFile.write_packed
    calls = {"n": 0}

    def failing(self, sample):
        calls["n"] += 1
        if calls["n"] > 15:
            raise OSError(28, "No space left on device")
        real(self, sample)

    monkeypatch.setattr(writer.ShardFile, "write_packed", failing)
    with pytest.raises(UserError, match="No space left"):
        make(tmp_path)
    assert [p.name for p in tmp_path.glob("leaves-*.tar")] == ["leaves-000000.tar"]
    assert not list(tmp_path.glob(".*tmp*"))
    monkeypatch.setattr(writer.ShardFile, "write_packed", real)
    make(tmp_path)  # resumes
    make(tmp_path / "clean")
    assert shard_bytes(tmp_path, "leaves") == shard_bytes(tmp_path / "clean", "leaves")


def test_resume_after_sigkill_mid_shard_is_byte_identical(tmp_path):
    out = tmp_path / "killed"
    args = ["leaves", "--n", "600", "--size", "48", "--shard-size", "150", "--out", out, "--quiet"]
    proc = subprocess.Popen([str(BIN / "kdgen"), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    # wait until one shard is complete and the next is being written, then kill without warning
    while time.time() < deadline and not (list(out.glob("leaves-000000.tar")) and list(out.glob(".leaves-*tmp*"))):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list(out.glob("leaves-000000.tar")), "the run finished no shard before it was killed"
    assert not (out / "leaves-000003.tar").exists(), "the run finished before it was killed"
    result = run_cli("kdgen", *args)
    assert result.returncode == 0, result.stderr
    assert "already there" in result.stdout
    clean = run_cli("kdgen", *args[:-3], "--out", tmp_path / "clean", "--quiet")
    assert clean.returncode == 0
    assert shard_bytes(out, "leaves") == shard_bytes(tmp_path / "clean", "leaves")
    assert not list(out.glob(".*tmp*"))


def test_ranks_write_their_shards_and_merge(tmp_path):
    for rank in (0, 1):
        make(tmp_path / "ranked", n=25, rank=rank, world_size=2)
    assert not (tmp_path / "ranked" / "leaves-manifest.json").exists()
    result = run_cli("kdgen", "merge-manifest", tmp_path / "ranked", "--name", "leaves")
    assert result.returncode == 0, result.stderr
    make(tmp_path / "single", n=25)
    assert shard_bytes(tmp_path / "ranked", "leaves") == shard_bytes(tmp_path / "single", "leaves")
    merged = manifest.load(tmp_path / "ranked" / "leaves-manifest.json")
    single = manifest.load(tmp_path / "single" / "leaves-manifest.json")
    assert merged["shards"] == single["shards"] and merged["num_samples"] == 25


def test_merge_refuses_missing_ranks(tmp_path):
    make(tmp_path, n=25, rank=0, world_size=3)
    with pytest.raises(UserError, match="rank"):
        manifest.merge(tmp_path, "leaves")


def test_ranks_default_from_the_launcher(monkeypatch):
    from kdgen.clitools import launcher_rank

    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "8")
    assert launcher_rank() == (3, 8)
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "5")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "4")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "2")
    assert launcher_rank() == (3, 4)


def test_import_images_labels_and_skips_unreadable(tmp_path, image_folder):
    out = tmp_path / "data"
    result = run_cli("kdgen", "import-images", image_folder, "--out", out, "--size", "16", "--shard-size", "4",
                     "--quiet")
    assert result.returncode == 0, result.stderr
    assert "unreadable_skipped 1" in result.stdout
    meta = manifest.load(out / "images-manifest.json")
    assert meta["class_names"] == ["cat", "dog"] and meta["num_samples"] == 7
    samples = list(wds.WebDataset(sorted(map(str, out.glob("images-*.tar"))), shardshuffle=False,
                                  empty_check=False))
    labels = [int(s["cls"]) for s in samples]
    assert labels == [0, 0, 0, 1, 1, 1, 1]
    assert json.loads(samples[0]["json"])["params"]["source"].startswith("cat/")


def test_info_and_preview(tmp_path):
    make(tmp_path, generator="noise")
    info = run_cli("kdgen", "info", tmp_path / "noise")
    assert info.returncode == 0 and "25 in 3 shards" in info.stdout and "complete   yes" in info.stdout
    sheet = tmp_path / "sheet.png"
    prev = run_cli("kdgen", "preview", f"{tmp_path}/noise-*.tar", "-o", sheet, "--count", "9", "--cell", "32")
    assert prev.returncode == 0, prev.stderr
    from PIL import Image

    assert Image.open(sheet).size == (3 * 34 + 2, 3 * 34 + 2)
