"""Find real images in a folder for `kdgen import-images`: class subfolders become labels."""

from __future__ import annotations

import logging
from pathlib import Path

from PIL import Image

from kdgen.errors import KdgenError

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm"}


def readable(path: Path) -> bool:
    """Whether Pillow can fully decode the file (a truncated or corrupt file is not)."""
    try:
        with Image.open(path) as img:
            img.load()
        return True
    except Exception as err:  # noqa: BLE001 - any decoder failure means "skip this file"
        log.warning("skipping %s: %s", path, err)
        return False


def scan_folder(folder: Path) -> tuple[list[str], list[str], int]:
    """(relative paths of readable images in sorted order, class names or [], number skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise KdgenError(f"{folder} is not a folder of images; pass a folder (class subfolders become labels)")
    subdirs = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    candidates = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                        and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    if subdirs:  # labelled layout: only images inside class folders count
        candidates = [p for p in candidates if len(p.relative_to(folder).parts) > 1]
    files = [str(p.relative_to(folder)) for p in candidates if readable(p)]
    skipped = len(candidates) - len(files)
    if not files:
        raise KdgenError(f"no readable images in {folder} ({skipped} unreadable); expected .png/.jpg/... files")
    classes = sorted({Path(f).parts[0] for f in files}) if subdirs else []
    return files, classes, skipped
