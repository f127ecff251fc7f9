"""Chains to plan: an MLP, a ResNet-like convolutional chain, a chain of transformer blocks and ResNet-18 (rotor's
reference point), with inputs."""

from __future__ import annotations

import torch
from torch import nn


class Residual(nn.Module):
    """``shortcut(x) + block(x)`` (the identity shortcut by default): a residual block is one stage of a chain
    (the skip stays inside the stage)."""

    def __init__(self, block: nn.Module, shortcut: nn.Module | None = None):
        super().__init__()
        self.block = block
        self.shortcut = shortcut or nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.block(x)


def mlp_chain(width: int = 512, depth: int = 8, classes: int = 10) -> nn.Sequential:
    """``depth`` blocks of Linear, ReLU, then a classifier (dropout in the middle block)."""
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(width, width), nn.ReLU()]
        if i == depth // 2:
            layers.append(nn.Dropout(0.1))
    return nn.Sequential(*layers, nn.Linear(width, classes))


def conv_chain(channels: int = 32, blocks: int = 6, classes: int = 10) -> nn.Sequential:
    """A stem, ``blocks`` residual blocks (conv, BatchNorm, ReLU, conv, BatchNorm) with a stride-2 block in
    the middle, pooling and a classifier: ResNet-like, heterogeneous stages."""
    layers: list[nn.Module] = [nn.Conv2d(3, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU()]
    width = channels
    for i in range(blocks):
        if i == blocks // 2:
            layers += [nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU()]
            width *= 2
        body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width),
        )  # fmt: skip
        layers += [Residual(body), nn.ReLU()]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, classes))


def transformer_chain(d_model: int = 128, layers: int = 4, heads: int = 4, classes: int = 10) -> nn.Sequential:
    """An embedding projection, ``layers`` transformer encoder blocks (batch first) and a token classifier."""
    blocks = [
        nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=4 * d_model, dropout=0.1, batch_first=True)
        for _ in range(layers)
    ]
    return nn.Sequential(nn.Linear(d_model, d_model), *blocks, nn.Linear(d_model, classes))


def resnet18_chain(classes: int = 1000) -> nn.Sequential:
    """ResNet-18 (He et al. 2016, torchvision's layout) as a chain: the stem's layers, each basic block as one
    stage followed by its ReLU, pooling and the classifier."""

    def basic(inputs: int, width: int, stride: int) -> Residual:
        body = nn.Sequential(
            nn.Conv2d(inputs, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width),
        )  # fmt: skip
        down = None
        if stride != 1 or inputs != width:
            down = nn.Sequential(nn.Conv2d(inputs, width, 1, stride, bias=False), nn.BatchNorm2d(width))
        return Residual(body, down)

    layers: list[nn.Module] = [
        nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1),
    ]  # fmt: skip
    width = 64
    for out, stride in [(64, 1), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1)]:
        layers += [basic(width, out, stride), nn.ReLU()]
        width = out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, classes))


#: Benchmark chains by name: a builder and the shape of one input batch.
CHAINS = {
    "mlp": (mlp_chain, (1024, 512)),
    "conv": (conv_chain, (32, 3, 32, 32)),
    "transformer": (transformer_chain, (16, 128, 128)),
    "resnet18": (resnet18_chain, (32, 3, 224, 224)),
}


def benchmark_chain(name: str, *, batch: int | dict | None = None, seed: int = 0) -> tuple[nn.Sequential, torch.Tensor]:
    """The chain ``name`` (one of :data:`CHAINS`) with seeded weights and a seeded input batch of ``batch``
    samples (a mapping: per chain name; None or 0: the chain's default)."""
    if name not in CHAINS:
        raise ValueError(f"unknown chain {name!r}; choose one of {sorted(CHAINS)}")
    if isinstance(batch, dict):
        batch = batch.get(name)
    build, shape = CHAINS[name]
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build()
    shape = (batch or shape[0], *shape[1:])
    return model, torch.randn(shape, generator=generator)
