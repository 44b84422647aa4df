"""The trainer: distil a teacher into a student (or, with no teacher, train on labels), with exact resume.

`distill(config)` is the plain function the CLI calls. `Run.__init__` composes the `build_*` functions
(teacher, data, student, optimiser and schedule, augmentation, evaluator; the batch hook from
`default_batch_hook`), `Run.train` is the loop, `Run.train_step` one step: uint8 batch -> device, float
[0,1] -> mixup -> `batch_hook(batch, step)` (identity unless --refine or --adv plug in) -> the teacher labels
the final images -> student loss -> optimiser and per-step cosine schedule.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from kdgen.clitools import torchrun_rank
from kdtrain.data.augment import MatchStats, build_preset, match_stats, mixup
from kdtrain.data.datasets import LabelledSet, load_labelled
from kdtrain.data.holdout import load_held_out
from kdtrain.data.shards import check_shards, count_samples, decode_limit, expand_patterns
from kdtrain.data.spec import InputSpec
from kdtrain.data.stream import ShardSource, TensorSource, make_train_loader
from kdtrain.device import resolve_device
from kdtrain.errors import UserError
from kdtrain.models import precision
from kdtrain.models.registry import create_model
from kdtrain.models.teachers import Teacher, load_teacher, model_checkpoint, save_model
from kdtrain.train import checkpoint
from kdtrain.train.config import OPTIMIZERS, DistillConfig
from kdtrain.train.evaluate import Evaluator, HoldoutEvaluator
from kdtrain.train.logs import RunLog, write_json, write_yaml

__all__ = ["DistillConfig", "distill", "kd_loss", "match_stats", "mixed_ce"]

BatchHook = Callable[[dict, int], dict]
NAMED_DATASETS = ("fashion-mnist", "fmnist", "digits", "mnist", "cifar10", "cifar100")


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float) -> torch.Tensor:
    """KL(softmax(t/T) || softmax(s/T)) * T^2, mean over the batch (Hinton et al. 2015)."""
    return F.kl_div(F.log_softmax(student_logits / T, -1), F.log_softmax(teacher_logits / T, -1),
                    reduction="batchmean", log_target=True) * (T * T)


def mixed_ce(logits: torch.Tensor, labels: torch.Tensor, mix: tuple | None, smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy on labels (-1 = unknown, ignored); with mixup, lambda-weighted over both sources."""
    def ce(y):
        return F.cross_entropy(logits, y.clamp_min(0), reduction="none", label_smoothing=smoothing) * (y >= 0)

    if mix is None:
        return ce(labels).sum() / (labels >= 0).sum().clamp_min(1)
    perm, lam = mix
    return (lam * ce(labels) + (1 - lam) * ce(labels[perm])).sum() / (labels >= 0).sum().clamp_min(1)


def identity_hook(batch: dict, step: int) -> dict:
    return batch


def default_batch_hook(config: DistillConfig, teacher: Teacher | None) -> BatchHook:
    """The online refinement (`--refine`) and then the boundary attack (`--adv`), each where switched on:
    with both, the attack starts from batches whose rows were already refined."""
    from kdtrain.synth.attack import make_batch_hook
    from kdtrain.synth.refine import make_refine_hook

    hooks = [h for h in (make_refine_hook(config, teacher), make_batch_hook(config, teacher)) if h is not None]
    if not hooks:
        return identity_hook

    def chained(batch: dict, step: int) -> dict:
        for hook in hooks:
            batch = hook(batch, step)
        return batch

    return chained


def cosine_with_warmup(total: int, warmup: int, min_ratio: float) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, total - warmup)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    return f


def distill(config: DistillConfig, batch_hook: BatchHook | None = None, command: str | None = None) -> dict:
    """Run (or resume) a training run described by `config`; returns the summary (also summary.json).
    `command`: the command line that started it, stored in the run's config.yaml."""
    config.validate()  # before anything is loaded or the run folder made
    try:
        return Run(config, batch_hook, command).train()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def train_teacher(config: DistillConfig, command: str | None = None) -> dict:
    """Train a model on labelled data with cross-entropy (what `kdtrain teacher` runs)."""
    if config.teacher:
        raise UserError("train_teacher takes no teacher")
    return distill(config, command=command)


