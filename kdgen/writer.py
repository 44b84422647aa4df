"""Shard writing: encode samples, write tar shards atomically (temporary name, then rename)."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from kdgen.contract import shard_name, temp_path
from kdgen.errors import UserError

# Pillow format name and file extension for each --format.
FORMATS = {"png": ("PNG", "png"), "jpg": ("JPEG", "jpg"), "jpeg": ("JPEG", "jpg"), "webp": ("WEBP", "webp")}
TAR_MTIME = 0  # integer mtime: reproducible shards and no per-member PAX header
TAR_OWNER = "kdgen"
TAR_MODE = 0o444
PNG_COMPRESS_LEVEL = 6  # zlib level; fixed so that bytes are reproducible


def check_format(fmt: str) -> str:
    """Return the canonical extension for --format, or raise a one-line error."""
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r} is not supported; use one of png, jpg, webp")
    pil_name, ext = FORMATS[fmt]
    try:  # Pillow may be built without a codec (webp most often)
        Image.new("RGB", (2, 2)).save(io.BytesIO(), format=pil_name)
    except (KeyError, OSError) as err:
        raise UserError(f"--format {fmt}: this Pillow cannot write it ({err}); use --format png") from None
    return ext


def encode_image(img: np.ndarray, ext: str, quality: int = 95) -> bytes:
    """Encode a uint8 HxW or HxWx3 array as PNG/JPEG/WebP bytes."""
    if img.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {img.dtype}")
    pil = Image.fromarray(img, mode="L" if img.ndim == 2 else "RGB")
    buf = io.BytesIO()
    if ext == "png":
        pil.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    elif ext == "jpg":
        pil.save(buf, format="JPEG", quality=quality)
    else:
        pil.save(buf, format="WEBP", quality=quality, method=4)
    return buf.getvalue()


def to_jsonable(obj):
    """Numpy scalars and arrays into plain Python values, so metadata is JSON."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def dump_json(obj) -> bytes:
    try:  # plain metadata (the common case) needs no conversion pass
        text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    except TypeError:
        text = json.dumps(to_jsonable(obj), sort_keys=True, separators=(",", ":"))
    return text.encode()


def sample_key(index: int) -> str:
    return f"{index:09d}"


def encode_sample(index: int, img: np.ndarray, meta: dict, ext: str, quality: int, cls: int | None = None) -> dict:
    """One sample as the dict of bytes a TarWriter takes."""
    sample = {"__key__": sample_key(index), ext: encode_image(img, ext, quality), "json": dump_json(meta)}
    if cls is not None:
        sample["cls"] = str(int(cls)).encode()
    return sample


