"""The experiment a report describes (ReportConfig), read from a YAML file such as pipeline.yaml beside the
Makefile: where its runs lie, which set is the reference, its set order, aliases, targets and prose. The
report library itself knows no set names, folder conventions or paper figures; they all come from here.

YAML is read defensively, since a config is user input: no aliases (a few lines of them expand to gigabytes),
bounded nesting and size, UTF-8 only; anything wrong is one UserError naming the file."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from kdtrain.errors import UserError
from kdtrain.report.format import bad_placeholder

MAX_DEPTH = 64  # mapping/list nesting a config or a run's config.yaml may have
MAX_BYTES = 1 << 20
MAX_NODES = 100_000  # values a YAML file may hold once its aliases are expanded
# the {names} a `paper` line may use, filled in from the runs (see sections.differences_section)
PAPER_FACTS = ("dataset", "about", "teacher", "students", "budget", "batch", "devices", "temperature", "attack_use")


class _Refused(Exception):
    pass


class _Loader(yaml.SafeLoader):
    """yaml.SafeLoader that checks the node graph while composing, before any of it is built (PyYAML
    composes recursively and shares aliased nodes): nesting at most MAX_DEPTH, at most MAX_NODES values
    once aliases are expanded, and no aliases at all unless `aliases`."""

    aliases = False

    def __init__(self, stream):
        super().__init__(stream)
        self.depth, self.sizes = 0, {}

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent) and not self.aliases:
            raise _Refused("uses a YAML alias (*name); write the value out instead")
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _Refused(f"is nested more than {MAX_DEPTH} levels deep")
        try:
            node = super().compose_node(parent, index)
        finally:
            self.depth -= 1
        if id(node) not in self.sizes:  # an alias returns a node already counted
            children = node.value if isinstance(node, yaml.SequenceNode) else [
                n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else []
            self.sizes[id(node)] = 1 + sum(self.sizes.get(id(c), 1) for c in children)
            if self.sizes[id(node)] > MAX_NODES:
                raise _Refused(f"expands to more than {MAX_NODES:,} values")
        return node


class _AliasLoader(_Loader):
    aliases = True  # yaml.safe_dump writes them where a run's config shares an object


def read_yaml(path: Path, what: str, fix: str, aliases: bool = False) -> dict:
    """The mapping in a YAML file ({} where the file is absent or empty); UserError '<what> PATH ...; <fix>'.
    `aliases`: allow *name references (their expanded size is capped all the same)."""
    path = Path(path)
    if not path.exists():
        return {}
    if not path.is_file():
        raise UserError(f"{what}{path} is not a file; {fix}")
    raw = path.read_bytes()
    if len(raw) > MAX_BYTES:
        raise UserError(f"{what}{path} is over {MAX_BYTES >> 20} MiB, too large for a YAML config; {fix}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{what}{path} is not UTF-8 text (byte {e.start}); {fix}") from None
    try:
        d = yaml.load(text, Loader=_AliasLoader if aliases else _Loader)
    except _Refused as e:
        raise UserError(f"{what}{path} {e}") from None
    except (yaml.YAMLError, RecursionError):
        raise UserError(f"{what}{path} is not valid YAML; {fix}") from None
    if d is None:
        return {}
    if not isinstance(d, dict):
        raise UserError(f"{what}{path}: expected a mapping of settings; {fix}")
    return d


@dataclass
class Layout:
    """Where a run folder (--runs) keeps what the report reads, as paths relative to it; None: not there.
    The default is a plain folder of student runs, one folder per set."""

    students: str = "*"  # glob of the student run folders (summary.json, config.yaml); folder name = set name
    teacher: str | None = None  # the teacher's run folder
    scores: str | None = None  # `kdtrain score`'s JSON (one labelled set per student set)
    score_figure: str | None = None  # its figure
    sheets: str | None = None  # folder of contact sheets SET.png
    notes: str | None = None  # Markdown included at the end
    budgets: str | None = None  # glob of the same runs at longer budgets, beside --runs; {runs}: its name
    budgets_about: str | None = None  # how those are made (budget section prose); {runs}: --runs' name
    hint_runs: str | None = None  # what to do when --runs is missing
    hint_students: str | None = None  # what to do when it holds no students


@dataclass
class ReportConfig:
    """The experiment a report describes; read from YAML (pipeline.yaml) by load_config."""

    title: str = "Results: distillation with surrogate data"
    reference: str | None = None  # the baseline set the others are measured against (e.g. the real data's)
    reference_student: str | None = None  # how prose names its student [default: "REFERENCE student"]
    reference_about: str | None = None  # what it is, in the summary [default: "the " + reference_student]
    attacked_names: list[str] = field(default_factory=list)  # a set whose name holds one of these was attacked
    layout: Layout = field(default_factory=Layout)
    order: list[str] = field(default_factory=list)  # sets first in the table, in this order; the rest after
    aliases: dict[str, list[str]] = field(default_factory=dict)  # set -> dataset names, where they differ
    datasets: dict[str, dict] = field(default_factory=dict)  # real data name -> {images, about}
    targets: list[dict] = field(default_factory=list)  # {what, prefix, fraction, paper, attacked_only}
    paper: list[str] = field(default_factory=list)  # "What differs from the paper" bullets, {names} filled in
    path: str | None = None  # the file it was read from

    def sort_key(self, name: str) -> tuple:
        return (self.order.index(name), "") if name in self.order else (len(self.order), name)

    def attacked(self, name: str) -> bool:
        """Whether a set's name marks it as attacked (for runs without a manifest to say so)."""
        return any(word in name for word in self.attacked_names)

    @property
    def student_name(self) -> str:
        return self.reference_student or f"{self.reference} student"

    @property
    def about(self) -> str:
        return self.reference_about or f"the {self.student_name}"


