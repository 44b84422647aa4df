"""Training checkpoints: everything needed to continue a run exactly, written atomically.

A checkpoint holds model, optimiser, scheduler and grad-scaler state, the step and epoch, every RNG
state (torch CPU/CUDA, numpy, Python) and the run's config. It is a plain dict of tensors and Python
values, so `torch.load(weights_only=True)` reads it (no pickled objects).
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from kdgen.contract import atomic_write
from kdtrain.errors import UserError


def rng_state() -> dict:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, key, *rest = state["numpy"]
    np.random.set_state((name, key.numpy().astype(np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def save(path: str | os.PathLike, state: dict) -> None:
    """Write to a temporary file in the same folder, then rename: a kill never leaves half a checkpoint."""
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load(path: str | os.PathLike) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a corrupt file is bad input, not a crash
        raise UserError(f"cannot read checkpoint {path}: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
