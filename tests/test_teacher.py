import json

import pytest
import torch
from click.testing import CliRunner

from kdtrain.cli.main import cli
from kdtrain.data.spec import InputSpec, adapt
from kdtrain.errors import UserError
from kdtrain.models.registry import create_model
from kdtrain.models.teachers import load_teacher
from tests._kdtrain_fixtures import write_shards, write_teacher

torch.set_num_threads(1)


def test_checkpoint_roundtrip_frozen_eval(tmp_path):
    spec = write_teacher(tmp_path / "t.pt", channels=1, size=12)
    t = load_teacher(tmp_path / "t.pt")
    assert t.spec == spec and t.num_classes == 10 and t.class_names[3] == "c3"
    assert not t.model.training and not any(p.requires_grad for p in t.model.parameters())
    x = torch.rand(4, 1, 12, 12)
    assert t(x).shape == (4, 10)
    assert t.features(x).shape == (4, 64)  # cnn-tiny: the input of its last Linear
    assert torch.allclose(t.normalize(x), (x - 0.5) / 0.25)


def test_adapt_grey_rgb_and_resize():
    spec3 = InputSpec(3, 8, 8, (0.5,), (0.5,))
    grey = torch.rand(2, 1, 16, 16)
    out = adapt(grey, spec3)
    assert out.shape == (2, 3, 8, 8) and torch.equal(out[:, 0], out[:, 1])
    rgb = torch.rand(2, 3, 8, 8)
    g = adapt(rgb, InputSpec(1, 8, 8, (0.5,), (0.5,)))
    assert torch.allclose(g[:, 0], 0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2])
    assert InputSpec.parse("3x32x24/0.1,0.2,0.3/1,1,1").mean == (0.1, 0.2, 0.3)


def test_export_torchscript_and_state_dict_with_sidecar(tmp_path):
    model = create_model("cnn-tiny", 4, 3).eval()
    x = torch.rand(2, 3, 10, 10)
    side = {"spec": {"channels": 3, "height": 10, "width": 10, "mean": [0.5], "std": [0.5]},
            "class_names": ["a", "b", "c", "d"]}
    batch = ({0: torch.export.Dim("batch")},)  # a fixed batch size is refused (issue #15)
    torch.export.save(torch.export.export(model, (x,), dynamic_shapes=batch), tmp_path / "m.pt2")
    (tmp_path / "m.json").write_text(json.dumps(side))
    torch.jit.save(torch.jit.trace(model, x), tmp_path / "s.ts")
    (tmp_path / "s.json").write_text(json.dumps(side))
    torch.save(model.state_dict(), tmp_path / "w.pth")
    ref = model((x - 0.5) / 0.5)
    for path, kw in [("m.pt2", {}), ("s.ts", {}), ("w.pth", {"arch": "cnn-tiny", "spec": "3x10x10"})]:
        t = load_teacher(tmp_path / path, **kw)
        assert t.num_classes == 4
        assert torch.allclose(t(x), ref, atol=1e-5), path
    exported = load_teacher(tmp_path / "m.pt2")
    assert exported.class_names == ["a", "b", "c", "d"]
    ref_feat = load_teacher(tmp_path / "w.pth", arch="cnn-tiny", spec="3x10x10").features(x)
    assert torch.allclose(exported.features(x), ref_feat, atol=1e-5)  # cut from the exported graph


def test_bad_teacher_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_teacher(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot read"):
        load_teacher(tmp_path / "junk.pt")
    torch.save(create_model("cnn-tiny", 4, 3).state_dict(), tmp_path / "w.pth")
    with pytest.raises(UserError, match="spec"):
        load_teacher(tmp_path / "w.pth", arch="cnn-tiny")
    with pytest.raises(UserError, match="do not fit"):
        load_teacher(tmp_path / "w.pth", arch="resnet8", spec="3x10x10")


def test_teacher_command_on_labelled_shards(tmp_path):
    write_shards(tmp_path / "d", "train", 96, 48, size=12, channels=1)
    out = tmp_path / "run"
    args = ["teacher", "--data", str(tmp_path / "d" / "train-*.tar"), "--arch", "cnn-tiny", "--steps", "3",
            "--batch-size", "32", "--out", str(out), "--workers", "0", "--threads", "1", "--eval", "none",
            "--no-tensorboard", "--no-progress"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    t = load_teacher(out / "teacher.pt")
    assert t.spec.channels == 1 and t.spec.height == 12 and t.num_classes == 10
    assert json.loads((out / "summary.json").read_text())["steps"] == 3


def test_image_folder_source_skips_unreadable_files(image_folder):
    import warnings

    from kdtrain.data.datasets import load_labelled
    from kdtrain.data.stream import labelled_batches

    data = load_labelled(str(image_folder), train=False)  # no test/ or val/ inside: the folder itself
    assert data.class_names == ["cat", "dog"] and len(data) == 8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batches = list(labelled_batches(data.dataset, InputSpec(1, 16, 16, (0.5,), (0.5,)), 4))
    assert sum(len(y) for _, y in batches) == 7 and batches[0][0].shape[1:] == (1, 16, 16)


def test_fashion_mnist_idx_files():
    from kdtrain.data.datasets import load_labelled

    data = load_labelled("fashion-mnist", train=False)
    assert len(data) == 10000 and data.spec.channels == 1 and data.class_names[9] == "Ankle boot"
    img, label = data.dataset[0]
    assert img.shape == (1, 28, 28) and img.dtype == torch.uint8 and 0 <= label < 10


def test_digits_from_scikit_learns_wheel_split_the_same_every_time():
    from kdtrain.data.datasets import load_labelled

    train, test = load_labelled("digits", train=True), load_labelled("digits", train=False)
    assert len(train) + len(test) == 1797 and len(test) == 359
    assert train.spec == test.spec and (train.spec.channels, train.spec.height, train.spec.width) == (1, 28, 28)
    assert 0.2 < train.spec.mean[0] < 0.4 and train.class_names == [str(i) for i in range(10)]
    for part in (train, test):  # every class in both splits, in the proportion of the whole set
        counts = torch.bincount(part.dataset.labels, minlength=10)
        assert counts.min() >= 0.75 * counts.max()
    images = test.dataset.images
    assert images.dtype == torch.uint8 and images.shape == (359, 1, 28, 28) and images.max() == 255
    # deterministic, and no test image is also a training image
    assert torch.equal(load_labelled("digits", train=False).dataset.images, images)
    flat = {bytes(x.numpy()) for x in train.dataset.images}
    assert sum(bytes(x.numpy()) in flat for x in images) <= 3  # the set holds a few exact duplicates


def test_digits_without_scikit_learn_is_one_line_naming_the_extra(monkeypatch):
    import importlib.util

    from kdtrain.data.datasets import load_labelled

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(UserError, match=r"pip install -e '\.\[digits\]'"):
        load_labelled("digits", train=True)
