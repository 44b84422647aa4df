"""Tiny shards and teachers for the kdtrain tests (written with webdataset's TarWriter, as kdgen does)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch
import webdataset as wds
from PIL import Image

from kdtrain.data.spec import InputSpec
from kdtrain.models.registry import create_model
from kdtrain.models.teachers import model_checkpoint, save_model


def png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def write_shards(folder: Path, name: str, n: int, per_shard: int, size: int = 12, channels: int = 3,
                 labels: bool = True, classes: int = 10, seed: int = 0, manifest: bool = True) -> list[Path]:
    """n random images (class-dependent brightness, so a model can learn something) in shards of per_shard."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths, counts = [], {}
    for s in range(-(-n // per_shard)):
        path = folder / f"{name}-{s:06d}.tar"
        with wds.TarWriter(str(path), mtime=0) as w:
            for i in range(s * per_shard, min(n, (s + 1) * per_shard)):
                cls = int(rng.integers(classes))
                shape = (size, size) if channels == 1 else (size, size, 3)
                img = (rng.integers(0, 60, shape) + cls * 20).astype(np.uint8)
                sample = {"__key__": f"{i:09d}", "png": png(img),
                          "json": json.dumps({"generator": name, "index": i}).encode()}
                if labels:
                    sample["cls"] = str(cls).encode()
                w.write(sample)
        counts[path.name] = min(n, (s + 1) * per_shard) - s * per_shard
        paths.append(path)
    if manifest:
        (folder / f"{name}-manifest.json").write_text(json.dumps({"name": name, "shards": counts,
                                                                   "num_samples": n}))
    return paths


def write_teacher(path: Path, channels: int = 3, size: int = 12, classes: int = 10, arch: str = "cnn-tiny",
                  seed: int = 0) -> InputSpec:
    torch.manual_seed(seed)
    spec = InputSpec(channels, size, size, (0.5,), (0.25,))
    model = create_model(arch, classes, channels)
    save_model(path, model_checkpoint(model, arch, spec, classes, [f"c{i}" for i in range(classes)]))
    return spec
