"""The `kdtrain` command line: `teacher` and `distill` (thin layers over `distill()`), plus the dataset
quality commands that kdtrain.cli.quality registers. Flags are generated from DistillConfig's fields."""

from __future__ import annotations

import json

import click

from kdgen.clitools import OneLineErrorGroup, command_line
from kdgen.settings import dataclass_options
from kdtrain import __version__
from kdtrain.cli import quality, report, student
from kdtrain.train.config import DistillConfig

# `kdtrain teacher`: the knobs that make sense without a teacher, with defaults for a real-data teacher.
TEACHER_FIELDS = ("data", "student", "eval", "eval_limit", "samples_per_epoch", "workers", "preset", "ra_n", "ra_m",
                  "jitter", "mixup", "mixup_alpha", "label_smoothing", "epochs", "steps", "batch_size", "optimizer",
                  "lr", "momentum", "nesterov", "weight_decay", "warmup", "min_lr", "grad_clip", "device", "threads",
                  "amp", "compile", "channels_last", "seed", "out", "resume", "ckpt_every", "ckpt_minutes",
                  "log_every", "tensorboard", "progress")
TEACHER_DEFAULTS = {"student": "resnet8", "preset": "crop-flip", "out": "runs/teacher", "weight_decay": 5e-4,
                    "epochs": 12, "lr": 0.1, "label_smoothing": 0.1}
RENAME = {"teacher": {"student": "arch"}}


def config_options(command: str, only=None, defaults=None):
    """Decorator adding one click option per DistillConfig field (help text from the field)."""
    return dataclass_options(DistillConfig, only=only, overrides=defaults, rename=RENAME.get(command))


@click.group(cls=OneLineErrorGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="kdtrain")
def cli():
    """Teachers, distillation from surrogate shards, and dataset quality tools."""


@cli.command()
@config_options("teacher", only=TEACHER_FIELDS, defaults=TEACHER_DEFAULTS)
def teacher(**kw):
    """Train a teacher on real labelled data (e.g. --data fashion-mnist); writes OUT/teacher.pt."""
    from kdtrain.train.distill import train_teacher

    if not kw["data"]:
        raise click.UsageError("--data is required (e.g. --data fashion-mnist)")
    _report(train_teacher(DistillConfig(**kw), command=command_line()))


@cli.command()
@config_options("distill")
def distill(**kw):
    """Distil --teacher into --student from surrogate --shards (or real --data); writes OUT/student.pt.

    Runs DDP when launched by torchrun (nccl on GPUs, gloo on CPUs)."""
    from kdtrain.train.distill import distill as run

    if not kw["teacher"]:
        raise click.UsageError("--teacher is required")
    kw["shards"] = list(kw["shards"])
    _report(run(DistillConfig(**kw), command=command_line()))


def _report(summary: dict) -> None:
    keep = ("student_top1", "teacher_top1", "agreement", "steps", "samples_seen", "wall_s", "samples_per_s",
            "skipped_samples", "shard_errors", "model_file")
    click.echo(json.dumps({k: summary[k] for k in keep if summary.get(k) is not None}))


quality.register(cli)
report.register(cli)
student.register(cli)


def main() -> None:
    cli()
