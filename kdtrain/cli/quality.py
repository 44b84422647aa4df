"""Click commands for dataset quality: attack, score, curate (registered on the kdtrain group).

Each command is a thin shell: check inputs, load the teacher, stream shards, call one library
function (kdtrain.synth.attack / kdtrain.quality.scoring / kdtrain.quality.curate), write its outputs, print a summary.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import click

from kdtrain.cli import teacher_flags
from kdtrain.errors import KDError


def _options(opts):
    def decorate(fn):
        for opt in reversed(opts):
            fn = opt(fn)
        return fn

    return decorate


teacher_options = _options([
    teacher_flags.teacher_options,
    click.option("--shards", "patterns", required=True, multiple=True,
                 help="Shard files, glob or brace pattern, quoted, e.g. 'data/leaves-0*.tar' (note that "
                      "'data/leaves-*.tar' also matches data/leaves-adv-*); repeatable."),
    click.option("--n", "limit", type=int, default=None,
                 help="Use at most N samples [default: all]."),
    click.option("--batch-size", type=int, default=256, show_default=True),
    click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:1, ... or auto."),
    click.option("--seed", type=int, default=0, show_default=True, help="Seed of every random choice."),
    click.option("--amp", default="auto", show_default=True,
                 help="Teacher precision: auto (bf16 on CUDA and on CPUs with AMX/AVX-512 bf16), bf16, fp16, off."),
])

def attack_options(fn):
    """One option per AttackConfig field (its help from the field), as distill's --adv takes them as keys."""
    from kdgen.settings import dataclass_options
    from kdtrain.synth.attack import AttackConfig

    return dataclass_options(AttackConfig)(fn)


writer_options = _options([
    click.option("--out", required=True, type=click.Path(path_type=Path),
                 help="Output DIR/NAME: shards DIR/NAME-000000.tar, ..."),
    click.option("--shard-size", type=int, default=1000, show_default=True),
    click.option("--format", "fmt", default="png", show_default=True,
                 help="png keeps the stored image's teacher prediction exact; jpg/webp are lossy."),
    click.option("--overwrite", is_flag=True, help="Replace an existing dataset of this name."),
])


def _check(o: dict) -> None:
    """Counts and bounds the library does not check itself; one-line errors before any work."""
    from kdgen.contract import max_image_side

    max_image_side()  # a bad $KD_MAX_IMAGE_SIDE fails here, not once per sample
    for key, flag, least in (("limit", "--n", 1), ("batch_size", "--batch-size", 1),
                             ("shard_size", "--shard-size", 1), ("sample_size", "--sample-size", 2)):
        if o.get(key) is not None and o[key] < least:
            raise KDError(f"{flag} must be at least {least}, got {o[key]}")
    for key in ("min_conf", "max_conf"):
        if o.get(key) is not None and not 0 <= o[key] <= 1:
            raise KDError(f"--{key.replace('_', '-')} must be in [0, 1], got {o[key]}")


def _attack_config(o: dict):
    from dataclasses import fields

    from kdtrain.synth.attack import AttackConfig

    return AttackConfig(**{f.name: o[f.name] for f in fields(AttackConfig)}).validate()


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise KDError(f"--device {name}: no CUDA device is available here; use --device cpu")
    return name


def _shard_files(patterns) -> list[str]:
    from kdtrain.data.shards import expand_patterns

    return expand_patterns(list(patterns))


def _load(o: dict):
    return teacher_flags.load(o, _device(o["device"]))


def _stream(files, teacher, batch_size, limit, problems=None):
    from kdtrain.data.shards import iterate_shards

    return iterate_shards(files, teacher.spec, batch_size, limit=limit, problems=problems,
                          num_classes=teacher.num_classes)


def _problems():
    from kdtrain.data.shards import Problems

    return Problems()


def _skipped(problems) -> str:
    """The summary's count of what was passed over (each shard also got one warning line)."""
    c = problems.counts
    parts = [f"{c[k]} {k.replace('_', ' ')}" for k in ("bad_samples", "bad_labels", "shard_errors") if c.get(k)]
    return f"; skipped {', '.join(parts)}" if parts else ""


