"""Cost of the boundary attack and of scoring, on a small Fashion-MNIST-sized setting.

Measures (on whatever device --device names):
  1. online: distillation step time with the OnlineAttack hook over the step without it, for the
     default hook settings and a few alternatives (the target is at most 2x);
  2. offline: attack throughput in source images/s (what `kdtrain attack` runs per batch);
  3. score: samples/s of the streaming scorer (teacher forward + features + accumulation);
  4. precision: the pipeline's online attack (fraction 0.5, every 1) with the teacher in float32 against
     the same in `--amp auto` (bf16 where the CPU has AMX/AVX-512 bf16 or on CUDA);
  5. refine: offline refinement images/s (kdtrain.synth.refine, batch 256) at a few step counts.
The teacher is the `cnn` architecture (the calibration teacher's size), either loaded with
--teacher or trained here for --train-steps steps on Fashion-MNIST so that its boundaries are
realistic; the student is `cnn-tiny`. Surrogate images are smooth random noise.

    .venv/bin/python bench/bench_attack.py [--teacher T] [--device cpu] [--steps 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from kdtrain.data.spec import InputSpec
from kdtrain.models import precision
from kdtrain.models.registry import create_model
from kdtrain.models.teachers import Teacher, load_teacher, model_checkpoint, save_model
from kdtrain.quality.scoring import score_batches
from kdtrain.synth.attack import AttackConfig, OnlineAttack, attack_batch
from kdtrain.synth.refine import RefineConfig, refine_batch

SPEC = InputSpec(1, 28, 28, (0.2860,), (0.3530,))


def smooth_noise(n: int, gen: torch.Generator) -> torch.Tensor:
    """Blobby grey images: uniform noise at 7x7, upsampled; far from the data, like raw surrogates."""
    low = torch.rand(n, 1, 7, 7, generator=gen)
    return F.interpolate(low, size=(28, 28), mode="bilinear", align_corners=False).clamp(0, 1)


def quick_teacher(steps: int, device: str) -> Teacher:
    from kdtrain.data.datasets import load_labelled

    data = load_labelled("fashion-mnist", train=True).dataset
    model = create_model("cnn", 10, 1).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    t = Teacher(model, SPEC, 10)
    model.train()
    for p in model.parameters():
        p.requires_grad_(True)
    for _ in range(steps):
        idx = torch.randint(len(data), (128,), generator=gen)
        x = data.images[idx].float().div(255).to(device)
        y = data.labels[idx].to(device)
        loss = F.cross_entropy(model(t.normalize(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    test = load_labelled("fashion-mnist", train=False).dataset
    t = Teacher(model, SPEC, 10).to(device)
    with torch.no_grad():
        acc = (t(test.images[:2000].float().div(255).to(device)).argmax(1).cpu() == test.labels[:2000]).float().mean()
    print(f"teacher: cnn trained {steps} steps, test top-1 {acc:.3f} (first 2000)")
    return t


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class Distiller:
    """One KD step (hook, teacher labels, student forward/backward/SGD) for one variant."""

    def __init__(self, teacher: Teacher, hook, device: str):
        self.teacher, self.hook, self.device = teacher, hook, device
        torch.manual_seed(0)
        self.student = create_model("cnn-tiny", 10, 1).to(device)
        self.opt = torch.optim.SGD(self.student.parameters(), lr=0.05, momentum=0.9)
        self.i = 0
        self.wall, self.cpu = [], []

    def step(self, x: torch.Tensor) -> None:
        sync(self.device)
        w0, c0 = time.perf_counter(), time.process_time()
        if self.hook is not None:
            x = self.hook(x, self.i)
        with torch.no_grad():
            t_logits = self.teacher(x)
        s_logits = self.student(self.teacher.normalize(x))
        loss = F.kl_div(F.log_softmax(s_logits / 4, 1), F.softmax(t_logits / 4, 1), reduction="batchmean") * 16
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        sync(self.device)
        self.wall.append(time.perf_counter() - w0)
        self.cpu.append(time.process_time() - c0)
        self.i += 1


def interleaved(teacher: Teacher, hooks: dict, batch: int, steps: int, device: str) -> dict:
    """Mean seconds per step of each variant, their steps interleaved so that load from other
    processes on a shared machine hits all variants alike; CPU time too (robust to that load)."""
    runs = {name: Distiller(teacher, hook, device) for name, hook in hooks.items()}
    gen = torch.Generator().manual_seed(1)
    for i in range(steps + 1):
        x = smooth_noise(batch, gen).to(device)
        for r in runs.values():
            r.step(x)
        if i == 0:  # warm-up
            for r in runs.values():
                r.wall.clear()
                r.cpu.clear()
    return {name: (sum(r.wall) / len(r.wall), sum(r.cpu) / len(r.cpu)) for name, r in runs.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", default=None)
    ap.add_argument("--train-steps", type=int, default=150)
    ap.add_argument("--save-teacher", default=None, help="Save the quickly trained teacher here (reuse: --teacher).")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--n-offline", type=int, default=512)
    ap.add_argument("--n-score", type=int, default=4096)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(max(1, torch.get_num_threads()))
    teacher = load_teacher(args.teacher, args.device) if args.teacher else quick_teacher(args.train_steps, args.device)
    if args.save_teacher and not args.teacher:
        save_model(args.save_teacher, model_checkpoint(teacher.model, "cnn", SPEC, 10, [str(i) for i in range(10)]))
    out = {"device": args.device, "batch": args.batch, "threads": torch.get_num_threads()}

    variants = {
        "fraction 0.25, every 1": dict(fraction=0.25, every=1, cfg=AttackConfig()),
        "fraction 0.25, every 2": dict(fraction=0.25, every=2, cfg=AttackConfig()),
        "fraction 0.5, every 4": dict(fraction=0.5, every=4, cfg=AttackConfig()),
        "fraction 0.25, every 1, max-steps 5, deeper-steps 1": dict(fraction=0.25, every=1,
                                                                    cfg=AttackConfig(max_steps=5, deeper_steps=1)),
    }
    hooks = {"no attack": None}
    hooks.update({k: OnlineAttack(teacher, v["cfg"], fraction=v["fraction"], every=v["every"], seed=0)
                  for k, v in variants.items()})
    times = interleaved(teacher, hooks, args.batch, args.steps, args.device)
    base_wall, base_cpu = times["no attack"]
    out["online"] = {}
    print(f"online: no attack {base_wall * 1000:.1f} ms/step wall, {base_cpu * 1000:.1f} ms CPU (batch {args.batch})")
    for name in variants:
        wall, cpu = times[name]
        st = hooks[name].stats
        out["online"][name] = {"step_s": wall, "ratio": wall / base_wall, "cpu_ratio": cpu / base_cpu, **st}
        print(f"online: {name}: {wall * 1000:.1f} ms/step = {wall / base_wall:.2f}x wall, {cpu / base_cpu:.2f}x CPU; "
              f"replaced {st['replaced']} of {st['batches'] * args.batch} rows in attacked batches")
    out["online"]["no attack"] = {"step_s": base_wall, "cpu_s": base_cpu}

    gen = torch.Generator().manual_seed(2)
    x = smooth_noise(args.n_offline, gen).to(args.device)
    cfg = AttackConfig()
    sync(args.device)
    start = time.perf_counter()
    made = crossed = 0
    for i in range(0, len(x), 256):
        res = attack_batch(teacher, x[i : i + 256], cfg, gen)
        made += len(res)
        crossed += len(set(res.source.tolist()))
    sync(args.device)
    secs = time.perf_counter() - start
    out["offline"] = {"sources_per_s": len(x) / secs, "outputs_per_s": made / secs, "crossed": crossed / len(x)}
    print(f"offline: {len(x) / secs:.0f} sources/s, {made / secs:.0f} outputs/s, {crossed / len(x):.0%} crossed")

    xs = smooth_noise(args.n_score, gen)
    batches = [{"images": xs[i : i + 256]} for i in range(0, len(xs), 256)]
    sync(args.device)
    start = time.perf_counter()
    score_batches(teacher, batches).result()
    secs = time.perf_counter() - start
    out["score_samples_per_s"] = len(xs) / secs
    print(f"score: {len(xs) / secs:.0f} samples/s")
    dtype = precision.resolve("auto", args.device)
    fast = Teacher(teacher.model, teacher.spec, 10).to(args.device).set_precision(dtype)
    hooks = {"float32": OnlineAttack(teacher, AttackConfig(), fraction=0.5, every=1, seed=0),
             "auto": OnlineAttack(fast, AttackConfig(), fraction=0.5, every=1, seed=0)}
    times = interleaved(teacher, hooks, args.batch, max(4, args.steps // 2), args.device)
    ratio = times["float32"][0] / times["auto"][0]
    out["precision"] = {"auto": precision.describe(dtype, args.device), "attack_step_speedup": ratio}
    print(f"precision: online attack (fraction 0.5, every 1) float32 {times['float32'][0] * 1000:.0f} ms/step, "
          f"{precision.describe(dtype, args.device)} {times['auto'][0] * 1000:.0f} ms/step: {ratio:.2f}x")

    xs = smooth_noise(256, gen).to(args.device)
    out["refine_images_per_s"] = {}
    for steps in (5, 10, 20):
        sync(args.device)
        start = time.perf_counter()
        refine_batch(teacher, xs, RefineConfig(steps=steps), torch.Generator().manual_seed(0))
        sync(args.device)
        rate = len(xs) / (time.perf_counter() - start)
        out["refine_images_per_s"][steps] = rate
        print(f"refine: {steps} steps, batch 256: {rate:.0f} images/s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
