"""Sobol' maps assembled from pick-freeze simulations streamed in any order (kit.sensitivity.FieldSobol)."""

import numpy as np
import pytest

from kit.sampling import PickFreezeSampler, pick_freeze
from kit.sensitivity import FieldSobol, IterativeSobol
from kit.simulators import Heat2D

D, SHAPE, STEPS = 3, (2, 3), (1, 4)


def stream(n_groups, seed=0):
    """(point, step, field) for n_groups pick-freeze groups of a nonlinear field model, in a shuffled order."""
    rng = np.random.default_rng(seed)
    x = rng.random((n_groups, D + 2, D))
    base = np.arange(np.prod(SHAPE)).reshape(SHAPE)
    outputs = {
        step: np.sin(step * x[..., :1, None] + base)
        + x[..., 1:2, None] ** 2 * base
        + x[..., 2:3, None] * x[..., :1, None]
        for step in STEPS
    }
    items = [
        (g * (D + 2) + r, step, outputs[step][g, r]) for g in range(n_groups) for r in range(D + 2) for step in STEPS
    ]
    order = rng.permutation(len(items))
    return [items[i] for i in order], outputs


def test_any_arrival_order_gives_the_batch_indices_of_every_step():
    items, outputs = stream(40)
    maps = FieldSobol(D, SHAPE, STEPS)
    for point, step, field in items:
        maps.add(point, step, field)
    assert maps.n_groups == 40 and maps.pending == 0
    for step in STEPS:
        batch = IterativeSobol(D, SHAPE)
        batch.update(outputs[step])
        np.testing.assert_allclose(maps.sobols[step].first_order, batch.first_order, atol=1e-10)
        np.testing.assert_allclose(maps.sobols[step].total_order, batch.total_order, atol=1e-10)


