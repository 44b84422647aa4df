"""The `kdtrain` command line: `teacher` and `distill` (thin layers over `distill()`), plus the dataset
quality commands that kdtrain.cli_quality registers. Flags are generated from DistillConfig's fields."""

from __future__ import annotations

import json
import types
import typing
from dataclasses import MISSING, fields

import click

from kdgen.clitools import OneLineErrorGroup
from kdtrain import __version__, cli_quality, cli_report
from kdtrain.config import DistillConfig

# `kdtrain teacher`: the knobs that make sense without a teacher, with defaults for a real-data teacher.
TEACHER_FIELDS = ("data", "student", "eval", "eval_limit", "samples_per_epoch", "workers", "preset", "ra_n", "ra_m",
                  "jitter", "mixup", "mixup_alpha", "label_smoothing", "epochs", "steps", "batch_size", "optimizer",
                  "lr", "momentum", "nesterov", "weight_decay", "warmup", "min_lr", "grad_clip", "device", "threads",
                  "amp", "compile", "channels_last", "seed", "out", "resume", "ckpt_every", "ckpt_minutes",
                  "log_every", "tensorboard", "progress")
TEACHER_DEFAULTS = {"student": "resnet8", "preset": "crop-flip", "out": "runs/teacher", "weight_decay": 5e-4,
                    "epochs": 12, "lr": 0.1, "label_smoothing": 0.1}
RENAME = {"teacher": {"student": "arch"}}


def _floats(ctx, param, value):
    if value is None:
        return None
    try:
        return [float(v) for v in value.split(",")]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got {value!r}") from None


def config_options(command: str, only=None, defaults=None):
    """Decorator adding one click option per DistillConfig field (help text from the field)."""
    hints = typing.get_type_hints(DistillConfig)
    defaults = defaults or {}

    def deco(f):
        for fld in reversed(fields(DistillConfig)):
            if only is not None and fld.name not in only:
                continue
            flag = RENAME.get(command, {}).get(fld.name, fld.name).replace("_", "-")
            default = defaults.get(fld.name, fld.default if fld.default is not MISSING else fld.default_factory())
            tp = hints[fld.name]
            args = typing.get_args(tp) if isinstance(tp, types.UnionType) else ()
            base = next((a for a in args if a is not type(None)), tp)
            kw = {"help": fld.metadata.get("help", ""), "show_default": default not in (None, [])}
            if base is bool:
                decl = [f"--{flag}/--no-{flag}"]
                kw["default"] = default
            elif typing.get_origin(base) is list and typing.get_args(base)[0] is float:
                decl, kw["callback"], kw["default"] = [f"--{flag}"], _floats, None
                kw["metavar"] = "W1,W2,.."
            elif typing.get_origin(base) is list:
                decl, kw["multiple"], kw["default"] = [f"--{flag}"], True, default
            else:
                decl, kw["type"], kw["default"] = [f"--{flag}"], base, default
            f = click.option(*decl, fld.name, **kw)(f)
        return f

    return deco


@click.group(cls=OneLineErrorGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="kdtrain")
def cli():
    """Teachers, distillation from surrogate shards, and dataset quality tools."""


@cli.command()
@config_options("teacher", only=TEACHER_FIELDS, defaults=TEACHER_DEFAULTS)
def teacher(**kw):
    """Train a teacher on real labelled data (e.g. --data fashion-mnist); writes OUT/teacher.pt."""
    from kdtrain.distill import train_teacher

    if not kw["data"]:
        raise click.UsageError("--data is required (e.g. --data fashion-mnist)")
    _report(train_teacher(DistillConfig(**kw)))


@cli.command()
@config_options("distill")
def distill(**kw):
    """Distil --teacher into --student from surrogate --shards (or real --data); writes OUT/student.pt.

    Runs DDP when launched by torchrun (nccl on GPUs, gloo on CPUs)."""
    from kdtrain.distill import distill as run

    if not kw["teacher"]:
        raise click.UsageError("--teacher is required")
    kw["shards"] = list(kw["shards"])
    _report(run(DistillConfig(**kw)))


def _report(summary: dict) -> None:
    keep = ("student_top1", "teacher_top1", "agreement", "steps", "samples_seen", "wall_s", "samples_per_s",
            "skipped_samples", "shard_errors", "model_file")
    click.echo(json.dumps({k: summary[k] for k in keep if summary.get(k) is not None}))


cli_quality.register(cli)
cli_report.register(cli)


def main() -> None:
    cli()
