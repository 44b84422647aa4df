"""`kdtrain report` on a hand-built run folder whose JSON files have the real writers' shapes."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from kdgen.clitools import OneLineErrorGroup
from kdtrain.cli import report as cli_report
from kdtrain.report.config import load_config
from kdtrain.report.document import write_report
from kdtrain.report.runs import collect
from kdtrain.report.stats import ranks, spearman
from kdtrain.train.config import DistillConfig
from tests.conftest import assert_one_line_error

PIPELINE_YAML = Path(__file__).resolve().parents[1] / "pipeline.yaml"  # the experiment beside the Makefile
PIPELINE = load_config(PIPELINE_YAML)

# set -> (student top-1, agreement, relative entropy, mean max-softmax, diversity)
STUDENTS = {
    "original": (0.880, 0.930, 0.99, 0.90, 0.60),
    "shaders": (0.860, 0.900, 0.80, 0.70, 0.40),
    "leaves": (0.800, 0.850, 0.50, 0.75, 0.30),
    "noise_adv": (0.700, 0.750, 0.70, 0.55, 0.20),
    "curated": (0.840, 0.880, 1.00, 0.50, 0.35),
}


def manifest(name, generator, n, seconds=None, command=None):
    """kdgen.manifest.new_manifest's fields, plus what the runner adds (seconds, complete)."""
    m = {"name": name, "generator": generator, "params": {}, "seed": 3, "size": [28, 28], "format": "png",
         "quality": 95, "shard_size": 1000, "num_samples": n, "class_names": None, "command": command,
         "kdgen_version": "0.1.0", "shards": {f"{name}-000000.tar": n}}
    if seconds is not None:
        m.update(seconds=seconds, complete=True)
    return m


def summary(top1, agree, mode="distill", steps=300, wall=120.0):
    """The keys of Distiller._finish in kdtrain/train/distill.py."""
    return {"mode": mode, "model": "cnn-tiny" if mode == "distill" else "resnet8", "teacher": "runs/t/teacher.pt",
            "model_file": "x/student.pt", "student_top1": top1, "teacher_top1": 0.9 if mode == "distill" else None,
            "agreement": agree, "eval_samples": 10000, "steps": steps, "epochs": 1.0, "samples_seen": steps * 128,
            "wall_s": wall, "train_s": wall - 5, "samples_per_s": 320.0, "skipped_samples": 0, "shard_errors": 0,
            "world_size": 1, "device": "cpu", "workers": 1, "shards_seen_by_rank": None}


def score(rel, conf, div, margin=0.3, spread=0.02, n=500):
    """The keys of SetScorer.result in kdtrain/quality/scoring.py (plus the `shards` that `score` adds)."""
    return {"shards": ["x-000000.tar"], "n": n, "class_counts": [n // 10] * 10, "relative_entropy": rel,
            "never_predicted": [], "num_never_predicted": 0, "mean_max_softmax": conf, "mean_entropy": 1.0,
            "mean_top2_margin": margin, "feature_spread_per_class": [spread] * 10, "feature_spread": spread,
            "diversity": div, "teacher_accuracy": None}


def write_config(folder, command=None, **kw):
    """What Run.train writes: the command line that made the run, then every DistillConfig field."""
    cfg = {"command": command, **DistillConfig(**kw).to_dict()}
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))


