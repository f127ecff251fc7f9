"""Adaptive ask/tell samplers: contract, loss-driven placement, exact densities for importance weighting."""

import json

import numpy as np
import pytest

from kit.sampling import BreedSampler, LossDensitySampler, Sampler, make_sampler
from kit.space import ParameterSpace

SPACE = ParameterSpace({"a": (0.0, 2.0), "b": (-1.0, 1.0)})
HOT = np.array([[1.8, 0.8]])  # the only point with a loss


def taught(cls, **options):
    sampler = cls(SPACE, seed=0, min_points=2, **options)
    sampler.tell(np.array([[0.2, -0.8], [1.0, 0.0], *HOT]), [0.01, 0.01, 1.0])
    return sampler


@pytest.mark.parametrize("name", ["breed", "loss_density"])
def test_made_by_name_follow_the_contract_and_stay_in_bounds(name):
    sampler = make_sampler(name, SPACE, seed=1)
    assert isinstance(sampler, Sampler)
    points = sampler.ask(20)  # before any loss: uniform draws
    SPACE.validate(points)
    assert sampler.densities == [1.0] * 20
    sampler.tell(points, np.linspace(0, 1, 20))
    SPACE.validate(sampler.ask(30))
    assert len(sampler.densities) == 50


@pytest.mark.parametrize(
    ("cls", "options"),
    [(BreedSampler, {"uniform_start": 0.2, "uniform_end": 0.2}), (LossDensitySampler, {"k": 2.0, "c": 0.1})],
)
def test_points_gather_where_the_loss_is(cls, options):
    points = taught(cls, **options).ask(400)
    near = np.abs(SPACE.unscale(points) - SPACE.unscale(HOT)).max(axis=1) < 0.25
    assert near.mean() > 0.5  # uniform draws would put 1/16 or less there


@pytest.mark.parametrize(
    ("cls", "options", "tolerance"),
    [
        (BreedSampler, {"uniform_start": 0.3, "uniform_end": 0.3}, 0.02),
        (LossDensitySampler, {"k": 1.0, "c": 0.5, "pool": 1024}, 0.03),
    ],
)
def test_importance_weights_recover_the_uniform_mean(cls, options, tolerance):
    # E_uniform[f] = sum f(x_i) / q(x_i) / sum 1 / q(x_i) for points drawn from q: the densities are right.
    sampler = taught(cls, **options)
    points = sampler.ask(3000)
    u = SPACE.unscale(points)
    weights = 1.0 / np.array(sampler.densities)
    estimate = weights @ (u[:, 0] ** 2 + u[:, 1]) / weights.sum()
    assert abs(estimate - (1 / 3 + 1 / 2)) < tolerance
    assert abs((u[:, 0] ** 2 + u[:, 1]).mean() - 5 / 6) > 2 * tolerance  # unweighted, the bias is visible


def test_breed_density_integrates_to_one():
    sampler = taught(BreedSampler, uniform_start=0.0, uniform_end=0.0, sigma=0.05)
    grid = np.stack(np.meshgrid(*[np.linspace(0, 1, 401)] * 2), -1).reshape(-1, 2)
    densities = np.array([sampler._density(u, 0.0) for u in grid[::7]])
    assert abs(densities.mean() - 1.0) < 0.02


def test_breed_uniform_share_follows_its_schedule():
    sampler = BreedSampler(SPACE, seed=0, uniform_start=0.9, uniform_end=0.1, horizon=10, min_points=2)
    assert sampler.uniform_share() == 1.0  # no losses yet
    sampler.tell(HOT.repeat(2, 0) * [[1, 1], [0.5, 0.5]], [1.0, 2.0])
    assert sampler.uniform_share() == pytest.approx(0.9)
    sampler.ask(5)
    assert sampler.uniform_share() == pytest.approx(0.5)
    sampler.ask(20)
    assert sampler.uniform_share() == pytest.approx(0.1)


def test_recent_signal_is_a_moving_average_per_point():
    sampler = BreedSampler(SPACE, seed=0, signal="recent", decay=0.25)
    sampler.tell(np.repeat(HOT, 3, 0), [1.0, 2.0, 3.0])  # per-sample losses of one point: their mean
    sampler.tell(HOT, [6.0])
    assert sampler.n_known == 1 and sampler._losses[0] == pytest.approx(2.0 + 0.25 * (6.0 - 2.0))


def test_first_signal_scores_a_point_against_the_points_first_seen_before_it():
    sampler = BreedSampler(SPACE, seed=0, decay=0.5)
    sampler.tell([[0.1, 0.0], [0.2, 0.0]], [4.0, 4.0])  # early: every first loss is high; stage 4
    sampler.tell([[0.1, 0.0], [0.3, 0.0]], [0.1, 1.0])  # later losses of a known point are ignored
    stage = 4.0 + 0.5 * (1.0 - 4.0)
    np.testing.assert_allclose(sampler._losses, [1.0, 1.0, 1.0 / 4.0])  # against the stage before it
    assert sampler._stage == pytest.approx(stage)


@pytest.mark.parametrize("cls", [BreedSampler, LossDensitySampler])
def test_state_is_json_and_restores_the_following_asks(cls):
    sampler = taught(cls)
    sampler.ask(3)
    state = json.loads(json.dumps(sampler.state_dict()))
    restored = cls(SPACE, seed=123, min_points=2)
    restored.load_state_dict(state)
    np.testing.assert_array_equal(restored.ask(5), sampler.ask(5))
    assert restored.densities == sampler.densities


@pytest.mark.parametrize(
    ("cls", "options", "match"),
    [
        (BreedSampler, {"sigma": 0.0}, "sigma must be > 0"),
        (BreedSampler, {"uniform_end": 1.5}, r"uniform_end must be a share in \[0, 1\]"),
        (BreedSampler, {"decay": 0.0}, r"decay must be in \(0, 1\]"),
        (BreedSampler, {"signal": "best"}, "unknown signal 'best'; choose one of"),
        (LossDensitySampler, {"k": 0.0}, "k must be > 0"),
        (LossDensitySampler, {"c": -1.0}, "c must be >= 0"),
        (LossDensitySampler, {"bandwidth": 0.0}, "bandwidth must be > 0"),
    ],
)
def test_bad_options_name_the_option(cls, options, match):
    with pytest.raises(ValueError, match=match):
        cls(SPACE, seed=0, **options)


def test_bad_tell_names_the_argument():
    sampler = BreedSampler(SPACE, seed=0)
    with pytest.raises(ValueError, match="losses must have shape"):
        sampler.tell(HOT, [1.0, 2.0])
    with pytest.raises(ValueError, match="parameter 'a'"):
        sampler.tell([[5.0, 0.0]], [1.0])
