"""Teacher-guided refinement: the statistics term falls, targets are reached, determinism, the teacher
stays untouched, unusable teachers are refused; the offline command and the online hook."""

import json
import math
import tarfile

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from kdtrain.cli.main import cli
from kdtrain.data.spec import InputSpec
from kdtrain.errors import UserError
from kdtrain.models.registry import create_model
from kdtrain.models.teachers import Teacher, load_teacher, model_checkpoint, save_model
from kdtrain.synth.refine import (
    OnlineRefine,
    RefineConfig,
    StatsProbe,
    batchnorm_layers,
    parse_options,
    probe_stats,
    refine_batch,
    stats_distance,
)
from kdtrain.train.config import DistillConfig
from kdtrain.train.distill import distill
from tests._kdtrain_fixtures import write_shards

torch.set_num_threads(1)
SPEC = InputSpec(1, 12, 12, (0.3,), (0.3,))


def bn_teacher(seed: int = 0) -> Teacher:
    """A small BN teacher whose running statistics come from 'data' unlike the test's inputs: bright
    centred blobs on black (what the refinement should pull dark, flat images toward)."""
    torch.manual_seed(seed)
    model = create_model("cnn-tiny", 10, 1)
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(12.0), torch.arange(12.0), indexing="ij")
    blob = (-((yy - 6) ** 2 + (xx - 6) ** 2) / 12).exp()
    model.train()
    with torch.no_grad():
        for _ in range(30):
            x = (blob * torch.rand(64, 1, 1, 1, generator=g) * 1.5).clamp(0, 1)
            model((x - 0.3) / 0.3)
    return Teacher(model, SPEC, 10)


def stats_loss(teacher, x, stats: str = "raw") -> float:
    with StatsProbe(batchnorm_layers(teacher), stats) as probe, torch.no_grad():
        teacher(x)
        return float(probe.take())


def test_statistics_term_falls_and_batch_statistics_move_toward_running_ones():
    teacher = bn_teacher()
    x = torch.rand(32, 1, 12, 12, generator=torch.Generator().manual_seed(1)) * 0.2 + 0.4
    before = stats_loss(teacher, x)
    losses = []
    for steps in (2, 8, 24):
        res = refine_batch(teacher, x, RefineConfig(steps=steps, ce_weight=0.0, tv_weight=0.0), torch.Generator())
        losses.append(res.bn_loss)
        assert res.bn_loss_start == pytest.approx(before, rel=1e-5)
    assert losses[0] < before and losses[1] < losses[0] and losses[2] < losses[1], (before, losses)
    assert losses[2] < 0.5 * before
    # the first BN layer's input mean moves toward its running mean
    layer = batchnorm_layers(teacher)[0]
    seen = []
    h = layer.register_forward_hook(lambda m, i, o: seen.append(i[0].mean(dim=(0, 2, 3))))
    with torch.no_grad():
        teacher(x)
        teacher(res.images)
    h.remove()
    assert (seen[1] - layer.running_mean).norm() < (seen[0] - layer.running_mean).norm()


def test_statistics_term_is_the_distance_of_mean_and_biased_variance_in_any_memory_format():
    layer = nn.BatchNorm2d(6)
    layer.running_mean.copy_(torch.linspace(-1, 2, 6))
    layer.running_var.copy_(torch.linspace(0.5, 3, 6))
    g = torch.Generator().manual_seed(0)
    base = torch.randn(8, 6, 5, 7, generator=g) * torch.linspace(0.2, 4, 6).view(1, -1, 1, 1) + 1.5
    for x in (base, base.contiguous(memory_format=torch.channels_last)):
        x = x.clone().requires_grad_(True)
        with StatsProbe([layer]) as probe:
            layer.eval()(x)
            term = probe.take()
        var, mean = torch.var_mean(x, dim=(0, 2, 3), unbiased=False)
        want = (mean - layer.running_mean).norm() + (var - layer.running_var).norm()
        assert term.item() == pytest.approx(want.item(), rel=1e-5)
        (got,) = torch.autograd.grad(term, x)
        (ref,) = torch.autograd.grad(want, x)
        assert torch.allclose(got, ref, rtol=1e-4, atol=1e-6)


