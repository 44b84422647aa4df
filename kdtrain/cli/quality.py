"""Click commands for dataset quality: attack, refine, score, curate (registered on the kdtrain group).

Each command is a thin shell that reads top to bottom as `kdtrain distill` does: its settings (flags
generated from the dataclasses below and the library's configs, so click refuses bad values before any
work), the input shards, the teacher, the output, then one library call (kdtrain.synth.attack /
kdtrain.synth.refine / kdtrain.quality.scoring / kdtrain.quality.curate) under a progress bar, and a
summary.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import click

from kdgen.settings import dataclass_options, knob, seed_knob
from kdgen.writer import FORMATS
from kdtrain.cli import teacher_flags
from kdtrain.errors import UserError
from kdtrain.synth.attack import AttackConfig
from kdtrain.synth.refine import RefineConfig


@dataclass
class ShardInput:
    """What every quality command reads: the shards, how many of their samples, in which batches."""

    shards: list[str] = knob([], "Shard files, glob or brace pattern, quoted, e.g. 'data/leaves-0*.tar' (note that "
                                 "'data/leaves-*.tar' also matches data/leaves-adv-*); repeatable.", required=True)
    limit: int | None = knob(None, "Use at most N samples [default: all].", flag="--n", min=1)
    batch_size: int = knob(256, "Images per teacher batch.", min=1)
    seed: int = seed_knob("Seed of every random choice.")
    progress: bool = knob(True, "Show a progress bar on a terminal (images/s and time left).")


@dataclass
class ShardOutput:
    """Where attack, refine and curate write their samples."""

    out: Path | None = knob(None, "Output DIR/NAME: shards DIR/NAME-000000.tar, ...", required=True)
    shard_size: int = knob(1000, "Samples per shard.", min=1)
    fmt: str = knob("png", "png keeps the stored image's teacher prediction exact; jpg/webp are lossy.",
                    flag="--format", choices=tuple(FORMATS))
    overwrite: bool = knob(False, "Replace an existing dataset of this name.", flag="--overwrite")


@dataclass
class RefineInput:
    match_stats: bool = knob(True, "First give each source image the teacher's input mean/std (as distill does).")


@dataclass
class ScoreOptions:
    eval: str | None = knob(None, "Real labelled test images to compare with: fashion-mnist, cifar10, ..., an image "
                                  "folder or labelled shards.")
    sample_size: int = knob(2000, "Samples per set kept for the feature projection.", min=2)
    out: Path | None = knob(None, "Folder for score.json and score.png.", required=True, file_okay=False)


@dataclass
class CurateOptions:
    per_class: int | None = knob(None, "K: samples kept per predicted class.", required=True, min=1)
    min_conf: float | None = knob(None, "Keep only samples whose max-softmax is at least this.", min=0.0, max=1.0)
    max_conf: float | None = knob(None, "Keep only samples whose max-softmax is at most this.", min=0.0, max=1.0)
    fill_with_attack: bool = knob(False, "Then attack pool samples toward the classes still short (attack options "
                                         "below).", flag="--fill-with-attack")


# ------------------------------------------------------------------------------------------- building
# The pieces every command composes, in the order it does.

def config_of(cls, o: dict):
    """A library config (AttackConfig, RefineConfig) from the command's options, checked."""
    return cls(**{f.name: o[f.name] for f in fields(cls)}).validate()


def shard_files(patterns) -> list[str]:
    from kdgen.contract import max_image_side
    from kdtrain.data.shards import expand_patterns

    max_image_side()  # a bad $KD_MAX_IMAGE_SIDE fails here, not once per sample
    return expand_patterns(list(patterns))


