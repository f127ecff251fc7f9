"""Planned: an ordinary training loop (optimizer, AMP, input gradients) runs every step by a plan."""

import copy

import pytest
import torch
from test_memory import dropout_bn_chain
from test_memory_graph import ResNet
from torch import nn

from kit.memory import Planned, profile
from kit.memory.plan import BudgetError, least_peak
from kit.memory.schedule import Costs


def tight_budget(model, inputs):
    """5 % above the least peak a plan can reach: the optimal plan must recompute."""
    return int(1.05 * least_peak(Costs.from_profile(profile(copy.deepcopy(model), inputs, repeats=1))))


def train(model, batches, *, autocast=False):
    """A standard loop: loss, backward, step; returns the losses."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for seed, (x, y) in enumerate(batches):
        torch.manual_seed(100 + seed)  # the same dropout masks in both loops
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = nn.functional.cross_entropy(model(x).float(), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("build", [dropout_bn_chain, ResNet], ids=["dropout-bn", "resnet"])
def test_a_training_loop_on_planned_gives_the_eager_parameters(build):
    model = build()
    shape = (32, 16) if build is dropout_bn_chain else (8, 3, 32, 32)
    batches = [(torch.randn(*shape), torch.randint(0, 8, (shape[0],))) for _ in range(3)]
    eager, planned = copy.deepcopy(model), Planned(copy.deepcopy(model), tight_budget(model, batches[0][0]))
    assert train(planned, batches) == pytest.approx(train(eager, batches), rel=1e-5)
    assert any(op == "Fn" for op, _ in next(iter(planned.plans.values())).operations)  # it did recompute
    for (name, a), b in zip(eager.state_dict().items(), planned.model.state_dict().values(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5, msg=name)


def test_autocast_and_a_grad_scaler_work_unchanged():
    model = dropout_bn_chain()
    batches = [(torch.randn(32, 16), torch.randint(0, 8, (32,))) for _ in range(2)]
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the budget of the step as it will run
        budget = tight_budget(model, batches[0][0])
    eager, planned = copy.deepcopy(model), Planned(copy.deepcopy(model), budget)
    assert train(planned, batches, autocast=True) == pytest.approx(train(eager, batches, autocast=True), rel=1e-3)
    for a, b in zip(eager.parameters(), planned.parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-4)
    x, y = batches[0]
    grads = {}
    for scale in (1.0, 1024.0):
        scaler = torch.amp.GradScaler("cpu", init_scale=scale)
        planned.zero_grad()
        torch.manual_seed(0)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = nn.functional.cross_entropy(planned(x).float(), y)
        scaler.scale(loss).backward()
        grads[scale] = [p.grad.clone() for p in planned.parameters()]
    for plain, scaled in zip(grads[1.0], grads[1024.0], strict=True):
        torch.testing.assert_close(scaled, 1024.0 * plain, rtol=1e-5, atol=1e-6)
    before = [p.detach().clone() for p in planned.parameters()]
    optimizer = torch.optim.SGD(planned.parameters(), lr=0.05)
    scaler.step(optimizer)  # unscales, checks for inf, steps
    assert all(not torch.equal(a, b) for a, b in zip(before, planned.parameters(), strict=True))


def test_gradients_reach_an_input_that_needs_them():
    model = dropout_bn_chain().eval()  # no dropout: the two forwards agree without seeding
    planned = Planned(copy.deepcopy(model).train(), None, strategy="recompute_all", repeats=1)
    planned.model.eval()
    x = torch.randn(8, 16, requires_grad=True)
    model(x).square().sum().backward()
    expected, x.grad = x.grad.clone(), None
    planned.train()
    planned.model.eval()
    planned(x).square().sum().backward()
    torch.testing.assert_close(x.grad, expected)


def test_a_new_input_shape_gets_its_own_plan_and_eval_runs_the_model():
    model = dropout_bn_chain()
    planned = Planned(model, None, example=torch.randn(32, 16), strategy="recompute_all", repeats=1)
    planned(torch.randn(16, 16)).sum().backward()
    assert sorted(shape for shape, *_ in planned.plans) == [(16, 16), (32, 16)]
    planned.eval()
    x = torch.randn(4, 16)
    torch.testing.assert_close(planned(x), model(x))
    assert len(planned.plans) == 2  # evaluation plans nothing


def test_a_budget_below_any_plan_names_the_least_one():
    with pytest.raises(BudgetError, match=r"budget 1 bytes is below what any schedule needs: .* peaks at"):
        Planned(dropout_bn_chain(), 1, example=torch.randn(8, 16), repeats=1)


def small_model():
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 4))


def batches_of(rank, steps=3):
    generator = torch.Generator().manual_seed(rank)
    return [(torch.randn(8, 16, generator=generator), torch.randn(8, 4, generator=generator)) for _ in range(steps)]


def ddp_rank(rank, store, out):
    """One rank of a 2-process gloo group (rendezvous through the file ``store``, no port to race for)
    training DistributedDataParallel(Planned(model))."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        model = DistributedDataParallel(Planned(small_model(), None, strategy="recompute_all", repeats=1))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for x, y in batches_of(rank):
            optimizer.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
        if rank == 0:
            torch.save([p.detach() for p in model.parameters()], out)
    finally:
        dist.destroy_process_group()


def test_distributed_data_parallel_over_planned_equals_one_process_on_both_batches(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(ddp_rank, args=(tmp_path / "store", tmp_path / "rank0.pt"), nprocs=2)
    reference = small_model()
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.1)
    for step in zip(batches_of(0), batches_of(1), strict=True):
        optimizer.zero_grad()
        x, y = (torch.cat(parts) for parts in zip(*step, strict=True))
        nn.functional.mse_loss(reference(x), y).backward()  # the mean over both ranks' batches
        optimizer.step()
    for got, expected in zip(torch.load(tmp_path / "rank0.pt"), reference.parameters(), strict=True):
        torch.testing.assert_close(got, expected.detach(), rtol=1e-5, atol=1e-6)


def test_planned_passes_a_mask_to_the_layers_that_read_it():
    from test_memory_graph import Encoder

    torch.manual_seed(4)
    model, mask = Encoder(), nn.Transformer.generate_square_subsequent_mask(6)
    batches = [(torch.randn(4, 6, 8), torch.randn(4, 6, 5)) for _ in range(2)]
    eager, planned = copy.deepcopy(model), Planned(copy.deepcopy(model), None, strategy="recompute_all", repeats=1)
    for module in (eager, planned):
        optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
        for seed, (x, y) in enumerate(batches):
            torch.manual_seed(seed)
            optimizer.zero_grad()
            nn.functional.mse_loss(module(x, mask=mask), y).backward()
            optimizer.step()
    for a, b in zip(eager.parameters(), planned.parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    assert [others for *_, others in planned.plans] == [(("mask", (6, 6), torch.float32),)]
