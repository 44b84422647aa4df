"""What the attack and the refinement share: the toolkit on a frozen teacher (its device, eval mode without
grads, target choice, 8-bit rounding, batch rows replaced), the online hook (its schedule, its per-step
random stream, its settings from the trainer's config) and the offline runner that writes shards.

`attack.py` and `refine.py` each add only their own step: what they do to one batch of images.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import replace

import numpy as np
import torch

from kdgen.clitools import torchrun_rank
from kdgen.settings import parse_key_values
from kdtrain.errors import UserError

TARGET_MODES = ("uniform", "fair", "least-predicted", "proportional")
ONLINE = {"fraction": float, "every": int}  # an online hook's own keys; the others are its config's fields
OFF = ("off", "none", "false", "0", "no")


def teacher_device(teacher) -> torch.device:
    if isinstance(getattr(teacher, "device", None), torch.device):
        return teacher.device
    try:
        return next(teacher.model.parameters()).device
    except (AttributeError, StopIteration):
        return torch.device("cpu")


@contextlib.contextmanager
def frozen(teacher):
    """Eval mode and no parameter grads for the duration; BN statistics cannot move."""
    model = teacher.model
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    _set_mode(model, False)
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield teacher
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        _set_mode(model, was_training)


def _set_mode(model, training: bool) -> None:
    try:
        model.train(training)
    except NotImplementedError:  # an exported (.pt2) program: its mode was fixed when it was exported
        pass


def choose_targets(
    probs: torch.Tensor,
    mode: str,
    generator: torch.Generator,
    counts: torch.Tensor | None = None,
    allow_top: bool = False,
) -> torch.Tensor:
    """A target class for every row of probs (N,C); != the teacher's argmax unless allow_top.

    uniform: any other class with equal chance. proportional: drawn with the teacher's own
    non-top-1 probabilities (the nearest boundaries most often). least-predicted: greedy
    water-filling on `counts` (teacher predictions seen so far, C, left untouched), so one batch
    spreads its targets over the rarest classes instead of piling onto the single rarest one.
    fair: every class an equal share of the targets: the same water-filling on `counts` (the
    targets handed out so far, which this mode adds its choices to, in place; None: this batch
    alone), rows in random order. The class most sources already fall into (a "sink") is starved by
    any mode that skips each row's own class, so with allow_top (refinement, which still pulls a
    source already in its target class toward the teacher's statistics) a row may keep its class.
    """
    n, c = probs.shape
    if c < 2:
        raise UserError("the attack needs a teacher with at least 2 classes")
    probs = probs.detach().float().cpu()
    top = probs.argmax(1)
    others = torch.ones(n, c)
    others[torch.arange(n), top] = 0
    if mode == "uniform":
        weights = others
    elif mode == "proportional":
        # a small floor keeps every other class reachable when the softmax underflows
        weights = (probs + 1e-6) * others
    elif mode in ("least-predicted", "fair"):
        load = torch.zeros(c, dtype=torch.float64) if counts is None else counts.detach().double().cpu().clone()
        # jitter below 1 breaks ties between equal integer counts at random, never reorders unequal ones
        jitter = torch.rand(n, c, generator=generator, dtype=torch.float64) * 0.5
        out = torch.empty(n, dtype=torch.long)
        # fair: rows in random order, so no position in the batch is favoured when classes run short
        rows = torch.randperm(n, generator=generator) if mode == "fair" else range(n)
        for i in rows:
            score = load + jitter[i]
            if mode == "least-predicted" or not allow_top:
                score[top[i]] = float("inf")
            out[i] = int(score.argmin())
            load[out[i]] += 1
        if mode == "fair" and counts is not None:
            counts += torch.bincount(out, minlength=c).to(counts.device, counts.dtype)
        return out
    else:
        raise UserError(f"unknown target mode {mode!r}; choose one of {', '.join(TARGET_MODES)}")
    return torch.multinomial(weights, 1, generator=generator).squeeze(1)


@torch.no_grad()
def top1(teacher, x: torch.Tensor, batch: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's max-softmax and class of every row, `batch` rows per forward."""
    confs, preds = [], []
    for i in range(0, len(x), batch):
        c, p = teacher(x[i : i + batch]).float().softmax(1).max(1)
        confs.append(c)
        preds.append(p)
    return torch.cat(confs), torch.cat(preds)


def check_schedule(hook: str, fraction: float, every: int) -> None:
    """An online hook's share of each batch (fraction) and its period in steps (every), or a one-line error."""
    if not 0 < fraction <= 1:
        raise UserError(f"online {hook} fraction must be in (0, 1], got {fraction}")
    if every < 1:
        raise UserError(f"online {hook} every must be >= 1, got {every}")


