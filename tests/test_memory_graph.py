"""Any model in: chains cut from torch.fx graphs, in-place modules, the chain checked against the model, and
profiles that leave the model as they found it."""

import copy

import pytest
import torch
from test_memory import assert_runs_like_eager
from torch import nn

from kit.memory import plan, profile, real_models, stages
from kit.memory.execute import run
from kit.memory.plan import least_peak
from kit.memory.schedule import Costs


def ResNet():  # noqa: N802 - a small torchvision-layout ResNet, built like a class
    return real_models.ResNet(real_models.BasicBlock, [2, 2], classes=10, width=8)


class UNet(nn.Module):
    """Two levels with long skips: everything between the first and the last convolution is one stage."""

    def __init__(self):
        super().__init__()
        self.stem, self.down = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 8, 3, 2, 1)
        self.middle, self.up = nn.Conv2d(8, 8, 3, padding=1), nn.ConvTranspose2d(8, 4, 2, 2)
        self.head = nn.Conv2d(8, 1, 1)

    def forward(self, x):
        skip = torch.relu(self.stem(x))
        deep = self.up(torch.relu(self.middle(torch.relu(self.down(skip)))))
        return self.head(torch.cat([deep, skip], dim=1))


class SkipSequential(nn.Sequential):
    """A Sequential subclass whose forward adds a skip: flattening it would train another network."""

    def forward(self, x):
        return self[2](x + self[1](self[0](x)))


def test_a_torchvision_style_resnet_is_cut_between_its_blocks():
    chain = stages(ResNet())
    labels = ["conv1", "bn1..relu", "maxpool", "layer1.0", "layer1.1", "layer2.0", "layer2.1", "avgpool"]
    assert [stage.label for stage in chain] == [*labels, "flatten", "fc"]


def test_a_unet_keeps_its_long_skips_inside_one_stage():
    assert [stage.label for stage in stages(UNet())] == ["stem", "relu", "down..up", "head"]  # the cat is in 2


@pytest.mark.parametrize("build", [ResNet, UNet], ids=["resnet", "unet"])
@pytest.mark.parametrize("strategy", ["recompute_all", "optimal"])
def test_a_plan_on_a_traced_model_gives_the_eager_gradients(build, strategy):
    torch.manual_seed(0)
    model = build()
    inputs = torch.randn(4, 3, 32, 32) if build is ResNet else torch.randn(4, 1, 16, 16)
    eager, planned = copy.deepcopy(model), copy.deepcopy(model)
    costs = profile(model, inputs, repeats=1)
    budget = int(1.05 * least_peak(Costs.from_profile(costs))) if strategy == "optimal" else None
    assert_runs_like_eager(eager, planned, plan(costs, budget, strategy), inputs)
    for a, b in zip(eager.buffers(), planned.buffers(), strict=True):
        torch.testing.assert_close(b, a)  # BatchNorm statistics updated once


def test_a_sequential_subclass_with_a_skip_is_traced_not_flattened():
    torch.manual_seed(1)
    model = SkipSequential(nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 2))
    assert [stage.label for stage in stages(model)] == ["0..1", "2"]  # the skip's add is in stage 0..1
    eager, planned = copy.deepcopy(model), copy.deepcopy(model)
    costs = profile(model, torch.randn(5, 8), repeats=1)
    assert_runs_like_eager(eager, planned, plan(costs, strategy="recompute_all"), torch.randn(5, 8))


def test_an_in_place_module_joins_the_stage_before_it():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(64, 2))
    chain = stages(model)
    assert [type(stage).__name__ for stage in chain] == ["Conv2d", "Sequential", "Flatten", "Linear"]
    assert [type(m).__name__ for m in chain[1]] == ["BatchNorm2d", "ReLU"]
    eager, planned = copy.deepcopy(model), copy.deepcopy(model)
    costs = profile(model, torch.randn(2, 3, 6, 6), repeats=1)  # no in-place operation on a leaf
    assert_runs_like_eager(eager, planned, plan(costs, strategy="recompute_all"), torch.randn(2, 3, 6, 6))


class Counting(nn.Module):
    """Python state read by forward: a trace freezes it, so the chain computes another function."""

    def __init__(self):
        super().__init__()
        self.linear, self.calls = nn.Linear(3, 3), 0

    def forward(self, x):
        self.calls += 1
        return self.linear(x) * self.calls


class Branching(nn.Module):
    def forward(self, x):
        return x if x.sum() > 0 else -x


class Masked(nn.Module):
    def forward(self, x, mask):
        return x * mask


class Pair(nn.Module):
    def forward(self, x):
        return x, x


def test_what_cannot_be_a_chain_is_refused_by_name():
    with pytest.raises(ValueError, match=r"the 2 stages of Counting do not compute the model's function"):
        profile(Counting(), torch.randn(2, 3), repeats=1)
    with pytest.raises(TypeError, match=r"could not trace Branching with torch.fx .*branches on tensor values"):
        stages(Branching())
    with pytest.raises(TypeError, match=r"Masked.forward takes \['x', 'mask'\]: .* the context: \['mask'\]"):
        stages(Masked())
    with pytest.raises(TypeError, match=r"not inputs of forward: \['bias'\]"):
        stages(Masked(), ["mask", "bias"])
    with pytest.raises(TypeError, match=r"returns one tensor; Pair.forward returns tuple"):
        stages(Pair())


