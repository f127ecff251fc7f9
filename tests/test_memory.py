"""Pillar 3 so far: chains, allocator traces, per-stage profiles and plans (the program against every schedule)."""

import numpy as np
import pytest
import torch
from torch import nn

from kit.memory import plan, profile, stages
from kit.memory.measure_memory import AllocatorTrace
from kit.memory.plan import least_peak
from kit.memory.schedule import Checkpoint, Costs, Keep, operations, segments, simulate, store_all, uniform_bounds

#: Devices the verification tests run on: the CPU everywhere, a GPU where torch sees one.
DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(32, 256), nn.ReLU(), nn.Sequential(nn.Linear(256, 256), nn.Tanh()), nn.Linear(256, 4)
    )


def test_nested_sequentials_are_flattened_and_other_models_traced():
    assert [type(s).__name__ for s in stages(mlp())] == ["Linear", "ReLU", "Linear", "Tanh", "Linear"]
    assert [s.label for s in stages(nn.Linear(2, 2))] == ["Linear"]  # any model: tests/test_memory_graph.py
    with pytest.raises(ValueError, match="empty nn.Sequential"):
        stages(nn.Sequential())


def test_allocator_trace_counts_tensor_bytes_exactly():
    with AllocatorTrace("cpu") as trace:
        kept = torch.empty(1000, dtype=torch.float32)
        dropped = torch.empty(2000, dtype=torch.float32)
        del dropped
        small = torch.empty(500, dtype=torch.float64)
    assert (trace.peak, trace.net) == (4000 + 8000, 4000 + 4000)
    del kept, small


def test_profile_measures_sizes_and_saved_activations():
    data = profile(mlp(), torch.randn(16, 32), repeats=2, loss=None)  # the last stage alone
    assert list(data.module.values) == ["Linear", "ReLU", "Linear", "Tanh", "Linear"]
    np.testing.assert_array_equal(data.x, [16 * 256 * 4] * 4 + [16 * 4 * 4])
    # What the allocator keeps after a forward with grad is what autograd saved, output included.
    np.testing.assert_array_equal(data.xbar, data.saved_hooks)
    np.testing.assert_array_equal(data.saves_input, [1, 0, 1, 0, 1])  # Linear saves its input, ReLU its output
    np.testing.assert_array_equal(
        data.grad_bytes, [(32 * 256 + 256) * 4, 0, (256 * 256 + 256) * 4, 0, (256 * 4 + 4) * 4]
    )
    assert (data.uf > 0).all() and (data.ub > 0).all() and (data.bwd_tmp >= 0).all()
    assert data.attrs["input_bytes"] == 16 * 32 * 4 and data.uf.attrs["units"] == "s"


def test_the_loss_is_profiled_with_the_last_stage_and_planned_for():
    from kit.memory.execute import measure

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 1000))
    inputs = torch.randn(256, 64)
    alone, with_loss = profile(model, inputs, repeats=1, loss=None), profile(model, inputs, repeats=1)
    assert int(alone.x[-1]) == 256 * 1000 * 4 and int(with_loss.x[-1]) == 4  # the loss is a float32 scalar
    # mean_square's float copy and square of the 1000-class output are held or transient with the last stage
    assert int(with_loss.xbar[-1] + with_loss.fwd_tmp[-1]) >= int(alone.xbar[-1]) + 256 * 1000 * 4
    assert with_loss.attrs["loss"] == "mean_square"
    tight = int(1.05 * least_peak(Costs.from_profile(with_loss)))
    chosen = plan(with_loss, tight, "optimal")
    assert measure(model, chosen, inputs, repeats=1)["peak"] <= tight  # 434 KB over before the loss was profiled


def test_an_absent_device_is_an_error():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ValueError, match="device 'cuda' is absent: torch sees no CUDA device"):
        profile(mlp(), torch.randn(2, 32), device="cuda")


def random_costs(rng, length):
    x = rng.integers(1, 6, length)
    return Costs(
        uf=rng.uniform(1, 3, length),
        ub=rng.uniform(1, 4, length),
        x=x,
        xbar=x + rng.integers(0, 6, length),
        fwd_tmp=rng.integers(0, 4, length),
        bwd_tmp=rng.integers(0, 4, length),
        grad=rng.integers(0, 4, length),
    )