def _writer(out: Path, teacher, generator: str, params: dict, seed: int, o: dict, inputs):
    from kdgen import manifest
    from kdgen.clitools import command_line
    from kdgen.writer import DatasetWriter

    folder, name = out.parent, out.name
    if not name or not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise KDError(f"--out {out}: the last part names the dataset and takes letters, digits, - and _ only")
    existing = manifest.dataset_files(folder, name)
    if {Path(f).resolve() for f in inputs} & {p.resolve() for p in existing}:
        raise KDError(f"--out {out} would overwrite the input shards; choose another name")
    spec = teacher.spec
    # an unfinished dataset of the same settings resumes (complete shards kept); a finished one is refused
    return DatasetWriter(folder, name, generator=generator, params=params, size=(spec.width, spec.height), seed=seed,
                         shard_size=o["shard_size"], fmt=o["fmt"], class_names=list(teacher.class_names),
                         overwrite=o["overwrite"], command=command_line(), resume=not o["overwrite"])


def _set_label(pattern: str) -> tuple[str, str]:
    """`label=pattern` or a bare pattern, labelled by its file name without shard number and globs."""
    head, sep, tail = pattern.partition("=")
    if sep and head and not re.search(r"[/*?\[{]", head):
        return head, tail
    from kdgen.contract import dataset_name

    return dataset_name(pattern) or pattern, pattern


def attack_cmd(**o):
    """Write boundary-attacked versions of a surrogate set as new shards (up to 4 per source)."""
    _check(o)
    _attack_cmd(o)


def _attack_cmd(o):
    from kdtrain.synth.attack import run_offline

    cfg = _attack_config(o)
    files = _shard_files(o["patterns"])
    teacher = _load(o)
    params = {"attack": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.__dict__.items()},
              "sources": list(o["patterns"]), "teacher": str(o["teacher"])}
    start = time.perf_counter()
    with _writer(o["out"], teacher, "attack", params, o["seed"], o, files) as w:
        problems = _problems()
        stats = run_offline(teacher, _stream(files, teacher, o["batch_size"], o["limit"], problems), w, cfg,
                            o["seed"], o["limit"])
        if stats["sources"] == 0:  # inside the writer, so no empty dataset is left behind
            raise KDError("no samples to attack: the shards matched hold no images")
    secs = time.perf_counter() - start
    click.echo(f"{o['out']}: {stats['written']} samples from {stats['sources']} sources "
               f"({stats['crossed']} crossed), {stats['sources'] / secs:.1f} sources/s{_skipped(problems)}")
    _print_balance(stats["class_counts"], teacher.class_names)


def refine_cmd(**o):
    """Refine a surrogate set toward the teacher's BatchNorm statistics; write the results as new shards."""
    _check(o)
    _refine_cmd(o)


def _refine_cmd(o):
    from dataclasses import asdict, fields

    from tqdm import tqdm

    from kdtrain.synth.refine import RefineConfig, batchnorm_layers, run_offline

    cfg = RefineConfig(**{f.name: o[f.name] for f in fields(RefineConfig)}).validate()
    files = _shard_files(o["patterns"])
    teacher = _load(o)
    batchnorm_layers(teacher)  # refuse before anything is written
    params = {"refine": asdict(cfg), "match_stats": o["match_stats"], "sources": list(o["patterns"]),
              "teacher": str(o["teacher"])}
    start = time.perf_counter()
    with _writer(o["out"], teacher, "refine", params, o["seed"], o, files) as w, \
            tqdm(total=o["limit"], unit="img", disable=not o["progress"], desc="refine") as bar:
        problems = _problems()
        stats = run_offline(teacher, _stream(files, teacher, o["batch_size"], o["limit"], problems), w, cfg,
                            o["seed"], o["limit"], o["match_stats"], progress=bar.update)
        if stats["sources"] == 0:
            raise KDError("no samples to refine: the shards matched hold no images")
        stats["target_entropy"] = _relative_entropy(stats["target_counts"])
        stats["class_entropy"] = _relative_entropy(stats["class_counts"])
        w.meta["summary"] = stats  # written into the manifest when the writer closes
    secs = time.perf_counter() - start
    click.echo(f"{o['out']}: {stats['written']} refined images, {stats['sources'] / secs:.1f} images/s; "
               f"{stats['reached_target']} reached their target; mean teacher confidence {stats['confidence']:.3f}; "
               f"BN statistics loss {stats['bn_loss_start']:.3f} -> {stats['bn_loss_end']:.3f} in "
               f"{stats['steps']:.1f} steps on average (at most {stats['steps_max']}){_skipped(problems)}")
    _print_balance(stats["target_counts"], teacher.class_names, "targets")
    _print_balance(stats["class_counts"], teacher.class_names)


