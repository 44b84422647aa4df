"""Real images from a folder, resized to the dataset size (used by `kdgen import-images`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from kdgen.contract import open_image, readable_name
from kdgen.registry import Generator, register
from kdgen.seeding import index_of


@register
class Images(Generator):
    name = "images"
    help = "Real images imported from a folder (see `kdgen import-images`)."
    command = False  # has its own command with a FOLDER argument
    batch = 32

    def __init__(self, size, root: str, files: list[str], resize: str = "crop", max_side: int | None = None):
        super().__init__(size)
        self.root, self.files, self.resize, self.max_side = Path(root), list(files), resize, max_side
        parts = [Path(f).parts for f in self.files]
        labelled = all(len(p) > 1 for p in parts)
        self.classes = sorted({p[0] for p in parts}) if labelled else []
        self.params = dict(root=root, files=self.files, resize=resize)

    def describe(self) -> dict:
        # the file list is recorded by count and root: a manifest of a large import stays small
        return dict(root=readable_name(self.root), num_files=len(self.files), resize=self.resize)

    def render(self, seeds):
        out = []
        for seed in seeds:
            rel = self.files[index_of(seed)]
            with open_image(self.root / rel, self.max_side) as img:
                img = img.convert("RGB")
                box = (self.width, self.height)
                if self.resize == "crop":
                    img = ImageOps.fit(img, box, Image.Resampling.BICUBIC)
                elif self.resize == "pad":
                    img = ImageOps.pad(img, box, Image.Resampling.BICUBIC)
                else:
                    img = img.resize(box, Image.Resampling.BICUBIC)
            meta = {"source": readable_name(rel)}  # names that are not UTF-8 escaped: every JSON reader takes them
            if self.classes:
                meta["cls"] = self.classes.index(Path(rel).parts[0])
                meta["class_name"] = readable_name(Path(rel).parts[0])
            out.append((np.asarray(img, dtype=np.uint8), meta))
        return out
