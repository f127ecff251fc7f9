"""Time and memory of one-pass Sobol' indices per field cell against SALib looping over the cells.

The field model is Ishigami evaluated at every cell with coefficients that vary over the grid (``a`` from
2 to 9 along x, ``b`` from 0.02 to 0.2 along y), so each cell has its own exact indices and evaluating
it costs next to nothing: what is measured is the analysis, not a simulation.

Both methods see the same stream of pick-freeze groups (``kit.sampling.pick_freeze``), in batches as a
study would deliver them, and are measured in the same process:

- kit: ``IterativeSobol(d, shape, estimator="jansen")`` updated batch by batch, then its indices;
- SALib: every output is stored (SALib analyses one scalar output from all its runs, and a simulation
  delivers a whole field, so nothing can be analysed before the last run), then
  ``SALib.analyze.sobol.analyze(problem, Y, calc_second_order=False, num_resamples=...)`` runs on every cell.
  Its default ``num_resamples=100`` bootstraps confidence intervals; 2, the fewest that give a defined
  interval (the standard deviation of the resamples, ddof=1), measures SALib computing S1 and ST with
  next to no bootstrap. kit's Jansen estimator computes no interval (Martinez gets Fisher-z ones from the
  same accumulators at no extra cost).

Time is ``time.perf_counter`` around the analysis only (evaluating the model is excluded), without
tracing; the smallest of ``repeats`` passes is kept. Peak memory is measured in a separate pass with
``tracemalloc``, which numpy reports its array buffers to: the largest traced memory above what was
allocated before, minus the batch being fed (the input). For kit that is its accumulators and the update
temporaries; for SALib the stored outputs, its result arrays and the largest working memory of one
``analyze`` call. Where ``salib_cells`` is smaller than the number of cells, SALib is timed on that many
cells drawn at random and its cell loop time is extrapolated linearly to every cell (the cells have the
same size, so each costs the same); its stored outputs are still those of every cell.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Sequence
from importlib import metadata

import numpy as np

from kit.sampling import pick_freeze
from kit.seeding import rng
from kit.sensitivity.moments import _check_shape
from kit.sensitivity.sobol import IterativeSobol

__all__ = ["ishigami_field", "ishigami_field_coefficients", "salib_benchmark"]


def ishigami_field_coefficients(shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Ishigami's ``(a, b)`` per cell of a 2D ``shape``: ``a`` from 2 to 9 along x, ``b`` from 0.02 to 0.2 along y."""
    ny, nx = shape
    a = np.broadcast_to(np.linspace(2.0, 9.0, nx)[None, :], (ny, nx))
    b = np.broadcast_to(np.linspace(0.02, 0.2, ny)[:, None], (ny, nx))
    return a, b


