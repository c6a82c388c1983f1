"""One training loop for every stage: AdamW with a warm-up and a cosine decay, a checkpoint
every `checkpoint_every` steps (resumable: the modules, the optimizer and the step), and
batches that depend only on (seed, step), so a resumed run draws the batches an uninterrupted
one would have drawn.

A stage is a function `loss(step, generator) -> tensor`; the loop owns the optimizer, the
schedule, the clock and the progress report.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch

Progress = Callable[[int, float], None]  # (steps done, last loss) -> None


@dataclass
class Stage:
    name: str
    modules: dict[str, torch.nn.Module]
    loss: Callable[[int, torch.Generator], torch.Tensor]
    steps: int
    lr: float
    seed: int
    warmup: int = 100
    weight_decay: float = 0.0
    checkpoint_every: int = 200
    clip_grad: float = 1.0
    # Filled in by `train`:
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def _parameters(modules: Iterable[torch.nn.Module]) -> list[torch.nn.Parameter]:
    return [p for module in modules for p in module.parameters() if p.requires_grad]


def learning_rate(stage: Stage, step: int) -> float:
    if step < stage.warmup:
        return stage.lr * (step + 1) / stage.warmup
    progress = (step - stage.warmup) / max(1, stage.steps - stage.warmup)
    return stage.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(stage: Stage, checkpoint_dir: Path, progress: Progress | None = None) -> Stage:
    """Run (or resume) `stage` to its last step; returns it with its losses and seconds."""
    parameters = _parameters(stage.modules.values())
    optimizer = torch.optim.AdamW(parameters, lr=stage.lr, weight_decay=stage.weight_decay)
    checkpoint = checkpoint_dir / f"{stage.name}.pt"
    start = 0
    if checkpoint.exists():
        saved = torch.load(checkpoint, weights_only=False)
        for name, module in stage.modules.items():
            module.load_state_dict(saved["modules"][name])
        optimizer.load_state_dict(saved["optimizer"])
        start, stage.losses, stage.seconds = saved["step"], saved["losses"], saved["seconds"]
    for module in stage.modules.values():
        module.train()
    if progress:
        progress(start, stage.losses[-1] if stage.losses else math.nan)
    clock = time.perf_counter()
    for step in range(start, stage.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(stage, step)
        generator = torch.Generator().manual_seed(stage.seed * 1_000_003 + step)
        loss = stage.loss(step, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, stage.clip_grad)
        optimizer.step()
        stage.losses.append(float(loss.detach()))
        done = step + 1
        if done % stage.checkpoint_every == 0 or done == stage.steps:
            stage.seconds += time.perf_counter() - clock
            clock = time.perf_counter()
            _save(checkpoint, stage, optimizer, done)
        if progress:
            progress(done, stage.losses[-1])
    for module in stage.modules.values():
        module.eval()
    return stage


def save_atomically(value: object, path: Path) -> None:
    """torch.save to a temporary name, then a rename: a kill mid-write leaves the last one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    torch.save(value, partial)
    partial.replace(path)


def _save(path: Path, stage: Stage, optimizer: torch.optim.Optimizer, step: int) -> None:
    save_atomically(
        {
            "modules": {name: module.state_dict() for name, module in stage.modules.items()},
            "optimizer": optimizer.state_dict(),
            "step": step,
            "losses": stage.losses,
            "seconds": stage.seconds,
        },
        path,
    )
