"""Real out-of-domain photos: random crops of the natural photographs that scikit-image's wheel bundles.

The paper's fourth surrogate family is real images from other domains than the teacher's. Natural
photos that install offline with the project are the sample photographs inside scikit-image's wheel
(`skimage/data`, no download): the extra `photos` (`pip install -e '.[photos]'`) brings them. Every
sample is one random crop (area fraction, aspect ratio and position drawn per sample, optional
mirror) of one photo, resized to the dataset size by Pillow's antialiasing bicubic filter (after an
integer box reduction for large crops). A crop
that comes out nearly flat (a black border, the night sky) is drawn again from the same stream.

scikit-image is never imported: its data folder is found with importlib alone, and the photos are
read by Pillow.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from kdgen.errors import UserError
from kdgen.registry import Generator, register
from kdgen.settings import knob

# The natural photographs in scikit-image's wheel (checked in scikit-image 0.26.0's wheel). Left out:
# drawn or synthetic images (chessboards, colour wheel, logo, phantom, horse silhouette, motion-blur
# demo), the right image of the motorcycle stereo pair (the left one's near-twin), and images too small
# or too flat to crop (cell, microaneurysms, an animated GIF of 14x25 pixels).
PHOTOS = ("astronaut.png", "brick.png", "camera.png", "chelsea.png", "coffee.png", "coins.png", "grass.png",
          "gravel.png", "hubble_deep_field.jpg", "ihc.png", "moon.png", "motorcycle_left.png", "page.png",
          "retina.jpg", "rocket.jpg", "text.png")
EXTRA = "photos"  # the pyproject extra that installs them
MAX_TRIES = 8  # crops drawn before a flat one is kept anyway
REDUCING_GAP = 3.0  # Pillow's resize(reducing_gap=...)


def photo_folder() -> Path:
    """scikit-image's bundled data folder, located without importing scikit-image."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"kdgen photos needs scikit-image's bundled photos: pip install -e '.[{EXTRA}]' "
                         f"(or pip install scikit-image)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _pair(text, what: str, lo: float, hi: float) -> tuple[float, float]:
    try:
        values = [float(v) for v in str(text).split(",")]
    except ValueError:
        raise ValueError(f"{what} must be two numbers separated by a comma, got {text!r}") from None
    if len(values) != 2 or not lo <= values[0] <= values[1] <= hi or values[0] <= 0 or not np.isfinite(values[1]):
        upper = f" <= {hi:g}" if np.isfinite(hi) else ", both finite"
        raise ValueError(f"{what} must be MIN,MAX with 0 < MIN <= MAX{upper}, got {text!r}")
    return values[0], values[1]


@dataclass(frozen=True)
class PhotosOptions:
    """The `kdgen photos` options (flags generated from these fields)."""

    photos: str = knob("all", "Photos to crop, by name, separated by commas: "
                              f"{', '.join(Path(p).stem for p in PHOTOS)}.")
    scale: str = knob("0.005,1.0", "Range of a crop's area as a fraction of its photo's (drawn log-uniformly).")
    ratio: str = knob("0.75,1.333", "Range of a crop's aspect ratio relative to the image size's (drawn "
                                    "log-uniformly).")
    flip: bool = knob(True, "Mirror half of the crops left-right.")
    min_std: float = knob(4.0, f"Redraw a crop (up to {MAX_TRIES} times) whose pixel std is below this, on 0-255.")


