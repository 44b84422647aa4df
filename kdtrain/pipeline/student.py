"""Teacher file -> deployable student in one call: the recipe measured best in docs/RESULTS.md.

`make_student(config)` runs the stages in order, each a plain function of the packages below:
  1. surrogate images: kdgen's generator (shaders by default), at the teacher's input size; by default a
     pool of --pool times the images needed, from which
  1b. teacher-guided selection keeps those of the generator settings whose BatchNorm statistics the
     teacher finds closest to its own, an equal share per predicted class (kdtrain.quality.guided);
  2. refinement: the images pulled toward the teacher's BatchNorm statistics (kdtrain.synth.refine);
  3. distillation on the refined images (--no-refine: the selected ones) with the online boundary attack
     (kdtrain.train.distill), which holds out a slice of them (agreement and KL: the quality figure without
     real test data) and writes the student as a checkpoint and as a torch.export file (plus ONNX with the
     onnx extra).
Each stage resumes on its own, byte-identical to a run never interrupted (kdgen's generation, the
refinement's writer, distill's --resume); OUT/stages.json records the settings and the stages finished,
so the same command run again continues from the last finished stage and ends with the same files.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kdgen.settings import knob
from kdtrain.errors import UserError
from kdtrain.synth.refine import PROBE_REACHED, STATS
from kdtrain.train.config import DistillConfig

BASE_STEPS, BASE_BATCH = 1500, 128  # "1x": the budget of every row of docs/RESULTS.md's main table
BASE_SAMPLES = BASE_STEPS * BASE_BATCH
SOURCES = ("shaders", "leaves", "noise", "photos")
SELECTIONS = ("guided", "off")
EVALUATIONS = 10  # evaluations (and checkpoints) in a long distillation
PROBE_IMAGES = 256  # images --stats auto refines to choose the distance (one refinement batch)


def _distill_help(name: str) -> str:
    """The help of the DistillConfig field this option passes through unchanged."""
    return next(f.metadata["help"] for f in dataclasses.fields(DistillConfig) if f.name == name)


@dataclass
class StudentConfig:
    teacher: str | None = knob(None, _distill_help("teacher"))
    teacher_arch: str | None = knob(None, _distill_help("teacher_arch"))
    teacher_spec: str | None = knob(None, _distill_help("teacher_spec"))
    out: str = knob("runs/student", "folder for everything it makes: data/ (surrogate and refined shards), "
                                    "student/ (the run, student.pt, student.pt2), stages.json, summary.json")
    budget: str = knob("1x", f"distillation budget: 1x ({BASE_SAMPLES:,} samples seen: {BASE_STEPS:,} steps of "
                             f"{BASE_BATCH}, the budget of docs/RESULTS.md), 4x, 16x, or a number of samples")
    source: str = knob("shaders", "surrogate images (a kdgen generator): shaders (measured best; needs EGL), "
                                  "leaves, noise or photos (the photos extra)", choices=SOURCES)
    images: int = knob(5000, "surrogate images made and refined (5% of them are held out of training)")
    select: str = knob("guided", "which surrogate images to refine: guided (render a pool of --pool times "
                                 "--images and keep those of the generator settings whose BatchNorm statistics "
                                 "the teacher finds closest to its own, an equal share per predicted class) or "
                                 "off (refine the first --images rendered)", choices=SELECTIONS)
    pool: int = knob(20, "with --select guided: the raw pool's size, in multiples of --images", min=2)
    refine: bool = knob(True, "refine the images toward the teacher's BatchNorm statistics before distilling "
                              "(--no-refine: distil on the selected images as they are, no backward pass)")
    stats: str = knob("raw", "the BatchNorm statistics distance selection and refinement use: raw (DeepInversion's "
                             "L2 norms), kl (each channel measured in its own running spread), or auto (raw, unless "
                             "raw refinement of a probe batch leaves over half of it short of its target classes; "
                             "docs/RESULTS.md, 'The statistics distance')", choices=("auto", *STATS))
    student: str = knob("cnn-tiny", _distill_help("student"))
    adv: str = knob("fraction=0.5,every=1", "online boundary attack during distillation (distill's --adv); "
                                            "'off' to leave it out")
    eval: str | None = knob(None, "real labelled test data, if you have some (fashion-mnist, cifar10, an image "
                                  "folder, labelled shards); default: the test split of the teacher's training "
                                  "data where a kdtrain teacher names it, else none ('none' to skip)")
    reference: str | None = knob(None, "a run folder (or its summary.json), e.g. a student distilled on the real "
                                       "data, whose student top-1 the closing table compares with")
    batch_size: int = knob(BASE_BATCH, "distillation batch size (the budget's steps are samples / batch size)")
    seed: int = knob(0, "seed of every stage")
    workers: int = knob(-1, "processes for rendering (and N-1 data loaders in distillation); -1: one per core, "
                            "at most 8")
    device: str = knob("auto", _distill_help("device"))
    amp: str = knob("auto", _distill_help("amp"))
    threads: int = knob(-1, _distill_help("threads"))
    progress: bool = knob(True, "progress bars (rate and time left) in each stage")

    # Fields that may differ when the same command is run again to continue it.
    RUNTIME_ONLY = ("reference", "workers", "threads", "device", "progress")

    def settings(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in self.RUNTIME_ONLY}

    def validate(self) -> StudentConfig:
        from kdtrain.train.config import check_out_folder

        if not self.teacher:
            raise UserError("--teacher is required: the model file to distil")
        if not Path(self.teacher).is_file():
            raise UserError(f"--teacher {self.teacher}: no such file")
        if self.source not in SOURCES:
            raise UserError(f"--source {self.source!r}: use one of {', '.join(SOURCES)}")
        if self.select not in SELECTIONS:
            raise UserError(f"--select {self.select!r}: use one of {', '.join(SELECTIONS)}")
        if self.stats not in ("auto", *STATS):
            raise UserError(f"--stats {self.stats!r}: use auto, {', '.join(STATS)}")
        if self.select == "guided" and self.pool < 2:
            raise UserError(f"--pool must be at least 2 (times --images), got {self.pool}")
        if self.images < 20:
            raise UserError(f"--images must be at least 20 (5% are held out), got {self.images}")
        if self.batch_size < 1:
            raise UserError(f"--batch-size must be at least 1, got {self.batch_size}")
        budget_samples(self.budget)
        check_out_folder(self.out)
        return self

    def guided(self) -> bool:
        return self.select == "guided"

    def attack(self) -> str | None:
        """The online attack's settings for distill's --adv, or None when it is left out."""
        return None if str(self.adv).lower() in ("off", "none", "") else self.adv

    def rendered(self) -> int:
        """Images stage 1 renders: the guided selection's pool, or the images themselves."""
        return self.images * (self.pool if self.guided() else 1)

    def steps(self) -> int:
        return max(1, math.ceil(budget_samples(self.budget) / self.batch_size))

    def workers_n(self) -> int:
        return self.workers if self.workers > 0 else max(1, min(8, os.cpu_count() or 1))


