import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
from scipy import stats
from scipy.stats import qmc

from kit import sampling
from kit.sampling import (
    LHSSampler,
    RandomSampler,
    Sampler,
    SobolSampler,
    lhs,
    make_sampler,
    pick_freeze,
    random,
    sobol,
)
from kit.space import ParameterSpace

DESIGNS = {"random": random, "lhs": lhs, "sobol": sobol}


@pytest.fixture
def space():
    return ParameterSpace({"a": (0.0, 1.0), "b": (-2.0, 2.0), "c": (100.0, 500.0)})


@pytest.fixture
def unit():
    return ParameterSpace({"x": (0.0, 1.0), "y": (0.0, 1.0), "z": (0.0, 1.0)})


def to_unit(space, points):
    low, high = space.bounds.T
    return (points - low) / (high - low)


@pytest.mark.parametrize("name", DESIGNS)
def test_designs_have_shape_stay_in_bounds_and_repeat_by_seed(space, name):
    design = DESIGNS[name]
    points = design(space, 64, seed=3)
    assert points.shape == (64, 3)
    space.validate(points)
    np.testing.assert_array_equal(points, design(space, 64, seed=3))
    np.testing.assert_array_equal(points, design(space, 64, seed=np.random.default_rng(3)))
    assert not np.array_equal(points, design(space, 64, seed=4))


def test_lhs_puts_exactly_one_point_in_each_bin(space):
    n = 37
    bins = np.floor(to_unit(space, lhs(space, n, seed=1)) * n)
    for column in bins.T:
        np.testing.assert_array_equal(np.sort(column), np.arange(n))


def test_sobol_has_lower_discrepancy_than_random(unit):
    n = 256
    assert qmc.discrepancy(sobol(unit, n, seed=0)) < qmc.discrepancy(random(unit, n, seed=0)) / 3


def test_sobol_warns_at_the_caller_when_n_is_not_a_power_of_2(space):
    with pytest.warns(UserWarning, match=r"sobol: n=12 is not a power of 2.*use n=16 or n=8") as record:
        sobol(space, 12, seed=0)
    assert len(record) == 1 and record[0].filename == __file__
    with pytest.warns(UserWarning, match="pick_freeze: n=3") as record:
        pick_freeze(space, 3, seed=0)
    assert len(record) == 1 and record[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sobol(space, 16, seed=0)
        pick_freeze(space, 3, seed=0, base="random")
        SobolSampler(space, seed=0).ask(3)


def test_sobol_points_sit_at_the_centre_of_their_cells(unit):
    points = sobol(unit, 64, seed=0)
    np.testing.assert_array_equal((points * 2**30) % 1, 0.5)
    assert points.min() > 0 and points.max() < 1


def test_sobol_never_returns_an_infinite_normal_value():
    space = ParameterSpace({"t": (300.0, 20.0)}, dists={"t": "norm"})
    points = sobol(space, 1024, seed=0)
    assert np.isfinite(points).all()
    assert points.mean() == pytest.approx(300.0, abs=1.0) and points.std() == pytest.approx(20.0, rel=0.02)


@pytest.mark.parametrize("base", ["sobol", "lhs", "random"])
def test_pick_freeze_rows_are_a_b_and_a_with_one_column_from_b(space, base):
    groups = pick_freeze(space, 16, seed=5, base=base)
    assert groups.shape == (16, 5, 3)
    space.validate(groups.reshape(-1, 3))
    a, b = groups[:, 0], groups[:, 1]
    assert not np.isclose(a, b).any()
    for k in range(3):
        expected = a.copy()
        expected[:, k] = b[:, k]
        np.testing.assert_array_equal(groups[:, 2 + k], expected)
    np.testing.assert_array_equal(groups, pick_freeze(space, 16, seed=5, base=base))


def test_pick_freeze_a_and_b_are_halves_of_one_design(unit):
    groups = pick_freeze(unit, 32, seed=2)
    design = sobol(ParameterSpace({f"u{i}": (0.0, 1.0) for i in range(6)}), 32, seed=2)
    np.testing.assert_allclose(groups[:, 0], design[:, :3])
    np.testing.assert_allclose(groups[:, 1], design[:, 3:])


def test_pick_freeze_maps_through_a_normal_parameter(unit):
    normal = ParameterSpace(
        {"x": (0.0, 1.0), "y": (10.0, 2.0), "z": (0.0, 1.0)},
        dists={"y": "norm"},
    )
    groups = pick_freeze(normal, 64, seed=4)
    reference = pick_freeze(unit, 64, seed=4)
    np.testing.assert_allclose(groups[..., 1], stats.norm(10.0, 2.0).ppf(reference[..., 1]))
    np.testing.assert_array_equal(groups[..., [0, 2]], reference[..., [0, 2]])
    assert np.isfinite(groups).all()


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda s: random(s, 0), r"n must be an int >= 1, got 0"),
        (lambda s: lhs(s, 2.5), r"n must be an int >= 1, got 2.5"),
        (lambda s: sobol(s, True), r"n must be an int >= 1, got True"),
        (lambda s: pick_freeze(s, 8, base="halton"), r"unknown base design 'halton'; choose one of \['lhs', 'random'"),
        (lambda s: LHSSampler(s, block=0), r"block must be an int >= 1, got 0"),
        (lambda s: RandomSampler(s).ask(-1), r"n must be an int >= 0, got -1"),
    ],
)
def test_bad_arguments_are_named(space, call, match):
    with pytest.raises(ValueError, match=match):
        call(space)