def test_kl_statistics_term_is_the_mean_gaussian_kl_over_channels_and_blind_to_each_channels_scale():
    layer = nn.BatchNorm2d(6).eval()
    layer.running_mean.copy_(torch.linspace(-1, 2, 6))
    layer.running_var.copy_(torch.linspace(0.5, 3, 6))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 6, 5, 7, generator=g) * torch.linspace(0.2, 4, 6).view(1, -1, 1, 1) + 1.5
    with StatsProbe([layer], "kl") as probe:
        layer(x)
        term = probe.take()
    var, mean = torch.var_mean(x, dim=(0, 2, 3), unbiased=False)
    rm, rv = layer.running_mean, layer.running_var
    want = (0.5 * (torch.log(rv / var) + (var + (mean - rm) ** 2) / rv - 1)).mean()
    assert term.item() == pytest.approx(want.item(), rel=1e-5)
    assert stats_distance(rm, rv, rm, rv, "kl").item() == pytest.approx(0, abs=1e-6)  # zero at the running stats
    # a layer whose channels (input and running statistics alike) are 1000x larger: kl is unchanged, raw is not
    scale = torch.linspace(1, 1000, 6)
    big = [stats_distance(mean * scale, var * scale**2, rm * scale, rv * scale**2, s).item() for s in ("kl", "raw")]
    assert big[0] == pytest.approx(want.item(), rel=1e-4)
    assert big[1] > 100 * stats_distance(mean, var, rm, rv, "raw").item()
    # a collapsed batch (zero variance) gives a finite, large term
    assert math.isfinite(stats_distance(rm, torch.zeros(6), rm, rv, "kl").item())
    with pytest.raises(UserError, match="refine stats 'l1'"):
        RefineConfig(stats="l1").validate()


def test_refinement_with_the_kl_distance_lowers_it():
    teacher = bn_teacher()
    x = torch.rand(32, 1, 12, 12, generator=torch.Generator().manual_seed(1)) * 0.2 + 0.4
    res = refine_batch(teacher, x, RefineConfig(steps=24, plateau=0, stats="kl", ce_weight=0.0, tv_weight=0.0),
                       torch.Generator())
    assert res.bn_loss_start == pytest.approx(stats_loss(teacher, x, "kl"), rel=1e-5)
    assert res.bn_loss == pytest.approx(stats_loss(teacher, res.images, "kl"), rel=1e-3)
    assert res.bn_loss < 0.5 * res.bn_loss_start