def budget_samples(text: str) -> int:
    """Samples seen in distillation: `Nx` = N times the base budget, or a plain count (64000, 64_000)."""
    t = str(text).strip().lower().replace(",", "").replace("_", "")
    try:
        value = float(t[:-1]) * BASE_SAMPLES if t.endswith("x") else float(t)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value >= 1):
        raise UserError(f"--budget {text!r}: give 1x, 4x, 16x (times {BASE_SAMPLES:,} samples) or a number of samples")
    return int(value)


# ---------------------------------------------------------------------------------------------- stages

def make_surrogate(cfg: StudentConfig, data: Path, spec, command: str | None) -> dict:
    """Stage 1: cfg.images surrogate images at the teacher's input size, or with guided selection a pool of
    cfg.pool times that many (kdgen resumes a killed run). Made in a child process: an EGL context in this
    process would share it with torch (which crashed here)."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from kdgen.errors import UserError
    from kdgen.runner import RunConfig, generate

    name, n = raw_name(cfg), cfg.rendered()
    run = RunConfig(generator=cfg.source, n=n, size=(spec.width, spec.height), out=data, name=name, seed=cfg.seed,
                    workers=cfg.workers_n(), command=command, progress=cfg.progress)
    try:
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            s = pool.submit(generate, run).result()
    except UserError as e:
        raise UserError(f"making {cfg.source} images: {e}") from None
    return {"made": f"{data / name}-*.tar", "count": n, "unit": "images", "rate": round(s["images_per_s"], 1)}


def trained_name(cfg: StudentConfig) -> str:
    """The set distillation trains on: the refined images, or the selected (or rendered) ones unrefined."""
    return f"{cfg.source}_ref" if cfg.refine else cfg.source


def raw_name(cfg: StudentConfig) -> str:
    """The rendered set's name: the pool guided selection chooses from, or the images refined."""
    return f"{cfg.source}_pool" if cfg.guided() else cfg.source


