"""The models people train (torchvision-layout ResNets, a masked transformer encoder, a U-Net), planned as
written: every plan's step equals eager, and its measured peak stays within the budget."""

import copy

import numpy as np
import pytest
import torch

from kit.memory import plan, profile
from kit.memory.execute import mean_square, measure, run
from kit.memory.plan import budgets_between
from kit.memory.real_models import real_model, versus_torch
from kit.memory.schedule import Costs


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "encoder", "unet"])
def test_a_plan_of_a_real_model_steps_like_eager_within_its_budget(name):
    model, inputs, context = real_model(name, batch=2)
    costs = Costs.from_profile(profile(copy.deepcopy(model), inputs, repeats=1, context=context))
    for budget in budgets_between(costs, [0.0, 0.5]):
        chosen = plan(costs, int(budget), "optimal")
        eager, planned = copy.deepcopy(model), copy.deepcopy(model)
        torch.manual_seed(11)
        expected = mean_square(eager(inputs, **context))
        expected.backward()
        after_eager = torch.get_rng_state()
        torch.manual_seed(11)
        loss = run(planned, chosen, inputs, context=context)
        assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
        assert torch.get_rng_state().equal(after_eager)
        for (key, a), b in zip(eager.named_parameters(), planned.parameters(), strict=True):
            torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-5, msg=key)
        for (key, a), b in zip(eager.named_buffers(), planned.buffers(), strict=True):
            torch.testing.assert_close(b, a, msg=key)  # BatchNorm statistics and counters updated once
        assert measure(copy.deepcopy(model), chosen, inputs, repeats=1, context=context)["peak"] <= budget


def test_versus_torch_reports_every_model_and_budget():
    data = versus_torch(["unet"], batch=2, fractions=[0.5, 1.0], repeats=1, progress=False)
    assert dict(data.peak_over_budget.sizes) == {"model": 1, "fraction": 2}
    assert (data.peak_over_budget <= 1.0).all() and int(data.stages.sel(model="unet")) == 10
    assert np.isfinite(data.torch_time).all() and (data.torch_peak > 0).all()


def test_an_unknown_model_is_named():
    with pytest.raises(ValueError, match=r"unknown model 'vgg'; choose one of \['encoder', 'resnet18'"):
        real_model("vgg")
