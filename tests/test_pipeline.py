"""Smoke test of the whole pipeline (`make pipeline PROFILE=tiny`): every stage's outputs exist and the
report's table agrees with the summary files."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SETS = ["original", "shaders", "leaves", "noise", "photos", "shaders_adv", "leaves_adv", "noise_adv", "photos_adv",
        "curated", "shaders_ref", "leaves_ref", "noise_ref", "photos_ref", "shaders_ref_adv", "leaves_ref_adv",
        "noise_ref_adv"]


def test_tiny_pipeline_end_to_end(tmp_path):
    data, runs = tmp_path / "data", tmp_path / "runs"
    result = subprocess.run(["make", "--no-print-directory", "pipeline", "PROFILE=tiny", f"DATA_ROOT={data}",
                             f"RUNS_ROOT={runs}"], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # each stage printed the plain command it ran
    for command in ("kdgen shaders", "kdtrain teacher", "kdtrain attack", "kdtrain refine", "kdtrain curate",
                    "kdtrain distill",
                    "kdtrain score", "kdgen preview", "kdtrain report"):
        assert command in result.stdout
    d, r = data / "tiny", runs / "tiny"
    for name in ("shaders", "leaves", "noise", "photos", "shaders_adv", "leaves_adv", "noise_adv", "photos_adv",
                 "shaders_ref", "leaves_ref", "noise_ref", "photos_ref", "pool_balanced"):
        meta = json.loads((d / f"{name}-manifest.json").read_text())
        assert meta["num_samples"] > 0 and (d / sorted(meta["shards"])[0]).exists()
        assert (r / "sheets" / f"{name}.png").exists()
    assert (r / "teacher" / "teacher.pt").exists()
    assert not list(r.rglob("*.pt2"))  # the tiny profile reads no export, so it makes none (--no-export)
    scores = json.loads((r / "scores" / "score.json").read_text())["sets"]
    report = (r / "RESULTS.md").read_text()
    for name in SETS:
        summary = json.loads((r / "students" / name / "summary.json").read_text())
        assert summary["steps"] == 4 and summary["export"] is None
        row = next(line for line in report.splitlines() if line.startswith(f"| `{name}` |"))
        assert f"{100 * summary['student_top1']:.1f}%" in row
    assert abs(scores["leaves"]["relative_entropy"] - float(
        next(line for line in report.splitlines() if line.startswith("| `leaves` |")).split("|")[5])) < 1e-3
    assert 0 <= scores["leaves"]["coverage"] <= 1

    # a second run finds everything done and only rewrites the report
    again = subprocess.run(["make", "--no-print-directory", "pipeline", "PROFILE=tiny", f"DATA_ROOT={data}",
                            f"RUNS_ROOT={runs}"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0
    assert "kdtrain distill" not in again.stdout and "kdtrain report" in again.stdout
