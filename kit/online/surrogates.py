"""Surrogates mapping (parameters, time) to a field: an MLP and a small convolutional decoder."""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    """Fully connected surrogate, as Melissa's heat surrogate: inputs -> hidden layers -> the flat field.

    Parameters
    ----------
    n_inputs
        Parameters plus one for time.
    shape
        Field shape ``(ny, nx)``.
    width, depth
        Hidden layer width and number of hidden layers.
    """

    def __init__(self, n_inputs: int, shape: tuple[int, int], width: int = 256, depth: int = 2):
        super().__init__()
        layers, size = [], n_inputs
        for _ in range(depth):
            layers += [nn.Linear(size, width), nn.ReLU()]
            size = width
        layers.append(nn.Linear(size, shape[0] * shape[1]))
        self.net = nn.Sequential(*layers)
        self.shape = tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(-1, *self.shape)


class ConvDecoder(nn.Module):
    """A linear layer to a coarse feature map, then upsampling convolutions to the field's shape."""

    def __init__(self, n_inputs: int, shape: tuple[int, int], channels: int = 32, coarse: int = 8):
        super().__init__()
        self.shape, self.channels, self.coarse = tuple(shape), channels, coarse
        self.project = nn.Sequential(nn.Linear(n_inputs, 128), nn.ReLU(), nn.Linear(128, channels * coarse * coarse))
        self.decode = nn.Sequential(
            nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="bilinear"),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(),
            nn.Upsample(size=self.shape, mode="bilinear"),
            nn.Conv2d(channels, channels // 2, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels // 2, 1, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        coarse = self.project(x).view(-1, self.channels, self.coarse, self.coarse)
        return self.decode(coarse)[:, 0]


SURROGATES = {"mlp": MLP, "conv": ConvDecoder}


def make_surrogate(name: str, n_inputs: int, shape: tuple[int, int], **options) -> nn.Module:
    """A surrogate by name (``"mlp"`` or ``"conv"``)."""
    if name not in SURROGATES:
        raise ValueError(f"unknown surrogate {name!r}; choose one of {sorted(SURROGATES)}")
    return SURROGATES[name](n_inputs, shape, **options)