def test_steps_not_kept_are_ignored_and_memory_is_the_partial_groups_only():
    items, _ = stream(3)
    maps = FieldSobol(D, SHAPE, steps=[4])
    for point, step, field in items[: len(items) // 2]:
        maps.add(point, step, field)
    assert 0 < maps.pending <= 3
    assert all(values.shape == (1, D + 2, *SHAPE) for values, _, _ in maps._partial.values())


def test_every_map_comes_from_the_same_groups():
    items, _ = stream(3)
    maps = FieldSobol(D, SHAPE, STEPS)
    for point, step, field in items:
        if not (point // (D + 2) == 2 and step == 4):  # group 2 delivers step 1 only, then fails
            maps.add(point, step, field)
    maps.discard(2 * (D + 2))
    assert {sobol.n_groups for sobol in maps.sobols.values()} == {2} and maps.pending == 0


def test_a_discarded_simulation_drops_its_group_only():
    items, outputs = stream(10)
    maps = FieldSobol(D, SHAPE, STEPS)
    maps.discard(2 * (D + 2) + 1)  # row B of group 2 failed for good
    for point, step, field in items:
        maps.add(point, step, field)
    assert maps.n_groups == 9 and maps.discarded == {2} and maps.pending == 0
    kept = IterativeSobol(D, SHAPE)
    kept.update(np.delete(outputs[1], 2, axis=0))
    np.testing.assert_allclose(maps.sobols[1].first_order, kept.first_order, atol=1e-10)


def test_state_round_trip_mid_stream_continues_exactly():
    items, _ = stream(12)
    whole, first = FieldSobol(D, SHAPE, STEPS), FieldSobol(D, SHAPE, STEPS)
    half = len(items) // 2
    for point, step, field in items:
        whole.add(point, step, field)
    for point, step, field in items[:half]:
        first.add(point, step, field)
    second = FieldSobol(D, SHAPE, STEPS).load_state_dict(first.state_dict())
    assert second.pending == first.pending > 0
    for point, step, field in items[half:]:
        second.add(point, step, field)
    for step in STEPS:
        np.testing.assert_array_equal(second.sobols[step].total_order, whole.sobols[step].total_order)


def test_instances_fed_by_several_ranks_merge_into_the_indices_of_one():
    items, outputs = stream(20, seed=3)
    ranks = [FieldSobol(D, SHAPE, STEPS) for _ in range(3)]
    ranks[1].discard(5 * (D + 2))  # group 5 lost a row on rank 1
    for point, step, field in items:  # each simulation on the rank that ran it: its rows and steps split groups
        if point // (D + 2) != 5:
            ranks[point % 3].add(point, step, field)
    assert all(rank.pending for rank in ranks)
    merged = ranks[0].empty().merge(ranks[0]).merge(ranks[1]).merge(ranks[2])
    assert merged.n_groups == 19 and merged.pending == 0 and merged.discarded == {5}
    for step in STEPS:
        batch = IterativeSobol(D, SHAPE)
        batch.update(np.delete(outputs[step], 5, axis=0))
        np.testing.assert_allclose(merged.sobols[step].total_order, batch.total_order, atol=1e-10)
    with pytest.raises(ValueError, match="cannot merge: steps differs"):
        merged.merge(FieldSobol(D, SHAPE, [1]))


def test_a_simulation_that_delivered_every_kept_step_keeps_its_group_when_discarded():
    items, outputs = stream(2, seed=4)
    ranks = [FieldSobol(D, SHAPE, STEPS) for _ in range(2)]
    for point, step, field in items:  # row 1 of each group on rank 1, the others on rank 0
        ranks[int(point % (D + 2) == 1)].add(point, step, field)
    ranks[1].discard(1)  # row 1 of group 0 cancelled once its kept steps were in: its group stays
    ranks[0].discard(2)  # row 2 of group 0 too, on the other rank
    merged = ranks[0].empty().merge(ranks[0]).merge(ranks[1])
    assert merged.n_groups == 2 and merged.discarded == set()
    batch = IterativeSobol(D, SHAPE)
    batch.update(outputs[4])
    np.testing.assert_allclose(merged.sobols[4].total_order, batch.total_order, atol=1e-10)


def test_scalar_quantities_get_their_own_indices():
    items, outputs = stream(30)
    maps = FieldSobol(D, SHAPE, STEPS, quantities={"corner": lambda step, field: field[0, 0] * step})
    for point, step, field in items:
        maps.add(point, step, field)
    scalar = IterativeSobol(D)
    scalar.update(outputs[4][:, :, 0, 0] * 4)
    data = maps.to_dataset(["a", "b", "c"], times=[0.5, 2.0], dims=("y", "x"))
    np.testing.assert_allclose(data.S1_corner.sel(step=4), scalar.first_order, atol=1e-10)
    np.testing.assert_allclose(data.S1.sel(step=4, y=0, x=0), scalar.first_order, atol=1e-10)
    assert data.S1.dims == ("step", "parameter", "y", "x") and list(data.time.values) == [0.5, 2.0]
    assert data.attrs["n_groups"] == 30 and data.attrs["quantities"] == ["corner"]


def test_heat_maps_converge_to_the_exact_indices_of_a_linear_model():
    # The heat solution is affine in its five temperatures, T = sum_k c_k p_k, with independent uniform
    # parameters of equal range: per cell S_k = ST_k = c_k^2 / sum_j c_j^2 exactly.
    sim = Heat2D(n=6, steps=3)
    exact = sim.exact_sobol_maps()  # (d, steps, ny, nx)
    middle = np.full(5, 300.0)
    base = sim.trajectory(middle).values
    coefficients = np.array([(sim.trajectory(middle + 100 * np.eye(5)[k]).values - base) / 100 for k in range(5)])
    np.testing.assert_allclose(exact, coefficients**2 / (coefficients**2).sum(axis=0), rtol=1e-8)
    rng = np.random.default_rng(0)
    point = sim.space.scale(rng.random((1, 5)))[0]
    np.testing.assert_allclose(sim.trajectory(point).values, np.tensordot(point, coefficients, 1), rtol=1e-10)
    n, d = 2048, 5
    groups = pick_freeze(sim.space, n, seed=1)  # fields from the affine form: exact, and cheap at n = 2048
    fields = np.tensordot(groups, coefficients, axes=([2], [0]))  # (n, d + 2, steps, ny, nx)
    maps = FieldSobol(d, (6, 6), steps=[1, 3])
    for g in range(n):
        for r in range(d + 2):
            for step in (1, 3):
                maps.add(g * (d + 2) + r, step, fields[g, r, step - 1])
    for step in (1, 3):
        np.testing.assert_allclose(maps.sobols[step].first_order, exact[:, step - 1], atol=0.05)
        np.testing.assert_allclose(maps.sobols[step].total_order, exact[:, step - 1], atol=0.05)


def test_pick_freeze_sampler_continues_the_design_across_asks_and_restores():
    sim = Heat2D(n=6, steps=3)
    design = pick_freeze(sim.space, 8, seed=3).reshape(-1, 5)
    sampler = PickFreezeSampler(sim.space, seed=3)
    np.testing.assert_array_equal(np.concatenate([sampler.ask(3), sampler.ask(10), sampler.ask(43)]), design)
    for cut in (0, 6, 7, 8, 20):
        first = PickFreezeSampler(sim.space, seed=3)
        first.ask(cut)
        restored = PickFreezeSampler(sim.space, seed=99)
        restored.load_state_dict(first.state_dict())
        np.testing.assert_array_equal(restored.ask(56 - cut), design[cut:])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda m: m.add(3, 1, np.zeros((3, 3))), r"simulation 3 at step 1 has shape \(3, 3\), not \(2, 3\)"),
        (lambda m: m.add(-1, 1, np.zeros(SHAPE)), "point must be a simulation index >= 0"),
        (lambda m: FieldSobol(D, SHAPE, steps=[0, 1]), "steps must be distinct 1-based"),
        (lambda m: FieldSobol(D, SHAPE, steps=[]), "steps must be distinct 1-based"),
        (lambda m: FieldSobol(D, SHAPE, STEPS, quantities={"field": len}), "quantity name 'field' is taken"),
        (lambda m: FieldSobol(D, SHAPE, STEPS).load_state_dict(FieldSobol(D, SHAPE, [1]).state_dict()), "steps="),
    ],
)
def test_bad_input_names_the_culprit(call, match):
    with pytest.raises(ValueError, match=match):
        call(FieldSobol(D, SHAPE, STEPS))


def test_a_quantity_must_be_callable():
    with pytest.raises(TypeError, match="quantity 'ssim' must be callable"):
        FieldSobol(D, SHAPE, STEPS, quantities={"ssim": 1.0})