def _refine_options():
    """One click option per RefineConfig field (its help from the field), plus --match-stats."""
    from kdgen.settings import dataclass_options
    from kdtrain.synth.refine import RefineConfig

    opts = [dataclass_options(RefineConfig)]
    opts.append(click.option("--match-stats/--no-match-stats", default=True, show_default=True,
                             help="First give each source image the teacher's input mean/std (as distill does)."))
    opts.append(click.option("--progress/--no-progress", default=True, show_default=True))
    return _options(opts)


def _relative_entropy(counts) -> float | None:
    """Entropy of the class counts over its maximum (1: every class alike, 0: one class); None when empty."""
    import math

    total = sum(counts)
    if total == 0:
        return None
    h = -sum(c / total * math.log(c / total) for c in counts if c)
    return round(h / math.log(len(counts)), 4) if len(counts) > 1 else 1.0


def _print_balance(counts, names, what: str = "teacher predictions") -> None:
    rel = _relative_entropy(counts)
    if rel is None:
        return
    per_class = ", ".join(f"{n} {c}" for n, c in zip(names, counts, strict=True))
    click.echo(f"{what}: relative entropy {rel:.3f}; {per_class}")


def score_cmd(**o):
    """Score surrogate sets against a teacher: class balance, confidence, diversity; table + JSON + PNG."""
    _check(o)
    _score_cmd(o)


def _score_cmd(o):
    from kdtrain.quality.scoring import coverage, format_table, neighbour_radius, plot_scores, score_batches
    from kdtrain.train.config import check_out_folder

    check_out_folder(o["out"])  # before the work, not after it

    sets = [_set_label(p) for p in o["patterns"]]
    labels = [s[0] for s in sets]
    if len(set(labels)) != len(labels):
        raise KDError(f"two --shards sets share the label {labels}; name them as LABEL=PATTERN")
    files = {label: _shard_files([pat]) for label, pat in sets}
    teacher = _load(o)
    real = _eval_batches(o["eval"], teacher, o["batch_size"], o["limit"]) if o["eval"] else None
    scorers, results, rates = {}, {}, {}
    skipped = {}
    for label, fl in files.items():
        start = time.perf_counter()
        skipped[label] = _problems()
        s = score_batches(teacher, _stream(fl, teacher, o["batch_size"], o["limit"], skipped[label]), o["limit"],
                          o["sample_size"], o["seed"])
        rates[label] = s.n / (time.perf_counter() - start)
        results[label] = s.result(teacher.class_names)
        scorers[label] = s
    eval_scorer = None
    if real is not None:
        eval_scorer = score_batches(teacher, real, o["limit"], o["sample_size"], o["seed"])
        results[f"{o['eval']} (real)"] = eval_scorer.result(teacher.class_names)
        real_feats = eval_scorer.sample_feats
        radius = neighbour_radius(real_feats) if len(real_feats) > 1 else None
        for label, scorer in scorers.items():  # same-size feature samples of each set against the real one
            results[label]["coverage"], results[label]["nn_ratio"] = coverage(real_feats, scorer.sample_feats,
                                                                             radius)
    out = o["out"]
    out.mkdir(parents=True, exist_ok=True)
    report = {"teacher": str(o["teacher"]), "class_names": list(teacher.class_names), "limit": o["limit"],
              "sets": {k: {"shards": files.get(k), **v} for k, v in results.items()},
              "samples_per_s": rates}
    (out / "score.json").write_text(json.dumps(report, indent=1) + "\n")
    plot_scores(scorers, out / "score.png", list(teacher.class_names), eval_scorer)
    click.echo(format_table(results))
    for label, problems in skipped.items():
        if _skipped(problems):
            click.echo(f"{label}{_skipped(problems)}")
    for label, r in results.items():
        if r["never_predicted"]:
            click.echo(f"{label}: never predicted: {', '.join(r['never_predicted'])}")
    click.echo(f"wrote {out / 'score.json'} and {out / 'score.png'}")


