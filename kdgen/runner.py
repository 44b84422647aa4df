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

from tqdm import tqdm

from kdgen import manifest
from kdgen.errors import UserError
from kdgen.registry import get_generator
from kdgen.seeding import sample_seed
from kdgen.writer import ShardFile, check_format, encode_sample, pack_sample, shard_name

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


# Limits of the shard contract: keys have 9 digits and shard numbers 6 (names sort and glob by width).
MAX_SAMPLES = 10**9
MAX_SHARDS = 10**6
MAX_PIXELS = 1 << 24  # per image (4096x4096): one image's working arrays stay well inside a worker's memory
PIXELS_PER_TASK = 1 << 24  # images rendered together are capped by this many pixels (bounds a worker's memory)


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
    samples = []
    for i, (img, params) in zip(indices, images):
        if img.shape[:2] != (gen.height, gen.width):
            raise ValueError(f"generator {gen.name} returned {img.shape}, expected {gen.height}x{gen.width}")
        cls = params.pop("cls", None)  # a label, where the source has one, goes into <key>.cls
        meta = {"generator": gen.name, "index": i, "seed": seed, "params": params}
        samples.append(pack_sample(encode_sample(i, img, meta, _worker["ext"], _worker["quality"], cls)))
    return samples, gen.take_counters()


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


def _existing_state(cfg: RunConfig, meta: dict, mine: list) -> tuple[dict[int, int], float]:
    """Shards already complete on disk for this plan (shard -> count), and the generation seconds spent
    on them so far. Refuses conflicting datasets."""
    out, name = Path(cfg.out), meta["name"]
    old = manifest.load(manifest.manifest_path(out, name, cfg.rank, cfg.world_size))
    if old is None and cfg.world_size > 1:
        old = manifest.load(manifest.manifest_path(out, name))
    if old is None:
        if any((out / shard_name(name, shard)).exists() for shard, _, _ in mine):
            raise UserError(f"{out} holds {name}-*.tar shards but no manifest; use --overwrite or another --name")
        return {}, 0.0
    if old.get("generator_version") != meta["generator_version"]:
        was = old.get("generator_version") or "unrecorded (an older kdgen)"
        raise UserError(f"dataset {name!r} in {out} was made by {meta['generator']} version {was}, this is version "
                         f"{meta['generator_version']}, which draws other images; use --overwrite or a new --out")
    bad = manifest.conflicts(old, meta)
    if bad:
        details = "; ".join(f"{f}: existing {old.get(f)!r} vs now {meta.get(f)!r}" for f in bad)
        raise UserError(f"dataset {name!r} in {out} was made with other settings ({details}); "
                         f"rerun with the same settings, another --name, or --overwrite")
    if old.get("complete") and old["num_samples"] > cfg.n and cfg.world_size == 1:
        raise UserError(f"dataset {name!r} already has {old['num_samples']} samples, more than --n {cfg.n}; "
                         f"use --overwrite to rewrite it smaller")
    done = {}
    for shard, _, count in mine:
        path = out / shard_name(name, shard)
        if not path.exists():
            continue
        have = old["shards"].get(path.name)
        if have is None:  # killed between the rename and the manifest update
            have = manifest.count_members(path)
        if have == count:
            done[shard] = count
    return done, float(old.get("seconds", 0.0))


def generate(cfg: RunConfig) -> dict:
    """Make (or complete) a dataset; returns the run summary. A run that fails removes the folders it
    created if it left nothing in them."""
    created: list[Path] = []
    try:
        return _generate(cfg, created)
    except BaseException:
        manifest.remove_empty_dirs(created)
        raise