# ------------------------------------------------------------------------------------------- building
# Each piece of a run from the config, in the order Run.__init__ composes them (the order matters for a
# fresh run's random streams: the student is initialised right after torch.manual_seed(seed)).

def check_out(cfg: DistillConfig, out: Path) -> dict | None:
    """The checkpoint to resume from (None: start fresh); refuses to mix two runs in one folder."""
    last = out / "last.pt"
    if cfg.resume:
        if not last.exists():
            if (out / "summary.json").exists():
                raise UserError(f"{out} holds a finished run without a checkpoint")
            return None  # nothing to resume yet: start fresh (lets a launcher always pass --resume)
        state = checkpoint.load(last)
        diff = [k for k, v in cfg.to_dict().items()
                if k not in DistillConfig.RUNTIME_ONLY and state["config"].get(k) != v]
        if diff:
            raise UserError(f"--resume with a different config than {last}: {', '.join(diff)}")
        return state
    if last.exists() or (out / "summary.json").exists():
        raise UserError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    return None


def build_teacher(cfg: DistillConfig, device: torch.device) -> Teacher | None:
    teacher = load_teacher(cfg.teacher, device, cfg.teacher_arch, cfg.teacher_spec) if cfg.teacher else None
    if bool(cfg.shards) == bool(cfg.data):
        raise UserError("give either --shards (surrogate data) or --data (real labelled data)")
    if teacher is None and not cfg.data:
        raise UserError("training without a teacher needs labelled --data")
    return teacher


@dataclasses.dataclass
class TrainData:
    """What the run trains on: the sample source, the input spec and classes, the step budget, the test set."""

    source: ShardSource | TensorSource
    spec: InputSpec
    class_names: list[str]
    samples_per_epoch: int
    steps_per_epoch: int
    total_steps: int
    eval_set: LabelledSet | None
    held_out: torch.Tensor | None  # uint8 held-out surrogate samples (--holdout), never trained on


def build_data(cfg: DistillConfig, teacher: Teacher | None, world: int) -> TrainData:
    """Real labelled --data or surrogate --shards, at the teacher's spec (or the data's, without a teacher)."""
    train_set = load_labelled(cfg.data, train=True) if cfg.data else None
    held = None
    spec: InputSpec = teacher.spec if teacher else train_set.spec
    class_names = teacher.class_names if teacher else train_set.class_names
    decode_limit(spec)  # a bad $KD_MAX_IMAGE_SIDE fails here, before anything is written
    if train_set is not None:
        _check_classes(train_set, class_names, "--data")
        source, n_data = TensorSource(train_set.dataset), len(train_set)
    else:
        sets = [expand_patterns([p]) for p in cfg.shards]
        for p, urls in zip(cfg.shards, sets, strict=True):
            check_shards(urls, p)
        holdout = cfg.holdout if teacher is not None else 0.0  # agreement needs a teacher
        source = ShardSource(sets, cfg.weights, cfg.shuffle_buffer, holdout)
        n_data = sum(count_samples(u) for u in sets)
        if holdout:
            held = load_held_out(sets, spec, holdout, cfg.holdout_limit)[0]
    samples_per_epoch = cfg.samples_per_epoch or n_data
    steps_per_epoch = samples_per_epoch // (cfg.batch_size * world)
    if steps_per_epoch < 1:
        raise UserError(f"{samples_per_epoch} samples per epoch are less than one batch of "
                      f"{cfg.batch_size} x {world} processes")
    eval_set = build_eval_set(cfg, train_set, teacher)
    if eval_set is not None:
        _check_classes(eval_set, class_names, "--eval")
    return TrainData(source, spec, class_names, samples_per_epoch, steps_per_epoch,
                     cfg.steps or cfg.epochs * steps_per_epoch, eval_set, held)


def build_eval_set(cfg: DistillConfig, train_set: LabelledSet | None, teacher: Teacher | None) -> LabelledSet | None:
    src = cfg.eval
    if src is not None and src.lower() in ("none", ""):
        return None
    if src is None:
        src = cfg.data if train_set is not None else getattr(teacher, "data", None)
        if src is None or (src.lower() not in NAMED_DATASETS and not Path(src).is_dir()):
            return None
    return load_labelled(src, train=False)


