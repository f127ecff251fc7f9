"""The SALib benchmark of kit.sensitivity.benchmark: structure, exactness of the ST relation, no timing asserts."""

import tracemalloc

import numpy as np
import pytest

from kit.sensitivity.benchmark import ishigami_field, ishigami_field_coefficients, salib_benchmark
from kit.simulators import Ishigami


@pytest.fixture(scope="module")
def data():
    return salib_benchmark([64, 1024], shape=(4, 4), seed=1, batch_size=48, num_resamples=[100, 2], progress=False)


def test_dataset_structure_and_units(data):
    assert dict(data.sizes) == {"groups": 2, "num_resamples": 2}
    assert data.groups.values.tolist() == [64, 1024] and data.num_resamples.values.tolist() == [100, 2]
    expected = {
        "time_iterative": ("groups",),
        "time_salib": ("groups", "num_resamples"),
        "peak_iterative": ("groups",),
        "peak_salib": ("groups", "num_resamples"),
        "time_ratio": ("groups", "num_resamples"),
        "memory_ratio": ("groups", "num_resamples"),
        "stored_salib": ("groups",),
        "max_index_difference": ("groups",),
        "max_error_iterative": ("groups",),
        "max_error_salib": ("groups",),
    }
    assert {name: data[name].dims for name in data.data_vars} == expected
    assert data.time_salib.attrs["units"] == "s" and data.peak_iterative.attrs["units"] == "bytes"
    assert data.time_ratio.attrs["units"] == "1"
    assert data.attrs["shape"] == [4, 4] and data.attrs["cells"] == 16 and data.attrs["salib_time_extrapolated"] == 0
    assert data.attrs["salib_version"] and data.attrs["estimator"] == "jansen"


def test_ratios_positive_finite_and_memory_accounting(data):
    for name in ("time_ratio", "memory_ratio", "time_iterative", "time_salib"):
        assert np.isfinite(data[name]).all() and (data[name] > 0).all(), name
    np.testing.assert_allclose(data.time_ratio, data.time_salib / data.time_iterative)
    np.testing.assert_allclose(data.memory_ratio, data.peak_salib / data.peak_iterative)
    # SALib keeps n (d + 2) outputs per cell, 8 bytes each, and needs more than that at its peak
    assert data.stored_salib.values.tolist() == [64 * 5 * 16 * 8, 1024 * 5 * 16 * 8]
    assert (data.peak_salib > data.stored_salib).all()
    # kit holds at least its accumulators: (d + 2) means and M2, 2 d co-moments, per cell
    assert (data.peak_iterative >= (2 * 5 + 2 * 3) * 16 * 8).all()


def test_total_indices_agree_exactly_and_both_approach_the_exact_ones(data):
    assert (data.max_index_difference < 1e-12).all()  # ST_kit = ST_SALib (2n - 1) / (2n), to rounding
    # at 1024 groups both estimators are within 0.03 of the exact S1 and ST of every cell (0.009 and 0.014 seen)
    assert float(data.max_error_iterative[-1]) < 0.03 and float(data.max_error_salib[-1]) < 0.03


def test_salib_timed_on_a_subset_of_cells_is_extrapolated():
    data = salib_benchmark([64], shape=(4, 5), seed=0, num_resamples=[2], salib_cells=3, progress=False)
    assert data.attrs["salib_cells_timed"] == 3 and data.attrs["salib_time_extrapolated"] == 1
    assert data.stored_salib.item() == 64 * 5 * 20 * 8  # storage still counts every cell
    assert data.max_index_difference.item() < 1e-12
    assert np.isfinite(data.time_ratio).all()


def test_same_seed_gives_the_same_deterministic_variables():
    kwargs = {"shape": (3, 3), "seed": 2, "num_resamples": [2], "progress": False}
    first, second = salib_benchmark([64], **kwargs), salib_benchmark([64], **kwargs)
    for name in ("max_index_difference", "max_error_iterative", "max_error_salib", "stored_salib"):
        np.testing.assert_array_equal(first[name], second[name])


def test_field_model_is_ishigami_per_cell():
    a, b = ishigami_field_coefficients((3, 4))
    assert a[0].tolist() == a[-1].tolist() and a[0, 0] == 2.0 and a[0, -1] == 9.0
    assert b[0, 0] == pytest.approx(0.02) and b[-1, 0] == pytest.approx(0.2)
    points = np.random.default_rng(0).uniform(-np.pi, np.pi, size=(5, 3))
    field = ishigami_field(points, a, b)
    assert field.shape == (5, 3, 4)
    np.testing.assert_allclose(field[:, 2, 1], Ishigami(a[2, 1], b[2, 1]).evaluate(points), rtol=1e-14)


def test_tracemalloc_sees_numpy_buffers():
    """The benchmark's memory figures rely on numpy reporting its array buffers to tracemalloc."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        array = np.ones(10**6)
        assert tracemalloc.get_traced_memory()[0] - before >= array.nbytes
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sizes": []}, "sizes must hold at least one"),
        ({"sizes": [2]}, "sizes: expected an int >= 4"),
        ({"sizes": [64], "shape": (16,)}, r"shape must be 2D \(ny, nx\)"),
        ({"sizes": [64], "num_resamples": [1]}, "num_resamples: expected an int >= 2"),
        ({"sizes": [64], "repeats": 0}, "repeats: expected an int >= 1"),
        ({"sizes": [64], "salib_cells": 0}, "salib_cells: expected an int >= 1"),
    ],
)
def test_bad_arguments_name_the_culprit(kwargs, match):
    with pytest.raises(ValueError, match=match):
        salib_benchmark(**{"shape": (4, 4), "progress": False, **kwargs})


def test_plot_has_time_and_memory_panels(data):
    from matplotlib.figure import Figure

    import kit.plots

    figure = kit.plots.salib_benchmark(data)
    assert isinstance(figure, Figure) and len(figure.axes) == 2
    assert all(ax.get_xscale() == "log" and ax.get_yscale() == "log" for ax in figure.axes)
