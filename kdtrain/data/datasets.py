"""Real labelled data (teacher training, the original-data reference student, evaluation).

Sources: `fashion-mnist` (Debian's IDX files, else torchvision's downloader), `digits` (the 8x8 handwritten
digits inside scikit-learn's wheel, upscaled to 28x28; the `digits` extra), `mnist`, `cifar10`,
`cifar100` (torchvision), an image folder (class sub-folders; `train/` and `test/` or `val/` inside
are used per split when present), or labelled shards (a pattern; samples need a `.cls`).
Every source becomes a `LabelledSet`: a map-style dataset of (uint8 C,H,W tensor, label) + class names.
"""

from __future__ import annotations

import gzip
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from kdgen import contract
from kdtrain.data.spec import InputSpec
from kdtrain.errors import UserError

FASHION_MNIST_DIR = os.environ.get("KDTRAIN_FASHION_MNIST", "/usr/share/datasets/fashion-mnist")
CACHE_DIR = os.environ.get("KDTRAIN_DATA", os.path.expanduser("~/.cache/kdtrain"))

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]
# Per-channel statistics of the training splits (for the teacher's input spec).
STATS = {
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "mnist": ((0.1307,), (0.3081,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


class TensorImages(Dataset):
    """In-memory uint8 images N,C,H,W and labels."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.images[i], int(self.labels[i])


class FileImages(Dataset):
    """Image files decoded on access (keeps large folders out of memory)."""

    def __init__(self, files: list[str], labels: list[int]):
        self.files, self.labels = files, labels

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        from kdtrain.data.shards import decode_image

        try:
            with open(self.files[i], "rb") as f:
                return decode_image(f.read()), self.labels[i]
        except (OSError, ValueError, SyntaxError) as e:  # undecodable: a blank image with no label (-1)
            warnings.warn(f"skipping {self.files[i]}: {e}", RuntimeWarning, stacklevel=2)
            return torch.zeros(1, 1, 1, dtype=torch.uint8), -1


@dataclass
class LabelledSet:
    name: str
    dataset: Dataset  # (uint8 C,H,W tensor, int label)
    class_names: list[str]
    spec: InputSpec  # native size/channels and normalisation statistics of this data

    def __len__(self):
        return len(self.dataset)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def load_labelled(source: str, train: bool) -> LabelledSet:
    """Open a labelled source (see module docstring) for the training or the test split."""
    key = source.lower().replace("_", "-")
    if key in ("fashion-mnist", "fmnist", "mnist"):
        name = "mnist" if key == "mnist" else "fashion-mnist"
        return _mnist_like(name, train)
    if key in ("cifar10", "cifar100"):
        return _cifar(key, train)
    if key == "digits":
        return _digits(train)
    if Path(source).is_dir():
        return _folder(Path(source), train)
    from kdtrain.data.shards import expand_patterns

    return _shards(source, expand_patterns([source]))


def _idx(path: Path) -> np.ndarray:
    """Read an IDX file (gzipped or not): big-endian header of dims, then uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    arr = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if data[2] != 0x08 or arr.size != int(np.prod(dims)):
        raise UserError(f"{path} is not a uint8 IDX file")
    return arr.reshape(dims)


def _find(folder: Path, stem: str) -> Path | None:
    for p in (folder / stem, folder / f"{stem}.gz"):
        if p.is_file():
            return p
    return None


def _mnist_like(name: str, train: bool) -> LabelledSet:
    prefix = "train" if train else "t10k"
    folder = Path(FASHION_MNIST_DIR if name == "fashion-mnist" else "/usr/share/datasets/mnist")
    img, lab = _find(folder, f"{prefix}-images-idx3-ubyte"), _find(folder, f"{prefix}-labels-idx1-ubyte")
    if img and lab:
        images, labels = torch.from_numpy(_idx(img).copy()), torch.from_numpy(_idx(lab).astype(np.int64))
    else:  # no local files: torchvision's downloader (needs internet once)
        import torchvision

        cls = torchvision.datasets.FashionMNIST if name == "fashion-mnist" else torchvision.datasets.MNIST
        try:
            ds = cls(os.path.join(CACHE_DIR, name), train=train, download=True)
        except Exception as e:
            raise UserError(f"{name}: no IDX files in {folder} and download failed ({e})") from None
        images, labels = ds.data.clone(), ds.targets.clone().long()
    classes = FASHION_CLASSES if name == "fashion-mnist" else [str(i) for i in range(10)]
    mean, std = STATS[name]
    return LabelledSet(name, TensorImages(images.unsqueeze(1), labels), classes, InputSpec(1, 28, 28, mean, std))


def _cifar(name: str, train: bool) -> LabelledSet:
    import torchvision

    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    try:
        ds = cls(os.path.join(CACHE_DIR, name), train=train, download=True)
    except Exception as e:
        raise UserError(f"{name}: download failed ({e})") from None
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
    mean, std = STATS[name]
    return LabelledSet(name, TensorImages(images, torch.tensor(ds.targets)), list(ds.classes),
                       InputSpec(3, 32, 32, mean, std))


DIGITS_EXTRA = "digits"  # the pyproject extra that installs scikit-learn, whose wheel holds the digits
DIGITS_SIZE = 28  # upscaled to Fashion-MNIST's size, so the same models and pipeline take it
DIGITS_TEST = 0.2  # share of each class held out as the test split


def _digits(train: bool) -> LabelledSet:
    """scikit-learn's bundled 8x8 digits (1,797 images, values 0..16), read from its data file without
    importing scikit-learn (no download, no scipy import); split per class by a fixed permutation, so the
    split is the same on every machine."""
    import importlib.util

    import torch.nn.functional as F

    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz" if spec else None
    if path is None or not path.is_file():
        raise UserError(f"--data digits needs scikit-learn's bundled digits: pip install -e '.[{DIGITS_EXTRA}]'")
    table = np.loadtxt(gzip.open(path, "rt"), delimiter=",", dtype=np.int64)
    pixels, labels = table[:, :64], table[:, 64]
    order = np.random.default_rng(0).permutation(len(labels))
    test = np.zeros(len(labels), dtype=bool)
    for c in range(10):
        rows = order[labels[order] == c]
        test[rows[: round(DIGITS_TEST * len(rows))]] = True
    keep = ~test if train else test
    x = torch.from_numpy(pixels[keep].reshape(-1, 1, 8, 8)).float() * (255 / 16)
    x = F.interpolate(x, size=(DIGITS_SIZE, DIGITS_SIZE), mode="bilinear", align_corners=False)
    images = x.round().clamp(0, 255).to(torch.uint8)
    # the normalisation a teacher trained on it expects: the training split's, whichever split is opened
    train_x = images if train else _digits(True).dataset.images
    mean, std = train_x.float().div(255).mean().item(), train_x.float().div(255).std().item()
    spec = InputSpec(1, DIGITS_SIZE, DIGITS_SIZE, (round(mean, 4),), (round(std, 4),))
    return LabelledSet("digits", TensorImages(images, torch.from_numpy(labels[keep])), [str(i) for i in range(10)],
                       spec)


IMAGE_SUFFIXES = contract.IMAGE_SUFFIXES  # the same files `kdgen import-images` takes


def _folder(root: Path, train: bool) -> LabelledSet:
    for sub in (("train",) if train else ("test", "val")):
        if (root / sub).is_dir():
            root = root / sub
            break
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    files, labels = [], []
    for i, c in enumerate(classes):
        for f in sorted((root / c).rglob("*")):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                files.append(str(f))
                labels.append(i)
    if not files:
        raise UserError(f"image folder {root} has no class sub-folders with images")
    ds = FileImages(files, labels)
    return LabelledSet(str(root), ds, classes, _measure_spec(ds))


def _shards(source: str, urls: list[str]) -> LabelledSet:
    from kdtrain.data.shards import iterate_raw

    images, labels = [], []
    for s in iterate_raw(urls, need_label=True):
        images.append(s["image"])
        labels.append(s["label"])
    if not images:
        raise UserError(f"no labelled samples (with .cls) in {source}")
    names = _manifest_classes(urls[0]) or [str(i) for i in range(max(labels) + 1)]
    ds = _ListImages(images, labels)
    return LabelledSet(source, ds, names, _measure_spec(ds))


class _ListImages(Dataset):
    """Decoded images of possibly different sizes, kept as a list."""

    def __init__(self, images: list[torch.Tensor], labels: list[int]):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.images[i], self.labels[i]


def _manifest_classes(url: str) -> list[str] | None:
    """Class names from the dataset manifest beside a shard (NAME-000000.tar -> NAME-manifest.json)."""
    names = (contract.read_json(contract.manifest_beside(url)) or {}).get("class_names")
    return list(names) if names else None


def _measure_spec(ds: Dataset, n: int = 1000) -> InputSpec:
    """Size and channels of the first readable image; mean/std over the first n images."""
    first = next(img for img, y in (ds[i] for i in range(len(ds))) if y >= 0)
    c, h, w = first.shape
    imgs = (ds[i] for i in range(min(n, len(ds))))
    xs = [img.float().div(255).flatten(1) for img, y in imgs if img.shape[0] == c and y >= 0]
    x = torch.cat(xs, 1)
    return InputSpec(c, h, w, tuple(x.mean(1).tolist()), tuple(x.std(1).clamp_min(1e-3).tolist()))
