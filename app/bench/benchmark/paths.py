"""Model, LoRA and GGUF references that name a local path (./, ../, /, ~), told apart from
Hub ids and tiny: refs, and resolved against the config's folder.
"""

from __future__ import annotations

from pathlib import Path


def looks_local(ref: str) -> bool:
    return ref.startswith(("/", "./", "../", "~"))


def resolve_local(config_dir: Path, ref: str) -> str:
    """A local model/LoRA path relative to the config's folder; Hub ids and tiny: refs unchanged."""
    if looks_local(ref):
        return str((config_dir / Path(ref).expanduser()).resolve())
    return ref
