import numpy as np
import pytest

from kit.seeding import rng, simulation_seed


def test_simulation_seed_depends_only_on_study_seed_and_id():
    seeds = [simulation_seed(42, i) for i in range(100)]
    assert seeds == [simulation_seed(42, i) for i in range(100)]
    assert len(set(seeds)) == 100
    assert simulation_seed(43, 0) != simulation_seed(42, 0)
    expected = int(np.random.SeedSequence(42, spawn_key=(7,)).generate_state(1, dtype=np.uint64)[0])
    assert simulation_seed(42, 7) == expected


def test_rng_normalises_seeds():
    assert rng(3).random() == np.random.default_rng(3).random()
    generator = np.random.default_rng(0)
    assert rng(generator) is generator
    assert rng(np.random.SeedSequence(5)).random() == np.random.default_rng(np.random.SeedSequence(5)).random()


@pytest.mark.parametrize("bad", [-1, 1.5, "1", True])
def test_bad_seeds_are_rejected(bad):
    with pytest.raises((TypeError, ValueError), match="seed"):
        rng(bad)


@pytest.mark.parametrize(("study", "sim"), [(-1, 0), (0, -2), (1.0, 0), (0, True)])
def test_bad_simulation_seed_arguments(study, sim):
    with pytest.raises(ValueError, match="study_seed|simulation_id"):
        simulation_seed(study, sim)
