"""Reading shards: patterns -> files, tar members -> samples (webdataset's grouping), decoding with
Pillow and json only (never pickle), sample counts, and the ordered batches of `iterate_shards`.

Corrupt or truncated shards and undecodable samples are skipped with a warning and counted.
"""

from __future__ import annotations

import glob
import itertools
import sys
import tarfile
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import torch
import webdataset as wds
from braceexpand import braceexpand
from webdataset.tariterators import group_by_keys

from kdgen import contract
from kdgen.contract import IMAGE_EXTS
from kdtrain.data.spec import InputSpec, adapt
from kdtrain.data.tario import NotPlain, tar_members
from kdtrain.errors import UserError

TRAIN_FIELDS = (*IMAGE_EXTS, "cls")  # training reads no .json: skipping it makes tar reading ~10% faster
MAX_WARNINGS = 20  # shards warned about per process; later problems are only counted

def expand_patterns(patterns: list[str]) -> list[str]:
    """Brace-expand and glob each pattern (sorted); a pattern that matches nothing is an error, and so is
    a match that is not a regular file (a FIFO or a device would block or never end)."""
    urls = []
    for pattern in patterns:
        found = []
        for p in braceexpand(pattern):
            found += sorted(glob.glob(p)) if glob.has_magic(p) else ([p] if Path(p).exists() else [])
        if not found:
            raise UserError(f"shard pattern {pattern!r} matches no files")
        odd = [f for f in found if not Path(f).is_file()]
        if odd:
            raise UserError(f"shard pattern {pattern!r} matches {odd[0]}, which is not a regular file; "
                          f"give a pattern that matches shard files only")
        urls += found
    return urls


def decode_limit(spec: InputSpec | None) -> int:
    """The largest image side decoded for this model input (docs/FORMAT.md): larger ones are skipped unread."""
    return contract.max_image_side(max(spec.height, spec.width) if spec is not None else 0)


def check_label(sample: dict, num_classes: int | None, problems: Problems, url: str) -> None:
    """A `.cls` past the model's classes is no label (-1), counted and warned like a bad sample: it
    would otherwise count as a wrong prediction, or break the cross-entropy."""
    if num_classes is not None and sample["label"] >= num_classes:
        problems.report("bad_labels", ValueError(f"sample {sample['key']} has .cls {sample['label']}, but the "
                                                 f"model has {num_classes} classes (0..{num_classes - 1})"), url)
        sample["label"] = -1


def decode_image(data: bytes, max_side: int | None = None) -> torch.Tensor:
    """PNG/JPEG/WebP bytes -> uint8 C,H,W (1 or 3 channels, alpha dropped) at the stored size, with Pillow
    (which runs no code from the file). Resizing and colour conversion happen later, once per batch."""
    t = torch.from_numpy(contract.decode_image(data, max_side))
    return t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1).contiguous()


def adapt_uint8(images: list[torch.Tensor], spec: InputSpec) -> torch.Tensor:
    """uint8 C,H,W images of any size/channels -> one uint8 N,C,H,W batch at the spec, converted per group
    of equal shape (usually the whole batch) with the same resize/colour maths as Teacher.adapt."""
    target = (spec.channels, spec.height, spec.width)
    if not images:
        return torch.zeros(0, *target, dtype=torch.uint8)
    if all(tuple(i.shape) == target for i in images):
        return torch.stack(images)
    out = torch.empty(len(images), *target, dtype=torch.uint8)
    groups: dict[tuple, list[int]] = {}
    for n, img in enumerate(images):
        groups.setdefault(tuple(img.shape), []).append(n)
    for shape, idx in groups.items():
        x = torch.stack([images[i] for i in idx])
        if shape != target:
            x = adapt(x.float().div_(255), spec).mul_(255).round_().to(torch.uint8)
        out[idx] = x
    return out


def decode_sample(raw: dict, with_meta: bool = True, max_side: int | None = None) -> dict:
    """A raw WebDataset sample (bytes per extension) -> key, url, image (stored size), meta, label.
    Raises on a sample without an image, with an undecodable one or one larger than `max_side`."""
    out = contract.decode_sample(raw, with_meta, max_side)
    t = torch.from_numpy(out["image"])
    out["image"] = t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1).contiguous()
    return out