def test_designs_and_samplers_need_a_parameter_space():
    with pytest.raises(TypeError, match="space must be a kit.space.ParameterSpace, got dict"):
        sobol({"a": (0, 1)}, 8)
    with pytest.raises(TypeError, match="got dict"):
        SobolSampler({"a": (0, 1)})


def test_samplers_follow_the_protocol_and_the_registry(space):
    for name, cls in [("random", RandomSampler), ("lhs", LHSSampler), ("sobol", SobolSampler)]:
        sampler = make_sampler(name, space, seed=0)
        assert isinstance(sampler, cls) and isinstance(sampler, Sampler)
        assert sampler.space is space
        assert sampler.ask().shape == (1, 3) and sampler.ask(0).shape == (0, 3)
        space.validate(sampler.ask(5))
    assert make_sampler("lhs", space, block=8).block == 8


def test_registry_miss_lists_the_valid_names(space):
    names = r"\['breed', 'lhs', 'loss_density', 'pick_freeze', 'random', 'sobol'\]"
    with pytest.raises(ValueError, match=rf"unknown sampler 'best'; choose one of {names}"):
        make_sampler("best", space)


def test_sobol_sampler_continues_one_sequence(space):
    sampler = SobolSampler(space, seed=9)
    asked = np.concatenate([sampler.ask(4), sampler.ask(4), sampler.ask(1), sampler.ask(7)])
    np.testing.assert_array_equal(asked, SobolSampler(space, seed=9).ask(16))
    np.testing.assert_array_equal(asked, sobol(space, 16, seed=9))


def test_samplers_match_their_design_function(space):
    np.testing.assert_array_equal(RandomSampler(space, seed=2).ask(10), random(space, 10, seed=2))
    np.testing.assert_array_equal(LHSSampler(space, seed=2, block=10).ask(10), lhs(space, 10, seed=2))
    sampler = RandomSampler(space, seed=2)
    np.testing.assert_array_equal(np.concatenate([sampler.ask(3), sampler.ask(7)]), random(space, 10, seed=2))


def test_lhs_sampler_stratifies_each_block_whatever_the_asks(space):
    block = 8
    sampler = LHSSampler(space, seed=6, block=block)
    points = np.concatenate([sampler.ask(3), sampler.ask(9), sampler.ask(4)])
    for start in (0, block):
        bins = np.floor(to_unit(space, points[start : start + block]) * block)
        for column in bins.T:
            np.testing.assert_array_equal(np.sort(column), np.arange(block))


