"""The training stream: shard sets (or in-memory labelled data) -> uint8 batches at the teacher's spec.

For each (epoch, rank, DataLoader worker): shards of each set split by rank (disjoint when there are
enough) -> resampled with a seeded RNG -> sets mixed per sample by weight -> shuffle buffer -> B raw
samples per batch -> decode, adapt to the spec -> augment the whole batch -> yield.
Every RNG is seeded by (seed, epoch, rank, worker) or (seed, epoch, rank, batch), and batch g of the
run always comes from worker g % workers, so the stream is a pure function of the config: resuming at
any step rebuilds the epoch and skips the raw samples already used (not decoded) to reach the same batch.
A batch is made of B raw samples; undecodable ones are dropped (the batch shrinks) and counted, which
keeps the skip exact without decoding. Batches are made inside the workers (one IPC hop per batch).
With no preset (augmentation on the training device) a batch carries the seed of its augmentation
("aug_seed"), so the trainer draws exactly what a worker would have drawn.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator

import numpy as np
import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from kdtrain.data.holdout import held_out
from kdtrain.data.shards import (
    TRAIN_FIELDS,
    Problems,
    adapt_uint8,
    check_label,
    decode_limit,
    decode_sample,
    read_shard,
)
from kdtrain.data.spec import InputSpec
from kdtrain.errors import UserError


def seed_int(*parts: int) -> int:
    """A 63-bit integer seed from a tuple of ints (SeedSequence: no hash(), no collisions by design)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> np.uint64(1))


class ShardSource:
    """Weighted mix of resampled shard sets (one list of shard files per set)."""

    def __init__(self, sets: list[list[str]], weights: list[float] | None = None, shuffle_buffer: int = 2000,
                 holdout: float = 0.0):
        if weights is not None and len(weights) != len(sets):
            raise UserError(f"{len(weights)} --weights for {len(sets)} --shards sets")
        w = np.array(weights if weights is not None else [1.0] * len(sets), dtype=float)
        if (w < 0).any() or w.sum() <= 0:
            raise UserError(f"--weights must be non-negative with a positive sum, got {weights}")
        self.sets, self.weights, self.shuffle_buffer = sets, w / w.sum(), shuffle_buffer
        self.holdout = holdout  # the fraction of samples held out of training (kdtrain.data.holdout)

    def _resampled(self, urls: list[str], rng: np.random.Generator, problems: Problems) -> Iterator[dict]:
        empty = 0
        while True:
            n = 0
            url = urls[rng.integers(len(urls))]
            for raw in read_shard(url, problems, TRAIN_FIELDS):
                if self.holdout and held_out(url, raw["__key__"], self.holdout):
                    continue  # dropped before shuffling and batching: never trained on, resume stays exact
                n += 1
                yield raw
            empty = 0 if n else empty + 1
            if empty > 20 + 5 * len(urls):  # every shard unreadable (or held out): do not spin forever
                held = f" or all held out by --holdout {self.holdout}" if self.holdout else ""
                raise UserError(f"no readable samples in {len(urls)} shards (e.g. {urls[0]}){held}")

    def stream(self, seed: int, epoch: int, rank: int, world: int, worker: int, workers: int,
               problems: Problems) -> Iterator[dict]:
        """The infinite raw-sample stream of one (epoch, rank, worker)."""
        streams = []
        for i, urls in enumerate(self.sets):
            mine = urls[rank::world] if len(urls) >= world else urls  # node splitting: disjoint shards
            mine = mine[worker::workers] if len(mine) >= workers else mine  # worker splitting
            rng = np.random.default_rng([seed, epoch, rank, worker, i])
            streams.append(self._resampled(mine, rng, problems))
        if len(streams) == 1:
            mixed = streams[0]
        else:
            mixed = _mix(streams, self.weights, np.random.default_rng([seed, epoch, rank, worker, 1 << 20]))
        rng = random.Random(seed_int(seed, epoch, rank, worker, 1 << 21))
        return wds.shuffle(self.shuffle_buffer, self.shuffle_buffer, rng=rng)(mixed)


def _mix(streams: list[Iterator], p: np.ndarray, rng: np.random.Generator) -> Iterator[dict]:
    """Per-sample choice of the source set, with probabilities p (choices drawn in blocks for speed)."""
    while True:
        for i in rng.choice(len(streams), size=1024, p=p):
            yield next(streams[i])


class TensorSource:
    """Real labelled data (a map-style dataset of (uint8 C,H,W, label)) drawn without replacement:
    each epoch a permutation seeded by (seed, epoch), batch b of rank r takes its slice."""

    def __init__(self, dataset):
        self.dataset = dataset

    def indices(self, seed: int, epoch: int, start: int, count: int) -> np.ndarray:
        n = len(self.dataset)
        first, last = start // n, (start + count - 1) // n
        perm = np.concatenate([np.random.default_rng([seed, epoch, k]).permutation(n) for k in range(first, last + 1)])
        return perm[start - first * n: start - first * n + count]


