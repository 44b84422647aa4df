"""The shard contract (kdgen/contract.py) that both packages call, and kdgen staying torch-free."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kdgen import contract
from kdgen.runner import RunConfig, generate

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("text,name", [
    ("data/leaves-0*.tar", "leaves"), ("leaves-{000000..000009}.tar", "leaves"), ("data/leaves-000003.tar", "leaves"),
    ("data/leaves", "leaves"), ("x/leaves-manifest.json", "leaves"), ("leaves-[0-9]*.tar", "leaves"),
    ("data/leaves*.tar", "leaves"), ("data/noise_adv-*.tar", "noise_adv"), ("data/noise-adv", "noise-adv"),
    ("data/set-2", "set-2"), ("a-2-0*.tar", "a-2"),
])
def test_dataset_name_of_what_a_user_types(text, name):
    assert contract.dataset_name(text) == name
    assert contract.manifest_beside(text) == Path(text).parent / f"{name}-manifest.json"


def test_both_packages_read_a_dataset_through_the_contract(tmp_path):
    from kdgen.dataset import iter_samples, resolve
    from kdtrain.data.shards import count_samples, expand_patterns, iterate_raw

    generate(RunConfig("noise", n=7, size=(8, 8), out=tmp_path, shard_size=3, progress=False))
    urls = expand_patterns([str(tmp_path / "noise-*.tar")])
    assert [Path(u).name for u in urls] == [contract.shard_name("noise", i) for i in range(3)]
    assert resolve(urls[1]) == resolve(str(tmp_path / "noise")) == tmp_path / "noise-manifest.json"
    assert count_samples(urls) == sum(contract.count_members(u) for u in urls) == 7
    ours = list(iter_samples(tmp_path / "noise-manifest.json"))
    theirs = list(iterate_raw(urls))
    assert [s["key"] for s in ours] == [s["key"] for s in theirs] == [f"{i:09d}" for i in range(7)]
    for a, b in zip(ours, theirs):  # the same pixels: HxWx3 in kdgen, 3xHxW in kdtrain
        assert np.array_equal(a["image"], b["image"].permute(1, 2, 0).numpy()) and a["meta"] == b["meta"]


def test_atomic_write_leaves_the_old_file_on_failure(tmp_path):
    path = tmp_path / "a.json"
    contract.write_json(path, {"v": 1})

    def fail(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        contract.atomic_write(path, fail)
    assert json.loads(path.read_text()) == {"v": 1} and [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_kdtrain_folder_takes_every_file_import_images_takes(tmp_path):
    from kdgen.importer import scan_folder
    from kdtrain.data.datasets import load_labelled

    rng = np.random.default_rng(0)
    for cls, suffixes in (("a", (".png", ".bmp", ".gif")), ("b", (".tif", ".ppm", ".jpg"))):
        (tmp_path / cls).mkdir()
        for i, suffix in enumerate(suffixes):
            Image.fromarray(rng.integers(0, 255, (6, 6, 3), dtype=np.uint8)).save(tmp_path / cls / f"{i}{suffix}")
    files, classes, _ = scan_folder(tmp_path)
    real = load_labelled(str(tmp_path), train=True)
    assert len(real) == len(files) == 6 and real.class_names == classes


def test_kdgen_info_and_preview_never_import_torch(tmp_path):
    generate(RunConfig("noise", n=4, size=(8, 8), out=tmp_path, progress=False))
    code = ("import sys\nfrom kdgen.cli import cli\n"
            "for args in (['info', sys.argv[1]], ['preview', sys.argv[1], '-o', sys.argv[2]]):\n"
            "    try:\n        cli(args)\n    except SystemExit as e:\n        assert not e.code, e.code\n"
            "print('torch' in sys.modules, 'webdataset' in sys.modules)\n")
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path / "noise"), str(tmp_path / "p.png")],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "False False"
    assert (tmp_path / "p.png").exists()