def choose_stats(cfg: StudentConfig, data: Path) -> dict:
    """Stage 1a with --stats auto: the statistics distance, from raw refinement of the rendered set's first
    PROBE_IMAGES images (kdtrain.synth.refine.probe_stats); its own seed, so no other stage's draws move."""
    import torch

    from kdtrain.data.shards import iterate_shards
    from kdtrain.synth.common import as_teacher_sees
    from kdtrain.synth.refine import batchnorm_layers, probe_stats

    teacher = load_teacher_for(cfg)
    batchnorm_layers(teacher)  # refuses a teacher without BatchNorm in one line
    batch = next(iter(iterate_shards([f"{data / raw_name(cfg)}-0*.tar"], teacher.spec, PROBE_IMAGES)))
    x = as_teacher_sees(batch["images"], teacher.spec)
    start = time.perf_counter()
    stats, reached = probe_stats(teacher, x, torch.Generator().manual_seed(cfg.seed))
    return {"made": f"--stats {stats}", "count": len(x), "unit": "images", "stats": stats,
            "probe_reached": round(reached, 4), "rate": round(len(x) / (time.perf_counter() - start), 1)}


def select_set(cfg: StudentConfig, data: Path, command: str | None, stats: str) -> dict:
    """Stage 1b of a guided run: cfg.images of the pool, kept by the teacher's BatchNorm statistics loss of
    their generator settings and an equal share per predicted class (kdtrain.quality.guided). Cheap (one
    teacher forward per pool image), so a killed selection simply runs again."""
    from tqdm import tqdm

    from kdgen.shardset import DatasetWriter
    from kdtrain.data.shards import iterate_shards
    from kdtrain.quality import guided

    teacher = load_teacher_for(cfg)
    spec, classes = teacher.spec, int(teacher.num_classes)
    pool = [f"{data / raw_name(cfg)}-0*.tar"]
    total = cfg.rendered()
    start = time.perf_counter()
    with tqdm(total=total, unit="img", desc="select", disable=not cfg.progress) as bar:
        score = guided.score_pool(teacher, iterate_shards(pool, spec, 256), progress=bar.update, stats=stats)
    kept = guided.select(score, cfg.images, classes, cfg.seed)
    report = guided.summary(score, kept, classes)
    params = {"pool": pool, "teacher": str(cfg.teacher), "group_images": guided.GROUP_IMAGES, "stats": stats}
    with DatasetWriter(data, cfg.source, generator="guided", params=params, size=(spec.width, spec.height),
                       seed=cfg.seed, command=command, overwrite=True, generator_version=guided.VERSION) as writer:
        guided.write_kept(iterate_shards(pool, spec, 256), kept, writer)
        writer.meta["summary"] = report
    return {"made": f"{data / cfg.source}-*.tar", "count": len(kept), "unit": "images",
            "rate": round(total / (time.perf_counter() - start), 1), **report}


