"""The photos generator: random crops of scikit-image's bundled photographs (the `photos` extra)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from kdgen.registry import get_generator
from kdgen.runner import RunConfig, generate
from kdgen.seeding import sample_seed
from tests.conftest import assert_one_line_error

ROOT = Path(__file__).resolve().parent.parent
needs_photos = pytest.mark.skipif(importlib.util.find_spec("skimage") is None,
                                  reason="the photos extra (scikit-image) is not installed")


@needs_photos
def test_every_listed_photo_is_bundled_and_a_real_photo():
    from kdgen.generators.photos import PHOTOS, photo_folder

    assert len(PHOTOS) >= 10
    for p in PHOTOS:
        with Image.open(photo_folder() / p) as img:
            assert min(img.size) >= 150, p  # large enough for many distinct crops


@needs_photos
def test_crops_lie_inside_their_photo_and_vary():
    from kdgen.generators.photos import photo_folder

    gen = get_generator("photos")((40, 24), scale="0.01,1", ratio="0.5,2")
    gen.open()
    out = gen.render([sample_seed(1, i) for i in range(200)])
    sizes = {}
    for img, meta in out:
        assert img.shape == (24, 40, 3) and img.dtype == np.uint8
        if meta["source"] not in sizes:
            with Image.open(photo_folder() / gen.files[gen.params["photos"].index(meta["source"])]) as photo:
                sizes[meta["source"]] = photo.size
        pw, ph = sizes[meta["source"]]
        x0, y0, x1, y1 = meta["box"]
        assert 0 <= x0 < x1 <= pw and 0 <= y0 < y1 <= ph
        json.dumps(meta)  # shard metadata must be JSON
    assert len(sizes) >= 12, "crops should come from most of the photos"
    assert 40 < sum(m["flip"] for _, m in out) < 160
    assert len({(m["source"], *m["box"]) for _, m in out}) >= 195


@needs_photos
def test_crops_as_large_as_their_photo_stay_inside_it():
    """Whole-photo crops fit one side exactly: rounding must not put the box a hair outside the photo."""
    gen = get_generator("photos")((32, 32), scale="1,1", ratio="0.25,4")
    for img, meta in gen.render([sample_seed(0, i) for i in range(300)]):
        assert min(meta["box"][:2]) >= 0 and img.shape == (32, 32, 3)


@needs_photos
def test_flat_crops_are_redrawn_and_options_apply():
    from kdgen.generators.photos import MAX_TRIES

    gen = get_generator("photos")((16, 16), photos="hubble_deep_field,retina", flip=False, min_std=25)
    out = gen.render([sample_seed(0, i) for i in range(64)])
    assert {m["source"] for _, m in out} == {"hubble_deep_field", "retina"}
    assert not any(m["flip"] for _, m in out)
    redrawn = gen.take_counters()["flat_redrawn"]
    assert redrawn > 0 and redrawn == sum(m.get("tries", 1) - 1 for _, m in out)
    for img, meta in out:  # a crop kept flat only after every try
        assert img.std() >= 25 or meta["tries"] == MAX_TRIES


def test_bad_options_are_refused():
    cls = get_generator("photos")
    for kwargs, needle in (({"photos": "astronaut,unicorn"}, "unicorn"), ({"scale": "0.5,0.1"}, "--scale"),
                           ({"scale": "0,1"}, "--scale"), ({"ratio": "2"}, "--ratio"), ({"min_std": -1}, "--min-std")):
        with pytest.raises(ValueError, match=needle):
            cls((8, 8), **kwargs)


def test_a_missing_photo_package_is_one_line_naming_the_extra(monkeypatch):
    from kdgen.cli import cli

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "skimage" else real(name, *a))
    result = CliRunner().invoke(cli, ["photos", "--n", "4", "--out", "unused", "--quiet"])
    assert_one_line_error(result, ".[photos]")


@needs_photos
def test_same_bytes_whatever_the_workers_and_resume(tmp_path):
    runs = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        generate(RunConfig("photos", n=24, size=(20, 20), out=out, seed=5, shard_size=8, workers=workers,
                           progress=False))
        runs[workers] = [(out / f"photos-{s:06d}.tar").read_bytes() for s in range(3)]
    assert runs[1] == runs[2]
    # kill-and-resume: a lost shard is made again, identically
    (tmp_path / "w1" / "photos-000001.tar").unlink()
    generate(RunConfig("photos", n=24, size=(20, 20), out=tmp_path / "w1", seed=5, shard_size=8, progress=False))
    assert (tmp_path / "w1" / "photos-000001.tar").read_bytes() == runs[2][1]
    meta = json.loads((tmp_path / "w1" / "photos-manifest.json").read_text())
    assert meta["params"]["photos_sha256"] and len(meta["params"]["photos"]) >= 10


@needs_photos
def test_photos_never_import_torch_or_scikit_image(tmp_path):
    code = ("import sys\nfrom kdgen.cli import cli\n"
            "try:\n    cli(['photos', '--n', '8', '--out', sys.argv[1], '--quiet'])\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            "print('torch' in sys.modules, 'skimage' in sys.modules, 'scipy' in sys.modules)\n")
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "False False False"
