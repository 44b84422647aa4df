"""The results report of a pipeline run: a Markdown page (table, figures, targets, commands) regenerated from
the run's summary files alone, so it never disagrees with them.

Generic: the experiment (set order, aliases, the reference set, targets, the paper comparison) comes from
a report config beside the Makefile (pipeline.yaml, see ReportConfig); without one the sets are listed by
name and no targets are checked. Inputs (any set may be missing; the report shows what exists):
  DATA/NAME-manifest.json                    kdgen manifests (command, seed, num_samples, seconds)
  RUNS/teacher/summary.json, config.yaml     the teacher's run (config.yaml holds the command that made it)
  RUNS/students/SET/summary.json, config.yaml one distillation run per surrogate set; SET 'original' = real data
  RUNS/scores/score.json, score.png          `kdtrain score` with one labelled set per SET
  RUNS/sheets/SET.png                        contact sheets (`kdgen preview`)
  RUNS/NOTES.md                              free-text analysis, included verbatim
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from kdgen import contract
from kdtrain.errors import KDError

METRICS = (("relative_entropy", "relative entropy"), ("mean_max_softmax", "confidence"),
           ("diversity", "diversity"), ("mean_top2_margin", "top-2 margin"), ("feature_spread", "feature spread"),
           ("coverage", "coverage"), ("nn_ratio", "nearest-sample distance ratio"))
DASH = "—"


@dataclass
class ReportConfig:
    """The experiment a report describes; read from YAML (pipeline.yaml) by load_config."""

    title: str = "Results: distillation with surrogate data"
    reference: str = "original"  # the set distilled on the real training images, the baseline of the others
    order: list[str] = field(default_factory=list)  # sets first in the table, in this order; the rest after
    aliases: dict[str, list[str]] = field(default_factory=dict)  # set -> dataset names, where they differ
    datasets: dict[str, dict] = field(default_factory=dict)  # real data name -> {images, about}
    targets: list[dict] = field(default_factory=list)  # {what, prefix, fraction, paper, attacked_only}
    paper: list[str] = field(default_factory=list)  # "What differs from the paper" bullets, {names} filled in
    path: str | None = None  # the file it was read from

    def sort_key(self, name: str) -> tuple:
        return (self.order.index(name), "") if name in self.order else (len(self.order), name)


def load_config(path: Path | None) -> ReportConfig:
    """ReportConfig from a YAML file (None: the generic defaults); one-line errors for what is wrong."""
    if path is None:
        return ReportConfig()
    path = Path(path)
    if not path.is_file():
        raise KDError(f"--config {path}: no such file")
    d = _read_yaml(path)
    if not isinstance(d, dict):
        raise KDError(f"--config {path}: expected a mapping of settings")
    names = {f.name for f in fields(ReportConfig)} - {"path"}
    unknown = sorted(set(d) - names)
    if unknown:
        raise KDError(f"--config {path}: unknown keys {', '.join(unknown)}; use {', '.join(sorted(names))}")
    for t in d.get("targets") or []:
        missing = [k for k in ("what", "prefix", "fraction") if k not in t]
        if missing:
            raise KDError(f"--config {path}: a target lacks {', '.join(missing)}")
    d["order"] = [str(n) for n in d.get("order") or []]
    d["aliases"] = {k: [v] if isinstance(v, str) else list(v) for k, v in (d.get("aliases") or {}).items()}
    return ReportConfig(**{k: v for k, v in d.items() if v is not None}, path=str(path))


@dataclass
class SetRun:
    """One student run and everything the report knows about the data it was distilled on."""

    name: str
    summary: dict
    config: dict
    manifests: list[dict] = field(default_factory=list)
    score: dict | None = None
    sheet: Path | None = None
    is_reference: bool = False  # the student on the real training images (ReportConfig.reference)
    real_images: int | None = None  # size of its real training data, where the report config knows it
    target: dict | None = None  # the ReportConfig target this set is checked against

    @property
    def top1(self) -> float | None:
        return self.summary.get("student_top1")

    @property
    def images(self) -> int | None:
        if self.manifests:
            return sum(int(m.get("num_samples", 0)) for m in self.manifests)
        return self.real_images

    @property
    def gen_s(self) -> float | None:
        """Generation seconds of the data; None where a manifest did not record them (e.g. attacked sets)."""
        secs = [m.get("seconds") for m in self.manifests]
        return None if not secs or None in secs else float(sum(secs))

    @property
    def is_attack(self) -> bool:
        """An attacked set: offline (an 'attack' manifest) or online (adv_* knobs in the config)."""
        return any(m.get("generator") == "attack" for m in self.manifests) or _attacked_name(self.name)


# ---------------------------------------------------------------- reading

def _read_json(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise KDError(f"{path} is not valid JSON; rerun the stage that writes it") from None


def _read_yaml(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        raise KDError(f"{path} is not valid YAML; rerun the stage that writes it") from None


def _norm(name: str) -> str:
    """Labels are typed both as leaves-adv and leaves_adv."""
    return name.lower().replace("-", "_")


def _manifests(data: Path) -> dict[str, dict]:
    """Every final manifest in DATA by normalised dataset name (per-rank manifests are left out)."""
    return {_norm(name): meta for name, meta in contract.manifests_in(data, _read_json).items()}


def _data_names(name: str, config: dict, aliases: dict) -> list[str]:
    """Datasets a student saw: from its --shards patterns, else by its set name (and aliases)."""
    names = [contract.dataset_name(p) for p in config.get("shards") or []]
    return names or [name, *aliases.get(name, ())]


def _online(run: SetRun) -> bool:
    """Trained with the online attack (distill --adv): part of every batch was attacked as it was drawn."""
    return bool(run.config.get("adv"))


def _find_score(scores: dict, run: SetRun, data_names: list[str]) -> dict | None:
    """The score of the data the student saw: its --shards sets (else its name and aliases). None for an
    online-attacked student: the stream its hook produced was never scored, and the score of the
    offline-attacked set of the same name would describe data it never trained on."""
    by_norm = {_norm(k): v for k, v in scores.items()}
    if run.is_reference:  # the real data's scores come from the real test images
        return next((v for k, v in scores.items() if k.endswith("(real)")), by_norm.get(_norm(run.name)))
    if _online(run):
        return None
    return next((by_norm[_norm(n)] for n in data_names if _norm(n) in by_norm), None)


def _find_sheet(sheets: Path, names: list[str]) -> Path | None:
    for n in names:
        for variant in (n, n.replace("-", "_"), n.replace("_", "-")):
            if (sheets / f"{variant}.png").exists():
                return sheets / f"{variant}.png"
    return None


def _target_for(run: SetRun, conf: ReportConfig) -> dict | None:
    """The target a set is checked against: its family (name prefix); some only where attacked."""
    for t in conf.targets:
        if run.name.startswith(t["prefix"]) and (not t.get("attacked_only") or run.is_attack):
            return t
    return None


def collect(runs: Path, data: Path, conf: ReportConfig | None = None) -> tuple[list[SetRun], dict]:
    """The student runs in report order (the config's, then the others by name), and the score file."""
    conf = conf or ReportConfig()
    if not runs.is_dir():
        raise KDError(f"--runs {runs}: no such folder; run the pipeline first (make pipeline)")
    summaries = sorted(runs.glob("students/*/summary.json"))
    if not summaries:
        raise KDError(f"no students in {runs}/students/*/summary.json; run `make students` first")
    manifests = _manifests(data)
    score_file = _read_json(runs / "scores" / "score.json") or {}
    scores = score_file.get("sets", {})
    out = []
    for path in summaries:
        name = path.parent.name
        run = SetRun(name, _read_json(path), _read_yaml(path.parent / "config.yaml"),
                     is_reference=name == conf.reference)
        run.real_images = (conf.datasets.get(str(run.config.get("data")).lower()) or {}).get("images")
        names = _data_names(name, run.config, conf.aliases)
        run.manifests = [manifests[_norm(n)] for n in names if _norm(n) in manifests]
        run.score = _find_score(scores, run, names)
        run.sheet = _find_sheet(runs / "sheets", [name, *conf.aliases.get(name, ()), *names])
        run.target = _target_for(run, conf)
        out.append(run)
    return sorted(out, key=lambda r: conf.sort_key(r.name)), score_file


# ---------------------------------------------------------------- numbers

def _pct(x: float | None) -> str:
    return DASH if x is None else f"{100 * x:.1f}%"


def _num(x: float | None, digits: int = 3) -> str:
    return DASH if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _count(n: int | None) -> str:
    return DASH if n is None else f"{n:,}"


def _duration(s: float | None) -> str:
    if s is None:
        return DASH
    if s < 90:
        return f"{s:.0f} s"
    return f"{s / 60:.1f} min" if s < 5400 else f"{s / 3600:.1f} h"


def _ranks(v: list[float]) -> list[float]:
    """1-based ranks, ties sharing their average rank."""
    order = sorted(range(len(v)), key=lambda i: v[i])
    ranks = [0.0] * len(v)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: list[float], y: list[float]) -> float | None:
    """Spearman's rho: Pearson correlation of the average ranks; None where undefined (n < 3, constant)."""
    if len(x) != len(y) or len(x) < 3:
        return None
    rx, ry = _ranks(x), _ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sx, sy = math.sqrt(sum((a - mx) ** 2 for a in rx)), math.sqrt(sum((b - my) ** 2 for b in ry))
    return cov / (sx * sy) if sx and sy else None


