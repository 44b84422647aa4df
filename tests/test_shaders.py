"""The shaders generator: library, procedural programs, imports, robustness, determinism.

Runs on any EGL implementation (Mesa llvmpipe on a CPU is enough). Frames are small and batched so
the file takes seconds once Mesa's shader cache is warm (about a minute the very first time).
"""

from __future__ import annotations

import io
import logging
import tarfile

import numpy as np
import pytest
from PIL import Image

from kdgen.errors import UserError
from kdgen.gl import engine as engine_mod
from kdgen.gl.frames import draw_inputs, from_meta, to_meta
from kdgen.gl.procedural import compose, procedural_program, signature
from kdgen.gl.sources import library_programs
from kdgen.gl.validate import frame_problems, to_uint8
from kdgen.registry import get_generator
from kdgen.seeding import sample_seed
from tests.conftest import render_counted, run_cli, shader_dir

Shaders = get_generator("shaders")


@pytest.fixture(scope="module")
def renderer():
    from kdgen.gl.context import create_context
    from kdgen.gl.renderer import Renderer

    ctx = create_context()
    r = Renderer(ctx, 32, 32, supersample=1)
    yield r
    r.release()
    ctx.release()


def render_ok(renderer, program, n=8, seed=0):
    """Compile a program, draw n frames, return the reasons frames were rejected (None = fine)."""
    compiled = renderer.compile(program)
    rng = np.random.default_rng(seed)
    frames, bad = renderer.draw(compiled, np.stack([draw_inputs(rng, 32, 32) for _ in range(n)]))
    compiled.release()
    return frame_problems(to_uint8(frames), bad)


# ---- the library and the procedural programs --------------------------------------------------


def test_every_library_family_compiles_and_renders_varied_frames(renderer):
    programs = library_programs()
    assert len(programs) >= 40
    weak = {}
    for i, program in enumerate(programs):
        problems = render_ok(renderer, program, seed=i)
        if sum(p is not None for p in problems) > 2:  # a bad palette draw may flatten a frame or two
            weak[program.id] = problems
    assert not weak, f"families with degenerate frames: {weak}"


def test_procedural_programs_are_distinct():
    signatures = {signature(seed) for seed in range(10_000)}
    assert len(signatures) >= 9_900  # distinct block structures, before constants even differ
    sources = {compose(seed) for seed in range(1_000)}
    assert len(sources) == 1_000


def test_procedural_programs_compile_and_render(renderer):
    seeds = [0, 1, 2, 3, 97, 256, 511, 999, 1234, 4321, 9999, 31337, 65536, 99_999, 123_456, 999_999]
    degenerate = 0
    for seed in seeds:
        problems = render_ok(renderer, procedural_program(seed), seed=seed)
        degenerate += sum(p is not None for p in problems) >= engine_mod.DROP_AT
    assert degenerate <= 1  # the rare dud is dropped by the engine's load test


# ---- determinism and metadata ----------------------------------------------------------------


@pytest.fixture(scope="module")
def small_gen():
    gen = Shaders((24, 16), programs=12)
    gen.open()
    yield gen
    gen.close()


def test_same_seed_same_bytes_whatever_the_batching(small_gen):
    seeds = [sample_seed(3, i) for i in range(40)]
    whole = small_gen.render(seeds)
    pieces = small_gen.render(seeds[25:]) + small_gen.render(seeds[7:25]) + small_gen.render(seeds[:7])
    pieces = pieces[-7:] + pieces[15:33] + pieces[:15]  # back to index order
    for (a, ma), (b, mb) in zip(whole, pieces):
        assert np.array_equal(a, b) and ma == mb
    assert len({m["program"] for _, m in whole}) > 10


def test_atlas_and_single_draws_give_the_same_bytes(small_gen):
    seeds = [sample_seed(4, i) for i in range(12)]
    single = Shaders((24, 16), programs=12, atlas=False)
    single.open()
    try:
        for (a, _), (b, _) in zip(small_gen.render(seeds), single.render(seeds)):
            assert np.array_equal(a, b)
    finally:
        single.close()


