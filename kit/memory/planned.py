"""A drop-in module that trains any model within a byte budget: an ordinary training loop, a planned step.

``Planned(model, budget)`` is used as the model: ``loss = criterion(planned(x), y); loss.backward();
optimizer.step()``. In training mode with grad enabled its forward runs the plan's operations up to the last
stage and returns that stage's output; ``loss.backward()`` reaches it through an autograd function whose
backward back-propagates the output and runs the rest of the plan (recomputations and backwards stage by
stage), so parameter gradients accumulate in ``.grad`` as they would eagerly. The autocast state of the
forward is restored for the recomputations of the backward (AMP and ``GradScaler`` work unchanged). A plan
is made per input shape, dtype and device, from a profile of the model on the first such input.
In eval mode or without grad, the model runs as it is.
"""

from __future__ import annotations

import torch
from torch import nn

from kit.memory.execute import Step
from kit.memory.plan import plan
from kit.memory.profiling import mean_square, profile

__all__ = ["Planned"]


class Planned(nn.Module):
    """``model`` trained by the ``strategy``'s plan within ``budget`` bytes (see :func:`kit.memory.plan`).

    Parameters
    ----------
    model
        Any model :func:`kit.memory.profile` takes (one tensor in, one tensor out).
    budget
        Bytes a training step may hold beyond the inputs and parameters; ``None`` for no limit.
    example
        An input to plan for now (else the first training batch is profiled).
    strategy
        ``"optimal"`` (default), ``"uniform"``, ``"recompute_all"`` or ``"store_all"``.
    loss
        A function of the model's output to a scalar, like the criterion the loop applies, profiled with the
        last stage so that its memory is planned (default: the mean of squares; ``None``: not planned).
    repeats
        Timed repeats per stage when profiling.

    Examples
    --------
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
    >>> planned = Planned(model, budget=None, strategy="recompute_all", repeats=1)
    >>> optimizer = torch.optim.SGD(planned.parameters(), lr=0.1)
    >>> x, y = torch.randn(16, 8), torch.randn(16, 1)
    >>> loss = nn.functional.mse_loss(planned(x), y)
    >>> loss.backward()
    >>> optimizer.step()
    >>> sorted(planned.plans)[0][0], planned.plans[sorted(planned.plans)[0]].strategy
    ((16, 8), 'recompute_all')
    """

    def __init__(
        self, model: nn.Module, budget: int | None, *, example=None, strategy="optimal", loss=mean_square, repeats=3
    ):
        super().__init__()
        self.model, self.budget, self.strategy, self.loss, self.repeats = model, budget, strategy, loss, repeats
        self.plans: dict[tuple, object] = {}
        if example is not None:
            self.plan_for(example)

    def plan_for(self, inputs: torch.Tensor, **context):
        """The plan for inputs like ``inputs`` and ``context`` (shapes, dtypes, device), profiled on first use."""
        others = tuple((name, tuple(t.shape), t.dtype) for name, t in sorted(context.items()))
        key = (tuple(inputs.shape), inputs.dtype, str(inputs.device), others)
        if key not in self.plans:
            costs = profile(self.model, inputs, inputs.device, repeats=self.repeats, loss=self.loss, context=context)
            self.plans[key] = plan(costs, self.budget, self.strategy)
        return self.plans[key]

    def forward(self, inputs: torch.Tensor, **context) -> torch.Tensor:
        """The model's output; ``context``: its other inputs by name (a mask), the same at every stage."""
        if not (self.training and torch.is_grad_enabled()):
            return self.model(inputs, **context)
        chosen = self.plan_for(inputs, **context)
        step = Step(self.model, chosen, inputs.detach(), input_grad=inputs.requires_grad, context=context)
        anchor = torch.empty(0, requires_grad=True)  # autograd calls the backward even if inputs need no grad
        return _PlannedStep.apply(step, inputs, anchor)


class _PlannedStep(torch.autograd.Function):
    """The plan's forward phase as the forward, its backward phase as the backward."""

    @staticmethod
    def forward(ctx, step: Step, inputs: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
        device = inputs.device.type
        ctx.step = step
        ctx.autocast = (device, torch.is_autocast_enabled(device), torch.get_autocast_dtype(device))
        with torch.enable_grad():
            output = step.forward()
        return output.detach()

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        step, (device, enabled, dtype) = ctx.step, ctx.autocast
        ctx.step = None
        with torch.enable_grad(), torch.autocast(device, dtype=dtype, enabled=enabled):
            step.backward(lambda output: torch.autograd.backward(output, grad_output.to(output.dtype)))
        return None, step.input_grad, None