def _generate(cfg: RunConfig, created: list[Path]) -> dict:
    ext = validate(cfg)
    gen_cls = get_generator(cfg.generator)
    try:
        gen = gen_cls(cfg.size, **cfg.params)
    except ValueError as err:
        raise UserError(str(err)) from None
    name = cfg.name or gen_cls.name
    out = Path(cfg.out)
    created += manifest.prepare_output(out, name, cfg.overwrite)
    meta = manifest.new_manifest(name=name, generator=gen_cls.name, params=gen.describe(), seed=cfg.seed,
                                 size=cfg.size, fmt=ext, quality=cfg.quality, shard_size=cfg.shard_size,
                                 class_names=cfg.class_names, command=cfg.command, generator_version=gen_cls.version)
    if cfg.world_size > 1:
        meta.update(rank=cfg.rank, world_size=cfg.world_size)
    def mine():
        return plan(cfg.n, cfg.shard_size, cfg.rank, cfg.world_size)

    done, earlier_seconds = _existing_state(cfg, meta, mine())
    meta["seconds"] = earlier_seconds
    for shard, count in done.items():
        manifest.record_shard(meta, shard_name(name, shard), count)
    for tmp in out.glob(f".{name}-*.tar.tmp*"):  # leftovers of a killed run of this rank
        number = tmp.name[len(name) + 2:].split(".", 1)[0]
        if number.isdigit() and int(number) % cfg.world_size == cfg.rank:
            tmp.unlink(missing_ok=True)

    chunk = max(1, min(gen_cls.batch, cfg.shard_size, PIXELS_PER_TASK // (cfg.size[0] * cfg.size[1])))

    def tasks():  # (shard, first index, count) per render call, lazily and in order
        for shard, start, count in mine():
            if shard not in done:
                yield from ((shard, start + o, min(chunk, count - o)) for o in range(0, count, chunk))

    t0 = time.perf_counter()
    counters: Counter = Counter()
    written_bytes = 0
    total = sum(c for _, _, c in mine()) - sum(done.values())
    shards_written = 0
    bar = tqdm(total=total, unit="img", desc=name, disable=not cfg.progress or total == 0, smoothing=0.1)
    init_args = (gen_cls.name, cfg.size, cfg.params, ext, cfg.quality, cfg.seed)
    pool = None
    current: ShardFile | None = None
    # the pool's feeder takes tasks only as results are used: a long plan never queues up in memory
    slots, stopping = threading.Semaphore(4 * cfg.workers), threading.Event()

    def fed():
        for _, start, count in tasks():
            slots.acquire()
            if stopping.is_set():
                return
            yield start, count

    try:
        if cfg.workers > 1 and total:
            with _worker_threads(cfg.workers):
                pool = mp.get_context("spawn").Pool(cfg.workers, initializer=_init_worker, initargs=init_args)
            results = pool.imap(_render_chunk, fed())
        else:
            _init_worker(*init_args)
            results = (_render_chunk((s, c)) for _, s, c in tasks())
        for (shard, _, _), (samples, chunk_counters) in zip(tasks(), results):
            slots.release()
            if current is None:
                current = ShardFile(out / shard_name(name, shard))
            for sample in samples:
                current.write_packed(sample)
            counters.update(chunk_counters)
            bar.update(len(samples))
            if current.count == min(cfg.shard_size, cfg.n - shard * cfg.shard_size):
                written_bytes += current.commit()
                shards_written += 1
                manifest.record_shard(meta, current.path.name, current.count)
                current = None
                manifest.write_json_atomic(manifest.manifest_path(out, name, cfg.rank, cfg.world_size), meta)
    except OSError as err:
        if current is not None:
            current.abort()
        raise UserError(f"writing {name} failed: {err.strerror or err}; free space or choose another --out "
                         f"(complete shards are kept; rerun the same command to resume)") from None
    except BaseException:
        if current is not None:
            current.abort()
        raise
    finally:
        bar.close()
        stopping.set()
        slots.release()  # a feeder waiting for a slot sees `stopping` and ends
        if pool is not None:
            pool.terminate()
            pool.join()
        _close_worker()

    seconds = time.perf_counter() - t0
    meta["complete"] = True
    meta["seconds"] = round(meta.get("seconds", 0.0) + seconds, 3)  # generation wall time, over resumed runs
    if counters:
        meta["counters"] = dict(sorted(counters.items()))
    manifest.finish(out, meta, cfg.rank, cfg.world_size)
    return {
        "name": name,
        "out": str(out),
        "samples": total,
        "skipped_existing": sum(done.values()),
        "shards": shards_written,
        "bytes": written_bytes,
        "seconds": seconds,
        "images_per_s": total / seconds if seconds > 0 else 0.0,
        "counters": dict(counters),
    }