@pytest.fixture
def run(tmp_path):
    runs, data = tmp_path / "runs" / "demo", tmp_path / "data" / "demo"
    data.mkdir(parents=True)
    for m in (manifest("shaders", "shaders", 2000, 30.0, "kdgen shaders --n 2000 --seed 3 --out data/demo"),
              manifest("leaves", "leaves", 3000, 60.0, "kdgen leaves --n 3000 --seed 3 --out data/demo"),
              manifest("noise_adv", "attack", 1500, command="kdtrain attack --out data/demo/noise_adv"),
              manifest("pool_balanced", "curate", 1000)):
        (data / f"{m['name']}-manifest.json").write_text(json.dumps(m))
    (runs / "teacher").mkdir(parents=True)
    (runs / "teacher" / "summary.json").write_text(json.dumps(summary(0.905, None, mode="supervised")))
    write_config(runs / "teacher", f"kdtrain teacher --data fashion-mnist --preset crop-flip --epochs 8 "
                 f"--weight-decay 0.0005 --out {runs / 'teacher'}", data="fashion-mnist", student="resnet8",
                 preset="crop-flip", epochs=8, weight_decay=5e-4, out=str(runs / "teacher"))
    sets = {}
    for name, (top1, agree, rel, conf, div) in STUDENTS.items():
        folder = runs / "students" / name
        folder.mkdir(parents=True)
        (folder / "summary.json").write_text(json.dumps(summary(top1, agree)))
        if name == "original":
            write_config(folder, f"kdtrain distill --teacher runs/t/teacher.pt --data fashion-mnist --steps 300 "
                         f"--out {folder}", teacher="runs/t/teacher.pt", data="fashion-mnist", steps=300,
                         out=str(folder))
        elif name != "curated":  # curated: no config.yaml, found through its alias pool_balanced
            write_config(folder, f"kdtrain distill --teacher runs/t/teacher.pt --shards "
                         f"'data/demo/{name}-{{000000..000000}}.tar' --steps 300 --seed 7 --out {folder}",
                         teacher="runs/t/teacher.pt", shards=[f"data/demo/{name}-{{000000..000000}}.tar"],
                         steps=300, seed=7, out=str(folder))
        label = "fashion-mnist (real)" if name == "original" else "pool_balanced" if name == "curated" else name
        sets[label] = score(rel, conf, div)
        if name != "original":  # `kdtrain score` gives each surrogate set its coverage of the real features
            sets[label].update(coverage=round(div / 2, 3), nn_ratio=round(1 / div, 2))
    (runs / "scores").mkdir()
    (runs / "scores" / "score.json").write_text(json.dumps(
        {"teacher": "t.pt", "class_names": [str(i) for i in range(10)], "limit": 500, "sets": sets,
         "samples_per_s": {k: 100.0 for k in sets}}))
    Image.new("RGB", (8, 8)).save(runs / "scores" / "score.png")
    (runs / "sheets").mkdir()
    for name in ("shaders", "leaves", "noise-adv"):  # hyphenated on purpose
        Image.new("RGB", (8, 8), (200, 0, 0)).save(runs / "sheets" / f"{name}.png")
    (runs / "NOTES.md").write_text("## What was tried\n\nMore steps helped the leaves student.\n")
    return runs, data, tmp_path / "docs" / "RESULTS.md"


def rows(md: str) -> dict[str, list[str]]:
    """The main table's rows by set name."""
    section = md.split("## Students by surrogate set", 1)[1].split("\n\n")[1]
    out = {}
    for line in section.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        out[cells[0].strip("`")] = cells[1:]
    return out


def test_table_matches_summaries(run):
    runs, data, out = run
    md = write_report(runs, data, out, "Demo results", config=PIPELINE).read_text()
    assert md.startswith("# Demo results\n")
    table = rows(md)
    assert list(table) == ["original", "shaders", "leaves", "noise_adv", "curated"]  # original first
    assert table["original"][:4] == ["88.0%", "100.0%", "93.0%", "0.990"]
    assert table["original"][6:9] == ["—", "—", "60,000"]  # no coverage for the real images; Fashion-MNIST's size
    assert table["shaders"][:3] == ["86.0%", f"{100 * 0.86 / 0.88:.1f}%", "90.0%"]
    assert table["shaders"][6:] == ["0.200", "2.50", "2,000", "2.5 min"]  # 30 s generation + 120 s distillation
    assert table["noise_adv"][9] == "2.0 min*"  # the attack manifest records no generation time
    assert table["curated"][3:9] == ["1.000", "0.500", "0.350", "0.175", "2.86", "1,000"]
    assert "Teacher: `resnet8`, 90.5% top-1" in md


def test_targets_met_and_missed(run):
    runs, data, out = run
    # fixed targets (pipeline.yaml's may move with the experiment): 97%, 95%, 90% attacked only
    strict = dataclasses.replace(PIPELINE, targets=[
        {"what": "shader images", "prefix": "shaders", "fraction": 0.97, "paper": "98%"},
        {"what": "dead leaves", "prefix": "leaves", "fraction": 0.95, "paper": "96%"},
        {"what": "noise with the attack", "prefix": "noise", "fraction": 0.90, "paper": "72%", "attacked_only": True}])
    md = write_report(runs, data, out, "t", config=strict).read_text()
    targets = md.split("## Targets", 1)[1].split("\n## ", 1)[0]
    assert re.search(r"shader images.*\*\*met\*\*.*`shaders` 86.0% top-1 = 97.7% of original", targets)
    assert re.search(r"dead leaves.*\*\*missed\*\*.*90.9% of original", targets)
    assert re.search(r"noise with the attack.*\*\*missed\*\*.*`noise_adv`.*79.5% of original", targets)
    assert "1 of 3 targets met" in md


