"""What the media folder's files are like, as both its writer (the worker) and its readers
(the web pages) must agree: the web tier lays out a thumbnail before loading it, and never
imports the worker (DESIGN.md: the two talk only through the database and the media folder)."""

from __future__ import annotations

# The long side of an image's WebP thumbnail, in pixels (never scaled up).
THUMB_MAX_SIDE = 384
