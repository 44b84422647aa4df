"""Shared helpers: run the CLIs in-process (click's CliRunner) or as real subprocesses."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

try:  # triton's LLVM (which torch.export loads) crashes the process when Mesa's llvmpipe has loaded its
    import triton  # noqa: F401  # own LLVM first (a GL test before an export test); loaded first, both work
except ImportError:  # a torch build without triton: nothing to order
    pass

BIN = Path(sys.executable).parent
SHADER_FIXTURES = Path(__file__).parent / "fixtures" / "shaders"


def pytest_configure(config):
    """Where bytecode may not be written beside the sources (PYTHONDONTWRITEBYTECODE), every kdgen/kdtrain
    process the tests start would compile torch and torchvision from source again (about 12 of the 20 s a
    tiny `kdtrain distill` takes on 2 cores). The tests' processes keep their bytecode in one folder of
    this session instead, removed at its end: still nothing is written beside any source file."""
    if os.environ.get("PYTHONDONTWRITEBYTECODE") and not os.environ.get("PYTHONPYCACHEPREFIX"):
        import atexit
        import tempfile

        cache = tempfile.mkdtemp(prefix="kdsurrogate-tests-pycache-")
        atexit.register(shutil.rmtree, cache, ignore_errors=True)
        os.environ["PYTHONPYCACHEPREFIX"] = cache
        del os.environ["PYTHONDONTWRITEBYTECODE"]


def shader_dir(tmp_path, *names) -> Path:
    """A folder `shaders` under tmp_path holding copies of the named fixture shaders."""
    root = tmp_path / "shaders"
    root.mkdir()
    for name in names:
        shutil.copy(SHADER_FIXTURES / name, root / name)
    return root


def render_counted(gen, seeds) -> tuple[list, dict]:
    """Open a generator, render `seeds`, take its counters and close it (also on failure)."""
    gen.open()
    try:
        return gen.render(seeds), gen.take_counters()
    finally:
        gen.close()


def run_cli(tool: str, *args, cwd=None, timeout=300) -> subprocess.CompletedProcess:
    """Run `kdgen`/`kdtrain` as a user would, returning the completed process."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([str(BIN / tool), *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout, env=env)


def kill_at_first_checkpoint(proc: subprocess.Popen, out: Path, timeout: float = 120) -> None:
    """SIGKILL a training run as soon as its first checkpoint (OUT/last.pt) exists; the run must still
    have been going (a run that already ended proves nothing about resume)."""
    import signal
    import time

    deadline = time.time() + timeout
    while not (out / "last.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"


def assert_one_line_error(result, needle: str = "") -> None:
    """Bad input: exit status 2 and exactly one line `error: ...` naming `needle`, no traceback.
    `result`: a completed subprocess (its stderr is checked) or click's CliRunner result (its whole
    output: stdout and stderr)."""
    if isinstance(result, subprocess.CompletedProcess):
        code, stderr = result.returncode, result.stderr
    else:
        code, stderr = result.exit_code, result.output
    assert code == 2, (code, stderr)
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert needle in lines[0], stderr
    assert "Traceback" not in stderr


@pytest.fixture
def image_folder(tmp_path) -> Path:
    """A small labelled image folder: 2 classes, mixed sizes and formats, one corrupt file."""
    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    for cls, n in (("cat", 3), ("dog", 4)):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            arr = rng.integers(0, 255, (20 + 5 * i, 30, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / cls / f"{i}.{'png' if i % 2 else 'jpg'}")
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return root
