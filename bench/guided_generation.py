"""Teacher-guided generation, measured against pixel refinement (docs/RESULTS.md, issue 23's lever 6).

Instead of moving pixels, choose among the generator's own programs: every shader program of a large raw
pool is scored by the teacher's BatchNorm statistics loss on its images (how in-distribution the teacher
finds that program) and every image by the teacher's prediction; the kept set takes, for each class, that
class's images from the lowest-loss programs first, an equal share per class. The cost is two teacher
forwards per pool image and no backward, against refinement's hundred-odd forward-backward steps per image.

    python bench/guided_generation.py --teacher T --pool 'data/gen/shaders-0*.tar' --n 2500 --out DIR/NAME
    python bench/guided_generation.py ... --random     # the same number of pool images at random (the baseline)

Writes DIR/NAME-*.tar (images at the teacher's spec, each sample's class the teacher's prediction, as
refine and curate write theirs) and DIR/NAME-guided.json (per-program losses, per-class counts, the kept
set's own BN loss and the cost in teacher passes), then prints one line.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from kdgen.shardset import DatasetWriter
from kdtrain.data.augment import match_stats
from kdtrain.data.shards import iterate_shards
from kdtrain.models.teachers import load_teacher
from kdtrain.synth.common import frozen, quantize, to_uint8
from kdtrain.synth.refine import StatsProbe, batchnorm_layers

PROGRAM_BATCH = 256  # images of one program whose statistics give its loss (a refine batch's size)


def load_pool(teacher, pattern: str):
    """Every pool image at the teacher's spec with the teacher's mean/std (as distill's --match-stats sees
    it), 8-bit exact, with its program's name."""
    images, programs = [], []
    for batch in iterate_shards([pattern], teacher.spec, 512):
        x = quantize(match_stats(batch["images"], teacher.spec.mean, teacher.spec.std))
        images.append(x)
        programs += [(m or {}).get("params", {}).get("program", "?") for m in batch["meta"]]
    return torch.cat(images), programs


def score(teacher, images: torch.Tensor, programs: list[str]):
    """Teacher predictions of every image and the BN loss of every program's images (up to PROGRAM_BATCH)."""
    layers = batchnorm_layers(teacher)
    preds, confs = [], []
    by_program: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(programs):
        by_program[p].append(i)
    loss = {}
    with frozen(teacher), torch.no_grad():
        for i in range(0, len(images), 512):
            c, p = teacher(images[i : i + 512]).float().softmax(1).max(1)
            preds.append(p)
            confs.append(c)
        with StatsProbe(layers) as probe:
            for name, rows in by_program.items():
                teacher(images[rows[:PROGRAM_BATCH]])
                loss[name] = float(probe.take())
    return torch.cat(preds), torch.cat(confs), loss


def select(preds: torch.Tensor, programs: list[str], loss: dict, n: int, classes: int, rng) -> list[int]:
    """For each class an equal share of its images, lowest-loss programs first (random within a program);
    classes with too few images leave their room to the others, again by program loss."""
    order = rng.permutation(len(programs))
    order = sorted(order, key=lambda i: loss[programs[i]])  # stable: random within a program
    share = [n // classes + (c < n % classes) for c in range(classes)]
    kept, taken = [], set()
    for c in range(classes):
        rows = [i for i in order if int(preds[i]) == c][: share[c]]
        kept += rows
        taken.update(rows)
    kept += [i for i in order if i not in taken][: n - len(kept)]
    return kept


def set_loss(teacher, images: torch.Tensor, rng) -> float:
    """The kept set's BN loss, on refine-sized random batches (comparable with refine's bn_loss figures)."""
    layers = batchnorm_layers(teacher)
    rows = rng.permutation(len(images))
    losses = []
    with frozen(teacher), torch.no_grad(), StatsProbe(layers) as probe:
        for i in range(0, len(rows) - PROGRAM_BATCH + 1, PROGRAM_BATCH):
            teacher(images[rows[i : i + PROGRAM_BATCH]])
            losses.append(float(probe.take()))
    return float(np.mean(losses)) if losses else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--pool", required=True, help="raw shader shards (a quoted glob)")
    ap.add_argument("--n", type=int, default=2500)
    ap.add_argument("--out", required=True, help="DIR/NAME of the kept set")
    ap.add_argument("--random", action="store_true", help="keep n pool images at random instead")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    t0 = time.time()
    teacher = load_teacher(a.teacher, torch.device("cpu"))
    images, programs = load_pool(teacher, a.pool)
    preds, _, loss = score(teacher, images, programs)
    classes = int(teacher.num_classes)
    kept = list(rng.permutation(len(images))[: a.n]) if a.random else select(preds, programs, loss, a.n, classes, rng)
    out = Path(a.out)
    spec = teacher.spec
    with DatasetWriter(out.parent, out.name, generator="guided", params={"pool": a.pool, "random": a.random},
                       size=(spec.width, spec.height), seed=a.seed, class_names=list(teacher.class_names),
                       overwrite=True) as w:
        for i, img in zip(kept, to_uint8(images[kept]), strict=True):
            p = int(preds[i])
            w.add(img, {"generator": "guided", "index": w.index, "seed": a.seed,
                        "params": {"program": programs[i], "program_bn_loss": round(loss[programs[i]], 4),
                                   "teacher_pred": p}}, cls=p)
    counts = torch.bincount(preds[kept], minlength=classes).tolist()
    ranked = sorted(loss, key=loss.get)
    report = {"pool": a.pool, "pool_images": len(images), "programs": len(loss), "kept": len(kept),
              "random": a.random, "class_counts": counts,
              "bn_loss_kept": round(set_loss(teacher, images[kept], rng), 4),
              "bn_loss_pool": round(set_loss(teacher, images, rng), 4),
              "programs_kept": len({programs[i] for i in kept}),
              "best_programs": {p: round(loss[p], 3) for p in ranked[:10]},
              "worst_programs": {p: round(loss[p], 3) for p in ranked[-5:]},
              "teacher_passes_per_kept_image": round(2 * len(images) / len(kept), 1),
              "seconds": round(time.time() - t0, 1)}
    (out.parent / f"{out.name}-guided.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"{out}: {len(kept)} of {len(images)} pool images from {report['programs_kept']} of {len(loss)} programs; "
          f"BN loss {report['bn_loss_pool']} (pool) -> {report['bn_loss_kept']} (kept); per class {counts}; "
          f"{report['seconds']} s")


if __name__ == "__main__":
    main()