def replace_rows(batch, rows: torch.Tensor, new_rows: torch.Tensor):
    """The batch (a N,C,H,W tensor or the trainer's dict) with `rows` replaced by `new_rows`; in a dict the
    replaced rows lose their data label (-1) and their mixup partner (lambda 1): they are new images."""
    images = batch["images"] if isinstance(batch, dict) else batch
    new = images.clone()
    new[rows.to(images.device)] = new_rows.to(images.device, images.dtype)
    if not isinstance(batch, dict):
        return new
    out = {**batch, "images": new}
    if batch.get("labels") is not None:
        out["labels"] = batch["labels"].clone()
        out["labels"][rows.to(out["labels"].device)] = -1
    if batch.get("mix") is not None:
        mix_perm, lam = batch["mix"]
        lam = lam.clone()
        lam[rows.to(lam.device)] = 1.0
        out["mix"] = (mix_perm, lam)
    return out


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Round to the 8-bit grid that shards store, so predictions made here hold for the written image."""
    return (x * 255).round_().clamp_(0, 255) / 255


def as_teacher_sees(x: torch.Tensor, spec) -> torch.Tensor:
    """Source images (N,C,H,W in [0, 1]) with the teacher's input mean/std (distill's --match-stats), on the
    8-bit grid: how selection, the stats probe and refinement start from a surrogate image."""
    from kdtrain.data.augment import match_stats

    return quantize(match_stats(x.float(), spec.mean, spec.std))


def to_uint8(x: torch.Tensor):
    """N,C,H,W in [0, 1] -> list of H,W (grey) or H,W,3 uint8 numpy arrays for the shard writer."""
    arr = (x.detach() * 255).round().clamp(0, 255).to(torch.uint8).cpu()
    arr = arr[:, 0] if arr.shape[1] == 1 else arr.permute(0, 2, 3, 1)
    return list(arr.numpy())


def step_generator(seed: int, step: int, rank: int, salt: int) -> torch.Generator:
    """The random stream of one training step on one rank: from (seed, step, rank) alone, so a resumed
    run draws exactly as an uninterrupted one; `salt` keeps two hooks' streams apart."""
    state = np.random.SeedSequence([seed, step, rank, salt]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state >> np.uint64(1)))


class OnlineHook:
    """A distillation batch hook, called as hook(batch, step) with a N,C,H,W tensor in [0, 1] or the
    trainer's dict holding one under "images"; returns the same kind. It works on every `every`-th step
    (`apply`, with that step's random stream) and leaves the other batches alone."""

    name = "hook"  # its flag's name in messages
    salt = 0

    def __init__(self, teacher, fraction: float, every: int, seed: int, rank: int):
        check_schedule(self.name, fraction, every)
        self.teacher, self.fraction, self.every, self.seed, self.rank = teacher, fraction, every, seed, rank
        self.counts = torch.zeros(int(teacher.num_classes), dtype=torch.long)  # teacher preds of its outputs

    def __call__(self, batch, step: int):
        images = batch["images"] if isinstance(batch, dict) else batch
        if step % self.every != 0 or len(images) == 0:
            return batch
        return self.apply(batch, images, step_generator(self.seed, step, self.rank, self.salt))

    def apply(self, batch, images: torch.Tensor, gen: torch.Generator):
        raise NotImplementedError


def hook_text(config, field: str) -> str | None:
    """The option string of an online hook in the trainer's config (`adv`, `refine`) plus any single-key
    fields `<field>_<key>`, or None when it is off."""
    text = getattr(config, field, None)
    if text in (None, False, "") or str(text).lower() in OFF:
        return None
    extra = [f"{k[len(field) + 1:]}={getattr(config, k)}" for k in vars(config)
             if k.startswith(field + "_") and getattr(config, k) is not None]
    return ",".join(["on" if text is True else str(text), *extra])


def parse_online(text: str, cls, what: str) -> tuple[dict, object]:
    """`on` or `key=value,...` (fields of `cls` plus fraction/every; - or _ alike) -> (schedule, config),
    or a one-line error naming the bad key."""
    given, online = parse_key_values(text, cls, ONLINE, what=what, error=UserError)
    return online, replace(cls(), **given).validate()


def hook_from_config(config, field: str, teacher, cls, make: type[OnlineHook]):
    """`make(teacher, cfg, seed=, rank=, fraction=, every=)` from the trainer's config, or None when off."""
    text = hook_text(config, field)
    if teacher is None or text is None:
        return None
    online, cfg = parse_online(text, cls, make.name)
    return make(teacher, cfg, seed=getattr(config, "seed", 0), rank=torchrun_rank()[0], **online)


def run_offline_step(teacher, batches: Iterable[dict], writer, step: Callable, seed: int, limit: int | None,
                generator: str, labelled: bool = True, progress: Callable | None = None) -> dict:
    """Run `step` on every source image of `batches` and write its outputs with their metadata.

    `step(x, gen, counts)` -> (images in [0, 1], the source row of each, the params of each, and None
    or `tally(pred, conf)`, told the teacher's labels of the written images for the step's own counts).
    Outputs are rounded to the stored 8-bit grid and labelled by the teacher there (`teacher_pred`,
    `teacher_conf`, and the sample's .cls when `labelled`), so the metadata holds for the written image.
    `progress(k)` is told of each batch's k sources. Returns the counts for the summary.
    """
    gen = torch.Generator().manual_seed(seed)
    counts = torch.zeros(int(teacher.num_classes), dtype=torch.long)
    stats = {"sources": 0, "written": 0}
    for batch in batches:
        x = batch["images"]
        if limit is not None:
            x = x[: max(0, limit - stats["sources"])]
        if len(x) == 0:
            break
        out, source, params, tally = step(x, gen, counts)
        images = quantize(out)
        with frozen(teacher):
            conf, pred = top1(teacher, images) if len(images) else (images.new_zeros(0), images.new_zeros(0))
        counts += torch.bincount(pred.cpu().long(), minlength=len(counts))
        if tally is not None:
            tally(pred, conf)
        keys, urls = batch.get("keys"), batch.get("urls")
        for i, img in enumerate(to_uint8(images)):
            s = int(source[i])
            p = {"source": {"key": keys[s] if keys else None, "shard": urls[s] if urls else None}, **params[i],
                 "teacher_pred": int(pred[i]), "teacher_conf": round(float(conf[i]), 6)}
            # the prediction is also the sample's .cls, the target timm's and HF's readers need
            writer.add(img, {"generator": generator, "index": writer.index, "seed": seed, "params": p},
                       **({"cls": int(pred[i])} if labelled else {}))
        stats["sources"] += len(x)
        stats["written"] += len(images)
        if progress is not None:
            progress(len(x))
    stats["class_counts"] = counts.tolist()
    return stats
