"""The `kdtrain` command line: `teacher` and `distill` (thin layers over `distill()`), plus the dataset
quality commands that kdtrain.cli.quality registers. Flags are generated from DistillConfig's fields."""

from __future__ import annotations

import json

import click

from kdgen.clitools import OneLineErrorGroup, command_line, torchrun_rank
from kdgen.settings import dataclass_options
from kdtrain import __version__
from kdtrain.cli import quality, report, student
from kdtrain.train.config import DistillConfig

# `kdtrain teacher`: the knobs that make sense without a teacher, with defaults and help of its own
# (a teacher trained on real data: its architecture, a light augmentation).
TEACHER_COMMAND_FIELDS = ("data", "student", "eval", "eval_limit", "samples_per_epoch", "workers", "preset", "ra_n",
    "ra_m", "jitter", "mixup", "mixup_alpha", "label_smoothing", "epochs", "steps", "batch_size", "optimizer", "lr",
    "momentum", "nesterov", "weight_decay", "warmup", "min_lr", "grad_clip", "device", "threads", "amp", "compile",
    "channels_last", "seed", "out", "export", "resume", "ckpt_every", "ckpt_minutes", "log_every", "tensorboard",
    "progress")
TEACHER_DEFAULTS = {"student": "resnet8", "preset": "crop-flip", "out": "runs/teacher", "weight_decay": 5e-4,
                    "epochs": 12, "lr": 0.1, "label_smoothing": 0.1}
TEACHER_COMMAND_HELP = {
    "student": "the teacher's architecture: a registered model name, tv:<torchvision name>, or a model file",
    "preset": "augmentation recipe",
    "seed": "seed of initialisation, data order, augmentation and mixup",
    "eval": "real labelled test data (same sources as --data); default: the test split of --data; 'none' to skip",
    "mixup": "mixup every batch",
    "compile": "torch.compile the model",
}


@click.group(cls=OneLineErrorGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="kdtrain")
def cli():
    """Teachers, distillation from surrogate shards, and dataset quality tools."""


@cli.command()
@dataclass_options(DistillConfig, only=TEACHER_COMMAND_FIELDS, overrides=TEACHER_DEFAULTS, rename={"student": "arch"},
                   helps=TEACHER_COMMAND_HELP)
def teacher(**kw):
    """Train a teacher on real labelled data (e.g. --data fashion-mnist); writes OUT/teacher.pt."""
    from kdtrain.train.distill import train_teacher

    if not kw["data"]:
        raise click.UsageError("--data is required (e.g. --data fashion-mnist)")
    _report(_locked(train_teacher, DistillConfig(**kw)))


@cli.command()
@dataclass_options(DistillConfig)
def distill(**kw):
    """Distil --teacher into --student from surrogate --shards (or real --data); writes OUT/student.pt.

    Runs DDP when launched by torchrun (nccl on GPUs, gloo on CPUs)."""
    from kdtrain.train.distill import distill as run

    if not kw["teacher"]:
        raise click.UsageError("--teacher is required")
    kw["shards"] = list(kw["shards"])
    _report(_locked(run, DistillConfig(**kw)))


def _locked(run, cfg: DistillConfig) -> dict:
    """`run(cfg)` holding its --out folder: a second run into the same folder at once is refused (the main
    process of a DDP run holds the lock for all its ranks)."""
    from kdgen.lock import hold_run_folder

    cfg.validate()  # its one-line errors about --out come before the folder is made
    with hold_run_folder(cfg.out, main=torchrun_rank()[0] == 0):
        return run(cfg, command=command_line())


def _report(summary: dict) -> None:
    keep = ("student_top1", "teacher_top1", "agreement", "steps", "samples_seen", "wall_s", "samples_per_s",
            "skipped_samples", "shard_errors", "model_file")
    click.echo(json.dumps({k: summary[k] for k in keep if summary.get(k) is not None}))


quality.register(cli)
report.register(cli)
student.register(cli)


def main() -> None:
    cli()