def every_schedule(s, t):
    for rest in list(every_schedule(s + 1, t)) if s < t else [None]:
        yield Keep(s, rest)
    for split in range(s + 1, t + 1):
        for right in every_schedule(split, t):
            for left in every_schedule(s, split - 1):
                yield Checkpoint(s, split, right, left)


@pytest.mark.parametrize("length", [1, 2, 3, 4, 5])
def test_the_program_finds_the_fastest_schedule_at_every_budget(length):
    rng = np.random.default_rng(length)
    for _ in range(6 if length < 5 else 2):
        costs = random_costs(rng, length)
        scored = [simulate(costs, operations(tree)) for tree in every_schedule(0, length - 1)]
        peaks = sorted({peak for peak, _ in scored})
        assert least_peak(costs, slots=peaks[-1]) == peaks[0]
        for budget in range(peaks[0], peaks[-1] + 1):
            best = min(time for peak, time in scored if peak <= budget)
            chosen = plan(costs, budget, slots=peaks[-1])  # one byte a slot: the program is exact
            assert chosen.predicted_time == pytest.approx(best) and chosen.predicted_peak <= budget
        if peaks[0] > 1:
            with pytest.raises(ValueError, match=r"below what any schedule needs: .* peaks at \d+ bytes"):
                plan(costs, peaks[0] - 1, slots=peaks[-1])


def test_a_larger_budget_never_gets_a_slower_optimal_plan():
    """What fits a budget fits a larger one: the program's slot is fixed by the chain, not by the budget."""
    from kit.memory.models import benchmark_chain

    costs = Costs.from_profile(profile(*benchmark_chain("mlp", batch=256, seed=0), repeats=1))
    full = plan(costs, strategy="store_all")
    budgets = np.linspace(least_peak(costs), full.predicted_peak, 60).astype(int)
    times = np.array([plan(costs, int(budget)).predicted_time for budget in budgets])
    rises = np.flatnonzero(np.diff(times) > 1e-9 * times[:-1])
    assert not rises.size, f"slower at budgets {budgets[rises + 1].tolist()} than at {budgets[rises].tolist()}"
    assert times[-1] == pytest.approx(full.predicted_time) and times[0] > times[-1]


def test_baselines_cost_what_their_definitions_say():
    costs = random_costs(np.random.default_rng(7), 6)
    uf, ub = costs.uf, costs.ub
    assert plan(costs, strategy="store_all").predicted_time == pytest.approx(uf.sum() + ub.sum())
    # Every stage's input kept, each stage but the last recomputed once.
    assert plan(costs, strategy="recompute_all").predicted_time == pytest.approx(2 * uf.sum() - uf[-1] + ub.sum())
    assert uniform_bounds(6, 3) == [2, 4] and uniform_bounds(7, 2) == [3]
    tree = segments(0, 5, [2, 4])
    assert simulate(costs, operations(tree))[1] == pytest.approx(uf.sum() + uf[:4].sum() + ub.sum())
    full = plan(costs, strategy="store_all")
    assert plan(costs, strategy="optimal").predicted_time == pytest.approx(full.predicted_time)
    for budget in np.linspace(1.1 * least_peak(costs), full.predicted_peak, 8).astype(int):
        uniform = (
            plan(costs, int(budget), "uniform")
            if budget >= plan(costs, strategy="recompute_all").predicted_peak
            else None
        )
        optimal = plan(costs, int(budget), "optimal")
        assert optimal.predicted_peak <= budget
        if uniform is not None:
            assert optimal.predicted_time <= uniform.predicted_time + 1e-9


def test_schedules_that_break_the_memory_model_are_refused():
    costs = random_costs(np.random.default_rng(0), 3)
    with pytest.raises(ValueError, match="B 1 needs abar"):
        simulate(costs, [("Fe", 0), ("B", 1)])
    with pytest.raises(ValueError, match="leaves"):
        simulate(costs, operations(store_all(0, 2))[:-1])


def test_bad_plan_requests_name_the_culprit():
    costs = random_costs(np.random.default_rng(0), 3)
    with pytest.raises(ValueError, match="unknown strategy 'fast'"):
        plan(costs, 10, "fast")
    with pytest.raises(ValueError, match="budget must be None or a number of bytes > 0"):
        plan(costs, -5)
    with pytest.raises(ValueError, match="budget 1 bytes is below what 'store_all' needs: at least"):
        plan(costs, 1, "store_all")


