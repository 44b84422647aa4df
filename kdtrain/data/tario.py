"""Fast reading of tar shards: members of an uncompressed local tar as webdataset's file dicts.

webdataset reads tars through Python's tarfile, which parses each 512-byte header field by field:
measured here at 7k samples/s against 80k for this reader, it was half the loader's cost. This
module covers what shards contain (ustar/v7 headers, GNU long names, PAX records); anything it
does not take (compressed tars, URLs) raises NotPlain and the caller uses webdataset's reader.
"""

from __future__ import annotations

import mmap
import os
import tarfile
from collections.abc import Callable, Iterator

Report = Callable[[str, Exception], bool]  # (kind, error) -> continue?


class NotPlain(Exception):
    """Not a plain local tar: use webdataset's reader."""


def tar_members(url: str, report: Report, fields: tuple[str, ...] | None = None) -> Iterator[dict]:
    """File dicts {fname, data, __url__} of the tar's regular members (data b"" for fields not in `fields`),
    then webdataset's end-of-shard marker {}; problems go to `report`, and a corrupt or truncated tar ends early."""
    try:
        f = open(url, "rb")
    except OSError as e:
        raise NotPlain() from e
    with f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            report("shard_errors", tarfile.ReadError(f"{url} is empty"))
            return iter(())
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    if buf[:2] == b"\x1f\x8b" or buf[:3] == b"BZh" or buf[:6] == b"\xfd7zXZ\x00":
        buf.close()
        raise NotPlain()
    return _walk(buf, url, report, fields)


def _walk(buf: mmap.mmap, url: str, report: Report, fields) -> Iterator[dict]:
    pos, n, long_name, pax = 0, len(buf), None, {}
    try:
        if n % 512:
            report("shard_errors", tarfile.ReadError(f"{url} is truncated"))
        while pos + 512 <= n:
            h = buf[pos:pos + 512]
            if h.count(0) == 512:  # end-of-archive block
                break
            if sum(h[:148]) + 256 + sum(h[156:]) != int(h[148:156].split(b"\0", 1)[0].strip() or b"0", 8):
                report("shard_errors", tarfile.ReadError(f"bad tar header checksum at {pos} in {url}"))
                break
            length = int(pax.get("size") or h[124:136].split(b"\0", 1)[0].strip() or b"0", 8 if "size" not in pax
                         else 10)
            kind = h[156:157]
            pos += 512
            if pos + length > n:
                report("shard_errors", tarfile.ReadError(f"{url} is truncated"))
                break
            if kind in (b"x", b"L"):  # PAX extended header / GNU long name: they describe the next member
                data = buf[pos:pos + length]
                if kind == b"L":
                    long_name = data.split(b"\0", 1)[0].decode("utf-8", "replace")
                else:
                    pax = _pax_records(data)
                pos += (length + 511) // 512 * 512
                continue
            name = pax.get("path") or long_name or _ustar_name(h)
            long_name, pax = None, {}
            if kind in (b"0", b"\0") and not name.startswith("__") and "/__" not in name:
                # a field not asked for is left unread (b""), yet its sample still shows up: a sample
                # without an image is then skipped and counted, not silently lost
                wanted = fields is None or name.rsplit(".", 1)[-1].lower() in fields
                yield {"fname": name, "data": buf[pos:pos + length] if wanted else b"", "__url__": url}
            pos += (length + 511) // 512 * 512
        yield {}  # webdataset's end-of-shard marker: the last sample is complete
    except ValueError as e:  # unparsable numbers in a header
        report("shard_errors", tarfile.ReadError(f"corrupt tar header in {url}: {e}"))
    finally:
        buf.close()


def _ustar_name(h: bytes) -> str:
    name = h[:100].split(b"\0", 1)[0]
    if h[257:262] == b"ustar":
        prefix = h[345:500].split(b"\0", 1)[0]
        name = prefix + b"/" + name if prefix else name
    return name.decode("utf-8", "replace")


def _pax_records(data: bytes) -> dict:
    """PAX records `"<len> key=value\n"` (only path and size matter here)."""
    out, i = {}, 0
    while i < len(data) and data[i:i + 1].isdigit():
        sp = data.index(b" ", i)
        rec_len = int(data[i:sp])
        key, _, value = data[sp + 1:i + rec_len - 1].partition(b"=")
        out[key.decode()] = value.decode("utf-8", "replace")
        i += rec_len
    return out
