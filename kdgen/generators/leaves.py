"""Dead-leaves images: random occluding shapes with power-law sizes until the canvas is covered.

Leaves are laid front to back: a pixel keeps the first leaf that covers it, which is the dead-leaves
model (later leaves lie behind earlier ones). The first leaves, enough to cover nearly all of the
canvas (first_batch_size), are painted back to front by Pillow's C rasteriser; later leaves are only tested
against the few pixels still uncovered, so no per-leaf full-image pass or coverage check is needed.
A batch of images is made together (geometry and hole tests vectorised over all of them), each
image from its own random stream, so an image never depends on its batch.
"""

from __future__ import annotations

from collections import deque
from itertools import repeat, starmap

try:
    from operator import call
except ImportError:  # Python 3.10

    def call(function, /, *args):
        return function(*args)

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from kdgen.generators.noise import fbm
from kdgen.registry import Generator, register
from kdgen.settings import knob

SHAPES = ("disk", "square", "oriented_square", "rectangle", "triangle", "quadrilateral")
DISK, SQUARE, ORIENTED_SQUARE, RECTANGLE, TRIANGLE, QUAD = range(len(SHAPES))
COLOURS = ("rgb", "grey", "textured")
# Mean area of each shape over the area of its circumscribed disk (exact, for this module's geometry):
# rectangles have half-angles uniform on [0.15, pi/2 - 0.15]; triangle and quadrilateral vertices are
# uniform on the circle (E[area] = 3/(2 pi) and 3/pi times r^2)
AREA_FRACTION = np.array([1.0, 2 / np.pi, 2 / np.pi, 2 * np.cos(0.3) / (np.pi * (np.pi / 2 - 0.3)),
                          3 / (2 * np.pi**2), 3 / np.pi**2])
FIRST_COVER = 5.0  # paint leaves until e^-5 (0.7%) of the canvas is expected to be left uncovered
HOLE_TESTS = 1 << 14  # (leaf, hole) pairs tested per image and round, about
MAX_LEAVES = 2_000_000  # a safety bound; real images need a few hundred to a few thousand
MAX_RENDER_PIXELS = 1 << 26  # per image, at the antialiased size


def cover_probability(h: int, w: int, shape_ids, rmin: float, rmax: float, exponent: float) -> float:
    """p = E[leaf area] / (h w): the chance that one leaf covers a given pixel."""
    def moment(k):  # integral of r^k over [rmin, rmax]
        return np.log(rmax / rmin) if abs(k + 1) < 1e-9 else (rmax ** (k + 1) - rmin ** (k + 1)) / (k + 1)

    mean_r2 = moment(2 - exponent) / moment(-exponent)
    return np.pi * mean_r2 * AREA_FRACTION[np.asarray(shape_ids)].mean() / (h * w)


def first_batch_size(h: int, w: int, shape_ids, rmin: float, rmax: float, exponent: float) -> int:
    """Leaves to paint before switching to hole tests: enough that about e^-FIRST_COVER of the canvas
    is left uncovered. A leaf covers a given pixel with probability p (cover_probability), so F leaves
    leave (1 - p)^F ~ e^(-p F) uncovered (472 leaves for the default mixed shapes, 1,658 for triangles).
    """
    p = cover_probability(h, w, shape_ids, rmin, rmax, exponent)
    return int(np.clip(np.ceil(FIRST_COVER / p), 64, 16384))


def leaves_to_cover(h: int, w: int, shape_ids, rmin: float, rmax: float, exponent: float) -> float:
    """About how many leaves it takes to cover every pixel: the last of h w pixels is covered after
    about (ln(h w) + a few) / p leaves. nan or inf where tiny radii overflow the moments."""
    with np.errstate(all="ignore"):
        return float((np.log(h * w) + 3) / cover_probability(h, w, shape_ids, rmin, rmax, exponent))


def power_law_radii(u: np.ndarray, rmin: float, rmax: float, exponent: float) -> np.ndarray:
    """Radii with density ~ r^-exponent on [rmin, rmax] from uniforms u, by the exact inverse CDF."""
    if abs(exponent - 1.0) < 1e-9:
        return rmin * (rmax / rmin) ** u
    e = 1.0 - exponent
    return (rmin**e + u * (rmax**e - rmin**e)) ** (1.0 / e)