def _score_value(run: SetRun, key: str) -> float | None:
    return None if run.score is None else run.score.get(key)


def _original(runs: list[SetRun]) -> float | None:
    """Top-1 of the reference student (the one on the real training images)."""
    return next((r.top1 for r in runs if r.is_reference), None)


def _ref_name(runs: list[SetRun]) -> str:
    return next((r.name for r in runs if r.is_reference), "original")


def _relative(run: SetRun, ref: float | None) -> float | None:
    return None if run.top1 is None or not ref else run.top1 / ref


# ---------------------------------------------------------------- figures

def plot_accuracy(runs: list[SetRun], teacher_top1: float | None, path: Path) -> None:
    """Student top-1 per set; the original-data student as the reference line, each target as a red tick."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref = _original(runs)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.8 * len(runs) + 2), 3.6))
    xs = range(len(runs))
    tops = [100 * (r.top1 or 0) for r in runs]
    colours = ["#777777" if r.is_reference else "#d62728" if r.is_attack else "#1f77b4" for r in runs]
    ax.bar(xs, tops, color=colours)
    if any(r.is_attack for r in runs):
        ax.bar([0], [0], color="#d62728", label="attacked set")  # a legend entry only
    for x, t in zip(xs, tops):  # inside the bar top, clear of the target ticks
        ax.text(x, max(t - 6, 1), f"{t:.1f}", ha="center", color="white", fontsize=8)
    if ref:
        ax.axhline(100 * ref, color="black", lw=1, label=f"{_ref_name(runs)}-data student {100 * ref:.1f}%")
        label = "target"  # one legend entry for all target ticks
        for x, r in zip(xs, runs):
            if r.target:
                ax.hlines(100 * ref * r.target["fraction"], x - 0.4, x + 0.4, colors="red", lw=2, linestyles="dashed",
                          label=label)
                label = None
    if teacher_top1:
        ax.axhline(100 * teacher_top1, color="green", lw=1, ls=":", label=f"teacher {100 * teacher_top1:.1f}%")
    ax.set_xticks(list(xs), [r.name for r in runs], rotation=30, ha="right")
    ax.set_ylabel("student top-1 (%)")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=4, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_score_vs_top1(runs: list[SetRun], path: Path) -> bool:
    """One scatter per score metric against student top-1; False (nothing written) without scored students."""
    pts = [r for r in runs if r.score and r.top1 is not None]
    if not pts:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(METRICS), figsize=(3 * len(METRICS), 3), sharey=True)
    for ax, (key, label) in zip(axes, METRICS):
        for r in pts:
            v = r.score.get(key)
            if v is not None:
                ax.scatter(v, 100 * r.top1, s=18)
                ax.annotate(r.name, (v, 100 * r.top1), fontsize=6, xytext=(2, 2), textcoords="offset points")
        ax.set_xlabel(label)
    axes[0].set_ylabel("student top-1 (%)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ---------------------------------------------------------------- sections

def table(runs: list[SetRun]) -> str:
    ref = _original(runs)
    head = ["set", "student top-1", "% of original", "agreement", "relative entropy", "confidence", "diversity",
            "coverage", "distance ratio", "images", "wall time"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in runs:
        distill_s = r.summary.get("wall_s")
        wall = None if distill_s is None else distill_s + (r.gen_s or 0)
        mark = "" if r.gen_s is not None or not r.manifests or wall is None else "*"
        cells = [f"`{r.name}`", _pct(r.top1), _pct(_relative(r, ref)), _pct(r.summary.get("agreement")),
                 _num(_score_value(r, "relative_entropy")), _num(_score_value(r, "mean_max_softmax")),
                 _num(_score_value(r, "diversity")), _num(_score_value(r, "coverage")),
                 _num(_score_value(r, "nn_ratio"), 2), _count(r.images), _duration(wall) + mark]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _teacher_top1(teacher: dict | None, runs: list[SetRun]) -> float | None:
    """A teacher run's own test top-1 is its summary's student_top1; else what the students measured."""
    if teacher and teacher.get("student_top1") is not None:
        return teacher["student_top1"]
    return next((r.summary["teacher_top1"] for r in runs if r.summary.get("teacher_top1") is not None), None)


def targets_section(runs: list[SetRun], conf: ReportConfig, curves: dict | None = None) -> tuple[str, int, int]:
    """Markdown, targets met, targets checked. `curves` (budget.collect over RUNS and RUNS-xN): a target is
    also checked at the longer budgets, against the reference student of the same budget."""
    ref = _original(runs)
    lines, met, checked = ["## Targets", ""], 0, 0
    if not conf.targets:
        return "", 0, 0
    if not ref:
        return "## Targets\n\nNo original-data student: the targets cannot be checked.\n", 0, 0
    lines.append(f"Relative to the original-data student ({_pct(ref)}); the best run of each family counts.")
    lines.append("")
    for t in conf.targets:
        what, frac, paper = t["what"], t["fraction"], t.get("paper", DASH)
        family = [r for r in runs if r.target is t and r.top1 is not None]
        if not family:
            lines.append(f"- **{what}** (>= {frac:.0%}; paper {paper}): no run")
            continue
        best = max(family, key=lambda r: r.top1)
        rel = best.top1 / ref
        checked += 1
        met += rel >= frac
        others = ", ".join(f"`{r.name}` {_pct(r.top1 / ref)}" for r in family if r is not best)
        line = (f"- **{what}** (>= {frac:.0%}; paper {paper}): **{'met' if rel >= frac else 'missed'}** — "
                f"`{best.name}` {_pct(best.top1)} top-1 = {_pct(rel)} of original"
                + (f" (also {others})" if others else ""))
        longer = _best_at_longer_budget(t, curves or {}, conf.reference, best.summary.get("samples_seen"))
        if longer:
            l_rel, l_name, l_n, l_top1 = longer
            line += (f"; at {l_n:,} samples seen: **{'met' if l_rel >= frac else 'missed'}** — `{l_name}` "
                     f"{_pct(l_top1)} = {_pct(l_rel)} of the original-data student at that budget")
            met += rel < frac <= l_rel
        lines.append(line)
    return "\n".join(lines) + "\n", met, checked


def _best_at_longer_budget(t: dict, curves: dict, reference: str, base: int | None):
    """(ratio, set, samples seen, top-1) of the family's best run above the base budget, or None."""
    ref, best = curves.get(reference, {}), None
    for name, pts in curves.items():
        if not name.startswith(t["prefix"]) or (t.get("attacked_only") and not _attacked_name(name)):
            continue
        for n, s in pts.items():
            r = ref.get(n, {}).get("student_top1")
            if r and base and n > base and (best is None or s["student_top1"] / r > best[0]):
                best = (s["student_top1"] / r, name, n, s["student_top1"])
    return best


