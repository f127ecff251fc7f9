import numpy as np
import pytest

from kit.space import ParameterSpace


@pytest.fixture
def space():
    return ParameterSpace({"a": (0.0, 1.0), "b": (-2.0, 2.0), "c": (10.0, 20.0)})


def test_names_bounds_and_salib_problem(space):
    assert space.names == ("a", "b", "c")
    assert space.dim == len(space) == 3
    np.testing.assert_array_equal(space.bounds, [[0, 1], [-2, 2], [10, 20]])
    assert space.to_salib() == {
        "num_vars": 3,
        "names": ["a", "b", "c"],
        "bounds": [[0.0, 1.0], [-2.0, 2.0], [10.0, 20.0]],
        "dists": ["unif", "unif", "unif"],
    }


def test_salib_problem_is_accepted_by_salib(space):
    from SALib.sample import latin

    samples = latin.sample(space.to_salib(), 16, seed=1)
    assert space.validate(samples).shape == (16, 3)


def test_validate_mapping_array_and_batch(space):
    np.testing.assert_array_equal(space.validate({"c": 15, "a": 0.5, "b": 0}), [0.5, 0.0, 15.0])
    assert space.validate(np.zeros((4, 3)) + [0.5, 0, 15]).shape == (4, 3)
    assert space.to_dict([1, 2, 20]) == {"a": 1.0, "b": 2.0, "c": 20.0}


@pytest.mark.parametrize(
    ("point", "match"),
    [
        ({"a": 1.5, "b": 0, "c": 15}, r"parameter 'a' = 1.5 is outside its bounds \[0, 1\]"),
        ([0.5, 0.0, 25.0], r"parameter 'c' = 25.0 is outside"),
        ({"a": 0.5, "b": 0, "c": 15, "d": 1}, r"unknown parameter\(s\) \['d'\]"),
        ({"a": 0.5, "b": 0}, r"missing parameter\(s\) \['c'\]"),
        ([0.5, np.nan, 15.0], r"parameter 'b' is not finite"),
        ([0.5, 0.0], r"expected shape \(3,\) or \(n, 3\)"),
        (["x", 0, 1], "parameters must be numbers"),
    ],
)
def test_bad_points_name_the_culprit(space, point, match):
    with pytest.raises(ValueError, match=match):
        space.validate(point)


@pytest.mark.parametrize(
    ("bounds", "dists", "match"),
    [
        ({"a": (1.0, 0.0)}, None, "parameter 'a': lower bound 1 must be below upper bound 0"),
        ({"a": (0.0, 0.0)}, None, "parameter 'a': lower bound"),
        ({"a": (0.0, np.inf)}, None, "parameter 'a': bounds must be finite"),
        ({"a": (0.0,)}, None, r"parameter 'a': bounds must be a pair"),
        ({"a": (0.0, 1.0)}, {"a": "cauchy"}, "parameter 'a': unknown distribution 'cauchy'"),
        ({"a": (0.0, 1.0)}, {"b": "norm"}, r"dists names unknown parameter\(s\) \['b'\]"),
        ({"a": (0.0, -1.0)}, {"a": "norm"}, "parameter 'a': norm takes"),
        ({}, None, "non-empty mapping"),
    ],
)
def test_invalid_bounds_name_the_parameter(bounds, dists, match):
    with pytest.raises(ValueError, match=match):
        ParameterSpace(bounds, dists)


def test_scale_maps_unit_cube_with_inverse_cdf():
    space = ParameterSpace({"u": (2.0, 4.0), "n": (1.0, 2.0)}, dists={"n": "norm"})
    out = space.scale(np.array([[0.0, 0.5], [1.0, 0.8413447460685429]]))
    np.testing.assert_allclose(out, [[2.0, 1.0], [4.0, 3.0]])
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        space.scale(np.array([[1.5, 0.5]]))


def test_normal_parameters_are_not_bounded():
    space = ParameterSpace({"n": (0.0, 1.0)}, dists={"n": "norm"})
    assert space.validate([5.0]).tolist() == [5.0]
    assert space.to_salib()["dists"] == ["norm"]


def test_equality_and_repr(space):
    assert space == ParameterSpace({"a": (0, 1), "b": (-2, 2), "c": (10, 20)})
    assert space != ParameterSpace({"a": (0, 1), "b": (-2, 2), "c": (10, 21)})
    assert repr(space) == "ParameterSpace({'a': (0, 1), 'b': (-2, 2), 'c': (10, 20)})"
