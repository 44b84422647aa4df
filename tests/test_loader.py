import warnings

import pytest
import torch

from kdtrain.data.augment import build_preset
from kdtrain.data.shards import check_shards, count_samples, expand_patterns, iterate_shards
from kdtrain.data.spec import InputSpec
from kdtrain.data.stream import ShardSource, make_train_loader
from kdtrain.errors import UserError
from tests._kdtrain_fixtures import write_shards

torch.set_num_threads(1)
SPEC = InputSpec(1, 8, 8, (0.5,), (0.5,))


def _batches(source, start=0, total=6, workers=0, rank=0, world=1, preset="crop-flip", bs=8, spe=3):
    loader = make_train_loader(source, SPEC, build_preset(preset, 8), bs, spe, total, start, seed=1, rank=rank,
                               world=world, workers=workers)
    return list(loader)


def test_iterate_shards_order_and_fields(tmp_path):
    write_shards(tmp_path, "a", 10, 4, size=12)
    batches = list(iterate_shards([str(tmp_path / "a-{000000..000002}.tar")], SPEC, batch_size=4))
    assert [len(b["keys"]) for b in batches] == [4, 4, 2]
    assert batches[0]["keys"][:2] == ["000000000", "000000001"]
    b = batches[0]
    assert b["images"].shape == (4, 1, 8, 8) and b["images"].dtype == torch.float32
    assert 0 <= b["images"].min() and b["images"].max() <= 1
    assert b["meta"][0] == {"generator": "a", "index": 0} and b["labels"].dtype == torch.long
    assert b["urls"][0].endswith("a-000000.tar")
    assert sum(len(b["keys"]) for b in iterate_shards([str(tmp_path / "a-*.tar")], SPEC, 3, limit=5)) == 5
    write_shards(tmp_path, "u", 3, 3, labels=False)
    assert next(iterate_shards([str(tmp_path / "u-*.tar")], SPEC, 4))["labels"] is None


def test_patterns_counts_and_missing(tmp_path):
    write_shards(tmp_path, "a", 10, 4, manifest=False)
    urls = expand_patterns([str(tmp_path / "a-*.tar")])
    assert len(urls) == 3 and count_samples(urls) == 10  # from tar headers
    write_shards(tmp_path, "b", 10, 4)
    assert count_samples(expand_patterns([str(tmp_path / "b-*.tar")])) == 10  # from the manifest
    with pytest.raises(UserError, match="matches no files"):
        expand_patterns([str(tmp_path / "zzz-*.tar")])


def test_resume_at_any_step_gives_the_same_batches(tmp_path):
    write_shards(tmp_path, "a", 40, 10)
    src = ShardSource([expand_patterns([str(tmp_path / "a-*.tar")])], shuffle_buffer=16)
    full = _batches(src, workers=2, preset="paper")
    assert [b["step"] for b in full] == list(range(6))
    again = _batches(src, workers=2, preset="paper")
    assert all(torch.equal(a["images"], b["images"]) for a, b in zip(full, again, strict=True))
    for start in (3, 4, 5):  # an odd start: the batch is made by worker 1, which the loader asks second
        part = _batches(src, start=start, workers=2, preset="paper")
        assert [b["step"] for b in part] == list(range(start, 6))
        assert all(torch.equal(a["images"], b["images"]) and a["keys"] == b["keys"]
                   for a, b in zip(full[start:], part, strict=True))
    assert full[0]["keys"] != full[3]["keys"]  # a new epoch reshuffles


def test_tensor_source_epochs_are_permutations():
    from kdtrain.data.datasets import TensorImages
    from kdtrain.data.stream import TensorSource

    ds = TensorImages(torch.arange(24, dtype=torch.uint8).view(24, 1, 1, 1).expand(24, 1, 8, 8).clone(),
                      torch.arange(24) % 10)
    full = _batches(TensorSource(ds), preset="none")
    keys = [int(k) for b in full[:3] for k in b["keys"]]
    assert sorted(keys) == list(range(24))
    assert all(int(k) == int(img[0, 0, 0]) for b in full for k, img in zip(b["keys"], b["images"]))
    part = _batches(TensorSource(ds), start=2, preset="none")
    assert full[2]["keys"] == part[0]["keys"]


