"""Contact sheets: a grid of a dataset's images for a person to look at."""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image

from kdgen.dataset import iter_samples


def contact_sheet(meta_path: Path, output: Path, count: int = 64, cell: int = 64, pad: int = 2) -> int:
    """Write a PNG grid of the first `count` images; returns how many were drawn."""
    images = [s["image"] for s in iter_samples(meta_path, limit=count)]
    if not images:
        raise ValueError(f"{meta_path} has no samples to show")
    cols = math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / cols)
    sheet = Image.new("RGB", (cols * (cell + pad) + pad, rows * (cell + pad) + pad), (255, 255, 255))
    for i, arr in enumerate(images):
        tile = Image.fromarray(arr).convert("RGB")
        # nearest-neighbour keeps small images' pixels honest; larger ones are smoothed down
        resample = Image.Resampling.NEAREST if tile.width <= cell else Image.Resampling.LANCZOS
        tile = tile.resize((cell, cell), resample)
        r, c = divmod(i, cols)
        sheet.paste(tile, (pad + c * (cell + pad), pad + r * (cell + pad)))
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(output)
    return len(images)
