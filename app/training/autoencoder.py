"""Stage 1: the tiny `AutoencoderKL` on rendered scenes, and the latents the transformer
trains on.

Reconstruction (L1 + L2 on [-1, 1] pixels, the objects weighted up) plus a small KL term, as
FLUX's VAE: the KL keeps the latent space smooth enough to denoise in. It trains on random
crops of half the scene's side: the network is convolutional, the objects keep their size in
pixels, and a crop costs a quarter of a scene, so the same minutes see four times the images
(the round trip's colours and edges need them: docs/benchmarks.md, "Shapes autoencoder round
trip").

After training, `normalize` sets the VAE's `shift_factor` and `scaling_factor` from the
latents' own mean and spread, as FLUX's 0.1159 and 0.3611 are: the pipeline decodes
`latents / scaling + shift`, so the transformer learns and samples latents of zero mean and
unit variance.
"""

from __future__ import annotations

import numpy as np
import torch
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from PIL import Image

from app.training.loop import Stage
from app.training.shapes import SceneSpec, prompt_of, render, sample_training_spec

# Per latent value, against the per-pixel reconstruction error. On the 32-wide autoencoder
# with crops, 1e-3 gave back more of the held-out scenes than 1e-5 (98.4% against 92.2%
# after 1,200 steps, docs/benchmarks.md), and a smoother latent is the easier one to denoise.
KL_WEIGHT = 1e-3
# Objects cover a few percent of a scene: a plain mean error is met by a good background and
# grey blobs (150 steps gave 5% of held-out scenes right after a round trip, colours lost).
# Pixels away from the background colour weigh this much more.
FOREGROUND_WEIGHT = 6.0


def reconstruction_error(reconstruction: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """Absolute plus squared error, averaged with the objects' pixels weighted up (the L1
    term keeps a gradient on small colour errors the square flattens). The background colour
    is the top and bottom rows' median: the renderer fills the canvas with one colour."""
    border = torch.cat([pixels[..., 0, :], pixels[..., -1, :]], dim=-1)
    background = border.median(dim=-1).values[..., None, None]
    foreground = ((pixels - background).abs().amax(dim=1, keepdim=True) > 0.1).float()
    weight = 1.0 + (FOREGROUND_WEIGHT - 1.0) * foreground
    difference = reconstruction - pixels
    error = difference.abs() + difference**2
    return (weight * error).sum() / (weight.sum() * pixels.shape[1])


def to_tensor(images: list[Image.Image]) -> torch.Tensor:
    """RGB images to a (B, 3, H, W) batch in [-1, 1], the VAE's input range."""
    array = np.stack([np.asarray(image, dtype=np.float32) for image in images])
    return torch.from_numpy(array).permute(0, 3, 1, 2) / 127.5 - 1.0


def to_images(batch: torch.Tensor) -> list[Image.Image]:
    array = ((batch.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)
    return [Image.fromarray(a.numpy()) for a in array]


def scenes(
    seed: int, step: int, count: int, size: int
) -> tuple[list[SceneSpec], list[Image.Image]]:
    """`count` training scenes, drawn from (seed, step) alone."""
    rng = np.random.default_rng([seed, step])
    specs = [sample_training_spec(rng) for _ in range(count)]
    images = [render(spec, size, seed=int(rng.integers(2**31))) for spec in specs]
    return specs, images


def random_crops(pixels: torch.Tensor, side: int, generator: torch.Generator) -> torch.Tensor:
    """One `side` x `side` window of each image, at a place drawn from `generator`."""
    room = pixels.shape[-1] - side + 1
    corners = torch.randint(room, (len(pixels), 2), generator=generator).tolist()
    windows = zip(pixels, corners, strict=True)
    return torch.stack([p[:, y : y + side, x : x + side] for p, (y, x) in windows])


def autoencoder_stage(
    vae: AutoencoderKL, *, steps: int, batch: int, size: int, seed: int, lr: float = 2e-3
) -> Stage:
    def loss(step: int, generator: torch.Generator) -> torch.Tensor:
        _, images = scenes(seed, step, batch, size)
        pixels = random_crops(to_tensor(images), size // 2, generator)
        posterior = vae.encode(pixels).latent_dist
        latents = posterior.sample(generator)
        reconstruction = vae.decode(latents).sample
        kl = posterior.kl().mean() / latents[0].numel()
        return reconstruction_error(reconstruction, pixels) + KL_WEIGHT * kl

    return Stage("autoencoder", {"vae": vae}, loss, steps=steps, lr=lr, seed=seed, warmup=50)


@torch.no_grad()
def raw_latents(vae: AutoencoderKL, images: list[Image.Image], chunk: int = 64) -> torch.Tensor:
    """The posterior means of `images`, before the shift and scale."""
    out = [
        vae.encode(to_tensor(images[i : i + chunk])).latent_dist.mode()
        for i in range(0, len(images), chunk)
    ]
    return torch.cat(out)


def normalize(vae: AutoencoderKL, latents: torch.Tensor) -> torch.Tensor:
    """Set the VAE's shift and scale from these raw latents; return them normalized."""
    shift = float(latents.mean())
    scaling = float(1.0 / latents.std())
    vae.register_to_config(shift_factor=shift, scaling_factor=scaling)
    return (latents - shift) * scaling


def dataset(
    vae: AutoencoderKL, *, count: int, size: int, seed: int
) -> tuple[torch.Tensor, list[str]]:
    """`count` training scenes as normalized latents, with their prompts. Drawn from a seed
    the autoencoder's batches never use (its steps are 0..steps-1 of `seed`)."""
    specs, images = scenes(seed + 1, 0, count, size)
    latents = normalize(vae, raw_latents(vae, images))
    return latents, [prompt_of(spec) for spec in specs]
