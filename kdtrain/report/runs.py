"""What a report reads from a run folder laid out as its config's Layout says: each student run
(summary.json and config.yaml, as `kdtrain distill` writes them) with the kdgen manifests, score and
contact sheet of the data it was distilled on. Every file is checked here, before anything is written:
a file of the wrong shape is one UserError naming it; non-finite numbers count as missing."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from kdgen import contract
from kdtrain.errors import UserError
from kdtrain.report.config import ReportConfig, read_yaml
from kdtrain.report.format import finite

RERUN = "rerun the stage that writes it"
# summary keys the report uses: numbers (a NaN or inf is missing) and names
NUMBERS = ("student_top1", "teacher_top1", "agreement", "wall_s", "steps", "samples_seen")
NAMES = ("model", "device")


def read_json(path: Path) -> dict | None:
    """The JSON object in a file, None where it is absent; a UserError where it is anything else."""
    path = Path(path)
    if not path.exists():
        return None
    if not path.is_file():
        raise UserError(f"{path} is not a file; {RERUN}")
    try:
        d = json.loads(path.read_bytes())
    except (ValueError, RecursionError):  # bad JSON, bytes that are not UTF-8, absurd nesting
        raise UserError(f"{path} is not valid JSON; {RERUN}") from None
    if not isinstance(d, dict):
        raise UserError(f"{path}: expected a JSON object, found {type(d).__name__}; {RERUN}")
    return d


def read_summary(path: Path) -> dict | None:
    """A run's summary.json with the keys the report uses checked: a number of the wrong type is a UserError,
    a non-finite one is None (missing)."""
    s = read_json(path)
    if s is None:
        return None
    for key in NUMBERS:
        v = s.get(key)
        if v is not None and finite(v) is None:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise UserError(f"{path}: {key} is {json.dumps(v)[:40]}, not a number; {RERUN}")
            s[key] = None
    for key in NAMES:
        if s.get(key) is not None and not isinstance(s[key], str):
            raise UserError(f"{path}: {key} is {json.dumps(s[key])[:40]}, not a name; {RERUN}")
    return s


def read_run_yaml(path: Path) -> dict:
    """A run's config.yaml, as yaml.safe_dump wrote it (aliases included)."""
    return read_yaml(path, "", RERUN, aliases=True)


def _scores(path: Path | None) -> dict:
    """`kdtrain score`'s file: label -> metrics, each metric a finite number or None."""
    d = read_json(path) if path else None
    if not d:
        return {}
    sets = d.get("sets", {})
    if not isinstance(sets, dict) or not all(isinstance(v, dict) for v in sets.values()):
        raise UserError(f"{path}: 'sets' should map each set to its scores; {RERUN}")
    d["sets"] = {k: {m: finite(x) if not isinstance(x, (list, str)) else x for m, x in v.items()}
                 for k, v in sets.items()}
    return d


@dataclass
class SetRun:
    """One student run and everything the report knows about the data it was distilled on."""

    name: str
    summary: dict
    config: dict
    manifests: list[dict] = field(default_factory=list)
    score: dict | None = None
    sheet: Path | None = None
    is_reference: bool = False  # the baseline student (ReportConfig.reference)
    real_images: int | None = None  # size of its real training data, where the report config knows it
    target: dict | None = None  # the ReportConfig target this set is checked against
    is_attack: bool = False  # attacked data: an 'attack' manifest, or a name the config marks

    @property
    def top1(self) -> float | None:
        return self.summary.get("student_top1")

    @property
    def images(self) -> int | None:
        if self.manifests:
            return sum(int(finite(m.get("num_samples")) or 0) for m in self.manifests)
        return self.real_images

    @property
    def gen_s(self) -> float | None:
        """Generation seconds of the data; None where a manifest did not record them (e.g. attacked sets)."""
        secs = [finite(m.get("seconds")) for m in self.manifests]
        return None if not secs or None in secs else float(sum(secs))

    @property
    def online(self) -> bool:
        """Trained with the online attack (distill --adv): part of every batch was attacked as it was drawn."""
        return bool(self.config.get("adv"))


def norm(name: str) -> str:
    """Labels are typed both as leaves-adv and leaves_adv."""
    return name.lower().replace("-", "_")


