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
        params = np.broadcast_to(np.asarray(params, dtype=float), (len(times), self.space.dim))
        return self.at_times(self.unit(params), times)

    def unit(self, params: np.ndarray) -> np.ndarray:
        """The parameter part of the inputs, float32 ``(..., d)``: computed once per simulation."""
        low, high = self.space.bounds.T
        params = np.asarray(params, dtype=float)
        dists = np.array(self.space.dists)
        logged = np.where(dists == "lognorm", np.log(np.where(dists == "lognorm", params, 1.0)), params)
        standardised = np.isin(dists, ("norm", "lognorm"))
        return np.where(standardised, (logged - low) / high, (params - low) / (high - low)).astype(np.float32)

    def at_times(self, unit: np.ndarray, times: np.ndarray) -> np.ndarray:
        """Inputs ``(m, d + 1)`` from encoded parameters ``unit`` (``(d,)`` or ``(m, d)``) and ``m`` times."""
        out = np.empty((len(times), self.space.dim + 1), dtype=np.float32)
        out[:, :-1] = unit
        out[:, -1] = times
        out[:, -1] /= self.t_end
        return out

    def targets(self, fields: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Normalised float32 targets; written into ``out`` (which may be ``fields``) when given."""
        fields = np.asarray(fields, dtype=np.float32)
        out = np.subtract(fields, np.float32(self.offset), out=out, dtype=np.float32)
        return np.divide(out, np.float32(self.scale), out=out)

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
        self.model = model
        self.to(device)
        # One fused kernel for every parameter: on CPU the per-tensor loop cost as much as the backward pass.
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr, fused=self.device.type in ("cpu", "cuda"))
        self.network = self.model  # what a step runs: the model, or its data-parallel wrapper
        self.batches = 0

    def distribute(self) -> None:
        """Train data-parallel in the process group this process joined: each step's gradients are averaged
        over the ranks (``DistributedDataParallel``); ``model`` stays the plain model."""
        from torch.nn.parallel import DistributedDataParallel

        try:
            self.network = DistributedDataParallel(
                self.model, device_ids=[self.device] if self.device.type == "cuda" else None
            )
        except Exception as exc:
            raise TypeError(f"model {type(self.model).__name__} cannot be trained data-parallel: {exc}") from exc

    def to(self, device: str) -> None:
        """Train on ``device`` (checked: an absent device is an error); before the first step."""
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {device!r} is not available here (torch sees no CUDA device); use 'cpu'")
        self.model.to(self.device)
        if hasattr(self, "optimizer"):  # a resumed optimizer's moments follow their parameters
            for state in self.optimizer.state.values():
                for key, value in state.items():
                    if isinstance(value, torch.Tensor):  # fused Adam keeps its step count on the device too
                        state[key] = value.to(self.device)

    def host_arrays(self, n: int, x_shape: tuple, y_shape: tuple) -> tuple[np.ndarray, np.ndarray]:
        """Float32 host arrays for ``n`` inputs and targets to gather batches into: pinned memory when
        training on CUDA, so that :meth:`step` copies them to the device without blocking."""
        pin = self.device.type == "cuda"
        return tuple(
            torch.empty((n, *shape), dtype=torch.float32, pin_memory=pin).numpy() for shape in (x_shape, y_shape)
        )

    def step(self, x: np.ndarray, y: np.ndarray, weight: float = 1.0) -> np.ndarray:
        """One gradient step on the mean squared error (times ``weight``: data-parallel ranks weigh their
        batches); returns each sample's loss before the step."""
        self.model.train()
        inputs = torch.as_tensor(x).to(self.device, non_blocking=True)
        targets = torch.as_tensor(y).to(self.device, non_blocking=True)
        per_sample = ((self.network(inputs) - targets) ** 2).flatten(1).mean(1)
        self.optimizer.zero_grad(set_to_none=True)
        (per_sample.mean() * weight).backward()
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
