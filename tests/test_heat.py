"""Tests of :class:`kit.simulators.Heat2D` (2D heat equation, backward Euler, Dirichlet walls).

The sine mode ``u0 = sin(pi x) sin(pi y)`` with zero walls has the continuum solution
``exp(-2 alpha pi^2 t) u0``; the discrete one is ``u0 (1 + dt alpha lam_h)^-k`` with
``lam_h = (8 / h^2) sin^2(pi h / 2)``. Max-norm errors against the continuum solution measured here
(alpha = 1):

Space, ``t_end = 0.05``, ``dt = h^2 / 40`` (``steps = 2 (n+1)^2``, so the spatial error dominates):

====  =====  ======  =========  =====
 n     h     steps   max error  order
====  =====  ======  =========  =====
  7   1/8      128   6.128e-03    -
 15   1/16     512   1.535e-03  1.997
 31   1/32    2048   3.840e-04  1.999
 63   1/64    8192   9.602e-05  2.000
====  =====  ======  =========  =====

Time, ``n = 63``, ``t_end = 0.1``:

=====  =========  =====
steps  max error  order
=====  =========  =====
  10   2.620e-02    -
  20   1.336e-02  0.972
  40   6.763e-03  0.982
  80   3.423e-03  0.982
 160   1.743e-03  0.974
=====  =========  =====
"""

import inspect
import itertools
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from kit.simulators import Heat2D, Step
from kit.space import ParameterSpace

ZERO_WALLS = {"left": 0.0, "right": 0.0, "top": 0.0, "bottom": 0.0}
PARAMS = {"initial": 300.0, "left": 450.0, "right": 150.0, "top": 200.0, "bottom": 400.0}


def sine_mode(sim: Heat2D) -> np.ndarray:
    return np.outer(np.sin(np.pi * sim.y), np.sin(np.pi * sim.x))


def sine_error(n: int, steps: int, t_end: float) -> float:
    """Max error at ``t_end`` of the sine mode against the continuum solution."""
    sim = Heat2D(n=n, steps=steps, t_end=t_end)
    u0 = sine_mode(sim)
    *_, last = sim._march(u0, ZERO_WALLS)
    return float(np.abs(last.field - math.exp(-2 * math.pi**2 * t_end) * u0).max())


def observed_orders(errors: list[float]) -> np.ndarray:
    """Orders between successive errors when the step (h or dt) halves."""
    return np.log2(np.array(errors[:-1]) / np.array(errors[1:]))


def test_space_is_melissa_heat_parameters():
    sim = Heat2D()
    assert sim.space == ParameterSpace({name: (100.0, 500.0) for name in ("initial", "left", "right", "top", "bottom")})
    assert sim.x.shape == sim.y.shape == (64,)
    np.testing.assert_allclose(sim.x, np.arange(1, 65) / 65)


def test_sine_mode_is_exact_discrete_eigenmode():
    alpha, n, steps, t_end = 0.7, 15, 400, 0.2
    sim = Heat2D(n=n, steps=steps, t_end=t_end, alpha=alpha)
    u0 = sine_mode(sim)
    lam_h = 8 / sim.h**2 * math.sin(math.pi * sim.h / 2) ** 2
    for step in sim._march(u0, ZERO_WALLS):
        expected = u0 * (1 + sim.dt * alpha * lam_h) ** -step.index
        np.testing.assert_allclose(step.field, expected, rtol=1e-12, atol=1e-12 * np.abs(expected).max())
    continuum = math.exp(-2 * alpha * math.pi**2 * t_end) * u0
    assert np.abs(step.field - continuum).max() < 0.02 * np.abs(continuum).max()


def test_spatial_order_is_two():
    # dt = h^2 / 40 keeps the time error below the space error, both O(h^2).
    errors = [sine_error(n, steps=2 * (n + 1) ** 2, t_end=0.05) for n in (7, 15, 31, 63)]
    orders = observed_orders(errors)
    assert np.all((orders > 1.8) & (orders < 2.2)), (errors, orders)


def test_temporal_order_is_one():
    errors = [sine_error(63, steps=steps, t_end=0.1) for steps in (10, 20, 40, 80, 160)]
    orders = observed_orders(errors)
    assert np.all((orders > 0.9) & (orders < 1.1)), (errors, orders)


def test_uniform_temperature_is_steady():
    sim = Heat2D(n=12, steps=20)
    for step in sim.run(dict.fromkeys(PARAMS, 321.0)):
        np.testing.assert_allclose(step.field, 321.0, rtol=1e-12)


def test_long_time_approaches_wall_temperature():
    sim = Heat2D(n=16, steps=100, t_end=2.0)
    *_, last = sim.run({"initial": 500.0, "left": 150.0, "right": 150.0, "top": 150.0, "bottom": 150.0})
    np.testing.assert_allclose(last.field, 150.0, atol=1e-6)