def manifests(data: Path) -> dict[str, dict]:
    """Every final manifest in DATA by normalised dataset name (per-rank manifests are left out)."""
    return {norm(str(name)): meta for name, meta in contract.manifests_in(data, read_json).items()}


def _data_names(name: str, config: dict, aliases: dict) -> list[str]:
    """Datasets a student saw: from its --shards patterns, else by its set name (and aliases)."""
    shards = config.get("shards") or []
    names = [contract.dataset_name(str(p)) for p in (shards if isinstance(shards, list) else [shards])]
    return names or [name, *aliases.get(name, ())]


def _find_score(scores: dict, run: SetRun, data_names: list[str]) -> dict | None:
    """The score of the data the student saw: its --shards sets (else its name and aliases). None for an
    online-attacked student: the stream its hook produced was never scored, and the score of the
    offline-attacked set of the same name would describe data it never trained on."""
    by_norm = {norm(k): v for k, v in scores.items()}
    if run.is_reference:  # `kdtrain score` labels the real test images' scores "NAME (real)"
        return next((v for k, v in scores.items() if k.endswith("(real)")), by_norm.get(norm(run.name)))
    if run.online:
        return None
    return next((by_norm[norm(n)] for n in data_names if norm(n) in by_norm), None)


def _find_sheet(sheets: Path | None, names: list[str]) -> Path | None:
    for n in names if sheets else ():
        for variant in (n, n.replace("-", "_"), n.replace("_", "-")):
            if (sheets / f"{variant}.png").is_file():
                return sheets / f"{variant}.png"
    return None


def _target_for(run: SetRun, conf: ReportConfig) -> dict | None:
    """The target a set is checked against: its family (name prefix); some only where attacked."""
    for t in conf.targets:
        if run.name.startswith(str(t["prefix"])) and (not t.get("attacked_only") or run.is_attack):
            return t
    return None


def where(runs: Path, rel: str | None) -> Path | None:
    """A Layout entry under RUNS; None where the layout has none."""
    return runs / rel if rel else None


def collect(runs: Path, data: Path, conf: ReportConfig | None = None) -> tuple[list[SetRun], dict]:
    """The student runs in report order (the config's, then the others by name), and the score file."""
    conf = conf or ReportConfig()
    lay = conf.layout
    if not runs.is_dir():
        raise UserError(f"--runs {runs}: no such folder" + (f"; {lay.hint_runs}" if lay.hint_runs else ""))
    summaries = sorted(runs.glob(f"{lay.students}/summary.json"))
    if not summaries:
        raise UserError(f"no students in {runs}/{lay.students}/summary.json"
                      + (f"; {lay.hint_students}" if lay.hint_students else ""))
    found = manifests(data)
    score_file = _scores(where(runs, lay.scores))
    scores = score_file.get("sets", {})
    out = []
    for path in summaries:
        name = path.parent.name
        run = SetRun(name, read_summary(path), read_run_yaml(path.parent / "config.yaml"),
                     is_reference=name == conf.reference)
        run.real_images = (conf.datasets.get(str(run.config.get("data")).lower()) or {}).get("images")
        names = _data_names(name, run.config, conf.aliases)
        run.manifests = [found[norm(n)] for n in names if norm(n) in found]
        run.is_attack = any(m.get("generator") == "attack" for m in run.manifests) or conf.attacked(name)
        run.score = _find_score(scores, run, names)
        run.sheet = _find_sheet(where(runs, lay.sheets), [name, *conf.aliases.get(name, ()), *names])
        run.target = _target_for(run, conf)
        out.append(run)
    return sorted(out, key=lambda r: conf.sort_key(r.name)), score_file


def budget_roots(runs: Path, conf: ReportConfig) -> list[Path]:
    """The layout's longer-budget run folders beside RUNS, in natural order (x4 before x16); [] without."""
    if not conf.layout.budgets:
        return []
    from kdtrain.report.format import fill

    pattern = fill(conf.layout.budgets, {"runs": runs.name})
    return sorted((p for p in runs.parent.glob(pattern) if p.is_dir() and p != runs),
                  key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)])