def ishigami_field(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Ishigami ``sin x1 (1 + b x3^4) + a sin^2 x2`` at every cell: points ``(..., 3)`` -> ``(..., ny, nx)``."""
    points = np.asarray(points, dtype=float)
    s1 = np.sin(points[..., 0])[..., None, None]
    s2 = (np.sin(points[..., 1]) ** 2)[..., None, None]
    x34 = (points[..., 2] ** 4)[..., None, None]
    return s1 * (1.0 + b * x34) + a * s2


def salib_benchmark(
    sizes: Sequence[int],
    shape: Sequence[int] = (64, 64),
    seed: int = 0,
    repeats: int = 1,
    *,
    batch_size: int = 64,
    num_resamples: Sequence[int] = (100, 2),
    salib_cells: int | None = None,
    progress: bool = True,
):
    """Time and peak memory of ``IterativeSobol`` vs SALib's ``sobol.analyze`` looped over field cells.

    Parameters
    ----------
    sizes
        Numbers ``n`` of pick-freeze groups (powers of 2: the design is a scrambled Sobol' one); each size
        is a fresh design (``n (d + 2)`` runs).
    shape
        Shape of the 2D output field.
    seed
        Seed of the designs and of the cells SALib is timed on.
    repeats
        Timing passes per size; the fastest is kept.
    batch_size
        Groups per batch of the stream.
    num_resamples
        SALib bootstrap sizes to measure (each >= 2); SALib's default is 100.
    salib_cells
        Number of cells SALib is timed on, drawn at random, its loop time extrapolated to every cell;
        ``None`` times every cell.
    progress
        Show progress bars (``tqdm.auto``).

    Returns
    -------
    xarray.Dataset
        Dims ``groups`` and ``num_resamples``. ``time_iterative`` and ``time_salib`` (s), ``peak_iterative``
        and ``peak_salib`` (bytes), ``time_ratio`` and ``memory_ratio`` (SALib / kit), ``stored_salib`` (the
        bytes of outputs SALib needs stored), ``max_index_difference`` (largest ``|ST_kit - ST_SALib (2n - 1)
        / (2n)|`` over the analysed cells: the two total indices are equal up to that variance convention),
        ``max_error_iterative`` and ``max_error_salib`` (largest ``|index - exact|`` over S1 and ST of the
        analysed cells).

    Examples
    --------
    >>> data = salib_benchmark([64], shape=(4, 4), num_resamples=[2], progress=False)
    >>> float(data.max_index_difference[0]) < 1e-12, sorted(data.sizes.items())
    (True, [('groups', 1), ('num_resamples', 1)])
    """
    import xarray as xr
    from tqdm.auto import tqdm

    from kit import provenance
    from kit.simulators import Ishigami

    sizes = [_positive_int(n, "sizes", minimum=4) for n in sizes]
    if not sizes:
        raise ValueError("sizes must hold at least one number of groups, e.g. [256, 1024]")
    shape = _check_shape(shape)
    if len(shape) != 2:
        raise ValueError(f"shape must be 2D (ny, nx), got {shape}")
    repeats = _positive_int(repeats, "repeats")
    batch_size = _positive_int(batch_size, "batch_size")
    resamples = [_positive_int(r, "num_resamples", minimum=2) for r in num_resamples]
    if not resamples:
        raise ValueError("num_resamples must hold at least one bootstrap size >= 2, e.g. [100, 2]")
    cells = shape[0] * shape[1]
    timed = cells if salib_cells is None else min(_positive_int(salib_cells, "salib_cells"), cells)
    chosen = np.sort(rng(seed).choice(cells, size=timed, replace=False)) if timed < cells else np.arange(cells)

    model = Ishigami()
    a, b = ishigami_field_coefficients(shape)
    d, problem = model.space.dim, model.space.to_salib()
    _warm_up(d, shape, max(batch_size, 4), problem, resamples, seed)
    exact = np.array([np.concatenate(Ishigami(a.flat[c], b.flat[c]).exact_indices()) for c in chosen])
    rows = {name: [] for name in _VARIABLES}
    for n in tqdm(sizes, desc="sizes", disable=not progress):
        design = pick_freeze(model.space, n, seed)
        batches = [design[i : i + batch_size] for i in range(0, n, batch_size)]

        def stream(batches=batches):
            for points in batches:
                yield ishigami_field(points, a, b)

        time_kit, sobol = _time_iterative(stream, d, shape, repeats)
        peak_kit = _peak_iterative(stream, d, shape)
        store, time_store = _store(stream, n, d, cells)
        salib = {r: _time_salib(store, chosen, problem, r, repeats, progress, seed) for r in resamples}
        stored = store.nbytes
        del store  # before the memory pass stores them again
        peak_salib = _peak_salib(stream, n, d, cells, problem, resamples)
        scale = cells / timed
        s1_salib, st_salib = salib[resamples[0]][1], salib[resamples[0]][2]
        s1_kit = sobol.first_order.reshape(d, cells)[:, chosen].T
        st_kit = sobol.total_order.reshape(d, cells)[:, chosen].T
        rows["time_iterative"].append(time_kit)
        rows["peak_iterative"].append(peak_kit)
        rows["time_salib"].append([time_store + salib[r][0] * scale for r in resamples])
        rows["peak_salib"].append([peak_salib[r] for r in resamples])
        rows["stored_salib"].append(stored)
        rows["max_index_difference"].append(float(np.abs(st_kit - st_salib * (2 * n - 1) / (2 * n)).max()))
        rows["max_error_iterative"].append(float(np.abs(np.concatenate([s1_kit, st_kit], axis=1) - exact).max()))
        rows["max_error_salib"].append(float(np.abs(np.concatenate([s1_salib, st_salib], axis=1) - exact).max()))

    coords = {"groups": sizes, "num_resamples": resamples}
    data = xr.Dataset(
        {
            name: (("groups", "num_resamples") if name in ("time_salib", "peak_salib") else ("groups",), values)
            for name, values in rows.items()
        },
        coords=coords,
    )
    data["time_ratio"] = data.time_salib / data.time_iterative
    data["memory_ratio"] = data.peak_salib / data.peak_iterative
    for name, (units, description) in {**_VARIABLES, **_RATIOS}.items():
        data[name].attrs.update(units=units, description=description)
    data.groups.attrs["description"] = "pick-freeze groups (n (d + 2) model runs)"
    data.num_resamples.attrs["description"] = "SALib bootstrap resamples (its default is 100)"
    data.attrs.update(
        model="Ishigami per cell, a from 2 to 9 along x, b from 0.02 to 0.2 along y",
        shape=list(shape),
        cells=cells,
        n_params=d,
        estimator="jansen",
        batch_size=batch_size,
        seed=seed,
        repeats=repeats,
        salib_version=metadata.version("SALib"),
        salib_call="SALib.analyze.sobol.analyze(problem, Y, calc_second_order=False, num_resamples=r)",
        salib_cells_timed=timed,
        salib_time_extrapolated=int(timed < cells),
        timer="time.perf_counter, analysis only, fastest of repeats",
        memory="tracemalloc peak above the state before, minus the batch being fed",
        host_cpu=provenance.host_cpu(),
    )
    return data


_VARIABLES = {
    "time_iterative": ("s", "IterativeSobol: every batch update and the final indices"),
    "peak_iterative": ("bytes", "IterativeSobol: accumulators and update temporaries"),
    "time_salib": ("s", "SALib: storing the outputs and analyze on every cell (extrapolated if subset)"),
    "peak_salib": ("bytes", "SALib: stored outputs, result arrays and the largest analyze working memory"),
    "stored_salib": ("bytes", "outputs SALib needs stored before analysing: n (d + 2) runs x cells x 8"),
    "max_index_difference": ("1", "max |ST_kit - ST_SALib (2n - 1) / (2n)| over analysed cells and parameters"),
    "max_error_iterative": ("1", "max |index - exact| over S1 and ST of the analysed cells, kit"),
    "max_error_salib": ("1", "max |index - exact| over S1 and ST of the analysed cells, SALib"),
}
_RATIOS = {
    "time_ratio": ("1", "time_salib / time_iterative"),
    "memory_ratio": ("1", "peak_salib / peak_iterative"),
}


def _warm_up(d: int, shape: tuple[int, ...], batch_size: int, problem, resamples, seed: int) -> None:
    """Import SALib and run both methods on one batch, so that no first-call cost lands in a measurement."""
    outputs = np.random.default_rng(0).normal(size=(batch_size, d + 2, *shape))
    IterativeSobol(d, shape, estimator="jansen").update(outputs)
    for r in resamples:
        _analyze(problem, outputs.reshape(batch_size, d + 2, -1)[..., 0].reshape(-1), r, seed)


def _time_iterative(stream, d: int, shape: tuple[int, ...], repeats: int):
    best, sobol = np.inf, None
    for _ in range(repeats):
        elapsed, sobol = 0.0, None
        start = time.perf_counter()
        sobol = IterativeSobol(d, shape, estimator="jansen")
        elapsed += time.perf_counter() - start
        for outputs in stream():
            start = time.perf_counter()
            sobol.update(outputs)
            elapsed += time.perf_counter() - start
        start = time.perf_counter()
        _ = sobol.first_order, sobol.total_order
        elapsed += time.perf_counter() - start
        best = min(best, elapsed)
    return best, sobol


def _peak_iterative(stream, d: int, shape: tuple[int, ...]) -> int:
    with _tracing():
        baseline = tracemalloc.get_traced_memory()[0]
        sobol = IterativeSobol(d, shape, estimator="jansen")
        peak = tracemalloc.get_traced_memory()[0] - baseline
        for outputs in stream():
            tracemalloc.reset_peak()
            sobol.update(outputs)
            peak = max(peak, tracemalloc.get_traced_memory()[1] - baseline - outputs.nbytes)
            del outputs
        tracemalloc.reset_peak()
        _ = sobol.first_order, sobol.total_order
        return int(max(peak, tracemalloc.get_traced_memory()[1] - baseline))


def _store(stream, n: int, d: int, cells: int):
    """Every output, per cell in SALib's row order (A, AB_1..AB_d, B per group): ``(cells, n, d + 2)``."""
    order = [0, *range(2, d + 2), 1]
    elapsed = 0.0
    start = time.perf_counter()
    store = np.empty((cells, n, d + 2))
    elapsed += time.perf_counter() - start
    done = 0
    for outputs in stream():
        start = time.perf_counter()
        count = outputs.shape[0]
        store[:, done : done + count] = outputs[:, order].reshape(count, d + 2, cells).transpose(2, 0, 1)
        done += count
        elapsed += time.perf_counter() - start
    return store, elapsed


def _analyze(problem, y, resamples: int, seed: int):
    from SALib.analyze import sobol as salib_sobol

    return salib_sobol.analyze(
        problem, y, calc_second_order=False, num_resamples=resamples, print_to_console=False, seed=seed + 1
    )


def _time_salib(store, chosen, problem, resamples: int, repeats: int, progress: bool, seed: int):
    """Seconds to analyse the ``chosen`` cells, and their S1 and ST ``(cells, d)``."""
    from tqdm.auto import tqdm

    d = store.shape[2] - 2
    best = np.inf
    for _ in range(repeats):
        first, total = np.empty((len(chosen), d)), np.empty((len(chosen), d))
        start = time.perf_counter()
        for i, cell in enumerate(tqdm(chosen, desc=f"SALib, {resamples} resamples", disable=not progress, leave=False)):
            result = _analyze(problem, store[cell].reshape(-1), resamples, seed)
            first[i], total[i] = result["S1"], result["ST"]
        best = min(best, time.perf_counter() - start)
    return best, first, total


def _peak_salib(stream, n: int, d: int, cells: int, problem, resamples, measured_cells: int = 2) -> dict[int, int]:
    """Per bootstrap size: stored outputs, result arrays and the largest working memory of ``analyze`` on a
    few cells (every cell has the same size)."""
    peaks = {}
    with _tracing():
        baseline = tracemalloc.get_traced_memory()[0]
        results = np.empty((2, cells, d)), np.empty((2, cells, d))  # S1, ST and their intervals
        store, _ = _store(stream, n, d, cells)
        before = tracemalloc.get_traced_memory()[0]
        for r in resamples:
            working = 0
            for cell in range(min(measured_cells, cells)):
                tracemalloc.reset_peak()
                result = _analyze(problem, store[cell].reshape(-1), r, 0)
                working = max(working, tracemalloc.get_traced_memory()[1] - before)
                del result
            peaks[r] = int(before - baseline + working)
        del results, store
    return peaks


class _tracing:
    """``tracemalloc`` on for a block (left as found if it was already tracing)."""

    def __enter__(self):
        self._started = not tracemalloc.is_tracing()
        if self._started:
            tracemalloc.start()
        return self

    def __exit__(self, *exc):
        if self._started:
            tracemalloc.stop()


def _positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return int(value)