def _attacked_name(name: str) -> bool:
    return "adv" in name or "online" in name


def spearman_section(runs: list[SetRun]) -> str:
    pts = [r for r in runs if r.score and r.top1 is not None]
    lines = ["## Does the score predict the student?", ""]
    online = [f"`{r.name}`" for r in runs if _online(r)]
    if online:
        lines += [f"Left out: {', '.join(online)}, distilled with the online attack (`--adv`) on a stream that "
                  "no score measured (the offline-attacked sets of the same names are other data).", ""]
    if len(pts) < 3:
        return "\n".join(lines + [f"Needs scores and students for at least 3 sets; found {len(pts)}.", ""])
    lines += ["Spearman rank correlation (average ranks for ties) between each `kdtrain score` metric of a set "
              f"and the top-1 of the student distilled on it. The `{_ref_name(runs)}` row's scores are those of "
              "the real test images. rho = 1: the metric orders the sets exactly as their students; with this few sets "
              "only a large |rho| means much.", "",
              "| metric | Spearman rho | n |", "|---|---|---|"]
    for key, label in METRICS:
        both = [(r.score[key], r.top1) for r in pts if r.score.get(key) is not None]
        rho = spearman([a for a, _ in both], [b for _, b in both])
        lines.append(f"| {label} | {_num(rho, 2)} | {len(both)} |")
    lines += ["", "| set | student top-1 | " + " | ".join(label for _, label in METRICS) + " |",
              "|" + "---|" * (len(METRICS) + 2)]
    for r in pts:
        lines.append(f"| `{r.name}` | {_pct(r.top1)} | " + " | ".join(_num(r.score.get(k)) for k, _ in METRICS)
                     + " |")
    return "\n".join(lines) + "\n"


