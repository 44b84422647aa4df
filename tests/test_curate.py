"""Curation: exactly K per predicted class where the pool allows, shortfalls reported, attack fill."""

import io
import json
import tarfile
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from kdgen.shardset import DatasetWriter
from kdtrain.errors import UserError
from kdtrain.quality.curate import curate
from kdtrain.synth.attack import AttackConfig

torch.set_num_threads(1)
CENTERS = torch.tensor([0.125, 0.375, 0.625, 0.875])


class BrightnessTeacher:
    """Class k <=> mean brightness nearest CENTERS[k]; smooth in the pixels, so the attack works."""

    num_classes = 4
    class_names = ["a", "b", "c", "d"]
    model = nn.Identity()
    spec = SimpleNamespace(channels=1, height=6, width=6, mean=[0.0], std=[1.0])

    def __call__(self, x):
        m = x.flatten(1).mean(1, keepdim=True)
        return -300 * (m - CENTERS) ** 2

    def features(self, x):
        m = x.flatten(1).mean(1, keepdim=True)
        return torch.cat([m, 1 - m], 1)


def _pool(levels, batch=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.stack([torch.full((1, 6, 6), v) + 0.02 * torch.rand(1, 6, 6, generator=g) for v in levels]).clamp(0, 1)
    keys = [f"{i:09d}" for i in range(len(x))]
    return lambda: iter(
        {"images": x[i : i + batch], "keys": keys[i : i + batch], "urls": ["pool-000000.tar"] * len(x[i : i + batch]),
         "meta": [{"generator": "test"}] * len(x[i : i + batch]), "labels": None}
        for i in range(0, len(x), batch)
    )


# 12 samples of class a, 8 of b, 3 of c, none of d
LEVELS = [0.12] * 12 + [0.37] * 8 + [0.52] * 3


def _read(folder, name):
    out = []
    for tar_path in sorted(folder.glob(f"{name}-*.tar")):
        with tarfile.open(tar_path) as tar:
            files = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
        for key in sorted({n.split(".")[0] for n in files}):
            img = np.asarray(Image.open(io.BytesIO(files[f"{key}.png"])), dtype=np.float32) / 255
            out.append((img, json.loads(files[f"{key}.json"])))
    return out


def test_exactly_k_per_class_and_shortfalls(tmp_path):
    t = BrightnessTeacher()
    with DatasetWriter(tmp_path, "cur", generator="curate", params={}, size=(6, 6), shard_size=4,
                       class_names=t.class_names) as w:
        rep = curate(t, _pool(LEVELS), w, per_class=5)
    assert rep.counts == [5, 5, 3, 0]
    assert rep.shortfalls == {"c": 3, "d": 0}
    assert "2 classes not filled: c 3/5, d 0/5" in rep.summary()
    samples = _read(tmp_path, "cur")
    assert len(samples) == 13
    # the prediction in the metadata is the teacher's prediction of the stored 8-bit image
    for img, meta in samples:
        pred = int(t(torch.from_numpy(img)[None, None]).argmax(1))
        assert meta["params"]["teacher_pred"] == pred
        assert meta["params"]["source"]["shard"] == "pool-000000.tar"
    # kept in pool order: the first five of class a are source keys 0..4
    firsts = [m["params"]["source"]["key"] for _, m in samples if m["params"]["teacher_pred"] == 0]
    assert firsts == [f"{i:09d}" for i in range(5)]


class ListWriter:
    def __init__(self):
        self.items, self.index = [], 0

    def add(self, img, meta, cls=None):
        self.items.append((img, meta))
        self.index += 1


def test_confidence_bounds_and_limit():
    t = BrightnessTeacher()
    levels = [0.125] * 5 + [0.24] * 5  # 0.24 is near the a|b boundary: low confidence
    rep = curate(t, _pool(levels), ListWriter(), per_class=10, min_conf=0.8)
    assert rep.counts[0] == 5 and sum(rep.counts) == 5
    rep = curate(t, _pool(levels), ListWriter(), per_class=10, max_conf=0.8)
    assert sum(rep.counts) == 5
    rep = curate(t, _pool(levels), ListWriter(), per_class=10, limit=3)
    assert rep.seen == 3 and sum(rep.counts) == 3


def test_fill_with_attack_pushes_samples_into_missing_classes():
    t = BrightnessTeacher()
    w = ListWriter()
    cfg = AttackConfig(eps=0.15, step=0.01, max_steps=40, deeper_steps=3)
    rep = curate(t, _pool(LEVELS), w, per_class=5, fill_with_attack=True, attack_cfg=cfg)
    # c fills up from b's samples; d sits beyond eps of every pool sample
    assert rep.counts == [5, 5, 5, 0]
    assert rep.from_attack[2] == 2 and sum(rep.from_attack) == 2
    made = [(img, m) for img, m in w.items if "stage" in m["params"]]
    assert len(made) == 2
    for img, m in made:
        x = torch.from_numpy(img.astype(np.float32) / 255)[None, None]
        assert int(t(x).argmax(1)) == m["params"]["teacher_pred"] == 2
        assert m["params"]["stage"] in ("post", "deep-post")


def test_bad_arguments_are_refused():
    t = BrightnessTeacher()
    with pytest.raises(UserError, match="per-class"):
        curate(t, _pool(LEVELS), ListWriter(), per_class=0)
    with pytest.raises(UserError, match="bounds"):
        curate(t, _pool(LEVELS), ListWriter(), per_class=3, min_conf=0.9, max_conf=0.5)
