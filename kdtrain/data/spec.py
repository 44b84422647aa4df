"""The input a teacher expects (channels, size, normalisation) and adapting any image batch to it."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from kdtrain.errors import UserError

# ITU-R BT.601 luma weights, as PIL's convert("L") uses.
_LUMA = (0.299, 0.587, 0.114)
# The largest input side accepted (as kdgen's largest image): a spec read from a file cannot make us
# allocate more than a few such images.
MAX_SIDE = 4096


@dataclass(frozen=True)
class InputSpec:
    """What the model expects: channels, size, and the per-channel normalisation of [0,1] pixels."""

    channels: int
    height: int
    width: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self):
        shape = f"{self.channels}x{self.height}x{self.width}"
        if self.channels not in (1, 3) or self.height < 1 or self.width < 1:
            raise UserError(f"unsupported input spec {shape}: give 1 or 3 channels and a positive size")
        if max(self.height, self.width) > MAX_SIDE:
            raise UserError(f"input spec {shape} is too large: at most {MAX_SIDE} pixels a side")
        for name in ("mean", "std"):
            v = tuple(float(x) for x in getattr(self, name))
            if len(v) == 1:
                v = v * self.channels
            if len(v) != self.channels:
                raise UserError(f"input spec {name} has {len(v)} values for {self.channels} channels")
            if not all(math.isfinite(x) for x in v) or (name == "std" and min(v) <= 0):
                what = "positive numbers" if name == "std" else "finite numbers"
                raise UserError(f"input spec {name} {list(v)}: the normalisation {name} must be {what}")
            object.__setattr__(self, name, v)

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> InputSpec:
        """From {"channels", "height", "width", "mean", "std"}; a square image may give "size" instead."""
        fields = '"channels", "size" (or "height" and "width"), "mean" and "std"'
        if not isinstance(d, dict):
            raise UserError(f"bad input spec: expected a JSON object with {fields}, got {type(d).__name__}")
        d = {"height": d.get("size"), "width": d.get("size"), **d}
        missing = [k for k in ("channels", "height", "width", "mean", "std") if d.get(k) is None]
        if missing:
            what = "size" if {"height", "width"} & set(missing) else missing[0]
            raise UserError(f"bad input spec: no {what!r}; give {fields}")
        try:
            mean, std = (tuple(v) if isinstance(v, (list, tuple)) else (v,) for v in (d["mean"], d["std"]))
            return cls(int(d["channels"]), int(d["height"]), int(d["width"]), mean, std)
        except (TypeError, ValueError, OverflowError) as e:
            raise UserError(f"bad input spec: {e}; give {fields} (numbers)") from None

    @classmethod
    def parse(cls, text: str) -> InputSpec:
        """`CxHxW` (mean 0.5, std 0.5) or `CxHxW/m1,m2,m3/s1,s2,s3`, e.g. `3x32x32/0.49,0.48,0.45/0.25,0.24,0.26`."""
        parts = text.split("/")
        try:
            c, h, w = (int(v) for v in parts[0].lower().split("x"))
            mean = tuple(float(v) for v in parts[1].split(",")) if len(parts) > 1 else (0.5,)
            std = tuple(float(v) for v in parts[2].split(",")) if len(parts) > 2 else (0.5,)
        except ValueError:
            raise UserError(f"bad input spec {text!r}; expected CxHxW or CxHxW/mean,../std,..") from None
        return cls(c, h, w, mean, std)


def adapt(x01: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """Resize (antialiased) and convert grey<->RGB so that N,C,H,W images in [0,1] match `spec`."""
    if x01.ndim != 4:
        raise ValueError(f"expected N,C,H,W images, got shape {tuple(x01.shape)}")
    c = x01.shape[1]
    if c == 4:  # drop alpha
        x01, c = x01[:, :3], 3
    if c != spec.channels:
        if spec.channels == 3 and c == 1:
            x01 = x01.expand(-1, 3, -1, -1)
        elif spec.channels == 1 and c == 3:
            w = torch.tensor(_LUMA, dtype=x01.dtype, device=x01.device).view(1, 3, 1, 1)
            x01 = (x01 * w).sum(1, keepdim=True)
        else:
            raise ValueError(f"cannot convert {c} channels to {spec.channels}")
    if x01.shape[-2:] != (spec.height, spec.width):
        x01 = F.interpolate(x01, size=(spec.height, spec.width), mode="bilinear", antialias=True,
                            align_corners=False).clamp_(0, 1)
    return x01
