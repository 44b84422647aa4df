"""Dead-leaves images: random occluding shapes with power-law sizes until the canvas is covered.

Leaves are laid front to back in batches: a pixel keeps the first leaf that covers it, which is the
dead-leaves model (later leaves lie behind earlier ones). Each batch is rasterised by Pillow in C,
and later batches draw only leaves whose box touches a remaining hole, so no per-leaf full-image
pass or coverage check is needed.
"""

from __future__ import annotations

import click
import numpy as np
from PIL import Image, ImageDraw

from kdgen.generators.noise import fbm
from kdgen.registry import Generator, option, register

SHAPES = ("disk", "square", "oriented_square", "rectangle", "triangle", "quadrilateral")
COLOURS = ("rgb", "grey", "textured")
FIRST_BATCH = 128  # leaves in the first batch: covers most of the canvas
LATER_BATCH = 128  # leaves drawn per later batch, before keeping those that reach a hole
MAX_LEAVES = 2_000_000  # a safety bound; real images need a few hundred to a few thousand


def power_law_radii(rng, k: int, rmin: float, rmax: float, exponent: float) -> np.ndarray:
    """k radii with density ~ r^-exponent on [rmin, rmax], by the exact inverse CDF."""
    u = rng.random(k)
    if abs(exponent - 1.0) < 1e-9:
        return rmin * (rmax / rmin) ** u
    e = 1.0 - exponent
    return (rmin**e + u * (rmax**e - rmin**e)) ** (1.0 / e)


def draw_leaves(rng, k: int, h: int, w: int, shape_ids, rmin: float, rmax: float, exponent: float) -> dict:
    """All random numbers of k leaves, drawn in a fixed order (so the stream never depends on filtering)."""
    return {
        "cx": rng.uniform(0, w, k),
        "cy": rng.uniform(0, h, k),
        "r": power_law_radii(rng, k, rmin, rmax, exponent),
        "shape": shape_ids[rng.integers(len(shape_ids), size=k)],
        "theta": rng.uniform(0, 2 * np.pi, k),
        "phi": rng.uniform(0.15, np.pi / 2 - 0.15, k),
        "tri": np.sort(rng.uniform(0, 2 * np.pi, (k, 3)), axis=1),
        "quad": np.sort(rng.uniform(0, 2 * np.pi, (k, 4)), axis=1),
    }


def polygon_vertices(leaves: dict) -> np.ndarray:
    """(k, 4, 2) vertex offsets, counter-clockwise, on the circle of radius r (triangles repeat one vertex)."""
    names = np.array(SHAPES)[leaves["shape"]]
    theta, phi = leaves["theta"][:, None], leaves["phi"]
    angles = np.zeros((len(names), 4))
    angles[names == "square"] = np.array([0.25, 0.75, 1.25, 1.75]) * np.pi
    angles[names == "oriented_square"] = (np.array([0.25, 0.75, 1.25, 1.75]) * np.pi + theta)[names == "oriented_square"]
    rect = np.stack([phi, np.pi - phi, np.pi + phi, 2 * np.pi - phi], axis=1) + theta
    angles[names == "rectangle"] = rect[names == "rectangle"]
    tri = leaves["tri"]
    angles[names == "triangle"] = np.concatenate([tri, tri[:, 2:]], axis=1)[names == "triangle"]
    angles[names == "quadrilateral"] = leaves["quad"][names == "quadrilateral"]
    return np.stack([np.cos(angles), np.sin(angles)], axis=-1) * leaves["r"][:, None, None]