def test_figures_and_sheets_copied_with_relative_links(run):
    runs, data, out = run
    md = write_report(runs, data, out, "t", config=PIPELINE).read_text()
    files = out.parent / "RESULTS_files"
    for name in ("accuracy.png", "score_vs_top1.png", "score.png", "sheet_shaders.png", "sheet_noise_adv.png"):
        assert f"](RESULTS_files/{name})" in md
        assert Image.open(files / name).size[0] > 0
    assert "sheet_original.png" not in md  # no sheet for it: left out, not a broken link


def test_spearman_section(run):
    runs, data, out = run
    md = write_report(runs, data, out, "t", config=PIPELINE).read_text()
    section = md.split("## Does the score predict the student?", 1)[1]
    tops = [v[0] for v in STUDENTS.values()]
    rel = spearman([v[2] for v in STUDENTS.values()], tops)
    assert f"| relative entropy | {rel:.2f} | 5 |" in section
    assert "| feature spread | — | 5 |" in section  # all equal: undefined


def test_holdout_section_only_where_runs_held_out(run):
    runs, data, out = run
    assert "held-out agreement" not in write_report(runs, data, out, "t", config=PIPELINE).read_text()
    held = {}
    for i, name in enumerate(STUDENTS):
        path = runs / "students" / name / "summary.json"
        s = json.loads(path.read_text())
        held[name] = (0.5 + 0.1 * i, 0.3 - 0.05 * i)
        s.update(holdout_agreement=held[name][0], holdout_kl=held[name][1], holdout_samples=100)
        path.write_text(json.dumps(s))
    md = write_report(runs, data, out, "t", config=PIPELINE).read_text()
    section = md.split("## Does the held-out agreement predict the student?", 1)[1].split("\n## ", 1)[0]
    tops = [v[0] for v in STUDENTS.values()]
    agree = spearman([v[0] for v in held.values()], tops)
    assert f"| agreement | {agree:.2f} | {len(STUDENTS)} |" in section
    assert f"| KL divergence | {-agree:.2f} | {len(STUDENTS)} |" in section  # KL falls as agreement rises here
    assert "| `shaders` |" in section


def test_commands_notes_and_differences(run):
    runs, data, out = run
    md = write_report(runs, data, out, "t", config=PIPELINE).read_text()
    assert "kdgen shaders --n 2000 --seed 3 --out data/demo" in md
    assert "# pool_balanced: seed 3, 1,000 images\n# (command not recorded)" in md
    assert "kdtrain distill --teacher runs/t/teacher.pt --shards 'data/demo/leaves-{000000..000000}.tar'" in md
    assert "# leaves: seed 7, 300 steps" in md
    teacher_line = next(ln for ln in md.splitlines() if ln.startswith("kdtrain teacher --data fashion-mnist"))
    assert "--arch" not in teacher_line  # the default architecture is left out
    assert "## What was tried\n\nMore steps helped the leaves student." in md
    assert "`fashion-mnist` (28x28 grey, 10 classes)" in md and "300 steps of batch 128" in md


def test_missing_sets_are_shown_as_dashes(tmp_path):
    runs = tmp_path / "runs"
    (runs / "students" / "leaves").mkdir(parents=True)
    (runs / "students" / "leaves" / "summary.json").write_text(json.dumps(summary(0.5, None)))
    md = write_report(runs, tmp_path / "no-data", tmp_path / "R.md", "t", config=PIPELINE).read_text()
    assert rows(md)["leaves"] == ["50.0%", "—", "—", "—", "—", "—", "—", "—", "—", "2.0 min"]
    assert "No original-data student" in md
    assert (tmp_path / "R_files" / "accuracy.png").exists()


