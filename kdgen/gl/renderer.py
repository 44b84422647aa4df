"""Compile programs and draw their frames: many frames per draw as tiles of a float atlas, a resolve
pass that box-filters supersampled tiles down in GL, one small readback into a reused buffer."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from kdgen.gl.frames import NVEC
from kdgen.gl.sources import VERSION, VERTEX_BODY, Program, read

log = logging.getLogger(__name__)

CHANNEL_SIZES = (256, 256, 64, 256)  # iChannel0..3 noise textures
# Plain GLSL programs name their inputs in several dialects (glslsandbox, The Book of Shaders, Shadertoy).
PLAIN_UNIFORMS = {
    "time": ("time", "u_time", "uTime", "iTime", "iGlobalTime"),
    "resolution": ("resolution", "u_resolution", "uResolution", "iResolution"),
    "mouse": ("mouse", "u_mouse", "uMouse", "iMouse"),
    "frame": ("frame", "u_frame", "iFrame"),
    "date": ("date", "u_date", "iDate"),
}


class CompileError(Exception):
    """The GL compiler or linker rejected a program; the message is its log."""


@dataclass
class Compiled:
    program: Program
    gl: object  # moderngl.Program
    vao: object  # moderngl.VertexArray

    def release(self) -> None:
        self.vao.release()
        self.gl.release()


def set_uniform(prog, name: str, values) -> None:
    """Write `values` to a uniform if the program uses it, padded or cut to its shape and type."""
    if name not in prog:
        return
    u = prog[name]
    n = u.dimension * u.array_length
    flat = np.resize(np.asarray(values, np.float64).reshape(-1), n)
    dtype = np.int32 if u.fmt.endswith("i") else np.uint32 if u.fmt.endswith("I") else np.float32
    u.write(flat.astype(dtype).tobytes())


def noise_textures(ctx) -> list:
    """Fixed noise images for Shadertoy's iChannel0..3: white, smooth and 1/f noise (tileable, mipmapped)."""
    import moderngl

    rng = np.random.default_rng(20240601)
    out = []
    for i, size in enumerate(CHANNEL_SIZES):
        white = rng.random((size, size, 4))
        if i in (1, 3):  # low-pass in the Fourier domain: smooth and still tileable
            f = np.hypot(*np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij"))
            gain = np.exp(-(f * 16.0) ** 2)[..., None] if i == 1 else (1.0 / np.maximum(f, 1.0 / size))[..., None]
            field = np.fft.ifft2(np.fft.fft2(white, axes=(0, 1)) * gain, axes=(0, 1)).real
            lo, hi = field.min((0, 1)), field.max((0, 1))
            white = (field - lo) / (hi - lo)
        tex = ctx.texture((size, size), 4, (white * 255.0 + 0.5).astype(np.uint8).tobytes())
        tex.repeat_x = tex.repeat_y = True
        tex.build_mipmaps()
        tex.filter = (moderngl.LINEAR_MIPMAP_LINEAR, moderngl.LINEAR)
        out.append(tex)
    return out


class Renderer:
    """Frames of one program at a time, `width` x `height` each, rendered `supersample` times larger.

    Two passes per draw: the program fills a float atlas of tiles at the render resolution, then a
    resolve pass box-filters each tile down, clamps to [0, 1] and counts non-finite pixels in alpha.
    Only the small resolved atlas is read back, into a reused buffer.
    """

    def __init__(self, ctx, width: int, height: int, supersample: int = 1, atlas: bool = True,
                 max_pixels: int = 1 << 20, max_tiles: int = 1024):
        import moderngl

        self.ctx, self.width, self.height, self.ss = ctx, width, height, supersample
        self.strip = moderngl.TRIANGLE_STRIP
        self.rw, self.rh = width * supersample, height * supersample  # render size of one frame
        # tile pitch, even at both resolutions: 2x2 derivative quads never straddle two tiles
        self.pw, self.ph = width + width % 2, height + height % 2
        self.sw, self.sh = self.pw * supersample, self.ph * supersample
        limit = min(ctx.info["GL_MAX_RENDERBUFFER_SIZE"], ctx.info["GL_MAX_VIEWPORT_DIMS"][0],
                    ctx.info["GL_MAX_VIEWPORT_DIMS"][1], ctx.info["GL_MAX_TEXTURE_SIZE"])
        if max(self.sw, self.sh) > limit:
            raise ValueError(f"frames of {self.rw}x{self.rh} exceed this GL's limit of {limit} pixels; "
                             f"lower --size or --supersample")
        want = max(1, min(max_tiles, max_pixels // (self.sw * self.sh))) if atlas else 1
        self.cols = max(1, min(math.isqrt(want), limit // self.sw))
        self.rows = max(1, min(want // self.cols, limit // self.sh))
        self.capacity = self.cols * self.rows
        self.frame = ctx.texture((self.cols * self.sw, self.rows * self.sh), 4, dtype="f4")
        self.frame.filter = (moderngl.NEAREST, moderngl.NEAREST)
        self.fbo = ctx.framebuffer([self.frame])
        self.out = ctx.framebuffer([ctx.renderbuffer((self.cols * self.pw, self.rows * self.ph), 4, dtype="f4")])
        self.resolve = ctx.program(vertex_shader=VERSION + VERTEX_BODY,
                                   fragment_shader=VERSION + read("resolve.glsl"))
        set_uniform(self.resolve, "kdFrame", [0])
        set_uniform(self.resolve, "kdSS", [supersample])
        self.resolve_vao = ctx.vertex_array(self.resolve, [])
        self.tiles = ctx.texture((NVEC, self.capacity), 4, dtype="f4")
        self.tiles.filter = (moderngl.NEAREST, moderngl.NEAREST)
        self.channels = noise_textures(ctx)
        self.buf = np.empty(self.cols * self.pw * self.rows * self.ph * 4, np.float32)
        log.debug("renderer: %dx%d frames, %d tiles per draw (%dx%d)", self.rw, self.rh, self.capacity,
                  self.cols, self.rows)

    def compile(self, program: Program) -> Compiled:
        import moderngl

        try:
            prog = self.ctx.program(vertex_shader=program.vertex, fragment_shader=program.fragment)
        except moderngl.Error as err:
            raise CompileError(str(err).strip()) from None
        vao = self.ctx.vertex_array(prog, [])
        set_uniform(prog, "kdTiles", [0])
        for i in range(4):
            set_uniform(prog, f"iChannel{i}", [i + 1])
        set_uniform(prog, "iChannelResolution", [(s, s, 1) for s in CHANNEL_SIZES])
        set_uniform(prog, "iSampleRate", [44100.0])
        set_uniform(prog, "kdStride", [self.sw, self.sh])
        if program.kind == "tiled":
            set_uniform(prog, "iResolution", [self.rw, self.rh, 1.0])
        return Compiled(program, prog, vao)

    def release(self) -> None:
        for obj in [self.fbo, self.frame, self.out, self.resolve_vao, self.resolve, self.tiles, *self.channels]:
            obj.release()

    def draw(self, compiled: Compiled, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Frames for `inputs` (n x NVEC*4): colours in [0, 1] (n x H x W x 3 float32, top row first)
        and each frame's fraction of non-finite pixels (drawn black)."""
        return self.draw_many([(compiled, inputs)])

    def draw_many(self, groups: list[tuple[Compiled, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        """draw() for several programs at once: the frames of every (compiled, inputs) group, concatenated
        in order. Tiled programs share atlas fills: each group's tiles are drawn by its program, a quad
        per tile, then one resolve and one readback serve the whole fill (a GPU waits for the readback;
        llvmpipe pays numpy's per-call costs on each). Plain programs draw one frame per draw.
        The programs must stay compiled until this returns."""
        total = sum(len(inputs) for _, inputs in groups)
        frames = np.empty((total, self.height, self.width, 3), np.float32)
        bad = np.empty(total, np.float64)
        fill: list[tuple[Compiled, np.ndarray]] = []  # groups' pieces waiting in the current fill
        done = used = 0  # frames finished; tiles of the current fill

        def flush() -> None:
            nonlocal fill, done, used
            if fill:
                tiles = self._draw_fill(fill, used)
                frames[done:done + used] = tiles[:, ::-1, :, :3]  # GL rows run bottom-up
                bad[done:done + used] = tiles[..., 3].mean(axis=(1, 2))
                done, fill, used = done + used, [], 0

        for compiled, inputs in groups:
            if compiled.program.kind != "tiled":
                flush()
                for v in inputs:
                    self._draw_plain(compiled, v)
                    tile = self._resolve(1, 1)[0]
                    frames[done], bad[done] = tile[::-1, :, :3], tile[..., 3].mean()
                    done += 1
                continue
            start = 0
            while start < len(inputs):  # a group fills the rest of a fill and goes on in the next
                piece = inputs[start:start + self.capacity - used]
                fill.append((compiled, piece))
                used += len(piece)
                start += len(piece)
                if used == self.capacity:
                    flush()
        flush()
        return frames, bad

    def _draw_fill(self, fill: list[tuple[Compiled, np.ndarray]], n: int) -> np.ndarray:
        """Draw n tiles, each group's by its own program, then resolve and read them back (as _resolve)."""
        rows = -(-n // self.cols)
        cols = -(-n // rows)  # as few spare tiles as possible (fewer than `rows`): not drawn, not read
        inputs = np.concatenate([piece for _, piece in fill]) if len(fill) > 1 else fill[0][1]
        self.tiles.write(np.ascontiguousarray(inputs, np.float32).tobytes(), viewport=(0, 0, NVEC, n))
        self._target(self.fbo, cols * self.sw, rows * self.sh)
        self.tiles.use(0)
        for i, tex in enumerate(self.channels):
            tex.use(i + 1)
        first = 0
        for compiled, piece in fill:  # a quad per tile, an instance per quad
            set_uniform(compiled.gl, "kdCols", [cols])
            set_uniform(compiled.gl, "kdFirst", [first])
            set_uniform(compiled.gl, "kdTarget", [cols * self.sw, rows * self.sh])
            compiled.vao.render(mode=self.strip, vertices=4, instances=len(piece))
            first += len(piece)
        return self._resolve(cols, rows)[:n]

    def _draw_plain(self, compiled: Compiled, v: np.ndarray) -> tuple[int, int]:
        prog = compiled.gl
        values = {"time": v[0:1], "resolution": [self.rw, self.rh, 1.0], "mouse": v[4:8], "frame": v[2:3],
                  "date": v[8:12]}
        for key, names in PLAIN_UNIFORMS.items():
            for name in names:
                set_uniform(prog, name, values[key])
        self._target(self.fbo, self.rw, self.rh)
        for i, tex in enumerate(self.channels):
            tex.use(i + 1)
        compiled.vao.render(vertices=3)
        return 1, 1

    def _target(self, fbo, width: int, height: int) -> None:
        fbo.use()
        fbo.viewport = (0, 0, width, height)

    def _resolve(self, cols: int, rows: int) -> np.ndarray:
        """Box-filter the drawn tiles, read them back: (cols * rows) x pitch x pitch x RGBA, bottom row first."""
        w, h = cols * self.pw, rows * self.ph
        self._target(self.out, w, h)
        self.frame.use(0)
        self.resolve_vao.render(vertices=3)
        self.out.read_into(self.buf, viewport=(0, 0, w, h), components=4, dtype="f4")
        atlas = self.buf[:w * h * 4].reshape(rows, self.ph, cols, self.pw, 4)
        return atlas.transpose(0, 2, 1, 3, 4).reshape(rows * cols, self.ph, self.pw, 4)[:, :self.height, :self.width]
