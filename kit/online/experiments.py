"""The studies behind papers/online-training: each returns one Dataset that a figure plots."""

from __future__ import annotations

import numpy as np
import xarray as xr

from kit.cluster import connect
from kit.online.offline import simulate_dataset, train_offline
from kit.online.study import OnlineStudy
from kit.online.surrogates import make_surrogate
from kit.online.trainer import Trainer, seeded_model
from kit.online.validation import ValidationSet
from kit.sampling import sobol
from kit.seeding import simulation_seed


def _checks(rows: list[dict]) -> xr.Dataset:
    return xr.Dataset(
        {key: ("batch", [row[key] for row in rows]) for key in ("val_mean", "val_p99", "val_max", "train_mean")},
        coords={"batch": [int(row["batch"]) for row in rows]},
    )


def online_vs_offline(
    simulator,
    *,
    models=("mlp", "conv"),
    n_offline: int = 8,
    batches: int = 200,
    batch_size: int = 32,
    n_validation: int = 8,
    seeds=(0,),
    client=None,
    n_workers: int = 2,
    progress: bool = True,
) -> xr.Dataset:
    """Validation error over the same number of gradient steps, per model and seed: online over a stream
    of unique simulations vs offline epochs over ``n_offline`` stored simulations, all checked on one
    held-out validation set. ``error_ratio`` (model, seed) = online / offline final mean validation RMSE;
    ``error_ratio_mean`` its mean over seeds, ``error_ratio_mean_low`` / ``_high`` its least and largest;
    offline runs also give ``train_mean`` (the error on their stored simulations) and ``overfit_ratio`` (model)
    the final offline validation error over that training error, mean over seeds (above 1: overfitted)."""
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds must hold at least one seed, got none")
    with connect(client, n_workers=n_workers) as client:
        validation = ValidationSet.simulate(simulator, n_validation, client=client)
        settings = {"n_offline": n_offline, "batches": batches, "batch_size": batch_size, "progress": progress}
        runs = {name: [_online_and_offline(simulator, name, s, validation, client, **settings) for s in seeds]
                for name in models}  # fmt: skip
    seed_dim = xr.DataArray(seeds, dims="seed")
    data = xr.concat(
        [xr.concat(rows, dim=seed_dim) for rows in runs.values()], dim=xr.DataArray(list(models), dims="model")
    )
    final = data.val_mean.isel(batch=-1)
    data["error_ratio"] = final.sel(mode="online") / final.sel(mode="offline")
    data["error_ratio"].attrs["description"] = "online / offline final mean validation RMSE at equal gradient steps"
    for key, value in (("mean", data.error_ratio.mean("seed")), ("mean_low", data.error_ratio.min("seed")),
                       ("mean_high", data.error_ratio.max("seed"))):  # fmt: skip
        data[f"error_ratio_{key}"] = value.assign_attrs(description=f"error_ratio over seeds: {key.split('_')[-1]}")
    offline = data.sel(mode="offline").isel(batch=-1)
    data["overfit_ratio"] = (offline.val_mean / offline.train_mean).mean("seed")
    data["overfit_ratio"].attrs["description"] = "final offline validation / training RMSE, mean over seeds"
    data.attrs.update(
        simulator=repr(simulator),
        n_offline=n_offline,
        n_online=_n_online(simulator, n_offline, batches, batch_size),
        batch_size=batch_size,
        units=simulator.units,
    )
    return data