def test_collect_links_sets_to_data_scores_and_sheets(run):
    runs, data, _ = run
    students, _ = collect(runs, data, PIPELINE)
    by = {r.name: r for r in students}
    assert by["curated"].manifests[0]["name"] == "pool_balanced" and by["curated"].score["mean_max_softmax"] == 0.5
    assert by["noise_adv"].sheet.name == "noise-adv.png" and by["noise_adv"].is_attack
    assert by["original"].manifests == [] and by["original"].images == 60000


def test_spearman_by_hand():
    assert ranks([3.0, 1.0, 3.0, 2.0]) == [3.5, 1.0, 3.5, 2.0]
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ties: ranks x = 1, 2.5, 2.5, 4 against y = 1..4 -> rho = 4.5 / sqrt(4.5 * 5)
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / (4.5 * 5) ** 0.5)
    assert spearman([1, 2], [1, 2]) is None and spearman([1, 1, 1], [1, 2, 3]) is None


def test_a_run_that_recorded_no_command_shows_its_settings(run):
    """Runs made before config.yaml stored the command: the report says so and lists what differs."""
    runs, data, out = run
    write_config(runs / "students" / "leaves", teacher="t.pt", shards=["a-*.tar", "b-*.tar"], weights=[0.7, 0.3],
                 mixup=True, steps=9)
    md = write_report(runs, data, out, "t", config=PIPELINE).read_text()
    assert ("# command not recorded; settings that differ from the defaults: teacher=t.pt, "
            "shards=['a-*.tar', 'b-*.tar'], weights=[0.7, 0.3], mixup=True, steps=9") in md


def test_without_a_config_the_report_is_generic_and_new_sets_appear(run):
    """The experiment lives in pipeline.yaml: without it, sets by name and no targets or paper prose; with it,
    a set the config does not list still gets its row, after the listed ones."""
    runs, data, out = run
    folder = runs / "students" / "mixture"
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps(summary(0.81, 0.86)))
    assert list(rows(write_report(runs, data, out, config=PIPELINE).read_text())) == [
        "original", "shaders", "leaves", "noise_adv", "curated", "mixture"]
    # the default layout: a plain folder of student runs; no reference, so no share-of column
    md = write_report(runs / "students", data, out).read_text()
    assert md.startswith("# Results: distillation with surrogate data\n")
    assert list(rows(md)) == ["curated", "leaves", "mixture", "noise_adv", "original", "shaders"]
    assert "| set | student top-1 | agreement |" in md and rows(md)["shaders"][:2] == ["86.0%", "90.0%"]
    for pipeline_only in ("## Targets", "## What differs from the paper", "original-data", "make ", "## Budget",
                          "## Contact sheets", "What was tried"):
        assert pipeline_only not in md
    assert "--config pipeline.yaml" in (Path(__file__).resolve().parents[1] / "Makefile").read_text()


@pytest.mark.parametrize("text, message", [
    ("colour: red\n", "unknown keys colour"), ("- 1\n", "expected a mapping"),
    ("targets: [{what: x, prefix: y}]\n", "a target lacks fraction"),
    ("paper: ['{nope}']\n", "a paper line names 'nope'"),
])
def test_bad_report_configs_are_one_line_errors(run, cli, text, message):
    runs, data, out = run
    config = runs / "bad.yaml"
    config.write_text(text)
    res = CliRunner().invoke(cli, ["report", "--runs", str(runs), "--data", str(data), "--out", str(out),
                                   "--config", str(config)])
    assert_one_line_error(res, message)


@pytest.fixture
def cli():
    @click.group(cls=OneLineErrorGroup)  # the CLI layer turns user errors into one line, exit 2
    def group():
        pass

    cli_report.register(group)
    return group


def test_cli_writes_and_prints_path(run, cli):
    runs, data, out = run
    res = CliRunner().invoke(cli, ["report", "--runs", str(runs), "--data", str(data), "--out", str(out),
                                   "--title", "CLI", "--config", str(PIPELINE_YAML)])
    assert res.exit_code == 0, res.output
    assert res.output.strip() == str(out) and out.read_text().startswith("# CLI\n")
    assert f"--out {out} --config {PIPELINE_YAML}" in out.read_text()  # the report's own command


