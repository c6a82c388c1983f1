"""Images as the metrics read them: RGB from disk, then float (3, H, W) tensors in [0, 1]."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    import torch


def load_image(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB image -> float (3, H, W) in [0, 1]."""
    import torch

    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
