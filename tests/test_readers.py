"""Our shards as other tools read them (the snippets of docs/FORMAT.md), labelled and unlabelled; a test
per reader, skipped where that reader is not installed."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from kdgen.runner import RunConfig, generate
from kdtrain.cli.main import cli
from tests._kdtrain_fixtures import write_teacher


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """`noise` (generator output: no .cls) and `cur` (curate output: the teacher's prediction as .cls)."""
    root = tmp_path_factory.mktemp("readers")
    generate(RunConfig("noise", n=12, size=(12, 12), out=root, shard_size=6, progress=False, params={"channels": 1}))
    write_teacher(root / "t.pt", channels=1, size=12, classes=4)
    res = CliRunner().invoke(cli, ["curate", "--teacher", str(root / "t.pt"), "--shards", str(root / "noise-*.tar"),
                                   "--per-class", "12", "--out", str(root / "cur"), "--shard-size", "5"])
    assert res.exit_code == 0, res.output
    return root


def test_attack_and_curate_write_the_prediction_as_cls(data):
    from kdtrain.data.shards import expand_patterns, iterate_raw

    samples = list(iterate_raw(expand_patterns([str(data / "cur-*.tar")])))
    assert samples and all(s["label"] == s["meta"]["params"]["teacher_pred"] for s in samples)


def test_webdataset(data):
    import webdataset as wds

    for name, labelled in (("noise", False), ("cur", True)):
        ds = wds.WebDataset(sorted(str(p) for p in data.glob(f"{name}-*.tar")), shardshuffle=False).decode("pil")
        samples = list(ds)
        assert samples and all(s["png"].size == (12, 12) and "generator" in s["json"] for s in samples)
        assert all(("cls" in s) == labelled for s in samples)
        if labelled:
            assert all(s["cls"] == s["json"]["params"]["teacher_pred"] for s in samples)


def test_timm(data):
    pytest.importorskip("timm", reason="timm is not installed")
    from timm.data import create_dataset

    ds = create_dataset("wds/cur", root=str(data), split="cur", input_img_mode="RGB", input_key="png",
                        target_key="cls")
    items = list(ds)
    assert len(items) > 0 and all(isinstance(t, int) for _, t in items)
    # generator output carries no target: timm reads none of it (use webdataset there)
    assert list(create_dataset("wds/noise", root=str(data), split="noise", input_key="png", target_key="cls")) == []


def test_hugging_face_datasets(data):
    pytest.importorskip("datasets", reason="Hugging Face datasets is not installed")
    from datasets import load_dataset

    cur = load_dataset("webdataset", data_files={"train": str(data / "cur-*.tar")}, split="train")
    assert "cls" in cur.column_names and len(cur) > 0
    noise = load_dataset("webdataset", data_files={"train": str(data / "noise-*.tar")}, split="train")
    assert len(noise) == 12 and "cls" not in noise.column_names