@register
class Photos(Generator):
    name = "photos"
    version = 1
    help = ("Random crops of real photographs (the 16 sample photos bundled with scikit-image: an astronaut, a cat, "
            "coffee, a rocket, gravel, the moon and more): the paper's real out-of-domain surrogate. Needs the "
            "'photos' extra (pip install -e '.[photos]').")
    Options = PhotosOptions

    def __init__(self, size, **params):
        super().__init__(size)
        o = PhotosOptions(**params)
        photos, scale, ratio, flip, min_std = o.photos, o.scale, o.ratio, o.flip, o.min_std
        by_stem = {Path(p).stem: p for p in PHOTOS}
        if str(photos).strip().lower() == "all":
            chosen = list(PHOTOS)
        else:
            names = [s.strip() for s in str(photos).split(",") if s.strip()]
            unknown = [s for s in names if s not in by_stem]
            if unknown or not names:
                raise ValueError(f"unknown --photos {', '.join(unknown) or repr(photos)}; choose from "
                                 f"{', '.join(by_stem)} (or all)")
            chosen = [by_stem[s] for s in dict.fromkeys(names)]
        self.scale = _pair(scale, "--scale", 0.0, 1.0)
        self.ratio = _pair(ratio, "--ratio", 0.0, np.inf)
        if min_std < 0:
            raise ValueError(f"--min-std must not be negative, got {min_std}")
        self.flip, self.min_std = bool(flip), float(min_std)
        self.folder = photo_folder()
        missing = [p for p in chosen if not (self.folder / p).is_file()]
        if missing:
            raise UserError(f"scikit-image in {self.folder.parent} lacks the photos {', '.join(missing)}; "
                             f"pip install -e '.[{EXTRA}]' for a scikit-image that bundles them")
        self.files = chosen
        # the photos' bytes are part of the dataset's identity: a resumed run must crop the same photos
        digest = hashlib.sha256()
        for p in chosen:
            digest.update(p.encode() + b"\0" + (self.folder / p).read_bytes())
        self.params = dict(photos=[Path(p).stem for p in chosen], photos_sha256=digest.hexdigest()[:16],
                           scale=list(self.scale), ratio=list(self.ratio), flip=self.flip, min_std=self.min_std)
        self.images: list[Image.Image] = []

    def open(self) -> None:
        self.images = []
        for p in self.files:
            with Image.open(self.folder / p) as img:
                self.images.append(img.convert("RGB"))

    def close(self) -> None:
        self.images = []

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
        if not self.images:
            self.open()
        w, h = self.width, self.height
        log_scale, log_ratio = np.log(self.scale), np.log(self.ratio)
        tries = 0
        while True:
            tries += 1
            # a fixed number of draws per attempt, in a fixed order: the crop depends on its stream alone
            k, u_scale, u_ratio, u_x, u_y, u_flip = int(rng.integers(len(self.images))), *rng.random(5)
            photo = self.images[k]
            pw, ph = photo.size
            area = pw * ph * np.exp(log_scale[0] + u_scale * (log_scale[1] - log_scale[0]))
            aspect = (w / h) * np.exp(log_ratio[0] + u_ratio * (log_ratio[1] - log_ratio[0]))
            cw, ch = np.sqrt(area * aspect), np.sqrt(area / aspect)
            fit = min(1.0, pw / cw, ph / ch)  # a crop larger than its photo shrinks, keeping its aspect
            cw, ch = min(cw * fit, pw), min(ch * fit, ph)  # min: rounding must not leave the photo
            x0, y0 = u_x * max(pw - cw, 0.0), u_y * max(ph - ch, 0.0)
            box = (float(x0), float(y0), float(x0 + cw), float(y0 + ch))
            # reducing_gap: a large crop is first box-averaged by an integer factor (to 3x the size or more),
            # then filtered: 2.7x faster at 32 px than filtering the whole crop, and nearly as sharp
            crop = photo.resize((w, h), Image.Resampling.BICUBIC, box=box, reducing_gap=REDUCING_GAP)
            mirrored = bool(self.flip and u_flip < 0.5)
            if mirrored:
                crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            img = np.asarray(crop, dtype=np.uint8)
            if img.std() >= self.min_std or tries == MAX_TRIES:
                break
            self.counters["flat_redrawn"] += 1
        meta = {"source": Path(self.files[k]).stem, "box": [round(v, 2) for v in box], "flip": mirrored}
        if tries > 1:
            meta["tries"] = tries
        return img, meta