class Problems:
    """Counts unreadable shards and undecodable samples, and says so in one line per shard (on stderr,
    the first time that shard has problems in this process); the totals go into the run's summary."""

    def __init__(self):
        self.counts: Counter = Counter()
        self.url = ""  # the shard being read, for problems reported without one
        self.pending: dict[str, Counter] = {}  # url -> problems since the last flush
        self.reasons: dict[str, str] = {}  # url -> the first problem's text
        self.warned: set[str] = set()

    def report(self, kind: str, exn: Exception, url: str | None = None) -> bool:
        url = url or self.url
        self.counts[kind] += 1
        self.pending.setdefault(url, Counter())[kind] += 1
        self.reasons.setdefault(url, f"{type(exn).__name__}: {str(exn).splitlines()[0] if str(exn) else ''}"[:160])
        return True  # webdataset handler protocol: True = continue

    def shard_handler(self, exn: Exception) -> bool:
        return self.report("shard_errors", exn)

    def flush(self) -> None:
        """One line per shard with new problems; a shard read again later is only counted."""
        for url, c in self.pending.items():
            if url in self.warned or len(self.warned) >= MAX_WARNINGS:
                continue
            self.warned.add(url)
            what = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in sorted(c.items()))
            print(f"warning: {url or 'shards'}: skipped {what} (first: {self.reasons.get(url)})", file=sys.stderr)
        self.pending.clear()

    def take(self) -> dict:
        self.flush()
        out, self.counts = dict(self.counts), Counter()
        return out


def read_shard(url: str, problems: Problems, fields: tuple[str, ...] | None = None) -> Iterator[dict]:
    """Raw samples of one tar, grouped by key with webdataset's `group_by_keys`; a truncated or corrupt
    tar ends early and is counted. `fields`: extensions to keep (None: all)."""
    problems.url = url
    try:
        members = tar_members(url, problems.report, fields)
    except NotPlain:  # compressed, or not a local file: webdataset's own reader
        select = None if fields is None else (lambda name: name.rsplit(".", 1)[-1].lower() in fields)
        return wds.tarfile_samples(iter([{"url": url}]), handler=problems.shard_handler, select_files=select)
    return group_by_keys(members, handler=problems.shard_handler)



def iterate_raw(urls: list[str], spec: InputSpec | None = None, need_label: bool = False,
                problems: Problems | None = None, max_side: int | None = None,
                num_classes: int | None = None) -> Iterator[dict]:
    """Decoded samples of the shards, in order (images adapted to `spec` if given); bad samples (and
    images past `max_side`, default from `spec`) skipped, labels past `num_classes` dropped (counted and warned)."""
    problems = problems or Problems()
    max_side = max_side or decode_limit(spec)
    for url in urls:
        for raw in read_shard(url, problems):
            try:
                s = decode_sample(raw, max_side=max_side)
                if spec is not None:
                    s["image"] = adapt_uint8([s["image"]], spec)[0]
            except Exception as e:  # noqa: BLE001 - any undecodable sample is skipped, training goes on
                problems.report("bad_samples", e, url)
                continue
            check_label(s, num_classes, problems, url)
            if need_label and s["label"] < 0:
                continue
            yield s
        problems.flush()  # one line for this shard, with all of its problems


def iterate_shards(patterns: list[str], spec: InputSpec, batch_size: int, limit: int | None = None,
                   problems: Problems | None = None, num_classes: int | None = None):
    """Batches of shard samples in shard order (no shuffle, no resampling): keys, float images N,C,H,W in
    [0,1] adapted to `spec`, meta, labels (LongTensor, -1 where missing or past `num_classes`; None if no
    sample has one), urls."""
    samples = iterate_raw(expand_patterns(patterns), problems=problems, max_side=decode_limit(spec),
                          num_classes=num_classes)
    if limit is not None:
        samples = itertools.islice(samples, limit)
    while chunk := list(itertools.islice(samples, batch_size)):
        labels = torch.tensor([s["label"] for s in chunk])
        yield {"keys": [s["key"] for s in chunk],
               "images": adapt_uint8([s["image"] for s in chunk], spec).float().div_(255),
               "meta": [s["meta"] for s in chunk],
               "labels": labels if (labels >= 0).any() else None,
               "urls": [s["url"] for s in chunk]}



def count_samples(urls: list[str]) -> int:
    """Samples in the shards: from the kdgen manifest or _info.json beside them, else tar headers."""
    known: dict[str, int] = {}
    for folder in {str(Path(u).parent) for u in urls}:
        known.update({str(p): n for p, n in contract.shard_counts(folder).items()})
    total = 0
    for u in urls:
        if u not in known:
            try:
                known[u] = contract.count_members(u)
            except (tarfile.TarError, OSError, EOFError):
                known[u] = 0  # unreadable: the stream will skip and count it
        total += known[u]
    return total


def check_shards(urls: list[str], pattern: str) -> None:
    """Fail early (one-line error) when no readable sample of a set has an image field; samples without
    one among others are skipped and counted in training. Stops at the first image."""
    problems, first = Problems(), None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for url in urls:
            for raw in read_shard(url, problems, IMAGE_EXTS):
                if any(e in raw for e in IMAGE_EXTS):
                    return
                first = first or raw
    if first is not None:
        fields = ", ".join(k for k in first if not k.startswith("__")) or "none"
        raise UserError(f"shards {pattern!r} have no image field ({'/'.join(IMAGE_EXTS)}) in any sample; "
                      f"sample {first['__key__']} has: {fields}")
    raise UserError(f"no readable samples in the shards of {pattern!r}")
