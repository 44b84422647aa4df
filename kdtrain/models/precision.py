"""Mixed precision: which autocast dtype a run uses (`--amp auto|bf16|fp16|off`) and the context for it.

`auto` picks bfloat16 on CUDA and on CPUs with native bf16 units (AMX or AVX-512 bf16: oneDNN then
runs convolutions and matmuls 2-3x faster than float32), float32 elsewhere. Only the forward and
backward of the networks run in the low precision: callers take logits back to float32 before any
softmax or loss, and optimiser state is always float32.
"""

from __future__ import annotations

import contextlib
import functools
import os

import torch

from kdtrain.errors import UserError

CHOICES = ("auto", "bf16", "fp16", "off")
# Lets a forced --amp bf16 run on a CPU without bf16 units (emulated, slower): for testing that path anywhere.
EMULATE_ENV = "KDTRAIN_EMULATE_BF16"


@functools.cache
def cpu_bf16_feature() -> str | None:
    """The CPU's native bf16 feature ('amx_bf16' or 'avx512_bf16'), or None (read once from /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        flags = []
    for name in ("amx_bf16", "avx512_bf16"):
        if name in flags:
            return name
    return None


def resolve(amp: str | None, device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype for `amp` on `device` (None: float32); a choice the device cannot run is an error."""
    device = torch.device(device)
    amp = "off" if amp in (None, "", False) else str(amp).lower()
    if amp not in CHOICES:
        raise UserError(f"--amp {amp!r} is not one of {', '.join(CHOICES)}")
    if amp == "off":
        return None
    if device.type == "cuda":
        return torch.float16 if amp == "fp16" else torch.bfloat16
    if device.type != "cpu":
        return None
    if amp == "fp16":
        raise UserError("--amp fp16 runs on CUDA only; on the CPU use --amp bf16 (needs AMX or AVX-512 bf16) or off")
    if cpu_bf16_feature() is None:
        if amp == "bf16" and os.environ.get(EMULATE_ENV) == "1":
            return torch.bfloat16
        if amp == "bf16":
            raise UserError("--amp bf16: this CPU has no native bf16 units (AMX or AVX-512 bf16), where bf16 is "
                          "slower than float32; use --amp off (or auto)")
        return None
    return torch.bfloat16


def describe(dtype: torch.dtype | None, device: torch.device | str) -> str:
    """One phrase for the run log, e.g. 'bf16 autocast (CPU amx_bf16)' or 'float32'."""
    device = torch.device(device)
    if dtype is None:
        return "float32"
    name = {torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
    where = f"CPU {cpu_bf16_feature() or 'emulated'}" if device.type == "cpu" else device.type.upper()
    return f"{name} autocast ({where})"


def autocast(device: torch.device | str, dtype: torch.dtype | None):
    """torch.autocast for `dtype` on `device`, or a no-op for float32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)
