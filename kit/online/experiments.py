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


def _checks(rows: list[dict]) -> xr.Dataset:
    return xr.Dataset(
        {key: ("batch", [row[key] for row in rows]) for key in ("val_mean", "val_p99", "val_max")},
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
    seed: int = 0,
    client=None,
    n_workers: int = 2,
    progress: bool = True,
) -> xr.Dataset:
    """Validation error over the same number of gradient steps: online over a stream of unique
    simulations vs offline epochs over ``n_offline`` stored simulations. ``error_ratio`` = online /
    offline final mean validation error, per model."""
    every = max(1, batches // 10)
    curves = []
    with connect(client, n_workers=n_workers) as client:
        validation = ValidationSet.simulate(simulator, n_validation, seed=seed + 1, client=client)
        n_online = max(n_offline, -(-batches * batch_size // simulator.steps))
        for name in models:
            study = OnlineStudy(
                simulator,
                n_simulations=n_online,
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
            trainer = Trainer(_model(name, simulator, seed))
            x, y = simulate_dataset(
                simulator, sobol(simulator.space, n_offline, seed=seed + 2), study.encoding, seed=seed, client=client
            )
            offline = _checks(
                train_offline(
                    trainer,
                    x,
                    y,
                    batches=batches,
                    batch_size=batch_size,
                    seed=seed,
                    validation=validation,
                    encoding=study.encoding,
                    validate_every=every,
                )
            )
            curves.append(xr.concat([online, offline], dim=xr.DataArray(["online", "offline"], dims="mode")))
    data = xr.concat(curves, dim=xr.DataArray(list(models), dims="model"))
    final = data.val_mean.isel(batch=-1)
    data["error_ratio"] = final.sel(mode="online") / final.sel(mode="offline")
    data["error_ratio"].attrs["description"] = "online / offline final mean validation error"
    data.attrs.update(
        simulator=repr(simulator), n_offline=n_offline, n_online=n_online, batch_size=batch_size, units=simulator.units
    )
    return data


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
