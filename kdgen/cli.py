"""The `kdgen` command line: one command per registered generator, plus import, info, preview, merge."""

from __future__ import annotations

import logging
import os
from pathlib import Path

# kdgen's matrix products are small: OpenBLAS threads would only spin beside the work (and beside
# other workers). Set before numpy loads; a user's own setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from dataclasses import dataclass, fields  # noqa: E402

import click  # noqa: E402

from kdgen import __version__, manifest  # noqa: E402
from kdgen.clitools import OneLineErrorGroup, SizeType, command_line, launcher_rank  # noqa: E402
from kdgen.registry import GENERATORS  # noqa: E402
from kdgen.runner import RunConfig, generate  # noqa: E402
from kdgen.settings import dataclass_options, knob, seed_knob  # noqa: E402
from kdgen.writer import FORMATS  # noqa: E402


@dataclass
class DatasetOptions:
    """Options every dataset-writing command shares (the shard contract's knobs)."""

    n: int = knob(10000, "Number of samples in the dataset.")
    size: tuple[int, int] = knob("32", "Image size: N or WxH.", type=SizeType())
    out: Path = knob(Path("data"), "Output folder.")
    name: str | None = knob(None, "Dataset name and shard prefix [default: the generator's name].")
    seed: int = seed_knob("Dataset seed.")
    shard_size: int = knob(1000, "Samples per shard.")
    fmt: str = knob("png", "Image format.", flag="--format", choices=tuple(FORMATS))
    quality: int = knob(95, "jpg/webp quality.", min=1, max=100)
    workers: int = knob(1, "Rendering processes.")
    rank: int | None = knob(None, "This machine's rank [default: RANK or Slurm array].")
    world_size: int | None = knob(None, "Number of machines [default: WORLD_SIZE].")
    overwrite: bool = knob(False, "Replace an existing dataset of this name.", flag="--overwrite")
    progress: bool = knob(True, "Show a progress bar (--quiet: the same as --no-progress).",
                          flag="--progress/--no-progress, /--quiet")


def dataset_options(**overrides):
    """The DatasetOptions flags, with other defaults by name (e.g. import-images' n=0: all)."""
    return dataclass_options(DatasetOptions, overrides=overrides)


def run_config(generator: str, opts: dict, params: dict, **extra) -> RunConfig:
    env_rank, env_world = launcher_rank()
    return RunConfig(
        generator=generator, n=opts["n"], size=opts["size"], params=params, out=opts["out"], name=opts["name"],
        seed=opts["seed"], shard_size=opts["shard_size"], fmt=opts["fmt"], quality=opts["quality"],
        workers=opts["workers"], rank=env_rank if opts["rank"] is None else opts["rank"],
        world_size=env_world if opts["world_size"] is None else opts["world_size"], overwrite=opts["overwrite"],
        command=command_line(), progress=opts["progress"], **extra)


def print_summary(s: dict) -> None:
    extra = "".join(f", {k} {v}" for k, v in sorted(s["counters"].items()))
    kept = f" ({s['skipped_existing']} already there)" if s["skipped_existing"] else ""
    click.echo(f"{s['name']}: wrote {s['samples']} samples in {s['shards']} shards{kept}, "
               f"{s['bytes'] / 1e6:.1f} MB, {s['seconds']:.1f} s, {s['images_per_s']:.0f} images/s{extra} "
               f"-> {s['out']}/{s['name']}-*.tar")


def generator_command(gen_cls) -> click.Command:
    def callback(**kwargs):
        opts = {f.name: kwargs.pop(f.name) for f in fields(DatasetOptions)}
        print_summary(generate(run_config(gen_cls.name, opts, kwargs)))

    fn = dataset_options()(callback)
    for opt in reversed(gen_cls.options):
        fn = opt(fn)
    return click.command(gen_cls.name, help=gen_cls.help, short_help=gen_cls.help.split(".")[0])(fn)


@dataclass
class GroupOptions:
    verbose: bool = knob(False, "Log details (skipped programs, files).", flag="-v,--verbose")