def _online_and_offline(simulator, name, seed, validation, client, *, n_offline, batches, batch_size, progress):
    """Validation curves (dim ``mode``) of one model and seed, trained online and offline."""
    every = max(1, batches // 10)
    study = OnlineStudy(
        simulator,
        n_simulations=_n_online(simulator, n_offline, batches, batch_size),
        sampler="sobol",
        model=name,
        buffer="reservoir",
        capacity=max(4 * batch_size, 2 * simulator.steps),
        watermark=batch_size,
        batch_size=batch_size,
        max_batches=batches,
        validation=validation,
        validate_every=every,
        seed=seed,
        client=client,
    )
    online = study.run(progress=progress).validation.rename(check_batch="batch")
    points = sobol(simulator.space, n_offline, seed=simulation_seed(seed, OFFLINE_POINTS))
    x, y = simulate_dataset(simulator, points, study.encoding, seed=seed, client=client)
    stored = ValidationSet.at(simulator, points, [simulation_seed(seed, i) for i in range(n_offline)], client=client)
    trainer = Trainer(_model(name, simulator, seed))
    offline = train_offline(trainer, x, y, batches=batches, batch_size=batch_size, seed=seed, validation=validation,
                            encoding=study.encoding, validate_every=every, stored=stored)  # fmt: skip
    return xr.concat([online, _checks(offline)], dim=xr.DataArray(["online", "offline"], dims="mode"))


def _n_online(simulator, n_offline: int, batches: int, batch_size: int) -> int:
    """Simulations streamed online: enough that no sample is drawn twice in ``batches`` batches."""
    return max(n_offline, -(-batches * batch_size // simulator.steps))


#: Child of a run's seed that draws its offline simulations (the online ones come from the seed itself).
OFFLINE_POINTS = 1


def _model(name, simulator, seed):
    shape = (len(simulator.y), len(simulator.x))
    return seeded_model(lambda: make_surrogate(name, simulator.space.dim + 1, shape), seed)


def compare_buffers(
    simulator,
    *,
    policies=("fifo", "firo", "reservoir"),
    n_simulations: int = 16,
    capacity: int = 200,
    batch_size: int = 16,
    n_validation: int = 8,
    seed: int = 0,
    client=None,
    n_workers: int = 2,
    progress: bool = True,
) -> xr.Dataset:
    """The same simulation budget through each buffer policy: validation error over wall time and the
    histogram of sample reuse."""
    curves, histograms, batches = [], [], []
    with connect(client, n_workers=n_workers) as client:
        validation = ValidationSet.simulate(simulator, n_validation, seed=seed + 1, client=client)
        for policy in policies:
            study = OnlineStudy(
                simulator,
                n_simulations=n_simulations,
                sampler="sobol",
                buffer=policy,
                capacity=capacity,
                watermark=batch_size,
                batch_size=batch_size,
                validation=validation,
                validate_every=10,
                seed=seed,
                client=client,
            )
            result = study.run(progress=progress)
            checks = result.validation
            seconds = result.metrics.seconds.sel(batch=checks.check_batch).values
            curves.append(
                xr.Dataset(
                    {
                        "val_mean": ("check", checks.val_mean.values),
                        "val_p99": ("check", checks.val_p99.values),
                        "seconds": ("check", seconds),
                        "batch": ("check", checks.check_batch.values),
                    },
                    coords={"check": np.arange(len(seconds))},
                )
            )
            histograms.append(study.buffer.uses_histogram())
            batches.append(study.trainer.batches)
    width = max(len(h) for h in histograms)
    uses = np.array([np.pad(h, (0, width - len(h))) for h in histograms])
    data = xr.concat(curves, dim=xr.DataArray(list(policies), dims="policy"), join="outer")
    data["samples_by_uses"] = (("policy", "uses"), uses)
    data["batches"] = ("policy", batches)
    data["final_val_mean"] = ("policy", [float(c.val_mean[-1]) for c in curves])
    data.attrs.update(simulator=repr(simulator), n_simulations=n_simulations, capacity=capacity)
    return data.assign_coords(uses=np.arange(width))


def data_parallel(
    simulator,
    *,
    trainers=(1, 2),
    model: str = "conv",
    n_simulations: int = 64,
    batch_size: int = 32,
    batches: int = 100,
    n_validation: int = 4,
    repeats: int = 3,
    seed: int = 0,
    n_workers: int = 2,
    progress: bool = True,
) -> xr.Dataset:
    """Samples per second through the trainer and validation error over wall time with each number of
    training ranks in ``trainers`` (1: the study's own process; more: data-parallel ranks on workers of their
    own), ``batches`` gradient steps of ``batch_size`` samples a rank from a reservoir (so training, not the
    simulations, sets the pace); the numbers of ranks alternate in order from one repeat to the next.

    ``samples_per_second`` (trainers, repeat): samples drawn into batches per second from the first batch to
    the last, all ranks together; ``rank_scaling``: that over ``n`` times one rank's in the same repeat
    (median over repeats, ``_low``/``_high`` its range, ``_runs`` each). ``cpu_seconds``: the CPU time of the
    training loops (the study's thread with one rank, each rank's with more; their receiving threads and
    the cluster's are not counted) from the first launch; ``rank_scaling_per_cpu``: samples per CPU second
    of theirs with ``n`` ranks over one rank's, the cost of the ranks themselves where cores are shared.
    """
    trainers = [int(n) for n in trainers]
    if 1 not in trainers:
        raise ValueError(f"trainers must include 1 (the baseline of rank_scaling), got {trainers}")
    runs = {}
    validation = ValidationSet.simulate(simulator, n_validation, seed=seed + 1)
    for repeat in range(repeats):
        for n in trainers if repeat % 2 == 0 else trainers[::-1]:
            # n_workers for the simulations in every run, and a worker of its own for each of several ranks
            with connect(None, n_workers=n_workers + (n if n > 1 else 0)) as client:
                study = OnlineStudy(
                    simulator, n_simulations=n_simulations, sampler="sobol", model=model, buffer="reservoir",
                    capacity=4 * batch_size, watermark=batch_size, batch_size=batch_size, max_batches=batches,
                    validation=validation, validate_every=max(1, batches // 10), seed=seed, client=client, trainers=n,
                )  # fmt: skip
                runs[n, repeat] = study.run(progress=progress), study.run_stats["loop_cpu_seconds"]
    return _scaling(runs, trainers, repeats).assign_attrs(
        simulator=repr(simulator), model=model, batch_size=batch_size, batches=batches, units=simulator.units
    )


def _scaling(runs: dict, trainers: list[int], repeats: int) -> xr.Dataset:
    """The Dataset of :func:`data_parallel` from its results by (ranks, repeat)."""

    def rate(metrics):
        consumed, seconds = metrics.consumed.values, metrics.seconds.values
        return (consumed[-1] - consumed[0]) / (seconds[-1] - seconds[0])

    checks = max(len(result.validation.check_batch) for result, _ in runs.values())
    shape = (len(trainers), repeats)
    data = {name: np.full((*shape, checks), np.nan) for name in ("val_mean", "check_seconds")}
    per_rank = np.full((*shape, max(trainers)), np.nan)
    rates, cpu, per_cpu = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    for (n, repeat), (result, cpu_seconds) in runs.items():
        i = trainers.index(n)
        rates[i, repeat] = rate(result.metrics)
        cpu[i, repeat] = cpu_seconds
        per_cpu[i, repeat] = result.metrics.consumed.values[-1] / cpu_seconds
        ranks = result.ranks
        for rank in range(n):
            per_rank[i, repeat, rank] = rate(ranks.sel(rank=rank))
        validation = result.validation
        k = len(validation.check_batch)
        data["val_mean"][i, repeat, :k] = validation.val_mean.values
        data["check_seconds"][i, repeat, :k] = result.metrics.seconds.sel(batch=validation.check_batch).values
    dims = ("trainers", "repeat")
    out = xr.Dataset(
        {
            "samples_per_second": (dims, rates, {"units": "samples/s"}),
            "cpu_seconds": (dims, cpu, {"units": "s"}),
            "samples_per_cpu_second": (dims, per_cpu, {"units": "samples/s"}),
            "rank_samples_per_second": ((*dims, "rank"), per_rank, {"units": "samples/s"}),
            "val_mean": ((*dims, "check"), data["val_mean"]),
            "check_seconds": ((*dims, "check"), data["check_seconds"], {"units": "s"}),
        },
        coords={"trainers": trainers, "repeat": np.arange(repeats), "rank": np.arange(max(trainers))},
    )
    for name, scaling in (
        ("rank_scaling", out.samples_per_second / (out.trainers * out.samples_per_second.sel(trainers=1))),
        ("rank_scaling_per_cpu", out.samples_per_cpu_second / out.samples_per_cpu_second.sel(trainers=1)),
    ):
        out[f"{name}_runs"] = scaling
        for suffix, value in (("", scaling.median("repeat")), ("_low", scaling.min("repeat")),
                              ("_high", scaling.max("repeat"))):  # fmt: skip
            out[f"{name}{suffix}"] = value
    return out
