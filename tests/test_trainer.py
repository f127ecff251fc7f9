"""Encoding, surrogates, the trainer's per-sample losses and the offline baseline, against eager torch."""

import numpy as np
import pytest
import torch

from kit.online.offline import simulate_dataset, train_offline
from kit.online.surrogates import make_surrogate
from kit.online.trainer import Encoding, Trainer, seeded_model
from kit.simulators import Heat2D
from kit.space import ParameterSpace


def test_encoding_maps_bounds_to_unit_interval_and_fields_back():
    space = ParameterSpace({"a": (100.0, 500.0), "b": (1.0, 0.5), "c": (0.0, 1.0)}, dists={"b": "norm", "c": "lognorm"})
    encoding = Encoding(space, t_end=2.0, offset=300.0, scale=200.0)
    x = encoding.inputs([500.0, 1.5, np.e], [0.0, 1.0])
    np.testing.assert_allclose(x, [[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 0.5]])
    fields = np.array([[100.0, 500.0]])
    np.testing.assert_allclose(encoding.targets(fields), [[-1.0, 1.0]])
    np.testing.assert_allclose(encoding.fields(encoding.targets(fields)), fields)


@pytest.mark.parametrize("name", ["mlp", "conv"])
def test_surrogates_map_inputs_to_fields(name):
    model = make_surrogate(name, 6, (12, 10))
    assert model(torch.zeros(3, 6)).shape == (3, 12, 10)
    with pytest.raises(ValueError, match=r"unknown surrogate 'gnn'; choose one of \['conv', 'mlp'\]"):
        make_surrogate("gnn", 6, (12, 10))


def test_trainer_step_returns_per_sample_losses_and_matches_an_eager_step():
    x = np.random.default_rng(0).random((4, 6)).astype(np.float32)
    y = np.random.default_rng(1).random((4, 8, 8)).astype(np.float32)
    ours = Trainer(seeded_model(lambda: make_surrogate("mlp", 6, (8, 8), width=16), 3), lr=1e-2)
    eager = seeded_model(lambda: make_surrogate("mlp", 6, (8, 8), width=16), 3)
    optimizer = torch.optim.Adam(eager.parameters(), lr=1e-2)
    losses = ours.step(x, y)
    expected = ((eager(torch.from_numpy(x)) - torch.from_numpy(y)) ** 2).mean(dim=(1, 2))
    np.testing.assert_allclose(losses, expected.detach().numpy(), rtol=1e-6)
    expected.mean().backward()
    optimizer.step()
    for mine, theirs in zip(ours.model.parameters(), eager.parameters(), strict=True):
        torch.testing.assert_close(mine, theirs)
    np.testing.assert_allclose(ours.predict(x), eager(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_offline_training_is_reproducible_and_learns():
    sim = Heat2D(n=8, steps=5)
    encoding = Encoding(sim.space, sim.t_end, offset=300.0, scale=200.0)
    x, y = simulate_dataset(sim, [[300.0, 500.0, 100.0, 100.0, 100.0], [100.0, 100.0, 500.0, 500.0, 100.0]], encoding)
    assert x.shape == (10, 6) and y.shape == (10, 8, 8)

    def train():
        trainer = Trainer(seeded_model(lambda: make_surrogate("mlp", 6, (8, 8), width=32), 0), lr=1e-2)
        before = float(((trainer.predict(x) - y) ** 2).mean())
        train_offline(trainer, x, y, batches=60, batch_size=4, seed=1)
        return before, trainer.predict(x)

    before, first = train()
    _, second = train()
    np.testing.assert_array_equal(first, second)
    assert float(((first - y) ** 2).mean()) < before / 4
    # The error on the stored simulations (as a ValidationSet of the same points and seeds) is the RMSE of
    # the trained model on (x, y), in the field's units.
    from kit.online import ValidationSet
    from kit.seeding import simulation_seed

    points = [[300.0, 500.0, 100.0, 100.0, 100.0], [100.0, 100.0, 500.0, 500.0, 100.0]]
    stored = ValidationSet.at(sim, points, [simulation_seed(1, i) for i in range(2)])
    x, y = simulate_dataset(sim, points, encoding, seed=1)
    trainer = Trainer(seeded_model(lambda: make_surrogate("mlp", 6, (8, 8), width=32), 0), lr=1e-2)
    rows = train_offline(trainer, x, y, batches=20, batch_size=4, seed=1, validation=stored, encoding=encoding,
                         validate_every=10, stored=stored)  # fmt: skip
    by_hand = np.sqrt(((encoding.fields(trainer.predict(x)) - encoding.fields(y)) ** 2).reshape(10, -1).mean(-1))
    assert [row["batch"] for row in rows] == [10, 20]
    assert rows[-1]["train_mean"] == pytest.approx(by_hand.mean(), rel=1e-4)
    with pytest.raises(ValueError, match="batch_size 20 exceeds the 10 stored samples"):
        train_offline(Trainer(make_surrogate("mlp", 6, (8, 8))), x, y, batches=1, batch_size=20)
