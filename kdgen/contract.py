"""The shard contract in one place, for kdgen and kdtrain alike (docs/FORMAT.md): shard, manifest, temporary
and lock file names and their globs, the contract's limits, finding the manifest of what a user typed, atomic
writes, the image suffixes we read, and decoding a sample.

Torch-free and webdataset-free, so that every kdgen command can use it without loading either.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

SHARD_DIGITS = 6  # NAME-000000.tar
SHARD_GLOB = "[0-9]" * SHARD_DIGITS
KEY_DIGITS = 9  # a sample's key: its zero-padded global index, 000000123
MANIFEST_SUFFIX = "-manifest.json"
LOCK_SUFFIX = ".lock"
INFO_NAME = "_info.json"  # timm's index of the folder's datasets, one split each
# Limits: keys and shard numbers keep their width (names sort and glob by it); an image's working arrays
# stay well inside a worker's memory (4096x4096), and so do the images rendered together.
MAX_SAMPLES = 10**KEY_DIGITS
MAX_SHARDS = 10**SHARD_DIGITS
MAX_PIXELS = 1 << 24  # per image
PIXELS_PER_TASK = 1 << 24  # per render call
IMAGE_EXTS = ("png", "jpg", "jpeg", "webp")  # the image field of a sample, in order of preference
# Image files read from a folder (`kdgen import-images`, `kdtrain --data FOLDER`): whatever Pillow decodes.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm"})
# Decompression bombs: an image is decoded only when its declared sides (read from its header) are at
# most max(MAX_SIDE_FLOOR, MAX_SIDE_FACTOR x the model input's or dataset's side), or $MAX_SIDE_ENV.
MAX_SIDE_FLOOR, MAX_SIDE_FACTOR, MAX_SIDE_ENV = 4096, 16, "KD_MAX_IMAGE_SIDE"
# The shard part of a path or pattern: "-000003", "-0*", "-{000000..000009}", "-[0-9]*.tar".
_SHARD_TAIL = re.compile(r"-(\d+|\*|\?|\{[^}]*\}|\[[^]]*\])+$")


def shard_name(name: str, shard: int) -> str:
    return f"{name}-{shard:0{SHARD_DIGITS}d}.tar"


def shard_glob(name: str) -> str:
    """The glob of a dataset's complete shards (not NAME_adv's or NAME-x's)."""
    return f"{name}-{SHARD_GLOB}.tar"


def sample_key(index: int) -> str:
    return f"{index:0{KEY_DIGITS}d}"


def manifest_name(name: str, rank: int = 0, world_size: int = 1) -> str:
    if world_size > 1:
        return f"{name}-manifest.rank{rank:05d}-of-{world_size:05d}.json"
    return f"{name}{MANIFEST_SUFFIX}"


def manifest_glob(name: str) -> str:
    """A dataset's manifest and its per-rank manifests."""
    return f"{name}-manifest*.json"


def rank_manifest_glob(name: str) -> str:
    return f"{name}-manifest.rank*-of-*.json"


def temp_glob(name: str) -> str:
    """Every temporary file of a dataset (shards and manifests being written; see temp_path)."""
    return f".{name}-*.tmp*"


def temp_shard_glob(name: str) -> str:
    return f".{name}-{SHARD_GLOB}.tar.tmp*"


def shard_number(path: str | os.PathLike, name: str) -> int:
    """The number in the name of a shard, or of a temporary shard, of dataset `name` (shard_glob, temp_shard_glob)."""
    return int(Path(path).name.lstrip(".")[len(name) + 1:][:SHARD_DIGITS])


def lock_name(name: str, rank: int = 0, world_size: int = 1) -> str:
    """The lock file a run holds while it writes dataset (or run folder) `name`; ranks write apart."""
    rank_part = f".rank{rank:05d}-of-{world_size:05d}" if world_size > 1 else ""
    return f".{name}{rank_part}{LOCK_SUFFIX}"


def dataset_name(text: str) -> str:
    """The dataset NAME in a manifest path, a shard path or a shard pattern: `data/leaves-0*.tar`,
    `leaves-{000000..000009}.tar`, `leaves-000003.tar`, `data/leaves` and `leaves-manifest.json` -> leaves."""
    stem = Path(str(text)).name
    if stem.endswith(MANIFEST_SUFFIX):
        return stem[: -len(MANIFEST_SUFFIX)]
    stem = stem.removesuffix(".tar")
    tail = _SHARD_TAIL.search(stem)
    if tail and (re.search(r"[*?{\[]", tail.group()) or len(tail.group()) == SHARD_DIGITS + 1):
        stem = stem[: tail.start()]  # a pattern, or one shard; `data/set-2` names the dataset set-2
    return stem.rstrip("*?") or stem


def manifest_beside(text: str | os.PathLike) -> Path:
    """Where the manifest of a dataset lies, from a manifest path, `DIR/NAME`, a shard path or a pattern."""
    return Path(str(text)).parent / f"{dataset_name(str(text))}{MANIFEST_SUFFIX}"