def open_writer(o: dict, teacher, generator: str, version: int, params: dict, inputs):
    """The output dataset of --out DIR/NAME, made by `generator` at algorithm `version`: an unfinished one of
    the same settings resumes (complete shards kept); a finished one, or one that would overwrite the inputs,
    is refused."""
    from kdgen import manifest
    from kdgen.clitools import command_line
    from kdgen.shardset import DatasetWriter

    out = o["out"]
    folder, name = out.parent, out.name
    if not name or not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise UserError(f"--out {out}: the last part names the dataset and takes letters, digits, - and _ only")
    existing = manifest.dataset_files(folder, name)
    if {Path(f).resolve() for f in inputs} & {p.resolve() for p in existing}:
        raise UserError(f"--out {out} would overwrite the input shards; choose another name")
    spec = teacher.spec
    params = {**params, "sources": list(o["shards"]), "teacher": str(o["teacher"])}
    return DatasetWriter(folder, name, generator=generator, params=params, size=(spec.width, spec.height),
                         seed=o["seed"], shard_size=o["shard_size"], fmt=o["fmt"],
                         class_names=list(teacher.class_names),
                         overwrite=o["overwrite"], command=command_line(), resume=not o["overwrite"],
                         generator_version=version)


def progress_bar(o: dict, files, what: str):
    """A tqdm bar over the samples to be read (images/s and time left) on a terminal, from the first second
    (a quick error stays one line); off with --no-progress."""
    from tqdm import tqdm

    from kdtrain.data.shards import count_samples

    total = count_samples(files) if o["progress"] else 0
    if o["limit"] is not None:
        total = min(total, o["limit"])
    return tqdm(total=total, unit="img", desc=what, disable=None if o["progress"] else True, delay=1, leave=False)


def stream(files, teacher, o: dict, problems=None, bar=None):
    """The shards' batches at the teacher's spec, in shard order; each batch's images counted on `bar`."""
    from kdtrain.data.shards import iterate_shards

    for batch in iterate_shards(files, teacher.spec, o["batch_size"], limit=o["limit"], problems=problems,
                                num_classes=teacher.num_classes):
        yield batch
        if bar is not None:
            bar.update(len(batch["images"]))


def problems():
    from kdtrain.data.shards import Problems

    return Problems()


def skipped(found) -> str:
    """The summary's count of what was passed over (each shard also got one warning line)."""
    c = found.counts
    parts = [f"{c[k]} {k.replace('_', ' ')}" for k in ("bad_samples", "bad_labels", "shard_errors") if c.get(k)]
    return f"; skipped {', '.join(parts)}" if parts else ""


def echo_balance(counts, names, what: str = "teacher predictions") -> None:
    from kdtrain.quality.scoring import balance

    rel = balance(counts)
    if rel is None:
        return
    per_class = ", ".join(f"{n} {c}" for n, c in zip(names, counts, strict=True))
    click.echo(f"{what}: relative entropy {rel:.3f}; {per_class}")


def set_label(pattern: str) -> tuple[str, str]:
    """`label=pattern` or a bare pattern, labelled by its file name without shard number and globs."""
    head, sep, tail = pattern.partition("=")
    if sep and head and not re.search(r"[/*?\[{]", head):
        return head, tail
    from kdgen.contract import dataset_name

    return dataset_name(pattern) or pattern, pattern


def eval_batches(name: str, teacher, batch_size: int, limit: int | None):
    """Real labelled test images (fashion-mnist, cifar10, an image folder, labelled shards) at the teacher's spec."""
    from kdtrain.data.datasets import load_labelled
    from kdtrain.data.stream import labelled_batches

    real = load_labelled(name, train=False)
    if real.num_classes != teacher.num_classes:
        raise UserError(f"--eval {name} has {real.num_classes} classes but the teacher has {teacher.num_classes}")
    return ({"images": x.float().div(255), "labels": y}
            for x, y in labelled_batches(real.dataset, teacher.spec, batch_size, limit))


def jsonable(cfg) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()}


# ------------------------------------------------------------------------------------------- commands