def _settings(config: dict) -> str:
    """What a run's config.yaml says where it recorded no command (runs made before commands were stored)."""
    from kdgen.settings import defaults
    from kdtrain.train.config import DistillConfig

    base = defaults(DistillConfig)
    diff = [f"{k}={v}" for k, v in config.items() if k in base and v != base[k] and k != "out"]
    return "# command not recorded; settings that differ from the defaults: " + (", ".join(diff) or "none")


def _command(config: dict) -> str:
    return config.get("command") or (_settings(config) if config else "# (config.yaml missing)")


def commands_section(runs: list[SetRun], data: Path, teacher_cfg: dict, runs_dir: Path, out_md: Path,
                     conf: ReportConfig) -> str:
    lines = ["## Commands and seeds", "", "Data (from each set's manifest in "
             f"`{data}`):", "", "```sh"]
    manifests = _manifests(data)
    for key in sorted(manifests, key=conf.sort_key):
        m = manifests[key]
        secs = f", {_duration(m['seconds'])}" if m.get("seconds") is not None else ""
        lines.append(f"# {m.get('name', key)}: seed {m.get('seed', DASH)}, {_count(m.get('num_samples'))} images{secs}")
        lines.append(m.get("command") or "# (command not recorded)")
    if not manifests:
        lines.append("# no manifests found")
    lines += ["```", "", "Teacher and students (the command each run's config.yaml recorded):", "", "```sh"]
    if teacher_cfg:
        lines += [f"# teacher: seed {teacher_cfg.get('seed', DASH)}", _command(teacher_cfg)]
    for r in runs:
        s = r.summary
        lines.append(f"# {r.name}: seed {r.config.get('seed', DASH)}, {_count(s.get('steps'))} steps, "
                     f"{_count(s.get('samples_seen'))} samples, generation {_duration(r.gen_s)}, "
                     f"distillation {_duration(s.get('wall_s'))}")
        lines.append(_command(r.config))
    config = f" --config {conf.path}" if conf.path else ""
    lines += ["```", "", "This report:", "", "```sh",
              f"kdtrain report --runs {runs_dir} --data {data} --out {out_md}{config}", "```", ""]
    return "\n".join(lines)


