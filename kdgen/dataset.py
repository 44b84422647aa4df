"""Reading datasets back: find a manifest from what a user types, summarise it, iterate decoded samples."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import numpy as np
import webdataset as wds
from PIL import Image

from kdgen import manifest
from kdgen.errors import KdgenError

IMAGE_EXTS = ("png", "jpg", "jpeg", "webp")


def resolve(dataset: str) -> Path:
    """A manifest path from `data/NAME`, `data/NAME-manifest.json`, `data/NAME-*.tar` or a shard path."""
    text = str(dataset)
    if text.endswith("-manifest.json"):
        path = Path(text)
    else:
        stem = text
        for suffix in ("-*.tar", ".tar"):
            if stem.endswith(suffix):
                stem = stem[: -len(suffix)]
                break
        path = Path(stem)
        if path.name[-6:].isdigit() and path.name[-7:-6] == "-":  # a single shard: NAME-000003
            path = path.with_name(path.name[:-7])
        path = path.with_name(f"{path.name}-manifest.json")
    if not path.exists():
        raise KdgenError(f"no dataset manifest at {path}; pass data/NAME for shards data/NAME-*.tar")
    return path


def load_manifest(meta_path: Path) -> dict:
    """A dataset's manifest, checked for the fields readers need (a one-line error otherwise)."""
    meta = manifest.load(meta_path)
    missing = [k for k in ("name", "shards", "size", "format") if k not in meta]
    if missing or not isinstance(meta["shards"], dict):
        what = f"lacks {', '.join(missing)}" if missing else "has no shard table"
        raise KdgenError(f"{meta_path} is not a kdgen manifest ({what}); pass the NAME-manifest.json of a "
                         f"dataset kdgen wrote")
    return meta


def shard_paths(meta_path: Path) -> list[Path]:
    meta = load_manifest(meta_path)
    return [meta_path.parent / name for name in sorted(meta["shards"])]


def describe(meta_path: Path) -> str:
    meta = load_manifest(meta_path)
    shards = shard_paths(meta_path)
    missing = [p.name for p in shards if not p.exists()]
    size = sum(p.stat().st_size for p in shards if p.exists())
    w, h = meta["size"]
    lines = [
        f"dataset    {meta['name']}  ({meta_path})",
        f"generator  {meta['generator']}  {json.dumps(meta['params'], sort_keys=True)[:300]}",
        f"samples    {meta['num_samples']} in {len(shards)} shards of up to {meta['shard_size']}, "
        f"{w}x{h} {meta['format']}, {size / 1e6:.1f} MB",
        f"seed       {meta['seed']}",
        f"complete   {'yes' if meta.get('complete') and not missing else 'no'}"
        + (f" (missing {', '.join(missing[:5])})" if missing else ""),
    ]
    if meta.get("class_names"):
        lines.append(f"classes    {len(meta['class_names'])}: {', '.join(meta['class_names'][:20])}")
    if meta.get("counters"):
        lines.append("counters   " + ", ".join(f"{k} {v}" for k, v in meta["counters"].items()))
    if meta.get("command"):
        lines.append(f"command    {meta['command']}")
    return "\n".join(lines)


def decode_sample(sample: dict) -> dict:
    """Image array, metadata and label of a raw WebDataset sample; never unpickles anything."""
    ext = next((e for e in IMAGE_EXTS if e in sample), None)
    if ext is None:
        raise ValueError(f"sample {sample.get('__key__')} has no image")
    with Image.open(io.BytesIO(sample[ext])) as img:
        arr = np.asarray(img.convert("L" if img.mode in ("L", "I", "I;16", "1") else "RGB"))
    out = {"key": sample["__key__"], "image": arr, "meta": json.loads(sample.get("json", b"{}"))}
    if "cls" in sample:
        out["cls"] = int(sample["cls"])
    return out


def iter_readable(meta_path: Path, limit: int | None = None, skipped: Counter | None = None):
    """Decoded samples in order, passing over unreadable shards (counted under "shards") and samples
    that do not decode or have no image (counted under "samples")."""
    skipped = Counter() if skipped is None else skipped

    def bad_shard(exn: Exception) -> bool:
        skipped["shards"] += 1
        return True  # webdataset's handler protocol: go on with the next shard

    n = 0
    for path in shard_paths(meta_path):
        for raw in wds.tarfile_samples(iter([{"url": str(path)}]), handler=bad_shard):
            if limit is not None and n >= limit:
                return
            try:
                sample = decode_sample(raw)
            except Exception:  # noqa: BLE001 - any undecodable sample is passed over and counted
                skipped["samples"] += 1
                continue
            n += 1
            yield sample


def iter_samples(meta_path: Path, limit: int | None = None):
    """Decoded samples of a dataset, in shard and key order."""
    urls = [str(p) for p in shard_paths(meta_path)]
    for i, raw in enumerate(wds.WebDataset(urls, shardshuffle=False, empty_check=False)):
        if limit is not None and i >= limit:
            return
        yield decode_sample(raw)
