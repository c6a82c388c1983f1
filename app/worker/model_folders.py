"""Model folders built once, whole or not at all: a temp folder beside the target, renamed.

Shared by the tiny FLUX pipelines (app/worker/tiny.py) and the tiny CLIP (tiny_clip.py).
Kept apart from both so that asking whether a folder is built imports neither torch nor
diffusers: the metrics command resolves `tiny:clip` on every run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# A folder is complete when this file in it holds the builder's version.
MARKER = ".tiny-build-version"


def is_built(folder: Path, version: str) -> bool:
    marker = folder / MARKER
    return marker.is_file() and marker.read_text().strip() == version


def build_atomically(
    target: Path, write: Callable[[Path], None], *, force: bool, version: str
) -> Path:
    """Build a model folder with `write` unless `target` already holds this `version`.

    Written under a temporary name beside the target and renamed into place, so a killed build
    never leaves a half model.
    """
    if not force and is_built(target, version):
        return target
    _remove_stale_builds(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the built folder is ordinary data
    try:
        write(tmp)
        (tmp / MARKER).write_text(version + "\n")
        if force or not is_built(target, version):  # else another process finished first
            shutil.rmtree(target, ignore_errors=True)  # an older build version
            os.rename(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _remove_stale_builds(target: Path, older_than_s: float = 3600.0) -> None:
    """Temp folders of builds that were killed. A build takes seconds, so one older than an
    hour is nobody's: removing younger ones could pull a folder from under a live build."""
    cutoff = time.time() - older_than_s
    for leftover in target.parent.glob(f".{target.name}.*"):
        if leftover.is_dir() and leftover.stat().st_mtime < cutoff:
            shutil.rmtree(leftover, ignore_errors=True)
