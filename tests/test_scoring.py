"""Scores against values worked out by hand on a lookup teacher and a known class mix."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from kdtrain.errors import UserError
from kdtrain.quality.scoring import SetScorer, format_table, pca_2d, plot_scores, score_batches

torch.set_num_threads(1)

A = [0.7, 0.1, 0.1, 0.1]  # confident: max 0.7, margin 0.6
B = [0.4, 0.2, 0.2, 0.2]  # unsure: max 0.4, margin 0.2


def _roll(p, k):
    return p[-k:] + p[:-k] if k else list(p)


# sample i -> (teacher probabilities, pooled features); predicted classes 0,0,0,0,1,1,2,2 and never 3
TABLE = [
    (_roll(A, 0), [1, 0]), (_roll(B, 0), [0, 1]), (_roll(A, 0), [2, 0]), (_roll(B, 0), [0, 3]),
    (_roll(A, 1), [3, 4]), (_roll(B, 1), [0.6, 0.8]),
    (_roll(A, 2), [1, 0]), (_roll(B, 2), [-1, 0]),
]


class LookupTeacher:
    """Image i is the constant image of value i/20; its logits and features come from TABLE."""

    num_classes = 4
    class_names = ["a", "b", "c", "d"]
    model = nn.Identity()
    spec = SimpleNamespace(channels=1, height=4, width=4, mean=[0.0], std=[1.0])

    def _row(self, x):
        return (x.flatten(1).mean(1) * 20).round().long()

    def __call__(self, x):
        return torch.tensor([TABLE[i][0] for i in self._row(x)]).log()

    def features(self, x):
        return torch.tensor([TABLE[i][1] for i in self._row(x)], dtype=torch.float32)


def _batches(order, batch=3):
    imgs = torch.stack([torch.full((1, 4, 4), i / 20) for i in order])
    return [{"images": imgs[i : i + batch]} for i in range(0, len(imgs), batch)]


def test_scores_match_hand_computed_values():
    r = score_batches(LookupTeacher(), _batches(range(8))).result(LookupTeacher.class_names)
    assert r["n"] == 8
    assert r["class_counts"] == [4, 2, 2, 0]
    # class fractions 1/2, 1/4, 1/4, 0: entropy 1.5 bits, over log2(4) = 2 bits
    assert r["relative_entropy"] == pytest.approx(0.75)
    assert r["never_predicted"] == ["d"] and r["num_never_predicted"] == 1
    assert r["mean_max_softmax"] == pytest.approx((0.7 + 0.4) / 2)
    assert r["mean_top2_margin"] == pytest.approx((0.6 + 0.2) / 2)
    h_a = -(0.7 * math.log(0.7) + 3 * 0.1 * math.log(0.1))
    h_b = -(0.4 * math.log(0.4) + 3 * 0.2 * math.log(0.2))
    assert r["mean_entropy"] == pytest.approx((h_a + h_b) / 2)
    # normalised features: class a {(1,0),(0,1),(1,0),(0,1)}: each dim has std sqrt(1/3);
    # class b two copies of (.6,.8): 0; class c (1,0),(-1,0): dims sqrt(2) and 0 -> mean sqrt(2)/2
    spread = r["feature_spread_per_class"]
    assert spread[0] == pytest.approx(math.sqrt(1 / 3))
    assert spread[1] == pytest.approx(0, abs=1e-7)
    assert spread[2] == pytest.approx(math.sqrt(2) / 2)
    assert spread[3] is None
    assert r["feature_spread"] == pytest.approx((math.sqrt(1 / 3) + math.sqrt(2) / 2) / 3)
    f = np.array([t[1] for t in TABLE], dtype=float)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    dist = [1 - f[i] @ f[j] for i in range(8) for j in range(8) if i != j]
    assert r["diversity"] == pytest.approx(np.mean(dist))


def test_streaming_does_not_depend_on_batching_and_limit_applies():
    t = LookupTeacher()
    one = score_batches(t, _batches(range(8), batch=8)).result()
    many = score_batches(t, _batches(range(8), batch=1)).result()
    for k in ("relative_entropy", "mean_entropy", "feature_spread", "diversity"):
        assert one[k] == pytest.approx(many[k])
    assert score_batches(t, _batches(range(8), batch=3), limit=5).result()["class_counts"] == [4, 1, 0, 0]


def test_sample_is_uniform_and_bounded():
    t = LookupTeacher()
    s = score_batches(t, _batches(list(range(8)) * 50, batch=16), sample_size=100, seed=3)
    assert s.sample_feats.shape == (100, 2)
    assert len(set(s.sample_preds.tolist())) == 3


def test_table_pca_and_figure(tmp_path):
    t = LookupTeacher()
    a = score_batches(t, _batches(range(8)))
    b = score_batches(t, _batches([0, 2, 4, 6]))
    table = format_table({"a": a.result(), "b": b.result()})
    assert table.splitlines()[0].split()[:3] == ["set", "samples", "rel.entropy"]
    assert len(table.splitlines()) == 3
    proj = pca_2d([np.random.default_rng(0).normal(size=(10, 5))])
    assert proj[0].shape == (10, 2)
    out = tmp_path / "score.png"
    plot_scores({"a": a, "b": b}, out, t.class_names, eval_scorer=b)
    assert out.stat().st_size > 1000


def test_empty_set_is_refused():
    with pytest.raises(UserError, match="no samples"):
        SetScorer(4).result()


def test_coverage_counts_real_points_with_a_set_point_nearer_than_real_neighbours():
    from kdtrain.quality.scoring import coverage, neighbour_radius

    real = torch.tensor([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [11.0, 0.0]])  # nearest-real distances: all 1
    assert coverage(real, real + torch.tensor([0.5, 0.0])) == (1.0, 0.5)  # a set point 0.5 from each real one
    # only points 0 and 3 are reached (0.5 away), 1 and 2 are 1.5 away; torch's median of an even count is
    # the lower middle value: 0.5 over the radius 1
    assert coverage(real, torch.tensor([[-0.5, 0.0], [11.5, 0.0]])) == (0.5, 0.5)
    assert coverage(real, torch.tensor([[-3.0, 0.0], [14.0, 0.0]])) == (0.0, 3.0)
    assert coverage(real, torch.tensor([[-3.0, 0.0], [14.0, 0.0]]), neighbour_radius(real)) == (0.0, 3.0)
    assert coverage(real, torch.tensor([[100.0, 0.0]]))[0] == 0.0
    assert coverage(real, torch.zeros(0, 2))[0] == 0.0
