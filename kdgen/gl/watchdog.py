"""Probe untrusted programs in a child process that can be killed.

A user's shader may loop for minutes (or forever) per pixel, and a GL draw cannot be interrupted
from Python. So each imported program is first compiled and drawn in a child process with its own
GL context: no answer within the time limit and the child is killed, the program marked too slow,
and a fresh child takes the rest. The probe draws at the real frame size (a program may branch on
iResolution, so a smaller probe can pass a program that is far too slow at the real size); the timed
draws catch programs that are finite but too slow for a dataset. The time reported is the median of
TIMED_DRAWS draws, so that one draw sped up or slowed down by other work on a busy machine does not
flip the decision.

The child is a plain subprocess (`python -m kdgen.gl.watchdog`) talking over two pipes, not a
multiprocessing child: rendering workers are daemonic pool processes, which may not have those.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from kdgen.gl.sources import Program

log = logging.getLogger(__name__)

PROBE_SIZE = 16  # pixels per side of the probe frame when no size is given
STARTUP_S = 60.0  # the child's own start (Python, numpy, GL context) is not a program's fault
TIMED_DRAWS = 3  # draws timed per program; their median is reported
ONE_DRAW_S = 2.0  # a first timed draw slower than this is far past any frame budget: not repeated


def serve(recv: Connection, send: Connection, width: int = PROBE_SIZE, height: int = PROBE_SIZE) -> None:
    """The child's loop: compile, draw once (JIT), draw again timed (up to TIMED_DRAWS times), report the median."""
    from kdgen.gl.context import create_context
    from kdgen.gl.frames import draw_inputs
    from kdgen.gl.renderer import CompileError, Renderer

    renderer = Renderer(create_context(), width, height, 1, atlas=False)
    inputs = draw_inputs(np.random.default_rng(0), width, height)[None]
    send.send(("ready", None))
    while True:
        try:
            program = recv.recv()
        except (EOFError, OSError):  # the parent is gone (a worker stopped early): nothing to report
            return
        if program is None:
            return
        try:
            compiled = renderer.compile(program)
        except CompileError as err:
            send.send(("compile", str(err)))
            continue
        renderer.draw(compiled, inputs)  # the first draw pays for the JIT compile
        send.send(("ok", timed_draws(partial(renderer.draw, compiled, inputs))))
        compiled.release()


def timed_draws(draw) -> float:
    """The median of TIMED_DRAWS timings of `draw()` (only one where the first is slower than ONE_DRAW_S)."""
    times = []
    while len(times) < TIMED_DRAWS and not (len(times) == 1 and times[0] > ONE_DRAW_S):
        t0 = time.perf_counter()
        draw()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


class Watchdog:
    """Compile-and-time checks for programs, each bounded by `timeout` seconds of wall time."""

    def __init__(self, timeout: float, width: int = PROBE_SIZE, height: int = PROBE_SIZE):
        self.timeout, self.width, self.height = timeout, width, height
        self.proc = self.recv = self.send = None

    def _start(self) -> None:
        to_parent_r, to_parent_w = os.pipe()
        to_child_r, to_child_w = os.pipe()
        root = str(Path(__file__).resolve().parents[2])  # so the child imports this same kdgen
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        self.proc = subprocess.Popen([sys.executable, "-m", "kdgen.gl.watchdog", str(to_child_r), str(to_parent_w),
                                      str(self.width), str(self.height)],
                                     pass_fds=(to_child_r, to_parent_w), stdin=subprocess.DEVNULL, env=env)
        os.close(to_child_r)
        os.close(to_parent_w)
        self.recv = Connection(to_parent_r, writable=False)
        self.send = Connection(to_child_w, readable=False)
        if not self.recv.poll(STARTUP_S):
            self.stop()
            raise RuntimeError("the shader probe process did not start")
        self.recv.recv()

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            self.send.send(None)
            self.proc.wait(1.0)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        self.recv.close()
        self.send.close()
        self.proc = self.recv = self.send = None

    def check(self, program: Program) -> tuple[str, object]:
        """("ok", seconds for one probe frame (a median)), ("compile", log), ("slow", None) or ("crash", None)."""
        if self.proc is None:
            self._start()
        try:
            self.send.send(program)
            if self.recv.poll(self.timeout):
                return self.recv.recv()
        except (EOFError, OSError):  # the child died: a driver crash on this program
            self.proc.kill()
            self.stop()
            return "crash", None
        log.info("shader %s: no probe frame within %.1f s, killing the probe process", program.id, self.timeout)
        self.proc.kill()
        self.stop()
        return "slow", None


if __name__ == "__main__":
    serve(Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False),
          *map(int, sys.argv[3:5]))
