"""The results report of a set of runs: a Markdown page (table, figures, targets, commands) regenerated from
the runs' summary files alone, so it never disagrees with them. What the runs are, where they lie and what
the prose says about them comes from a ReportConfig (config.py); without one the sets are listed by name
and no targets are checked.

Every input is read and checked first; only then are the figures drawn and the page written, so a bad
input leaves nothing behind."""

from __future__ import annotations

import shutil
from pathlib import Path

from kdtrain.errors import UserError
from kdtrain.report import budget, sections
from kdtrain.report.config import ReportConfig
from kdtrain.report.format import count
from kdtrain.report.plots import plot_accuracy, plot_score_vs_top1, scored
from kdtrain.report.runs import budget_roots, collect, read_run_yaml, read_summary, where


def _read_notes(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8").strip()
    except UnicodeDecodeError as e:
        raise UserError(f"notes {path} are not UTF-8 text (byte {e.start}); save them as UTF-8") from None


def write_report(runs: Path, data: Path, out_md: Path, title: str | None = None, notes: Path | None = None,
                 config: ReportConfig | None = None) -> Path:
    """Write OUT_MD and its figures (OUT_MD's stem + '_files/'); returns OUT_MD. `config`: the experiment
    (load_config("pipeline.yaml")); `title` overrides its title; `notes` its layout's notes file."""
    runs, data, out_md = Path(runs), Path(data), Path(out_md)
    conf = config or ReportConfig()
    lay = conf.layout
    students, score_file = collect(runs, data, conf)
    teacher_dir = where(runs, lay.teacher)
    teacher = read_summary(teacher_dir / "summary.json") if teacher_dir else None
    teacher_cfg = read_run_yaml(teacher_dir / "config.yaml") if teacher_dir else {}
    roots = budget_roots(runs, conf)  # every summary of RUNS and its longer budgets, read once
    curves = budget.collect([runs, *roots], lay.students) if roots else {}
    notes = Path(notes) if notes else where(runs, lay.notes)
    notes_text = _read_notes(notes) if notes and notes.is_file() else None

    files = out_md.parent / f"{out_md.stem}_files"
    figures = []  # (draw(path), file name): drawn once the whole page stands
    t_top1 = sections.teacher_top1(teacher, students)
    targets, met, checked = sections.targets_section(students, conf, curves)
    figures.append((lambda p: plot_accuracy(students, t_top1, p, conf.student_name), "accuracy.png"))
    parts = [f"# {title or conf.title}", "",
             sections.summary_paragraph(students, teacher, t_top1, met, checked, runs, conf), "",
             "## Students by surrogate set", "", sections.table(students, conf), "",
             sections.table_legend(students, teacher, t_top1, conf), "",
             f"![student top-1 per set]({files.name}/accuracy.png)", "", targets]
    shown = {k: v for k, v in curves.items() if len(v) > 1 or k == conf.reference}
    if len(shown) >= 2:
        batch = sections.batch_sizes(students)
        figures.append((lambda p: budget.plot(shown, p, conf.reference, batch), "budget.png"))
        parts.append(sections.budget_section(shown, conf, runs.name, f"{files.name}/budget.png"))
    else:
        parts.append("")
    parts.append(sections.spearman_section(students, conf))
    if scored(students):
        figures.append((lambda p: plot_score_vs_top1(students, p), "score_vs_top1.png"))
        parts += [f"![score metrics against student top-1]({files.name}/score_vs_top1.png)", ""]
    copies = []  # (source, file name)
    score_png = where(runs, lay.score_figure)
    if score_png and score_png.is_file():
        copies.append((score_png, "score.png"))
        parts += [f"Class histograms and teacher features of every scored set (`kdtrain score`, "
                  f"{count(score_file.get('limit'))} samples per set at most):", "",
                  f"![kdtrain score]({files.name}/score.png)", ""]
    held = sections.holdout_section(students)
    if held:
        parts.append(held)
    sheets = [r for r in students if r.sheet]
    if sheets:
        parts += ["## Contact sheets", ""]
        for r in sheets:  # copied beside the report, so the Markdown links are relative (they work on GitHub)
            copies.append((r.sheet, f"sheet_{r.name}.png"))
            parts += [f"**{r.name}**", "", f"![{r.name}]({files.name}/sheet_{r.name}.png)", ""]
    parts.append(sections.commands_section(students, data, teacher_cfg, runs, out_md, conf))
    parts.append(sections.differences_section(students, teacher, teacher_cfg, conf))
    if notes_text is not None:
        parts += ([] if notes_text.startswith("#") else ["## Notes", ""]) + [notes_text, ""]

    files.mkdir(parents=True, exist_ok=True)
    for draw, name in figures:
        draw(files / name)
    for src, name in copies:
        shutil.copyfile(src, files / name)
    out_md.write_text("\n".join(parts).rstrip() + "\n")
    return out_md
