"""`kdtrain attack | score | curate` end to end on tiny shards and a tiny teacher checkpoint."""

from __future__ import annotations

import json
import tarfile
from collections import Counter

import pytest
import torch
from click.testing import CliRunner

from kdtrain.cli.main import cli
from kdtrain.data.shards import iterate_shards
from kdtrain.models.teachers import load_teacher
from tests._kdtrain_fixtures import write_shards, write_teacher
from tests.conftest import assert_one_line_error

torch.set_num_threads(1)


@pytest.fixture
def setup(tmp_path):
    """A 1-channel 12 px teacher with 4 classes, and two pools: grey 12 px and colour 16 px (adapted)."""
    write_teacher(tmp_path / "t.pt", channels=1, size=12, classes=4)
    write_shards(tmp_path / "data", "pool", n=40, per_shard=16, size=12, channels=1, labels=False)
    write_shards(tmp_path / "data", "rgb", n=20, per_shard=16, size=16, channels=3, labels=False, seed=1)
    return tmp_path


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def metas(folder, name):
    out = []
    for path in sorted(folder.glob(f"{name}-*.tar")):
        with tarfile.open(path) as tar:
            out += [json.loads(tar.extractfile(m).read()) for m in tar.getmembers() if m.name.endswith(".json")]
    return out


def test_score_several_sets(setup):
    d = setup / "data"
    res = invoke("score", "--teacher", setup / "t.pt", "--shards", f"{d}/pool-*.tar", "--shards",
                 f"colour={d}/rgb-*.tar", "--out", setup / "sc", "--batch-size", 16)
    assert res.exit_code == 0, res.output
    header, *rows = [ln for ln in res.output.splitlines() if ln.strip()][:3]
    assert header.split()[:2] == ["set", "samples"]
    assert rows[0].split()[:2] == ["pool", "40"] and rows[1].split()[:2] == ["colour", "20"]
    report = json.loads((setup / "sc" / "score.json").read_text())
    assert set(report["sets"]) == {"pool", "colour"}
    assert sum(report["sets"]["pool"]["class_counts"]) == 40
    assert (setup / "sc" / "score.png").stat().st_size > 1000


def test_score_with_labelled_eval_and_limit(setup):
    write_shards(setup / "real", "test", n=12, per_shard=12, size=12, channels=1, labels=True, classes=4)
    d = setup / "data"
    res = invoke("score", "--teacher", setup / "t.pt", "--shards", f"{d}/pool-*.tar", "--n", 10,
                 "--eval", f"{setup}/real/test-*.tar", "--out", setup / "sc")
    assert res.exit_code == 0, res.output
    report = json.loads((setup / "sc" / "score.json").read_text())
    real = [k for k in report["sets"] if k.endswith("(real)")]
    assert report["sets"]["pool"]["n"] == 10 and len(real) == 1
    assert 0 <= report["sets"][real[0]]["teacher_accuracy"] <= 1
    assert 0 <= report["sets"]["pool"]["coverage"] <= 1 and "coverage" not in report["sets"][real[0]]
    assert report["sets"]["pool"]["nn_ratio"] > 0


def test_curate_keeps_k_per_class_and_reports_shortfalls(setup):
    d = setup / "data"
    res = invoke("curate", "--teacher", setup / "t.pt", "--shards", f"{d}/pool-*.tar", "--per-class", 6,
                 "--out", d / "pool-balanced", "--shard-size", 5)
    assert res.exit_code == 0, res.output
    # what the teacher predicts on the pool, worked out here independently
    t = load_teacher(setup / "t.pt")
    pool = Counter()
    for b in iterate_shards([f"{d}/pool-*.tar"], t.spec, 64):
        with torch.no_grad():
            pool.update(t((b["images"] * 255).round() / 255).argmax(1).tolist())
    got = Counter(m["params"]["teacher_pred"] for m in metas(d, "pool-balanced"))
    assert got == Counter({c: min(6, pool[c]) for c in pool})
    short = [t.class_names[c] for c in range(4) if pool[c] < 6]
    assert short, "the tiny teacher should leave some class short"
    assert f"{len(short)} classes not filled" in res.output
    manifest = json.loads((d / "pool-balanced-manifest.json").read_text())
    assert manifest["num_samples"] == sum(got.values()) and manifest["generator"] == "curate"


