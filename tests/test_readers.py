"""Our shards as other tools read them: the snippets of docs/FORMAT.md, run as written on a folder `data/`
holding generator output (no .cls) and a curated set (the teacher's prediction as .cls)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from kdgen import manifest
from kdgen.runner import RunConfig, generate
from kdtrain.cli.main import cli
from tests._kdtrain_fixtures import write_teacher

FORMAT = Path(__file__).resolve().parents[1] / "docs" / "FORMAT.md"


def snippets() -> list[str]:
    """The python blocks of FORMAT.md's section on other readers, in order."""
    text = FORMAT.read_text()
    section = text[text.index("## Reading the shards with other tools"):]
    section = section[: section.index("\n## ", 1)]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def run_snippet(index: int, needs: str) -> dict:
    """Run snippet `index` (which must import `needs`) in the current folder; returns its variables."""
    code = snippets()[index]
    assert f"import {needs}" in code or f"from {needs}" in code, code
    variables: dict = {}
    exec(compile(code, f"FORMAT.md snippet {index}", "exec"), variables)
    return variables


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """data/leaves (20 samples, one per shard, as the webdataset snippet names them) and data/balanced
    (`kdtrain curate` output); the snippets run in this folder."""
    root = tmp_path_factory.mktemp("readers")
    data = root / "data"
    generate(RunConfig("leaves", n=20, size=(12, 12), out=data, shard_size=1, progress=False))
    write_teacher(root / "t.pt", channels=3, size=12, classes=4)
    res = CliRunner().invoke(cli, ["curate", "--teacher", str(root / "t.pt"), "--shards", str(data / "leaves-*.tar"),
                                   "--per-class", "3", "--out", str(data / "balanced"), "--shard-size", "5"])
    assert res.exit_code == 0, res.output
    return root


@pytest.fixture
def in_root(root, monkeypatch):
    monkeypatch.chdir(root)
    return root


def balanced_preds(root: Path) -> list[int]:
    from kdtrain.data.shards import expand_patterns, iterate_raw

    samples = list(iterate_raw(expand_patterns([str(root / "data" / "balanced-*.tar")])))
    assert len(samples) == manifest.load(root / "data" / "balanced-manifest.json")["num_samples"] > 0
    return [s["meta"]["params"]["teacher_pred"] for s in samples]


def test_the_documented_snippets_are_the_ones_tested():
    assert len(snippets()) == 4


def test_webdataset(in_root):
    v = run_snippet(0, "webdataset")
    samples = list(v["ds"])
    assert len(samples) == 20 and all(s["png"].size == (12, 12) and s["json"]["generator"] == "leaves"
                                      for s in samples)
    assert v["label"] is None and not any("cls" in s for s in samples)  # generator output: no label
    labelled = list(v["wds"].WebDataset(sorted(str(p) for p in (in_root / "data").glob("balanced-*.tar")),
                                        shardshuffle=False).decode("pil"))
    assert [s["cls"] for s in labelled] == [s["json"]["params"]["teacher_pred"] for s in labelled]


def test_timm_reads_a_labelled_set_by_its_cls(in_root):
    v = run_snippet(1, "timm")
    items = list(v["ds"])
    assert [t for _, t in items] == balanced_preds(in_root)
    assert all(img.size == (12, 12) and img.mode == "RGB" for img, _ in items)


def test_timm_reads_generator_output_with_a_placeholder_target(in_root):
    v = run_snippet(2, "timm")
    assert sorted(t for _, t in v["ds"]) == list(range(20))
    # without target_key it passes over every sample of generator output, as FORMAT.md says
    assert list(v["create_dataset"]("wds/leaves", root="data", split="leaves")) == []


def test_hugging_face_datasets(in_root, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(in_root / "hf-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    v = run_snippet(3, "datasets")
    ds = v["ds"]
    assert "cls" in ds.column_names and [int(c) for c in ds["cls"]] == balanced_preds(in_root)
    leaves = v["load_dataset"]("webdataset", data_files={"train": "data/leaves-*.tar"}, split="train")
    assert len(leaves) == 20 and "cls" not in leaves.column_names
