"""Every teacher format with BatchNorm refines and scores alike: the same small BN network as a kdtrain
checkpoint, a .pt2 export (dynamic batch), TorchScript (scripted and traced) and a state_dict gives the
same BatchNorm statistics, refinement and features. Folded BatchNorm is refused with what to do
instead; custom architectures load by name; bad teacher files and sidecars are one-line errors."""

import json
import re
import shutil
import sys
import warnings

import pytest
import torch
from click.testing import CliRunner
from torch import nn
from torch.fx.experimental.optimization import fuse

from kdtrain.cli.main import cli
from kdtrain.data.spec import InputSpec
from kdtrain.errors import UserError
from kdtrain.models.registry import create_model
from kdtrain.models.teachers import load_teacher, model_checkpoint, save_model
from kdtrain.synth.refine import RefineConfig, StatsProbe, batchnorm_layers, refine_batch
from kdtrain.train.config import DistillConfig
from kdtrain.train.distill import distill
from tests._kdtrain_fixtures import write_shards
from tests.conftest import assert_one_line_error

torch.set_num_threads(1)
SPEC = InputSpec(1, 12, 12, (0.3,), (0.3,))
NAMES = [f"c{i}" for i in range(10)]
FILES = {"checkpoint": "net.pt", "pt2": "net.pt2", "scripted": "scripted.ts", "traced": "traced.ts",
         "state_dict": "weights.pth"}
OTHERS = ["pt2", "scripted", "traced", "state_dict"]
X = torch.rand(16, 1, 12, 12, generator=torch.Generator().manual_seed(1))
BATCH = ({0: torch.export.Dim("batch")},)


def bn_net() -> nn.Module:
    """cnn-tiny with running statistics of its own 'data' (not the initial zeros and ones)."""
    torch.manual_seed(0)
    model = create_model("cnn-tiny", 10, 1).train()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _ in range(20):
            model(torch.randn(32, 1, 12, 12, generator=g) * 0.5 + 0.2)
    return model.eval()


