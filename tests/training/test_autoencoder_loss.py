"""The autoencoder's reconstruction error weighs the objects' pixels up (known cases)."""

import torch

from app.training.autoencoder import FOREGROUND_WEIGHT, reconstruction_error


def _scene() -> torch.Tensor:
    """A grey canvas with one red 4x4 square, in [-1, 1]."""
    pixels = torch.zeros(1, 3, 16, 16)
    pixels[0, :, 6:10, 6:10] = torch.tensor([1.0, -1.0, -1.0])[:, None, None]
    return pixels


def test_an_object_error_costs_more_than_the_same_background_error() -> None:
    pixels = _scene()
    wrong_object = pixels.clone()
    wrong_object[0, 0, 6:8, 6:8] -= 0.5  # 4 pixels of the square
    wrong_background = pixels.clone()
    wrong_background[0, 0, 0:2, 0:2] -= 0.5  # 4 pixels of the canvas
    object_cost = reconstruction_error(wrong_object, pixels)
    background_cost = reconstruction_error(wrong_background, pixels)
    assert torch.isclose(object_cost / background_cost, torch.tensor(FOREGROUND_WEIGHT))


def test_a_perfect_reconstruction_costs_nothing() -> None:
    assert reconstruction_error(_scene(), _scene()) == 0
