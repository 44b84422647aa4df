"""Shader generator benchmark: frame rates, atlas gain, supersampling quality, diversity, JIT cost.

    python bench/bench_shaders.py --quick        # about a minute on a 2-core CPU (llvmpipe)
    python bench/bench_shaders.py                # the figures for docs/BENCHMARKS.md
    python bench/bench_shaders.py --cli          # also time `kdgen shaders --n N --workers 2` end to end
    python bench/bench_shaders.py --versus /tmp/main --n 50000 --rounds 2 --reference-seconds 25.7
        # only `kdgen shaders --n N --workers 2` of this tree against another checkout (say main's), run
        # alternately: wall and CPU time, images/s, shard bytes, the ratio, and the wall time on an idle
        # machine that the ratio implies from the reference's own idle figure

Rates are generation alone (render() calls, no encoding or writing) after every program has been
loaded once, so they measure drawing, not the driver's one-off compile (reported separately).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kdgen.registry import get_generator  # noqa: E402
from kdgen.seeding import sample_seed  # noqa: E402

Shaders = get_generator("shaders")


def rate(size: int, n: int, **params) -> tuple[float, dict]:
    """Images/s of render() at steady state, and the counters of the timed call."""
    gen = Shaders((size, size), **params)
    gen.open()
    try:
        seeds = [sample_seed(1, i) for i in range(n)]
        gen.render(seeds)  # loads (compiles, tests) the programs these samples use
        gen.take_counters()
        t0 = time.perf_counter()
        gen.render(seeds)  # the same frames again: only drawing is timed
        return n / (time.perf_counter() - t0), gen.take_counters()
    finally:
        gen.close()


def rates(quick: bool, programs: int) -> None:
    print("\n## images/s, one process, generation alone (render() calls)")
    print(f"{'source':<11} {'size':>5} {'ss':>3} {'atlas':>9} {'no atlas':>9} {'ratio':>6}")
    for size, n in ((32, 1000 if quick else 4000), (64, 300 if quick else 1500), (256, 24 if quick else 120)):
        for source in ("library", "procedural"):
            ss = 2
            a, _ = rate(size, n, source=source, programs=programs, supersample=ss, atlas=True)
            b, _ = rate(size, n, source=source, programs=programs, supersample=ss, atlas=False)
            print(f"{source:<11} {size:>5} {ss:>3} {a:>9.0f} {b:>9.0f} {a / b:>6.2f}")


def supersampling(quick: bool) -> None:
    """Error of K x K supersampling against an 8 x 8 reference at 32 px, and its drawing time."""
    from kdgen.gl.context import create_context
    from kdgen.gl.frames import draw_inputs
    from kdgen.gl.procedural import procedural_program
    from kdgen.gl.renderer import Renderer
    from kdgen.gl.sources import library_programs

    ctx = create_context()
    programs = list(library_programs())[::3 if quick else 1]
    programs += [procedural_program(s) for s in range(8 if quick else 40)]
    factors = (1, 2, 3, 4, 8)
    renderers = {k: Renderer(ctx, 32, 32, k) for k in factors}
    frames = {k: [] for k in factors}
    cost = dict.fromkeys(factors, 0.0)
    rng = np.random.default_rng(0)
    for p in programs:
        # the same frames at every factor (mouse, the one size-dependent input, is unused by our programs)
        inputs = np.stack([draw_inputs(rng, 256, 256) for _ in range(8)])
        for k, r in renderers.items():
            c = r.compile(p)
            r.draw(c, inputs[:1])  # JIT
            t0 = time.perf_counter()
            frames[k].append(r.draw(c, inputs)[0])
            cost[k] += time.perf_counter() - t0
            c.release()
    ref = np.concatenate(frames[8])
    print("\n## supersampling at 32 px: error against an 8x8 reference (0..255 units) and drawing time")
    print(f"{'factor':>6} {'mean abs err':>13} {'PSNR dB':>8} {'time x':>7}")
    for k in factors[:-1]:
        err = np.abs(np.concatenate(frames[k]) - ref) * 255.0
        psnr = 10 * np.log10(255.0 ** 2 / float(np.mean(err ** 2)))
        print(f"{k:>6} {err.mean():>13.2f} {psnr:>8.1f} {cost[k] / cost[1]:>7.1f}")
    for r in renderers.values():
        r.release()
    ctx.release()


def diversity(n: int, programs: int) -> None:
    gen = Shaders((32, 32), programs=programs)
    gen.open()
    try:
        out = gen.render([sample_seed(0, i) for i in range(n)])
        c = gen.take_counters()
    finally:
        gen.close()
    used = {m["program"] for _, m in out}
    print(f"\n## diversity, {n} images, --programs {programs}: {len(used)} distinct programs used, "
          f"{c['frames_rejected'] / c['frames_rendered']:.1%} of frames rejected and redrawn, "
          f"{c['programs_dropped']} programs dropped, {c['samples_kept_after_retries']} samples kept after retries")


def jit_cost(count: int) -> None:
    """First-compile time per program with the driver's shader cache off (a fresh machine)."""
    code = ("import time; from kdgen.gl.context import create_context; from kdgen.gl.renderer import Renderer;"
            "from kdgen.gl.procedural import procedural_program; from kdgen.gl.sources import library_programs;"
            "from kdgen.gl.frames import draw_inputs; import numpy as np;"
            "r = Renderer(create_context(), 32, 32, 2); x = draw_inputs(np.random.default_rng(0), 64, 64)[None];"
            f"ps = list(library_programs())[:{count}] + [procedural_program(s) for s in range({count})];"
            "t = time.perf_counter(); [r.draw(r.compile(p), x) for p in ps];"
            "print((time.perf_counter() - t) / len(ps))")
    env = dict(os.environ, MESA_SHADER_CACHE_DISABLE="true")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=Path(__file__).resolve().parents[1])
    print(f"\n## first compile (JIT) per program, shader cache off: {float(out.stdout.strip()):.3f} s "
          f"(paid once per program per machine: Mesa keeps compiled shaders in ~/.cache/mesa_shader_cache)")


