"""Decision-boundary attack (paper section "decision boundary exploitation"), as pure batch functions.

Everything runs in pixel space: images are N,C,H,W floats in [0, 1] and the teacher normalises
internally, so eps and step sizes are in pixel units whatever the teacher's mean/std. The teacher
is only read: it runs in eval mode with its parameters' requires_grad switched off for the call,
gradients are taken with respect to the images alone, and its mode and flags are restored after.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kdgen.settings import knob
from kdtrain.errors import UserError
from kdtrain.synth import common
from kdtrain.synth.common import TARGET_MODES, choose_targets, frozen, teacher_device, top1

# What one source image can yield, in order; codes in AttackResult.stage index this tuple.
STAGES = ("pre", "post", "deep-pre", "deep-post")
# The offline attack's version, part of its sets' identity (as a generator's): bump it whenever the same
# sources, teacher, options and seed would write other images, so that resuming an older set is refused.
VERSION = 1
SYNC_EVERY = 4  # on a GPU, the border attack asks whether every row is done only every this many steps


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
    target: str = knob("uniform", "How each sample's target class is chosen: uniform (any other class), fair "
                                  "(every class an equal share of targets), least-predicted or proportional.",
                       choices=TARGET_MODES)
    bold_driver: bool = knob(True, "Bold driver: per-sample step x1.1 while not crossed, halved and reverted "
                                   "if crossed too confidently.")
    confidence: float = knob(0.9, "Bold driver: a crossing at or above this max-softmax is undone and the step "
                                  "halved.")
    deeper_steps: int = knob(3, "Steps of the deeper attack toward each sample's current class (0: none).")
    stages: tuple[str, ...] = knob(STAGES, "Outputs kept per source, comma-separated (joined by + in --adv).")

    def validate(self) -> AttackConfig:
        if not 0 < self.eps <= 1:
            raise UserError(f"attack eps must be in (0, 1] (pixel units), got {self.eps}")
        if not 0 < self.step <= self.eps:
            raise UserError(f"attack step must be in (0, eps={self.eps:.4g}], got {self.step}")
        if self.max_steps < 1 or self.deeper_steps < 0:
            raise UserError("attack max_steps must be >= 1 and deeper_steps >= 0")
        if self.target not in TARGET_MODES:
            raise UserError(f"unknown target mode {self.target!r}; choose one of {', '.join(TARGET_MODES)}")
        if not 0 < self.confidence <= 1:
            raise UserError(f"attack confidence threshold must be in (0, 1], got {self.confidence}")
        if self.deeper_steps == 0 and all(s.startswith("deep") for s in self.stages):
            raise UserError("attack stages keep only deeper samples but deeper_steps is 0")
        bad = [s for s in self.stages if s not in STAGES]
        if bad or not self.stages:
            raise UserError(f"attack stages must be a non-empty subset of {', '.join(STAGES)}, got {self.stages}")
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


@dataclass
class BorderResult:
    pre: torch.Tensor  # N,C,H,W last iterate not predicted as the target
    post: torch.Tensor  # N,C,H,W first accepted iterate predicted as the target
    success: torch.Tensor  # N bool; rows with False hold no crossing and are to be dropped
    steps: torch.Tensor  # N iterations run
    post_conf: torch.Tensor  # N teacher max-softmax at post
    pre_pred: torch.Tensor  # N teacher argmax at pre


def border_attack(
    teacher, x: torch.Tensor, targets: torch.Tensor, cfg: AttackConfig, start: tuple | None = None,
    active: torch.Tensor | None = None,
) -> BorderResult:
    """Targeted iterative sign-gradient attack that stops each sample on its first crossing into its target.

    With the bold driver, a crossing whose max-softmax is >= cfg.confidence is undone and the
    step halved, so accepted pairs straddle the boundary at low confidence; a sample that never
    crosses at low confidence within cfg.max_steps counts as a failure. `start` = (softmax, grad)
    at x, when the caller already has them, saves one forward/backward. `active` (N bool): rows to
    attack; the others are returned unchanged as failures.

    Every update is a masked write over a working set of rows. On the CPU the working set drops the
    finished rows each step (their forward and backward would be wasted work); on a GPU it stays the
    whole batch, fixed shapes with no host round trip per step, and the loop looks at the device only
    every SYNC_EVERY steps to stop early.
    """
    src = x.detach()
    n = len(src)
    dev = src.device
    targets = targets.to(dev)
    cur = src.clone()
    post = src.clone()
    step = torch.full((n,), float(cfg.step), device=dev)
    done = torch.zeros(n, dtype=torch.bool, device=dev) if active is None else ~active.to(dev)
    success = torch.zeros(n, dtype=torch.bool, device=dev)
    steps = torch.zeros(n, dtype=torch.long, device=dev)
    post_conf = torch.zeros(n, device=dev)
    probs, grad = start if start is not None else _probs_grad(teacher, cur, targets)
    grad = grad.clone()
    pre_pred = probs.argmax(1)
    compact = _compacts(dev)
    rows = torch.arange(n, device=dev)
    # A source already predicted as its target has no "outside" sample; callers never ask for this.
    for i in range(cfg.max_steps):
        if compact:
            rows = rows[~done[rows]]
            if len(rows) == 0:
                break
        elif i and i % SYNC_EVERY == 0 and bool(done.all()):
            break
        live = ~done[rows]
        a = step[rows].view(-1, 1, 1, 1)
        cand = _project(cur[rows] - a * grad[rows].sign(), src[rows], cfg.eps)
        p_c, g_c = _probs_grad(teacher, cand, targets[rows])
        conf, pred = p_c.max(1)
        steps[rows] += live.long()
        crossed = live & (pred == targets[rows])
        too_sure = crossed & (conf >= cfg.confidence) if cfg.bold_driver else torch.zeros_like(crossed)
        accept = crossed & ~too_sure
        move = live & ~crossed
        # crossed: record the pair, stop this sample
        post[rows] = torch.where(accept.view(-1, 1, 1, 1), cand, post[rows])
        post_conf[rows] = torch.where(accept, conf, post_conf[rows])
        done[rows] |= accept
        success[rows] |= accept
        # not crossed: move on (the pre-success candidate), grow the step under the bold driver
        m4 = move.view(-1, 1, 1, 1)
        cur[rows] = torch.where(m4, cand, cur[rows])
        grad[rows] = torch.where(m4, g_c.to(grad.dtype), grad[rows])
        pre_pred[rows] = torch.where(move, pred, pre_pred[rows])
        if cfg.bold_driver:
            # grow while not crossed; crossed too confidently: stay at the previous iterate (grad unchanged),
            # halve the step
            a = step[rows]
            step[rows] = torch.where(move, torch.clamp(a * 1.1, max=cfg.eps), torch.where(too_sure, a * 0.5, a))
    return BorderResult(pre=cur, post=post, success=success, steps=steps, post_conf=post_conf, pre_pred=pre_pred)


def _compacts(device: torch.device) -> bool:
    """Whether the border attack drops finished rows each step (the CPU) or keeps fixed shapes (a GPU)."""
    return device.type == "cpu"


def deeper_attack(
    teacher, x: torch.Tensor, src: torch.Tensor, cls: torch.Tensor, cfg: AttackConfig
) -> torch.Tensor:
    """cfg.deeper_steps sign steps toward `cls` (each sample's current class), kept within eps of src."""
    cur = x.detach().clone()
    for _ in range(cfg.deeper_steps):
        _, grad = _probs_grad(teacher, cur, cls)
        cur = _project(cur - cfg.step * grad.sign(), src, cfg.eps)
    return cur


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
        live = targets != top  # a mask, not a row list: no host round trip before the attack
        loss = F.cross_entropy(logits, targets, reduction="none").mul(live).sum()
        (grad,) = torch.autograd.grad(loss, xg)
        res = border_attack(teacher, src, targets, cfg, start=(probs, grad), active=live)
        # the one host round trip of the call: how many sources crossed sizes the outputs
        rows = res.success.nonzero().squeeze(1)
        images = {"pre": res.pre[rows], "post": res.post[rows]}
        cls = {"pre": res.pre_pred[rows], "post": targets[rows]}
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
            conf, pred = top1(teacher, out_images)
        else:
            conf = torch.full((len(out_images),), float("nan"), device=dev)
            pred = torch.full((len(out_images),), -1, dtype=torch.long, device=dev)
    bonus = {s: cfg.deeper_steps if s.startswith("deep") else 0 for s in keep}
    return AttackResult(
        images=out_images,
        source=rows.repeat(len(keep)),
        stage=torch.cat([torch.full_like(rows, STAGES.index(s)) for s in keep]),
        target=torch.cat([cls[s] for s in keep]),
        steps=torch.cat([res.steps[rows] + bonus[s] for s in keep]),
        pred=pred,
        confidence=conf,
    )


class OnlineAttack(common.OnlineHook):
    """Distillation batch hook: replace part of a batch with attacked samples before the teacher labels it.

    Called as hook(batch, step) with batch a N,C,H,W tensor in [0, 1] or the trainer's dict holding
    one under "images"; returns the same kind. On every `every`-th step, `fraction` of the rows are
    replaced: ceil(rows / stages kept) random sources are attacked and their outputs fill the slots,
    so each source's pre/post/deeper samples all land in the batch; slots left over by sources that
    never cross keep their clean image. The batch size never changes. Replaced rows lose their
    data label (-1) and their mixup partner (lambda 1), so a cross-entropy term ignores them.
    Random choices come from (seed, step, rank) alone, so a resumed run attacks exactly as an
    uninterrupted one would (except for least-predicted targets, whose class counts restart; fair targets are balanced
    within each batch, so they resume exactly).

    Defaults: half of every 4th batch (1/8 of all samples). Measured on CPU in the bench setting
    (Fashion-MNIST `cnn` teacher, `cnn-tiny` student, batch 128) the step costs 1.5x the step
    without the attack; a quarter of every batch cost 2.3x, over the 2x budget. Attacking fewer,
    fuller batches also suits GPUs, where the attack's small sequential steps are latency-bound.
    """

    name, salt = "attack", 0xADF

    def __init__(self, teacher, cfg: AttackConfig | None = None, fraction: float = 0.5, every: int = 4,
                 seed: int = 0, rank: int = 0):
        super().__init__(teacher, fraction, every, seed, rank)
        self.cfg = (cfg or AttackConfig()).validate()
        self.stats = {"batches": 0, "sources": 0, "replaced": 0}

    def apply(self, batch, images: torch.Tensor, gen: torch.Generator):
        n = len(images)
        slots = max(1, round(self.fraction * n))
        n_src = -(-slots // len(self.cfg.stages))
        perm = torch.randperm(n, generator=gen)
        src_rows = perm[:n_src]
        # outputs are re-labelled only where the target choice needs the running class counts
        least = self.cfg.target == "least-predicted"
        # fair targets are balanced within each batch (no running counts), so a resumed run attacks exactly
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
        return common.replace_rows(batch, dest, res.images[pick])


# Settings of the online hook in the trainer's config (DistillConfig): `adv` switches it on ("on", or
# "key=value,..." as online_from_string takes); optional `adv_<key>` fields override single keys.
def make_batch_hook(config, teacher):
    """The trainer's hook factory: an OnlineAttack when config.adv is set, else None."""
    return common.hook_from_config(config, "adv", teacher, AttackConfig, OnlineAttack)


def online_from_string(teacher, text: str, seed: int = 0, rank: int = 0) -> OnlineAttack:
    """OnlineAttack from a compact option string, for a single CLI flag such as distill's --adv:
    `on` (defaults) or `fraction=0.5,every=4,eps=64/255,step=8/255,max-steps=10,target=uniform,...`
    (keys: fraction, every and AttackConfig's fields, - or _ alike; stages joined by +). Later keys win."""
    online, cfg = common.parse_online(text, AttackConfig, OnlineAttack.name)
    return OnlineAttack(teacher, cfg, seed=seed, rank=rank, **online)


def run_offline(teacher, batches, writer, cfg: AttackConfig, seed: int = 0, limit: int | None = None,
                progress=None) -> dict:
    """Attack every source image of `batches` and write the kept outputs with their attack metadata.

    Metadata (under "params"): source key and shard, stage, target, steps, and the teacher's
    prediction and confidence on the stored (8-bit) image. Returns counts for the run summary.
    """
    cfg.validate()
    crossed = [0]
    # fair targets balance the targets handed out so far, not the teacher's predictions
    given = torch.zeros(int(teacher.num_classes), dtype=torch.long)

    def step(x, gen, counts):
        res = attack_batch(teacher, x, cfg, gen, counts if cfg.target == "least-predicted" else given)
        crossed[0] += len(set(res.source.tolist()))
        params = [{"stage": STAGES[int(res.stage[i])], "target": int(res.target[i]), "steps": int(res.steps[i])}
                  for i in range(len(res))]
        return res.images, res.source, params, None

    stats = common.run_offline_step(teacher, batches, writer, step, seed, limit, "attack", progress=progress)
    return {**stats, "crossed": crossed[0]}