def reaches_hole(leaves: dict, hx: np.ndarray, hy: np.ndarray, chunk: int = 1 << 20) -> np.ndarray:
    """Which leaves' circles, grown by a pixel for the rasteriser's edge rule, contain a hole centre."""
    reach = np.zeros(len(leaves["r"]), dtype=bool)
    step = max(1, chunk // max(1, len(hx)))
    for s in range(0, len(reach), step):
        dx = leaves["cx"][s : s + step, None] - hx[None, :]
        dy = leaves["cy"][s : s + step, None] - hy[None, :]
        rr = (leaves["r"][s : s + step, None] + 1.0) ** 2
        reach[s : s + step] = (dx * dx + dy * dy <= rr).any(axis=1)
    return reach


def paint_batch(leaves: dict, ids: np.ndarray, h: int, w: int, first_label: int) -> np.ndarray:
    """Label layer of one batch: leaves painted back to front (Pillow's C rasteriser), -1 where none."""
    layer = Image.new("I", (w, h), -1)
    draw = ImageDraw.Draw(layer)
    sub = {key: v[ids] for key, v in leaves.items()}
    # Pillow's pixel (i, j) is centred on integer coordinates; ours on i + 0.5
    cx, cy, r = (sub["cx"] - 0.5).tolist(), (sub["cy"] - 0.5).tolist(), sub["r"].tolist()
    verts = polygon_vertices(sub) + np.stack([sub["cx"] - 0.5, sub["cy"] - 0.5], axis=1)[:, None, :]
    verts = verts.reshape(len(ids), 8).tolist()  # flat x0, y0, x1, y1, ... per leaf
    disk = (sub["shape"] == 0).tolist()
    tri = (sub["shape"] == SHAPES.index("triangle")).tolist()
    labels = (ids + first_label).tolist()
    # Pillow's core drawing calls, skipping ImageDraw's per-call colour parsing: for mode "I" the
    # ink is the label itself, and this loop is the generator's hot path
    ellipse, polygon = draw.draw.draw_ellipse, draw.draw.draw_polygon
    for j in reversed(range(len(labels))):  # the batch's front-most leaf is painted last
        if disk[j]:
            ellipse((cx[j] - r[j], cy[j] - r[j], cx[j] + r[j], cy[j] + r[j]), labels[j], 1)
        else:
            polygon(verts[j][: 6 if tri[j] else 8], labels[j], 1)
    return np.asarray(layer)


def dead_leaves_labels(rng, h: int, w: int, shape_ids, rmin: float, rmax: float, exponent: float):
    """Label map (h, w) of the front-most leaf at each pixel, and the number of leaves laid.

    Leaves come front to back in batches; each batch is rasterised back to front into a layer that
    only fills the holes the earlier batches left, until no hole is left.
    """
    label = np.full((h, w), -1, dtype=np.int32)
    n = 0
    while True:
        if n >= MAX_LEAVES:
            raise RuntimeError("dead leaves did not cover the canvas; is --rmin too small?")
        # the first batch covers most of the canvas; later ones only fill the last holes
        k = FIRST_BATCH if n == 0 else LATER_BATCH
        leaves = draw_leaves(rng, k, h, w, shape_ids, rmin, rmax, exponent)
        ids = np.arange(k)
        holes = label < 0
        if n:  # draw only leaves that can reach a hole: their circle (plus a raster margin) holds one
            hy, hx = np.nonzero(holes)
            ids = ids[reaches_hole(leaves, hx + 0.5, hy + 0.5)]
        layer = paint_batch(leaves, ids, h, w, n)
        label[holes] = layer[holes]
        n += k
        if not (label < 0).any():
            return label, n


@register
class Leaves(Generator):
    name = "leaves"
    help = ("Dead-leaves images: occluding disks, squares, rectangles, triangles and quadrilaterals with "
            "power-law sizes, laid until the canvas is covered.")
    options = [
        option("--shape", type=click.Choice(SHAPES + ("mixed",)), default="mixed", show_default=True,
               help="Leaf shape."),
        option("--colour", "colour", type=click.Choice(COLOURS), default="rgb", show_default=True,
               help="rgb: uniform RGB per leaf; grey: one grey level per leaf; textured: RGB plus a noise texture."),
        option("--rmin", type=float, default=0.03, show_default=True, help="Smallest radius, times the image size."),
        option("--rmax", type=float, default=1.0, show_default=True, help="Largest radius, times the image size."),
        option("--exponent", type=float, default=3.0, show_default=True, help="Radius density ~ r^-exponent."),
        option("--antialias", type=click.IntRange(1, 8), default=1, show_default=True,
               help="Render at K times the size and box-filter down (1 = hard edges)."),
    ]

    def __init__(self, size, shape="mixed", colour="rgb", rmin=0.03, rmax=1.0, exponent=3.0, antialias=1):
        super().__init__(size)
        if shape not in SHAPES + ("mixed",):
            raise ValueError(f"unknown leaves --shape {shape!r}; choose {', '.join(SHAPES + ('mixed',))}")
        if colour not in COLOURS:
            raise ValueError(f"unknown leaves --colour {colour!r}; choose {', '.join(COLOURS)}")
        if not 0 < rmin < rmax:
            raise ValueError(f"need 0 < --rmin < --rmax, got {rmin} and {rmax}")
        if exponent <= 0:
            raise ValueError(f"--exponent must be positive, got {exponent}")
        self.shape_ids = np.arange(len(SHAPES)) if shape == "mixed" else np.array([SHAPES.index(shape)])
        self.colour, self.rmin, self.rmax, self.exponent, self.aa = colour, rmin, rmax, exponent, antialias
        self.params = dict(shape=shape, colour=colour, rmin=rmin, rmax=rmax, exponent=exponent, antialias=antialias)

    def sample(self, rng):
        a = self.aa
        h, w = self.height * a, self.width * a
        scale = min(h, w)
        label, n = dead_leaves_labels(rng, h, w, self.shape_ids, self.rmin * scale, self.rmax * scale, self.exponent)
        if self.colour == "grey":
            img = rng.random(n)[label][..., None]
        else:
            img = rng.random((n, 3))[label]
            if self.colour == "textured":
                # each leaf shows a shifted window of one fBm texture, with its own strength
                tex = fbm(rng, h, w, octaves=4, base_cells=float(rng.uniform(2, 6)))
                tex = (tex - tex.mean()) / (np.abs(tex).max() + 1e-9)
                oy, ox = rng.integers(0, h, n), rng.integers(0, w, n)
                amp = rng.uniform(0.1, 0.5, n)
                yy, xx = np.indices((h, w))
                shifted = tex[(yy + oy[label]) % h, (xx + ox[label]) % w]
                img = np.clip(img + (amp[label] * shifted)[..., None], 0, 1)
        if a > 1:
            img = img.reshape(self.height, a, self.width, a, -1).mean(axis=(1, 3))
        img = np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)
        return (img[..., 0] if self.colour == "grey" else img), {"leaves": n}