def attack_cmd(**o):
    """Write boundary-attacked versions of a surrogate set as new shards (up to 4 per source)."""
    from kdtrain.synth.attack import VERSION, run_offline

    cfg = config_of(AttackConfig, o)
    device = teacher_flags.device(o)
    files = shard_files(o["shards"])
    teacher = teacher_flags.load(o, device)
    found = problems()
    start = time.perf_counter()
    with open_writer(o, teacher, "attack", VERSION, {"attack": jsonable(cfg)}, files) as w, \
            progress_bar(o, files, "attack") as bar:
        stats = run_offline(teacher, stream(files, teacher, o, found), w, cfg, o["seed"], o["limit"],
                            progress=bar.update)
        if stats["sources"] == 0:  # inside the writer, so no empty dataset is left behind
            raise UserError("no samples to attack: the shards matched hold no images")
    secs = time.perf_counter() - start
    click.echo(f"{o['out']}: {stats['written']} samples from {stats['sources']} sources "
               f"({stats['crossed']} crossed), {stats['sources'] / secs:.1f} sources/s{skipped(found)}")
    echo_balance(stats["class_counts"], teacher.class_names)


def refine_cmd(**o):
    """Refine a surrogate set toward the teacher's BatchNorm statistics; write the results as new shards."""
    from kdtrain.quality.scoring import balance
    from kdtrain.synth.refine import VERSION, batchnorm_layers, run_offline

    cfg = config_of(RefineConfig, o)
    device = teacher_flags.device(o)
    files = shard_files(o["shards"])
    teacher = teacher_flags.load(o, device)
    batchnorm_layers(teacher)  # refuse before anything is written
    params = {"refine": asdict(cfg), "match_stats": o["match_stats"]}
    found = problems()
    start = time.perf_counter()
    with open_writer(o, teacher, "refine", VERSION, params, files) as w, progress_bar(o, files, "refine") as bar:
        stats = run_offline(teacher, stream(files, teacher, o, found), w, cfg, o["seed"], o["limit"],
                            o["match_stats"], progress=bar.update)
        if stats["sources"] == 0:
            raise UserError("no samples to refine: the shards matched hold no images")
        stats["target_entropy"] = balance(stats["target_counts"])
        stats["class_entropy"] = balance(stats["class_counts"])
        w.meta["summary"] = stats  # written into the manifest when the writer closes
    secs = time.perf_counter() - start
    click.echo(f"{o['out']}: {stats['written']} refined images, {stats['sources'] / secs:.1f} images/s; "
               f"{stats['reached_target']} reached their target; mean teacher confidence {stats['confidence']:.3f}; "
               f"BN statistics loss {stats['bn_loss_start']:.3f} -> {stats['bn_loss_end']:.3f} in "
               f"{stats['steps']:.1f} steps on average (at most {stats['steps_max']}){skipped(found)}")
    echo_balance(stats["target_counts"], teacher.class_names, "targets")
    echo_balance(stats["class_counts"], teacher.class_names)


def score_cmd(**o):
    """Score surrogate sets against a teacher: class balance, confidence, diversity; table + JSON + PNG."""
    from kdtrain.quality.scoring import score_batches
    from kdtrain.train.config import check_out_folder

    check_out_folder(o["out"])  # before the work, not after it
    sets = dict(set_label(p) for p in o["shards"])
    if len(sets) != len(o["shards"]):
        raise UserError(f"two --shards sets share a label ({', '.join(sets)}); name them as LABEL=PATTERN")
    device = teacher_flags.device(o)
    files = {label: shard_files([pattern]) for label, pattern in sets.items()}
    teacher = teacher_flags.load(o, device)
    real = eval_batches(o["eval"], teacher, o["batch_size"], o["limit"]) if o["eval"] else None
    scorers, rates, found = {}, {}, {}
    for label, fl in files.items():
        start, found[label] = time.perf_counter(), problems()
        with progress_bar(o, fl, label) as bar:
            scorers[label] = score_batches(teacher, stream(fl, teacher, o, found[label], bar), o["limit"],
                                           o["sample_size"], o["seed"])
        rates[label] = scorers[label].n / (time.perf_counter() - start)
    eval_scorer = score_batches(teacher, real, o["limit"], o["sample_size"], o["seed"]) if real is not None else None
    results = score_results(scorers, eval_scorer, teacher, o["eval"])
    write_scores(o, teacher, files, results, rates, scorers, eval_scorer)
    for label, f in found.items():
        if skipped(f):
            click.echo(f"{label}{skipped(f)}")