def differences_section(runs: list[SetRun], teacher: dict | None, teacher_cfg: dict, conf: ReportConfig) -> str:
    """The config's `paper` bullets, their {names} filled in from the runs; nothing without them."""
    if not conf.paper:
        return ""
    steps = sorted({r.summary.get("steps") for r in runs} - {None})
    batch = sorted({r.config.get("batch_size") for r in runs} - {None})
    devices = sorted({r.summary.get("device") for r in runs} - {None})
    temps = sorted({r.config.get("temperature") for r in runs} - {None})
    dataset = teacher_cfg.get("data") or next((r.config.get("data") for r in runs if r.config.get("data")), None)
    about = (conf.datasets.get(str(dataset).lower()) or {}).get("about")
    budget = DASH if not steps else f"{steps[0]:,}" if len(steps) == 1 else f"{steps[0]:,} to {steps[-1]:,}"
    facts = {"dataset": dataset or DASH, "about": f" ({about})" if about else "",
             "teacher": (teacher or {}).get("model", DASH), "students": _students(runs), "budget": budget,
             "batch": "/".join(map(str, batch)) or DASH, "devices": ", ".join(devices) or DASH,
             "temperature": "/".join(map(str, temps)) or DASH, "attack_use": _attack_use(runs)}
    try:
        bullets = [f"- {line.format(**facts)}" for line in conf.paper]
    except (KeyError, IndexError, ValueError) as e:
        raise KDError(f"--config {conf.path}: a paper line names {e}; use {{{'}, {'.join(facts)}}}") from None
    return "\n".join(["## What differs from the paper", "", *bullets, ""])