@pytest.mark.parametrize("name", ["random", "lhs", "sobol"])
def test_state_dict_round_trip_through_json_restores_the_asks(space, name):
    options = {"block": 8} if name == "lhs" else {}
    sampler = make_sampler(name, space, seed=11, **options)
    sampler.ask(5)
    state = json.loads(json.dumps(sampler.state_dict()))
    expected = np.concatenate([sampler.ask(3), sampler.ask(12)])
    restored = make_sampler(name, space, seed=999, **({"block": 3} if name == "lhs" else {}))
    restored.load_state_dict(state)
    np.testing.assert_array_equal(np.concatenate([restored.ask(3), restored.ask(12)]), expected)


def test_load_state_dict_leaves_a_shared_generator_alone(space):
    generator = np.random.default_rng(0)
    sampler = RandomSampler(space, seed=generator)
    state = sampler.state_dict()
    before = generator.bit_generator.state
    RandomSampler(space, seed=generator).load_state_dict(state)
    assert generator.bit_generator.state == before


def test_state_from_another_sampler_or_space_is_refused(space, unit):
    with pytest.raises(ValueError, match="state is for sampler 'SobolSampler', this sampler has 'RandomSampler'"):
        RandomSampler(space).load_state_dict(SobolSampler(space).state_dict())
    with pytest.raises(ValueError, match=r"state is for names \['a', 'b', 'c'\], this sampler has \['x', 'y', 'z'\]"):
        SobolSampler(unit).load_state_dict(SobolSampler(space).state_dict())


@pytest.mark.parametrize("name", ["random", "lhs", "sobol"])
@pytest.mark.parametrize(
    ("params", "losses", "match"),
    [
        (np.zeros(3), np.zeros(1), r"params must have shape \(m, 3\) for parameters \['a', 'b', 'c'\], got \(3,\)"),
        (np.zeros((2, 2)), np.zeros(2), r"params must have shape \(m, 3\).*got \(2, 2\)"),
        (np.zeros((2, 3)), np.zeros((2, 1)), r"losses must have shape \(m,\) = \(2,\) to match params, got \(2, 1\)"),
        (np.zeros((2, 3)), np.zeros(3), r"losses must have shape \(m,\) = \(2,\)"),
        ([[0.5, 0.0, 900.0]], [1.0], r"parameter 'c' = 900.0 is outside its bounds"),
        ([["x", 0, 1]], [1.0], "params must be numbers"),
    ],
)
def test_tell_with_wrong_shapes_names_the_argument(space, name, params, losses, match):
    with pytest.raises(ValueError, match=match):
        make_sampler(name, space, seed=0).tell(params, losses)


def test_tell_is_ignored_by_non_adaptive_samplers(space):
    sampler, twin = SobolSampler(space, seed=1), SobolSampler(space, seed=1)
    points = sampler.ask(4)
    sampler.tell(points, np.arange(4.0))
    twin.ask(4)
    np.testing.assert_array_equal(sampler.ask(4), twin.ask(4))


def test_import_kit_sampling_stays_light():
    code = (
        "import sys, kit.sampling;"
        "heavy = ('torch', 'matplotlib', 'dask', 'distributed', 'xarray', 'scipy.stats');"
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "", f"importing kit.sampling loaded {loaded}"
    assert set(sampling.__all__) == {
        "random",
        "lhs",
        "sobol",
        "pick_freeze",
        "Sampler",
        "RandomSampler",
        "FixedSampler",
        "LHSSampler",
        "SobolSampler",
        "PickFreezeSampler",
        "BreedSampler",
        "LossDensitySampler",
        "make_sampler",
    }


def test_fixed_sampler_gives_its_points_in_order_and_resumes():
    from kit.sampling import FixedSampler

    space = ParameterSpace({"a": (0.0, 1.0), "b": (0.0, 1.0)})
    sampler = FixedSampler(space, [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]])
    np.testing.assert_array_equal(sampler.ask(2), [[0.1, 0.2], [0.3, 0.4]])
    state = sampler.state_dict()
    with pytest.raises(ValueError, match="FixedSampler has 3 points; 2 were asked already, not 2 more"):
        sampler.ask(2)
    resumed = FixedSampler(space, sampler.points)
    resumed.load_state_dict(state)
    np.testing.assert_array_equal(resumed.ask(1), [[0.5, 0.6]])
    with pytest.raises(ValueError, match="parameter 'b' = 1.5 is outside"):
        FixedSampler(space, [[0.1, 1.5]])
