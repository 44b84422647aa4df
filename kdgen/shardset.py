"""A dataset being written, whoever makes its samples (a generator, import-images, attack, refine, curate).

One lifecycle: open (lock the output, --overwrite clears the old dataset) -> resume (complete shards of an
interrupted run of the same settings are kept) -> add samples (each shard committed in order, the manifest
rewritten after it) -> finish (the final manifest) -> close (release; a failed first run leaves nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from kdgen import contract, manifest
from kdgen.errors import UserError
from kdgen.lock import OutputLock
from kdgen.writer import ShardFile, check_format, encode_sample

Plan = Callable[[], Iterable[tuple[int, int]]]  # (shard, samples it holds when complete), lazily, again per call


class ShardSet:
    """Shards of one dataset (or of one rank's part of it) and their manifest, `meta` (manifest.new_manifest)."""

    def __init__(self, out, meta: dict, *, overwrite: bool = False, rank: int = 0, world_size: int = 1):
        self.out, self.meta, self.name = Path(out), meta, meta["name"]
        self.rank, self.world_size, self.overwrite = rank, world_size, overwrite
        if world_size > 1:
            meta.update(rank=rank, world_size=world_size)
        meta["complete"] = False  # until finish(): a reader or a rerun sees a partial dataset as such
        self.lock = OutputLock(self.out, self.name, rank, world_size)
        self.done: dict[int, int] = {}  # complete shards kept from an earlier run -> samples
        self.written = {"samples": 0, "shards": 0, "bytes": 0}  # by this run
        self.current: ShardFile | None = None

    # ---- lifecycle ----

    def open(self) -> ShardSet:
        self.lock.acquire()
        try:
            if self.overwrite:
                manifest.remove_dataset(self.out, self.name)
        except BaseException:
            self.lock.release()
            raise
        return self

    def resume(self, planned: Plan, total: int | None = None) -> dict[int, int]:
        """Record the complete shards of an earlier run of the same settings among `planned` (they are not
        written again) and remove that run's leftovers. `total`: the samples the dataset will hold, where
        known in advance (a complete dataset may then be extended); an open-ended source (None) refuses a
        complete dataset. Conflicting datasets are refused with one line naming the fix."""
        old = manifest.load(self.manifest_path)
        if old is None and self.world_size > 1:
            old = manifest.load(manifest.manifest_path(self.out, self.name))
        if old is None:
            if any((self.out / contract.shard_name(self.name, s)).exists() for s, _ in planned()):
                raise UserError(f"{self.out} holds {contract.shard_glob(self.name)} shards but no manifest; "
                                 f"use --overwrite or another --out")
            self._remove_leftovers(shards=False)
            return self.done
        self._check_resumable(old, total)
        for shard, count in planned():
            path = self.out / contract.shard_name(self.name, shard)
            if not path.exists():
                continue
            have = old["shards"].get(path.name)
            if have is None:  # killed between the rename and the manifest update
                have = contract.count_members(path)
            if have == count:
                self.done[shard] = count
                manifest.record_shard(self.meta, path.name, count)
        if "seconds" in self.meta:  # generation time, summed over resumed runs
            self.meta["seconds"] = float(old.get("seconds", 0.0))
        try:
            self._write_manifest()  # names only the kept shards before any other is removed
        except OSError as err:
            raise self._write_error(err) from None
        self._remove_leftovers(shards=True)
        return self.done

    def add(self, shard: int, sample: dict | bytes, count: int) -> None:
        """Append a sample (a dict of fields, or bytes packed by writer.pack_sample in a worker) to `shard`,
        which is complete at `count` samples: then it is renamed into place and the manifest rewritten."""
        try:
            if self.current is None:
                self.current = ShardFile(self.out / contract.shard_name(self.name, shard))
            if isinstance(sample, bytes):
                self.current.write_packed(sample)
            else:
                self.current.write(sample)
            self.written["samples"] += 1
            if self.current.count == count:
                self._commit()
        except OSError as err:
            raise self._write_error(err) from None

    def finish(self, seconds: float | None = None, counters: dict | None = None) -> Path:
        """Commit the last (short) shard of an open-ended source and write the final manifest (and _info.json)."""
        try:
            if self.current is not None:
                self._commit()
            self.meta["complete"] = True
            if seconds is not None:
                self.meta["seconds"] = round(self.meta.get("seconds", 0.0) + seconds, 3)
            if counters:
                self.meta["counters"] = dict(sorted(counters.items()))
            return manifest.finish(self.out, self.meta, self.rank, self.world_size)
        except OSError as err:
            raise self._write_error(err) from None

    def close(self) -> None:
        """Drop a shard left unfinished (a failed run; complete shards stay) and release the output."""
        if self.current is not None:
            self.current.abort()
            self.current = None
        self.lock.release()

    def summary(self, seconds: float, counters: dict | None = None) -> dict:
        n = self.written["samples"]
        return {"name": self.name, "out": str(self.out), "samples": n, "skipped_existing": sum(self.done.values()),
                "shards": self.written["shards"], "bytes": self.written["bytes"], "seconds": seconds,
                "images_per_s": n / seconds if seconds > 0 else 0.0, "counters": dict(counters or {})}

    def __enter__(self) -> ShardSet:
        return self.open()

    def __exit__(self, *exc) -> bool:
        self.close()
        return False

    # ---- pieces ----

    @property
    def manifest_path(self) -> Path:
        return manifest.manifest_path(self.out, self.name, self.rank, self.world_size)

    def _check_resumable(self, old: dict, total: int | None) -> None:
        where = f"dataset {self.name!r} in {self.out}"
        if total is None and old.get("complete", True):  # manifests older than per-shard updates carry no flag
            raise UserError(f"{where} already exists; pass --overwrite to replace it")
        version = self.meta.get("generator_version")
        if old.get("generator_version") != version:
            was = old.get("generator_version") or "unrecorded (an older kdgen)"
            raise UserError(f"{where} was made by {self.meta['generator']} version {was}, this is version "
                             f"{version}, which draws other images; use --overwrite or a new --out")
        bad = manifest.conflicts(old, self.meta)
        if bad:
            details = "; ".join(f"{f}: existing {old.get(f)!r} vs now {self.meta.get(f)!r}" for f in bad)
            raise UserError(f"{where} was made with other settings ({details}); rerun with the same settings, "
                             f"another --out or --name, or --overwrite")
        if total is not None and old.get("complete") and old["num_samples"] > total and self.world_size == 1:
            raise UserError(f"{where} already has {old['num_samples']} samples, more than --n {total}; "
                             f"use --overwrite to rewrite it smaller")

    def _mine(self, number: int) -> bool:
        return number % self.world_size == self.rank

    def _remove_leftovers(self, shards: bool) -> None:
        """This rank's temporary shards of a killed run and, with `shards`, its shards not kept (a short last
        shard being extended, shards past a smaller plan): every shard file then is one the manifest names."""
        patterns = [contract.temp_shard_glob(self.name)] + ([contract.shard_glob(self.name)] if shards else [])
        for pattern in patterns:
            for path in self.out.glob(pattern):
                number = contract.shard_number(path, self.name)
                if self._mine(number) and path.name not in self.meta["shards"]:
                    path.unlink(missing_ok=True)

    def _commit(self) -> None:
        count = self.current.count
        self.written["bytes"] += self.current.commit()
        self.written["shards"] += 1
        manifest.record_shard(self.meta, self.current.path.name, count)
        self.current = None
        self._write_manifest()

    def _write_manifest(self) -> None:
        manifest.write_json_atomic(self.manifest_path, self.meta)

    def _write_error(self, err: OSError) -> UserError:
        """A write that failed (a full disk most often) as one line: what is kept and how to go on."""
        if self.current is not None:
            self.current.abort()
            self.current = None
        kept = len(self.meta["shards"])
        return UserError(f"writing {self.name} to {self.out} failed: {err.strerror or err}; the shards kept ({kept}) "
                          f"are complete: free space (or choose another --out) and rerun the same command without "
                          f"--overwrite to continue, byte-identical to an uninterrupted run")


class DatasetWriter:
    """Write samples from a source that gives them one at a time (attack, refine, curate) as a kdgen dataset.

    Keys are assigned in order from 0, in shards of `shard_size` samples; `generator_version` is the
    producer's algorithm version, part of the set's identity as a generator's version is. With resume, a
    run of the same settings that was killed keeps its complete shards: the source replays its samples in
    the same order, and those already in complete shards are counted, not written again, so the result has
    the bytes of a run never interrupted.
    """

    def __init__(self, out_dir, name: str, generator: str, params: dict, size, seed: int = 0,
                 shard_size: int = 1000, fmt: str = "png", quality: int = 95, class_names=None,
                 overwrite: bool = False, command: str | None = None, resume: bool = False,
                 generator_version: int | None = None):
        self.name, self.shard_size, self.quality, self.resume = name, shard_size, quality, resume
        self.ext = check_format(fmt)
        self.meta = manifest.new_manifest(name=name, generator=generator, params=params, seed=seed, size=size,
                                          fmt=self.ext, quality=quality, shard_size=shard_size,
                                          class_names=class_names, command=command,
                                          generator_version=generator_version)
        self.shards = ShardSet(out_dir, self.meta, overwrite=overwrite)
        self.out = self.shards.out
        self.index = 0

    def _on_disk(self):
        """Shards an interrupted run may have completed: those on disk, each complete at shard_size samples
        (a short last shard is written only by a run that ended cleanly)."""
        files = self.out.glob(contract.shard_glob(self.name))
        return ((contract.shard_number(f, self.name), self.shard_size) for f in sorted(files))

    def add(self, img: np.ndarray, meta: dict, cls: int | None = None) -> str:
        key = contract.sample_key(self.index)
        shard = self.index // self.shard_size
        if shard not in self.shards.done:  # else already in a complete shard of the interrupted run
            self.shards.add(shard, encode_sample(self.index, img, meta, self.ext, self.quality, cls), self.shard_size)
        self.index += 1
        return key

    def __enter__(self) -> DatasetWriter:
        self.shards.open()
        try:
            if self.resume:
                self.shards.resume(self._on_disk)
        except BaseException:
            self.shards.close()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc_type is None:
                kept = (max(self.shards.done) + 1) * self.shard_size if self.shards.done else 0
                if self.index < kept:
                    raise UserError(f"the sources now give {self.index} samples, fewer than the {kept} already "
                                     f"written to {self.out / self.name}; pass --overwrite to start again")
                self.shards.finish()
        finally:
            self.shards.close()
        return False