def _summary_json(text: bytes):
    """A `make` for test_bad_runs: students/x/summary.json holding `text`."""
    def make(p):
        (p / "students" / "x").mkdir(parents=True)
        (p / "students" / "x" / "summary.json").write_bytes(text)
    return make


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "no such folder; run the pipeline first"),
    (lambda p: (p / "students").mkdir(parents=True), "no students in"),
    (_summary_json(b"{"), "not valid JSON"),
    (_summary_json(bytes(range(256)) * 4), "summary.json is not valid JSON"),  # random bytes, not UTF-8
    (_summary_json(b"[" * 100_000 + b"]" * 100_000), "not valid JSON"),  # nested past Python's recursion limit
    (_summary_json(b"[0.9, 0.8]"), "expected a JSON object, found list"),
    (_summary_json(b'{"student_top1": "high", "steps": 4}'), 'student_top1 is "high", not a number'),
    (_summary_json(b'{"student_top1": 0.5, "steps": [4]}'), "steps is [4], not a number"),
    (_summary_json(b'{"student_top1": 0.5, "model": {"a": 1}}'), "model is {\"a\": 1}, not a name"),
    (lambda p: (p / "students" / "x" / "summary.json").mkdir(parents=True), "summary.json is not a file"),
])
def test_bad_runs_are_one_line_errors_and_write_nothing(tmp_path, cli, make, message):
    """A run folder of the wrong shape is refused (the file named), never half-reported."""
    runs, out = tmp_path / "runs", tmp_path / "docs" / "R.md"
    make(runs)
    res = CliRunner().invoke(cli, ["report", "--runs", str(runs), "--data", str(tmp_path), "--out", str(out),
                                   "--config", str(PIPELINE_YAML)])
    assert_one_line_error(res, message)
    assert not (tmp_path / "docs").exists()


def test_a_non_finite_number_counts_as_missing(run):
    runs, data, out = run
    (runs / "students" / "leaves" / "summary.json").write_text(json.dumps(
        {**summary(float("nan"), float("inf")), "wall_s": float("-inf")}))  # json writes NaN, Infinity
    md = write_report(runs, data, out, "t", config=PIPELINE).read_text()
    assert rows(md)["leaves"][:3] == ["—", "—", "—"] and rows(md)["leaves"][-1] == "—"
    assert "nan" not in md.lower() and "inf%" not in md
    assert "- **dead leaves** (>= 85%; paper 96%): no run" in md


