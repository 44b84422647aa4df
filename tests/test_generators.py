"""Every registered generator (and variant): shape, dtype, range, determinism, variety."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from kdgen.registry import GENERATORS, get_generator
from kdgen.seeding import sample_seed

get_generator("noise")  # fills the registry


def params_for(name: str, tmp_path, image_folder) -> dict:
    if name == "images":
        from kdgen.importer import scan_folder

        files, _, _ = scan_folder(image_folder)
        return {"root": str(image_folder), "files": files}
    if name == "photos" and importlib.util.find_spec("skimage") is None:
        pytest.skip("the photos extra (scikit-image) is not installed: pip install -e '.[photos]'")
    return {}


CASES = [(name, {}) for name in sorted(GENERATORS)]
CASES += [("noise", {"variant": v}) for v in ("gaussian", "uniform", "spectral", "perlin")]
CASES += [("noise", {"variant": "spectral", "correlated": False}), ("noise", {"channels": 1})]
CASES += [("leaves", {"shape": s}) for s in ("disk", "square", "oriented_square", "rectangle", "triangle",
                                             "quadrilateral")]
CASES += [("leaves", {"colour": c}) for c in ("grey", "textured")] + [("leaves", {"antialias": 2})]


@pytest.mark.parametrize("name,extra", CASES, ids=[f"{n}-{'-'.join(map(str, e.values())) or 'default'}"
                                                   for n, e in CASES])
def test_generator_contract(name, extra, tmp_path, image_folder):
    cls = GENERATORS[name]
    size = (24, 16)  # width != height catches transposed outputs
    gen = cls(size, **params_for(name, tmp_path, image_folder), **extra)
    gen.open()
    try:
        seeds = [sample_seed(7, i) for i in range(4)]
        first = gen.render(seeds)
        again = gen.render(seeds)
        other = gen.render([sample_seed(8, i) for i in range(4)])
        # generators batch their work: an image must not depend on the batch it was made in
        alone = [gen.render([s])[0] for s in seeds[2:]] + gen.render(seeds[1:3])
    finally:
        gen.close()
    for (a, meta_a), (b, meta_b) in zip(first[2:] + first[1:3], alone):
        assert np.array_equal(a, b) and meta_a == meta_b, "an image changed with its batch"
    assert len(first) == 4
    for img, meta in first:
        assert img.dtype == np.uint8
        assert img.shape[:2] == (16, 24) and img.ndim in (2, 3)
        if img.ndim == 3:
            assert img.shape[2] == 3
        assert isinstance(meta, dict)
        assert img.max() > img.min(), "an image is constant"
    for (a, _), (b, _) in zip(first, again):
        assert np.array_equal(a, b), "same seed must give the same image"
    if name != "images":  # a folder's images depend on the index only, by design
        assert not all(np.array_equal(a, b) for (a, _), (b, _) in zip(first, other))
        assert not np.array_equal(first[0][0], first[1][0]), "different samples should differ"


def test_leaves_cover_canvas_and_use_many_leaves():
    from kdgen.generators.leaves import dead_leaves_labels

    rng = np.random.default_rng(0)
    label, n = dead_leaves_labels(rng, 64, 64, np.arange(6), 0.03 * 64, 64.0, 3.0)
    assert (label >= 0).all() and n >= 64
    assert len(np.unique(label)) > 20


def test_fbm_matches_a_direct_per_pixel_perlin_evaluation():
    """The batched matrix form of fBm equals Perlin's definition evaluated pixel by pixel."""
    from kdgen.generators.noise import GRADIENTS, _fade, draw_fbm, fbm_fields

    h, w = 9, 13
    draws = [draw_fbm(np.random.default_rng(s), h, w, 4, c) for s, c in ((0, 1.7), (1, 3.2))]
    fields = fbm_fields(draws, h, w, gain=0.5)
    for (cells, pick, offset), field in zip(draws, fields):
        expected = np.zeros((h, w))
        for o, c in enumerate(cells):
            for i in range(h):
                for j in range(w):
                    y, x = (i + 0.5) * c / w + offset[0, o], (j + 0.5) * c / w + offset[1, o]
                    y0, x0 = int(y), int(x)
                    value = 0.0
                    for dy in (0, 1):
                        for dx in (0, 1):
                            g = GRADIENTS[pick[o, y0 + dy, x0 + dx]]
                            dot = g.real * (x - x0 - dx) + g.imag * (y - y0 - dy)
                            wy = _fade(y - y0) if dy else 1 - _fade(y - y0)
                            wx = _fade(x - x0) if dx else 1 - _fade(x - x0)
                            value += wy * wx * dot
                    expected[i, j] += 0.5**o * np.sqrt(2) * value
        assert np.allclose(field, expected, atol=1e-9)


def test_fbm_leaves_out_octaves_finer_than_two_pixels():
    from kdgen.generators.noise import draw_fbm

    cells, _, _ = draw_fbm(np.random.default_rng(0), 32, 32, 8, 3.0)
    assert list(cells) == [3.0, 6.0, 12.0]  # 24 cells would be 1.3 px each


