"""Adaptive against non-adaptive sampling at equal simulation budget: the study behind papers/sampling.

Every sampler runs the same online study (simulator, budget, model, buffer) for each seed and is judged on
one fixed scrambled-Sobol validation set: mean, p99 and max error, as ratios to the uniform (``random``)
sampler of the same seed, with t intervals over seeds. The importance-weighted error re-simulates the
``n_importance`` fresh points the sampler would ask next, weighs each error by ``1 / density``
(``sampler.densities``; 1 for non-adaptive samplers) and so estimates the mean error under the space's
own measure from the sampler's own distribution (``weighted_error``, to compare with ``val_mean``), beside
the unweighted mean there (``sampler_point_error``: how hard the regions it favours are).
Studies are online: which losses a sampler was told before each ask depends on timing, so two runs of
the same seed differ slightly; the intervals over seeds cover that.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from kit.cluster import connect
from kit.online.study import OnlineStudy
from kit.online.validation import ValidationSet
from kit.sampling import make_sampler
from kit.seeding import simulation_seed

#: The sampler every ratio is taken against.
BASELINE = "random"


def compare_samplers(
    simulator,
    *,
    samplers=("random", "lhs", "breed", "loss_density"),
    seeds=(0, 1, 2),
    n_simulations: int = 32,
    n_validation: int = 32,
    n_importance: int = 16,
    model: str = "mlp",
    model_options: dict | None = None,
    sampler_options: dict | None = None,
    capacity: int = 400,
    batch_size: int = 32,
    validate_every: int = 25,
    batches_per_simulation: float | None = 20.0,
    in_flight: int = 2,
    level: float = 0.95,
    client=None,
    n_workers: int = 2,
    progress: bool = True,
) -> xr.Dataset:
    """Run one online study per (sampler, seed) and compare the validation errors at the end.

    Returns a Dataset with, per ``sampler`` and ``seed``: ``val_mean``, ``val_p99``, ``val_max`` (final),
    ``weighted_error`` (importance-weighted estimate of the mean error from ``n_importance`` fresh draws of
    the sampler) and ``sampler_point_error`` (their unweighted mean), ``batches``; per ``check`` the error
    curves with the simulations received by then (``check_simulations``); ``points`` ``(sampler, seed,
    simulation, parameter)`` where each sampler put its simulations; and per ``sampler``: ``p99_ratio``,
    ``mean_ratio``, ``max_ratio`` (mean over seeds of sampler / ``random``) with ``_low`` / ``_high`` bounds.
    ``sampler_options`` maps a sampler name to its keyword options (e.g. ``{"breed": {"sigma": 0.1}}``).
    """
    samplers, seeds = list(samplers), [int(s) for s in seeds]
    if BASELINE not in samplers:
        raise ValueError(f"samplers must include the baseline {BASELINE!r} that ratios refer to, got {samplers}")
    options = dict(sampler_options or {})
    unknown = sorted(set(options) - set(samplers))
    if unknown:
        raise ValueError(f"sampler_options names sampler(s) {unknown} not in samplers {samplers}")
    if "lhs" in samplers:  # one Latin hypercube of the whole budget, not part of a bigger one
        options["lhs"] = {"block": n_simulations, **options.get("lhs", {})}
    runs = {}
    with connect(client, n_workers=n_workers) as client:
        validation = ValidationSet.simulate(simulator, n_validation, client=client)
        for seed in seeds:
            for name in samplers:
                sampler = make_sampler(name, simulator.space, seed=seed, **options.get(name, {}))
                study = OnlineStudy(
                    simulator,
                    n_simulations=n_simulations,
                    sampler=sampler,
                    model=model,
                    model_options=model_options,
                    buffer="reservoir",
                    capacity=capacity,
                    watermark=batch_size,
                    batch_size=batch_size,
                    validation=validation,
                    validate_every=validate_every,
                    batches_per_simulation=batches_per_simulation,
                    in_flight=in_flight,
                    seed=seed,
                    client=client,
                )
                result = study.run(progress=progress)
                runs[name, seed] = _summary(study, result, sampler, n_importance, client)
    settings = {
        "n_simulations": n_simulations,
        "n_validation": n_validation,
        "n_importance": n_importance,
        "model": model,
        "batch_size": batch_size,
        "capacity": capacity,
        "batches_per_simulation": "none" if batches_per_simulation is None else batches_per_simulation,
        "in_flight": in_flight,
        "sampler_options": repr(options),
    }
    return _dataset(runs, samplers, seeds, simulator, level, settings)


def _summary(study, result, sampler, n_importance, client) -> dict:
    sims = result.simulations
    done = np.isin(sims.status.values, ["ok", "retried"])
    asked = len(getattr(sampler, "densities", []))
    fresh = sampler.ask(n_importance)  # where the sampler would simulate next, with its densities
    densities = np.asarray(getattr(sampler, "densities", np.ones(asked + n_importance)), dtype=float)[asked:]
    seeds = [simulation_seed(study.seed, study.next_id + i) for i in range(n_importance)]
    drawn = ValidationSet.at(study.simulator, fresh, seeds, client=client)
    errors = drawn.errors(study.trainer, study.encoding).mean(axis=1)  # per simulation, over steps
    weights = 1.0 / densities
    checks = result.validation
    produced = result.metrics.produced.sel(batch=checks.check_batch).values
    final = checks.isel(check_batch=-1)  # the study validates once more when it ends
    return {
        **{key: float(final[key]) for key in ("val_mean", "val_p99", "val_max")},
        "weighted_error": float(weights @ errors / weights.sum()),
        "sampler_point_error": float(errors.mean()),
        "batches": study.trainer.batches,
        "points": sims.params.values[done],
        "curve": {
            "check_batch": checks.check_batch.values,
            "check_simulations": produced / study.simulator.steps,
            "check_mean": checks.val_mean.values,
            "check_p99": checks.val_p99.values,
        },
    }


def _dataset(runs, samplers, seeds, simulator, level, settings) -> xr.Dataset:
    from scipy import stats

    dims = ("sampler", "seed")

    def grid(key):
        return np.array([[runs[name, seed][key] for seed in seeds] for name in samplers], dtype=float)

    data = xr.Dataset(
        {key: (dims, grid(key)) for key in ("val_mean", "val_p99", "val_max", "weighted_error", "sampler_point_error")},
        coords={"sampler": samplers, "seed": seeds, "parameter": list(simulator.space.names)},
    )
    data["batches"] = (dims, grid("batches").astype(int))
    checks = max(len(run["curve"]["check_batch"]) for run in runs.values())
    for key in ("check_batch", "check_simulations", "check_mean", "check_p99"):
        values = np.full((len(samplers), len(seeds), checks), np.nan)
        for i, name in enumerate(samplers):
            for j, seed in enumerate(seeds):
                curve = runs[name, seed]["curve"][key]
                values[i, j, : len(curve)] = curve
        data[key] = ((*dims, "check"), values)
    budget = settings["n_simulations"]
    points = np.full((len(samplers), len(seeds), budget, simulator.space.dim), np.nan)
    for i, name in enumerate(samplers):
        for j, seed in enumerate(seeds):
            chosen = runs[name, seed]["points"][:budget]
            points[i, j, : len(chosen)] = chosen
    data["points"] = ((*dims, "simulation", "parameter"), points)
    quantile = stats.t.ppf((1 + level) / 2, len(seeds) - 1) if len(seeds) > 1 else np.nan
    for metric, variable in (("p99", "val_p99"), ("mean", "val_mean"), ("max", "val_max")):
        ratio = data[variable] / data[variable].sel(sampler=BASELINE)
        mean = ratio.mean("seed")
        half = quantile * ratio.std("seed", ddof=1) / np.sqrt(len(seeds)) if len(seeds) > 1 else np.nan * mean
        data[f"{metric}_ratio"] = mean
        data[f"{metric}_ratio_low"] = mean - half
        data[f"{metric}_ratio_high"] = mean + half
        data[f"{metric}_ratio"].attrs["description"] = f"{metric} validation error of the sampler / {BASELINE}"
    for key in ("val_mean", "val_p99", "val_max", "weighted_error", "sampler_point_error", "check_mean", "check_p99"):
        data[key].attrs["units"] = simulator.units
    for key in [name for name in data.data_vars if "_ratio" in str(name)]:
        data[key].attrs["units"] = "1"
    data["check_simulations"].attrs["units"] = "simulations"
    data["batches"].attrs["units"] = data["check_batch"].attrs["units"] = "batches"
    data["points"].attrs["units"] = "parameter units (see the simulator's space)"
    data["weighted_error"].attrs["description"] = (
        f"mean error at {settings['n_importance']} fresh draws of the sampler weighted by 1 / density "
        "(simulated beside the budget, only to evaluate)"
    )
    data.attrs.update(
        simulator=repr(simulator),
        **settings,
        baseline=BASELINE,
        confidence_level=level,
        interval="Student t over seeds of the per-seed ratio",
    )
    return data