def read_json(path: Path) -> dict | None:
    """A JSON file, or None where it is missing or unreadable (callers that must fail say so themselves)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def manifests_in(folder: str | os.PathLike, load: Callable[[Path], dict | None] = read_json) -> dict[str, dict]:
    """Every final manifest in a folder by dataset name (per-rank manifests are left out); `load` may
    raise on a broken file where the caller wants that."""
    folder, out = Path(folder), {}
    for path in sorted(folder.glob(f"*{MANIFEST_SUFFIX}")) if folder.is_dir() else []:
        meta = load(path)
        if isinstance(meta, dict):
            out[meta.get("name") or dataset_name(path.name)] = meta
    return out


def shard_counts(folder: str | os.PathLike) -> dict[Path, int]:
    """Samples per shard as the folder's manifests record them."""
    counts = {}
    for meta in manifests_in(folder).values():
        shards = meta.get("shards")
        if isinstance(shards, dict):
            counts.update({Path(folder) / k: int(v) for k, v in shards.items()})
    return counts


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> None:
    """`write(tmp)` to a hidden temporary name in the same folder, then rename: a reader (or a resumed run)
    never sees half a file, and a kill leaves the previous file or none."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def temp_path(path: Path) -> Path:
    """The temporary name of `path` while it is written (`.NAME.tmpPID`, which no reader matches)."""
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def readable_name(name: str | os.PathLike) -> str:
    """A file name as text every reader takes (docs/FORMAT.md): bytes that are not UTF-8, which Python
    holds as lone surrogates that no UTF-8 encoder accepts, become `\\xNN` escapes; other names are unchanged."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def write_json(path: str | os.PathLike, obj, **dump) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, **dump) + "\n"))


class ImageTooLarge(ValueError):
    """An image whose declared size is past the decoding limit (skipped and counted like an undecodable one)."""


def max_image_side(input_side: int = 0) -> int:
    """The largest image side decoded for a model input (or dataset) of `input_side` pixels a side."""
    text = os.environ.get(MAX_SIDE_ENV, "").strip()
    if not text:
        return max(MAX_SIDE_FLOOR, MAX_SIDE_FACTOR * int(input_side))
    if not text.isdigit() or int(text) < 1:
        from kdgen.errors import UserError

        raise UserError(f"{MAX_SIDE_ENV}={text!r} is not a positive number of pixels; set it to e.g. 8192 or unset it")
    return int(text)


def open_image(source, max_side: int | None = None):
    """A Pillow image opened (its header read, no pixel decoded) and checked against the decoding limit;
    use it as `with open_image(...) as im:`. Pillow's decompression-bomb warning gives way to this check
    (its hard error, far past it, is reported as ImageTooLarge too)."""
    from PIL import Image

    limit = max_image_side() if max_side is None else max_side
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(source)
        except Image.DecompressionBombError as e:
            raise ImageTooLarge(f"{e}; not decoded") from None
    w, h = im.size
    if max(w, h) > limit:
        im.close()
        raise ImageTooLarge(f"image is {w}x{h}, past the limit of {limit} pixels a side; not decoded "
                            f"(set {MAX_SIDE_ENV} to raise it)")
    return im


def decode_image(data: bytes, max_side: int | None = None) -> np.ndarray:
    """PNG/JPEG/WebP/... bytes -> uint8 HxW (grey) or HxWx3 with Pillow, which runs no code from the file;
    alpha is dropped, other modes become grey or RGB. Raises ImageTooLarge past `max_side` (default:
    `max_image_side()`), before decoding."""
    with open_image(io.BytesIO(data), max_side) as im:
        if im.mode not in ("L", "RGB"):
            im = im.convert("L" if im.mode in ("1", "LA", "I", "I;16", "F") else "RGB")
        return np.array(im)


def decode_sample(raw: dict, with_meta: bool = True, max_side: int | None = None) -> dict:
    """A raw WebDataset sample (bytes per field) -> key, url, image (uint8 array), meta, label (-1: none).
    Never unpickles anything; raises ValueError on a sample without an image or one past `max_side`."""
    ext = next((e for e in IMAGE_EXTS if e in raw), None)
    if ext is None:
        raise ValueError(f"sample {raw.get('__key__')} has no image ({'/'.join(IMAGE_EXTS)}) field")
    out = {"key": raw["__key__"], "url": raw.get("__url__", ""), "image": decode_image(raw[ext], max_side)}
    if with_meta:
        out["meta"] = json.loads(raw["json"]) if "json" in raw else {}
    out["label"] = int(raw["cls"].decode().strip()) if "cls" in raw else -1
    return out


def count_members(path: str | os.PathLike) -> int:
    """Samples in a shard (distinct keys), from its tar headers only."""
    with tarfile.open(path) as tar:
        return len({m.name.split(".", 1)[0] for m in tar.getmembers() if m.isfile()})


def iter_raw(path: str | os.PathLike):
    """Raw samples of one shard in order ({"__key__", "__url__", field: bytes}), grouped by key as
    webdataset groups them (the key ends at the first dot), read with the standard tarfile module."""
    sample: dict = {}
    with tarfile.open(path) as tar:
        for member in tar:
            if not member.isfile():
                continue
            key, _, field = member.name.partition(".")
            if sample and key != sample["__key__"]:
                yield sample
                sample = {}
            sample.setdefault("__key__", key)
            sample["__url__"] = str(path)
            sample[field.lower()] = tar.extractfile(member).read()
    if sample:
        yield sample
