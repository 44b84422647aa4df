"""A trained model as a deployable file: torch.export (.pt2) and, with the `onnx` extra, ONNX.

The exported module takes [0, 1] images at the model's input spec (channels, size) and normalises them
itself, with any batch size; float32 on the CPU. A JSON file beside it (`student.pt2` -> `student.json`)
gives its spec with mean 0 and std 1 (the normalisation is inside), its class names and architecture,
so that kdtrain can load the export as a teacher too.
"""

from __future__ import annotations

import copy
import importlib.util
import io
from pathlib import Path

import torch
from torch import nn

from kdtrain.data.spec import InputSpec


class Normalized(nn.Module):
    """The model with the spec's input normalisation in front: [0, 1] images in, logits out."""

    def __init__(self, model: nn.Module, spec: InputSpec):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(spec.std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)


def deployable(model: nn.Module, spec: InputSpec) -> Normalized:
    """A float32, contiguous, eval-mode CPU copy of `model` (the training copy is left as it is)."""
    model = getattr(model, "_orig_mod", model)  # torch.compile
    model = getattr(model, "module", model)  # DDP
    plain = copy.deepcopy(model).cpu().float().to(memory_format=torch.contiguous_format).eval()
    return Normalized(plain, spec).eval()


def onnx_available() -> bool:
    """Whether the `onnx` extra (onnx and onnxscript, which torch's ONNX exporter needs) is installed."""
    return all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxscript"))


def export_model(model: nn.Module, spec: InputSpec, path: str | Path, class_names: list[str],
                 arch: str | None = None, onnx: bool | None = None) -> dict:
    """Write `path` (.pt2) and its JSON beside it, and `path` with .onnx when `onnx` (None: when the extra is
    installed); returns {"pt2": file, "onnx": file or None}. Each file is written atomically."""
    from kdgen.contract import atomic_write, write_json

    path = Path(path)
    module = deployable(model, spec)
    example = torch.rand(2, spec.channels, spec.height, spec.width)
    dynamic = ({0: torch.export.Dim("batch")},)
    with torch.no_grad():
        program = torch.export.export(module, (example,), dynamic_shapes=dynamic)
    buf = io.BytesIO()  # saved to memory first: torch.export.save wants a name ending in .pt2, not a temp name
    torch.export.save(program, buf)
    atomic_write(path, lambda tmp: tmp.write_bytes(buf.getvalue()))
    side = {"spec": InputSpec(spec.channels, spec.height, spec.width, (0.0,), (1.0,)).to_dict(),
            "normalization": {"inside": True, "mean": list(spec.mean), "std": list(spec.std)},
            "input": "float32 images in [0, 1], N x C x H x W", "class_names": list(class_names),
            "num_classes": len(class_names), "arch": arch}
    write_json(path.with_suffix(".json"), side, indent=1)
    out = {"pt2": str(path), "onnx": None}
    if onnx if onnx is not None else onnx_available():
        onnx_path = path.with_suffix(".onnx")
        with torch.no_grad():
            program_onnx = torch.onnx.export(module, (example,), dynamo=True, dynamic_shapes=dynamic, verbose=False,
                                             input_names=["images"], output_names=["logits"])
        atomic_write(onnx_path, lambda tmp: program_onnx.save(str(tmp)))
        out["onnx"] = str(onnx_path)
    return out