def _alias_bomb() -> str:
    """The 'billion laughs': nine levels of nine aliases each, 9**9 strings once expanded."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    return "\n".join(lines) + "\npaper: *a8\n"


@pytest.mark.parametrize("text, message", [
    (_alias_bomb(), "uses a YAML alias"),
    ("order: " + "[" * 50_000 + "]" * 50_000 + "\n", "nested more than 64 levels deep"),
    ("a:\n" + "".join(" " * i + "b:\n" for i in range(1, 300)), "nested more than 64 levels deep"),
    (b"title: caf\xe9\n", "is not UTF-8 text (byte 10)"),
    ("title: [unclosed\n", "is not valid YAML"),
    ("paper: ['{__class__}']\n", "a paper line names '__class__'"),
    ("paper: ['{dataset.__class__.__mro__}']\n", "a paper line names 'dataset.__class__.__mro__'"),
    ("paper: ['{0}']\n", "a paper line names '0'"),
    ("paper: ['{dataset!r}']\n", "a paper line formats {dataset}"),
    ("paper: ['{dataset:>999999999}']\n", "a paper line formats {dataset}"),
    ("paper: ['a { b']\n", "a paper line has a lone { or }"),
    ("layout: {budgets_about: '{runs.__init__}'}\n", "layout.budgets_about names 'runs.__init__'"),
    ("targets: 5\n", "targets must be a list of mappings"),
    ("targets: [{what: x, prefix: y, fraction: high}]\n", "fraction must be a number"),
    ("reference: x\ntargets: [{what: x, prefix: y, fraction: 0.9}]\n", None),  # fine: the control
    ("targets: [{what: x, prefix: y, fraction: 0.9}]\n", "targets need a reference set"),
    ("layout: {students: [a]}\n", "layout.students must be text"),
    ("layout: {colour: red}\n", "unknown layout keys colour"),
    ("order: [[a]]\n", "order must be a list of names"),
])
def test_hostile_report_configs_are_one_line_errors_and_write_nothing(run, cli, text, message):
    """A config is user input: it is read and checked whole before any figure or page is written."""
    runs, data, out = run
    config = runs / "bad.yaml"
    config.write_bytes(text if isinstance(text, bytes) else text.encode())
    res = CliRunner().invoke(cli, ["report", "--runs", str(runs), "--data", str(data), "--out", str(out),
                                   "--config", str(config)])
    if message is None:
        assert res.exit_code == 0, res.output
        return
    assert_one_line_error(res, message)
    assert not out.parent.exists()  # no RESULTS.md, no RESULTS_files/accuracy.png


def add_online_student(runs):
    """leaves_adv: a student trained with the online attack (distill --adv) on the leaves shards."""
    folder = runs / "students" / "leaves_adv"
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps(summary(0.6, 0.7)))
    write_config(folder, teacher="runs/t/teacher.pt", shards=["data/demo/leaves-{000000..000000}.tar"],
                 adv="fraction=0.5,every=1", steps=300, out=str(folder))


def test_an_online_attacked_student_is_not_paired_with_the_offline_set_of_its_name(run):
    runs, data, out = run
    add_online_student(runs)
    score_file = json.loads((runs / "scores" / "score.json").read_text())
    score_file["sets"]["leaves_adv"] = score(0.1, 0.1, 0.1)  # the offline-attacked set: other data
    (runs / "scores" / "score.json").write_text(json.dumps(score_file))
    by = {r.name: r for r in collect(runs, data, PIPELINE)[0]}
    assert by["leaves_adv"].score is None and by["leaves"].score is not None
    md = write_report(runs, data, out, "t", config=PIPELINE).read_text()
    section = md.split("## Does the score predict the student?", 1)[1].split("\n## ", 1)[0]
    assert "Left out: `leaves_adv`, distilled with the online attack" in section and "| 5 |" in section
    assert "`leaves_adv` use it online (`--adv`" in md and "`noise_adv` trained on offline-attacked sets" in md
    assert "*_online" not in md


GOLDEN = Path(__file__).parent / "fixtures" / "report_pipeline.md"


def test_the_pipeline_report_is_byte_identical_to_its_golden_file(run):
    """Every line of prose the pipeline's report holds, pinned: the fixture runs with an online-attacked
    student and two longer budgets (one set attacked by name only), rendered with pipeline.yaml. A change
    here is a change to docs/RESULTS.md; regenerate the file on purpose, never to make this pass."""
    runs, data, out = run
    add_online_student(runs)
    for mult, tops in ((4, {"original": 0.9, "shaders": 0.84, "leaves": 0.85, "noise_online": 0.7, "noise": 0.8}),
                       (16, {"original": 0.92, "shaders": 0.9, "noise_online": 0.86})):
        for name, top1 in tops.items():
            d = runs.parent / f"demo-x{mult}" / "students" / name
            d.mkdir(parents=True)
            (d / "summary.json").write_text(json.dumps(summary(top1, 0.9, steps=300 * mult)))
    md = write_report(runs, data, out, config=PIPELINE).read_text()
    md = md.replace(str(PIPELINE_YAML), "pipeline.yaml").replace(str(runs.parents[1]), "TMP")
    assert md == GOLDEN.read_text()  # made by the code before the report package was split, and checked


def test_a_run_config_may_share_values_but_not_expand_without_bound(run, cli):
    """yaml.safe_dump writes an alias where a run's config shares an object: read. An alias bomb: refused."""
    runs, data, out = run
    leaves = runs / "students" / "leaves"
    shared = ["data/demo/leaves-{000000..000000}.tar"]
    (leaves / "config.yaml").write_text(yaml.safe_dump({"command": "kdtrain distill", "shards": shared,
                                                        "shards_copy": shared}))
    assert "*id001" in (leaves / "config.yaml").read_text()
    assert "| `leaves` | 80.0% |" in write_report(runs, data, out, "t", config=PIPELINE).read_text()
    shutil.rmtree(out.parent)
    (leaves / "config.yaml").write_text(_alias_bomb())
    res = CliRunner().invoke(cli, ["report", "--runs", str(runs), "--data", str(data), "--out", str(out),
                                   "--config", str(PIPELINE_YAML)])
    assert_one_line_error(res, "leaves/config.yaml expands to more than 100,000 values")
    assert not out.parent.exists()
