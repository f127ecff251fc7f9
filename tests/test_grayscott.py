"""Tests of :class:`kit.simulators.GrayScott` (Gray-Scott reaction-diffusion, explicit Euler, periodic).

Regimes at ``ratio = Du / Dv = 2`` (``Dv = 0.08``, so ``Du = 0.16``), ``n = 64``, ``dt = 0.8``, 10,000
iterations (``t = 8000``), found by scanning ``feed`` in 0.01..0.06 and ``kill`` in 0.045..0.065 and
looking at the fields; ``v > 0.2`` is labelled into connected components on the torus. Measured for
seeds 0 to 5 (the tests use 0 and 1):

=========  =====  =====  =======================================================================
regime     feed   kill   measured
=========  =====  =====  =======================================================================
uniform    0.01   0.06   ``max v ~ 1e-249``: below the saddle-node, the seed square dies out
spots      0.04   0.065  25 to 27 round spots of 30 to 69 cells each (0.7 % to 1.7 % of the grid)
labyrinth  0.04   0.06   one component on 52 % to 53 % of the grid, 29 % to 31 % of its cells on
                         its boundary (a disc of that area would have about 8 %)
=========  =====  =====  =======================================================================

These agree with Pearson's map (Science 261, 1993): spots near F = 0.04, k = 0.065 (just past the
saddle-node line ``k = sqrt(F) / 2 - F`` beyond which no non-trivial uniform state exists), labyrinthine
stripes just below it in kill, and no pattern at small feed far past the line.

Stability: about the uniform state at ``F = 0.08, k = 0.04`` with ``ratio = 3`` the checkerboard mode of
``u`` is multiplied by about ``1 - 2.22 dt`` per iteration (eigenvalue of the linearised iteration with
the ``u``-``v`` coupling), so explicit Euler is unstable above ``dt ~ 0.90``; the simulator's limit,
``2 / (8 Du + F + v^2) = 0.885``, drops the coupling and is slightly conservative. The diffusion-only
limit ``1 / (4 Du) = 1.04`` is not enough: at ``dt = 1`` and ``ratio = 3`` checkerboards in ``u`` grow to
amplitudes of 0.1 to 0.9 wherever ``v`` is large (measured over feed and kill).

One iteration at ``n = 64`` takes about 60 us on one core (two Laplacians and the reaction in numpy).
"""

import doctest
import inspect
import itertools
import time

import numpy as np
import pytest
from scipy import ndimage

from kit.simulators import GrayScott, Step
from kit.simulators import grayscott as gs_module
from kit.simulators.grayscott import DV, _max_stable_dt, _uniform_v
from kit.space import ParameterSpace

PARAMS = {"feed": 0.04, "kill": 0.065, "ratio": 2.0}
THRESHOLD = 0.2


def final_v(feed: float, kill: float, seed: int, ratio: float = 2.0) -> np.ndarray:
    """``v`` after 10,000 iterations on the 64 x 64 grid."""
    sim = GrayScott(n=64, steps=1, substeps=10_000, dt=0.8)
    (step,) = sim.run({"feed": feed, "kill": kill, "ratio": ratio}, seed=seed)
    return step.field