def _attack_use(runs: list[SetRun]) -> str:
    online = [f"`{r.name}`" for r in runs if _online(r)]
    offline = [f"`{r.name}`" for r in runs if not _online(r) and any(m.get("generator") == "attack"
                                                                       for m in r.manifests)]
    parts = ([f"{', '.join(online)} use it online (`--adv`: part of every batch attacked as it is drawn)"]
             if online else [])
    parts += [f"{', '.join(offline)} trained on offline-attacked sets (`kdtrain attack`)"] if offline else []
    return "; ".join(parts) or "no student used it"


def _students(runs: list[SetRun]) -> str:
    return ", ".join(f"`{m}`" for m in sorted({r.summary.get("model") for r in runs} - {None})) or DASH


def summary_paragraph(runs: list[SetRun], teacher: dict | None, teacher_top1: float | None,
                      met: int, checked: int, runs_dir: Path) -> str:
    ref = _original(runs)
    surrogate = [r for r in runs if not r.is_reference and r.top1 is not None]
    sets = f"{len(surrogate)} surrogate set" + ("s" if len(surrogate) != 1 else "")
    text = (f"Students distilled from a teacher `{(teacher or {}).get('model', DASH)}` ({_pct(teacher_top1)} "
            f"test top-1) into {_students(runs)} on {sets}, compared with the student "
            f"distilled on the original training images ({_pct(ref)}); all evaluated on the real test set.")
    if surrogate:
        best = max(surrogate, key=lambda r: r.top1)
        text += (f" The best surrogate set, `{best.name}`, reaches {_pct(best.top1)}"
                 + (f", {_pct(best.top1 / ref)} of the original-data student." if ref else "."))
    if checked:
        text += f" {met} of {checked} targets met."
    return text + f" Generated by `kdtrain report` from the summary files in `{runs_dir}`."


# ---------------------------------------------------------------- the report

def _copy(src: Path, files: Path, name: str) -> str:
    """Copy a figure next to the report, so the Markdown link is relative (works on GitHub)."""
    shutil.copyfile(src, files / name)
    return f"{files.name}/{name}"


def _budget_curves(runs: Path) -> dict:
    """budget.collect over RUNS and its longer-budget siblings RUNS-xN (`make pipeline BUDGET=N`); {} if none."""
    from kdtrain.report import budget

    roots = sorted(runs.parent.glob(f"{runs.name}-x*"), key=lambda p: int(p.name.rsplit("-x", 1)[1])
                   if p.name.rsplit("-x", 1)[1].isdigit() else 0)
    return budget.collect([runs, *roots]) if roots else {}


