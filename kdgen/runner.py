"""Run a generator into shards: plan, resume, render in worker processes, write, summarise."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from kdgen import manifest
from kdgen.contract import MAX_PIXELS, MAX_SAMPLES, MAX_SHARDS, PIXELS_PER_TASK
from kdgen.errors import UserError
from kdgen.registry import get_generator
from kdgen.seeding import sample_seed
from kdgen.shardset import ShardSet
from kdgen.writer import check_format, encode_images, pack_sample, sample_fields

log = logging.getLogger(__name__)


@dataclass
class RunConfig:
    generator: str  # registry name
    n: int  # total samples in the dataset (all ranks together)
    size: tuple[int, int] = (32, 32)  # (width, height)
    params: dict = field(default_factory=dict)  # generator-specific options
    out: Path = Path("data")  # output folder
    name: str | None = None  # dataset name / shard prefix (default: the generator's name)
    seed: int = 0  # dataset seed; sample i's randomness is SeedSequence([seed, i])
    shard_size: int = 1000  # samples per shard
    fmt: str = "png"  # png | jpg | webp
    quality: int = 95  # jpg/webp quality
    workers: int = 1  # rendering processes (spawned)
    rank: int = 0  # this machine's rank ...
    world_size: int = 1  # ... among this many; rank r writes shards s with s % world_size == r
    overwrite: bool = False  # replace an existing dataset of this name
    command: str | None = None  # the command line, recorded in the manifest
    progress: bool = True  # show a progress bar
    class_names: list[str] | None = None  # label names, for labelled sources (imported images)


def validate(cfg: RunConfig) -> str:
    """Check the run's settings; returns the file extension. Raises UserError naming the fix."""
    if cfg.n <= 0:
        raise UserError(f"--n must be a positive number of samples, got {cfg.n}")
    if cfg.n > MAX_SAMPLES:
        raise UserError(f"--n {cfg.n} is more than a dataset holds ({MAX_SAMPLES:,} samples, 9-digit keys); "
                         f"split it into several datasets with --name and --seed")
    if min(cfg.size) <= 0:
        raise UserError(f"--size must be positive (e.g. 32 or 64x48), got {cfg.size[0]}x{cfg.size[1]}")
    if cfg.size[0] * cfg.size[1] > MAX_PIXELS:
        raise UserError(f"--size {cfg.size[0]}x{cfg.size[1]} is too large: at most {MAX_PIXELS:,} pixels per "
                         f"image (e.g. 4096x4096); choose a smaller --size")
    if cfg.shard_size <= 0:
        raise UserError(f"--shard-size must be positive, got {cfg.shard_size}")
    if -(-cfg.n // cfg.shard_size) > MAX_SHARDS:
        raise UserError(f"--n {cfg.n} in shards of {cfg.shard_size} makes more than {MAX_SHARDS:,} shards "
                         f"(6-digit shard numbers); raise --shard-size")
    if cfg.seed < 0:
        raise UserError(f"--seed must be a non-negative integer, got {cfg.seed}")
    if cfg.workers <= 0:
        raise UserError(f"--workers must be at least 1, got {cfg.workers}")
    if cfg.world_size <= 0 or not 0 <= cfg.rank < cfg.world_size:
        raise UserError(f"--rank must be in 0..world_size-1, got rank {cfg.rank} of world size {cfg.world_size}")
    if "." in (cfg.name or "") or "/" in (cfg.name or ""):
        raise UserError(f"--name {cfg.name!r} may not contain '.' or '/'; use letters, digits, '-' or '_'")
    return check_format(cfg.fmt)


def plan(n: int, shard_size: int, rank: int = 0, world_size: int = 1):
    """(shard, first index, count) for each shard of an n-sample dataset that this rank writes, lazily
    (a plan of a billion samples is never held in memory)."""
    for s in range(rank, -(-n // shard_size), world_size):
        yield s, s * shard_size, min(shard_size, n - s * shard_size)


# ---- worker side -----------------------------------------------------------------------------

_worker: dict = {}


def _init_worker(name, size, params, ext, quality, seed) -> None:
    gen = get_generator(name)(size, **params)
    gen.open()
    _worker.update(gen=gen, ext=ext, quality=quality, seed=seed)


def _render_chunk(task: tuple[int, int]) -> tuple[list[bytes], Counter]:
    """Render, encode and pack (as tar members) one chunk of samples."""
    start, count = task
    gen, seed = _worker["gen"], _worker["seed"]
    indices = range(start, start + count)
    images = gen.render([sample_seed(seed, i) for i in indices])
    for img, _ in images:
        if img.shape[:2] != (gen.height, gen.width):
            raise ValueError(f"generator {gen.name} returned {img.shape}, expected {gen.height}x{gen.width}")
    encoded = _encode([img for img, _ in images], _worker["ext"], _worker["quality"], gen.png_level)
    samples = []
    for i, (_, params), data in zip(indices, images, encoded):
        cls = params.pop("cls", None)  # a label, where the source has one, goes into <key>.cls
        meta = {"generator": gen.name, "index": i, "seed": seed, "params": params}
        samples.append(pack_sample(sample_fields(i, data, meta, _worker["ext"], cls)))
    return samples, gen.take_counters()


def _encode(images: list[np.ndarray], ext: str, quality: int, png_level: int) -> list[bytes]:
    """Encode a chunk's images, as one batch where they share a shape (grey and colour may mix)."""
    if len({img.shape for img in images}) == 1:
        return encode_images(np.stack(images), ext, quality, png_level)
    return [encode_images(img[None], ext, quality, png_level)[0] for img in images]


def _close_worker() -> None:
    if "gen" in _worker:
        _worker.pop("gen").close()


# ---- parent side -----------------------------------------------------------------------------


@contextmanager
def _worker_threads(workers: int):
    """Environment for spawning workers without oversubscribing the cores: llvmpipe renders with a
    thread per core by default, and numpy's OpenBLAS starts one per core for any matrix product big
    enough (measured: noise at 64 px with 2 workers ran at half the speed of one process)."""
    wanted = {"LP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // workers)), "OPENBLAS_NUM_THREADS": "1"}
    saved = {key: os.environ.get(key) for key in wanted}
    for key, value in wanted.items():
        os.environ.setdefault(key, value)  # a user's own setting wins
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)


def generate(cfg: RunConfig) -> dict:
    """Make (or complete) a dataset; returns the run summary. A failed first run leaves no folder it made
    empty behind, and the complete shards of any run are kept for the next one."""
    ext = validate(cfg)
    gen_cls = get_generator(cfg.generator)
    try:
        gen = gen_cls(cfg.size, **cfg.params)
    except ValueError as err:
        raise UserError(str(err)) from None
    meta = manifest.new_manifest(name=cfg.name or gen_cls.name, generator=gen_cls.name, params=gen.describe(),
                                 seed=cfg.seed, size=cfg.size, fmt=ext, quality=cfg.quality,
                                 shard_size=cfg.shard_size, class_names=cfg.class_names, command=cfg.command,
                                 generator_version=gen_cls.version)
    meta["seconds"] = 0.0  # generation wall time, summed over resumed runs
    with ShardSet(cfg.out, meta, overwrite=cfg.overwrite, rank=cfg.rank, world_size=cfg.world_size) as shards:
        def mine():  # (shard, samples) this rank writes, lazily
            return ((s, count) for s, _, count in plan(cfg.n, cfg.shard_size, cfg.rank, cfg.world_size))

        done = shards.resume(mine, total=cfg.n)
        t0 = time.perf_counter()
        counters = _render_into(shards, cfg, gen_cls, ext, done)
        seconds = time.perf_counter() - t0
        shards.finish(seconds, counters)
        return shards.summary(seconds, counters)


def _tasks(cfg: RunConfig, gen_cls, done: dict[int, int]):
    """(shard, first index, count) per render call for the shards still to write, lazily and in order."""
    chunk = max(1, min(gen_cls.batch, cfg.shard_size, PIXELS_PER_TASK // (cfg.size[0] * cfg.size[1])))
    for shard, start, count in plan(cfg.n, cfg.shard_size, cfg.rank, cfg.world_size):
        if shard not in done:
            yield from ((shard, start + o, min(chunk, count - o)) for o in range(0, count, chunk))


def _render_into(shards: ShardSet, cfg: RunConfig, gen_cls, ext: str, done: dict[int, int]) -> Counter:
    """Render the shards not yet done into `shards`; returns the generator's counters."""
    counters: Counter = Counter()
    total = sum(count for _, _, count in plan(cfg.n, cfg.shard_size, cfg.rank, cfg.world_size)) - sum(done.values())
    init_args = (gen_cls.name, cfg.size, cfg.params, ext, cfg.quality, cfg.seed)
    with tqdm(total=total, unit="img", desc=shards.name, disable=not cfg.progress or total == 0,
              smoothing=0.1) as bar, _rendered(init_args, _tasks(cfg, gen_cls, done), cfg.workers if total else 1) \
            as results:
        for (shard, _, _), (samples, chunk_counters) in zip(_tasks(cfg, gen_cls, done), results):
            count = min(cfg.shard_size, cfg.n - shard * cfg.shard_size)
            for sample in samples:
                shards.add(shard, sample, count)
            counters.update(chunk_counters)
            bar.update(len(samples))
    return counters


@contextmanager
def _rendered(init_args: tuple, tasks, workers: int):
    """The rendered chunks of `tasks` in order: from a pool of spawned workers, or in this process."""
    if workers == 1:
        _init_worker(*init_args)
        try:
            yield (_render_chunk((start, count)) for _, start, count in tasks)
        finally:
            _close_worker()
        return
    # the pool's feeder takes tasks only as results are used: a long plan never queues up in memory
    slots, stopping = threading.Semaphore(4 * workers), threading.Event()

    def fed():
        for _, start, count in tasks:
            slots.acquire()
            if stopping.is_set():
                return
            yield start, count

    def results():
        for result in pool.imap(_render_chunk, fed()):
            slots.release()
            yield result

    with _worker_threads(workers):
        pool = mp.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=init_args)
    try:
        yield results()
    finally:
        stopping.set()
        slots.release()  # a feeder waiting for a slot sees `stopping` and ends
        pool.terminate()
        pool.join()