def test_attack_writes_pairs_with_metadata(setup):
    d = setup / "data"
    res = invoke("attack", "--teacher", setup / "t.pt", "--shards", f"{d}/pool-*.tar", "--n", 12,
                 "--eps", "96/255", "--out", d / "pool-adv", "--seed", 3)
    assert res.exit_code == 0, res.output
    ms = metas(d, "pool-adv")
    assert ms, res.output
    for m in ms:
        p = m["params"]
        assert m["generator"] == "attack"
        assert p["stage"] in ("pre", "post", "deep-pre", "deep-post")
        assert {"key", "shard"} <= set(p["source"]) and 0 <= p["teacher_conf"] <= 1
        assert p["steps"] >= 1 and 0 <= p["target"] < 4
    manifest = json.loads((d / "pool-adv-manifest.json").read_text())
    assert manifest["params"]["attack"]["eps"] == pytest.approx(96 / 255)
    again = invoke("attack", "--teacher", setup / "t.pt", "--shards", f"{d}/pool-*.tar", "--n", 12,
                   "--eps", "96/255", "--out", d / "pool-adv2", "--seed", 3)
    assert again.exit_code == 0
    for a, b in zip(sorted(d.glob("pool-adv-0*.tar")), sorted(d.glob("pool-adv2-0*.tar")), strict=True):
        assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize("cmd,extra,needle", [
    ("score", ["--shards", "nowhere-*.tar", "--out", "sc"], "matches no files"),
    ("curate", ["--shards", "DATA/pool-*.tar", "--per-class", "0", "--out", "x"], "per-class"),
    ("curate", ["--shards", "DATA/pool-*.tar", "--per-class", "2", "--min-conf", "0.9", "--max-conf", "0.1",
                "--out", "DATA/c"], "bounds"),
    ("curate", ["--shards", "DATA/pool-*.tar", "--per-class", "2", "--out", "DATA/pool"], "input shards"),
    ("attack", ["--shards", "DATA/pool-*.tar", "--out", "DATA/a", "--eps", "2/255", "--step", "4/255"], "step"),
    ("attack", ["--shards", "DATA/pool-*.tar", "--out", "DATA/a.b"], "letters"),
    ("score", ["--shards", "DATA/pool-*.tar", "--eval", "fashion-mnist", "--out", "sc"], "classes"),
    ("score", ["--shards", "DATA/pool-000000.tar", "DATA/pool-000001.tar", "--out", "sc"],  # an unquoted glob
     "quote shard patterns"),
])
def test_bad_input_is_one_line(setup, cmd, extra, needle):
    args = [a.replace("DATA", str(setup / "data")) for a in extra]
    if "--out" in args and not args[args.index("--out") + 1].startswith(str(setup)):
        args[args.index("--out") + 1] = str(setup / args[args.index("--out") + 1])
    assert_one_line_error(invoke(cmd, "--teacher", setup / "t.pt", *args), needle)


def test_existing_output_needs_overwrite(setup):
    d = setup / "data"
    args = ["curate", "--teacher", setup / "t.pt", "--shards", f"{d}/pool-*.tar", "--per-class", 2, "--out",
            d / "cur"]
    assert invoke(*args).exit_code == 0
    assert_one_line_error(invoke(*args), "--overwrite")
    assert invoke(*args, "--overwrite").exit_code == 0


def test_every_teacher_command_takes_the_same_teacher_flags(setup):
    """An exported (.pt2) teacher without a sidecar works in score, attack and curate given --teacher-spec,
    and a sidecar written as a user would (a square `size`) works too."""
    from kdtrain.models.registry import create_model

    d = setup / "data"
    model = create_model("cnn-tiny", 4, 1).eval()
    batch = torch.export.Dim("batch", min=1, max=1024)
    torch.export.save(torch.export.export(model, (torch.rand(2, 1, 12, 12),), dynamic_shapes=({0: batch},)),
                      setup / "ts.pt2")
    common = ["--teacher", setup / "ts.pt2", "--shards", f"{d}/pool-*.tar", "--n", 8, "--batch-size", 8]
    cmds = {"score": ["--out", setup / "sc"], "attack": ["--out", d / "adv", "--max-steps", 1],
            "curate": ["--per-class", 1, "--out", d / "cur"]}
    for cmd, extra in cmds.items():
        assert_one_line_error(invoke(cmd, *common, *extra), "--teacher-spec")
        res = invoke(cmd, *common, *extra, "--teacher-spec", "1x12x12/0.5/0.5")
        assert res.exit_code == 0, (cmd, res.output)
    (setup / "ts.json").write_text(json.dumps({"channels": 1, "size": 12, "mean": [0.5], "std": [0.5]}))
    assert invoke("score", *common, *cmds["score"]).exit_code == 0


@pytest.mark.parametrize("spec,needle", [
    ({"channels": 1, "size": 28, "std": [0.35]}, "no 'mean'"),
    ({"channels": 1, "height": 28, "mean": [0.28], "std": [0.35]}, "no 'size'"),
    ({"channels": 1, "size": "big", "mean": [0.28], "std": [0.35]}, "numbers"),
])
def test_a_bad_teacher_spec_names_the_missing_field_in_one_short_line(setup, spec, needle):
    from kdtrain.models.registry import create_model

    torch.jit.save(torch.jit.trace(create_model("cnn-tiny", 4, 1).eval(), torch.rand(1, 1, 12, 12)), setup / "b.pt")
    (setup / "b.json").write_text(json.dumps(spec))
    res = invoke("score", "--teacher", setup / "b.pt", "--shards", f"{setup}/data/pool-*.tar", "--out", setup / "s")
    assert_one_line_error(res, needle)
    assert "size\" (or \"height\" and \"width\")" in res.output and len(res.output) < 200
