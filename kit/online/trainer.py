"""Training state: the encoding of samples, the surrogate, its optimizer, and validation errors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from kit.space import ParameterSpace


@dataclass(frozen=True)
class Encoding:
    """Maps (parameters, time) to network inputs and fields to normalised targets, and back.

    Bounded parameters go to [0, 1]; ``norm`` ones (and the logarithm of ``lognorm`` ones) are
    standardised by (mean, std); time is
    divided by ``t_end``; fields become ``(field - offset) / scale``.
    """

    space: ParameterSpace
    t_end: float
    offset: float = 0.0
    scale: float = 1.0

    def inputs(self, params: np.ndarray, times: np.ndarray) -> np.ndarray:
        """Array ``(m, d + 1)`` for ``m`` (parameters, time) pairs; ``params`` is ``(d,)`` or ``(m, d)``."""
        low, high = self.space.bounds.T
        params = np.broadcast_to(np.asarray(params, dtype=float), (len(times), self.space.dim))
        dists = np.array(self.space.dists)
        logged = np.where(dists == "lognorm", np.log(np.where(dists == "lognorm", params, 1.0)), params)
        standardised = np.isin(dists, ("norm", "lognorm"))
        unit = np.where(standardised, (logged - low) / high, (params - low) / (high - low))
        return np.column_stack([unit, np.asarray(times, dtype=float) / self.t_end]).astype(np.float32)

    def targets(self, fields: np.ndarray) -> np.ndarray:
        return ((np.asarray(fields, dtype=np.float32) - self.offset) / self.scale).astype(np.float32)

    def fields(self, targets: np.ndarray) -> np.ndarray:
        return np.asarray(targets, dtype=np.float64) * self.scale + self.offset


class Trainer:
    """A surrogate, its Adam optimizer and one gradient step per batch, with per-sample losses.

    Parameters
    ----------
    model
        A ``torch.nn.Module`` mapping ``(batch, d + 1)`` inputs to ``(batch, ny, nx)`` fields.
    lr
        Adam learning rate.
    device
        ``"cpu"`` or ``"cuda"`` (checked: an absent device is an error).
    """

    def __init__(self, model: nn.Module, *, lr: float = 1e-3, device: str = "cpu"):
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr!r}")
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {device!r} is not available here (torch sees no CUDA device); use 'cpu'")
        self.model = model.to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.batches = 0

    def step(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """One gradient step on the mean squared error; returns each sample's loss before the step."""
        self.model.train()
        inputs = torch.as_tensor(x, device=self.device)
        targets = torch.as_tensor(y, device=self.device)
        per_sample = ((self.model(inputs) - targets) ** 2).flatten(1).mean(1)
        self.optimizer.zero_grad(set_to_none=True)
        per_sample.mean().backward()
        self.optimizer.step()
        self.batches += 1
        return per_sample.detach().cpu().numpy()

    @torch.no_grad()
    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Model outputs for inputs ``x`` (evaluation mode, in batches)."""
        self.model.eval()
        parts = [
            self.model(torch.as_tensor(x[i : i + batch_size], device=self.device)).cpu().numpy()
            for i in range(0, len(x), batch_size)
        ]
        return np.concatenate(parts)

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "batches": self.batches}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.batches = state["batches"]


def seeded_model(factory, seed: int) -> nn.Module:
    """Build a model with its initial weights drawn from ``seed`` (global torch RNG left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory()
