"""The bytes of a shard: encode samples, pack them as tar members, write a shard atomically (temporary name,
then rename). Datasets of many shards are kdgen.shardset's job."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from kdgen.contract import sample_key, temp_path
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