@pytest.mark.parametrize("shapes", [[0, 1, 2, 3, 4, 5], [0], [4]], ids=["mixed", "disk", "triangle"])
def test_first_leaves_cover_nearly_all_the_canvas(shapes):
    """first_batch_size's estimate (expected area per leaf) leaves about e^-5 = 0.7% uncovered."""
    from kdgen.generators.leaves import Painter, first_batch_size, leaves_from_uniforms

    h = w = 48
    ids = np.array(shapes)
    first = first_batch_size(h, w, ids, 0.03 * 48, 48.0, 3.0)
    u = np.random.default_rng(0).random((16 * first, 15))
    painter = Painter(leaves_from_uniforms(u, h, w, ids, 0.03 * 48, 48.0, 3.0), first, h, w)
    uncovered = np.mean([(painter.paint(i) < 0).mean() for i in range(16)])
    assert uncovered < 0.025


def test_power_law_radii_follow_the_inverse_cdf():
    from kdgen.generators.leaves import power_law_radii

    r = power_law_radii(np.random.default_rng(0).random(200_000), 1.0, 10.0, 3.0)
    assert r.min() >= 1.0 and r.max() <= 10.0
    # P(r > 2) for density ~ r^-3 on [1, 10]: (2^-2 - 10^-2) / (1 - 10^-2)
    expected = (0.25 - 0.01) / 0.99
    assert abs((r > 2).mean() - expected) < 0.005


def test_gaussian_noise_matches_requested_statistics():
    gen = GENERATORS["noise"]((64, 64), variant="gaussian", mean="0.2,0.5,0.7", std="0.05")
    img, _ = gen.sample(np.random.default_rng(0))
    means = img.reshape(-1, 3).mean(0) / 255
    assert np.allclose(means, [0.2, 0.5, 0.7], atol=0.01)
    assert np.allclose(img.reshape(-1, 3).std(0) / 255, 0.05, atol=0.01)


def test_bad_generator_parameters_are_refused():
    with pytest.raises(ValueError, match="rmin"):
        GENERATORS["leaves"]((8, 8), rmin=0.5, rmax=0.1)
    with pytest.raises(ValueError, match="--mean"):
        GENERATORS["noise"]((8, 8), mean="0.1,0.2")


# sha256 of shard 0 (4 samples, 16x12 png, seed 3) of every generator at its version. A change of output
# must come with a version bump (Generator.version), so resuming an old dataset is refused, not mixed.
# The shader pin holds for Mesa's llvmpipe (the CPU renderer); other GL drivers round differently.
PINNED = {
    "images": (1, "e40f6e14e456e31bd9e9474375b26c17ae03939af69bfee14d7549b5e0964ad8"),
    "leaves": (2, "607ad26130cd31a6f218d12493ff0dba0745c190513ad7697dd59bc002516397"),
    "noise": (2, "4037c50885e236094b743b164cc822cdaa63c380320b78bef66c242cfa4f8c59"),
    "photos": (1, "c65127f1035e3bb40f6150f38e64e5a23a99f27d3be6845ffcf125ac6a4b83c6"),
    "shaders": (2, "8fd6b763343ad09b10d6760fd3969ca5611b721a6bcc025228150f41dfc8f849"),
}


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_output_is_pinned_per_generator_version(name, tmp_path, image_folder):
    import hashlib

    from kdgen.runner import RunConfig, generate

    assert name in PINNED, f"pin generator {name!r}: add its version and shard sha256 to PINNED"
    params = params_for(name, tmp_path, image_folder)
    if name == "shaders":
        params = {"programs": 3}
        from kdgen.gl.context import create_context

        ctx = create_context()
        renderer = ctx.info.get("GL_RENDERER", "")
        ctx.release()
        if not renderer.startswith("llvmpipe"):
            pytest.skip(f"the shader pin is for llvmpipe, this is {renderer}")
    generate(RunConfig(name, n=4, size=(16, 12), params=params, out=tmp_path / "d", seed=3, shard_size=4,
                       progress=False))
    digest = hashlib.sha256((tmp_path / "d" / f"{name}-000000.tar").read_bytes()).hexdigest()
    version, pinned = PINNED[name]
    assert (GENERATORS[name].version, digest) == (version, pinned), (
        f"{name} now writes other bytes for the same seed: bump {GENERATORS[name].__name__}.version and re-pin")


def test_a_dataset_of_another_generator_version_is_refused(tmp_path, monkeypatch):
    from kdgen.errors import UserError
    from kdgen.runner import RunConfig, generate

    cfg = RunConfig("noise", n=4, size=(8, 8), out=tmp_path, shard_size=2, progress=False)
    generate(cfg)
    monkeypatch.setattr(GENERATORS["noise"], "version", 99)
    for n in (4, 6):  # resuming and extending
        with pytest.raises(UserError, match="noise version 2, this is version 99.*--overwrite or a new --out"):
            generate(RunConfig("noise", n=n, size=(8, 8), out=tmp_path, shard_size=2, progress=False))
    generate(RunConfig("noise", n=4, size=(8, 8), out=tmp_path, shard_size=2, progress=False, overwrite=True))
