"""Per-worker shader rendering: the program pool, compiled programs, frame retries, mixing, metadata.

Determinism: a sample's frames depend only on its own seed sequence. Its rng draws the program and
the frame inputs; a rejected frame is redrawn from the same rng; which programs are usable is a
property of the program alone (compiler verdict, deterministic test frames), never of the order in
which a worker met them. Batching only groups equal programs into one draw, and a tile renders the
same bytes wherever it sits in the atlas. (One exception: an imported program's speed verdict is a
timing, so a program right at the limit could pass in one run and fail in another.)
"""

from __future__ import annotations

import functools
import logging
from collections import Counter, OrderedDict, defaultdict
from dataclasses import dataclass, field

import numpy as np

from kdgen.errors import UserError
from kdgen.gl.context import create_context
from kdgen.gl.frames import UNIFORMS, from_meta, inputs_from_uniforms, to_meta
from kdgen.gl.procedural import procedural_program
from kdgen.gl.renderer import Compiled, CompileError, Renderer
from kdgen.gl.sources import Program, library_programs
from kdgen.gl.validate import frame_problems, to_uint8
from kdgen.gl.watchdog import Watchdog

log = logging.getLogger(__name__)

MAX_TRIES = 4  # frames (fresh inputs) tried per program for one sample
MAX_PROGRAMS = 3  # programs tried for one sample; after that its last frame is kept anyway
MAX_PICKS = 1000  # program draws allowed to find a usable one
TEST_FRAMES = 8  # deterministic frames drawn when a program is first loaded ...
DROP_AT = 7  # ... and this many of them rejected drops the program
CACHE = 256  # compiled programs kept per worker (older ones are released; the driver's disk cache
# makes recompiling them cheap)
MAX_FRAME_S = 0.25  # an imported program projected slower than this per frame is skipped
WHY = {"compile error": "failed to compile", "too slow": "too slow", "dropped": "gave degenerate frames",
       "crashed": "crashed the GL driver"}


@dataclass
class Settings:
    """What the shaders generator resolved from its options (defaults: kdgen/generators/shaders.ShadersOptions)."""

    sources: tuple[str, ...]  # any of library, procedural, import
    programs: int  # procedural programs in the pool: proc/0 .. proc/N-1
    supersample: int
    mix: int  # frames blended per sample
    atlas: bool
    probe_timeout: float  # seconds an imported program gets to compile and draw a test frame


@dataclass
class Job:
    """One frame a sample needs (one per mixed component)."""

    sample: int
    part: int
    rng: np.random.Generator
    weight: float = 1.0
    program: str = ""
    uniforms: np.ndarray | None = None  # the frame's draw from rng (frames.draw_inputs) ...
    inputs: np.ndarray | None = None  # ... and the inputs made of it, for all pending jobs at once
    tries: int = 0  # frames tried with the current program
    switches: int = 0  # programs abandoned
    rejected: list = field(default_factory=list)
    frame: np.ndarray | None = None
    done: bool = False
    kept: bool = False  # retries ran out: the last (rejected) frame was kept


def blend(frames: list[np.ndarray], weights: list[float]) -> np.ndarray:
    out = np.zeros_like(frames[0])
    for f, w in zip(frames, weights):
        out += np.float32(w) * f
    return out


