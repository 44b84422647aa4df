"""Decision-boundary attack (paper section "decision boundary exploitation"), as pure batch functions.

Everything runs in pixel space: images are N,C,H,W floats in [0, 1] and the teacher normalises
internally, so eps and step sizes are in pixel units whatever the teacher's mean/std. The teacher
is only read: it runs in eval mode with its parameters' requires_grad switched off for the call,
gradients are taken with respect to the images alone, and its mode and flags are restored after.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from kdgen.settings import knob, parse_key_values
from kdtrain.errors import KDError

TARGET_MODES = ("fair", "uniform", "least-predicted", "proportional")
# What one source image can yield, in order; codes in AttackResult.stage index this tuple.
STAGES = ("pre", "post", "deep-pre", "deep-post")


@dataclass(frozen=True)
class AttackConfig:
    # Every field is also a flag of `kdtrain attack`/`curate` and a key of distill's --adv (kdgen.settings).
    # L-inf radius around the source, in pixel units. Surrogate images sit far from the data
    # manifold, so the budget is far larger than the usual 8/255 of robustness work: on smooth-noise
    # images and a Fashion-MNIST CNN, 10 steps crossed 49% of sources at 32/255 (step 2/255) and
    # 93% at 64/255 (step 8/255), in 4.9 steps on average (bench/bench_attack.py setting).
    eps: float = knob(64 / 255, "L-inf radius around the source, pixel units (0..1).", show="64/255")
    step: float = knob(8 / 255, "Initial sign-gradient step, pixel units.", show="8/255")
    max_steps: int = knob(10, "Border-attack iterations; samples not crossed by then are dropped.")
    target: str = knob("fair", "How each sample's target class is chosen: fair (every class an equal share of "
                               "targets), uniform, least-predicted or proportional.")
    bold_driver: bool = knob(True, "Bold driver: per-sample step x1.1 while not crossed, halved and reverted "
                                   "if crossed too confidently.")
    confidence: float = knob(0.9, "Bold driver: a crossing at or above this max-softmax is undone and the step "
                                  "halved.")
    deeper_steps: int = knob(3, "Steps of the deeper attack toward each sample's current class (0: none).")
    stages: tuple[str, ...] = knob(STAGES, "Outputs kept per source, comma-separated (joined by + in --adv).")

    def validate(self) -> AttackConfig:
        if not 0 < self.eps <= 1:
            raise KDError(f"attack eps must be in (0, 1] (pixel units), got {self.eps}")
        if not 0 < self.step <= self.eps:
            raise KDError(f"attack step must be in (0, eps={self.eps:.4g}], got {self.step}")
        if self.max_steps < 1 or self.deeper_steps < 0:
            raise KDError("attack max_steps must be >= 1 and deeper_steps >= 0")
        if self.target not in TARGET_MODES:
            raise KDError(f"unknown target mode {self.target!r}; choose one of {', '.join(TARGET_MODES)}")
        if not 0 < self.confidence <= 1:
            raise KDError(f"attack confidence threshold must be in (0, 1], got {self.confidence}")
        if self.deeper_steps == 0 and all(s.startswith("deep") for s in self.stages):
            raise KDError("attack stages keep only deeper samples but deeper_steps is 0")
        bad = [s for s in self.stages if s not in STAGES]
        if bad or not self.stages:
            raise KDError(f"attack stages must be a non-empty subset of {', '.join(STAGES)}, got {self.stages}")
        return self


@dataclass
class AttackResult:
    """Attacked samples of one batch; row i came from source image `source[i]` of that batch."""

    images: torch.Tensor  # M,C,H,W in [0, 1]
    source: torch.Tensor  # M, index into the input batch
    stage: torch.Tensor  # M, index into STAGES
    target: torch.Tensor  # M, class the attack aimed at
    steps: torch.Tensor  # M, iterations spent on this sample (border steps; + deeper steps for deep-*)
    pred: torch.Tensor  # M, teacher argmax at the output
    confidence: torch.Tensor  # M, teacher max-softmax at the output

    def __len__(self) -> int:
        return len(self.source)


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


def _probs_grad(teacher, x: torch.Tensor, cls: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax of the teacher at x and d CE(teacher(x), cls) / dx; one forward + one backward."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        logits = teacher(x).float()
        # sum, not mean: samples do not interact in eval mode, so each row is its own sample's
        # gradient, with no 1/N pushing small gradients toward underflow (only their sign is used)
        loss = F.cross_entropy(logits, cls, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    return logits.detach().softmax(1), grad


def _project(x: torch.Tensor, src: torch.Tensor, eps: float) -> torch.Tensor:
    return torch.minimum(torch.maximum(x, src - eps), src + eps).clamp_(0.0, 1.0)


def choose_targets(
    probs: torch.Tensor,
    mode: str,
    generator: torch.Generator,
    counts: torch.Tensor | None = None,
    allow_top: bool = False,
) -> torch.Tensor:
    """A target class for every row of probs (N,C); != the teacher's argmax unless allow_top.

    fair: every class an equal share of the targets: greedy water-filling on `counts` (the targets
    handed out so far in the run, C, which this mode adds its choices to, in place; None: within
    this batch alone), rows taken in random order. The
    class most sources already fall into (a "sink") is starved of targets by any mode that skips each
    row's own class, so with allow_top (refinement, where a source already predicted as its target is
    still pulled toward the teacher's statistics) a row may keep its own class; without it (the
    attack needs a boundary to cross) the sink takes every other row until it has caught up.
    uniform: any other class with equal chance. proportional: drawn with the teacher's own
    non-top-1 probabilities (the nearest boundaries most often). least-predicted: greedy
    water-filling on `counts` (teacher predictions seen so far, C, left untouched), so one batch
    spreads its targets over the rarest classes instead of piling onto the single rarest one.
    """
    n, c = probs.shape
    if c < 2:
        raise KDError("the attack needs a teacher with at least 2 classes")
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
        raise KDError(f"unknown target mode {mode!r}; choose one of {', '.join(TARGET_MODES)}")
    return torch.multinomial(weights, 1, generator=generator).squeeze(1)


@dataclass
class BorderResult:
    pre: torch.Tensor  # N,C,H,W last iterate not predicted as the target
    post: torch.Tensor  # N,C,H,W first accepted iterate predicted as the target
    success: torch.Tensor  # N bool; rows with False hold no crossing and are to be dropped
    steps: torch.Tensor  # N iterations run
    post_conf: torch.Tensor  # N teacher max-softmax at post
    pre_pred: torch.Tensor  # N teacher argmax at pre


def border_attack(
    teacher, x: torch.Tensor, targets: torch.Tensor, cfg: AttackConfig, start: tuple | None = None
) -> BorderResult:
    """Targeted iterative sign-gradient attack that stops each sample on its first crossing into its target.

    With the bold driver, a crossing whose max-softmax is >= cfg.confidence is undone and the
    step halved, so accepted pairs straddle the boundary at low confidence; a sample that never
    crosses at low confidence within cfg.max_steps counts as a failure. `start` = (softmax, grad)
    at x, when the caller already has them, saves one forward/backward.
    """
    src = x.detach()
    n = len(src)
    dev = src.device
    targets = targets.to(dev)
    cur = src.clone()
    post = src.clone()
    step = torch.full((n,), float(cfg.step), device=dev)
    done = torch.zeros(n, dtype=torch.bool, device=dev)
    steps = torch.zeros(n, dtype=torch.long, device=dev)
    post_conf = torch.zeros(n, device=dev)
    probs, grad = start if start is not None else _probs_grad(teacher, cur, targets)
    pre_pred = probs.argmax(1)
    # A source already predicted as its target has no "outside" sample; callers never ask for this.
    for _ in range(cfg.max_steps):
        idx = (~done).nonzero().squeeze(1)
        if len(idx) == 0:
            break
        a = step[idx].view(-1, 1, 1, 1)
        cand = _project(cur[idx] - a * grad[idx].sign(), src[idx], cfg.eps)
        p_c, g_c = _probs_grad(teacher, cand, targets[idx])
        conf, pred = p_c.max(1)
        steps[idx] += 1
        crossed = pred == targets[idx]
        too_sure = crossed & (conf >= cfg.confidence) if cfg.bold_driver else torch.zeros_like(crossed)
        accept = crossed & ~too_sure
        move = ~crossed
        # crossed: record the pair, stop this sample
        a_idx = idx[accept]
        post[a_idx] = cand[accept]
        post_conf[a_idx] = conf[accept]
        done[a_idx] = True
        # not crossed: move on (the pre-success candidate), grow the step under the bold driver
        m_idx = idx[move]
        cur[m_idx] = cand[move]
        grad[m_idx] = g_c[move]
        pre_pred[m_idx] = pred[move]
        if cfg.bold_driver:
            step[m_idx] = torch.clamp(step[m_idx] * 1.1, max=cfg.eps)
            # crossed too confidently: stay at the previous iterate (grad unchanged), halve the step
            step[idx[too_sure]] *= 0.5
    return BorderResult(pre=cur, post=post, success=done, steps=steps, post_conf=post_conf, pre_pred=pre_pred)


def deeper_attack(
    teacher, x: torch.Tensor, src: torch.Tensor, cls: torch.Tensor, cfg: AttackConfig
) -> torch.Tensor:
    """cfg.deeper_steps sign steps toward `cls` (each sample's current class), kept within eps of src."""
    cur = x.detach().clone()
    for _ in range(cfg.deeper_steps):
        _, grad = _probs_grad(teacher, cur, cls)
        cur = _project(cur - cfg.step * grad.sign(), src, cfg.eps)
    return cur


@torch.no_grad()
def _predict(teacher, x: torch.Tensor, batch: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    confs, preds = [], []
    for i in range(0, len(x), batch):
        c, p = teacher(x[i : i + batch]).float().softmax(1).max(1)
        confs.append(c)
        preds.append(p)
    return torch.cat(confs), torch.cat(preds)


def attack_batch(
    teacher,
    x: torch.Tensor,
    cfg: AttackConfig,
    generator: torch.Generator,
    counts: torch.Tensor | None = None,
    targets: torch.Tensor | None = None,
    predict: bool = True,
) -> AttackResult:
    """Border attack (and, if kept, the deeper attack) on a batch; returns the kept stages of successes.

    `targets` overrides cfg.target (used by curation to aim at missing classes); rows whose
    target equals their current prediction are skipped. `generator` (CPU) drives every random
    choice, so a fixed seed gives identical results on a deterministic device. With
    predict=False the outputs are not re-labelled (pred -1, confidence NaN): the online hook
    leaves that to the trainer, which labels the whole batch anyway.
    """
    cfg.validate()
    dev = teacher_device(teacher)
    src = x.detach().to(dev, torch.float32)
    with frozen(teacher):
        # one forward serves both the target choice and the attack's first gradient
        with torch.enable_grad():
            xg = src.clone().requires_grad_(True)
            logits = teacher(xg).float()
        probs = logits.detach().softmax(1)
        top = probs.argmax(1)
        if targets is None:
            targets = choose_targets(probs, cfg.target, generator, counts)
        targets = targets.to(dev)
        live = (targets != top).nonzero().squeeze(1)
        loss = F.cross_entropy(logits[live], targets[live], reduction="sum")
        (grad,) = torch.autograd.grad(loss, xg)
        res = border_attack(teacher, src[live], targets[live], cfg, start=(probs[live], grad[live]))
        ok = res.success.nonzero().squeeze(1)
        rows = live[ok]
        images = {"pre": res.pre[ok], "post": res.post[ok]}
        cls = {"pre": res.pre_pred[ok], "post": targets[rows]}
        deep = [s for s in ("deep-pre", "deep-post") if s in cfg.stages] if cfg.deeper_steps > 0 else []
        if deep and len(rows):
            # from each sample of the pair, toward the class it is now predicted as
            base = [s.removeprefix("deep-") for s in deep]
            out = deeper_attack(teacher, torch.cat([images[b] for b in base]), src[rows].repeat(len(base), 1, 1, 1),
                                torch.cat([cls[b] for b in base]), cfg)
            for i, (s, b) in enumerate(zip(deep, base, strict=True)):
                images[s], cls[s] = out[i * len(rows) : (i + 1) * len(rows)], cls[b]
        keep = [s for s in STAGES if s in cfg.stages and s in images]
        out_images = torch.cat([images[s] for s in keep])
        if predict and len(out_images):
            conf, pred = _predict(teacher, out_images)
        else:
            conf = torch.full((len(out_images),), float("nan"), device=dev)
            pred = torch.full((len(out_images),), -1, dtype=torch.long, device=dev)
    bonus = {s: cfg.deeper_steps if s.startswith("deep") else 0 for s in keep}
    return AttackResult(
        images=out_images,
        source=rows.repeat(len(keep)),
        stage=torch.cat([torch.full_like(rows, STAGES.index(s)) for s in keep]),
        target=torch.cat([cls[s] for s in keep]),
        steps=torch.cat([res.steps[ok] + bonus[s] for s in keep]),
        pred=pred,
        confidence=conf,
    )


class OnlineAttack:
    """Distillation batch hook: replace part of a batch with attacked samples before the teacher labels it.

    Called as hook(batch, step) with batch a N,C,H,W tensor in [0, 1] or the trainer's dict holding
    one under "images"; returns the same kind. On every `every`-th step, `fraction` of the rows are
    replaced: ceil(rows / stages kept) random sources are attacked and their outputs fill the slots,
    so each source's pre/post/deeper samples all land in the batch; slots left over by sources that
    never cross keep their clean image. The batch size never changes. Replaced rows lose their
    data label (-1) and their mixup partner (lambda 1), so a cross-entropy term ignores them.
    Random choices come from (seed, step, rank) alone, so a resumed run attacks exactly as an
    uninterrupted one would (except for least-predicted targets, whose class counts restart; fair
    targets are balanced within each batch, so they resume exactly).

    Defaults: half of every 4th batch (1/8 of all samples). Measured on CPU in the bench setting
    (Fashion-MNIST `cnn` teacher, `cnn-tiny` student, batch 128) the step costs 1.5x the step
    without the attack; a quarter of every batch cost 2.3x, over the 2x budget. Attacking fewer,
    fuller batches also suits GPUs, where the attack's small sequential steps are latency-bound.
    """

    def __init__(self, teacher, cfg: AttackConfig | None = None, fraction: float = 0.5, every: int = 4,
                 seed: int = 0, rank: int = 0):
        check_schedule("attack", fraction, every)
        self.teacher = teacher
        self.cfg = (cfg or AttackConfig()).validate()
        self.fraction = fraction
        self.every = every
        self.seed, self.rank = seed, rank
        self.counts = torch.zeros(int(teacher.num_classes), dtype=torch.long)  # teacher preds of attacked outputs
        self.stats = {"batches": 0, "sources": 0, "replaced": 0}

    def _generator(self, step: int) -> torch.Generator:
        state = np.random.SeedSequence([self.seed, step, self.rank, 0xADF]).generate_state(1, np.uint64)[0]
        return torch.Generator().manual_seed(int(state >> np.uint64(1)))

    def __call__(self, batch, step: int):
        images = batch["images"] if isinstance(batch, dict) else batch
        if step % self.every != 0 or len(images) == 0:
            return batch
        gen = self._generator(step)
        n = len(images)
        slots = max(1, round(self.fraction * n))
        n_src = -(-slots // len(self.cfg.stages))
        perm = torch.randperm(n, generator=gen)
        src_rows = perm[:n_src]
        # outputs are re-labelled only where the target choice needs the running class counts
        least = self.cfg.target == "least-predicted"
        res = attack_batch(self.teacher, images[src_rows.to(images.device)], self.cfg, gen,
                           self.counts if least else None, predict=least)
        if least:
            self.counts += torch.bincount(res.pred.cpu(), minlength=len(self.counts))
        m = min(len(res), slots)
        # a random subset of the outputs, so no stage is favoured when they outnumber the slots;
        # slots are the sources' own rows first, then further random rows
        pick = torch.randperm(len(res), generator=gen)[:m].to(res.images.device)
        dest = perm[:m].to(images.device)
        self.stats["batches"] += 1
        self.stats["sources"] += n_src
        self.stats["replaced"] += m
        return replace_rows(batch, dest, res.images[pick])


def check_schedule(hook: str, fraction: float, every: int) -> None:
    """An online hook's share of each batch (fraction) and its period in steps (every), or a one-line error."""
    if not 0 < fraction <= 1:
        raise KDError(f"online {hook} fraction must be in (0, 1], got {fraction}")
    if every < 1:
        raise KDError(f"online {hook} every must be >= 1, got {every}")


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


# Settings of the online hook in the trainer's config (DistillConfig): `adv` switches it on ("on", or
# "key=value,..." as online_from_string takes); optional `adv_<key>` fields override single keys.
ONLINE = {"fraction": float, "every": int}  # OnlineAttack's own keys; the others are AttackConfig fields
ONLINE_KEYS = (*ONLINE, *AttackConfig.__dataclass_fields__)


def make_batch_hook(config, teacher):
    """The trainer's hook factory: an OnlineAttack when config.adv is set, else None."""
    adv = getattr(config, "adv", None)
    if teacher is None or adv in (None, False, "") or str(adv).lower() in ("off", "none", "false", "0", "no"):
        return None
    text = "on" if adv is True else str(adv)
    extra = [f"{k}={getattr(config, 'adv_' + k)}" for k in ONLINE_KEYS if getattr(config, "adv_" + k, None) is not None]
    rank = int(os.environ.get("RANK", 0))
    return online_from_string(teacher, ",".join([text, *extra]), seed=getattr(config, "seed", 0), rank=rank)


def online_from_string(teacher, text: str, seed: int = 0, rank: int = 0) -> OnlineAttack:
    """OnlineAttack from a compact option string, for a single CLI flag such as distill's --adv:
    `on` (defaults) or `fraction=0.5,every=4,eps=64/255,step=8/255,max-steps=10,target=uniform,...`
    (keys: ONLINE_KEYS, - or _ alike; stages joined by +). Later keys win."""
    given, online = parse_key_values(text, AttackConfig, ONLINE, what="attack", error=KDError)
    return OnlineAttack(teacher, replace(AttackConfig(), **given), seed=seed, rank=rank, **online)


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Round to the 8-bit grid that shards store, so predictions made here hold for the written image."""
    return (x * 255).round_().clamp_(0, 255) / 255


def to_uint8(x: torch.Tensor):
    """N,C,H,W in [0, 1] -> list of H,W (grey) or H,W,3 uint8 numpy arrays for the shard writer."""
    arr = (x.detach() * 255).round().clamp(0, 255).to(torch.uint8).cpu()
    arr = arr[:, 0] if arr.shape[1] == 1 else arr.permute(0, 2, 3, 1)
    return list(arr.numpy())


def run_offline(teacher, batches, writer, cfg: AttackConfig, seed: int = 0, limit: int | None = None) -> dict:
    """Attack every source image of `batches` and write the kept outputs with their attack metadata.

    Metadata (under "params"): source key and shard, stage, target, steps, and the teacher's
    prediction and confidence on the stored (8-bit) image. Returns counts for the run summary.
    """
    cfg.validate()
    gen = torch.Generator().manual_seed(seed)
    counts = torch.zeros(int(teacher.num_classes), dtype=torch.long)
    given = torch.zeros_like(counts)  # targets handed out so far (fair targets count these, not predictions)
    stats = {"sources": 0, "crossed": 0, "written": 0}
    for batch in batches:
        x = batch["images"]
        if limit is not None:
            x = x[: max(0, limit - stats["sources"])]
        if len(x) == 0:
            break
        res = attack_batch(teacher, x, cfg, gen, counts if cfg.target == "least-predicted" else given)
        images = quantize(res.images)
        with frozen(teacher):
            conf, pred = _predict(teacher, images) if len(images) else (images.new_zeros(0), res.pred)
        counts += torch.bincount(pred.cpu(), minlength=len(counts))
        keys, urls = batch.get("keys"), batch.get("urls")
        for i, img in enumerate(to_uint8(images)):
            s = int(res.source[i])
            params = {
                "source": {"key": keys[s] if keys else None, "shard": urls[s] if urls else None},
                "stage": STAGES[int(res.stage[i])],
                "target": int(res.target[i]),
                "steps": int(res.steps[i]),
                "teacher_pred": int(pred[i]),
                "teacher_conf": round(float(conf[i]), 6),
            }
            # the prediction is also the sample's .cls, the target timm's and HF's readers need
            writer.add(img, {"generator": "attack", "index": writer.index, "seed": seed, "params": params},
                       cls=int(pred[i]))
        stats["sources"] += len(x)
        stats["crossed"] += len(set(res.source.tolist()))
        stats["written"] += len(images)
    stats["class_counts"] = counts.tolist()
    return stats
