"""Find real images in a folder for `kdgen import-images`: class subfolders become labels."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from kdgen.contract import IMAGE_SUFFIXES, MAX_SIDE_ENV, ImageTooLarge, open_image
from kdgen.errors import UserError

log = logging.getLogger(__name__)


def check_file(path: Path, max_side: int | None = None) -> str | None:
    """None where Pillow fully decodes the file, else why it is skipped: "too_large" (its declared size is
    past `max_side`, so it is not decoded at all) or "unreadable" (truncated, corrupt)."""
    try:
        with open_image(path, max_side) as img:
            img.load()
        return None
    except ImageTooLarge as err:
        log.warning("skipping %s: %s", path, err)
        return "too_large"
    except Exception as err:  # noqa: BLE001 - any decoder failure means "skip this file"
        log.warning("skipping %s: %s", path, err)
        return "unreadable"


def scan_folder(folder: Path, max_side: int | None = None) -> tuple[list[str], list[str], Counter]:
    """(relative paths of readable images in sorted order, class names or [], files skipped by reason)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder of images; pass a folder (class subfolders become labels)")
    subdirs = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    candidates = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                        and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    if subdirs:  # labelled layout: only images inside class folders count
        candidates = [p for p in candidates if len(p.relative_to(folder).parts) > 1]
    files, skipped = [], Counter()
    for p in candidates:
        why = check_file(p, max_side)
        if why:
            skipped[why] += 1
        else:
            files.append(str(p.relative_to(folder)))
    if not files:
        what = ", ".join(f"{n} {why.replace('_', ' ')}" for why, n in sorted(skipped.items())) or "none found"
        hint = f", or set {MAX_SIDE_ENV} to decode larger ones" if skipped["too_large"] else ""
        raise UserError(f"no readable images in {folder} ({what}); expected .png/.jpg/... files{hint}")
    classes = sorted({Path(f).parts[0] for f in files}) if subdirs else []
    return files, classes, skipped