def pack_sample(sample: dict) -> bytes:
    """A sample's tar members (header, data, padding), in key order, as the bytes a shard holds.

    The same bytes webdataset's TarWriter writes for this sample (tested), made with the standard
    tarfile module's headers; packing in the rendering workers keeps the writing process light.
    """
    key, parts = sample["__key__"], []
    for ext in sorted(k for k in sample if k != "__key__"):
        data = sample[ext]
        info = tarfile.TarInfo(f"{key}.{ext}")
        info.size, info.mtime, info.mode = len(data), TAR_MTIME, TAR_MODE
        info.uname = info.gname = TAR_OWNER
        parts += [info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape"), data]
        if len(data) % tarfile.BLOCKSIZE:
            parts.append(tarfile.NUL * (tarfile.BLOCKSIZE - len(data) % tarfile.BLOCKSIZE))
    return b"".join(parts)


class ShardFile:
    """A tar shard written under a hidden temporary name and renamed into place when complete."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.tmp = temp_path(self.path)  # streamed, then renamed in commit()
        self.stream = open(self.tmp, "wb")
        self.count = 0

    def write(self, sample: dict) -> None:
        self.write_packed(pack_sample(sample))

    def write_packed(self, members: bytes) -> None:
        """Append one sample already packed by pack_sample."""
        self.stream.write(members)
        self.count += 1

    def commit(self) -> int:
        """Finish the tar (end-of-archive blocks, padded to whole records, as tarfile does) and
        rename it to its final name; returns its size in bytes."""
        end = 2 * tarfile.BLOCKSIZE
        end += -(self.stream.tell() + end) % tarfile.RECORDSIZE
        self.stream.write(tarfile.NUL * end)
        self.stream.close()
        os.replace(self.tmp, self.path)
        return self.path.stat().st_size

    def abort(self) -> None:
        try:
            self.stream.close()
        except OSError:  # already failing (a full disk); the temporary file goes anyway
            pass
        self.tmp.unlink(missing_ok=True)


class DatasetWriter:
    """Write samples from any source (attack, curation, import) as a kdgen dataset.

    Keys are assigned in order from `start`; shards of `shard_size` samples; the manifest is updated
    as each shard completes (marked complete, with _info.json, when the writer closes cleanly).
    With resume, a run of the same settings that was killed keeps its complete shards: the source
    replays its samples in the same order, and those already in complete shards are counted, not
    written again, so the result has the bytes of a run never interrupted.
    """

    def __init__(self, out_dir, name: str, generator: str, params: dict, size, seed: int = 0,
                 shard_size: int = 1000, fmt: str = "png", quality: int = 95, class_names=None,
                 overwrite: bool = False, command: str | None = None, resume: bool = False):
        from kdgen import manifest

        self.out = Path(out_dir)
        self.name, self.shard_size, self.quality = name, shard_size, quality
        self.ext = check_format(fmt)
        self.created = manifest.prepare_output(self.out, name, overwrite)
        self.meta = manifest.new_manifest(name=name, generator=generator, params=params, seed=seed,
                                          size=size, fmt=self.ext, quality=quality, shard_size=shard_size,
                                          class_names=class_names, command=command)
        self.index = 0
        self.current: ShardFile | None = None
        self.resumed = self._resume() if resume else 0  # samples already in complete shards

    def _resume(self) -> int:
        from kdgen import manifest

        old = manifest.load(manifest.manifest_path(self.out, self.name))
        files = manifest.dataset_files(self.out, self.name)
        if old is None:
            if any(f.suffix == ".tar" for f in files):
                raise UserError(f"{self.out} holds {self.name}-*.tar shards but no manifest; pass --overwrite "
                                 f"or choose another name")
            return 0
        if old.get("complete", True):  # manifests written before per-shard updates carry no flag
            raise UserError(f"dataset {self.out / self.name} already exists; pass --overwrite to replace it")
        bad = manifest.conflicts(old, self.meta)
        if bad:
            raise UserError(f"dataset {self.out / self.name} was begun with other settings ({', '.join(bad)}); "
                             f"rerun the same command to resume it, or pass --overwrite")
        shard = 0
        while True:  # the complete shards form a prefix: they are written in order
            path = self.out / shard_name(self.name, shard)
            count = old["shards"].get(path.name)
            if count is None and path.exists():  # killed between the rename and the manifest update
                count = manifest.count_members(path)
            if count != self.shard_size or not path.exists():
                break
            manifest.record_shard(self.meta, path.name, count)
            shard += 1
        for f in files:  # partial or later shards and temporary files of the killed run are redone
            if f.suffix != ".json" and f.name not in self.meta["shards"]:
                f.unlink()
        return shard * self.shard_size

    def add(self, img: np.ndarray, meta: dict, cls: int | None = None) -> str:
        key = sample_key(self.index)
        if self.index < self.resumed:  # already in a complete shard of the interrupted run
            self.index += 1
            return key
        if self.current is None:
            shard = self.index // self.shard_size
            self.current = ShardFile(self.out / shard_name(self.name, shard))
        self.current.write(encode_sample(self.index, img, meta, self.ext, self.quality, cls))
        self.index += 1
        if self.current.count == self.shard_size:
            self._finish_shard()
        return key

    def _finish_shard(self) -> None:
        from kdgen import manifest

        count = self.current.count
        self.current.commit()
        manifest.record_shard(self.meta, self.current.path.name, count)
        self.current = None
        self.meta["complete"] = False  # until close: a killed run resumes from here
        manifest.write_json_atomic(manifest.manifest_path(self.out, self.name), self.meta)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        from kdgen import manifest

        if exc_type is not None:
            if self.current is not None:
                self.current.abort()
            if not self.meta["shards"]:
                manifest.remove_empty_dirs(self.created)
            return False
        if self.index < self.resumed:
            raise UserError(f"the sources now give {self.index} samples, fewer than the {self.resumed} already "
                             f"written to {self.out / self.name}; pass --overwrite to start again")
        if self.current is not None:
            self._finish_shard()
        self.meta["complete"] = True
        manifest.finish(self.out, self.meta)
        return False
