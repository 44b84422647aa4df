"""Bring your own teacher, the same way in every command that takes one: the --teacher, --teacher-arch
and --teacher-spec flags and the --device and --amp it runs with (declared once, as DistillConfig
fields) and the one function that loads it."""

from __future__ import annotations

from pathlib import Path

from kdgen.settings import dataclass_options
from kdtrain.device import resolve_device
from kdtrain.errors import UserError
from kdtrain.train.config import DistillConfig

TEACHER_FLAGS = ("teacher", "teacher_arch", "teacher_spec", "device", "amp")


def teacher_options(fn):
    """The teacher flags, with the help of their DistillConfig fields (as `kdtrain distill` shows them)."""
    return dataclass_options(DistillConfig, only=TEACHER_FLAGS, required=("teacher",))(fn)


def device(o: dict):
    """The torch device of a command's `--device`, or a one-line error (before any file is read)."""
    return resolve_device(o["device"])


def load(o: dict, device):
    """The teacher named by a command's options (see teacher_options), on `device`, in the precision of
    `--amp`, channels_last where it is an eager module (faster with oneDNN and cuDNN)."""
    import torch

    from kdtrain.models import precision
    from kdtrain.models.teachers import load_teacher

    path = Path(o["teacher"])
    if not path.exists():
        raise UserError(f"--teacher {path}: no such file")
    dtype = precision.resolve(o["amp"], device)
    teacher = load_teacher(path, device, arch=o.get("teacher_arch"), spec=o.get("teacher_spec"))
    if isinstance(teacher.model, torch.nn.Module) and not isinstance(teacher.model, torch.jit.ScriptModule):
        teacher.model.to(memory_format=torch.channels_last)
    return teacher.set_precision(dtype)
