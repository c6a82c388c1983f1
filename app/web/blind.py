"""Arena images that cannot be told apart by their bytes.

A public file's sha256 (in the API), its size and its ETag name its variant. An arena image
is therefore re-encoded on every request: the same pixels, a PNG with a random-length random
comment, so its hash and size match no public file and no other request's. Pixels are left
alone: a rater must see what the variant made (scaled down, for a small screen, as the
browser would scale it, never through a lossy thumbnail).
"""

from __future__ import annotations

import io
import secrets
from pathlib import Path

from PIL import Image, PngImagePlugin

# The comment's length varies by up to this many bytes: sizes of different images overlap.
MAX_PADDING = 4096


def blind_png(path: Path, max_side: int | None = None) -> bytes:
    """The image at `path` in new bytes; with `max_side`, scaled down (never up) to fit."""
    with Image.open(path) as image:
        image.load()
        if max_side is not None:
            image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        info = PngImagePlugin.PngInfo()
        info.add_text("n", secrets.token_hex(secrets.randbelow(MAX_PADDING // 2) + 8))
        out = io.BytesIO()
        # Level 1 like the worker: lossless, fast; the bytes differ anyway through the comment.
        image.save(out, format="PNG", pnginfo=info, compress_level=1)
    return out.getvalue()
