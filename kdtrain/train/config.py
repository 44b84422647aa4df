"""The training config: every knob defined once, with its one-line help (which the CLI turns into flags).

The same dataclass drives `kdtrain distill` (a teacher file given) and `kdtrain teacher` (no teacher:
cross-entropy on labelled data). It is saved as config.yaml in the run folder and inside checkpoints.
Other modules may add fields (e.g. the attack's `adv_*`): they get CLI flags automatically.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from kdgen.settings import knob, seed_knob  # a field with its help: the CLI flags are generated from these
from kdtrain.data.augment import PRESETS
from kdtrain.errors import UserError
from kdtrain.models.precision import CHOICES as AMP_CHOICES

OPTIMIZERS = ("sgd", "adamw")
ONLINE_HOOKS = ("refine", "adv")  # option strings parsed by kdtrain.synth, checked in validate()

AUGMENT_ON = ("device", "loader")  # where augmentation runs (--augment-on)


@dataclass
class DistillConfig:
    # --- models
    teacher: str | None = knob(None, "teacher file: kdtrain checkpoint, .pt2 export, TorchScript or state_dict")
    teacher_arch: str | None = knob(None, "architecture of a bare state_dict teacher: a registered name, "
                                          "tv:<torchvision name>, timm:<timm name>, or your own code as "
                                          "path/to/file.py:factory or package.module:factory (this imports and "
                                          "runs that code; the factory gets num_classes, in_channels or in_chans "
                                          "where it names them)")
    teacher_spec: str | None = knob(None, "input spec CxHxW[/means/stds] for a teacher file that lacks one")
    student: str = knob("cnn-tiny", "student: a registered model name, tv:<torchvision name>, or a model file")
    # --- training data
    shards: list[str] = knob([], "surrogate shard pattern (brace/glob); repeat for several sets to mix")
    weights: list[float] | None = knob(None, "mixing weights of the --shards sets, e.g. 0.7,0.3")
    data: str | None = knob(None, "real labelled training data instead of shards: fashion-mnist, digits, mnist, "
                                  "cifar10, cifar100, an image folder or labelled shards")
    samples_per_epoch: int | None = knob(None, "samples per epoch (default: the training data's size)")
    shuffle_buffer: int = knob(2000, "shuffle buffer (samples) of each loader worker")
    workers: int = knob(-1, "loader worker processes (-1: one per spare core, at most 8; 0: in-process)")
    # --- augmentation
    preset: str = knob("paper-shader", "augmentation recipe (paper-shader: the paper's shader recipe, measured best "
                                       "for distillation on every surrogate family here)", choices=PRESETS)
    ra_n: int | None = knob(None, "RandAugment number of ops (paper presets; default: 4 for paper-shader, as "
                                  "the paper's shader config, 2 for paper)")
    ra_m: int = knob(14, "RandAugment magnitude, 0-30 (paper presets)")
    jitter: float | None = knob(None, "colour jitter strength (paper presets; default: 0.4 for paper, off for "
                                      "paper-shader, whose config has none)")
    aug_off: str = knob("", "pieces of a paper preset to leave out, comma-separated: crop, flip, randaugment, "
                            "jitter, elastic, invert (for ablations; mixup is --mixup)")
    augment_on: str = knob("device", "where --match-stats and the augmentation run: device (batched on the training "
                                     "device, in the training process; the loader workers only read and decode) "
                                     "or loader (in the loader workers)", choices=AUGMENT_ON)
    match_stats: bool | None = knob(None, "rescale each image to the teacher's input mean/std, clipped to [0,1] "
                                          "(a data-free match of surrogate images to the teacher's domain; "
                                          "default: on for --shards, off for --data)")
    match_stats_stage: str = knob("before", "where --match-stats rescales: before (the loaded image, then "
                                            "augmentation) or after (the augmented image, before mixup)",
                                  choices=("before", "after"))
    mixup: bool = knob(False, "mixup every batch, as the paper's recipe does (off by default: it cost 3 to 13 "
                              "points of student top-1 on refined surrogate sets, docs/RESULTS.md)")
    mixup_alpha: float = knob(1.0, "per-sample mixup lambda ~ Beta(alpha, alpha)")
    # --- evaluation
    eval: str | None = knob(None, "real labelled test data (same sources as --data); default: the test split "
                                  "of --data, else of the teacher's training data; 'none' to skip")
    eval_limit: int | None = knob(None, "evaluate on the first N test samples only")
    holdout: float = knob(0.05, "fraction of the surrogate --shards samples held out of training (chosen by a hash "
                                "of shard file name and key); teacher-student agreement and KL on them are "
                                "logged at each evaluation and in summary.json (0: none)")
    holdout_limit: int = knob(1000, "measure on at most this many held-out samples")
    # --- loss
    temperature: float = knob(5.0, "KD softmax temperature T (loss scaled by T^2)")
    temperature_end: float | None = knob(None, "KD temperature at the last step, reached linearly from "
                                               "--temperature (default: constant)")
    ce_weight: float = knob(0.0, "add ce_weight x cross-entropy on the data's labels where present")
    label_smoothing: float = knob(0.0, "label smoothing of the cross-entropy term")
    # --- boundary attack (kdtrain.synth.attack), online during distillation
    adv: str | None = knob(None, "online boundary attack on part of the batches: 'on' (defaults) or key=value,... "
                                 "e.g. fraction=0.5,every=4,eps=64/255,step=8/255,max-steps=10,target=uniform")
    refine: str | None = knob(None, "online teacher-guided refinement (BatchNorm statistics) of part of each batch, "
                                    "before the attack: 'on' or key=value,... e.g. fraction=0.5,every=1,steps=10,"
                                    "lr=0.1,bn-weight=1,tv-weight=0.05,target=uniform")
    # --- optimisation
    epochs: int = knob(10, "epochs of samples_per_epoch samples")
    steps: int | None = knob(None, "stop after this many optimiser steps (overrides --epochs)")
    batch_size: int = knob(128, "batch size per process")
    optimizer: str = knob("sgd", "optimiser", choices=OPTIMIZERS)
    lr: float = knob(0.1, "peak learning rate")
    momentum: float = knob(0.9, "SGD momentum")
    nesterov: bool = knob(True, "Nesterov momentum (SGD)")
    weight_decay: float = knob(1e-4, "weight decay")
    warmup: float = knob(0.02, "fraction of the steps with a linear learning-rate warm-up")
    min_lr: float = knob(1e-6, "learning rate at the end of the cosine schedule")
    grad_clip: float = knob(0.0, "clip the gradient norm to this (0: off)")
    # --- runtime
    device: str = knob("auto", "auto, cpu, cuda or cuda:N")
    threads: int = knob(-1, "torch CPU threads of the training process (-1: cores not used by loader workers)")
    amp: str = knob("auto", "mixed precision: auto (bf16 on CUDA and on CPUs with AMX or AVX-512 bf16, else "
                            "float32), bf16, fp16 (CUDA) or off", choices=AMP_CHOICES)
    compile: bool = knob(False, "torch.compile the student and teacher")
    channels_last: bool = knob(True, "channels_last memory format (faster convolutions on CUDA and CPU)")
    seed: int = seed_knob("seed of initialisation, data order, augmentation and mixup")
    out: str = knob("runs/distill", "run folder (checkpoints, logs, summary)")
    export: bool = knob(True, "end the run by writing the deployable model beside the checkpoint (MODEL.pt2 with "
                              "its JSON, and MODEL.onnx with the onnx extra); --no-export for runs that are only "
                              "evaluated, e.g. smoke tests (it takes a few seconds per run)")
    resume: bool = knob(False, "continue the run in --out from its last checkpoint")
    ckpt_every: int = knob(0, "also checkpoint every N steps (0: only at epoch ends and by time)")
    ckpt_minutes: float = knob(10.0, "also checkpoint when this many minutes passed since the last one")
    log_every: int = knob(20, "steps between training log rows")
    tensorboard: bool = knob(True, "write TensorBoard event files")
    progress: bool = knob(True, "show a progress bar")

    # Fields that may differ on --resume without changing the result.
    RUNTIME_ONLY = ("resume", "progress", "tensorboard", "ckpt_every", "ckpt_minutes", "log_every", "out",
                    "eval_limit", "holdout_limit", "device", "threads", "augment_on", "export")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> DistillConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise UserError(f"unknown config fields: {', '.join(sorted(unknown))}")
        return cls(**d)

    def validate(self) -> None:
        """Refuse values that would crash a run later or end it with a false success (a run that writes
        no model, a NaN loss): one line naming the flag, before anything is loaded or written."""
        def need(ok: bool, flag: str, rule: str) -> None:
            if not ok:
                raise UserError(f"--{flag} must be {rule}, got {getattr(self, flag.replace('-', '_'))}")

        def finite(v) -> bool:
            return isinstance(v, (int, float)) and math.isfinite(v)

        need(self.steps is None or self.steps >= 1, "steps", "at least 1 (leave it out to run --epochs)")
        need(self.steps is not None or self.epochs >= 1, "epochs", "at least 1")
        need(self.batch_size >= 1, "batch-size", "at least 1")
        need(self.samples_per_epoch is None or self.samples_per_epoch >= 1, "samples-per-epoch", "at least 1")
        need(self.eval_limit is None or self.eval_limit >= 1, "eval-limit", "at least 1 (leave it out for all)")
        need(finite(self.lr) and self.lr > 0, "lr", "a positive finite number")
        need(finite(self.temperature) and self.temperature > 0, "temperature", "a positive finite number")
        need(self.temperature_end is None or (finite(self.temperature_end) and self.temperature_end > 0),
             "temperature-end", "a positive finite number")
        need(finite(self.min_lr) and self.min_lr >= 0, "min-lr", "a finite number >= 0")
        need(finite(self.momentum) and 0 <= self.momentum < 1, "momentum", "in [0, 1)")
        need(finite(self.weight_decay) and self.weight_decay >= 0, "weight-decay", "a finite number >= 0")
        need(finite(self.warmup) and 0 <= self.warmup < 1, "warmup", "a fraction in [0, 1)")
        need(finite(self.grad_clip) and self.grad_clip >= 0, "grad-clip", "a finite number >= 0 (0: off)")
        need(finite(self.ce_weight) and self.ce_weight >= 0, "ce-weight", "a finite number >= 0")
        need(finite(self.label_smoothing) and 0 <= self.label_smoothing < 1, "label-smoothing", "in [0, 1)")
        need(finite(self.mixup_alpha) and self.mixup_alpha > 0, "mixup-alpha", "a positive finite number")
        need(self.jitter is None or (finite(self.jitter) and self.jitter >= 0), "jitter", "a finite number >= 0")
        need(0 <= self.ra_m <= 30, "ra-m", "in 0..30")
        need(self.ra_n is None or self.ra_n >= 0, "ra-n", "at least 0")
        need(finite(self.holdout) and 0 <= self.holdout < 0.5, "holdout", "a fraction in [0, 0.5)")
        need(self.holdout_limit >= 1, "holdout-limit", "at least 1")
        need(self.augment_on in AUGMENT_ON, "augment-on", f"one of {', '.join(AUGMENT_ON)}")
        need(self.shuffle_buffer >= 1, "shuffle-buffer", "at least 1")
        need(isinstance(self.export, bool), "export", "true or false")  # a config file's "no" would be truthy
        need(self.log_every >= 1, "log-every", "at least 1")
        need(self.ckpt_every >= 0, "ckpt-every", "at least 0 (0: off)")
        need(finite(self.ckpt_minutes) and self.ckpt_minutes > 0, "ckpt-minutes", "a positive number")
        for field in ONLINE_HOOKS:  # a bad key of --adv or --refine, before the teacher is loaded
            check_online(self, field)
        check_out_folder(self.out)

    def resolved_threads(self) -> int:
        if self.threads > 0:
            return self.threads
        return max(1, (os.cpu_count() or 1) - self.resolved_workers())

    def resolved_workers(self) -> int:
        if self.workers >= 0:
            return self.workers
        return max(0, min(8, (os.cpu_count() or 1) - 1))


def check_online(config, field: str) -> None:
    """Parse an online hook's option string (`--adv`, `--refine`) as the trainer will, or a one-line error."""
    from kdtrain.synth import attack, refine  # synth builds on train's modules, so only when called
    from kdtrain.synth.common import check_schedule, hook_text, parse_online

    kinds = {"adv": (attack.AttackConfig, attack.OnlineAttack), "refine": (refine.RefineConfig, refine.OnlineRefine)}
    cls, hook = kinds[field]
    text = hook_text(config, field)
    if text is not None:
        online, _ = parse_online(text, cls, hook.name)
        check_schedule(hook.name, online.get("fraction", 1.0), online.get("every", 1))


def check_out_folder(path, flag: str = "--out") -> None:
    """A folder that can be made (or exists) and written, checked before any work: not a file, not
    under a read-only tree such as /proc. Probes with a temporary folder that it removes again."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path} is a file, not a folder; choose another {flag}")
    base = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    if not base.is_dir():
        raise UserError(f"{flag} {path}: {base} is a file, not a folder; choose another {flag}")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".kdtrain-probe-", dir=base))
    except OSError as e:
        reason = e.strerror or e
        raise UserError(f"{flag} {path}: cannot write in {base} ({reason}); choose a writable folder") from None
