"""Fidelity against a reference image: SSIM, PSNR and LPIPS of (N, 3, H, W) batches in [0, 1].

torchmetrics computes all three; the settings behind each figure (FIDELITY_PARAMS) are
stored with it. torch and torchmetrics are imported only inside the functions.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

from app.quality.errors import unavailable_reason

if TYPE_CHECKING:
    import torch

FIDELITY_METRICS = ("ssim", "psnr_db", "lpips")
TORCHMETRICS = "torchmetrics"
LPIPS_MODEL = "lpips-alex"


def _torchmetrics_params(**params: Any) -> dict[str, Any]:
    return params | {"torchmetrics": version("torchmetrics")}


FIDELITY_PARAMS: dict[str, dict[str, Any]] = {
    "ssim": _torchmetrics_params(
        data_range=1.0, gaussian_kernel=True, kernel_size=11, sigma=1.5, k1=0.01, k2=0.03
    ),
    "psnr_db": _torchmetrics_params(data_range=1.0, base=10),
    "lpips": _torchmetrics_params(net_type="alex", normalize=True),
}


def fidelity_model(metric: str) -> str:
    return LPIPS_MODEL if metric == "lpips" else TORCHMETRICS


def ssim(preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM of (N, 3, H, W) batches in [0, 1]."""
    import torch
    from torchmetrics.functional.image import structural_similarity_index_measure

    p = FIDELITY_PARAMS["ssim"]
    # Channels-last: the same values, and on a CPU the Gaussian window's depthwise conv runs
    # about twice as fast in that layout (benchmarks/metrics_speed.py).
    value = structural_similarity_index_measure(
        preds.contiguous(memory_format=torch.channels_last),
        target.contiguous(memory_format=torch.channels_last),
        data_range=p["data_range"],
        gaussian_kernel=p["gaussian_kernel"],
        kernel_size=p["kernel_size"],
        sigma=p["sigma"],
        k1=p["k1"],
        k2=p["k2"],
        reduction="none",
    )
    assert not isinstance(value, tuple)  # only with return_full_image/contrast_sensitivity
    return value


def psnr_db(preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of (N, 3, H, W) batches in [0, 1]; +inf where they are equal."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    # dim: one mean squared error per image; without it torchmetrics pools the whole batch.
    return peak_signal_noise_ratio(
        preds, target, data_range=1.0, base=10.0, reduction="none", dim=(1, 2, 3)
    )


def load_lpips(
    device: str = "cpu",
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | str:
    """Per-image LPIPS of (N, 3, H, W) batches in [0, 1], or why it cannot run here."""
    try:
        from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

        # Builds the AlexNet backbone with torchvision's pretrained weights (a download on
        # first use) and torchmetrics' bundled linear heads.
        metric = LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True)
    except Exception as err:  # missing torchvision, no network for the weights, ...
        return unavailable_reason(f"cannot load LPIPS ({LPIPS_MODEL})", err)
    net = metric.net.to(device)

    def lpips(preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        import torch

        with torch.inference_mode():
            return net(preds, target, normalize=True).flatten()

    return lpips