def sorted_circle_angles(u: np.ndarray) -> np.ndarray:
    """Sorted uniform angles on the circle, without sorting: a random start plus normalised exponential gaps.

    u is (k, m + 1) uniforms; returns (k, m) increasing angles (m uniform points on the circle, sorted).
    """
    gaps = -np.log1p(-u[:, 1:])
    cum = np.cumsum(gaps, axis=1)
    total = cum[:, -1:] + -np.log1p(-u[:, :1])  # one more gap closes the circle
    return 2 * np.pi * (u[:, :1] + cum / total)


def leaves_from_uniforms(u: np.ndarray, h: int, w: int, shape_ids, rmin: float, rmax: float,
                         exponent: float) -> dict:
    """Leaves from a (k, 15) block of uniforms: columns 0-2 place and size a leaf, 3-14 shape it."""
    return {
        "cx": u[:, 0] * w,
        "cy": u[:, 1] * h,
        "r": power_law_radii(u[:, 2], rmin, rmax, exponent),
        "shape": shape_ids[(u[:, 3] * len(shape_ids)).astype(np.intp)],
        "theta": u[:, 4] * 2 * np.pi,
        "phi": 0.15 + u[:, 5] * (np.pi / 2 - 0.3),  # rectangle half-angle: aspect ratio
        "tri": u[:, 6:10],  # turned into sorted angles only for the leaves that are drawn
        "quad": u[:, 10:15],
    }


def draw_leaves(rng, k: int, h: int, w: int, shape_ids, rmin: float, rmax: float, exponent: float) -> dict:
    """k leaves, front to back."""
    return leaves_from_uniforms(rng.random((k, 15)), h, w, shape_ids, rmin, rmax, exponent)


SQUARE_ANGLES = np.array([0.25, 0.75, 1.25, 1.75]) * np.pi


def polygon_vertices(leaves: dict, dtype=np.float64) -> np.ndarray:
    """(k, 4, 2) vertex offsets, counter-clockwise, on the circle of radius r (triangles repeat one
    vertex; disks get zeros). Each shape's angles are computed for its own leaves only."""
    shape = leaves["shape"]
    angles = np.zeros((len(shape), 4))
    for sid in range(1, len(SHAPES)):
        m = shape == sid
        if not m.any():
            continue
        if sid == SQUARE:
            angles[m] = SQUARE_ANGLES
        elif sid == ORIENTED_SQUARE:
            angles[m] = SQUARE_ANGLES + leaves["theta"][m, None]
        elif sid == RECTANGLE:
            phi, theta = leaves["phi"][m, None], leaves["theta"][m, None]
            angles[m] = np.concatenate([phi, np.pi - phi, np.pi + phi, 2 * np.pi - phi], axis=1) + theta
        elif sid == TRIANGLE:
            tri = sorted_circle_angles(leaves["tri"][m])
            angles[m] = np.concatenate([tri, tri[:, 2:]], axis=1)
        elif sid == QUAD:
            angles[m] = sorted_circle_angles(leaves["quad"][m])
    angles = angles.astype(dtype, copy=False)  # float32 trigonometry is several times faster
    r = leaves["r"][:, None].astype(dtype, copy=False)
    return np.stack([np.cos(angles) * r, np.sin(angles) * r], axis=-1)