def cli(n: int, programs: int | None) -> None:
    with tempfile.TemporaryDirectory() as out:
        args = [str(Path(sys.executable).parent / "kdgen"), "shaders", "--n", str(n), "--workers", "2",
                "--out", out, "--no-progress"]
        if programs:
            args += ["--programs", str(programs)]
        t0 = time.perf_counter()
        res = subprocess.run(args, capture_output=True, text=True)
        print(f"\n## end to end: {' '.join(args[1:])}: {time.perf_counter() - t0:.1f} s\n{res.stdout.strip()}"
              f"{res.stderr.strip()[-500:]}")


def run_cli(tree: Path, n: int, workers: int) -> dict:
    """`python -m kdgen shaders --n N --workers W` with the kdgen of `tree`: wall, CPU of all its processes,
    bytes written. Run from an empty folder, so that no other checkout's kdgen is found first."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        code = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
                "r = subprocess.run(sys.argv[1:]).returncode; w = time.perf_counter() - t; "
                "u = resource.getrusage(resource.RUSAGE_CHILDREN); print(w, u.ru_utime + u.ru_stime, r)")
        args = [sys.executable, "-m", "kdgen", "shaders", "--n", str(n), "--workers", str(workers), "--out",
                str(out), "--quiet"]
        env = dict(os.environ, PYTHONPATH=str(tree))
        res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=tmp)
        wall, cpu, rc = res.stdout.split()[-3:]
        if rc != "0":
            raise SystemExit(f"{tree}: kdgen failed: {res.stderr.strip()[-500:]}")
        size = sum(f.stat().st_size for f in out.glob("shaders-*.tar"))
    return {"wall": float(wall), "cpu": float(cpu), "bytes": size, "load": os.getloadavg()[0]}


def versus(reference: Path, n: int, rounds: int, workers: int, reference_seconds: float | None) -> None:
    """This tree's `kdgen shaders` against `reference`'s, alternated round by round (A B, B A, ...), so a
    machine shared with other jobs loads both alike; the figure is the ratio."""
    here = Path(__file__).resolve().parents[1]
    print(f"\n## kdgen shaders --n {n} --workers {workers}: this tree ({here}) against {reference}")
    print(f"{'round':>5} {'tree':<10} {'wall s':>7} {'CPU s':>7} {'images/s':>9} {'shard MB':>9} {'load':>5}")
    runs: dict[str, list[dict]] = {"reference": [], "this": []}
    for r in range(rounds):
        order = [("reference", reference), ("this", here)]
        for name, tree in order if r % 2 == 0 else order[::-1]:
            m = run_cli(tree, n, workers)
            runs[name].append(m)
            print(f"{r + 1:>5} {name:<10} {m['wall']:>7.1f} {m['cpu']:>7.1f} {n / m['wall']:>9.0f} "
                  f"{m['bytes'] / 1e6:>9.1f} {m['load']:>5.1f}")
    ratios = [a["wall"] / b["wall"] for a, b in zip(runs["reference"], runs["this"])]
    cpu = [a["cpu"] / b["cpu"] for a, b in zip(runs["reference"], runs["this"])]
    ratio = float(np.median(ratios))
    print(f"speed-up (reference wall / this wall, per round): {', '.join(f'{x:.2f}x' for x in ratios)}; "
          f"median {ratio:.2f}x; CPU seconds {float(np.median(cpu)):.2f}x less; shards "
          f"{runs['this'][0]['bytes'] / runs['reference'][0]['bytes']:.2f}x the reference's bytes")
    if reference_seconds:
        print(f"implied wall time on an idle machine: {reference_seconds:.1f} s / {ratio:.2f} = "
              f"{reference_seconds / ratio:.1f} s ({n / (reference_seconds / ratio):,.0f} images/s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small counts: about a minute")
    ap.add_argument("--cli", action="store_true", help="also run kdgen shaders end to end with 2 workers")
    ap.add_argument("--programs", type=int, default=50, help="procedural programs in the pool for the rates")
    ap.add_argument("--versus", type=Path, help="only time kdgen shaders end to end against this checkout")
    ap.add_argument("--n", type=int, default=50000, help="images per --versus run")
    ap.add_argument("--rounds", type=int, default=2, help="--versus rounds (each runs both trees)")
    ap.add_argument("--workers", type=int, default=2, help="--workers of the --versus runs")
    ap.add_argument("--reference-seconds", type=float, help="the reference's wall time on an idle machine "
                                                             "(--versus prints the time the ratio implies)")
    args = ap.parse_args()
    if args.versus:
        versus(args.versus.resolve(), args.n, args.rounds, args.workers, args.reference_seconds)
        return
    from kdgen.gl.context import create_context

    ctx = create_context()
    print(f"# shaders benchmark on {ctx.info['GL_RENDERER']} ({ctx.info['GL_VERSION']}), {os.cpu_count()} CPUs")
    ctx.release()
    rates(args.quick, args.programs)
    supersampling(args.quick)
    diversity(2000 if args.quick else 20000, args.programs if args.quick else 1000)
    jit_cost(4 if args.quick else 16)
    if args.cli:
        cli(5000 if args.quick else 50000, None)


if __name__ == "__main__":
    main()