def components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels of the 4-connected components of ``mask`` on the torus (merged across the walls), and areas."""
    labels, count = ndimage.label(mask)
    parent = np.arange(count + 1)

    def root(a):
        while parent[a] != a:
            a = parent[a]
        return a

    for a, b in itertools.chain(zip(labels[:, 0], labels[:, -1], strict=True), zip(labels[0], labels[-1], strict=True)):
        if a and b:
            parent[root(a)] = root(b)
    merged = np.array([root(a) for a in range(count + 1)])[labels]
    roots, areas = np.unique(merged[merged > 0], return_counts=True)
    relabelled = np.zeros_like(labels)
    relabelled[merged > 0] = 1 + np.searchsorted(roots, merged[merged > 0])
    return relabelled, areas


def boundary_fraction(mask: np.ndarray) -> float:
    """Fraction of the cells of ``mask`` with a 4-neighbour (on the torus) outside it."""
    inner = mask.copy()
    for shift, axis in itertools.product((1, -1), (0, 1)):
        inner &= np.roll(mask, shift, axis)
    return 1.0 - inner.sum() / mask.sum()


def checkerboard(a: np.ndarray) -> float:
    """Amplitude of the checkerboard mode ``(-1)^(i+j)`` in ``a``."""
    sign = np.where(np.add.outer(np.arange(a.shape[0]), np.arange(a.shape[1])) % 2, -1.0, 1.0)
    return abs(float((a * sign).mean()))


# --- construction -----------------------------------------------------------------------------------------


def test_space_coordinates_and_attributes():
    sim = GrayScott()
    assert sim.space == ParameterSpace({"feed": (0.01, 0.08), "kill": (0.04, 0.07), "ratio": (1.5, 3.0)})
    assert sim.space.names == ("feed", "kill", "ratio")
    assert (sim.n, sim.steps, sim.substeps, sim.dt) == (64, 50, 100, 0.8)
    assert sim.t_end == pytest.approx(50 * 100 * 0.8)
    np.testing.assert_array_equal(sim.x, np.arange(64.0))
    np.testing.assert_array_equal(sim.y, np.arange(64.0))
    assert (sim.field_name, sim.units) == ("v", "1")
    assert repr(GrayScott(n=32, steps=4, substeps=25, dt=0.5)) == "GrayScott(n=32, steps=4, substeps=25, dt=0.5)"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 2}, "n must be an int >= 5, got 2"),
        ({"n": 32.0}, "n must be an int >= 5, got 32.0"),
        ({"n": True}, "n must be an int >= 5, got True"),
        ({"steps": 0}, "steps must be an int >= 1, got 0"),
        ({"substeps": 0}, "substeps must be an int >= 1, got 0"),
        ({"substeps": 2.5}, "substeps must be an int >= 1, got 2.5"),
        ({"dt": 0.0}, "dt must be a finite number > 0, got 0.0"),
        ({"dt": float("nan")}, "dt must be a finite number > 0, got nan"),
        ({"dt": "1"}, "dt must be a finite number > 0, got '1'"),
        ({"dt": 5.0}, r"dt = 5 makes explicit Euler unstable .* the largest stable dt is 0\.8850"),
        ({"dt": 1.0}, r"the largest stable dt is 0\.8850"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GrayScott(**kwargs)


def test_largest_stable_dt_is_accepted():
    limit = _max_stable_dt(GrayScott().space)
    assert limit == pytest.approx(0.885, abs=5e-4)
    assert GrayScott(dt=limit).dt == limit


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({**PARAMS, "feed": 0.1}, "'feed' = 0.1 is outside its bounds"),
        ({**PARAMS, "feed": 0.0}, "'feed'"),
        ({**PARAMS, "kill": 0.03}, "'kill'"),
        ({**PARAMS, "ratio": 4.0}, "'ratio'"),
        ({**PARAMS, "colour": 1.0}, "colour"),
        ({"feed": 0.04, "kill": 0.065}, "ratio"),
        ([0.04, 0.065], r"\(3,\)"),
    ],
)
def test_bad_params_raise_at_call(params, match):
    with pytest.raises(ValueError, match=match):
        GrayScott(n=8, steps=1, substeps=1).run(params)


def test_bad_seed_raises_at_call():
    with pytest.raises(TypeError, match="seed"):
        GrayScott(n=8, steps=1, substeps=1).run(PARAMS, seed="one")


# --- the discretisation -----------------------------------------------------------------------------------


def random_state(n=24, seed=3):
    generator = np.random.default_rng(seed)
    return generator.random((n, n)), 0.5 * generator.random((n, n))


def test_one_iteration_balances_mass():
    # Periodic Laplacians sum to zero and u v^2 cancels in u + v, so only feed and kill change sum(u + v).
    sim = GrayScott(n=24, steps=1, substeps=1, dt=0.7)
    u, v = random_state()
    for feed, kill, ratio in [(0.04, 0.065, 2.0), (0.08, 0.04, 3.0), (0.01, 0.07, 1.5)]:
        u_new, v_new = sim._iterate(u, v, feed, kill, ratio * DV)
        change = (u_new + v_new).sum() - (u + v).sum()
        expected = sim.dt * (feed * (1 - u) - (feed + kill) * v).sum()
        assert abs(change - expected) <= 1e-12 * (u + v).sum(), (change, expected)
        assert abs(expected) > 1.0  # the balance is not trivially zero
    np.testing.assert_array_equal(u, random_state()[0])  # inputs untouched


def test_pure_diffusion_conserves_each_species():
    sim = GrayScott(n=24, steps=1, substeps=1, dt=0.8)
    u, v = random_state()
    zero = np.zeros_like(u)
    du = 3.0 * DV
    u_new, v_new = sim._iterate(u, zero, 0.0, 0.0, du)  # v = 0: no reaction, u only diffuses
    assert abs(u_new.sum() - u.sum()) <= 1e-13 * u.sum()
    assert not np.allclose(u_new, u) and np.array_equal(v_new, zero)
    u_new, v_new = sim._iterate(zero, v, 0.0, 0.0, du)  # u = 0: v only diffuses
    assert abs(v_new.sum() - v.sum()) <= 1e-13 * v.sum()
    assert not np.allclose(v_new, v) and np.array_equal(u_new, zero)
    u_new, v_new = sim._iterate(u, v, 0.0, 0.0, du)  # both: the reaction moves mass from u to v
    assert abs((u_new + v_new).sum() - (u + v).sum()) <= 1e-13 * (u + v).sum()
    assert u_new.sum() < u.sum() - 1.0


def test_laplacian_is_periodic_five_point():
    a = np.random.default_rng(0).random((7, 9))
    expected = np.roll(a, 1, 0) + np.roll(a, -1, 0) + np.roll(a, 1, 1) + np.roll(a, -1, 1) - 4 * a
    np.testing.assert_allclose(gs_module._laplacian(a), expected, rtol=0, atol=1e-14)
    # Plane waves are eigenfunctions with eigenvalue -4 sin^2(kx/2) - 4 sin^2(ky/2); -8 for the checkerboard.
    ny, nx = 12, 16
    wave = np.cos(2 * np.pi * (3 * np.arange(ny)[:, None] / ny + 5 * np.arange(nx)[None, :] / nx))
    eigenvalue = -4 * np.sin(np.pi * 3 / ny) ** 2 - 4 * np.sin(np.pi * 5 / nx) ** 2
    np.testing.assert_allclose(gs_module._laplacian(wave), eigenvalue * wave, atol=1e-12)
    board = np.where(np.add.outer(np.arange(ny), np.arange(nx)) % 2, -1.0, 1.0)
    np.testing.assert_allclose(gs_module._laplacian(board), -8 * board, atol=1e-14)


def test_uniform_steady_states_are_fixed_points():
    sim = GrayScott(n=16, steps=1, substeps=1, dt=0.8)
    ones, zeros = np.ones((16, 16)), np.zeros((16, 16))
    u, v = sim._iterate(ones, zeros, 0.05, 0.05, 2 * DV)
    assert np.array_equal(u, ones) and np.array_equal(v, zeros)
    feed, kill = 0.05, 0.05
    v_star = float(_uniform_v(feed, kill))
    u_star = 1 - (feed + kill) * v_star / feed
    assert u_star * v_star**2 == pytest.approx(feed * (1 - u_star))
    u, v = sim._iterate(u_star * ones, v_star * ones, feed, kill, 2 * DV)
    np.testing.assert_allclose(u, u_star, rtol=1e-14)
    np.testing.assert_allclose(v, v_star, rtol=1e-14)


@pytest.mark.parametrize(("factor", "grows"), [(1.0, False), (1.03, True), (1.13, True)])
def test_checkerboard_stability_limit(factor, grows):
    # About the uniform state of the worst corner of the space, a checkerboard in u decays at the
    # simulator's dt limit and grows 3 % above it and at 1.13 x 0.885 = 1.0 (below the diffusion-only 1.04).
    feed, kill, du = 0.08, 0.04, 3.0 * DV
    sim = GrayScott(n=16, steps=1, substeps=1)
    sim.dt = factor * _max_stable_dt(sim.space)
    v_star = float(_uniform_v(feed, kill))
    u_star = 1 - (feed + kill) * v_star / feed
    board = np.where(np.add.outer(np.arange(16), np.arange(16)) % 2, -1.0, 1.0)
    u, v = u_star + 1e-8 * board, np.full((16, 16), v_star)
    for _ in range(300):
        u, v = sim._iterate(u, v, feed, kill, du)
    ratio = checkerboard(u) / 1e-8
    assert (ratio > 10) if grows else (ratio < 0.1), ratio


# --- runs -------------------------------------------------------------------------------------------------


def test_initial_state_is_pearsons_square_with_one_percent_noise():
    sim = GrayScott(n=40, steps=1, substeps=1)
    u, v = sim._initial_state(0)
    inside = np.zeros((40, 40), dtype=bool)
    inside[16:24, 16:24] = True  # side 40 // 5 = 8, centred
    assert np.all(np.abs(u[inside] / 0.5 - 1) <= 0.01) and np.all(np.abs(v[inside] / 0.25 - 1) <= 0.01)
    assert np.all(np.abs(u[~inside] - 1) <= 0.01) and np.all(v[~inside] == 0.0)
    assert u.std() > 0 and np.abs(u[~inside] - 1).max() > 0.009  # noise is there, on the whole grid


def test_run_matches_the_iteration():
    sim = GrayScott(n=12, steps=3, substeps=4, dt=0.5)
    u, v = sim._initial_state(7)
    steps = list(sim.run(PARAMS, seed=7))
    for step in steps:
        for _ in range(4):
            u, v = sim._iterate(u, v, PARAMS["feed"], PARAMS["kill"], PARAMS["ratio"] * DV)
        np.testing.assert_array_equal(step.field, v)


def test_run_accepts_an_array_in_space_order():
    sim = GrayScott(n=12, steps=2, substeps=3)
    by_name = [s.field for s in sim.run(PARAMS, seed=4)]
    by_order = [s.field for s in sim.run([PARAMS[name] for name in sim.space.names], seed=4)]
    np.testing.assert_array_equal(by_name, by_order)


def test_same_seed_same_fields_different_seed_different_fields():
    sim = GrayScott(n=24, steps=3, substeps=50)
    first = [s.field for s in sim.run(PARAMS, seed=11)]
    again = [s.field for s in sim.run(PARAMS, seed=11)]
    other = [s.field for s in sim.run(PARAMS, seed=12)]
    np.testing.assert_array_equal(first, again)  # bit for bit
    assert all(not np.array_equal(a, b) for a, b in zip(first, other, strict=True))
    from_sequence = [s.field for s in sim.run(PARAMS, seed=np.random.SeedSequence(11))]
    np.testing.assert_array_equal(first, from_sequence)
    fresh = [s.field for s in sim.run(PARAMS, seed=None)], [s.field for s in sim.run(PARAMS, seed=None)]
    assert not np.array_equal(*fresh)  # seed None: fresh entropy, not reproducible


def test_run_is_lazy():
    sim = GrayScott(n=16, steps=10**9, substeps=2, dt=0.5)
    steps = sim.run(PARAMS, seed=0)
    assert inspect.isgenerator(steps)
    start = time.perf_counter()
    first = next(steps)
    assert time.perf_counter() - start < 5.0
    assert isinstance(first, Step) and first.index == 1 and first.time == 1.0 and first.field.shape == (16, 16)


def test_run_yields_every_step_once_with_fresh_fields():
    sim = GrayScott(n=10, steps=5, substeps=3, dt=0.5)
    steps = list(sim.run(PARAMS, seed=0))
    assert [s.index for s in steps] == [1, 2, 3, 4, 5]
    np.testing.assert_allclose([s.time for s in steps], 1.5 * np.arange(1, 6), rtol=1e-15)
    assert steps[-1].time == sim.t_end == 7.5
    assert not any(np.shares_memory(a.field, b.field) for a, b in itertools.pairwise(steps))
    run = sim.run(PARAMS, seed=0)
    next(run).field[:] = 0.0  # changing a yielded field does not change the simulation
    np.testing.assert_array_equal(next(run).field, steps[1].field)


def test_trajectory_stacks_run():
    sim = GrayScott(n=10, steps=4, substeps=5, dt=0.5)
    da = sim.trajectory(PARAMS, seed=2)
    assert da.dims == ("time", "y", "x") and da.shape == (4, 10, 10)
    assert da.name == "v" and da.attrs["units"] == "1"
    np.testing.assert_allclose(da["time"], 2.5 * np.arange(1, 5), rtol=1e-15)
    np.testing.assert_array_equal(da["x"], sim.x)
    np.testing.assert_array_equal(da["y"], sim.y)
    np.testing.assert_array_equal(da.values, np.stack([s.field for s in sim.run(PARAMS, seed=2)]))


def test_docstring_examples():
    result = doctest.testmod(gs_module, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 5 and result.failed == 0


# --- known regimes (ratio 2, see the module docstring) ----------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_uniform_regime_v_dies_out(seed):
    v = final_v(feed=0.01, kill=0.06, seed=seed)
    assert v.max() < 1e-3 and v.min() >= 0.0


@pytest.mark.parametrize("seed", [0, 1])
def test_spots_regime_many_small_round_blobs(seed):
    v = final_v(feed=0.04, kill=0.065, seed=seed)
    _, areas = components(v > THRESHOLD)
    assert len(areas) >= 10, areas
    assert np.all((areas >= 10) & (areas <= 0.025 * v.size)), areas  # each spot under 2.5 % of the grid


@pytest.mark.parametrize("seed", [0, 1])
def test_labyrinth_regime_one_large_thin_component(seed):
    v = final_v(feed=0.04, kill=0.06, seed=seed)
    mask = v > THRESHOLD
    labels, areas = components(mask)
    assert len(areas) <= 3, areas
    assert areas.max() >= 0.3 * v.size, areas  # one component spans a large part of the grid ...
    assert mask.mean() <= 0.8  # ... but not all of it (not a uniform state)
    largest = labels == 1 + int(areas.argmax())
    assert boundary_fraction(largest) > 0.2  # thin stripes, not a blob (a disc would give ~0.08)