def inside_polygons(leaves: dict, leaf: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Whether each point, at offset (dx, dy) from the centre of leaf `leaf[i]` and already inside its
    circumscribed disk, lies inside the leaf (disks: always; polygons: inside every edge's half-plane)."""
    ok = np.ones(len(leaf), dtype=bool)
    poly = leaves["shape"][leaf] != DISK
    if poly.any():
        v = polygon_vertices(leaves)[leaf[poly]]
        e = np.roll(v, -1, axis=1) - v
        px, py = dx[poly, None] - v[..., 0], dy[poly, None] - v[..., 1]
        ok[poly] = (e[..., 0] * py - e[..., 1] * px >= 0).all(axis=1)
    return ok


class Painter:
    """Rasterises the first leaves of many images at once: their geometry is computed in one
    vectorised pass, then each image's leaves are painted back to front by Pillow's C rasteriser
    into a label layer (the leaf's index; -1 where no leaf lies)."""

    def __init__(self, leaves: dict, count: int, h: int, w: int):
        k = len(leaves["r"])
        # Pillow's pixel (i, j) is centred on integer coordinates; ours on i + 0.5
        centre = np.stack([leaves["cx"], leaves["cy"]], axis=1) - 0.5
        coords = (polygon_vertices(leaves, np.float32) + centre[:, None, :]).reshape(k, 8)
        disk = leaves["shape"] == DISK
        r = leaves["r"][disk, None]
        coords[disk, :4] = np.concatenate([centre[disk] - r, centre[disk] + r], axis=1)  # the disk's box
        # Pillow reads any buffer of float32 (x, y) pairs as a path, so each leaf's path is a bytes
        # object cut by numpy in C: a quadrilateral's 4 points (a triangle repeats its last vertex,
        # which rasterises identically), a disk's box as 2 points
        coords = np.ascontiguousarray(coords, dtype=np.float32)
        paths = np.array(coords.view(np.dtype((np.void, 32))).ravel().tolist(), dtype=object)
        paths[disk] = np.ascontiguousarray(coords[disk, :4]).view(np.dtype((np.void, 16))).ravel().tolist()
        self.paths = paths.tolist()
        self.layer = Image.new("I", (w, h), -1)
        draw = ImageDraw.Draw(self.layer).draw
        # Pillow's core drawing calls, skipping ImageDraw's per-call colour parsing: for mode "I" the
        # ink is the label itself
        self.calls = list(map([draw.draw_polygon, draw.draw_ellipse].__getitem__, disk.tolist()))
        self.count = count  # leaves per image

    def paint(self, image: int) -> np.ndarray:
        """Label layer (h, w) of image `image`'s leaves, painted back to front."""
        # The generator's hot path: one C call per leaf, and the loop itself in C (starmap over zip).
        # Measured at 32 px: testing each leaf against its box's pixels in numpy ran 3x slower, and
        # instanced GL quads on llvmpipe cost about as much per leaf as these calls.
        first, last = image * self.count, (image + 1) * self.count
        back_to_front = slice(last - 1, first - 1 if first else None, -1)  # the front-most leaf last
        deque(starmap(call, zip(self.calls[back_to_front], self.paths[back_to_front],
                                range(self.count - 1, -1, -1), repeat(1))), maxlen=0)
        label = np.array(self.layer)
        self.layer.paste(-1, (0, 0, *self.layer.size))
        return label


def fill_holes(rngs, labels: np.ndarray, n: np.ndarray, h: int, w: int, shape_ids, rmin: float, rmax: float,
               exponent: float) -> np.ndarray:
    """Lay further leaves behind those already laid until no pixel of any image is left uncovered.

    labels: (images, h*w), -1 at holes, filled in place; n: leaves laid so far per image. Returns the
    number of leaves laid in all, per image. Each image draws from its own stream, in rounds that
    depend on its own holes only, so it never depends on the other images of the batch.

    Leaves are tested only against the remaining holes, at their pixel centres, all images at once.
    Position and size are drawn for every leaf; the shape parameters only for leaves whose
    circumscribed disk holds a hole, since no other leaf can show.
    """
    n = np.array(n, dtype=np.int64)
    holes = [np.flatnonzero(row < 0) for row in labels]
    active = [i for i, hole in enumerate(holes) if len(hole)]
    while active:
        if n[active].max() >= MAX_LEAVES:
            raise RuntimeError("dead leaves did not cover the canvas; is --rmin too small?")
        # per image: draw this round's leaves and list the (leaf, hole) pairs within a leaf's
        # circumscribed disk, leaf-major (front first); then test the shapes of all images at once
        parts, ks = [], []
        for i in active:
            rng, pixel = rngs[i], holes[i]
            k = int(np.clip(HOLE_TESTS // len(pixel), 256, 1024))  # leaves this round, by the holes left
            u = rng.random((k, 3))
            r = power_law_radii(u[:, 2], rmin, rmax, exponent)
            dx = (pixel % w + 0.5) - u[:, 0, None] * w
            dy = (pixel // w + 0.5) - u[:, 1, None] * h
            leaf, hole = np.nonzero(dx * dx + dy * dy <= (r * r)[:, None])
            shaped = leaf[np.r_[True, leaf[1:] != leaf[:-1]]] if len(leaf) else leaf
            params = np.concatenate([u[shaped], rng.random((len(shaped), 12))], axis=1)
            parts.append((params, np.searchsorted(shaped, leaf), leaf, hole, dx[leaf, hole], dy[leaf, hole]))
            ks.append(k)
        sizes = np.array([[len(p[0]), len(p[3]), len(holes[i])] for p, i in zip(parts, active)])
        params, pair, leaf, hole, dx, dy = (np.concatenate(c) for c in zip(*parts))
        img = np.repeat(np.arange(len(active)), sizes[:, 1])
        pair += np.repeat(np.cumsum(sizes[:, 0]) - sizes[:, 0], sizes[:, 1])  # into the joined params
        hole += np.repeat(np.cumsum(sizes[:, 2]) - sizes[:, 2], sizes[:, 1])  # into the joined holes
        ok = inside_polygons(leaves_from_uniforms(params, h, w, shape_ids, rmin, rmax, exponent), pair, dx, dy)
        covered, first = np.unique(hole[ok], return_index=True)  # each hole's front-most pair
        rows = np.array(active)[img[ok][first]]
        pixel = np.concatenate([holes[i] for i in active])
        labels[rows, pixel[covered]] = n[rows] + leaf[ok][first]
        n[active] += ks
        left = np.ones(len(pixel), dtype=bool)
        left[covered] = False
        for i, rest in zip(active, np.split(pixel[left], np.cumsum(
                np.add.reduceat(left, np.cumsum(sizes[:, 2]) - sizes[:, 2]))[:-1])):
            holes[i] = rest
        active = [i for i in active if len(holes[i])]
    return n


def dead_leaves_labels(rng, h: int, w: int, shape_ids, rmin: float, rmax: float, exponent: float):
    """Label map (h, w) of the front-most leaf at each pixel, and the number of leaves laid."""
    return dead_leaves_batch([rng], h, w, shape_ids, rmin, rmax, exponent)[0]


def dead_leaves_batch(rngs, h: int, w: int, shape_ids, rmin: float, rmax: float, exponent: float):
    """dead_leaves_labels for several images, each from its own random stream (so an image never
    depends on the others in its batch).

    Leaves come front to back. The first first_batch_size() of every image are rasterised back to
    front and cover nearly all of the canvas; later leaves are tested only against the remaining holes.
    """
    first = first_batch_size(h, w, shape_ids, rmin, rmax, exponent)
    u = np.concatenate([rng.random((first, 15)) for rng in rngs])
    painter = Painter(leaves_from_uniforms(u, h, w, shape_ids, rmin, rmax, exponent), first, h, w)
    labels = np.stack([painter.paint(i).ravel() for i in range(len(rngs))])
    n = fill_holes(rngs, labels, [first] * len(rngs), h, w, shape_ids, rmin, rmax, exponent)
    return [(row.reshape(h, w), int(count)) for row, count in zip(labels, n)]


@dataclass(frozen=True)
class LeavesOptions:
    """The `kdgen leaves` options (flags generated from these fields)."""

    shape: str = knob("mixed", "Leaf shape.", choices=SHAPES + ("mixed",))
    colour: str = knob("rgb", "rgb: uniform RGB per leaf; grey: one grey level per leaf; textured: RGB plus a "
                              "noise texture.", choices=COLOURS)
    rmin: float = knob(0.03, "Smallest radius, times the image size.")
    rmax: float = knob(1.0, "Largest radius, times the image size.")
    exponent: float = knob(3.0, "Radius density ~ r^-exponent.")
    antialias: int = knob(1, "Render at K times the size and box-filter down (1 = hard edges).", min=1, max=8)


@register
class Leaves(Generator):
    name = "leaves"
    version = 2  # 2: painted first leaves, exact point tests for the holes (other images than version 1)
    help = ("Dead-leaves images: occluding disks, squares, rectangles, triangles and quadrilaterals with "
            "power-law sizes, laid until the canvas is covered.")
    Options = LeavesOptions

    def __init__(self, size, **params):
        super().__init__(size)
        o = LeavesOptions(**params)
        shape, colour, rmin, rmax, exponent, antialias = (o.shape, o.colour, o.rmin, o.rmax, o.exponent,
                                                          o.antialias)
        if shape not in SHAPES + ("mixed",):
            raise ValueError(f"unknown leaves --shape {shape!r}; choose {', '.join(SHAPES + ('mixed',))}")
        if colour not in COLOURS:
            raise ValueError(f"unknown leaves --colour {colour!r}; choose {', '.join(COLOURS)}")
        if not (np.isfinite(rmin) and np.isfinite(rmax) and 0 < rmin < rmax):
            raise ValueError(f"need 0 < --rmin < --rmax (finite), got {rmin} and {rmax}")
        if not (np.isfinite(exponent) and exponent > 0):
            raise ValueError(f"--exponent must be a positive finite number, got {exponent}")
        self.shape_ids = np.arange(len(SHAPES)) if shape == "mixed" else np.array([SHAPES.index(shape)])
        side = min(self.height, self.width) * antialias
        if self.height * self.width * antialias ** 2 > MAX_RENDER_PIXELS:
            raise ValueError(f"--antialias {antialias} at this --size renders over {MAX_RENDER_PIXELS:,} pixels "
                             f"per image; lower --antialias or --size")
        need = leaves_to_cover(self.height * antialias, self.width * antialias, self.shape_ids, rmin * side,
                               rmax * side, exponent)
        if not need <= MAX_LEAVES / 4:  # also catches nan from overflowing moments
            raise ValueError(f"--rmin {rmin:g} with --exponent {exponent:g} makes leaves too small to cover "
                             f"the canvas (about {need:.3g} leaves per image); raise --rmin or lower --exponent")
        self.colour, self.rmin, self.rmax, self.exponent, self.aa = colour, rmin, rmax, exponent, antialias
        self.params = dict(shape=shape, colour=colour, rmin=rmin, rmax=rmax, exponent=exponent, antialias=antialias)

    def render_rngs(self, rngs) -> list:
        a = self.aa
        h, w = self.height * a, self.width * a
        scale = min(h, w)
        labels = dead_leaves_batch(rngs, h, w, self.shape_ids, self.rmin * scale, self.rmax * scale, self.exponent)
        return [self._colour(rng, label, n) for rng, (label, n) in zip(rngs, labels)]

    def _colour(self, rng, label: np.ndarray, n: int):
        """The image from the label map: every leaf one uniform colour (a byte per channel)."""
        colours = rng.integers(0, 256, n if self.colour == "grey" else (n, 3), dtype=np.uint8)
        img = colours[label]
        if self.colour == "textured":
            # each leaf shows a shifted window of one fBm texture, with its own strength
            h, w = label.shape
            tex = fbm(rng, h, w, octaves=4, base_cells=float(rng.uniform(2, 6)))
            tex = (tex - tex.mean()) / (np.abs(tex).max() + 1e-9)
            oy, ox = rng.integers(0, h, n), rng.integers(0, w, n)
            amp = rng.uniform(0.1, 0.5, n) * 255
            yy, xx = np.indices((h, w))
            shifted = tex[(yy + oy[label]) % h, (xx + ox[label]) % w]
            img = np.clip(img + (amp[label] * shifted)[..., None], 0, 255)
        if self.aa > 1:  # box-filter the supersampled image down
            a = self.aa
            img = img.reshape(self.height, a, self.width, a, *img.shape[2:]).mean(axis=(1, 3))
        if img.dtype != np.uint8:
            img = np.rint(img).astype(np.uint8)
        return img, {"leaves": n}
