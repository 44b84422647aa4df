"""Boundary attack: crossing pairs, eps ball, bold driver, frozen teacher, determinism, 1/3 channels."""

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from kdtrain.data.spec import InputSpec
from kdtrain.errors import UserError
from kdtrain.models.teachers import Teacher, load_teacher
from kdtrain.synth.attack import (
    STAGES,
    AttackConfig,
    OnlineAttack,
    attack_batch,
    border_attack,
    choose_targets,
    make_batch_hook,
    online_from_string,
)
from kdtrain.train.config import DistillConfig
from kdtrain.train.distill import distill
from tests._kdtrain_fixtures import write_shards, write_teacher

torch.set_num_threads(1)


def tiny_teacher(channels=3, num_classes=4, size=12, seed=0, sharpness=10.0) -> Teacher:
    """A small BN CNN (BN so that buffer changes would show), made confident like a trained teacher."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(channels, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, num_classes),
    )
    with torch.no_grad():
        model[1].running_mean.uniform_(-0.2, 0.2)
        model[1].running_var.uniform_(0.5, 1.5)
        model[-1].weight.mul_(sharpness)
    return Teacher(model, InputSpec(channels, size, size, (0.5,), (0.25,)), num_classes)


def _images(n, c, size=12, seed=1):
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(seed))


def _state(t):
    return {k: v.clone() for k, v in t.model.state_dict().items()}


@pytest.mark.parametrize("channels", [1, 3])
def test_pairs_straddle_the_boundary_within_eps(channels):
    t = tiny_teacher(channels)
    x = _images(24, channels)
    cfg = AttackConfig(eps=0.25, step=0.02, max_steps=25, deeper_steps=2)
    res = attack_batch(t, x, cfg, torch.Generator().manual_seed(0))
    assert len(res) > 0
    src = x[res.source]
    assert (res.images - src).abs().max() <= cfg.eps + 1e-6
    assert res.images.min() >= 0 and res.images.max() <= 1
    with torch.no_grad():
        pred = t(res.images).argmax(1)
    stage = [STAGES[i] for i in res.stage]
    post = torch.tensor([s == "post" for s in stage])
    pre = torch.tensor([s == "pre" for s in stage])
    assert post.any() and pre.any()
    assert (pred[post] == res.target[post]).all()
    # pre-success rows: the target is the class of the matching post row
    post_target = {int(s): int(tg) for s, tg, p in zip(res.source, res.target, post, strict=True) if p}
    assert all(int(pred[i]) != post_target[int(res.source[i])] for i in pre.nonzero().squeeze(1))
    assert (pred == res.pred).all()


def test_bold_driver_keeps_crossing_confidence_under_threshold():
    t = tiny_teacher(3)
    x = _images(32, 3)
    with torch.no_grad():
        top = t(x).argmax(1)
    targets = (top + 1) % t.num_classes
    # a large step would overshoot deep into the target class without the bold driver
    cfg = AttackConfig(eps=0.5, step=0.3, max_steps=40, confidence=0.6)
    res = border_attack(t, x, targets, cfg)
    assert res.success.sum() > 0
    assert (res.post_conf[res.success] < cfg.confidence).all()
    with torch.no_grad():
        p = t(res.post[res.success]).softmax(1)
    assert (p.argmax(1) == targets[res.success]).all()
    assert (p.max(1).values < cfg.confidence).all()
    no_bold = AttackConfig(eps=0.5, step=0.3, max_steps=40, confidence=0.6, bold_driver=False)
    loose = border_attack(t, x, targets, no_bold)
    assert (loose.post_conf[loose.success] >= 0.6).any()  # the control does something here


def test_teacher_is_bit_identical_and_mode_restored():
    t = tiny_teacher(3)
    t.model.train()  # even a teacher left in train mode must not update its BN statistics
    for p in t.model.parameters():
        p.requires_grad_(True)
    before = _state(t)
    attack_batch(t, _images(16, 3), AttackConfig(), torch.Generator().manual_seed(0))
    after = _state(t)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert t.model.training
    assert all(p.requires_grad and p.grad is None for p in t.model.parameters())


def test_deterministic_under_a_seed():
    t = tiny_teacher(3)
    x = _images(16, 3)
    for mode in ("fair", "uniform", "least-predicted", "proportional"):
        cfg = AttackConfig(target=mode, eps=0.25)
        a = attack_batch(t, x, cfg, torch.Generator().manual_seed(7))
        b = attack_batch(t, x, cfg, torch.Generator().manual_seed(7))
        assert torch.equal(a.images, b.images) and torch.equal(a.target, b.target)


def test_target_modes():
    g = torch.Generator().manual_seed(0)
    probs = torch.tensor([[0.7, 0.2, 0.1, 0.0]] * 200)
    for mode in ("fair", "uniform", "proportional", "least-predicted"):
        assert (choose_targets(probs, mode, g) != 0).all()
    prop = choose_targets(probs, "proportional", g)
    assert (prop == 1).sum() > (prop == 2).sum() > (prop == 3).sum()
    least = choose_targets(probs[:4], "least-predicted", g, counts=torch.tensor([0, 50, 5, 3]))
    assert sorted(least.tolist()) == [2, 3, 3, 3]  # water-filling: 3 rises to 5, ties with 2, both take one more


def test_fair_targets_reach_every_class_the_sink_included():
    # a sink teacher: 15 of every 16 rows predicted as class 0
    probs = torch.tensor([[0.7, 0.2, 0.1, 0.0]] * 15 + [[0.1, 0.7, 0.1, 0.1]])
    g = torch.Generator().manual_seed(0)
    given = torch.zeros(4, dtype=torch.long)
    for _ in range(5):  # refinement: a row may keep its own class; counts carry over batches
        out = choose_targets(probs, "fair", g, given, allow_top=True)
        assert torch.bincount(out, minlength=4).tolist() == [4, 4, 4, 4]
    assert given.tolist() == [20, 20, 20, 20]  # fair adds its choices to the run's counts
    # the attack (a row never targets its own class): the sink takes the one other row of every batch
    given = torch.zeros(4, dtype=torch.long)
    for _ in range(3):
        out = choose_targets(probs, "fair", g, given)
        assert (out[:15] != 0).all() and out[15] == 0
    assert given.tolist() == [3, 15, 15, 15]
    # without counts: balanced within the batch; the same generator state gives the same targets
    a = choose_targets(probs[:12], "fair", torch.Generator().manual_seed(3), allow_top=True)
    b = choose_targets(probs[:12], "fair", torch.Generator().manual_seed(3), allow_top=True)
    assert torch.equal(a, b) and torch.bincount(a, minlength=4).tolist() == [3, 3, 3, 3]


def test_online_hook_replaces_a_fraction_and_keeps_shape():
    t = tiny_teacher(1)
    x = _images(32, 1)
    hook = OnlineAttack(t, AttackConfig(eps=0.25), fraction=0.5, every=2, seed=0)
    assert hook(x, 1) is x  # off-step
    out = hook({"images": x, "labels": None}, 0)["images"]
    assert out.shape == x.shape
    changed = (out != x).flatten(1).any(1).sum()
    assert 0 < changed <= 16 and hook.stats["replaced"] == changed
    assert (out - x).abs().max() <= 1.0


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="target mode"):
        AttackConfig(target="nope").validate()
    with pytest.raises(ValueError, match="step"):
        AttackConfig(eps=0.01, step=0.1).validate()


def test_online_hook_from_a_flag_string():
    t = tiny_teacher(1)
    flag = "fraction=0.25,every=2,eps=32/255,max-steps=5,target=proportional,stages=post+deep-post"
    hook = online_from_string(t, flag)
    assert (hook.fraction, hook.every) == (0.25, 2)
    assert hook.cfg.eps == pytest.approx(32 / 255) and hook.cfg.max_steps == 5
    assert hook.cfg.target == "proportional" and hook.cfg.stages == ("post", "deep-post")
    assert online_from_string(t, "on").every == 4
    with pytest.raises(UserError, match="unknown attack option"):
        online_from_string(t, "epsilon=3")


def test_online_hook_on_a_trainer_batch_drops_labels_and_mix_of_replaced_rows():
    t = tiny_teacher(1)
    x = _images(32, 1)
    labels = torch.arange(32) % 4
    lam, perm = torch.full((32,), 0.3), torch.randperm(32)
    hook = OnlineAttack(t, AttackConfig(eps=0.25), fraction=0.5, every=1, seed=0)
    out = hook({"images": x, "labels": labels, "mix": (perm, lam), "keys": None}, 5)
    changed = (out["images"] != x).flatten(1).any(1)
    assert changed.any()
    assert (out["labels"][changed] == -1).all() and (out["labels"][~changed] == labels[~changed]).all()
    assert (out["mix"][1][changed] == 1).all() and (out["mix"][1][~changed] == 0.3).all()
    assert torch.equal(labels, torch.arange(32) % 4)  # the caller's tensors are not modified
    again = OnlineAttack(t, AttackConfig(eps=0.25), fraction=0.5, every=1, seed=0)
    assert torch.equal(again({"images": x}, 5)["images"], out["images"])  # a function of (seed, step)


def test_make_batch_hook_reads_the_trainer_config():
    t = tiny_teacher(1)
    assert make_batch_hook(SimpleNamespace(seed=0), t) is None
    assert make_batch_hook(SimpleNamespace(adv="off", seed=0), t) is None
    assert make_batch_hook(SimpleNamespace(adv="on", seed=0), None) is None
    hook = make_batch_hook(SimpleNamespace(adv="every=2", adv_eps=0.2, adv_every=None, seed=1), t)
    assert hook.every == 2 and hook.cfg.eps == pytest.approx(0.2)


def test_distill_runs_with_the_online_hook(tmp_path):
    write_shards(tmp_path / "s", "leaves", 32, 16, size=16, channels=3, labels=False)
    write_teacher(tmp_path / "teacher.pt", channels=1, size=12)
    hook = OnlineAttack(load_teacher(tmp_path / "teacher.pt"), fraction=0.5, every=2)
    cfg = DistillConfig(teacher=str(tmp_path / "teacher.pt"), shards=[str(tmp_path / "s" / "leaves-*.tar")],
                        eval="none", batch_size=8, steps=4, workers=0, threads=1, tensorboard=False,
                        progress=False, out=str(tmp_path / "run"), match_stats=False, preset="none",
                        mixup=True, holdout=0.0)  # this untrained teacher is too sure of the raw fixture images
    # for any to cross within eps; blended pairs lie near its boundaries, so the hook has rows to replace (with
    # all 32 fixture images in training: a held-out one changes the batches, and with them the pairs found)
    summary = distill(cfg, batch_hook=hook)
    assert summary["steps"] == 4
    assert hook.stats["batches"] == 2 and hook.stats["replaced"] > 0


def test_fixed_shape_path_of_a_gpu_attacks_as_the_compacting_path(monkeypatch):
    """On a GPU the border attack keeps every row (masks, no host round trip per step); run that path on the
    CPU: the same pairs, steps and predictions as the CPU's path, which drops finished rows."""
    from kdtrain.synth import attack

    teacher = tiny_teacher(channels=1)
    x = _images(48, 1, seed=7)
    cfg = AttackConfig(max_steps=12)
    ref = attack_batch(teacher, x, cfg, torch.Generator().manual_seed(0))
    monkeypatch.setattr(attack, "_compacts", lambda device: False)
    fixed = attack_batch(teacher, x, cfg, torch.Generator().manual_seed(0))
    assert len(ref) > 8 and torch.equal(fixed.source, ref.source) and torch.equal(fixed.steps, ref.steps)
    assert torch.equal(fixed.stage, ref.stage) and torch.equal(fixed.target, ref.target)
    assert torch.allclose(fixed.images, ref.images, atol=1e-5) and torch.equal(fixed.pred, ref.pred)