def refine_set(cfg: StudentConfig, data: Path, command: str | None, stats: str) -> dict:
    """Stage 2: every surrogate image refined toward the teacher's BatchNorm statistics (RefineConfig's
    defaults, the measured ones), written as new shards; a killed run resumes byte-identically."""
    from dataclasses import asdict

    import torch
    from tqdm import tqdm

    from kdgen import manifest
    from kdgen.shardset import DatasetWriter
    from kdtrain.data.shards import iterate_shards
    from kdtrain.synth.refine import VERSION, RefineConfig, batchnorm_layers, run_offline

    name = f"{cfg.source}_ref"
    made = {"made": f"{data / name}-*.tar", "count": cfg.images, "unit": "images"}
    old = manifest.load(manifest.manifest_path(data, name))
    if old is not None and old.get("complete") and old.get("num_samples") == cfg.images:
        return {**made, **balance_of(old.get("summary") or {}, old.get("class_names"))}  # finished, not yet recorded
    teacher = load_teacher_for(cfg)
    batchnorm_layers(teacher)  # refuses a teacher without BatchNorm before anything is written
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    rcfg = RefineConfig(stats=stats)
    sources = [f"{data / cfg.source}-0*.tar"]
    params = {"refine": asdict(rcfg), "match_stats": True, "sources": sources, "teacher": str(cfg.teacher)}
    spec = teacher.spec
    start = time.perf_counter()
    with DatasetWriter(data, name, generator="refine", params=params, size=(spec.width, spec.height), seed=cfg.seed,
                       class_names=list(teacher.class_names), command=command, resume=True,
                       generator_version=VERSION) as writer, \
            tqdm(total=cfg.images, unit="img", desc="refine", disable=not cfg.progress) as bar:
        stats = run_offline(teacher, iterate_shards(sources, spec, 256, limit=cfg.images), writer, rcfg, cfg.seed,
                            cfg.images, match_stats=True, progress=bar.update)
        balanced = balance_of(stats, list(teacher.class_names))
        # into the manifest, with the entropies, as `kdtrain refine` keeps it
        writer.meta["summary"] = {**stats, "target_entropy": balanced.get("target_entropy"),
                                  "class_entropy": balanced.get("class_entropy")}
    return {**made, "count": stats["written"], "rate": round(stats["sources"] / (time.perf_counter() - start), 1),
            "confidence": stats["confidence"], "bn_loss": [stats["bn_loss_start"], stats["bn_loss_end"]],
            **balanced}


def balance_of(stats: dict, class_names: list[str] | None) -> dict:
    """What refinement gave each class: the teacher's predictions of the refined images and the targets,
    per class, with the relative entropy of each histogram (1: every class an equal share)."""
    from kdtrain.quality.scoring import balance

    out = {"class_names": class_names} if class_names else {}
    for key, name in (("class_counts", "class"), ("target_counts", "target")):
        if stats.get(key):
            out.update({key: list(stats[key]), f"{name}_entropy": balance(stats[key])})
    if stats.get("reached_target") is not None:
        out["reached_target"] = stats["reached_target"]
    return out


