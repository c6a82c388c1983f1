"""The manifest of the committed weights: what each file is (sha256, bytes), how it was made
(the command, the commit of the training code, seeds, steps, losses) and where and how long.

`verify` is what a test and the worker's loader run: a weight file whose bytes differ from
the manifest's is an error naming the file, never a silent load of other weights.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from pathlib import Path
from typing import Any

MANIFEST = "MANIFEST.json"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weight_files(root: Path) -> list[Path]:
    """Every file under `root` but the manifest itself, in a stable order."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST)


def code_commit(repository: Path) -> str:
    """HEAD, with "+changes" when the training code differs from it (the manifest then says
    the weights came from uncommitted code)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=repository, capture_output=True, text=True, check=False
        ).stdout.strip()

    head = git("rev-parse", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "app/training", "app/worker/tiny.py")
    return f"{head}+changes" if dirty else head


def machine() -> dict[str, Any]:
    import os

    import torch

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def write(root: Path, record: dict[str, Any]) -> Path:
    files = {
        str(p.relative_to(root)): {"sha256": sha256(p), "bytes": p.stat().st_size}
        for p in weight_files(root)
    }
    path = root / MANIFEST
    path.write_text(json.dumps({**record, "files": files}, indent=2, sort_keys=True) + "\n")
    return path


def verify(root: Path) -> dict[str, Any]:
    """The manifest, after checking every file against it; ValueError names what differs."""
    path = root / MANIFEST
    if not path.is_file():
        raise ValueError(f"{path}: no manifest: the weights under {root} cannot be checked")
    manifest: dict[str, Any] = json.loads(path.read_text())
    listed = set(manifest["files"])
    present = {str(p.relative_to(root)) for p in weight_files(root)}
    if listed != present:
        extra, missing = sorted(present - listed), sorted(listed - present)
        raise ValueError(f"{path}: files not in the manifest {extra}, missing files {missing}")
    for name, entry in manifest["files"].items():
        if sha256(root / name) != entry["sha256"]:
            raise ValueError(f"{root / name}: sha256 differs from {path}")
    return manifest
