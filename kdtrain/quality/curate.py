"""Class-balanced selection from a surrogate pool: up to K samples per teacher-predicted class.

The pool is streamed once, in order, and a sample is kept while its predicted class still has
room (and its confidence is within the bounds). Images are rounded to 8 bits before the teacher
sees them, so the prediction stored in the metadata is the prediction of the stored image.
Optionally a second pass attacks pool samples toward the classes still short (--fill-with-attack).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from kdtrain.errors import UserError
from kdtrain.synth.attack import STAGES, AttackConfig, attack_batch
from kdtrain.synth.common import frozen, quantize, teacher_device, to_uint8

# Curation's version, part of its sets' identity: bump it whenever the same pool, teacher, options and seed
# would keep or write other samples (the attack's VERSION is recorded in the params where it fills classes).
VERSION = 1


@dataclass
class CurateReport:
    per_class: int
    class_names: list[str]
    counts: list[int]  # samples kept per class
    from_attack: list[int]  # of which made by the attack
    seen: int = 0  # pool samples looked at
    attacked: int = 0  # pool samples attacked in the fill pass
    extra: dict = field(default_factory=dict)

    @property
    def shortfalls(self) -> dict[str, int]:
        """Classes with fewer than K samples -> how many they got."""
        return {n: c for n, c in zip(self.class_names, self.counts, strict=True) if c < self.per_class}

    def summary(self) -> str:
        total = sum(self.counts)
        head = f"kept {total} of {self.seen} pool samples ({sum(self.from_attack)} made by the attack)"
        lines = [f"{head}, target {self.per_class} per class"]
        short = self.shortfalls
        if short:
            each = ", ".join(f"{n} {c}/{self.per_class}" for n, c in short.items())
            lines.append(f"{len(short)} classes not filled: {each}")
        return "\n".join(lines)


def _accept(conf: torch.Tensor, min_conf: float | None, max_conf: float | None) -> torch.Tensor:
    ok = torch.ones_like(conf, dtype=torch.bool)
    if min_conf is not None:
        ok &= conf >= min_conf
    if max_conf is not None:
        ok &= conf <= max_conf
    return ok


def _take(pred: torch.Tensor, ok: torch.Tensor, room: torch.Tensor) -> list[int]:
    """Rows to keep, first come first served (so the selection is reproducible): acceptable rows
    whose predicted class still has room."""
    room = room.clamp_min(0).tolist()
    keep = []
    for i, (p, good) in enumerate(zip(pred.tolist(), ok.tolist(), strict=True)):
        if good and room[p] > 0:
            keep.append(i)
            room[p] -= 1
    return keep


def _fill_targets(pred: torch.Tensor, need: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Aim each row at a class still short, spreading rows in proportion to each class's deficit;
    rows whose own class is the only one short get their own class (the attack skips those)."""
    out = pred.clone()
    load = torch.zeros(len(need), dtype=torch.float64)
    jitter = torch.rand(len(pred), len(need), generator=generator, dtype=torch.float64) * 1e-3
    for i, p in enumerate(pred.tolist()):
        score = (load + 1) / need.clamp_min(1e-9).double() + jitter[i]
        score[need <= 0] = float("inf")
        score[p] = float("inf")
        c = int(score.argmin())
        if score[c] != float("inf"):
            out[i] = c
            load[c] += 1
    return out


def curate(
    teacher,
    pool,
    writer,
    per_class: int,
    min_conf: float | None = None,
    max_conf: float | None = None,
    limit: int | None = None,
    fill_with_attack: bool = False,
    attack_cfg: AttackConfig | None = None,
    seed: int = 0,
) -> CurateReport:
    """Select up to `per_class` samples per predicted class from `pool()` (a callable returning an
    iterator of batch dicts, called again for the fill pass) and add them to `writer`."""
    if per_class < 1:
        raise UserError(f"--per-class must be at least 1, got {per_class}")
    if min_conf is not None and max_conf is not None and min_conf > max_conf:
        raise UserError(f"confidence bounds are empty: min {min_conf} > max {max_conf}")
    c = int(teacher.num_classes)
    names = list(teacher.class_names) if getattr(teacher, "class_names", None) else [str(i) for i in range(c)]
    report = CurateReport(per_class, names, [0] * c, [0] * c)
    counts = torch.zeros(c, dtype=torch.long)
    device = teacher_device(teacher)

    def write(images, pred, conf, batch, rows, extra, by_attack=False):
        keys, urls = batch.get("keys"), batch.get("urls")
        metas = batch.get("meta")
        for img, p, cf, r, ex in zip(to_uint8(images), pred.tolist(), conf.tolist(), rows, extra, strict=True):
            params = {
                "source": {"key": keys[r] if keys else None, "shard": urls[r] if urls else None,
                           "generator": (metas[r] or {}).get("generator") if metas else None},
                "teacher_pred": p,
                "teacher_class": names[p],
                "teacher_conf": round(cf, 6),
                **ex,
            }
            # the prediction is also the sample's .cls, the target timm's and HF's readers need
            writer.add(img, {"generator": "curate", "index": writer.index, "seed": seed, "params": params}, cls=p)
            counts[p] += 1
            report.counts[p] += 1
            report.from_attack[p] += int(by_attack)

    for batch in pool():
        x = batch["images"]
        if limit is not None:
            x = x[: max(0, limit - report.seen)]
        if len(x) == 0 or bool((counts >= per_class).all()):
            break
        x = quantize(x.to(device, torch.float32))
        with frozen(teacher), torch.no_grad():
            conf, pred = teacher(x).float().softmax(1).max(1)
        report.seen += len(x)
        keep = _take(pred, _accept(conf, min_conf, max_conf), per_class - counts)
        if keep:
            idx = torch.tensor(keep, device=x.device)
            write(x[idx], pred[idx].cpu(), conf[idx].cpu(), batch, keep, [{}] * len(keep))

    if fill_with_attack and bool((counts < per_class).any()):
        _fill(teacher, pool, per_class, counts, report, write, attack_cfg or AttackConfig(), min_conf, max_conf,
              limit, seed)
    return report


def _fill(teacher, pool, per_class, counts, report, write, cfg, min_conf, max_conf, limit, seed):
    """Second pass: attack pool samples toward the short classes; keep outputs predicted as one."""
    gen = torch.Generator().manual_seed(seed)
    device = teacher_device(teacher)
    seen = 0
    for batch in pool():
        need = (per_class - counts).clamp_min(0)
        x = batch["images"]
        if limit is not None:
            x = x[: max(0, limit - seen)]
        if len(x) == 0 or int(need.sum()) == 0:
            break
        seen += len(x)
        x = quantize(x.to(device, torch.float32))
        with frozen(teacher), torch.no_grad():
            pred = teacher(x).argmax(1).cpu()
        targets = _fill_targets(pred, need, gen)
        res = attack_batch(teacher, x, cfg, gen, targets=targets)
        report.attacked += int((targets != pred).sum())
        if len(res) == 0:
            continue
        images = quantize(res.images)
        with frozen(teacher), torch.no_grad():
            conf, p = teacher(images).float().softmax(1).max(1)
        keep = _take(p, _accept(conf, min_conf, max_conf), need)
        if not keep:
            continue
        idx = torch.tensor(keep)
        rows = res.source[idx].tolist()
        extra = [{"stage": STAGES[int(res.stage[i])], "target": int(res.target[i]), "steps": int(res.steps[i])}
                 for i in keep]
        write(images[idx.to(images.device)], p.cpu()[idx], conf.cpu()[idx], batch, rows, extra, by_attack=True)
