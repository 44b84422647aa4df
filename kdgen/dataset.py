"""Reading datasets back: find a manifest from what a user types, summarise it, iterate decoded samples."""

from __future__ import annotations

import json
import tarfile
from collections import Counter
from pathlib import Path

from kdgen import contract, manifest
from kdgen.errors import UserError


def resolve(dataset: str) -> Path:
    """A manifest path from `data/NAME`, `data/NAME-manifest.json`, `data/NAME-*.tar` or a shard path."""
    path = contract.manifest_beside(dataset)
    if not path.exists():
        raise UserError(f"no dataset manifest at {path}; pass data/NAME for shards data/NAME-*.tar")
    return path


def load_manifest(meta_path: Path) -> dict:
    """A dataset's manifest, checked for the fields readers need (a one-line error otherwise)."""
    meta = manifest.load(meta_path)
    missing = [k for k in ("name", "shards", "size", "format") if k not in meta]
    if missing or not isinstance(meta["shards"], dict):
        what = f"lacks {', '.join(missing)}" if missing else "has no shard table"
        raise UserError(f"{meta_path} is not a kdgen manifest ({what}); pass the NAME-manifest.json of a "
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


def iter_readable(meta_path: Path, limit: int | None = None, skipped: Counter | None = None):
    """Decoded samples in order, passing over unreadable shards (counted under "shards") and samples
    that do not decode or have no image (counted under "samples")."""
    skipped = Counter() if skipped is None else skipped
    n, max_side = 0, contract.max_image_side()  # read once: a bad KD_MAX_IMAGE_SIDE is one error, not N skips
    for path in shard_paths(meta_path):
        try:
            for raw in contract.iter_raw(path):
                if limit is not None and n >= limit:
                    return
                try:
                    sample = contract.decode_sample(raw, max_side=max_side)
                except Exception:  # noqa: BLE001 - any undecodable sample is passed over and counted
                    skipped["samples"] += 1
                    continue
                n += 1
                yield sample
        except (OSError, tarfile.TarError, EOFError):  # missing, truncated or corrupt shard: the next one
            skipped["shards"] += 1


def iter_samples(meta_path: Path, limit: int | None = None):
    """Decoded samples of a dataset (key, image array, meta, label), in shard and key order."""
    n = 0
    for path in shard_paths(meta_path):
        for raw in contract.iter_raw(path):
            if limit is not None and n >= limit:
                return
            n += 1
            yield contract.decode_sample(raw)