def dropout_bn_chain():
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Linear(16, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Dropout(0.3),
        nn.Linear(64, 64), nn.Tanh(), nn.Dropout(0.5), nn.Linear(64, 8),
    )  # fmt: skip


def assert_runs_like_eager(eager, planned, chosen, inputs):
    """One step of ``chosen`` on ``planned`` gives the loss and gradients of an eager step on ``eager``."""
    from kit.memory.execute import mean_square, run

    torch.manual_seed(11)
    expected = mean_square(eager(inputs))
    expected.backward()
    torch.manual_seed(11)
    loss = run(planned, chosen, inputs)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    for (name, a), b in zip(eager.named_parameters(), planned.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("strategy", ["store_all", "recompute_all", "uniform", "optimal"])
def test_any_plan_gives_the_eager_gradients_and_batchnorm_statistics(strategy, device):
    import copy

    model, inputs = dropout_bn_chain().to(device), torch.randn(32, 16).to(device)
    eager, planned = copy.deepcopy(model), copy.deepcopy(model)
    costs = profile(copy.deepcopy(model), inputs, device, repeats=1)
    full = plan(costs, strategy="store_all").predicted_peak
    tight = int(1.05 * least_peak(Costs.from_profile(costs)))
    chosen = plan(costs, strategy=strategy) if strategy != "optimal" else plan(costs, tight, "optimal")
    assert chosen.predicted_peak <= full
    if strategy == "optimal":
        assert any(op == "Fn" for op, _ in chosen.operations)  # the budget forces recomputation
    assert_runs_like_eager(eager, planned, chosen, inputs)
    for a, b in zip(eager.buffers(), planned.buffers(), strict=True):
        torch.testing.assert_close(b, a)  # running statistics updated once, not once per recomputation
    assert _random_state(device).equal(_state_after(11, eager, inputs, device))


def _random_state(device):
    return torch.cuda.get_rng_state() if device == "cuda" else torch.get_rng_state()


def _state_after(seed, model, inputs, device):
    """The random state after one eager forward from ``seed`` (a plan must leave the same)."""
    import copy

    torch.manual_seed(seed)
    copy.deepcopy(model)(inputs)
    return _random_state(device)


@pytest.mark.parametrize("device", DEVICES)
def test_measured_peaks_stay_within_budget_and_match_the_predictions(device):
    from kit.memory.tradeoff import benchmark

    data = benchmark(["conv"], batch=4, fractions=(0.3, 1.0), repeats=1, device=device, progress=False)
    assert set(data.strategy.values) == {"optimal", "uniform", "store_all", "recompute_all"}
    measured = np.isfinite(data.measured_peak)
    assert int(measured.sel(strategy="optimal").sum()) == 2  # optimal fits every budget
    assert (data.peak_over_budget.where(measured) <= 1.0).sum() == measured.sum()
    # The CPU allocator is deterministic: the memory model predicts the measured peak within 2 %.
    assert float(abs(data.prediction_error_peak).max()) < 0.02
    assert np.isfinite(data.time_ratio_vs_uniform.sel(fraction=1.0)).all()
    # Each measured plan is compared with the least time the program finds within its measured peak.
    assert np.isfinite(data.overhead_vs_optimal.sel(strategy="store_all", fraction=1.0)).all()


@pytest.mark.parametrize("device", DEVICES)
def test_host_and_device_profiles_compare_stage_by_stage_and_step_by_step(device):
    from kit.memory.accuracy import STAGE_BYTES, profiler_accuracy

    data = profiler_accuracy(["conv"], device=device, batch=4, repeats=1)
    assert data.sizes["layer"] == 21 and list(data.on.values) == ["host", "device"]
    assert data.attrs["device_memory_source"] == ("CUDA allocator counters" if device == "cuda" else
                                                  "torch profiler allocator events")  # fmt: skip
    # Outputs are the same tensors everywhere; the host allocator is compared with the device's.
    np.testing.assert_array_equal(data.x.sel(on="host"), data.x.sel(on="device"))
    assert np.isfinite(data.step_peak.sel(strategy="optimal")).all()
    if device == "cpu":  # the same allocator on both sides: every byte agrees
        for key in STAGE_BYTES:
            np.testing.assert_array_equal(data[key].sel(on="host"), data[key].sel(on="device"), err_msg=key)
        np.testing.assert_array_equal(data.step_peak.sel(on="host"), data.step_peak.sel(on="device"))


def test_benchmark_chains_are_seeded_and_named():
    from kit.memory.models import benchmark_chain

    (a, x), (b, y) = benchmark_chain("transformer", batch=2), benchmark_chain("transformer", batch=2)
    torch.testing.assert_close(x, y)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q)
    with pytest.raises(ValueError, match="unknown chain 'rnn'; choose one of"):
        benchmark_chain("rnn")