def test_programs_sharing_atlas_fills_give_the_bytes_of_separate_draws(tmp_path):
    """draw_many: groups of several programs (tiled and one plain import) split over fills of 5 tiles give
    the frames each program draws on its own, one frame per draw."""
    from kdgen.gl.context import create_context
    from kdgen.gl.imports import scan_dir
    from kdgen.gl.renderer import Renderer

    ctx = create_context()
    shared, single = Renderer(ctx, 24, 16, 2, max_tiles=5), Renderer(ctx, 24, 16, 2, atlas=False)
    assert shared.capacity == 4 and single.capacity == 1
    plain = next(p for p in scan_dir(shader_dir(tmp_path, "plain_waves.frag"))[0] if p.kind == "plain")
    programs = [*library_programs()[:3], procedural_program(7), plain]
    rng = np.random.default_rng(0)
    sizes = (3, 4, 1, 7, 2)
    inputs = [np.stack([draw_inputs(rng, 48, 32) for _ in range(k)]) for k in sizes]
    try:
        with ctx:
            groups = [(shared.compile(p), x) for p, x in zip(programs, inputs)]
            frames, bad = shared.draw_many(groups)
            expected = [single.draw(single.compile(p), x) for p, x in zip(programs, inputs)]
        assert frames.shape == (sum(sizes), 16, 24, 3)
        assert np.array_equal(frames, np.concatenate([f for f, _ in expected]))
        assert np.array_equal(bad, np.concatenate([b for _, b in expected]))
    finally:
        shared.release()
        single.release()
        ctx.release()


def test_programs_loaded_together_or_one_at_a_time_give_the_same_samples(monkeypatch):
    monkeypatch.setattr(engine_mod, "DROP_AT", 3)  # some programs are dropped: their verdicts matter too
    seeds = [sample_seed(8, i) for i in range(30)]
    results = []
    for preload in (True, False):
        gen = Shaders((16, 16), programs=20)
        gen.open()
        gen.engine.preload = preload
        try:
            results.append((gen.render(seeds), gen.take_counters(), dict(gen.engine.status)))
        finally:
            gen.close()
    (together, c1, s1), (alone, c2, s2) = results
    assert c1 == c2 and s1 == s2 and c1["programs_dropped"] > 0
    for (a, ma), (b, mb) in zip(together, alone):
        assert np.array_equal(a, b) and ma == mb


def test_a_sample_rerenders_exactly_from_its_metadata(small_gen):
    for img, meta in small_gen.render([sample_seed(5, i) for i in range(6)]):
        assert meta["program"] and meta["source_hash"] and "time" in meta and "params" in meta["uniforms"]
        assert np.array_equal(small_gen.engine.render_meta(meta), img)


def test_frame_inputs_survive_the_json_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(200):
        v = draw_inputs(rng, 64, 64)
        assert np.array_equal(from_meta(to_meta(v)).astype(np.float32), v.astype(np.float32))


def test_frame_inputs_of_a_batch_are_those_drawn_one_at_a_time():
    from kdgen.gl.frames import UNIFORMS, inputs_from_uniforms

    one, many = np.random.default_rng(9), np.random.default_rng(9)
    single = np.stack([draw_inputs(one, 48, 32) for _ in range(500)])
    batch = inputs_from_uniforms(np.stack([many.random(UNIFORMS) for _ in range(500)]), 48, 32)
    assert single.tobytes() == batch.tobytes()


def test_mix_blends_frames_of_different_programs():
    gen = Shaders((16, 16), programs=12, mix=3)
    gen.open()
    try:
        out = gen.render([sample_seed(6, i) for i in range(6)])
        for img, meta in out:
            parts = meta["mix"]
            assert len(parts) == 3 and len({p["program"] for p in parts}) == 3
            assert abs(sum(p["weight"] for p in parts) - 1.0) < 1e-9
            assert np.array_equal(gen.engine.render_meta(meta), img)
    finally:
        gen.close()