def build_student(cfg: DistillConfig, data: TrainData) -> tuple[str, torch.nn.Module]:
    """(architecture name, model): a registered model, or initialised from a model file (kdtrain checkpoint)."""
    name, n = cfg.student, len(data.class_names)
    if Path(name).is_file():
        init = load_teacher(name)
        if init.num_classes != n:
            raise UserError(f"student {name} has {init.num_classes} classes, the teacher {n}")
        if init.spec.channels != data.spec.channels:
            raise UserError(f"student {name} takes {init.spec.channels} channels, the teacher {data.spec.channels}")
        model = init.model.train()
        for p in model.parameters():
            p.requires_grad_(True)
        return init.arch, model
    return name, create_model(name, n, data.spec.channels)


def build_optimizer(cfg: DistillConfig, student: torch.nn.Module, total_steps: int, amp_dtype):
    """(optimiser, per-step cosine schedule with warm-up, grad scaler for fp16)."""
    decay = [p for p in student.parameters() if p.ndim > 1]
    no_decay = [p for p in student.parameters() if p.ndim <= 1]  # no weight decay on BN and biases
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    elif cfg.optimizer == "adamw":
        opt = torch.optim.AdamW(groups, lr=cfg.lr)
    else:
        raise UserError(f"unknown optimizer {cfg.optimizer!r}; use {', '.join(OPTIMIZERS)}")
    warm = int(cfg.warmup * total_steps)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, cosine_with_warmup(total_steps, warm, cfg.min_lr / cfg.lr if cfg.lr else 0.0))
    return opt, sched, torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)


def build_augmentation(cfg: DistillConfig, spec: InputSpec):
    """(the loader's batch preset, mixup on or off); --match-stats before augmentation wraps the preset."""
    preset = build_preset(cfg.preset, min(spec.height, spec.width), cfg.ra_n, cfg.ra_m, cfg.jitter, cfg.aug_off)
    if cfg.match_stats_stage not in ("before", "after"):
        raise UserError(f"--match-stats-stage {cfg.match_stats_stage!r}: use before or after")
    if cfg.match_stats and cfg.match_stats_stage == "before":  # in the loader, ahead of augmentation
        preset = MatchStats(preset, spec.mean, spec.std)
    return preset, preset.mixup if cfg.mixup is None else cfg.mixup


def labelling_teacher(teacher: Teacher | None) -> Teacher | None:
    """The teacher that labels the training batches: a copy with each BatchNorm folded into the convolution
    before it (eval mode: the same function, fewer passes over the activations; measured faster on the
    CPU, docs/BENCHMARKS.md), its weights in the autocast dtype. The hooks (refine's BatchNorm statistics,
    the attack) keep the original.
    A model that torch.fx cannot trace (an export, TorchScript) labels as it is."""
    if teacher is None or not isinstance(teacher.model, torch.nn.Module) or isinstance(
            teacher.model, (torch.jit.ScriptModule, torch.fx.GraphModule)):
        return teacher
    from torch.fx.experimental.optimization import fuse

    try:
        fused = fuse(teacher.model)  # a folded copy; the original is left as it is
    except Exception:  # noqa: BLE001 - untraceable Python control flow: label with the unfolded model
        return teacher
    if teacher.amp_dtype is not None:  # cast once, not by autocast at every forward (nothing left needs float32)
        fused.to(teacher.amp_dtype)
    labeller = copy.copy(teacher)
    labeller.model = fused
    return labeller


def build_evaluator(cfg: DistillConfig, data: TrainData, device: torch.device, amp_dtype) -> Evaluator | None:
    if data.eval_set is None:
        return None
    return Evaluator(data.eval_set, data.spec, device, cfg.batch_size * 2, cfg.eval_limit, amp_dtype,
                     cfg.channels_last)


def build_holdout_evaluator(cfg: DistillConfig, data: TrainData, device: torch.device,
                            amp_dtype) -> HoldoutEvaluator | None:
    """Agreement and KL on the held-out surrogate samples, prepared as the loader prepares training ones."""
    if data.held_out is None or len(data.held_out) == 0:
        return None
    return HoldoutEvaluator(data.held_out, data.spec, device, cfg.batch_size * 2, bool(cfg.match_stats), amp_dtype,
                            cfg.channels_last)