def test_the_probe_keeps_raw_where_raw_refinement_reaches_the_targets_and_takes_kl_where_it_swamps_them():
    teacher = bn_teacher()
    head = [m for m in teacher.model.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        head.weight.mul_(10)  # a decided teacher: its classes are a few pixel steps apart
    x = torch.rand(64, 1, 12, 12, generator=torch.Generator().manual_seed(2))
    assert probe_stats(teacher, x, torch.Generator().manual_seed(0)) == ("raw", 1.0)
    # the same teacher with running variances 10^4 times larger: the raw statistics term swamps the class term
    for layer in batchnorm_layers(teacher):
        layer.running_var.mul_(1e4)
    stats, reached = probe_stats(teacher, x, torch.Generator().manual_seed(0))
    assert stats == "kl" and reached < 0.5


def test_targets_reached_with_enough_steps_deterministic_and_teacher_untouched():
    teacher = bn_teacher()
    state = {k: v.clone() for k, v in teacher.model.state_dict().items()}
    x = torch.rand(40, 1, 12, 12, generator=torch.Generator().manual_seed(2))
    cfg = RefineConfig(steps=30, lr=0.05, bn_weight=0.1)
    a = refine_batch(teacher, x, cfg, torch.Generator().manual_seed(3))
    b = refine_batch(teacher, x, cfg, torch.Generator().manual_seed(3))
    assert torch.equal(a.images, b.images) and torch.equal(a.target, b.target)
    assert (a.pred == a.target).float().mean() > 0.8
    assert a.images.min() >= 0 and a.images.max() <= 1
    assert all(torch.equal(state[k], v) for k, v in teacher.model.state_dict().items())
    assert not teacher.model.training and not any(p.requires_grad for p in teacher.model.parameters())
    # the sign optimiser works as well
    s = refine_batch(teacher, x, RefineConfig(steps=10, lr=0.01, optimizer="sign"), torch.Generator().manual_seed(3))
    assert not torch.equal(s.images, x)


def test_plateau_rule_stops_when_the_statistics_term_stops_falling():
    teacher = bn_teacher()
    x = torch.rand(32, 1, 12, 12, generator=torch.Generator().manual_seed(4)) * 0.2 + 0.4
    fixed = refine_batch(teacher, x, RefineConfig(steps=60, plateau=0), torch.Generator().manual_seed(0))
    assert fixed.steps == 60
    auto = refine_batch(teacher, x, RefineConfig(steps=400, plateau=0.05, window=5), torch.Generator().manual_seed(0))
    assert 5 <= auto.steps < 400, auto.steps
    assert auto.bn_loss < 0.5 * auto.bn_loss_start
    # the stop is where the rule says: one more step of a longer fixed run would no longer have paid 5%
    again = refine_batch(teacher, x, RefineConfig(steps=auto.steps, plateau=0), torch.Generator().manual_seed(0))
    assert torch.equal(again.images, auto.images)
    with pytest.raises(UserError, match="plateau must be a fraction"):
        parse_options("plateau=1.5")
    with pytest.raises(UserError, match="window must be at least 1"):
        parse_options("window=0")


def test_cosine_schedule_decays_the_step_size_to_zero_at_the_last_step():
    teacher = bn_teacher()
    x = torch.rand(32, 1, 12, 12, generator=torch.Generator().manual_seed(4)) * 0.2 + 0.4
    _, cfg = parse_options("steps=12,plateau=0,schedule=cosine,optimizer=sign,lr=0.05")
    a = refine_batch(teacher, x, cfg, torch.Generator().manual_seed(0))
    b = refine_batch(teacher, x, cfg, torch.Generator().manual_seed(0))
    assert torch.equal(a.images, b.images) and a.steps == 12 and a.bn_loss < a.bn_loss_start
    # sign steps of size lr * (1 + cos(pi i / 12)) / 2, i = 0..11: no pixel moves further than their sum
    reach = sum(0.05 * 0.5 * (1 + math.cos(math.pi * i / 12)) for i in range(12))
    assert reach == pytest.approx(6.5 * 0.05) and (a.images - x).abs().max() <= reach + 1e-6
    constant = refine_batch(teacher, x, RefineConfig(steps=12, plateau=0, optimizer="sign", lr=0.05),
                            torch.Generator().manual_seed(0))
    assert not torch.equal(constant.images, a.images)
    with pytest.raises(UserError, match="choose one of constant, cosine"):
        parse_options("schedule=linear")


def test_fair_targets_include_each_source_own_class():
    teacher = bn_teacher()
    x = torch.rand(40, 1, 12, 12, generator=torch.Generator().manual_seed(2))
    res = refine_batch(teacher, x, RefineConfig(steps=2, target="fair"), torch.Generator().manual_seed(0))
    assert torch.bincount(res.target, minlength=10).tolist() == [4] * 10
    with torch.no_grad():
        top = teacher(x).argmax(1)
    assert (res.target == top).any()  # refinement, unlike the attack, may aim at the class a source has


def test_teachers_without_batchnorm_are_refused_with_what_to_do_instead(tmp_path):
    plain = Teacher(nn.Sequential(nn.Flatten(), nn.Linear(144, 10)), SPEC, 10)
    with pytest.raises(UserError, match="no BatchNorm layers.*kdtrain attack"):
        batchnorm_layers(plain)
    scripted = torch.jit.script(create_model("cnn-tiny", 10, 1).eval())
    assert len(batchnorm_layers(Teacher(scripted, SPEC, 10))) == 3  # read through its converted graph
    torch.jit.freeze(scripted).save(str(tmp_path / "folded.pt"))  # freezing folds BatchNorm into the convolutions
    folded = load_teacher(tmp_path / "folded.pt", spec=SPEC)
    with pytest.raises(UserError, match="no BatchNorm layers .*fold them into the convolutions"):
        batchnorm_layers(folded)


def test_bad_options_refused():
    with pytest.raises(UserError, match="refine option"):
        parse_options("steps=3,colour=red")
    with pytest.raises(UserError, match="choose one of adam, sign"):
        parse_options("optimizer=lbfgs")
    with pytest.raises(UserError, match="steps must be at least 1"):
        parse_options("steps=0")


def test_online_hook_replaces_rows_and_drops_their_labels_and_mix():
    teacher = bn_teacher()
    hook = OnlineRefine(teacher, RefineConfig(steps=3), fraction=0.5, every=2, seed=1)
    x = torch.rand(8, 1, 12, 12)
    batch = {"images": x, "labels": torch.arange(8), "mix": (torch.arange(8).flip(0), torch.full((8,), 0.3))}
    assert hook(batch, 1) is batch  # not a refine step
    out = hook(batch, 2)
    changed = (out["images"] != x).flatten(1).any(1)
    assert changed.sum() == 4
    assert (out["labels"][changed] == -1).all() and (out["mix"][1][changed] == 1.0).all()
    assert torch.equal(hook(batch, 2)["images"], out["images"])  # a resumed run refines identically


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("refine")
    write_shards(d / "s", "leaves", 48, 16, size=16, channels=3, labels=False)
    t = bn_teacher()
    save_model(d / "teacher.pt", model_checkpoint(t.model, "cnn-tiny", SPEC, 10, [f"c{i}" for i in range(10)]))
    torch.jit.freeze(torch.jit.script(create_model("cnn-tiny", 10, 1).eval())).save(str(d / "folded.pt"))
    (d / "folded.json").write_text(json.dumps({"spec": SPEC.to_dict()}))
    return d


def test_offline_command_writes_refined_shards_with_metadata(world, tmp_path):
    out = tmp_path / "ref"
    args = ["refine", "--teacher", str(world / "teacher.pt"), "--shards", str(world / "s" / "leaves-*.tar"),
            "--steps", "4", "--target", "fair", "--batch-size", "16", "--out", str(out / "leaves_ref"),
            "--shard-size", "20", "--no-progress"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "48 refined images" in res.output and "BN statistics loss" in res.output
    manifest = json.loads((out / "leaves_ref-manifest.json").read_text())
    assert manifest["num_samples"] == 48
    with tarfile.open(sorted(out.glob("leaves_ref-*.tar"))[0]) as tar:
        meta = json.loads(tar.extractfile(next(m for m in tar if m.name.endswith(".json"))).read())
    p = meta["params"]
    assert 1 <= p["steps"] <= 4 and p["source"]["key"] and 0 <= p["target"] < 10 and 0 < p["teacher_conf"] <= 1
    assert "bn_loss" in p
    # the set's balance, printed and kept in the manifest: fair targets give every class 4 or 5 of 48
    summary = manifest["summary"]
    assert sorted(set(summary["target_counts"])) == [4, 5] and sum(summary["class_counts"]) == 48
    assert summary["target_entropy"] > 0.99 and 0 <= summary["class_entropy"] <= 1
    assert 1 <= summary["steps"] <= summary["steps_max"] <= 4
    assert f"targets: relative entropy {summary['target_entropy']:.3f}; c0 " in res.output
    assert f"teacher predictions: relative entropy {summary['class_entropy']:.3f}; c0 " in res.output
    again = tmp_path / "again"
    assert CliRunner().invoke(cli, [*args[:-5], "--out", str(again / "leaves_ref"), "--shard-size", "20",
                                    "--no-progress"]).exit_code == 0
    assert [f.read_bytes() for f in sorted(out.glob("*.tar"))] == [f.read_bytes() for f in sorted(again.glob("*.tar"))]


def test_offline_command_refuses_a_teacher_with_folded_batchnorm_and_writes_nothing(world, tmp_path):
    res = CliRunner().invoke(cli, ["refine", "--teacher", str(world / "folded.pt"), "--shards",
                                   str(world / "s" / "leaves-*.tar"), "--out", str(tmp_path / "x" / "r")])
    assert res.exit_code == 2 and "no BatchNorm layers" in res.output
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


def test_distill_with_online_refine_then_attack(world, tmp_path):
    cfg = DistillConfig(teacher=str(world / "teacher.pt"), shards=[str(world / "s" / "leaves-*.tar")], steps=2,
                        batch_size=16, workers=0, threads=1, out=str(tmp_path / "r"), tensorboard=False,
                        progress=False, eval="none", refine="fraction=0.5,steps=2", adv="fraction=0.25,every=1")
    summary = distill(cfg)
    assert summary["steps"] == 2