def test_workers_do_not_change_the_bytes(tmp_path):
    args = ["--n", 12, "--size", 16, "--shard-size", 4, "--source", "library", "--quiet"]
    res = run_cli("kdgen", "shaders", *args, "--workers", 2, "--out", tmp_path)
    assert res.returncode == 0, res.stderr
    gen = Shaders((16, 16), source="library")
    gen.open()
    try:
        expected = gen.render([sample_seed(0, i) for i in range(12)])
    finally:
        gen.close()
    got = {}
    for shard in sorted(tmp_path.glob("shaders-*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar.getmembers():
                if member.name.endswith(".png"):
                    data = tar.extractfile(member).read()
                    got[int(member.name.split(".")[0])] = np.asarray(Image.open(io.BytesIO(data)))
    assert len(got) == 12
    for i, (img, _) in enumerate(expected):
        assert np.array_equal(got[i], img)


# ---- frame checks ------------------------------------------------------------------------------


def test_frame_checks():
    rng = np.random.default_rng(0)
    good = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    constant = np.full((16, 16, 3), 77, np.uint8)
    faint = (constant + rng.integers(0, 3, (16, 16, 3))).astype(np.uint8)
    dot = np.zeros((16, 16, 3), np.uint8)
    dot[7:9, 7:9] = 255  # std well above the limit, but 98% of the frame is one colour
    frames = np.stack([good, constant, faint, dot, good])
    assert frame_problems(frames, np.array([0, 0, 0, 0, 0.5])) == [None, "constant", "constant", "flat", "nonfinite"]


def test_most_common_colour_counts_in_chunks():
    from kdgen.gl.validate import most_common_count

    rng = np.random.default_rng(2)
    q = np.concatenate([rng.integers(0, 16, (70, 50, 3)), rng.integers(0, 2, (70, 50, 3))]).astype(np.uint8)
    expected = [np.unique(frame, axis=0, return_counts=True)[1].max() for frame in q]
    for chunk in (1, 7, 64, 500):
        assert most_common_count(q, chunk).tolist() == expected


def test_supersampling_is_an_area_average_and_counts_nonfinite_pixels():
    from kdgen.gl.context import create_context
    from kdgen.gl.imports import from_text
    from kdgen.gl.renderer import Renderer

    # colour = the render pixel's centre, in render pixels / 64; NaN in the 3 leftmost render columns
    program = from_text("void mainImage(out vec4 c, in vec2 f) { c = vec4(f / 64.0, 0.25, 1.0);"
                        " if (f.x < 3.0) c.r = sqrt(-1.0 - f.y); }", "test/ramp")
    ctx = create_context()
    with ctx:
        r = Renderer(ctx, 5, 4, supersample=3)
        frames, bad = r.draw(r.compile(program), np.stack([draw_inputs(np.random.default_rng(0), 15, 12)] * 2))
        r.release()
    ctx.release()
    x = (np.arange(5) * 3 + 1.5) / 64.0  # mean of the centres of render columns 3X..3X+2
    y = (np.arange(4) * 3 + 1.5)[::-1] / 64.0  # image rows run top-down, GL's bottom-up
    assert np.allclose(frames[0, :, 1:, 0], np.broadcast_to(x[1:], (4, 4)), atol=1e-6)
    assert np.allclose(frames[0, :, 1:, 1], np.broadcast_to(y[:, None], (4, 4)), atol=1e-6)
    assert np.allclose(frames[0, :, 1:, 2], 0.25)
    assert np.allclose(frames[0, :, 0], 0.0)  # the NaN column: drawn black
    assert np.allclose(bad, 3 / 15)  # one render column in five is non-finite


def test_missing_egl_names_the_packages(monkeypatch):
    import moderngl

    from kdgen.gl.context import create_context

    def broken(**kwargs):
        raise Exception("libEGL.so.1: cannot open shared object file")

    monkeypatch.setattr(moderngl, "create_standalone_context", broken)
    with pytest.raises(UserError, match="libegl1 libegl-mesa0 libgl1-mesa-dri"):
        create_context()


# ---- imported shaders and robustness --------------------------------------------------------


def test_imports_skip_bad_files_and_programs_and_redraw_bad_frames(tmp_path, caplog):
    root = shader_dir(tmp_path, "toy_rings.glsl", "plain_waves.frag", "legacy_sandbox.frag", "half_blank.glsl",
                      "broken_syntax.glsl", "constant_colour.glsl", "nan_garbage.glsl", "empty.glsl",
                      "garbage.frag", "no_entry_point.glsl")
    caplog.set_level(logging.INFO)
    gen = Shaders((24, 24), source=str(root))
    skipped = {r.getMessage() for r in caplog.records if "skipped" in r.getMessage()}
    assert any("empty.glsl" in m and "empty" in m for m in skipped)
    assert any("garbage.frag" in m and "binary" in m for m in skipped)
    assert any("no_entry_point.glsl" in m and "no entry point" in m for m in skipped)
    out, counters = render_counted(gen, [sample_seed(1, i) for i in range(40)])
    logs = "\n".join(r.getMessage() for r in caplog.records)
    assert "broken_syntax.glsl does not compile" in logs and "error" in logs  # the compiler's own message
    assert counters["programs_compile_error"] == 1
    assert counters["programs_dropped"] == 2  # constant_colour and nan_garbage
    used = {m["program"] for _, m in out}
    assert used == {"dir/toy_rings.glsl", "dir/plain_waves.frag", "dir/legacy_sandbox.frag", "dir/half_blank.glsl"}
    # half_blank is blank for half its time range: those frames were redrawn with new inputs
    assert counters["frames_rejected"] > 0
    assert any(m.get("redrawn") for _, m in out if m["program"] == "dir/half_blank.glsl")
    images = np.stack([img for img, _ in out])
    assert all(p is None for p in frame_problems(images, np.zeros(len(out))))


def test_retries_are_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(engine_mod, "MAX_TRIES", 1)  # one frame per program ...
    monkeypatch.setattr(engine_mod, "MAX_PROGRAMS", 1)  # ... and one program per sample
    gen = Shaders((16, 16), source=str(shader_dir(tmp_path, "half_blank.glsl")))
    out, counters = render_counted(gen, [sample_seed(7, i) for i in range(24)])
    kept = [m for _, m in out if "kept_rejected" in m]
    assert kept and len(kept) == counters["samples_kept_after_retries"] == counters["frames_rejected"]
    assert all(m["kept_rejected"] == "constant" and "redrawn" not in m for m in kept)


def test_a_pathologically_slow_shader_is_skipped_without_hanging(tmp_path):
    import time

    root = shader_dir(tmp_path, "endless_loop.glsl", "toy_rings.glsl")
    gen = Shaders((16, 16), source=str(root), probe_timeout=2.0)
    t0 = time.perf_counter()
    out, counters = render_counted(gen, [sample_seed(2, i) for i in range(4)])
    assert time.perf_counter() - t0 < 30
    assert counters["programs_too_slow"] == 1
    assert {m["program"] for _, m in out} == {"dir/toy_rings.glsl"}


def test_too_slow_by_projection(tmp_path, monkeypatch):
    monkeypatch.setattr(engine_mod, "MAX_FRAME_S", 1e-12)  # every program now projects as too slow
    gen = Shaders((16, 16), source=str(shader_dir(tmp_path, "toy_rings.glsl")))
    gen.open()
    try:
        with pytest.raises(UserError, match="every imported shader was rejected .*too slow"):
            gen.render([sample_seed(0, 0)])
    finally:
        gen.close()


def test_a_folder_of_only_bad_programs_is_an_error(tmp_path):
    root = shader_dir(tmp_path, "broken_syntax.glsl", "constant_colour.glsl", "nan_garbage.glsl", "empty.glsl")
    gen = Shaders((16, 16), source=str(root))
    gen.open()  # the error waits for render(): pool initialisers must not raise
    try:
        with pytest.raises(UserError, match="1 failed to compile, 2 gave degenerate frames"):
            gen.render([sample_seed(0, 0)])
    finally:
        gen.close()


def test_a_folder_without_shader_text_fails_at_once_with_exit_status_2(tmp_path):
    root = shader_dir(tmp_path, "empty.glsl", "garbage.frag", "no_entry_point.glsl")
    with pytest.raises(UserError, match="no usable shaders, 3 files skipped"):
        Shaders((16, 16), source=str(root))
    res = run_cli("kdgen", "shaders", "--n", 4, "--shader-dir", root, "--source", root, "--out", tmp_path / "o")
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "no usable shaders" in res.stderr