def test_a_plan_run_on_another_model_names_both_stage_counts():
    costs = profile(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)), torch.randn(3, 4), repeats=1)
    with pytest.raises(ValueError, match=r"the plan schedules 3 stages, Sequential has 2"):
        run(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2)), plan(costs, strategy="store_all"), torch.randn(3, 4))


def test_profile_leaves_parameters_buffers_grads_random_state_and_mode_as_they_were():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 2))
    model(torch.randn(4, 8)).sum().backward()  # existing gradients and statistics
    before = copy.deepcopy(model.state_dict())
    grads = [p.grad for p in model.parameters()]
    inputs = torch.randn(32, 8)
    state = torch.get_rng_state()
    profile(model, inputs, repeats=3)  # in training mode, as a plan runs: dropout draws, BatchNorm updates
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, before[name], rtol=0, atol=0, msg=name)
    assert all(p.grad is g for p, g in zip(model.parameters(), grads, strict=True))
    assert torch.get_rng_state().equal(state)
    assert model.training
    model.eval()
    profile(model, inputs, repeats=1)
    assert not model.training


@pytest.mark.parametrize("strategy", ["store_all", "recompute_all"])
def test_tied_weights_count_their_gradient_once_and_the_peak_is_predicted_to_the_byte(strategy):
    from kit.memory.execute import measure

    torch.manual_seed(0)
    tied = nn.Linear(256, 256)
    model = nn.Sequential(tied, nn.Tanh(), nn.Linear(256, 256), nn.ReLU(), tied, nn.Tanh(), nn.Linear(256, 8))
    inputs = torch.randn(64, 256)
    costs = profile(model, inputs, repeats=1)
    unique = sum(p.numel() * p.element_size() for p in model.parameters())  # each parameter once
    assert int(costs.grad_bytes.sum()) == unique
    assert int(costs.grad_bytes[0]) == 0 and int(costs.grad_bytes[4]) == (256 * 256 + 256) * 4  # the last user
    result = measure(copy.deepcopy(model), plan(costs, strategy=strategy), inputs, repeats=1)
    assert result["peak"] == result["predicted_peak"]


class Encoder(nn.Module):
    """Transformer encoder layers under a causal mask passed to forward, with a keyword default left alone."""

    def __init__(self, width=32, layers=3):
        super().__init__()
        self.embed, self.head = nn.Linear(8, width), nn.Linear(width, 5)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(width, 4, 64, dropout=0.1, batch_first=True) for _ in range(layers)
        )

    def forward(self, x, mask, scale=1.0):
        x = self.embed(x) * scale
        for layer in self.layers:
            x = layer(x, src_mask=mask)
        return self.head(x)


def test_a_transformer_with_a_mask_is_cut_between_layers_and_trains_like_eager():
    from kit.memory.execute import mean_square, run

    torch.manual_seed(4)
    model, x = Encoder(), torch.randn(4, 6, 8)
    mask = nn.Transformer.generate_square_subsequent_mask(6)
    chain = stages(model, ["mask"])
    assert [stage.label for stage in chain] == ["embed", "mul", "layers.0", "layers.1", "layers.2", "head"]
    assert [stage.context_names for stage in chain] == [(), (), ("mask",), ("mask",), ("mask",), ()]
    eager, planned = copy.deepcopy(model), copy.deepcopy(model)
    costs = profile(model, x, repeats=1, context={"mask": mask})
    chosen = plan(costs, int(1.05 * least_peak(Costs.from_profile(costs))), "optimal")
    torch.manual_seed(11)
    expected = mean_square(eager(x, mask))
    expected.backward()
    torch.manual_seed(11)
    assert run(planned, chosen, x, context={"mask": mask}).item() == pytest.approx(expected.item(), rel=1e-6)
    for (name, a), b in zip(eager.named_parameters(), planned.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-5, atol=1e-6, msg=name)
    assert all(getattr(stage, "context_mask", None) is None for stage in chain)  # unbound after the step


class Positional(nn.Module):
    """Reads a buffer of its own in forward: a trace holds that tensor."""

    def __init__(self):
        super().__init__()
        self.first, self.second = nn.Linear(4, 4), nn.Linear(4, 2)
        self.register_buffer("offset", torch.ones(4))

    def forward(self, x, **options):
        return self.second(torch.nn.functional.relu(self.first(x + self.offset), True))


def run_chain(chain, x):
    for stage in chain:
        x = stage(x)
    return x


def test_a_trace_follows_the_model_to_another_dtype_and_mode():
    torch.manual_seed(5)
    model, x = Positional(), torch.randn(3, 4)
    chain = stages(model)
    assert [s.label for s in chain] == ["add", "first", "second"]  # relu(..., True) stays with "first"
    model.double()  # replaces the buffer: the stages are traced again with the new one
    doubled = stages(model)
    assert doubled is not chain
    torch.testing.assert_close(run_chain(doubled, x.double()), model(x.double()))

    class Noisy(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4, 4)

        def forward(self, x):
            return nn.functional.dropout(self.linear(x), 0.5, self.training)

    noisy = Noisy().eval()
    frozen = stages(noisy)
    noisy.train()  # the trace froze self.training: a new one drops out again
    torch.manual_seed(0)
    expected = noisy(x)
    torch.manual_seed(0)
    torch.testing.assert_close(run_chain(stages(noisy), x), expected)
    assert not torch.equal(run_chain(frozen, x), expected)
