"""The budget curve: summaries of the same sets at several budgets -> table with ratios, and a figure."""

import json

from kdtrain.report.budget import collect, plot, table


def _summary(root, name, samples, top1):
    d = root / "students" / name
    d.mkdir(parents=True)
    (d / "summary.json").write_text(json.dumps({"student_top1": top1, "samples_seen": samples}))


def test_table_gives_each_set_its_ratio_to_the_original_at_the_same_budget(tmp_path):
    x1, x4 = tmp_path / "full", tmp_path / "full-x4"
    _summary(x1, "original", 1000, 0.80)
    _summary(x1, "shaders", 1000, 0.60)
    _summary(x4, "original", 4000, 0.90)
    _summary(x4, "shaders", 4000, 0.81)
    _summary(x4, "noise", 4000, 0.45)
    (x4 / "students" / "unfinished").mkdir()
    curves = collect([x1, x4], "students/*")
    assert sorted(curves) == ["noise", "original", "shaders"]
    rows = table(curves, "original").splitlines()
    assert rows[0] == "| set | 1,000 samples | 4,000 samples |"
    assert rows[2] == "| original | 80.0% | 90.0% |"
    assert rows[3] == "| noise | — | 45.0% (50.0%) |"
    assert rows[4] == "| shaders | 60.0% (75.0%) | 81.0% (90.0%) |"
    assert plot(curves, tmp_path / "curve.png", "original").stat().st_size > 1000


def test_report_section_reads_the_longer_budget_siblings(tmp_path):
    from kdtrain.report.config import Layout, ReportConfig
    from kdtrain.report.document import write_report

    runs = tmp_path / "runs"
    _summary(runs / "full", "original", 1000, 0.80)
    _summary(runs / "full", "shaders", 1000, 0.60)
    _summary(runs / "full", "leaves", 1000, 0.50)  # one budget only: left out of the curve
    _summary(runs / "full-x4", "original", 4000, 0.90)
    _summary(runs / "full-x4", "shaders", 4000, 0.81)
    conf = ReportConfig(reference="original", layout=Layout(students="students/*", budgets="{runs}-x*",
                                                            budgets_about="`{runs}-xN`: N times longer"))
    text = write_report(runs / "full", tmp_path, tmp_path / "R.md", config=conf).read_text()
    curve = text.split("## Budget curve", 1)[1].split("\n## ", 1)[0]
    assert "trained longer (`full-xN`: N times longer)" in curve
    assert "| shaders | 60.0% (75.0%) | 81.0% (90.0%) |" in curve and "leaves" not in curve
    assert (tmp_path / "R_files" / "budget.png").exists()
    text = write_report(runs / "full-x4", tmp_path, tmp_path / "R4.md", config=conf).read_text()
    assert "## Budget curve" not in text and not (tmp_path / "R4_files" / "budget.png").exists()  # no siblings


def test_a_target_missed_at_1x_is_checked_again_at_the_longer_budgets(tmp_path):
    from kdtrain.report.config import ReportConfig
    from kdtrain.report.runs import SetRun
    from kdtrain.report.sections import targets_section

    target = {"what": "shader images", "prefix": "shaders", "fraction": 0.9}
    conf = ReportConfig(reference="original", reference_student="original-data student", targets=[target])
    runs = [SetRun("original", {"student_top1": 0.80, "samples_seen": 1000}, {}, is_reference=True),
            SetRun("shaders", {"student_top1": 0.60, "samples_seen": 1000}, {}, target=target)]
    text, met, checked = targets_section(runs, conf)
    assert (met, checked) == (0, 1) and "**missed**" in text and "samples seen" not in text
    _summary(tmp_path / "full", "original", 1000, 0.80)
    _summary(tmp_path / "full-x4", "original", 4000, 0.90)
    _summary(tmp_path / "full-x4", "shaders", 4000, 0.82)
    _summary(tmp_path / "full-x4", "leaves", 4000, 0.89)  # another family: not counted for shaders
    text, met, checked = targets_section(runs, conf, collect([tmp_path / "full", tmp_path / "full-x4"], "students/*"))
    assert (met, checked) == (1, 1)
    assert "at 4,000 samples seen: **met** — `shaders` 82.0% = 91.1% of the original-data student" in text
