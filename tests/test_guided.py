"""Teacher-guided selection: a group's loss is refinement's statistics loss on its images, the kept set gives
each predicted class its share from the lowest-loss groups first, the same seed keeps the same images, and the
kept images are the pool's own pixels and metadata."""

import numpy as np
import pytest
import torch

from kdgen.shardset import DatasetWriter
from kdtrain.data.augment import match_stats
from kdtrain.data.shards import iterate_shards
from kdtrain.quality import guided
from kdtrain.synth.common import quantize
from kdtrain.synth.refine import StatsProbe, batchnorm_layers
from tests.test_refine import SPEC, bn_teacher

torch.set_num_threads(1)


def pool_batches(n: int = 600, groups: int = 4, batch: int = 128, seed: int = 0):
    """Shard-like batches: group g's images are blobs of brightness g/groups (group 3 the closest to the
    teacher's bright-blob data), their group named in the metadata as shaders name their program."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(12.0), torch.arange(12.0), indexing="ij")
    blob = (-((yy - 6) ** 2 + (xx - 6) ** 2) / 12).exp()
    ids = torch.randint(0, groups, (n,), generator=g)
    images = (blob * (0.2 + ids.float() / groups)[:, None, None] + 0.1 * torch.rand(n, 12, 12, generator=g))
    images = quantize(images.clamp(0, 1)[:, None])
    out = []
    for i in range(0, n, batch):
        rows = range(i, min(n, i + batch))
        out.append({"images": images[i : i + batch], "keys": [f"{r:09d}" for r in rows],
                    "meta": [{"params": {"program": f"p{int(ids[r])}"}} for r in rows]})
    return out, ids, images


@pytest.mark.parametrize("stats", ["raw", "kl"])
def test_a_groups_loss_is_refinements_statistics_loss_on_its_first_images(stats):
    teacher = bn_teacher()
    batches, ids, images = pool_batches(n=700)
    score = guided.score_pool(teacher, batches, stats=stats)
    assert score.groups == [f"p{int(i)}" for i in dict.fromkeys(ids.tolist())]  # in order of first appearance
    assert torch.equal(score.group_ids, torch.tensor([score.groups.index(f"p{int(i)}") for i in ids]))
    x = quantize(match_stats(images, SPEC.mean, SPEC.std))
    for g, name in enumerate(score.groups):
        rows = (score.group_ids == g).nonzero().squeeze(1)[: guided.GROUP_IMAGES]  # the group's first 256
        with StatsProbe(batchnorm_layers(teacher), stats) as probe, torch.no_grad():
            teacher(x[rows])
            want = float(probe.take())
        assert float(score.group_loss[g]) == pytest.approx(want, rel=1e-4), name
    with torch.no_grad():
        assert torch.equal(score.preds, teacher(x).argmax(1))


def test_each_class_gets_its_share_from_the_lowest_loss_groups_first():
    preds = torch.tensor([0] * 50 + [1] * 50 + [2] * 5)  # class 2 is short
    group_ids = torch.tensor([i % 5 for i in range(105)])
    score = guided.PoolScore(preds=preds, groups=[f"p{g}" for g in range(5)], group_ids=group_ids,
                             group_loss=torch.tensor([5.0, 1.0, 4.0, 2.0, 3.0]))
    kept = guided.select(score, 30, 3, seed=0)
    assert len(kept) == len(set(kept.tolist())) == 30
    counts = torch.bincount(preds[kept], minlength=3).tolist()
    assert counts[2] == 5  # every image of the short class
    assert counts[0] + counts[1] == 25 and min(counts[:2]) >= 10  # its room goes to the others
    for c in (0, 1):  # within a class, no kept image's group has a higher loss than an unkept one's
        mine = set(kept.tolist())
        losses = score.group_loss[group_ids]
        kept_c = [i for i in range(105) if preds[i] == c and i in mine]
        left_c = [i for i in range(105) if preds[i] == c and i not in mine]
        if counts[c] == 10:
            assert max(losses[kept_c]) <= min(losses[left_c])
    again = guided.select(score, 30, 3, seed=0)
    assert np.array_equal(kept, again)
    assert not np.array_equal(kept, guided.select(score, 30, 3, seed=1))  # another seed, another order


def test_kept_images_are_the_pools_own_pixels_and_metadata(tmp_path):
    teacher = bn_teacher()
    batches, _, _ = pool_batches(n=300)
    with DatasetWriter(tmp_path, "pool", generator="test", params={}, size=(12, 12)) as w:
        for b in batches:
            for img, meta in zip((b["images"][:, 0] * 255).round().to(torch.uint8).numpy(), b["meta"], strict=True):
                w.add(img, meta)
    pool = [str(tmp_path / "pool-0*.tar")]
    score = guided.score_pool(teacher, iterate_shards(pool, SPEC, 64))
    kept = guided.select(score, 40, 10, seed=3)
    with DatasetWriter(tmp_path, "kept", generator="guided", params={}, size=(12, 12)) as w:
        guided.write_kept(iterate_shards(pool, SPEC, 64), kept, w)
    everything = next(iterate_shards(pool, SPEC, 1000))
    out = next(iterate_shards([str(tmp_path / "kept-0*.tar")], SPEC, 1000))
    assert torch.equal(out["images"], everything["images"][torch.from_numpy(kept)])
    assert [m["pool_key"] for m in out["meta"]] == [everything["keys"][i] for i in kept]
    assert [m["params"] for m in out["meta"]] == [everything["meta"][i]["params"] for i in kept]
    report = guided.summary(score, kept, 10)
    assert report["kept"] == sum(report["class_counts"]) == 40 and report["pool_images"] == 300
    assert 1 <= report["groups_kept"] <= report["groups"] == 4


def test_a_teacher_without_batchnorm_is_refused_in_one_line():
    from torch import nn

    from kdtrain.errors import UserError
    from kdtrain.models.teachers import Teacher

    teacher = Teacher(nn.Sequential(nn.Flatten(), nn.Linear(144, 10)), SPEC, 10)
    with pytest.raises(UserError, match="BatchNorm"):
        guided.score_pool(teacher, pool_batches(n=10)[0])