def sidecar(path, **extra) -> None:
    path.with_suffix(".json").write_text(json.dumps({"spec": SPEC.to_dict(), "class_names": NAMES, **extra}))


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    d = tmp_path_factory.mktemp("zoo")
    model = bn_net()
    x = torch.rand(2, 1, 12, 12)
    save_model(d / FILES["checkpoint"], model_checkpoint(model, "cnn-tiny", SPEC, 10, NAMES))
    torch.export.save(torch.export.export(model, (x,), dynamic_shapes=BATCH), d / FILES["pt2"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notices
        torch.jit.script(model).save(str(d / FILES["scripted"]))
        torch.jit.trace(model, x).save(str(d / FILES["traced"]))
        # deployment exports: BatchNorm folded into the convolutions
        torch.jit.freeze(torch.jit.script(model)).save(str(d / "folded.ts"))
    torch.export.save(torch.export.export(fuse(model), (x,), dynamic_shapes=BATCH), d / "folded.pt2")
    torch.save(model.state_dict(), d / FILES["state_dict"])
    for name in ("pt2", "scripted", "traced"):
        sidecar(d / FILES[name])
    sidecar(d / FILES["state_dict"], arch="cnn-tiny")
    sidecar(d / "folded.ts")
    sidecar(d / "folded.pt2")
    write_shards(d / "s", "leaves", 32, 16, size=16, channels=3, labels=False)
    return d


def stats_loss(teacher, x) -> float:
    with StatsProbe(batchnorm_layers(teacher)) as probe, torch.no_grad():
        teacher(x)
        return float(probe.take())


@pytest.mark.parametrize("fmt", OTHERS)
def test_batchnorm_statistics_and_features_match_the_checkpoint(zoo, fmt):
    ref, t = load_teacher(zoo / FILES["checkpoint"]), load_teacher(zoo / FILES[fmt])
    assert t.class_names == NAMES and t.num_classes == 10
    ref_layers, layers = batchnorm_layers(ref), batchnorm_layers(t)
    assert len(layers) == len(ref_layers) == 3
    for a, b in zip(ref_layers, layers, strict=True):
        assert torch.equal(a.running_mean, b.running_mean) and torch.equal(a.running_var, b.running_var)
    assert stats_loss(t, X) == pytest.approx(stats_loss(ref, X), rel=1e-5)
    with torch.no_grad():
        ref_logits, ref_feats = ref.logits_and_features(X)
        logits, feats = t.logits_and_features(X)  # one forward for both
    assert feats.shape == (16, 64)  # cnn-tiny: the input of its last linear layer
    assert torch.allclose(logits, ref_logits, atol=1e-5) and torch.allclose(feats, ref_feats, atol=1e-5)
    assert torch.allclose(t.features(X), ref_feats, atol=1e-5)


@pytest.mark.parametrize("fmt", OTHERS)
def test_refine_batch_matches_the_checkpoint(zoo, fmt):
    cfg = RefineConfig(steps=4)
    a = refine_batch(load_teacher(zoo / FILES["checkpoint"]), X, cfg, torch.Generator().manual_seed(3))
    b = refine_batch(load_teacher(zoo / FILES[fmt]), X, cfg, torch.Generator().manual_seed(3))
    assert torch.equal(a.target, b.target)
    assert b.bn_loss_start == pytest.approx(a.bn_loss_start, rel=1e-5)
    assert b.bn_loss == pytest.approx(a.bn_loss, rel=1e-4) and b.bn_loss < b.bn_loss_start
    assert torch.allclose(a.images, b.images, atol=1e-4)


def _refine_and_score(zoo, tmp_path, fmt) -> tuple[list[float], dict]:
    out = tmp_path / fmt
    common = ["--teacher", str(zoo / FILES[fmt]), "--shards", str(zoo / "s" / "leaves-*.tar"), "--amp", "off",
              "--batch-size", "16"]
    res = CliRunner().invoke(cli, ["refine", *common, "--steps", "3", "--out", str(out / "r"), "--no-progress"])
    assert res.exit_code == 0, res.output
    losses = [float(v) for v in re.search(r"BN statistics loss ([\d.]+) -> ([\d.]+)", res.output).groups()]
    res = CliRunner().invoke(cli, ["score", *common, "--out", str(out / "score")])
    assert res.exit_code == 0, res.output
    return losses, json.loads((out / "score" / "score.json").read_text())["sets"]["leaves"]


@pytest.mark.parametrize("fmt", ["pt2", "scripted"])
def test_refine_and_score_commands_take_export_and_torchscript_teachers(zoo, tmp_path, fmt):
    ref_losses, ref_scores = _refine_and_score(zoo, tmp_path, "checkpoint")
    losses, scores = _refine_and_score(zoo, tmp_path, fmt)
    assert losses == pytest.approx(ref_losses, abs=2e-3) and losses[1] < losses[0]
    assert scores["class_counts"] == ref_scores["class_counts"]
    for key in ("mean_max_softmax", "feature_spread", "diversity"):  # the last two come from the features
        assert scores[key] == pytest.approx(ref_scores[key], rel=1e-4), key


@pytest.mark.parametrize("fmt", ["pt2", "traced"])
def test_online_refine_hook_takes_export_and_torchscript_teachers(zoo, tmp_path, fmt):
    cfg = DistillConfig(teacher=str(zoo / FILES[fmt]), shards=[str(zoo / "s" / "leaves-*.tar")], steps=2,
                        batch_size=16, workers=0, threads=1, out=str(tmp_path / "r"), tensorboard=False,
                        progress=False, eval="none", refine="fraction=0.5,steps=2")
    assert distill(cfg)["steps"] == 2


@pytest.mark.parametrize("name", ["folded.ts", "folded.pt2"])
def test_folded_batchnorm_is_refused_by_refine_but_scores(zoo, tmp_path, name):
    res = CliRunner().invoke(cli, ["refine", "--teacher", str(zoo / name), "--shards", str(zoo / "s" / "leaves-*.tar"),
                                   "--out", str(tmp_path / "x" / "r")])
    assert_one_line_error(res, "has no BatchNorm layers (none in its graph: deployment exports often fold them")
    assert "kdtrain attack" in res.output
    assert not (tmp_path / "x").exists()
    res = CliRunner().invoke(cli, ["score", "--teacher", str(zoo / name), "--shards", str(zoo / "s" / "leaves-*.tar"),
                                   "--out", str(tmp_path / "score"), "--amp", "off"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "score" / "score.json").read_text())["sets"]["leaves"]["n"] == 32


def test_torchscript_teacher_loads_without_torch_deprecation_notice(zoo):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_teacher(zoo / FILES["scripted"])
    assert not [w for w in caught if "deprecated" in str(w.message)], [str(w.message) for w in caught]


# ---- custom architectures by name ------------------------------------------------------------

ARCH_CODE = '''
from kdtrain.models.registry import create_model

def make(num_classes, in_channels):
    return create_model("cnn-tiny", num_classes, in_channels)
'''


def test_teacher_arch_from_a_python_file_and_from_a_module(zoo, tmp_path, monkeypatch):
    (tmp_path / "arch.py").write_text(ARCH_CODE)
    (tmp_path / "mynets").mkdir()
    (tmp_path / "mynets" / "__init__.py").write_text("")
    (tmp_path / "mynets" / "small.py").write_text(ARCH_CODE)
    monkeypatch.syspath_prepend(str(tmp_path))
    ref = load_teacher(zoo / FILES["checkpoint"])
    weights = tmp_path / "w.pth"
    shutil.copy(zoo / FILES["state_dict"], weights)  # no sidecar: the architecture comes from the flag
    for arch in (f"{tmp_path / 'arch.py'}:make", "mynets.small:make"):
        t = load_teacher(weights, arch=arch, spec=SPEC)
        assert torch.allclose(t(X), ref(X), atol=1e-6) and len(batchnorm_layers(t)) == 3
    res = CliRunner().invoke(cli, ["score", "--teacher", str(weights), "--teacher-arch", f"{tmp_path / 'arch.py'}:make",
                                   "--teacher-spec", "1x12x12/0.3/0.3", "--shards", str(zoo / "s" / "leaves-*.tar"),
                                   "--out", str(tmp_path / "score")])
    assert res.exit_code == 0, res.output


def test_a_checkpoint_of_a_users_architecture_loads_once_its_code_is_named(zoo, tmp_path):
    """A kdtrain checkpoint whose arch is the user's factory: refused alone (never imports the code it
    names), loaded with --teacher-arch naming that code, with the checkpoint's spec and classes."""
    (tmp_path / "arch.py").write_text(ARCH_CODE)
    arch = f"{tmp_path / 'arch.py'}:make"
    ckpt = torch.load(zoo / FILES["checkpoint"], weights_only=True)
    torch.save({**ckpt, "arch": arch}, tmp_path / "mine.pt")
    with pytest.raises(UserError, match=f"pass --teacher-arch {re.escape(arch)}"):
        load_teacher(tmp_path / "mine.pt")
    t = load_teacher(tmp_path / "mine.pt", arch=arch)
    assert torch.allclose(t(X), load_teacher(zoo / FILES["checkpoint"])(X), atol=1e-6)
    assert t.class_names == NAMES and t.spec == SPEC and len(batchnorm_layers(t)) == 3


def test_timm_architecture_by_name(tmp_path):
    timm = pytest.importorskip("timm")  # the timm extra (make install has it)
    model = timm.create_model("test_resnet", pretrained=False, num_classes=10, in_chans=1).eval()
    torch.save(model.state_dict(), tmp_path / "w.pth")
    t = load_teacher(tmp_path / "w.pth", arch="timm:test_resnet", spec="1x32x32")
    x = torch.rand(4, 1, 32, 32)
    assert torch.allclose(t(x), model((x - 0.5) / 0.5), atol=1e-5)
    assert batchnorm_layers(t) and t.features(x).shape[0] == 4


def test_missing_timm_is_one_line(zoo, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # as if it were not installed: its import fails
    res = CliRunner().invoke(cli, ["score", "--teacher", str(zoo / FILES["state_dict"]), "--teacher-arch",
                                   "timm:resnet18", "--shards", str(zoo / "s" / "leaves-*.tar"),
                                   "--out", str(tmp_path / "o")])
    assert_one_line_error(res, "timm:resnet18 needs timm, which is not installed: pip install timm")


def test_a_data_file_never_imports_code(zoo, tmp_path):
    marker = tmp_path / "RAN"
    (tmp_path / "evil.py").write_text(f"open({str(marker)!r}, 'w').close()\ndef make():\n    return None\n")
    weights = tmp_path / "w.pth"
    shutil.copy(zoo / FILES["state_dict"], weights)
    sidecar(weights, arch=f"{tmp_path / 'evil.py'}:make")
    with pytest.raises(UserError, match="code to import; kdtrain imports code only when told on the command line"):
        load_teacher(weights)
    ckpt = torch.load(zoo / FILES["checkpoint"], weights_only=True)
    torch.save({**ckpt, "arch": f"{tmp_path / 'evil.py'}:make"}, tmp_path / "evil.pt")
    with pytest.raises(UserError, match="code to import"):
        load_teacher(tmp_path / "evil.pt")
    assert not marker.exists()


# ---- bad teachers: one line, exit 2, nothing written -------------------------------------------

def _score(zoo, tmp_path, teacher, *extra):
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["score", "--teacher", str(teacher), *map(str, extra), "--shards",
                                   str(zoo / "s" / "leaves-*.tar"), "--out", str(out)])
    assert not out.exists()
    return res


@pytest.mark.parametrize("name,content,needle", [
    ("notes.txt", b"just some text\n", "not a model file"),
    ("picture.png", b"\x89PNG\r\n\x1a\n" + bytes(64), "not a model file"),
    ("teacher.pt2", b"{}", "not a .pt2 archive"),
])
def test_a_file_that_is_no_teacher(zoo, tmp_path, name, content, needle):
    (tmp_path / name).write_bytes(content)
    assert_one_line_error(_score(zoo, tmp_path, tmp_path / name), needle)


def test_a_zip_that_is_no_teacher(zoo, tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "photos.zip", "w") as z:
        z.writestr("a.txt", "hello")
    assert_one_line_error(_score(zoo, tmp_path, tmp_path / "photos.zip"), "cannot read teacher")


@pytest.mark.parametrize("code,factory,needle", [
    ("raise RuntimeError('no GPU here')\n", "make", "importing"),
    ("def make(:\n", "make", "importing"),
    ("def make(num_classes):\n    return 42\n", "make", "make() returned int, not a torch nn.Module"),
    ("def make(num_classes):\n    raise ValueError('bad depth')\n", "make", "make() raised ValueError: bad depth"),
    ("x = 1\n", "make", "has no function 'make'"),
])
def test_bad_user_factories(zoo, tmp_path, code, factory, needle):
    (tmp_path / "arch.py").write_text(code)
    res = _score(zoo, tmp_path, zoo / FILES["state_dict"], "--teacher-arch", f"{tmp_path / 'arch.py'}:{factory}")
    assert_one_line_error(res, needle)


class TupleNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = bn_net()

    def forward(self, x):
        return self.net(x), x.mean()


class MapNet(nn.Module):
    def forward(self, x):
        return torch.cat([x] * 10, dim=1)  # N x 10 x H x W: no pooled logits


def test_a_teacher_whose_output_is_not_n_by_classes(zoo, tmp_path):
    x = torch.rand(2, 1, 12, 12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(TupleNet().eval()).save(str(tmp_path / "tuple.ts"))
    sidecar(tmp_path / "tuple.ts")
    assert_one_line_error(_score(zoo, tmp_path, tmp_path / "tuple.ts"), "returns tuple for 2 images")
    torch.export.save(torch.export.export(MapNet(), (x,), dynamic_shapes=BATCH), tmp_path / "map.pt2")
    sidecar(tmp_path / "map.pt2")
    assert_one_line_error(_score(zoo, tmp_path, tmp_path / "map.pt2"), "returns a tensor of shape (2, 10, 12, 12)")


def test_an_export_with_a_fixed_batch_size(zoo, tmp_path):
    torch.export.save(torch.export.export(bn_net(), (torch.rand(8, 1, 12, 12),)), tmp_path / "fixed.pt2")
    sidecar(tmp_path / "fixed.pt2")
    assert_one_line_error(_score(zoo, tmp_path, tmp_path / "fixed.pt2"), "exported with a fixed batch size of 8")


SPEC_JSON = SPEC.to_dict()


@pytest.mark.parametrize("side,needle", [
    ({"channels": 1, "size": 100000, "mean": [0.3], "std": [0.3]}, "too large: at most 4096 pixels a side"),
    ({"spec": {**SPEC_JSON, "std": [0]}}, "std [0.0]: the normalisation std must be positive"),
    ({"spec": {**SPEC_JSON, "std": [-1]}}, "std must be positive"),
    ({"spec": {**SPEC_JSON, "mean": [float("nan")]}}, "mean must be finite"),
    ({"spec": {**SPEC_JSON, "channels": 1e400}}, "bad input spec"),
    ({"spec": SPEC_JSON, "class_names": [f"c{i}" for i in range(1_000_000)]}, "1,000,000 class names; give 1 to"),
    ({"spec": SPEC_JSON, "class_names": ["a", "b", "c"]}, "returns 10 logits per image but has 3 class names"),
    ({"spec": SPEC_JSON, "class_names": [1, 2]}, "class_names must be a list of strings"),
    ({"spec": SPEC_JSON, "num_classes": -3}, "num_classes must be a whole number from 1 to"),
    ({"spec": SPEC_JSON, "num_classes": 7}, "returns 10 logits per image but is said to have 7 classes"),
    ([SPEC_JSON], "holds a JSON list; expected an object"),
    ("[" * 100000 + "]" * 100000, "nested too deeply"),
])
def test_bad_sidecars(zoo, tmp_path, side, needle):
    teacher = tmp_path / "t.pt2"
    shutil.copy(zoo / FILES["pt2"], teacher)
    teacher.with_suffix(".json").write_text(side if isinstance(side, str) else json.dumps(side))
    assert_one_line_error(_score(zoo, tmp_path, teacher), needle)


def test_distill_refuses_a_zero_std_before_writing_anything(zoo, tmp_path):
    teacher = tmp_path / "t.pt2"
    shutil.copy(zoo / FILES["pt2"], teacher)
    sidecar(teacher, spec={**SPEC_JSON, "std": [0.0]})
    out = tmp_path / "run"
    res = CliRunner().invoke(cli, ["distill", "--teacher", str(teacher), "--shards", str(zoo / "s" / "leaves-*.tar"),
                                   "--steps", "2", "--batch-size", "16", "--out", str(out), "--workers", "0"])
    assert_one_line_error(res, "std must be positive")
    assert "--lr" not in res.output and not out.exists()
