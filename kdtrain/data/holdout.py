"""The held-out slice of surrogate shards: the samples a hash of (shard file name, key) puts below `--holdout`.

The training stream drops them before it shuffles and batches (so they are never trained on, and the
stream stays a pure function of the config: resume is exact), and the run measures teacher-student
agreement and KL on them at each evaluation: a quality figure that needs no real test data.
"""

from __future__ import annotations

import hashlib
import os

import torch

from kdtrain.data.shards import TRAIN_FIELDS, Problems, adapt_uint8, decode_limit, decode_sample, read_shard
from kdtrain.data.spec import InputSpec

_SCALE = float(1 << 64)


def held_out(url: str, key: str, fraction: float) -> bool:
    """Whether the sample `key` of shard `url` is held out; depends on the file name only, not its folder."""
    if fraction <= 0:
        return False
    digest = hashlib.blake2b(f"{os.path.basename(url)}/{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < fraction * _SCALE


def load_held_out(sets: list[list[str]], spec: InputSpec, fraction: float,
                  limit: int) -> tuple[torch.Tensor, list[str]]:
    """(uint8 images N,C,H,W at the spec, their 'shard/key' names): the first held-out samples of each set
    in shard order, up to `limit` in all (split evenly over the sets); undecodable ones (and images past the
    decoding limit) are skipped."""
    images, names = [], []
    per_set = max(1, limit // max(1, len(sets)))
    problems, max_side = Problems(), decode_limit(spec)
    for urls in sets:
        found = 0
        for url in urls:
            for raw in read_shard(url, problems, TRAIN_FIELDS):
                if found >= per_set:
                    break
                if not held_out(url, raw["__key__"], fraction):
                    continue
                try:
                    sample = decode_sample(raw, with_meta=False, max_side=max_side)
                except Exception as e:  # noqa: BLE001 - undecodable: counted, as training would
                    problems.report("bad_samples", e, url)
                    continue
                images.append(sample["image"])
                names.append(f"{os.path.basename(url)}/{raw['__key__']}")
                found += 1
            if found >= per_set:
                break
    problems.flush()
    return adapt_uint8(images, spec), names