@click.group(cls=OneLineErrorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kdgen")
@dataclass_options(GroupOptions)
def cli(verbose: bool) -> None:
    """Make surrogate image datasets for knowledge distillation as WebDataset shards."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s")


def _register_generator_commands() -> None:
    import kdgen.generators  # noqa: F401  (fills the registry)

    for gen_cls in GENERATORS.values():
        if getattr(gen_cls, "command", True):
            cli.add_command(generator_command(gen_cls))


_register_generator_commands()


@dataclass
class ImportOptions:
    resize: str = knob("crop", "How to fit other aspect ratios: centre crop, letterbox, or stretch.",
                       choices=("crop", "pad", "stretch"))


@cli.command("import-images")
@click.argument("folder", type=click.Path(path_type=Path))
@dataclass_options(DatasetOptions, overrides={"n": 0},
                   helps={"n": "Number of images to take (0: all).",
                          "name": "Dataset name and shard prefix [default: FOLDER's name]."})
@dataclass_options(ImportOptions)
def import_images(folder: Path, resize: str, **opts) -> None:
    """Real images from FOLDER (class subfolders become labels) into shards; --n 0 takes all."""
    from kdgen.contract import max_image_side, readable_name
    from kdgen.importer import scan_folder

    max_side = max_image_side(max(opts["size"]))  # larger files are skipped before they are decoded
    files, classes, skipped = scan_folder(folder, max_side)
    n = len(files) if opts["n"] <= 0 else min(opts["n"], len(files))
    opts = dict(opts, n=n, name=opts["name"] or folder.resolve().name.replace(".", "_"))
    params = {"root": str(folder.resolve()), "files": files[:n], "resize": resize, "max_side": max_side}
    names = [readable_name(c) for c in classes]  # class folders whose names are not UTF-8, escaped
    summary = generate(run_config("images", opts, params, class_names=names or None))
    summary["counters"]["unreadable_skipped"] = skipped["unreadable"]
    if skipped["too_large"]:
        summary["counters"]["too_large_skipped"] = skipped["too_large"]
    print_summary(summary)


@cli.command()
@click.argument("dataset")
def info(dataset: str) -> None:
    """Summarise DATASET (a manifest, `data/NAME`, or a shard glob)."""
    from kdgen.dataset import describe, resolve

    click.echo(describe(resolve(dataset)))


@dataclass
class PreviewOptions:
    output: Path | None = knob(None, "PNG to write [default: DATASET-preview.png beside the shards].",
                               flag="-o,--output")
    count: int = knob(64, "Images on the sheet.", min=1, max=4096)
    cell: int = knob(64, "Pixels per image.", min=8, max=512)


@cli.command()
@click.argument("dataset")
@dataclass_options(PreviewOptions)
def preview(dataset: str, output: Path | None, count: int, cell: int) -> None:
    """Write a contact sheet of DATASET's first images, for a person to look at."""
    from collections import Counter

    from kdgen.dataset import load_manifest, resolve
    from kdgen.preview import contact_sheet

    meta_path = resolve(dataset)
    meta = load_manifest(meta_path)
    output = output or meta_path.with_name(f"{meta['name']}-preview.png")
    skipped: Counter = Counter()
    n = contact_sheet(meta_path, output, count=count, cell=cell, skipped=skipped)
    passed = [f"{skipped[k]} unreadable {k}" for k in ("samples", "shards") if skipped[k]]
    note = f" (skipped {', '.join(passed)})" if passed else ""
    click.echo(f"wrote a contact sheet of {n} images to {output}{note}")


@dataclass
class MergeOptions:
    name: str | None = knob(None, "Dataset name whose per-rank manifests to join.", required=True)


@cli.command("merge-manifest")
@click.argument("folder", type=click.Path(path_type=Path))
@dataclass_options(MergeOptions)
def merge_manifest(folder: Path, name: str) -> None:
    """Join the per-rank manifests of a multi-machine run into one manifest and _info.json."""
    merged = manifest.merge(folder, name)
    click.echo(f"{name}: {merged['num_samples']} samples in {len(merged['shards'])} shards")


@cli.command("list")
def list_generators() -> None:
    """List the registered generators."""
    for name, gen_cls in sorted(GENERATORS.items()):
        click.echo(f"{name:12s} {gen_cls.help.split('.')[0]}")


def main() -> None:
    cli()
