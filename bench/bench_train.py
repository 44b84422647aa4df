"""Training-side benchmarks (CPU by default), all in one run so they share the machine's load:

Figures are the best of repeated runs (this machine's cores are shared).

1. loader: decoded + augmented samples/s from shards (kdtrain's loader) against torchvision's
   ImageFolder + DataLoader over the same images as PNG files, same workers and transforms;
2. trainer: distillation steps/s fed by the shard loader against the same steps fed from batches
   already in memory (the loader's cost);
3. distillation samples/s against a teacher-forward-only reference (the ratio says how much the
   student's forward/backward and the pipeline add on top of labelling);
4. step-time levers (`--levers`): distillation samples/s (`--preset paper --match-stats`, loader-fed) of
   each lever against the float32 path (amp off, 1 thread, 1 loader worker) measured in the same run:
   precision auto (bf16 where the CPU has AMX/AVX-512 bf16), torch.compile, threads and workers;
5. defaults (`--defaults`): `kdtrain distill`'s defaults (paper-shader augmentation, --match-stats, bf16
   where the machine has it, one loader worker per spare core) against the same with `--amp off`, and
   with the augmentation in the training process (`--augment-on device`), loader-fed, rounds alternated;
   with each, the share of the step spent waiting for the loader.

    .venv/bin/python bench/bench_train.py [--images 4096] [--steps 60] [--workers 1] [--teacher runs/teacher/teacher.pt]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np
import torch
import webdataset as wds
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kdtrain.data.spec import InputSpec
from kdtrain.data.stream import make_train_loader  # noqa: E402
from kdtrain.models.registry import create_model  # noqa: E402
from kdtrain.models.teachers import model_checkpoint, save_model  # noqa: E402
from kdtrain.train.config import DistillConfig  # noqa: E402
from kdtrain.train.distill import Run  # noqa: E402


def make_images(root: Path, n: int, size: int) -> None:
    """Smooth random RGB images (upsampled noise: PNG-compressible like generated data) as shards and files."""
    rng = np.random.default_rng(0)
    (root / "shards").mkdir(parents=True)
    with wds.ShardWriter(str(root / "shards" / "bench-%06d.tar"), maxcount=512, mtime=0, verbose=0) as w:
        for i in range(n):
            small = rng.integers(0, 256, (size // 4, size // 4, 3), dtype=np.uint8)
            img = Image.fromarray(small).resize((size, size), Image.BILINEAR)
            cls = i % 10
            folder = root / "folder" / f"c{cls}"
            folder.mkdir(parents=True, exist_ok=True)
            img.save(folder / f"{i:09d}.png")
            w.write({"__key__": f"{i:09d}", "png": (folder / f"{i:09d}.png").read_bytes(),
                     "json": json.dumps({"index": i}).encode()})


def rate(it, n_skip: int = 2) -> tuple[float, int]:
    """Samples/s over an iterator of batches (the first n_skip batches warm up and are not timed)."""
    n, t0 = 0, None
    for i, b in enumerate(it):
        if i == n_skip:
            t0, n = time.perf_counter(), 0
        n += len(b[0] if isinstance(b, (list, tuple)) else b["images"])
    return n / (time.perf_counter() - t0), n


def bench_loader(root: Path, spec: InputSpec, workers: int, batch: int, passes: int, run: Run) -> dict:
    from torchvision import datasets
    from torchvision.transforms import v2

    n_img = len(list((root / "folder").rglob("*.png")))
    steps = passes * n_img // batch
    ours_rate = max(rate(make_train_loader(run.source, spec, run.preset, batch, steps, steps, 0, 0,
                                           workers=workers))[0] for _ in range(2))
    pad = max(1, round(min(spec.height, spec.width) / 8))
    tf = v2.Compose([v2.PILToTensor(), *([v2.Grayscale()] if spec.channels == 1 else []),
                     v2.Resize((spec.height, spec.width), antialias=True), v2.RandomCrop((spec.height, spec.width),
                     padding=pad), v2.RandomHorizontalFlip()])
    folder = datasets.ImageFolder(str(root / "folder"), transform=tf)
    sampler = torch.utils.data.RandomSampler(folder, replacement=False, num_samples=passes * n_img)
    ref_rate = max(rate(torch.utils.data.DataLoader(folder, batch_size=batch, sampler=sampler,
                                                    num_workers=workers))[0] for _ in range(2))
    return {"loader_samples_per_s": round(ours_rate), "imagefolder_samples_per_s": round(ref_rate),
            "loader_speedup": round(ours_rate / ref_rate, 2)}


def bench_trainer(run: Run, steps: int, workers: int, rounds: int = 3) -> dict:
    """Best of `rounds` alternating measurements (other processes share this machine's cores)."""
    cfg, warm = run.cfg, 3
    fed, mem, teach, cached = [], [], [], []
    for _ in range(rounds):
        loader = make_train_loader(run.source, run.spec, run.loader_preset, cfg.batch_size, steps, steps, 0, cfg.seed,
                                   workers=workers)
        for i, b in enumerate(loader):  # loader-fed training
            if i == warm:
                t0 = time.perf_counter()
            run.train_step(b, i)
            if len(cached) < 8:
                cached.append(b)
        fed.append((steps - warm) / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        for i in range(steps - warm):  # the same kind of steps from batches in memory
            run.train_step(cached[i % len(cached)], i)
        mem.append((steps - warm) / (time.perf_counter() - t0))
        with torch.no_grad():  # teacher forward only, on the same batches
            t0 = time.perf_counter()
            for i in range(steps - warm):
                run.teacher(cached[i % len(cached)]["images"].to(run.device).float().div_(255))
            teach.append((steps - warm) / (time.perf_counter() - t0))
    fed, mem, teach, b = max(fed), max(mem), max(teach), cfg.batch_size
    return {"distill_steps_per_s_loader": round(fed, 2), "distill_steps_per_s_memory": round(mem, 2),
            "loader_cost_pct": round(100 * (1 - fed / mem), 1), "distill_samples_per_s": round(fed * b),
            "teacher_forward_samples_per_s": round(teach * b), "distill_vs_teacher_forward": round(fed / teach, 3)}


LEVERS = {  # name -> DistillConfig changes against the float32 path
    "float32 (reference)": dict(amp="off"),
    "amp auto": dict(amp="auto"),
    "amp auto, compile": dict(amp="auto", compile=True),
    "amp auto, 2 threads, augment in-process": dict(amp="auto", threads=2, workers=0),
    "amp auto, 2 threads, 1 worker": dict(amp="auto", threads=2, workers=1),
    "amp auto, compile, 2 threads, 1 worker": dict(amp="auto", compile=True, threads=2, workers=1),
}


def bench_levers(common: dict, root: Path, steps: int, rounds: int = 3) -> dict:
    """Loader-fed distillation samples/s per lever, rounds alternated so drift hits every lever alike."""
    runs = {}
    for i, (name, change) in enumerate(LEVERS.items()):
        cfg = DistillConfig(**{**common, "preset": "paper", "match_stats": True, **change, "out": str(root / f"l{i}")})
        runs[name] = Run(cfg, None)
    rates = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            torch.set_num_threads(run.cfg.resolved_threads())
            warm = 5 if run.cfg.compile else 3  # compile happens in the first steps: not timed
            loader = make_train_loader(run.source, run.spec, run.loader_preset, run.cfg.batch_size, steps + warm,
                                       steps + warm, 0, run.cfg.seed, workers=run.cfg.workers)
            for i, b in enumerate(loader):
                if i == warm:
                    t0 = time.perf_counter()
                run.train_step(b, i)
            rates[name].append(steps * run.cfg.batch_size / (time.perf_counter() - t0))
    ref = max(rates["float32 (reference)"])
    out = {}
    for name, r in rates.items():
        out[f"lever: {name}"] = f"{max(r):.0f} samples/s, {max(r) / ref:.2f}x"
    return out


def defaults_variants(device: str) -> dict:
    """name -> DistillConfig changes against `kdtrain distill` with its defaults: --amp off, and the
    augmentation in the loader workers instead of on the training device."""
    return {"--amp off (reference)": dict(amp="off"), "defaults": {},
            "--amp off --augment-on loader": dict(amp="off", augment_on="loader"),
            "defaults, --augment-on loader": dict(augment_on="loader")}


def bench_defaults(common: dict, root: Path, steps: int, rounds: int = 3) -> dict:
    """Loader-fed samples/s of the defaults against --amp off (best of alternated rounds), and the loader's
    share of the step: the time spent waiting for the next batch over the whole step time."""
    base = {k: v for k, v in common.items() if k not in ("workers", "threads")}  # the defaults' own
    runs = {name: Run(DistillConfig(**base, **change, out=str(root / f"d{i}")), None)
            for i, (name, change) in enumerate(defaults_variants(common["device"]).items())}
    rates, waits = {name: [] for name in runs}, {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            torch.set_num_threads(run.cfg.resolved_threads())
            warm = 3
            loader = iter(make_train_loader(run.source, run.spec, run.loader_preset, run.cfg.batch_size, steps + warm,
                                            steps + warm, 0, run.cfg.seed, workers=run.cfg.resolved_workers()))
            wait = 0.0
            for i in range(steps + warm):
                if i == warm:
                    t0, wait = time.perf_counter(), 0.0
                t = time.perf_counter()
                b = next(loader)
                wait += time.perf_counter() - t
                run.train_step(b, i)
            total = time.perf_counter() - t0
            rates[name].append(steps * run.cfg.batch_size / total)
            waits[name].append(100 * wait / total)
    ref = max(rates["--amp off (reference)"])
    out = {"defaults: workers, threads": f"{runs['defaults'].cfg.resolved_workers()}, "
                                         f"{runs['defaults'].cfg.resolved_threads()}",
           "defaults: precision": precision_name(runs["defaults"])}
    if runs["defaults"].amp_dtype is None and str(common["device"]).startswith("cpu"):
        from kdtrain.models.precision import cpu_bf16_feature

        if cpu_bf16_feature() is None:
            out["defaults: note"] = ("this CPU has no bf16 units (lscpu lists no amx_bf16 or avx512_bf16): "
                                     "the defaults run float32 like --amp off: no bf16 speed-up to measure here")
    for name, r in rates.items():
        best = int(np.argmax(r))
        out[f"defaults: {name}"] = (f"{r[best]:.0f} samples/s, {r[best] / ref:.2f}x, "
                                    f"loader wait {waits[name][best]:.0f}% of the step")
    return out


def precision_name(run: Run) -> str:
    from kdtrain.models import precision

    return precision.describe(run.amp_dtype, run.device)


@click.command()
@click.option("--images", default=4096, help="images in the benchmark set")
@click.option("--size", default=32, help="stored image side (adapted to the teacher's spec on the fly)")
@click.option("--steps", default=40, help="distillation steps per timed round (3 rounds)")
@click.option("--batch-size", default=128)
@click.option("--workers", default=1, help="loader workers, for both loaders")
@click.option("--threads", default=1, help="torch threads of the training process")
@click.option("--preset", default="paper", help="augmentation preset of the trainer benchmark")
@click.option("--teacher", default=None, help="teacher file (default: a random resnet8 at 1x28x28)")
@click.option("--student", default="cnn-tiny")
@click.option("--shards", default=None, help="train on these shards (e.g. kdgen shaders output) instead of the "
                                             "generated images (the loader comparison keeps those)")
@click.option("--device", default="cpu")
@click.option("--levers/--no-levers", default=True, help="also measure the step-time levers (section 4)")
@click.option("--defaults/--no-defaults", default=True, help="also measure the defaults against --amp off (section 5)")
@click.option("--only-defaults", is_flag=True, help="measure section 5 alone")
def main(images, size, steps, batch_size, workers, threads, preset, teacher, student, shards, device, levers,
         defaults, only_defaults):
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.time()
        make_images(root, images if not only_defaults else 16, size)
        if teacher is None:
            teacher = str(root / "teacher.pt")
            spec = InputSpec(1, 28, 28, (0.286,), (0.353,))
            save_model(teacher, model_checkpoint(create_model("resnet8", 10, 1), "resnet8", spec, 10,
                                                 [str(i) for i in range(10)]))
        common = dict(teacher=teacher, shards=[str(root / "shards" / "bench-*.tar")], batch_size=batch_size,
                      workers=workers, threads=threads, eval="none", tensorboard=False, progress=False,
                      student=student, device=device, seed=0)
        if shards:
            common["shards"] = [shards]
        result = {"device": device, "threads": threads, "workers": workers, "batch_size": batch_size,
                  "images": images, "stored_size": size, "cpus": os.cpu_count(), "student": student}
        if only_defaults:
            result.update(bench_defaults(common, root, steps))
            levers = defaults = False
        if not only_defaults:
            loader_run = Run(DistillConfig(**common, preset="crop-flip", out=str(root / "a")), None)
            result["spec"] = f"{loader_run.spec.channels}x{loader_run.spec.height}x{loader_run.spec.width}"
            result.update(bench_loader(root, loader_run.spec, workers, batch_size, 2, loader_run))
            run = Run(DistillConfig(**common, preset=preset, out=str(root / "b")), None)
            result["preset"] = preset
            result.update(bench_trainer(run, steps, workers))
        if levers:
            result.update(bench_levers(common, root, steps))
        if defaults:
            result.update(bench_defaults(common, root, steps))
        result["bench_s"] = round(time.time() - t0, 1)
    for k, v in result.items():
        print(f"{k:32s} {v}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
