"""Speed of `kdtrain refine`'s step: this checkout's refinement against the statistics term of before, A/B.

Both variants run `kdtrain.synth.refine.refine_batch` on the same batches with a fixed number of steps
(plateau 0, so both do the same work); "old" only swaps in the BatchNorm-statistics hook of refine
VERSION 1 (mean over (0, 2, 3), variance of a permuted, flattened copy). Rounds alternate old, new, old,
new, ... so that load from other processes on a shared machine hits both alike; the figure to quote is
the ratio (of wall and of CPU seconds), with the machine's load average, which the script prints.

Printed: seconds per step of a batch, image-steps/s, and the images/s `kdtrain refine` would reach at
--steps-per-image steps (the plateau rule's mean: 102-117 under a resnet8 Fashion-MNIST teacher).

    .venv/bin/python bench/bench_refine.py --teacher T [--shards 'DIR/*.tar'] [--rounds 3] [--steps 5]

Without --teacher a random resnet8 at 1x28x28 stands in (the speed does not depend on its weights);
without --shards the images are smooth random noise.
"""

from __future__ import annotations

import argparse
import glob
import os
import time

import torch
import torch.nn.functional as F

from kdtrain.data.spec import InputSpec
from kdtrain.models.registry import create_model
from kdtrain.models.teachers import Teacher, load_teacher
from kdtrain.synth import refine
from kdtrain.synth.refine import RefineConfig, StatsProbe, refine_batch

SPEC = InputSpec(1, 28, 28, (0.2860,), (0.3530,))


class OldStatsProbe(StatsProbe):
    """The statistics hook of refine VERSION 1, for the A/B."""

    def _hook(self, layer, inputs, _output) -> None:
        x = inputs[0].float()
        mean = x.mean(dim=(0, 2, 3))
        var = x.permute(1, 0, 2, 3).flatten(1).var(dim=1, unbiased=False)
        self.terms.append(torch.linalg.vector_norm(mean - layer.running_mean.float())
                          + torch.linalg.vector_norm(var - layer.running_var.float()))


def source_batches(teacher, pattern: str | None, batch: int, count: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    if pattern:
        from kdtrain.data.augment import match_stats
        from kdtrain.data.shards import iterate_shards
        from kdtrain.synth.common import quantize

        out = []
        for b in iterate_shards(sorted(glob.glob(pattern)), teacher.spec, batch):
            out.append(quantize(match_stats(b["images"].float(), teacher.spec.mean, teacher.spec.std)))
            if len(out) == count:
                return out
        if out:
            return out
    s = teacher.spec
    low = torch.rand(count * batch, s.channels, 7, 7, generator=gen)
    x = F.interpolate(low, size=(s.height, s.width), mode="bilinear", align_corners=False).clamp(0, 1)
    return list(x.split(batch))


def timed(fn) -> tuple[float, float]:
    """Wall and CPU seconds of fn() (the CPU seconds hold up better on a loaded machine)."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", default=None)
    ap.add_argument("--shards", default=None)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=5, help="refinement steps per timed call")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--steps-per-image", type=float, default=110.0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.teacher:
        teacher = load_teacher(args.teacher, torch.device("cpu"))
    else:
        torch.manual_seed(0)
        teacher = Teacher(create_model("resnet8", 10, 1), SPEC, 10)
    teacher.model.to(memory_format=torch.channels_last)  # as `kdtrain refine` loads it
    xs = source_batches(teacher, args.shards, args.batch, args.rounds)
    cfg = RefineConfig(steps=args.steps, plateau=0)
    new_probe = refine.StatsProbe

    def run(probe, x):
        refine.StatsProbe = probe
        try:
            return refine_batch(teacher, x, cfg, torch.Generator().manual_seed(0))
        finally:
            refine.StatsProbe = new_probe

    variants = {"old": lambda x: run(OldStatsProbe, x), "new": lambda x: run(new_probe, x)}
    for fn in variants.values():  # warm-up
        fn(xs[0])
    secs, cpu = dict.fromkeys(variants, 0.0), dict.fromkeys(variants, 0.0)
    for x in xs:
        for k, fn in variants.items():
            w, c = timed(lambda fn=fn, x=x: fn(x))
            secs[k] += w
            cpu[k] += c
    steps = len(xs) * args.steps  # each call also runs a forward before and after: counted in the time
    load = " ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"{len(xs)} rounds of {args.steps} steps, load average {load}")
    for k, s in secs.items():
        rate = len(xs) * args.batch * args.steps / s
        print(f"{k:12s} {1000 * s / steps:7.1f} ms per step of {args.batch} | {rate:7.0f} image-steps/s | "
              f"{rate / args.steps_per_image:6.1f} images/s at {args.steps_per_image:g} steps per image | "
              f"{secs['old'] / s:.2f}x old (CPU seconds: {cpu['old'] / cpu[k]:.2f}x)")


if __name__ == "__main__":
    main()
