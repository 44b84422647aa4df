"""What `kdtrain student --stats auto` chooses for each teacher: raw refinement of the first 256 shader images
(kdgen shaders, seed 0, at the teacher's size: the one command's pool starts with the same images) and the share
of them brought to their target class; raw is kept at >= 50%, else kl (docs/RESULTS.md, "The statistics distance").

    .venv/bin/python bench/stats_probe.py runs/grid/*/teacher/teacher.pt
"""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from kdtrain.data.shards import iterate_shards
from kdtrain.pipeline.student import PROBE_IMAGES, StudentConfig, load_teacher_for
from kdtrain.synth.common import as_teacher_sees
from kdtrain.synth.refine import probe_stats

torch.manual_seed(0)
print("| teacher | probe: targets reached by raw refinement | distance chosen | probe time |")
print("|---|---|---|---|")
with tempfile.TemporaryDirectory() as tmp:
    made = {}
    for path in sys.argv[1:]:
        teacher = load_teacher_for(StudentConfig(teacher=path))  # as the one command loads it (--amp auto)
        size = teacher.spec.width
        if size not in made:  # one shader set per image size
            made[size] = Path(tmp) / str(size)
            subprocess.run([sys.executable, "-m", "kdgen", "shaders", "--n", str(PROBE_IMAGES), "--size", str(size),
                            "--out", str(made[size]), "--no-progress"], check=True, capture_output=True)
        batch = next(iter(iterate_shards([f"{made[size]}/shaders-0*.tar"], teacher.spec, PROBE_IMAGES)))
        start = time.perf_counter()
        stats, reached = probe_stats(teacher, as_teacher_sees(batch["images"], teacher.spec),
                                     torch.Generator().manual_seed(0))
        print(f"| {path} | {100 * reached:.1f}% | {stats} | {time.perf_counter() - start:.0f} s |", flush=True)