def test_ranks_read_disjoint_shards(tmp_path):
    write_shards(tmp_path, "a", 40, 5)
    src = ShardSource([expand_patterns([str(tmp_path / "a-*.tar")])], shuffle_buffer=8)
    seen = [{u for b in _batches(src, rank=r, world=2, workers=2) for u in b["urls"]} for r in (0, 1)]
    assert seen[0] and seen[1] and not seen[0] & seen[1]


def test_mixing_weights(tmp_path):
    write_shards(tmp_path, "a", 20, 10, size=8)
    write_shards(tmp_path, "b", 20, 10, size=8)
    sets = [expand_patterns([str(tmp_path / f"{n}-*.tar")]) for n in "ab"]
    src = ShardSource(sets, weights=[0.7, 0.3], shuffle_buffer=50)
    urls = [u for b in _batches(src, total=25, bs=80, spe=25, preset="none") for u in b["urls"]]
    frac = sum("/a-" in u for u in urls) / len(urls)
    assert len(urls) == 2000 and abs(frac - 0.7) < 0.03
    with pytest.raises(UserError, match="weights"):
        ShardSource(sets, weights=[1.0])


def test_corrupt_shards_and_samples_are_skipped_and_counted(tmp_path):
    paths = write_shards(tmp_path, "a", 30, 10)
    data = paths[1].read_bytes()
    paths[1].write_bytes(data[: len(data) // 2 + 100])  # truncated tar
    import tarfile

    with tarfile.open(paths[2], "a") as tar:  # an undecodable image
        info = tarfile.TarInfo("000000099.png")
        info.size = 5
        import io

        tar.addfile(info, io.BytesIO(b"xxxxx"))
    src = ShardSource([[str(p) for p in paths]], shuffle_buffer=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batches = _batches(src, total=12, spe=12, bs=8)
    problems = {}
    for b in batches:
        for k, v in b["problems"].items():
            problems[k] = problems.get(k, 0) + v
    assert len(batches) == 12 and problems.get("shard_errors", 0) > 0 and problems.get("bad_samples", 0) > 0
    assert sum(len(b["images"]) for b in batches) < 12 * 8  # dropped samples shrink their batch


def test_shards_without_images_rejected(tmp_path):
    import webdataset as wds

    with wds.TarWriter(str(tmp_path / "x-000000.tar")) as w:
        w.write({"__key__": "000000000", "json": b"{}"})
    with pytest.raises(UserError, match="no image field"):
        check_shards([str(tmp_path / "x-000000.tar")], "x-*.tar")


@pytest.mark.parametrize("fmt", ["pax", "gnu-longname", "gzip"])
def test_other_tar_flavours_read_alike(tmp_path, fmt):
    import gzip
    import io
    import tarfile

    from kdtrain.data.shards import Problems, read_shard

    path = tmp_path / "x-000000.tar"
    long = "k" * 120 if fmt == "gnu-longname" else "000000001"
    members = {f"{long}.png": b"\x89PNG-ish", f"{long}.cls": b"3", "000000002.cls": b"4"}
    raw = io.BytesIO()
    fmt_id = tarfile.PAX_FORMAT if fmt == "pax" else tarfile.GNU_FORMAT
    with tarfile.open(fileobj=raw, mode="w", format=fmt_id) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1.5  # a float mtime makes PAX records
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(gzip.compress(raw.getvalue()) if fmt == "gzip" else raw.getvalue())
    problems = Problems()
    samples = list(read_shard(str(path), problems))
    assert [(s["__key__"], s.get("png"), s["cls"]) for s in samples] == [
        (long, b"\x89PNG-ish", b"3"), ("000000002", None, b"4")]
    assert not problems.counts
