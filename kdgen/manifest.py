"""Dataset manifests (NAME-manifest.json) and the folder's timm-style _info.json."""

from __future__ import annotations

import json
from pathlib import Path

from kdgen import __version__, contract
from kdgen.errors import UserError

# Parameters that define a dataset's content: a resumed or extended run must match them.
IDENTITY_FIELDS = ("generator", "generator_version", "params", "seed", "size", "format", "quality", "shard_size")


def manifest_path(out: Path, name: str, rank: int = 0, world_size: int = 1) -> Path:
    return Path(out) / contract.manifest_name(name, rank, world_size)


def new_manifest(*, name, generator, params, seed, size, fmt, quality, shard_size, class_names=None,
                 command=None, num_samples=0, generator_version=None) -> dict:
    return {
        "name": name,
        "generator": generator,
        "generator_version": generator_version,
        "params": json.loads(json.dumps(params)),
        "seed": int(seed),
        "size": [int(size[0]), int(size[1])],
        "format": fmt,
        "quality": int(quality),
        "shard_size": int(shard_size),
        "num_samples": int(num_samples),
        "class_names": class_names,
        "command": command,
        "kdgen_version": __version__,
        "shards": {},
    }


def write_json_atomic(path: Path, obj) -> None:
    """Write JSON under a temporary name and rename, so a reader never sees half a file."""
    contract.write_json(path, obj, indent=1, sort_keys=True)


def load(path: Path) -> dict | None:
    path = Path(path)
    if not path.exists():
        return None
    try:
        obj = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{path} is not valid JSON; delete it or rerun with --overwrite") from None
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror or err}; check the path") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path} holds JSON {type(obj).__name__}, not an object; delete it or rerun with "
                         f"--overwrite")
    return obj


def conflicts(old: dict, new: dict) -> list[str]:
    """Names of identity fields whose values differ between two manifests."""
    return [f for f in IDENTITY_FIELDS if old.get(f) != new.get(f)]


def record_shard(meta: dict, filename: str, count: int) -> None:
    meta["shards"][filename] = int(count)
    meta["num_samples"] = sum(meta["shards"].values())


count_members = contract.count_members  # samples in a complete shard, from tar headers only


def dataset_files(out: Path, name: str) -> list[Path]:
    out = Path(out)
    pats = [contract.shard_glob(name), contract.manifest_glob(name), contract.temp_glob(name)]
    return sorted({p for pat in pats for p in out.glob(pat)})


def remove_dataset(out: Path, name: str) -> None:
    """Delete a dataset's shards, manifests and temporary files, and its entry in _info.json (--overwrite)."""
    for path in dataset_files(out, name):
        path.unlink()
    remove_from_info(out, name)


def finish(out: Path, meta: dict, rank: int = 0, world_size: int = 1) -> Path:
    """Write the final manifest (and, for a single-rank dataset, the folder's _info.json first: a run that
    fails between the two leaves a partial manifest, which its rerun completes)."""
    meta["shards"] = dict(sorted(meta["shards"].items()))
    if world_size == 1:
        update_info(out, meta)
    path = manifest_path(out, meta["name"], rank, world_size)
    write_json_atomic(path, meta)
    return path


def info_entry(meta: dict) -> dict:
    files = sorted(meta["shards"])
    return {
        "name": meta["name"],
        "num_samples": meta["num_samples"],
        "filenames": files,
        "shard_lengths": [meta["shards"][f] for f in files],
    }


def update_info(out: Path, meta: dict) -> None:
    """timm reads a folder of shards through _info.json: one split per dataset."""
    path = Path(out) / contract.INFO_NAME
    info = load(path) or {}
    info.setdefault("name", Path(out).resolve().name)
    info.setdefault("splits", {})
    info["splits"][meta["name"]] = info_entry(meta)
    if meta.get("class_names"):
        info["splits"][meta["name"]]["class_names"] = meta["class_names"]
    write_json_atomic(path, info)


def remove_from_info(out: Path, name: str) -> None:
    path = Path(out) / contract.INFO_NAME
    info = load(path)
    if info and name in info.get("splits", {}):
        del info["splits"][name]
        write_json_atomic(path, info)


def merge(out: Path, name: str) -> dict:
    """Join the per-rank manifests of a multi-machine run into NAME-manifest.json."""
    out = Path(out)
    parts = sorted(out.glob(contract.rank_manifest_glob(name)))
    if not parts:
        raise UserError(f"no per-rank manifests {contract.rank_manifest_glob(name)} in {out}; run the ranks first")
    metas = [json.loads(p.read_text()) for p in parts]
    first = metas[0]
    for other in metas[1:]:
        bad = conflicts(first, other)
        if bad:
            raise UserError(f"rank manifests disagree on {', '.join(bad)}; rerun the ranks with one command")
    world = {m["world_size"] for m in metas}
    if len(world) != 1 or len(metas) != world.pop():
        raise UserError(f"found {len(metas)} rank manifests of different or missing ranks; run every rank first")
    incomplete = [m["rank"] for m in metas if not m.get("complete")]
    if incomplete:
        raise UserError(f"ranks {incomplete} have not finished; rerun them (they resume) and merge again")
    merged = {k: v for k, v in first.items() if k not in ("rank", "world_size", "complete")}
    merged["shards"] = {}
    for m in metas:
        merged["shards"].update(m["shards"])
    merged["shards"] = dict(sorted(merged["shards"].items()))
    merged["num_samples"] = sum(merged["shards"].values())
    merged["complete"] = True
    write_json_atomic(manifest_path(out, name), merged)
    update_info(out, merged)
    return merged