class EpochBatches(IterableDataset):
    """Batches start_step..total_steps of the run (over epochs), batch g made by worker g % workers."""

    def __init__(self, source, spec: InputSpec, preset, batch_size: int, steps_per_epoch: int,
                 total_steps: int, start_step: int, seed: int, rank: int = 0, world: int = 1,
                 num_classes: int | None = None):
        self.source, self.spec, self.preset = source, spec, preset
        self.max_side, self.num_classes = decode_limit(spec), num_classes  # the limit read here, not in workers
        self.batch_size, self.steps_per_epoch, self.total_steps = batch_size, steps_per_epoch, total_steps
        self.start_step, self.seed, self.rank, self.world = start_step, seed, rank, world

    def __iter__(self):
        info = get_worker_info()
        workers = info.num_workers if info else 1
        # The DataLoader asks its workers in turn from worker 0, so loader worker 0 must hold batch
        # start_step: it plays worker start_step % workers (whose raw stream makes that batch), and so on.
        worker = (info.id + self.start_step) % workers if info else 0
        if info:
            torch.set_num_threads(1)  # workers share the cores with training
        problems = Problems()
        first_epoch = self.start_step // self.steps_per_epoch
        for epoch in range(first_epoch, -(-self.total_steps // self.steps_per_epoch)):
            base = epoch * self.steps_per_epoch
            mine = [g for g in range(base, min(base + self.steps_per_epoch, self.total_steps)) if g % workers == worker]
            if not any(g >= self.start_step for g in mine):
                continue
            yield from self._epoch(epoch, mine, worker, workers, problems)

    def _epoch(self, epoch, mine, worker, workers, problems):
        b = self.batch_size
        if isinstance(self.source, TensorSource):
            for g in mine:
                if g < self.start_step:
                    continue
                local = g - epoch * self.steps_per_epoch
                idx = self.source.indices(self.seed, epoch, (local * self.world + self.rank) * b, b)
                items = [self.source.dataset[int(i)] for i in idx]
                images = [img for img, _ in items]
                labels = [int(y) for _, y in items]
                yield self._finish(g, epoch, images, labels, [str(int(i)) for i in idx], [""] * len(idx), problems)
            return
        raw = self.source.stream(self.seed, epoch, self.rank, self.world, worker, workers, problems)
        skip = sum(g < self.start_step for g in mine)
        raw = itertools.islice(raw, skip * b, None)  # resume: drop raw samples already used, undecoded
        for g in mine[skip:]:
            images, labels, keys, urls = [], [], [], []
            for r in itertools.islice(raw, b):
                try:
                    s = decode_sample(r, with_meta=False, max_side=self.max_side)
                except Exception as e:  # noqa: BLE001 - undecodable: dropped and counted
                    problems.report("bad_samples", e, r.get("__url__"))
                    continue
                check_label(s, self.num_classes, problems, s["url"])
                images.append(s["image"])
                labels.append(s["label"])
                keys.append(s["key"])
                urls.append(s["url"])
            yield self._finish(g, epoch, images, labels, keys, urls, problems)

    def _finish(self, g, epoch, images, labels, keys, urls, problems) -> dict:
        aug_seed = seed_int(self.seed, epoch, self.rank, g)
        x = adapt_uint8(images, self.spec)
        if len(x) and self.preset is not None:
            x = self.preset(x, torch.Generator().manual_seed(aug_seed))
        return {"step": g, "images": x, "labels": torch.tensor(labels, dtype=torch.long), "keys": keys,
                "urls": urls, "problems": problems.take(), "aug_seed": aug_seed}


def make_train_loader(source, spec: InputSpec, preset, batch_size: int, steps_per_epoch: int, total_steps: int,
                      start_step: int, seed: int, rank: int = 0, world: int = 1, workers: int = 0,
                      pin_memory: bool = False, num_classes: int | None = None) -> DataLoader:
    """The DataLoader over `EpochBatches`: batches are formed inside the workers (one IPC hop per batch);
    preset None: decoded, not augmented (the trainer augments each batch from its "aug_seed")."""
    ds = EpochBatches(source, spec, preset, batch_size, steps_per_epoch, total_steps, start_step, seed, rank, world,
                      num_classes)
    return DataLoader(ds, batch_size=None, num_workers=workers, pin_memory=pin_memory,
                      persistent_workers=False, prefetch_factor=4 if workers else None,
                      generator=torch.Generator().manual_seed(seed))  # base seed not from the global RNG


def labelled_batches(dataset, spec: InputSpec, batch_size: int, limit: int | None = None):
    """(uint8 images N,C,H,W at the spec, labels) over a labelled dataset in order (for evaluation)."""
    from kdtrain.data.datasets import TensorImages

    n = len(dataset) if limit is None else min(limit, len(dataset))
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        if isinstance(dataset, TensorImages):
            x, y = dataset.images[start:stop], dataset.labels[start:stop]
            x = adapt_uint8(list(x), spec)
        else:
            items = [(img, t) for img, t in (dataset[i] for i in range(start, stop)) if t >= 0]  # -1: unreadable
            if not items:
                continue
            x = adapt_uint8([i for i, _ in items], spec)
            y = torch.tensor([int(t) for _, t in items])
        yield x, y.long()