class Window:
    """Mean losses and samples/s of the steps since the last training log row."""

    def __init__(self):
        self.t, self.n, self.steps, self.sums = time.time(), 0, 0, {}

    def add(self, parts: dict, n: int) -> None:
        self.steps, self.n = self.steps + 1, self.n + n
        for k, v in parts.items():
            self.sums[k] = self.sums.get(k, 0) + v

    def pause(self, seconds: float) -> None:
        self.t += seconds

    def take(self) -> dict:
        out = {"losses": {k: float(v) / self.steps for k, v in self.sums.items()},
               "rate": self.n / max(1e-9, time.time() - self.t)}
        self.__init__()
        return out


class Run:
    """One training run: everything is built (and validated) before the run folder is made."""

    def __init__(self, config: DistillConfig, batch_hook: BatchHook | None, command: str | None = None):
        self.cfg = cfg = dataclasses.replace(config)  # resolved in place below; the caller's copy stays as given
        self.command = command
        self.rank, self.world, self.device = _setup_distributed(cfg.device)
        self.main = self.rank == 0
        self.out = Path(cfg.out)
        cfg.workers = cfg.resolved_workers()
        if cfg.match_stats is None:  # surrogate images take the teacher's input statistics unless told not to
            cfg.match_stats = bool(cfg.shards)
        torch.set_num_threads(cfg.resolved_threads())  # oversubscribed cores stall torch's thread pool badly
        state = check_out(cfg, self.out)

        self.teacher = build_teacher(cfg, self.device)
        data = build_data(cfg, self.teacher, self.world)
        self.source, self.spec, self.class_names = data.source, data.spec, data.class_names
        self.samples_per_epoch, self.steps_per_epoch = data.samples_per_epoch, data.steps_per_epoch
        self.total_steps = data.total_steps

        torch.manual_seed(cfg.seed)
        self.arch, self.student = build_student(cfg, data)
        self.student.to(self.device)
        if cfg.channels_last:  # faster convolutions on CUDA and with oneDNN on CPU (1.4x for resnet8 here)
            self.student.to(memory_format=torch.channels_last)
            if self.teacher:
                self.teacher.model.to(memory_format=torch.channels_last)
        self.amp_dtype = precision.resolve(cfg.amp, self.device)
        self.opt, self.sched, self.scaler = build_optimizer(cfg, self.student, self.total_steps, self.amp_dtype)
        if self.teacher:
            self.teacher.set_precision(self.amp_dtype)
        self.preset, self.mixup = build_augmentation(cfg, self.spec)
        # --augment-on device (the default): on the GPU the augmentation costs next to nothing; on this project's
        # 2-core CPU it measured 4-9% faster than augmenting in the loader worker (docs/BENCHMARKS.md)
        self.augment_in_step = cfg.augment_on == "device"
        self.mean = torch.tensor(self.spec.mean, device=self.device).view(1, -1, 1, 1)
        self.std = torch.tensor(self.spec.std, device=self.device).view(1, -1, 1, 1)
        self.batch_hook = batch_hook or default_batch_hook(cfg, self.teacher)

        # progress counters (restored on resume)
        self.step, self.samples_seen, self.elapsed, self.train_s = 0, 0, 0.0, 0.0
        self.problems: dict[str, int] = {}
        self.last_eval: dict = {}
        self.shards_seen: set[str] = set()
        if state is not None:
            self._restore(state)

        self.model = self.student
        if self.world > 1:
            self.model = torch.nn.parallel.DistributedDataParallel(
                self.student, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if cfg.compile:
            self.model = torch.compile(self.model)
            if self.teacher:
                self.teacher.model = torch.compile(self.teacher.model)
        # --compile: the compiled teacher labels (inductor fuses it); else the BatchNorm-folded copy
        self.labeller = self.teacher if cfg.compile else labelling_teacher(self.teacher)
        self.evaluator = build_evaluator(cfg, data, self.device, self.amp_dtype)
        self.holdout_evaluator = build_holdout_evaluator(cfg, data, self.device, self.amp_dtype)

    def _restore(self, s: dict) -> None:
        self.student.load_state_dict(s["model"])
        self.opt.load_state_dict(s["optimizer"])
        self.sched.load_state_dict(s["scheduler"])
        self.scaler.load_state_dict(s["scaler"])
        checkpoint.set_rng_state(s["rng"])
        self.step, self.samples_seen = s["step"], s["samples_seen"]
        self.elapsed, self.train_s = s["elapsed"], s["train_s"]
        self.problems, self.last_eval = dict(s["problems"]), dict(s["last_eval"])
        self.shards_seen = set(s["shards_seen"])

    # --------------------------------------------------------------------------------------- training

    def train(self) -> dict:
        """The loop: one step per batch; a log row every log_every steps; eval at epoch ends; checkpoints."""
        cfg = self.cfg
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
            write_yaml(self.out / "config.yaml", {"command": self.command, **cfg.to_dict()})
        log = RunLog(self.out if self.main else None, self.total_steps, self.step, cfg.tensorboard, cfg.progress)
        if cfg.progress:  # quiet runs have it in summary.json
            log.message(f"precision: {precision.describe(self.amp_dtype, self.device)}")
        t_start, last_ckpt = time.time(), time.time()
        self.elapsed_base = self.elapsed
        loader = make_train_loader(self.source, self.spec, self.loader_preset, cfg.batch_size, self.steps_per_epoch,
                                   self.total_steps, self.step, cfg.seed, self.rank, self.world, cfg.workers,
                                   pin_memory=self.device.type == "cuda", num_classes=len(self.class_names))
        window = Window()
        t_prev = time.time()
        try:
            for batch in loader:
                if batch["step"] != self.step:
                    raise RuntimeError(f"loader out of order: got batch {batch['step']}, expected {self.step}")
                parts = self.train_step(batch, self.step)
                self.train_s += time.time() - t_prev  # loader wait + step; evaluation and saving excluded
                self._count(batch)
                window.add(parts, len(batch["images"]) * self.world)
                log.progress(1, {})
                if self.step % cfg.log_every == 0 or self.step == self.total_steps:
                    w = window.take()
                    self._stop_if_not_finite(w["losses"]["loss"])
                    self._log_train(log, w, t_start)
                t_pause = time.time()
                epoch_end = self.step % self.steps_per_epoch == 0 or self.step == self.total_steps
                if epoch_end:
                    self._evaluate(log, t_start)
                if self.main and (epoch_end or (cfg.ckpt_every and self.step % cfg.ckpt_every == 0)
                                  or time.time() - last_ckpt > 60 * cfg.ckpt_minutes):
                    self._stop_if_not_finite(float(window.sums.get("loss", 0.0)), weights=True)
                    self._save(t_start, model_file=epoch_end)
                    last_ckpt = time.time()
                t_prev = time.time()
                window.pause(t_prev - t_pause)  # the rate shown is training speed, without eval and saving
        except Exception as e:
            from kdgen import errors

            # a user error from a loader worker arrives as its class, with the worker's traceback as message
            if isinstance(e, errors.UserError) and errors.worker_message(e) != str(e):
                raise type(e)(errors.worker_message(e)) from None
            raise
        finally:
            log.close()
        return self._finish(t_start)

    def _count(self, batch: dict) -> None:
        """Progress counters after a step (checkpointed, so a resumed run carries on counting)."""
        self.step += 1
        self.samples_seen += len(batch["images"]) * self.world
        for k, v in batch["problems"].items():
            self.problems[k] = self.problems.get(k, 0) + v
        self.shards_seen.update(os.path.basename(u) for u in set(batch["urls"]) if u)

    def _log_train(self, log: RunLog, w: dict, t_start: float) -> None:
        log.progress(0, {"loss": w["losses"]["loss"], "samples/s": round(w["rate"])})
        log.row("train", self.step, epoch=self.epoch, lr=self.sched.get_last_lr()[0], samples_per_s=w["rate"],
                skipped=sum(self.problems.values()), wall_s=self._wall(t_start), **w["losses"])

    def _stop_if_not_finite(self, loss: float, weights: bool = False) -> None:
        """Stop before a NaN/inf loss (or, about to save, NaN/inf weights) reaches a checkpoint; the steps'
        losses are summed between log rows, so every step is checked without a device sync per step."""
        bad = not math.isfinite(loss)
        if weights and not bad:
            bad = not bool(torch.stack([p.isfinite().all() for p in self.student.parameters()]).all())
        if bad:
            kept = (f"the last good checkpoint {self.out / 'last.pt'} is kept" if (self.out / "last.pt").exists()
                    else "no checkpoint had been written")
            what = f"the training loss became {loss}" if not math.isfinite(loss) else "the weights became non-finite"
            raise UserError(f"{what} by step {self.step}; {kept}. Lower --lr, raise --temperature or set --grad-clip, "
                          f"and start again")

    @property
    def epoch(self) -> int:
        return (self.step - 1) // self.steps_per_epoch if self.step else 0

    def _wall(self, t_start: float) -> float:
        return self.elapsed_base + time.time() - t_start

    @property
    def loader_preset(self):
        """The loader workers' augmentation: the preset, or None where the step augments on the device."""
        return None if self.augment_in_step else self.preset

    def augment(self, x: torch.Tensor, batch: dict) -> torch.Tensor:
        """The preset on a uint8 batch already on the device, from the batch's own seed (as a worker would)."""
        return self.preset(x, torch.Generator().manual_seed(batch["aug_seed"]))

    def autocast(self):
        return precision.autocast(self.device, self.amp_dtype)

    def temperature(self, step: int) -> float:
        """--temperature, or moved linearly to --temperature-end over the run (step counts from 0)."""
        t0, t1 = self.cfg.temperature, self.cfg.temperature_end
        if t1 is None or self.total_steps <= 1:
            return t0
        return t0 + (t1 - t0) * min(step, self.total_steps - 1) / (self.total_steps - 1)

    def train_step(self, batch: dict, step: int) -> dict:
        """One optimiser step; returns the loss parts as (device) tensors, detached."""
        cfg, dev = self.cfg, self.device
        x = batch["images"].to(dev, non_blocking=True)
        if len(x) == 0:  # every sample of the batch was undecodable: keep the schedule in step
            self.sched.step()
            return {"loss": torch.zeros((), device=dev)}
        if self.augment_in_step:
            x = self.augment(x, batch)
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = x.float().div_(255)
        if cfg.match_stats and cfg.match_stats_stage == "after":
            x = match_stats(x, self.mean, self.std)
        labelled = bool((batch["labels"] >= 0).any())  # asked of the loader's CPU tensor: no device sync
        labels = batch["labels"].to(dev, non_blocking=True)
        mix = None
        if self.mixup and len(x) > 1:
            rng = np.random.default_rng([cfg.seed, step, self.rank, 7])
            lam = torch.from_numpy(rng.beta(cfg.mixup_alpha, cfg.mixup_alpha, len(x))).float().to(dev)
            perm = torch.from_numpy(rng.permutation(len(x))).to(dev)
            x, mix = mixup(x, lam, perm), (perm, lam)
        b = {"images": x, "labels": labels if labelled else None, "mix": mix,
             "keys": batch["keys"], "urls": batch["urls"], "step": step}
        b = self.batch_hook(b, step)
        x, labels, mix = b["images"], b.get("labels"), b.get("mix")
        with self.autocast():
            t_logits = None
            if self.teacher is not None:
                with torch.no_grad():
                    t_logits = self.labeller(x).float()
            s_logits = self.model((x - self.mean) / self.std).float()
        parts = {}
        if t_logits is not None:
            parts["kd_loss"] = kd_loss(s_logits, t_logits, self.temperature(step))
        ce_w = 1.0 if self.teacher is None else cfg.ce_weight
        if ce_w and labels is not None:
            parts["ce_loss"] = mixed_ce(s_logits, labels, mix, cfg.label_smoothing)
        loss = parts.get("kd_loss", 0.0) + ce_w * parts.get("ce_loss", 0.0)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if cfg.grad_clip:
            self.scaler.unscale_(self.opt)
            torch.nn.utils.clip_grad_norm_(self.student.parameters(), cfg.grad_clip)
        self.scaler.step(self.opt)
        self.scaler.update()
        self.sched.step()
        return {"loss": loss.detach(), **{k: v.detach() for k, v in parts.items()}}

    def _evaluate(self, log: RunLog, t_start: float) -> None:
        if not self.main or (self.evaluator is None and self.holdout_evaluator is None):
            return  # other ranks go on and wait in their next all-reduce
        self.student.eval()
        try:
            result = self.evaluator(self.student, self.teacher) if self.evaluator is not None else {}
            if self.holdout_evaluator is not None:
                result.update(self.holdout_evaluator(self.student, self.teacher))
            self.last_eval = result
        finally:
            self.student.train()
        log.row("eval", self.step, epoch=self.epoch, wall_s=self._wall(t_start), **self.last_eval)
        log.message(f"step {self.step} epoch {self.epoch}: " + ", ".join(
            f"{k} {v:.4f}" for k, v in self.last_eval.items() if v is not None))

    def _model_ckpt(self) -> dict:
        return model_checkpoint(self.student, self.arch, self.spec, len(self.class_names), self.class_names,
                                data=self.cfg.data, config=self.cfg.to_dict(), eval=self.last_eval)

    def _save(self, t_start: float, model_file: bool) -> None:
        state = {
            "model": self.student.state_dict(), "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(), "scaler": self.scaler.state_dict(),
            "step": self.step, "epoch": self.epoch, "rng": checkpoint.rng_state(), "config": self.cfg.to_dict(),
            "samples_seen": self.samples_seen, "elapsed": self._wall(t_start), "train_s": self.train_s,
            "problems": self.problems, "last_eval": self.last_eval, "shards_seen": sorted(self.shards_seen),
        }
        checkpoint.save(self.out / "last.pt", state)
        if model_file:
            save_model(self.out / self.model_file, self._model_ckpt())

    @property
    def model_file(self) -> str:
        return "student.pt" if self.teacher is not None else "teacher.pt"

    def _finish(self, t_start: float) -> dict:
        shards_by_rank = [sorted(self.shards_seen)]
        if self.world > 1:
            shards_by_rank = [None] * self.world
            dist.all_gather_object(shards_by_rank, sorted(self.shards_seen))
        wall = self._wall(t_start)
        summary = {
            "mode": "distill" if self.teacher is not None else "supervised",
            "model": self.arch, "teacher": self.cfg.teacher, "model_file": str(self.out / self.model_file),
            **{k: self.last_eval.get(k) for k in ("student_top1", "teacher_top1", "agreement", "eval_samples")},
            **{k: self.last_eval.get(k) for k in ("holdout_agreement", "holdout_kl", "holdout_samples")},
            "steps": self.step, "epochs": self.step / self.steps_per_epoch, "samples_seen": self.samples_seen,
            "wall_s": round(wall, 2), "train_s": round(self.train_s, 2),
            "samples_per_s": round(self.samples_seen / max(1e-9, self.train_s), 1),
            "skipped_samples": self.problems.get("bad_samples", 0),
            "shard_errors": self.problems.get("shard_errors", 0),
            "bad_labels": self.problems.get("bad_labels", 0),
            "world_size": self.world, "device": str(self.device), "workers": self.cfg.workers,
            "precision": precision.describe(self.amp_dtype, self.device),
            "shards_seen_by_rank": shards_by_rank if self.cfg.shards else None,
        }
        if self.main:
            summary["export"] = self._export() if self.cfg.export else None
            write_json(self.out / "summary.json", summary)
        return summary

    def _export(self) -> dict:
        """The deployable model beside the checkpoint: MODEL.pt2 (and MODEL.onnx with the onnx extra)."""
        from kdtrain.models.export import export_model

        path = self.out / Path(self.model_file).with_suffix(".pt2")
        return export_model(self.student, self.spec, path, self.class_names, self.arch)


def _setup_distributed(device: str) -> tuple[int, int, torch.device]:
    """Rank, world size and device; joins the process group when launched by torchrun (WORLD_SIZE > 1)."""
    rank, local, world = torchrun_rank()
    dev = resolve_device(device, local, world)
    if world > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return rank, world, dev


def _check_classes(data: LabelledSet, names: list[str], flag: str) -> None:
    if data.num_classes != len(names):
        raise UserError(f"{flag} {data.name} has {data.num_classes} classes, the model {len(names)}")
    generic = [str(i) for i in range(len(names))]
    if names != generic and data.class_names != generic and list(data.class_names) != list(names):
        raise UserError(f"{flag} {data.name} classes {data.class_names[:3]}... differ from the model's {names[:3]}...")