def test_walls_are_on_the_right_sides():
    sim = Heat2D(n=9, steps=5, t_end=0.01)
    *_, last = sim.run(PARAMS)
    field = last.field  # field[iy, ix]
    assert field[:, 0].mean() > field[:, -1].mean()  # left 450 K > right 150 K
    assert field[0, :].mean() > field[-1, :].mean()  # bottom (y=0) 400 K > top 200 K


def test_mirror_symmetry():
    sim = Heat2D(n=10, steps=15)
    for step in sim.run({"initial": 120.0, "left": 480.0, "right": 480.0, "top": 250.0, "bottom": 250.0}):
        np.testing.assert_allclose(step.field, step.field[:, ::-1], rtol=1e-12)
        np.testing.assert_allclose(step.field, step.field[::-1, :], rtol=1e-12)


def test_maximum_principle():
    sim = Heat2D(n=10, steps=30, t_end=0.5)
    for point in sim.space.scale(np.random.default_rng(0).random((5, sim.space.dim))):
        low, high = point.min(), point.max()
        for step in sim.run(point):
            assert low - 1e-9 <= step.field.min() and step.field.max() <= high + 1e-9


def test_run_is_lazy():
    sim = Heat2D(n=8, steps=10**9)
    steps = sim.run(PARAMS)
    assert inspect.isgenerator(steps)
    start = time.perf_counter()
    first = next(steps)
    assert time.perf_counter() - start < 5.0
    assert isinstance(first, Step) and first.index == 1 and first.time == pytest.approx(sim.dt)


def test_run_yields_every_step_once_with_fresh_fields():
    sim = Heat2D(n=8, steps=7, t_end=0.35)
    steps = list(sim.run(PARAMS))
    assert [s.index for s in steps] == list(range(1, 8))
    np.testing.assert_allclose([s.time for s in steps], 0.05 * np.arange(1, 8), rtol=1e-12)
    assert all(s.field.shape == (8, 8) for s in steps)
    assert not any(np.shares_memory(a.field, b.field) for a, b in itertools.pairwise(steps))
    # Changing a yielded field does not change the simulation.
    run = sim.run(PARAMS)
    next(run).field[:] = 0.0
    np.testing.assert_array_equal(next(run).field, steps[1].field)


def test_run_accepts_array_and_ignores_seed():
    sim = Heat2D(n=6, steps=3)
    by_name = [s.field for s in sim.run(PARAMS, seed=1)]
    by_order = [s.field for s in sim.run([PARAMS[name] for name in sim.space.names], seed=2)]
    np.testing.assert_array_equal(by_name, by_order)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({**PARAMS, "left": 50.0}, "'left'"),
        ({**PARAMS, "top": 600.0}, "'top'"),
        ({**PARAMS, "colour": 1.0}, "colour"),
        ({k: v for k, v in PARAMS.items() if k != "bottom"}, "bottom"),
        ([300.0, 300.0], r"\(5,\)"),
        ([[300.0] * 5] * 2, "one point"),
    ],
)
def test_bad_params_raise_at_call(params, match):
    with pytest.raises(ValueError, match=match):
        Heat2D(n=4, steps=2).run(params)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 1}, "n must be an int >= 3, got 1"),
        ({"n": 8.0}, "n must be an int >= 3, got 8.0"),
        ({"n": True}, "n must be an int >= 3, got True"),
        ({"steps": 0}, "steps must be an int >= 1, got 0"),
        ({"t_end": -1}, "t_end must be a finite number > 0, got -1"),
        ({"t_end": float("inf")}, "t_end must be a finite number > 0, got inf"),
        ({"alpha": 0.0}, "alpha must be a finite number > 0, got 0.0"),
        ({"alpha": "1"}, "alpha must be a finite number > 0, got '1'"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Heat2D(**kwargs)


def test_trajectory_stacks_run():
    sim = Heat2D(n=6, steps=4, t_end=0.2)
    da = sim.trajectory(PARAMS)
    assert da.dims == ("time", "y", "x") and da.shape == (4, 6, 6)
    assert da.name == "temperature" and da.attrs["units"] == "K"
    np.testing.assert_allclose(da["time"], 0.05 * np.arange(1, 5), rtol=1e-12)
    np.testing.assert_array_equal(da["x"], sim.x)
    np.testing.assert_array_equal(da["y"], sim.y)
    np.testing.assert_array_equal(da.values, np.stack([s.field for s in sim.run(PARAMS)]))


def test_import_stays_light():
    code = (
        "import sys, kit.simulators; "
        "print(sorted(m for m in ('torch', 'matplotlib', 'dask', 'xarray') if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