def _is_str_list(v) -> bool:
    return isinstance(v, list) and all(isinstance(s, (str, int, float)) and not isinstance(s, bool) for s in v)


def _check(d: dict, path: Path) -> None:
    """One UserError for the first value of the wrong shape; templates checked against the names they may use."""
    def bad(key: str, want: str):
        return UserError(f"--config {path}: {key} must be {want}")

    for key in ("title", "reference", "reference_student", "reference_about"):
        if d.get(key) is not None and not isinstance(d[key], str):
            raise bad(key, "text")
    for key in ("order", "attacked_names", "paper"):
        if d.get(key) is not None and not _is_str_list(d[key]):
            raise bad(key, "a list of names" if key != "paper" else "a list of lines")
    for key in ("aliases", "datasets", "layout"):
        if d.get(key) is not None and not isinstance(d[key], dict):
            raise bad(key, "a mapping")
    for k, v in (d.get("aliases") or {}).items():
        if not (isinstance(v, str) or _is_str_list(v)):
            raise bad(f"aliases.{k}", "a name or a list of names")
    for k, v in (d.get("datasets") or {}).items():
        if not isinstance(v, dict) or not isinstance(v.get("images", 0), int) or not isinstance(
                v.get("about", ""), str):
            raise bad(f"datasets.{k}", "a mapping {images: N, about: text}")
    layout = d.get("layout") or {}
    names = {f.name for f in fields(Layout)}
    unknown = sorted(set(layout) - names)
    if unknown:
        raise UserError(f"--config {path}: unknown layout keys {', '.join(unknown)}; use {', '.join(sorted(names))}")
    for k, v in layout.items():
        if v is not None and not isinstance(v, str):
            raise bad(f"layout.{k}", "text")
    for k in ("budgets", "budgets_about"):
        why = layout.get(k) and bad_placeholder(layout[k], ("runs",))
        if why:
            raise UserError(f"--config {path}: layout.{k} {why}; use {{runs}}")
    targets = d.get("targets") or []
    if not isinstance(targets, list) or not all(isinstance(t, dict) for t in targets):
        raise bad("targets", "a list of mappings {what, prefix, fraction}")
    for t in targets:
        missing = [k for k in ("what", "prefix", "fraction") if k not in t]
        if missing:
            raise UserError(f"--config {path}: a target lacks {', '.join(missing)}")
        if isinstance(t["fraction"], bool) or not isinstance(t["fraction"], (int, float)):
            raise bad("a target's fraction", "a number such as 0.9")
    if targets and not d.get("reference"):
        raise UserError(f"--config {path}: targets need a reference set to be measured against; add reference: SET")
    for line in d.get("paper") or []:
        why = bad_placeholder(str(line), PAPER_FACTS)
        if why:
            raise UserError(f"--config {path}: a paper line {why}; use {{{'}, {'.join(PAPER_FACTS)}}}")


def load_config(path: Path | None) -> ReportConfig:
    """ReportConfig from a YAML file (None: the generic defaults); one-line errors for what is wrong."""
    if path is None:
        return ReportConfig()
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--config {path}: no such file")
    d = read_yaml(path, "--config ", "fix the file")
    names = {f.name for f in fields(ReportConfig)} - {"path"}
    unknown = sorted(set(d) - names)
    if unknown:
        raise UserError(f"--config {path}: unknown keys {', '.join(unknown)}; use {', '.join(sorted(names))}")
    _check(d, path)
    d["order"] = [str(n) for n in d.get("order") or []]
    d["attacked_names"] = [str(n) for n in d.get("attacked_names") or []]
    d["paper"] = [str(n) for n in d.get("paper") or []]
    d["aliases"] = {k: [v] if isinstance(v, str) else [str(n) for n in v] for k, v in (d.get("aliases") or {}).items()}
    d["layout"] = Layout(**{k: v for k, v in (d.get("layout") or {}).items() if v is not None})
    return ReportConfig(**{k: v for k, v in d.items() if v is not None}, path=str(path))