def score_results(scorers: dict, eval_scorer, teacher, eval_name: str | None) -> dict:
    """Each set's scores; with real test images, theirs too and each set's coverage of their features."""
    from kdtrain.quality.scoring import coverage, neighbour_radius

    results = {label: s.result(teacher.class_names) for label, s in scorers.items()}
    if eval_scorer is not None:
        results[f"{eval_name} (real)"] = eval_scorer.result(teacher.class_names)
        real_feats = eval_scorer.sample_feats
        radius = neighbour_radius(real_feats) if len(real_feats) > 1 else None
        for label, scorer in scorers.items():  # same-size feature samples of each set against the real one
            results[label]["coverage"], results[label]["nn_ratio"] = coverage(real_feats, scorer.sample_feats, radius)
    return results


def write_scores(o: dict, teacher, files: dict, results: dict, rates: dict, scorers: dict, eval_scorer) -> None:
    """score.json, score.png and the table."""
    from kdtrain.quality.scoring import format_table, plot_scores

    out = o["out"]
    out.mkdir(parents=True, exist_ok=True)
    report = {"teacher": str(o["teacher"]), "class_names": list(teacher.class_names), "limit": o["limit"],
              "sets": {k: {"shards": files.get(k), **v} for k, v in results.items()}, "samples_per_s": rates}
    (out / "score.json").write_text(json.dumps(report, indent=1) + "\n")
    plot_scores(scorers, out / "score.png", list(teacher.class_names), eval_scorer)
    click.echo(format_table(results))
    for label, r in results.items():
        if r["never_predicted"]:
            click.echo(f"{label}: never predicted: {', '.join(r['never_predicted'])}")
    click.echo(f"wrote {out / 'score.json'} and {out / 'score.png'}")


def curate_cmd(**o):
    """Keep up to K samples per teacher-predicted class from a pool; write them as new shards."""
    from kdtrain.quality.curate import VERSION, curate
    from kdtrain.synth.attack import VERSION as ATTACK_VERSION

    cfg = config_of(AttackConfig, o) if o["fill_with_attack"] else None
    device = teacher_flags.device(o)
    files = shard_files(o["shards"])
    teacher = teacher_flags.load(o, device)
    params = {"per_class": o["per_class"], "min_conf": o["min_conf"], "max_conf": o["max_conf"],
              "fill_with_attack": {**jsonable(cfg), "version": ATTACK_VERSION} if cfg else None}
    passes = []  # one Problems per pass over the pool; the first pass's counts are the summary's
    with open_writer(o, teacher, "curate", VERSION, params, files) as w, progress_bar(o, files, "curate") as bar:
        def pool():
            passes.append(problems())
            bar.reset()  # each pass (the fill passes too) reads the pool again
            return stream(files, teacher, o, passes[-1], bar)

        rep = curate(teacher, pool, w, o["per_class"], o["min_conf"], o["max_conf"], o["limit"],
                     o["fill_with_attack"], cfg, o["seed"])
        if rep.seen == 0:
            raise UserError("no samples to curate: the shards matched hold no images")
    click.echo(f"{o['out']}: {rep.summary()}{skipped(passes[0]) if passes else ''}")


def _flags(*decorators):
    def decorate(fn):
        for d in reversed(decorators):
            fn = d(fn)
        return fn

    return decorate


def register(group) -> None:
    """Add this module's commands to the `kdtrain` click group."""
    reads = (teacher_flags.teacher_options, dataclass_options(ShardInput))
    writes = dataclass_options(ShardOutput)
    commands = {
        "attack": (attack_cmd, *reads, writes, dataclass_options(AttackConfig)),
        "refine": (refine_cmd, *reads, writes, dataclass_options(RefineInput), dataclass_options(RefineConfig)),
        "score": (score_cmd, *reads, dataclass_options(ScoreOptions)),
        "curate": (curate_cmd, *reads, dataclass_options(CurateOptions), writes, dataclass_options(AttackConfig)),
    }
    for name, (fn, *decorators) in commands.items():
        group.command(name, help=fn.__doc__)(_flags(*decorators)(fn))