def budget_section(runs: Path, files: Path, conf: ReportConfig, curves: dict | None = None) -> str:
    """The budget curve over RUNS and its longer-budget siblings, if any (`curves`: _budget_curves(RUNS),
    where the caller has read them already)."""
    from kdtrain.report import budget

    curves = _budget_curves(runs) if curves is None else curves
    curves = {k: v for k, v in curves.items() if len(v) > 1 or k == conf.reference}
    if len(curves) < 2:
        return ""
    budget.plot(curves, files / "budget.png", conf.reference)
    return "\n".join([
        "## Budget curve", "",
        f"Student top-1 against training samples seen: the same sets, teacher and student trained longer "
        f"(`make pipeline BUDGET=N` writes `{runs.name}-xN`); in brackets, the share of the `{conf.reference}` "
        "student's top-1 at the same budget. Only sets run at more than one budget are shown.", "",
        budget.table(curves, conf.reference), "", f"![budget curve]({files.name}/budget.png)", ""])


def write_report(runs: Path, data: Path, out_md: Path, title: str | None = None, notes: Path | None = None,
                 config: ReportConfig | None = None) -> Path:
    """Write OUT_MD and its figures (OUT_MD's stem + '_files/'); returns OUT_MD. `config`: the experiment
    (load_config("pipeline.yaml")); `title` overrides its title."""
    runs, data, out_md = Path(runs), Path(data), Path(out_md)
    conf = config or ReportConfig()
    title = title or conf.title
    students, score_file = collect(runs, data, conf)
    teacher = _read_json(runs / "teacher" / "summary.json")
    teacher_cfg = _read_yaml(runs / "teacher" / "config.yaml")
    t_top1 = _teacher_top1(teacher, students)
    files = out_md.parent / f"{out_md.stem}_files"
    files.mkdir(parents=True, exist_ok=True)

    plot_accuracy(students, t_top1, files / "accuracy.png")
    curves = _budget_curves(runs)  # every summary of RUNS and RUNS-xN, read once for targets and the curve
    targets, met, checked = targets_section(students, conf, curves)
    parts = [f"# {title}", "", summary_paragraph(students, teacher, t_top1, met, checked, runs), "",
             "## Students by surrogate set", "", table(students), "",
             f"Teacher: `{(teacher or {}).get('model', DASH)}`, {_pct(t_top1)} top-1 on the real test set. "
             "Agreement: share of test images where student and teacher predict the same class. Relative "
             "entropy (class balance, 1 = even), confidence (mean max-softmax), diversity (mean pairwise "
             "cosine distance of teacher features), coverage (share of real test images whose nearest sample "
             "of the set, in teacher features, is closer than the median real image's nearest real neighbour) "
             "and distance ratio (median distance of a real test image to its nearest sample of the set, over "
             "that median real-neighbour distance; 1 = as near as real images) are the set's `kdtrain score` "
             "figures; the "
             f"`{conf.reference}` row's are those of the real test images. Wall time = generation + distillation"
             + ("; * = distillation only (generation time not recorded)." if any(
                 r.manifests and r.gen_s is None for r in students) else "."), "",
             f"![student top-1 per set]({files.name}/accuracy.png)", "", targets]
    parts.append(budget_section(runs, files, conf, curves))
    scatter = plot_score_vs_top1(students, files / "score_vs_top1.png")
    parts.append(spearman_section(students))
    if scatter:
        parts += [f"![score metrics against student top-1]({files.name}/score_vs_top1.png)", ""]
    if (runs / "scores" / "score.png").exists():
        parts += [f"Class histograms and teacher features of every scored set (`kdtrain score`, "
                  f"{_count(score_file.get('limit'))} samples per set at most):", "",
                  f"![kdtrain score]({_copy(runs / 'scores' / 'score.png', files, 'score.png')})", ""]
    sheets = [r for r in students if r.sheet]
    if sheets:
        parts += ["## Contact sheets", ""]
        for r in sheets:
            parts += [f"**{r.name}**", "", f"![{r.name}]({_copy(r.sheet, files, f'sheet_{r.name}.png')})", ""]
    parts.append(commands_section(students, data, teacher_cfg, runs, out_md, conf))
    parts.append(differences_section(students, teacher, teacher_cfg, conf))
    notes = Path(notes) if notes else runs / "NOTES.md"
    if notes.exists():
        text = notes.read_text().strip()
        parts += ([] if text.startswith("#") else ["## Notes", ""]) + [text, ""]
    out_md.write_text("\n".join(parts).rstrip() + "\n")
    return out_md