def in_context(method):
    """Make this engine's GL context current first: one process may hold several (tests, notebooks),
    and GL calls go to whichever is current."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self.renderer.ctx:
            return method(self, *args, **kwargs)

    return wrapper


class Engine:
    def __init__(self, width: int, height: int, settings: Settings, imports: list[Program] = ()):
        self.width, self.height, self.s = width, height, settings
        self.imports = {p.id: p for p in imports}
        self.procedural: dict[str, Program] = {}  # composed on first use
        self.counters: Counter = Counter()
        self.status: dict[str, str | None] = {}  # program id -> None (usable) or why not
        self.cache: OrderedDict[str, Compiled] = OrderedDict()
        self.renderer = None
        self.preload = True  # look for the programs a render call will meet and load them together

    # ---- set-up --------------------------------------------------------------------------------

    def open(self) -> None:
        self.renderer = Renderer(create_context(), self.width, self.height, self.s.supersample, self.s.atlas)
        self.rw, self.rh = self.renderer.rw, self.renderer.rh
        self._fill_pools()

    @in_context
    def _fill_pools(self) -> None:
        self.library = {p.id: p for p in library_programs()}
        self.pools = {}
        if "library" in self.s.sources:
            self.pools["library"] = list(self.library)
        if "procedural" in self.s.sources:
            self.pools["procedural"] = [f"proc/{i}" for i in range(self.s.programs)]
        if "import" in self.s.sources:
            self.pools["import"] = self._check_imports()
        if not self.pools.get("import", True):  # a folder the user named gave nothing: never a silent fallback
            why = ", ".join(f"{n} {WHY.get(r, r)}" for r, n in sorted(Counter(self.status.values()).items()))
            raise UserError(f"every imported shader was rejected ({why}); run with -v to see each one")

    def _check_imports(self) -> list[str]:
        """Compile and time each imported program in a killable child, then load the survivors."""
        dog = Watchdog(self.s.probe_timeout, self.rw, self.rh)  # probed at the size it will be drawn at
        try:
            for pid, program in self.imports.items():
                verdict, info = dog.check(program)
                if verdict == "compile":
                    self._reject(pid, "compile error", f"does not compile:\n{info}")
                elif verdict == "slow":
                    self._reject(pid, "too slow", f"too slow: no test frame within {self.s.probe_timeout:g} s; "
                                                  f"skipped")
                elif verdict == "ok" and info > MAX_FRAME_S:
                    self._reject(pid, "too slow", f"too slow: about {info:.2f} s per frame; skipped")
                elif verdict == "crash":
                    self._reject(pid, "crashed", "crashed the GL driver; skipped")
        finally:
            dog.stop()
        return [pid for pid in self.imports if self._usable(pid)]

    def _reject(self, pid: str, reason: str, message: str) -> None:
        self.status[pid] = reason
        self.counters[f"programs_{reason.replace(' ', '_')}"] += 1
        log.warning("shader %s %s", pid, message)

    def close(self) -> None:
        if self.renderer is not None:
            ctx = self.renderer.ctx
            with ctx:
                for compiled in self.cache.values():
                    compiled.release()
                self.cache.clear()
                self.renderer.release()
            ctx.release()
            self.renderer = None

    # ---- programs ------------------------------------------------------------------------------

    def program(self, pid: str) -> Program:
        if pid.startswith("lib/"):
            return self.library[pid]
        if pid.startswith("proc/"):
            if pid not in self.procedural:
                self.procedural[pid] = procedural_program(int(pid[5:]))
            return self.procedural[pid]
        return self.imports[pid]

    def _usable(self, pid: str) -> bool:
        """Compile and test a program the first time it is met; remember the verdict."""
        if pid not in self.status:
            self._load([pid])
        return self.status[pid] is None

    def _load(self, pids: list[str]) -> None:
        """Compile and test programs met for the first time, the test frames of up to CACHE // 2 programs
        drawn together (draw_many); each verdict goes to self.status."""
        for at in range(0, len(pids), CACHE // 2):
            tested = []
            for pid in pids[at:at + CACHE // 2]:
                program = self.program(pid)
                try:
                    compiled = self.renderer.compile(program)
                except CompileError as err:
                    self._reject(pid, "compile error", f"does not compile:\n{err}")
                    continue
                # frames from a fixed stream of this program's own: the verdict is the same in every worker
                rng = np.random.default_rng(int(program.hash, 16))
                draws = np.stack([rng.random(UNIFORMS) for _ in range(TEST_FRAMES)])
                tested.append((pid, compiled, inputs_from_uniforms(draws, self.rw, self.rh)))
            if not tested:
                continue
            frames, bad = self.renderer.draw_many([(compiled, inputs) for _, compiled, inputs in tested])
            verdicts = frame_problems(to_uint8(frames), bad)
            for k, (pid, compiled, _) in enumerate(tested):
                problems = [p for p in verdicts[k * TEST_FRAMES:(k + 1) * TEST_FRAMES] if p]
                if len(problems) >= DROP_AT:
                    compiled.release()
                    common = Counter(problems).most_common(1)[0][0]
                    self._reject(pid, "dropped", f"dropped: {len(problems)} of {TEST_FRAMES} test frames rejected "
                                                 f"(mostly {common})")
                    continue
                self.status[pid] = None
                self.counters["programs_loaded"] += 1
                self._keep(pid, compiled)

    def _first_picks(self, seeds) -> list[str]:
        """The programs not yet met that the first draw of these samples names (mix 1), in order: loaded
        together before planning, where one at a time each would be a draw, a readback and a check."""
        sources, found = list(self.pools), {}
        for seq in seeds:
            rng = np.random.default_rng(seq)  # as _plan's first _pick draws
            pool = self.pools[sources[int(rng.integers(len(sources)))]]
            pid = pool[int(rng.integers(len(pool)))]
            if pid not in self.status:
                found[pid] = None
        return list(found)

    def _keep(self, pid: str, compiled: Compiled) -> None:
        self.cache[pid] = compiled
        while len(self.cache) > CACHE:
            self.cache.popitem(last=False)[1].release()

    def _compiled(self, pid: str) -> Compiled:
        if pid in self.cache:
            self.cache.move_to_end(pid)
        else:
            self._keep(pid, self.renderer.compile(self.program(pid)))
        return self.cache[pid]

    def _pick(self, rng: np.random.Generator, exclude: set[str]) -> str:
        sources = list(self.pools)
        for _ in range(MAX_PICKS):
            pool = self.pools[sources[int(rng.integers(len(sources)))]]
            pid = pool[int(rng.integers(len(pool)))]
            if pid not in exclude and self._usable(pid):
                return pid
        raise UserError(f"no usable shader program found in {MAX_PICKS} draws; most programs are rejected "
                         f"(run with -v to see why)")

    # ---- frames --------------------------------------------------------------------------------

    @in_context
    def render(self, seeds) -> list[tuple[np.ndarray, dict]]:
        if self.s.mix == 1 and self.preload:
            new = self._first_picks(seeds)
            self._load(new)
            self.preload = bool(new)  # once a call meets no new program, later ones are not scanned
        samples = [self._plan(i, seq) for i, seq in enumerate(seeds)]
        jobs = [job for parts in samples for job in parts]
        pending = jobs
        while pending:
            rejected = self._draw(pending)
            for job in rejected:  # in (sample, part) order: the rng draws below are deterministic
                self._retry(job, samples[job.sample])
            pending = [job for job in jobs if not job.done]
        return [self._result(parts) for parts in samples]

    def _plan(self, i: int, seq) -> list[Job]:
        rng = np.random.default_rng(seq)
        if self.s.mix == 1:
            parts = [Job(i, 0, rng)]
        else:  # each component its own stream, so one's retries never shift another's draws
            weights = rng.dirichlet(np.ones(self.s.mix))
            subs = rng.integers(0, 2 ** 63, size=self.s.mix)
            parts = [Job(i, j, np.random.default_rng(int(s)), float(w)) for j, (s, w) in enumerate(zip(subs, weights))]
        for job in parts:
            job.program = self._pick(job.rng, {p.program for p in parts})
            job.uniforms = job.rng.random(UNIFORMS)
        return parts

    def _draw(self, pending: list[Job]) -> list[Job]:
        """Render every pending job, grouped by program, all groups through shared atlas fills; returns the
        rejected ones in order."""
        fresh = [job for job in pending if job.inputs is None]
        if fresh:
            inputs = inputs_from_uniforms(np.stack([job.uniforms for job in fresh]), self.rw, self.rh)
            for job, v in zip(fresh, inputs):
                job.inputs = v
        groups = defaultdict(list)
        for job in pending:
            groups[job.program].append(job)
        pids, frames, bad = list(groups), [], []
        for at in range(0, len(pids), CACHE // 2):  # every program of a draw_many call stays compiled
            part = [(self._compiled(pid), np.stack([j.inputs for j in groups[pid]]))
                    for pid in pids[at:at + CACHE // 2]]
            f, b = self.renderer.draw_many(part)
            frames.append(f)
            bad.append(b)
        frames, bad = np.concatenate(frames), np.concatenate(bad)
        images = to_uint8(frames)
        jobs = [job for pid in pids for job in groups[pid]]
        self.counters["frames_rendered"] += len(jobs)
        rejected = []
        for job, frame, image, problem in zip(jobs, frames, images, frame_problems(images, bad)):
            job.frame = frame if self.s.mix > 1 else image
            if problem is None:
                job.done = True
            else:
                self.counters["frames_rejected"] += 1
                self.counters[f"frames_rejected_{problem}"] += 1
                job.rejected.append(problem)
                rejected.append(job)
        return sorted(rejected, key=lambda j: (j.sample, j.part))

    def _retry(self, job: Job, parts: list[Job]) -> None:
        job.tries += 1
        if job.tries >= MAX_TRIES:
            job.switches += 1
            if job.switches >= MAX_PROGRAMS:
                self.counters["samples_kept_after_retries"] += 1
                job.done = job.kept = True
                return
            job.tries = 0
            job.program = self._pick(job.rng, {p.program for p in parts})
        job.uniforms, job.inputs = job.rng.random(UNIFORMS), None

    def _result(self, parts: list[Job]) -> tuple[np.ndarray, dict]:
        meta = {"supersample": self.s.supersample}
        if self.s.mix == 1:
            meta.update(self._describe(parts[0]))
            return parts[0].frame, meta
        meta["mix"] = [dict(self._describe(j), weight=j.weight) for j in parts]
        return to_uint8(blend([j.frame for j in parts], [j.weight for j in parts])), meta

    def _describe(self, job: Job) -> dict:
        program = self.program(job.program)
        out = {"program": program.id, "source": program.source, "source_hash": program.hash}
        if program.seed is not None:
            out["program_seed"] = program.seed
        uniforms = to_meta(job.inputs)
        out["time"] = uniforms.pop("time")
        out["uniforms"] = uniforms
        redrawn = job.rejected[:-1] if job.kept else job.rejected
        if redrawn:  # why earlier frames of this sample were redrawn
            out["redrawn"] = list(redrawn)
        if job.kept:
            out["kept_rejected"] = job.rejected[-1]  # retries ran out; this frame failed that check
        return out

    @in_context
    def render_meta(self, meta: dict) -> np.ndarray:
        """Re-render a sample from its metadata alone (same size and GL implementation: same bytes)."""
        parts = meta["mix"] if "mix" in meta else [dict(meta, weight=None)]
        frames = []
        for part in parts:
            program = self.program(part["program"])
            if program.hash != part["source_hash"]:
                raise ValueError(f"program {program.id} has changed since this sample was made")
            inputs = from_meta(dict(part["uniforms"], time=part["time"]))[None]
            frame, _ = self.renderer.draw(self._compiled(program.id), inputs)
            frames.append(frame[0])
        if "mix" not in meta:
            return to_uint8(frames[0])
        return to_uint8(blend(frames, [p["weight"] for p in parts]))
