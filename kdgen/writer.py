"""The bytes of a shard: encode samples, pack them as tar members, write a shard atomically (temporary name,
then rename). Datasets of many shards are kdgen.shardset's job."""

from __future__ import annotations

import io
import json
import os
import struct
import tarfile
import zlib
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
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_IDAT_BLOCK = 65536  # IDAT chunk size Pillow writes (ImageFile.MAXBLOCK); wider rows raise it


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


def encode_image(img: np.ndarray, ext: str, quality: int = 95, png_level: int = PNG_COMPRESS_LEVEL) -> bytes:
    """Encode a uint8 HxW or HxWx3 array as PNG/JPEG/WebP bytes."""
    if img.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {img.dtype}")
    if ext == "png":
        return encode_pngs(img[None], png_level)[0]
    pil = Image.fromarray(img, mode="L" if img.ndim == 2 else "RGB")
    buf = io.BytesIO()
    if ext == "jpg":
        pil.save(buf, format="JPEG", quality=quality)
    else:
        pil.save(buf, format="WEBP", quality=quality, method=4)
    return buf.getvalue()


def encode_images(images: np.ndarray, ext: str, quality: int = 95,
                  png_level: int = PNG_COMPRESS_LEVEL) -> list[bytes]:
    """Encode a batch of same-sized uint8 images (N x H x W or N x H x W x 3), each as encode_image would."""
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {images.dtype}")
    if ext == "png":
        return encode_pngs(images, png_level)
    return [encode_image(img, ext, quality) for img in images]


def png_filter(images: np.ndarray) -> np.ndarray:
    """PNG scanlines of a batch (N x H x W[x C] uint8), each row led by its filter type: N x H x (1 + W*C).

    The filter of each row is chosen as Pillow's encoder (libImaging/ZipEncode.c, without `optimize`) chooses
    it, over the whole batch at once: the least sum of |byte| (bytes read as signed) among None, Up, Sub and
    Paeth, ties to the earlier of that order."""
    n, h, w = images.shape[:3]
    bpp = 1 if images.ndim == 3 else images.shape[3]
    padded = np.zeros((n, h + 1, (w + 1) * bpp), np.uint8)  # a black row above, a black pixel to the left
    padded[:, 1:, bpp:] = images.reshape(n, h, w * bpp)
    x, up, left, corner = padded[:, 1:, bpp:], padded[:, :-1, bpp:], padded[:, 1:, :-bpp], padded[:, :-1, :-bpp]
    a, b, c = left.astype(np.int16), up.astype(np.int16), corner.astype(np.int16)
    pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, corner))
    candidates = (x, x - up, x - left, x - paeth)  # filter types 0, 2, 1, 4: Pillow's order of trying them
    sums = np.stack([np.minimum(d, np.negative(d)).sum(axis=2, dtype=np.int32) for d in candidates])
    choice = sums.argmin(axis=0)[..., None]  # the first of equal sums
    out = np.empty((n, h, 1 + w * bpp), np.uint8)
    out[..., :1] = np.array([0, 2, 1, 4], np.uint8)[choice]
    out[..., 1:] = np.where(choice == 0, x, np.where(choice == 1, candidates[1],
                                                    np.where(choice == 2, candidates[2], candidates[3])))
    return out


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(tag)))


def encode_pngs(images: np.ndarray, level: int = PNG_COMPRESS_LEVEL) -> list[bytes]:
    """PNG files of a batch of same-sized uint8 images (N x H x W grey or N x H x W x 3 RGB).

    At levels 1-9, byte for byte the files Pillow writes with that compress_level (tested): the same row
    filters (chosen for the whole batch in numpy), the same deflate settings (32 KiB window, memLevel 9,
    Z_FILTERED) through Python's zlib, the same chunks, without Pillow's per-image set-up (an Image, a codec,
    Python chunk writers). The bytes depend on Python's zlib, no longer on the one in Pillow's build.
    Level 0 stores the rows unfiltered (filters cannot shrink a stored stream): about 1.4x the bytes of
    level 6 on 32 px shader images, for a tenth of its time.
    """
    if not 0 <= level <= 9:
        raise ValueError(f"PNG compression levels are 0-9, got {level}")
    n, h, w = images.shape[:3]
    colour = 0 if images.ndim == 3 else 2
    if colour == 2 and images.shape[3] != 3:
        raise ValueError(f"PNG images must be grey or RGB, got {images.shape[3]} channels")
    head = PNG_SIGNATURE + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0))
    tail = _png_chunk(b"IEND", b"")
    block = max(PNG_IDAT_BLOCK, w * 4)
    if level == 0:
        rows = np.zeros((n, h, 1 + images[0].size // h), np.uint8)  # filter type 0 (None) on every row
        rows[..., 1:] = images.reshape(n, h, -1)
    else:
        rows = png_filter(images)
    out = []
    for raw in rows.reshape(n, -1):
        z = zlib.compressobj(level, zlib.DEFLATED, 15, 9, zlib.Z_FILTERED)
        data = z.compress(raw) + z.flush()
        idat = b"".join(_png_chunk(b"IDAT", data[i:i + block]) for i in range(0, len(data), block))
        out.append(head + idat + tail)
    return out


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
    return sample_fields(index, encode_image(img, ext, quality), meta, ext, cls)


def sample_fields(index: int, data: bytes, meta: dict, ext: str, cls: int | None = None) -> dict:
    """One sample, its image already encoded (encode_images), as the dict of bytes a TarWriter takes."""
    sample = {"__key__": sample_key(index), ext: data, "json": dump_json(meta)}
    if cls is not None:
        sample["cls"] = str(int(cls)).encode()
    return sample


def _tar_header(name: str, size: int) -> bytes:
    """The ustar header tarfile writes for a member of ours (TAR_MTIME, TAR_MODE, TAR_OWNER), made from a
    template: the name, size and checksum fields filled in (the same bytes, tested)."""
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) >= 100 or size >= 8 ** 11:  # tarfile's own rules (prefix split, base-256 sizes)
        return _tarfile_header(name, size)
    size_field = b"%011o\0" % size
    checksum = _TAR_TEMPLATE_SUM + sum(raw) + sum(size_field)  # the checksum field counts as eight spaces
    return b"".join((raw, _TAR_TEMPLATE[len(raw):124], size_field, _TAR_TEMPLATE[136:148],
                     b"%06o\0 " % checksum, _TAR_TEMPLATE[156:]))


def _tarfile_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, TAR_MTIME, TAR_MODE
    info.uname = info.gname = TAR_OWNER
    return info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")


_TAR_TEMPLATE = _tarfile_header("", 0)  # name and size fields zero, filled in by _tar_header
_TAR_TEMPLATE_SUM = sum(_TAR_TEMPLATE[:124]) + sum(_TAR_TEMPLATE[136:148]) + 8 * ord(" ") + sum(_TAR_TEMPLATE[156:])


def pack_sample(sample: dict) -> bytes:
    """A sample's tar members (header, data, padding), in key order, as the bytes a shard holds.

    The same bytes webdataset's TarWriter writes for this sample (tested), with the standard tarfile
    module's headers; packing in the rendering workers keeps the writing process light.
    """
    key, parts = sample["__key__"], []
    for ext in sorted(k for k in sample if k != "__key__"):
        data = sample[ext]
        parts += [_tar_header(f"{key}.{ext}", len(data)), data]
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
