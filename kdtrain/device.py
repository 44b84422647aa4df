"""`--device` of every kdtrain command: a name (auto, cpu, cuda, cuda:N) -> a torch.device, or one line
naming the problem, before any teacher or data is loaded."""

from __future__ import annotations

import torch

from kdtrain.errors import UserError

NAMES = "auto, cpu, cuda or cuda:N"


def resolve_device(name: str, local_rank: int = 0, world: int = 1) -> torch.device:
    """`auto`: cuda where available, else cpu. Under torchrun (world > 1) a bare `cuda` is this process's
    GPU, cuda:LOCAL_RANK."""
    name = str(name).strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and world > 1:
        name = f"cuda:{local_rank}"
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r} is not a device; use {NAMES}") from None
    if dev.type not in ("cpu", "cuda"):
        raise UserError(f"--device {name!r}: kdtrain runs on cpu or cuda; use {NAMES}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA device is available here; use --device cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UserError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return dev