def synthetic_profile(rng, length):
    import xarray as xr

    x = rng.integers(1, 50, length) * 1000
    values = {
        "uf": rng.uniform(1, 3, length),
        "ub": rng.uniform(1, 5, length),
        "x": x,
        "xbar": x + rng.integers(0, 50, length) * 1000,
        "fwd_tmp": rng.integers(0, 10, length) * 1000,
        "bwd_tmp": rng.integers(0, 10, length) * 1000,
        "grad_bytes": rng.integers(0, 200, length) * 1000,
    }
    return xr.Dataset({k: ("stage", v) for k, v in values.items()}, attrs={"input_bytes": 5000})


def every_partition(length, count):
    """Every way to cut ``length`` stages into ``count`` consecutive (possibly empty) runs."""
    import itertools

    for cuts in itertools.combinations_with_replacement(range(length + 1), count - 1):
        edges = [0, *cuts, length]
        yield tuple(zip(edges[:-1], edges[1:], strict=True))


@pytest.mark.parametrize("mode", ["training", "inference"])
def test_partition_is_the_best_of_every_partition_that_fits(mode):
    from kit.memory.partition import Device, _Model, partition

    rng = np.random.default_rng(1)
    for _ in range(8):
        data = synthetic_profile(rng, 6)
        devices = [Device("gpu", 4.0, int(rng.integers(300, 900)) * 1000), Device("cpu", 1.0, 10**7),
                   Device("gpu2", 2.0, int(rng.integers(300, 900)) * 1000)]  # fmt: skip
        model = _Model(data, devices, mode, 1e6, 4.0, None)
        candidates = [model.result(bounds) for bounds in every_partition(6, 3)]
        fitting = [c for c in candidates if c.fits]
        best = partition(data, devices, mode=mode, bandwidth=1e6)
        objective = (lambda p: p.period) if mode == "training" else (lambda p: p.latency)
        assert best.fits and objective(best) == pytest.approx(min(objective(c) for c in fitting))