def distill_student(cfg: StudentConfig, data: Path, run: Path, command: str | None) -> dict:
    """Stage 3: distillation on the refined (or with --no-refine the selected) images, with the online attack;
    the run exports the student (student.pt2, and student.onnx with the onnx extra) and resumes from its last
    checkpoint."""
    from kdtrain.train.distill import distill

    adv = cfg.attack()
    # an "epoch" (evaluation and checkpoint) every pass over the images, or every tenth of a long budget
    epoch = max(cfg.images, cfg.steps() * cfg.batch_size // EVALUATIONS)
    dcfg = DistillConfig(teacher=cfg.teacher, teacher_arch=cfg.teacher_arch, teacher_spec=cfg.teacher_spec,
                         student=cfg.student, shards=[f"{data / trained_name(cfg)}-0*.tar"], adv=adv,
                         steps=cfg.steps(), batch_size=cfg.batch_size, samples_per_epoch=epoch, eval=cfg.eval,
                         seed=cfg.seed, workers=cfg.workers - 1 if cfg.workers > 0 else -1, device=cfg.device,
                         amp=cfg.amp, threads=cfg.threads, out=str(run), resume=True, progress=cfg.progress,
                         tensorboard=False)
    s = distill(dcfg, command=command)
    keep = ("model_file", "export", "steps", "samples_seen", "student_top1", "teacher_top1", "agreement",
            "eval_samples", "holdout_agreement", "holdout_kl", "holdout_samples", "precision")
    return {"made": s["model_file"], "count": s["steps"], "unit": "steps",
            "rate": s["samples_per_s"], **{k: s.get(k) for k in keep}}


def load_teacher_for(cfg: StudentConfig):
    """The teacher on the run's device, in the run's precision, channels_last where it is an eager module
    (faster convolutions), as the teacher-taking commands load it."""
    import torch

    from kdtrain.models import precision
    from kdtrain.models.teachers import load_teacher

    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    teacher = load_teacher(cfg.teacher, device, arch=cfg.teacher_arch, spec=cfg.teacher_spec)
    if isinstance(teacher.model, torch.nn.Module) and not isinstance(teacher.model, torch.jit.ScriptModule):
        teacher.model.to(memory_format=torch.channels_last)
    return teacher.set_precision(precision.resolve(cfg.amp, device))


class Stages:
    """OUT/stages.json: the run's settings and the stages finished so far, with what each made."""

    def __init__(self, out: Path, settings: dict, echo: Callable[[str], None]):
        self.path, self.settings, self.echo = out / "stages.json", settings, echo
        old = json.loads(self.path.read_text()) if self.path.exists() else None
        if old is not None and old.get("settings") != settings:
            diff = sorted(k for k in set(settings) | set(old.get("settings", {}))
                          if settings.get(k) != old.get("settings", {}).get(k))
            raise UserError(f"{out} holds a student run made with other settings ({', '.join(diff)}); run the same "
                          f"command to continue it, or choose another --out")
        self.done: dict = old["done"] if old else {}
        out.mkdir(parents=True, exist_ok=True)
        self._save()

    def _save(self) -> None:
        from kdgen.contract import write_json

        write_json(self.path, {"settings": self.settings, "done": self.done}, indent=1)

    def run(self, number: int, total: int, name: str, title: str, fn: Callable[[], dict]) -> dict:
        if name in self.done:
            self.echo(f"[{number}/{total}] {title}: done earlier ({_took(self.done[name]['seconds'])})")
            return self.done[name]
        self.echo(f"[{number}/{total}] {title}")
        start = time.perf_counter()
        result = fn()
        result["seconds"] = round(time.perf_counter() - start, 1)
        self.done[name] = result
        self._save()
        self.echo(f"[{number}/{total}] {title}: done in {_took(result['seconds'])}")
        return result


def make_student(cfg: StudentConfig, command: str | None = None, echo: Callable[[str], None] = print) -> dict:
    """Run (or continue) every stage; returns the summary (also OUT/summary.json) and echoes the closing table."""
    from kdgen.lock import OutputLock

    cfg.validate()
    out = Path(cfg.out)
    spec = load_teacher_for(cfg).spec  # a bad teacher file fails here, before anything is written
    with OutputLock(out, "student"):  # a second `kdtrain student --out OUT` is refused while this one runs
        return _run_stages(cfg, out, spec, command, echo)


def _run_stages(cfg: StudentConfig, out: Path, spec, command: str | None, echo: Callable[[str], None]) -> dict:
    from kdgen.contract import write_json

    data, run = out / "data", out / "student"
    stages = Stages(out, cfg.settings(), echo)
    attack = " with the online attack" if cfg.attack() else ""
    steps = cfg.steps()
    plan = [("surrogate", f"surrogate images: {cfg.rendered():,} {cfg.source} at "
                          f"{spec.width}x{spec.height}", lambda: make_surrogate(cfg, data, spec, command))]
    made: dict = {}

    def stats() -> str:  # the distance chosen by the probe stage, or the one given
        return made["stats"]["stats"] if "stats" in made else cfg.stats

    if cfg.stats == "auto" and (cfg.guided() or cfg.refine):
        plan.append(("stats", f"statistics distance: raw refinement of {PROBE_IMAGES} of them, kl if it leaves "
                              "over half short of their targets", lambda: choose_stats(cfg, data)))
    if cfg.guided():
        plan.append(("select", f"teacher-guided selection: {cfg.images:,} of them, by their settings' BatchNorm "
                               "statistics and an equal share per class",
                     lambda: select_set(cfg, data, command, stats())))
    if cfg.refine:
        plan.append(("refine", f"refinement toward the teacher's BatchNorm statistics: {cfg.images:,} images",
                     lambda: refine_set(cfg, data, command, stats())))
    plan += [("distill", f"distillation into {cfg.student}{attack}: {steps:,} steps of {cfg.batch_size}, then export",
              lambda: distill_student(cfg, data, run, command))]
    for i, (name, title, fn) in enumerate(plan, 1):
        made[name] = stages.run(i, len(plan), name, title, fn)
    summary = {"teacher": cfg.teacher, "out": str(out), "budget_samples": steps * cfg.batch_size,
               **{k: made["distill"].get(k) for k in ("model_file", "export", "steps", "samples_seen", "student_top1",
                                                     "teacher_top1", "agreement", "eval_samples", "holdout_agreement",
                                                     "holdout_kl", "holdout_samples")},
               "seconds": round(sum(m["seconds"] for m in made.values()), 1), "stages": made}
    if cfg.reference:
        ref = _reference_top1(Path(cfg.reference))
        summary["reference_top1"] = ref
        if ref and summary["student_top1"] is not None:
            summary["fraction_of_reference"] = round(summary["student_top1"] / ref, 4)
    write_json(out / "summary.json", summary, indent=1)
    echo(closing_table(summary))
    return summary


def _reference_top1(path: Path) -> float | None:
    file = path / "summary.json" if path.is_dir() else path
    if not file.is_file():
        raise UserError(f"--reference {path}: no summary.json there; give a finished run folder")
    return json.loads(file.read_text()).get("student_top1")


def _took(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def closing_table(s: dict) -> str:
    """What the run made, stage by stage, and the student's quality figures."""
    st = s["stages"]
    rate = {"images": "images/s", "steps": "samples/s"}
    export = s["export"] or {}
    rows = [(stage, m["made"], f"{m['count']:,} {m['unit']}", f"{m.get('rate') or 0:,.1f} {rate[m['unit']]}",
             _took(m["seconds"])) for stage, m in st.items()]
    rows.append(("export", ", ".join(p for p in (export.get("pt2"), export.get("onnx")) if p), "", "", ""))
    head = ("stage", "made", "count", "rate", "time")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [head, *rows]]
    lines.append(f"total {_took(s['seconds'])}")
    if st.get("stats"):
        lines.append(f"statistics distance: {st['stats']['stats']} (raw refinement of a probe batch reached "
                     f"{100 * st['stats']['probe_reached']:.0f}% of its targets; raw needs {100 * PROBE_REACHED:.0f}%)")
    sel = st.get("select") or {}
    if sel.get("groups"):
        lines.append(f"teacher-guided selection: {sel['kept']:,} of {sel['pool_images']:,} pool images, from "
                     f"{sel['groups_kept']} of {sel['groups']} generator settings; per predicted class "
                     f"{min(sel['class_counts']):,} to {max(sel['class_counts']):,}")
    ref = st.get("refine") or {}
    if ref.get("class_counts"):
        counts = ref["class_counts"]
        names = ref.get("class_names") or [str(i) for i in range(len(counts))]
        low = min(range(len(counts)), key=counts.__getitem__)
        lines.append(f"refined images per class (teacher's prediction): relative entropy {ref['class_entropy']:.3f}, "
                     f"fewest {counts[low]:,} ({names[low]}), most {max(counts):,}")
    if s.get("holdout_agreement") is not None:
        kind = "refined" if "refine" in st else "surrogate"
        lines.append(f"held-out {kind} images ({s['holdout_samples']}): teacher-student agreement "
                     f"{100 * s['holdout_agreement']:.1f}%, KL {s['holdout_kl']:.4f}")
    if s.get("student_top1") is not None:
        lines.append(f"real test data ({s['eval_samples']:,} images): student top-1 {100 * s['student_top1']:.1f}%, "
                     f"teacher {100 * s['teacher_top1']:.1f}%, agreement {100 * s['agreement']:.1f}%")
    if s.get("reference_top1") is not None:
        frac = s.get("fraction_of_reference")
        lines.append(f"reference student top-1 {100 * s['reference_top1']:.1f}%"
                     + (f": this student reaches {100 * frac:.1f}% of it" if frac is not None else ""))
    return "\n".join(lines)
