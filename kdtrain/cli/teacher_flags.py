"""Bring your own teacher, the same way in every command that takes one: the --teacher, --teacher-arch
and --teacher-spec flags (declared once, as DistillConfig fields) and the one function that loads it."""

from __future__ import annotations

from pathlib import Path

import click

from kdtrain.errors import KDError
from kdtrain.train.config import DistillConfig

TEACHER_FIELDS = ("teacher", "teacher_arch", "teacher_spec")


def teacher_options(fn):
    """The teacher flags, with the help of their DistillConfig fields (as `kdtrain distill` shows them)."""
    from dataclasses import fields

    helps = {f.name: f.metadata.get("help", "") for f in fields(DistillConfig)}
    for name in reversed(TEACHER_FIELDS):
        kw = {"required": True, "type": click.Path(path_type=Path)} if name == "teacher" else {}
        fn = click.option(f"--{name.replace('_', '-')}", name, help=helps[name], **kw)(fn)
    return fn


def load(o: dict, device: str):
    """The teacher named by a command's options (see teacher_options), on `device`, in the precision of
    `--amp` (default auto), channels_last where it is an eager module (faster with oneDNN and cuDNN)."""
    import torch

    from kdtrain.models import precision
    from kdtrain.models.teachers import load_teacher

    path = Path(o["teacher"])
    if not path.exists():
        raise KDError(f"--teacher {path}: no such file")
    dtype = precision.resolve(o.get("amp", "auto"), device)
    teacher = load_teacher(path, device, arch=o.get("teacher_arch"), spec=o.get("teacher_spec"))
    if isinstance(teacher.model, torch.nn.Module) and not isinstance(teacher.model, torch.jit.ScriptModule):
        teacher.model.to(memory_format=torch.channels_last)
    return teacher.set_precision(dtype)
