"""The models people train, planned as they are written, against torch's own answer at the same peak.

Four models in the layouts their libraries use (torchvision is not a dependency of the kit: its ResNets are
rebuilt module for module, with in-place ReLUs, ``out += identity``, the same stages and widths): ResNet-18
and ResNet-50, a transformer encoder with a padding mask (a context input), and a U-Net with long skips.
For each, :func:`versus_torch` profiles it, runs the optimal plan at budgets between its least peak and
store-all's, and compares with ``torch.utils.checkpoint`` applied to every stage but the last (per block,
as users write it): the plan at torch's measured peak against torch's time.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import xarray as xr
from torch import nn
from torch.utils.checkpoint import checkpoint

from kit.memory.chain import stages
from kit.memory.execute import measure, peak_and_time
from kit.memory.graph import bound
from kit.memory.plan import BudgetError, budgets_between, least_peak, plan
from kit.memory.profiling import mean_square, profile
from kit.memory.schedule import Costs

__all__ = ["MODELS", "real_model", "versus_torch"]


class BasicBlock(nn.Module):
    """torchvision's ResNet-18/34 block: two 3x3 convolutions and a shortcut (downsampled when needed)."""

    expansion = 1

    def __init__(self, inputs: int, width: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = _downsample(inputs, width, stride)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class Bottleneck(nn.Module):
    """torchvision's ResNet-50 block: 1x1, 3x3 and 1x1 convolutions (4x wider out) and a shortcut."""

    expansion = 4

    def __init__(self, inputs: int, width: int, stride: int = 1):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(inputs, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, width * 4, 1, bias=False), nn.BatchNorm2d(width * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(inputs, width * 4, stride)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += identity
        return self.relu(out)


def _downsample(inputs: int, outputs: int, stride: int):
    if stride == 1 and inputs == outputs:
        return None
    return nn.Sequential(nn.Conv2d(inputs, outputs, 1, stride, bias=False), nn.BatchNorm2d(outputs))


class ResNet(nn.Module):
    """torchvision's ResNet (``torchvision.models.resnet18`` / ``resnet50`` with ``weights=None``): ``width``
    channels after the stem, doubled by each of the ``layers`` (blocks per layer) after the first."""

    def __init__(self, block, layers, classes: int = 1000, width: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inputs = width
        for i, count in enumerate(layers):
            planes, stride = width * 2**i, 1 if i == 0 else 2
            blocks = [block(inputs, planes, stride)]
            inputs = planes * block.expansion
            blocks += [block(inputs, planes) for _ in range(count - 1)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.depth = len(layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inputs, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(self.depth):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


class Encoder(nn.Module):
    """Token embedding, ``layers`` transformer encoder layers under a key padding mask, a token classifier."""

    def __init__(self, vocabulary: int = 1000, width: int = 256, layers: int = 6, heads: int = 8):
        super().__init__()
        self.embed = nn.Embedding(vocabulary, width)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.1, batch_first=True) for _ in range(layers)
        )
        self.head = nn.Linear(width, vocabulary)

    def forward(self, tokens, padding):
        x = self.embed(tokens)
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=padding)
        return self.head(x)


class UNet(nn.Module):
    """Three levels with long skips (concatenation), as in Ronneberger et al. 2015, narrowed."""

    def __init__(self, channels: int = 16):
        super().__init__()

        def double(cin, cout):
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            )  # fmt: skip

        c = channels
        self.enc1, self.enc2, self.enc3 = double(1, c), double(c, 2 * c), double(2 * c, 4 * c)
        self.pool = nn.MaxPool2d(2)
        self.up2, self.dec2 = nn.ConvTranspose2d(4 * c, 2 * c, 2, 2), double(4 * c, 2 * c)
        self.up1, self.dec1 = nn.ConvTranspose2d(2 * c, c, 2, 2), double(2 * c, c)
        self.head = nn.Conv2d(c, 1, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        e3 = self.enc3(self.pool(e2))
        d2 = self.dec2(torch.cat([self.up2(e3), e2], dim=1))
        return self.head(self.dec1(torch.cat([self.up1(d2), e1], dim=1)))


#: Real models by name: a builder and a function ``(batch, generator) -> (input, context)``.
MODELS = {
    "resnet18": (lambda: ResNet(BasicBlock, [2, 2, 2, 2]), lambda b, g: (torch.randn(b, 3, 64, 64, generator=g), {})),
    "resnet50": (lambda: ResNet(Bottleneck, [3, 4, 6, 3]), lambda b, g: (torch.randn(b, 3, 64, 64, generator=g), {})),
    "encoder": (Encoder, lambda b, g: _tokens(b, 64, g)),
    "unet": (UNet, lambda b, g: (torch.randn(b, 1, 64, 64, generator=g), {})),
}


def _tokens(batch: int, length: int, generator) -> tuple[torch.Tensor, dict]:
    """Token ids and a padding mask (True where padded): each sequence keeps a random length >= half."""
    tokens = torch.randint(0, 1000, (batch, length), generator=generator)
    kept = torch.randint(length // 2, length + 1, (batch, 1), generator=generator)
    return tokens, {"padding": torch.arange(length)[None, :] >= kept}


def real_model(name: str, *, batch: int = 8, seed: int = 0) -> tuple[nn.Module, torch.Tensor, dict]:
    """The model ``name`` (one of :data:`MODELS`) with seeded weights, a seeded input batch and its context."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    build, sample = MODELS[name]
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build()
    inputs, context = sample(batch, torch.Generator().manual_seed(seed))
    return model, inputs, context


def versus_torch(
    names=tuple(MODELS), *, batch: int = 8, fractions=(0.25, 0.5, 0.75, 1.0), repeats: int = 5, seed: int = 0,
    progress: bool = True,
) -> xr.Dataset:  # fmt: skip
    """Plan, run and measure each model at ``fractions`` of the way from its least peak to store-all's, and
    against torch's checkpointing of every stage (dims ``model`` and ``fraction``).

    Variables: ``budget``, ``measured_peak``, ``predicted_peak``, ``measured_time``, ``predicted_time`` of the
    optimal plan, ``peak_over_budget``, ``prediction_error_peak``, ``prediction_error_time``; per model
    ``torch_peak`` and ``torch_time`` (``torch.utils.checkpoint``, non-reentrant, on every stage but the
    last), ``kit_time_at_torch_peak`` (the optimal plan with torch's measured peak as its budget, measured)
    and ``time_ratio_vs_torch`` (that time / torch's; NaN where torch's peak is below the least the kit's
    plans reach, ``least_peak``), ``stages``. Times are medians of ``repeats`` steps.
    """
    from tqdm.auto import tqdm

    rows = []
    for name in tqdm(list(names), desc="models", disable=not progress):
        model, inputs, context = real_model(name, batch=batch, seed=seed)
        costs = Costs.from_profile(profile(model, inputs, repeats=repeats, context=context))  # leaves it as it was
        runner = copy.deepcopy(model)
        row: dict = {
            key: [] for key in ("budget", "measured_peak", "predicted_peak", "measured_time", "predicted_time")
        }
        for budget in budgets_between(costs, fractions):
            chosen = plan(costs, int(budget), "optimal")
            result = measure(runner, chosen, inputs, repeats=repeats, context=context)
            for key, value in (("budget", int(budget)), ("measured_peak", result["peak"])):
                row[key].append(value)
            row["predicted_peak"].append(result["predicted_peak"])
            row["measured_time"].append(result["time"])
            row["predicted_time"].append(result["predicted_time"])
        torch_peak, torch_time = _checkpointed(copy.deepcopy(model), inputs, context, repeats)
        try:
            at_torch = plan(costs, int(torch_peak), "optimal")
            kit_time = measure(runner, at_torch, inputs, repeats=repeats, context=context)["time"]
        except BudgetError:  # torch's checkpointing reached a peak below any plan of the kit
            kit_time = np.nan
        rows.append((row, torch_peak, torch_time, kit_time, costs.length, least_peak(costs)))
    dims = ("model", "fraction")
    data = xr.Dataset(
        {key: (dims, np.array([row[key] for row, *_ in rows], dtype=float)) for key in rows[0][0]},
        coords={"model": list(names), "fraction": np.asarray(fractions, float)},
    )
    data["torch_peak"] = ("model", [r[1] for r in rows])
    data["torch_time"] = ("model", [r[2] for r in rows])
    data["kit_time_at_torch_peak"] = ("model", [r[3] for r in rows])
    data["stages"] = ("model", [r[4] for r in rows])
    data["least_peak"] = ("model", [r[5] for r in rows])
    data["peak_over_budget"] = data.measured_peak / data.budget
    data["prediction_error_peak"] = data.measured_peak / data.predicted_peak - 1
    data["prediction_error_time"] = data.measured_time / data.predicted_time - 1
    data["time_ratio_vs_torch"] = data.kit_time_at_torch_peak / data.torch_time
    data.attrs.update(batch=batch, seed=seed, repeats=repeats, loss="mean_square", torch_version=str(torch.__version__))
    return data


def _checkpointed(model: nn.Module, inputs: torch.Tensor, context: dict, repeats: int) -> tuple[int, float]:
    """Peak (bytes beyond inputs and parameters) and median time of a training step with every stage but the
    last under ``torch.utils.checkpoint`` (non-reentrant), measured as :func:`kit.memory.measure` does."""
    chain = stages(model, context)

    def step():
        with bound(chain, context):
            x = inputs
            for stage in chain[:-1]:
                x = checkpoint(stage, x, use_reentrant=False)
            mean_square(chain[-1](x)).backward()

    return peak_and_time(model, step, inputs.device, repeats)
