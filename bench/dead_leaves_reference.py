"""The published dead-leaves algorithm (Baradad et al. 2021), re-implemented as the benchmark's reference.

Shapes are drawn one at a time onto the full image, with a full-image coverage check after each,
using the same shape model as kdgen's generator (radius density ~ r^-3, the same shape family).
"""

from __future__ import annotations

import numpy as np

from kdgen.generators.leaves import DISK, draw_leaves, polygon_vertices


def inside_leaf(xx, yy, leaf: dict) -> np.ndarray:
    """Full-image mask of one leaf (point-in-disk or point-in-convex-polygon at pixel centres)."""
    dx, dy = xx - leaf["cx"][0], yy - leaf["cy"][0]
    if leaf["shape"][0] == DISK:
        return dx * dx + dy * dy <= leaf["r"][0] ** 2
    v = polygon_vertices(leaf)[0]
    inside = np.ones(xx.shape, dtype=bool)
    for i in range(4):
        ex, ey = v[(i + 1) % 4] - v[i]
        inside &= ex * (dy - v[i, 1]) - ey * (dx - v[i, 0]) >= 0
    return inside


def reference_dead_leaves(rng, size: int, rmin=0.03, rmax=1.0, exponent=3.0) -> np.ndarray:
    h = w = size
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    img = np.zeros((h, w, 3))
    covered = np.zeros((h, w), dtype=bool)
    shapes = np.arange(6)
    while not covered.all():  # the full-image coverage check after every shape
        leaf = draw_leaves(rng, 1, h, w, shapes, rmin * size, rmax * size, exponent)
        mask = inside_leaf(xx, yy, leaf) & ~covered
        img[mask] = rng.random(3)
        covered |= mask
    return (img * 255).astype(np.uint8)
