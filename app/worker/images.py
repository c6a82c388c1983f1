"""Writing images so that nothing is ever half-written: a temp file beside it, then a rename."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from app.media import THUMB_MAX_SIDE

# Temp files carry the writer's pid, so a later worker can tell a dead writer's leftovers.
TMP_MARK = ".tmp-"


@dataclass(frozen=True)
class StoredImage:
    image_path: str  # relative to the media folder
    thumb_path: str
    sha256: str


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}{TMP_MARK}{os.getpid()}")
    with open(tmp, "wb") as handle:
        handle.write(data)
    # rename is atomic on POSIX: readers see the old file or the whole new one.
    os.replace(tmp, path)


def store_image(image: Image.Image, media_dir: Path, stem: str) -> StoredImage:
    """Write `<stem>.png` (lossless) and `<stem>.thumb.webp` under media_dir."""
    png = io.BytesIO()
    # Level 1: still lossless, several times faster to encode than the default 6.
    image.save(png, format="PNG", compress_level=1)
    png_bytes = png.getvalue()

    thumb = image.copy()
    thumb.thumbnail((THUMB_MAX_SIDE, THUMB_MAX_SIDE))
    webp = io.BytesIO()
    # method 0: the fastest encoder effort; at thumbnail size the files barely differ.
    thumb.save(webp, format="WEBP", quality=82, method=0)

    image_rel = f"{stem}.png"
    thumb_rel = f"{stem}.thumb.webp"
    _write_atomic(media_dir / image_rel, png_bytes)
    _write_atomic(media_dir / thumb_rel, webp.getvalue())
    return StoredImage(image_rel, thumb_rel, hashlib.sha256(png_bytes).hexdigest())


def remove_orphan_temp_files(media_dir: Path, is_alive: Callable[[int], bool]) -> int:
    """Delete temp files left by writers that died mid-write. Returns how many."""
    removed = 0
    if not media_dir.exists():
        return 0
    for path in media_dir.rglob(f"*{TMP_MARK}*"):
        pid_text = path.name.rsplit(TMP_MARK, 1)[1]
        if pid_text.isdigit() and not is_alive(int(pid_text)):
            path.unlink(missing_ok=True)
            removed += 1
    return removed