def test_greedy_device_map_ignores_speed_and_activations():
    from kit.memory.partition import Device, greedy, partition

    data = synthetic_profile(np.random.default_rng(3), 8)
    devices = [Device("slow-big", 1.0, 10**8), Device("fast", 8.0, 10**8)]
    fill = greedy(data, devices)
    assert fill.bounds == ((0, 8), (8, 8))  # everything fits on the first device: the fast one idles
    best = partition(data, devices)
    assert best.period < fill.period
    # Filled by parameter size alone, the first device overflows once gradients, optimizer state and
    # activations are counted; the partition keeps every device within its memory.
    tight = [Device("a", 1.0, int(data.grad_bytes.sum()) // 2), Device("b", 1.0, 10**8)]
    assert not greedy(data, tight).fits and partition(data, tight).fits


def test_partition_errors_name_what_is_missing():
    from kit.memory.partition import Device, partition

    data = synthetic_profile(np.random.default_rng(0), 4)
    with pytest.raises(ValueError, match=r"no partition fits the devices' memory .* needs \{'tiny': \d+"):
        partition(data, [Device("tiny", 1.0, 10)])
    with pytest.raises(ValueError, match="device 'x': speed must be > 0"):
        Device("x", 0.0, 10)
    with pytest.raises(ValueError, match="unknown mode 'serve'"):
        partition(data, [Device("a", 1.0, 10**9)], mode="serve")


def test_versus_greedy_reports_an_overflowing_fill_as_unusable():
    from kit.memory.partition import versus_greedy

    data = synthetic_profile(np.random.default_rng(5), 6)
    table = versus_greedy(data, [0.25, 1.0], fast_speed=10.0)
    assert list(table.greedy_fits.values) == [0, 1]
    assert np.isnan(table.objective_greedy[0]) and np.isfinite(table.objective_partition).all()
    assert table.fast_used_partition[0] <= table.fast_memory[0] == table.attrs["whole"] // 4
    assert float(table.objective_ratio[1]) == pytest.approx(1.0)  # with room for everything both agree


def test_a_recorded_run_keeps_its_provenance_and_names_what_is_missing(tmp_path):
    from kit.memory.accuracy import load_recorded, record
    from kit.memory.host_link import measure_link

    paths = record(tmp_path, device="cpu", batch={"mlp": 8}, repeats=1, parts=("profiler-accuracy", "tradeoff"))
    assert [p.name for p in paths] == ["profiler-accuracy.nc", "tradeoff.nc"]
    from kit import io

    attrs = io.load_dataset(paths[1]).attrs
    assert attrs["torch"] == str(torch.__version__) and attrs["recorded"] and attrs["device"].startswith("cpu")
    with pytest.raises(FileNotFoundError, match="host-link.nc is missing"):
        load_recorded(tmp_path)
    with pytest.raises(ValueError, match=r"unknown parts \['links'\]"):
        record(tmp_path, device="cpu", parts=("links",))
    with pytest.raises(ValueError, match="must be a CUDA device"):
        measure_link("cpu")


def test_an_offloaded_stage_frees_its_saved_tensors_between_forward_and_backward():
    from kit.memory.host_link import HostLink
    from kit.memory.schedule import with_offloads

    # Two stages by hand: stage 0 saves 10 bytes beyond its 2-byte output, moved at 5 bytes/s each way.
    costs = Costs(uf=np.array([1.0, 3.0]), ub=np.array([2.0, 4.0]), x=np.array([2, 1]), xbar=np.array([12, 1]),
                  fwd_tmp=np.zeros(2, int), bwd_tmp=np.zeros(2, int), offloadable=np.array([10, 0]))  # fmt: skip
    ops = with_offloads(operations(store_all(0, 1)), [0])
    assert ops == [("Fe", 0), ("offload", 0), ("Fe", 1), ("prefetch", 0), ("B", 1), ("B", 0)]
    # Fully hidden copies (2 s each beside 3 s and 4 s): store-all's time; the 10 bytes are back for B 1.
    link = HostLink(5.0, 5.0, overlap=1.0)
    # The peak is B 1's: delta[1] + abar[0] (prefetched) + abar[1] + the gradient of a[0] it allocates.
    assert simulate(costs, ops, link) == (1 + 12 + 1 + 2, 10.0)
    # Half of each operation hides the copy: 2 - 1.5 and 2 - 2 seconds are added.
    assert simulate(costs, ops, HostLink(5.0, 5.0, overlap=0.5)) == (16, pytest.approx(10.5))
    # Between the forward and backward of stage 1 only 2 of stage 0's 12 bytes stay: a third stage shows it.
    three = Costs(uf=np.ones(3), ub=np.ones(3), x=np.array([2, 1, 1]), xbar=np.array([12, 1, 30]),
                  fwd_tmp=np.zeros(3, int), bwd_tmp=np.zeros(3, int), offloadable=np.array([10, 0, 0]))  # fmt: skip
    kept, moved = simulate(three, operations(store_all(0, 2))), simulate(three, with_offloads(
        operations(store_all(0, 2)), [0]), link)  # fmt: skip
    assert kept[0] - moved[0] == 10 and moved[1] == kept[1] + 2  # each 2 s copy beside a 1 s operation: +1 s
    with pytest.raises(ValueError, match="prefetch 0 needs stage 0 offloaded first"):
        simulate(costs, [("Fe", 0), ("prefetch", 0)], link)
    with pytest.raises(ValueError, match="needs a host link"):
        simulate(costs, ops)
    with pytest.raises(ValueError, match=r"B 0 needs abar\[0\] \(prefetched if offloaded\)"):
        simulate(costs, [("Fe", 0), ("offload", 0), ("Fe", 1), ("B", 1), ("B", 0)], link)


@pytest.mark.parametrize("length", [2, 3, 4])
def test_offloading_plans_fit_and_never_lose_to_recomputation_alone(length):
    from kit.memory.host_link import HostLink
    from kit.memory.schedule import with_offloads

    rng = np.random.default_rng(10 + length)
    for _ in range(4):
        base = random_costs(rng, length)
        costs = Costs(**{**base.__dict__, "offloadable": base.xbar - base.x})
        link = HostLink(float(rng.uniform(0.5, 8)), float(rng.uniform(0.5, 8)), float(rng.uniform(0, 1)))
        subsets = [[j for j in range(length - 1) if mask >> j & 1] for mask in range(2 ** (length - 1))]
        scored = [simulate(costs, with_offloads(operations(tree), chosen), link)
                  for tree in every_schedule(0, length - 1) for chosen in subsets]  # fmt: skip
        peaks = sorted({peak for peak, _ in scored})
        for budget in range(peaks[0], peaks[-1] + 1):
            try:
                alone = plan(costs, budget, slots=peaks[-1]).predicted_time
            except ValueError:
                alone = np.inf
            chosen = plan(costs, budget, "offload", slots=peaks[-1], link=link)
            assert chosen.predicted_peak <= budget and chosen.predicted_time <= alone + 1e-9
            # The plan's prediction is its schedule's exact replay, and no schedule is faster than the best.
            assert simulate(costs, chosen.operations, link) == (chosen.predicted_peak, chosen.predicted_time)
            assert chosen.predicted_time >= min(time for peak, time in scored if peak <= budget) - 1e-9
    with pytest.raises(ValueError, match="needs link=HostLink"):
        plan(costs, strategy="offload")
    with pytest.raises(ValueError, match="overlap must be in"):
        HostLink(1.0, 1.0, overlap=2.0)


@pytest.mark.parametrize("device", DEVICES)
def test_an_offloading_plan_gives_the_eager_gradients(device):
    import copy

    model, inputs = dropout_bn_chain().to(device), torch.randn(32, 16).to(device)
    eager, planned = copy.deepcopy(model), copy.deepcopy(model)
    costs = Costs.from_profile(profile(copy.deepcopy(model), inputs, device, repeats=1))
    offloaded = tuple(j for j in range(costs.length - 1) if costs.moved(j) > 0)
    assert offloaded  # BatchNorm and dropout save tensors beyond their outputs
    from kit.memory.plan import Plan

    chosen = Plan("offload", None, store_all(0, costs.length - 1), 0, 0.0, offloaded)
    assert [op for op, _ in chosen.operations].count("offload") == len(offloaded)
    assert_runs_like_eager(eager, planned, chosen, inputs)


def test_offloading_is_planned_against_recomputation_for_each_link():
    from kit.memory.offloading import sweep

    data = sweep([1e6, 1e12], ["transformer"], overlap=1.0, batch=2, fractions=(0.0, 0.6), repeats=1)
    ratio = data.time_ratio_offload_predicted.sel(chain="transformer")
    assert (ratio <= 1 + 1e-12).all() and not np.isfinite(data.measured_time).any()  # planned, not executed
    moved = data.offloaded_stages.sel(strategy="offload", chain="transformer", fraction=0.6)
    assert int(moved.sel(bandwidth=1e6)) == 0 < int(moved.sel(bandwidth=1e12))  # a slow link is not worth it
    assert float(ratio.sel(bandwidth=1e12, fraction=0.6)) < 1
    assert (data.predicted_peak <= data.budget_bytes).all()


@pytest.mark.parametrize("mode", ["training", "inference"])
def test_a_partition_runs_across_devices_with_the_memory_it_predicts(mode):
    import copy

    from kit.memory.execute import mean_square
    from kit.memory.partition import Device, _Model, partition
    from kit.memory.run_partition import run_partition

    model, inputs = dropout_bn_chain(), torch.randn(64, 16)
    costs = profile(copy.deepcopy(model), inputs, repeats=1)
    devices = [Device("first", 1.0, 10**9), Device("second", 1.0, 10**9)]
    assert partition(costs, devices, mode=mode, micro_batches=1).fits
    expected = _Model(costs, devices, mode, 16e9, 4.0, 1).result(((0, 3), (3, 8)))  # a split through the middle
    eager, planned = copy.deepcopy(model), copy.deepcopy(model)
    torch.manual_seed(5)
    reference = mean_square(eager(inputs))
    reference.backward()
    torch.manual_seed(5)
    data = run_partition(planned, expected, inputs, {"first": "cpu", "second": "cpu"})
    assert list(data.start.values) == [0, 3] and list(data.stop.values) == [3, 8]
    # The allocator sees what the model predicts on each device (one micro-batch in training), and the peak
    # stays under the model's bound.
    np.testing.assert_allclose(data.measured_memory, data.predicted_memory, rtol=1e-3)
    assert (data.measured_peak <= data.predicted_peak).all() and data.attrs["fits"] == 1
    if mode == "training":
        assert data.attrs["loss"] == pytest.approx(reference.item(), rel=1e-6)
        for (name, a), b in zip(eager.named_parameters(), planned.parameters(), strict=True):
            torch.testing.assert_close(b.grad, a.grad, rtol=1e-5, atol=1e-6, msg=name)
    with pytest.raises(ValueError, match=r"places names devices \['gpu'\]"):
        run_partition(planned, expected, inputs, {"gpu": "cpu"})


def test_offloaded_tensors_move_storage_by_storage_and_come_back_as_the_same_views():
    import copy

    from kit.memory.execute import _SavedTensors
    from kit.memory.models import Residual

    torch.manual_seed(2)
    stage = Residual(nn.Sequential(nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 64)))  # one stage
    model, inputs = nn.Sequential(stage, nn.Linear(64, 8)), torch.randn(32, 64)
    costs = Costs.from_profile(profile(copy.deepcopy(model), inputs, repeats=1))
    eager = copy.deepcopy(stage)
    eager(inputs).square().sum().backward()
    saved, source = _SavedTensors(torch.device("cpu")), inputs.detach()
    with torch.autograd.graph.saved_tensors_hooks(saved.pack, saved.unpack):
        output = stage(source)
    values = [box[0].clone() for box in saved.boxes]
    pointers = [box[0].untyped_storage().data_ptr() for box in saved.boxes]
    assert len(set(pointers)) < len(pointers)  # ReLU's result is saved twice (by ReLU and by Linear)
    saved.offload(stage, source, output)()
    assert saved.moved_bytes == costs.moved(0) > 0  # each storage once, as the memory model counts
    moved = [i for i, box in enumerate(saved.boxes) if box[0] is None]
    assert moved
    saved.prefetch()()
    assert saved.moved_bytes == 0
    for box, value in zip(saved.boxes, values, strict=True):
        torch.testing.assert_close(box[0], value)
    after = [box[0].untyped_storage().data_ptr() for box in saved.boxes]
    assert [after[i] == after[k] for i in moved for k in moved] == [
        pointers[i] == pointers[k] for i in moved for k in moved
    ]
    output.square().sum().backward()  # the backward runs on the restored views
    for a, b in zip(eager.parameters(), stage.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad)


@pytest.mark.parametrize("offloaded", [(3,), (3, 5), pytest.param(None, id="planned")])
def test_an_offloading_plan_frees_what_the_model_says_on_cpu(offloaded):
    # On a CPU the host buffers are numpy's, outside the torch allocator measure() counts as the device's.
    import copy
    import dataclasses

    from kit.memory.execute import measure
    from kit.memory.host_link import HostLink
    from kit.memory.models import benchmark_chain
    from kit.memory.plan import budgets_between

    model, inputs = benchmark_chain("conv", batch=2)
    costs = Costs.from_profile(profile(copy.deepcopy(model), inputs, repeats=1))
    # Times from the bytes, not the clock: the plan must not depend on how loaded the machine was.
    costs = dataclasses.replace(costs, uf=costs.x * 1e-9, ub=costs.x * 2e-9)
    link = HostLink(1e15, 1e15, 1.0)
    chosen = plan(costs, int(budgets_between(costs, [0.3])[0]), "offload", link=link)
    assert chosen.offloaded == (3, 7, 12)
    candidate = chosen if offloaded is None else dataclasses.replace(chosen, offloaded=offloaded)
    kept = dataclasses.replace(chosen, offloaded=())
    peak, _ = simulate(costs, candidate.operations, link)
    result = measure(copy.deepcopy(model), candidate, inputs, repeats=1)
    assert result["peak"] == peak < simulate(costs, kept.operations)[0]
