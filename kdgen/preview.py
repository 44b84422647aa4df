"""Contact sheets: a grid of a dataset's images for a person to look at."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

from PIL import Image

from kdgen.dataset import iter_readable
from kdgen.errors import UserError


def contact_sheet(meta_path: Path, output: Path, count: int = 64, cell: int = 64, pad: int = 2,
                  skipped: Counter | None = None) -> int:
    """Write a PNG grid of the first `count` readable images; returns how many were drawn. Unreadable
    shards and samples are passed over and counted in `skipped` ("shards", "samples")."""
    skipped = Counter() if skipped is None else skipped
    images = [s["image"] for s in iter_readable(meta_path, limit=count, skipped=skipped)]
    if not images:
        why = f" ({skipped['samples']} bad samples, {skipped['shards']} unreadable shards)" if skipped else ""
        raise UserError(f"{meta_path} has no readable samples to show{why}")
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