def _eval_batches(name: str, teacher, batch_size: int, limit: int | None):
    """Real labelled test images (fashion-mnist, cifar10, an image folder, labelled shards) at the teacher's spec."""
    from kdtrain.data.datasets import load_labelled
    from kdtrain.data.stream import labelled_batches

    real = load_labelled(name, train=False)
    if real.num_classes != teacher.num_classes:
        raise KDError(f"--eval {name} has {real.num_classes} classes but the teacher has {teacher.num_classes}")
    return ({"images": x.float().div(255), "labels": y}
            for x, y in labelled_batches(real.dataset, teacher.spec, batch_size, limit))


def curate_cmd(**o):
    """Keep up to K samples per teacher-predicted class from a pool; write them as new shards."""
    _check(o)
    _curate_cmd(o)


def _curate_cmd(o):
    from kdtrain.quality.curate import curate

    cfg = _attack_config(o) if o["fill_with_attack"] else None
    files = _shard_files(o["patterns"])
    teacher = _load(o)
    params = {"per_class": o["per_class"], "min_conf": o["min_conf"], "max_conf": o["max_conf"],
              "sources": list(o["patterns"]), "teacher": str(o["teacher"]),
              "fill_with_attack": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.__dict__.items()}
              if cfg else None}
    with _writer(o["out"], teacher, "curate", params, o["seed"], o, files) as w:
        passes = []  # one Problems per pass over the pool; the first pass's counts are the summary's

        def pool():
            passes.append(_problems())
            return _stream(files, teacher, o["batch_size"], o["limit"], passes[-1])

        rep = curate(teacher, pool, w, o["per_class"],
                     o["min_conf"], o["max_conf"], o["limit"], o["fill_with_attack"], cfg, o["seed"])
        if rep.seen == 0:
            raise KDError("no samples to curate: the shards matched hold no images")
    click.echo(f"{o['out']}: {rep.summary()}{_skipped(passes[0]) if passes else ''}")


score_options = _options([
    click.option("--eval", default=None, help="Real labelled test images to compare with: fashion-mnist, cifar10, "
                                              "..., an image folder or labelled shards."),
    click.option("--sample-size", type=int, default=2000, show_default=True,
                 help="Samples per set kept for the feature projection."),
    click.option("--out", required=True, type=click.Path(path_type=Path, file_okay=False),
                 help="Folder for score.json and score.png."),
])

curate_options = _options([
    click.option("--per-class", required=True, type=int, help="K: samples kept per predicted class."),
    click.option("--min-conf", type=float, default=None, help="Keep only samples whose max-softmax is at least this."),
    click.option("--max-conf", type=float, default=None, help="Keep only samples whose max-softmax is at most this."),
    click.option("--fill-with-attack", is_flag=True,
                 help="Then attack pool samples toward the classes still short (attack options below)."),
])


def register(group) -> None:
    """Add this module's commands to the `kdtrain` click group."""
    group.command("attack", help=attack_cmd.__doc__)(teacher_options(writer_options(attack_options(attack_cmd))))
    group.command("score", help=score_cmd.__doc__)(teacher_options(score_options(score_cmd)))
    group.command("refine", help=refine_cmd.__doc__)(
        teacher_options(writer_options(_refine_options()(refine_cmd))))
    group.command("curate", help=curate_cmd.__doc__)(
        teacher_options(curate_options(writer_options(attack_options(curate_cmd)))))
