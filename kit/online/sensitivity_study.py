"""One simulation budget for two uses: Sobol' maps of a field and an online-trained surrogate, from the same runs."""

from __future__ import annotations

import numpy as np
import xarray as xr

from kit.cluster import connect
from kit.online.study import OnlineStudy
from kit.online.validation import ValidationSet
from kit.sensitivity import FieldSobol, SSIMQuantity


def kept_steps(simulator, n_maps: int) -> list[int]:
    """``n_maps`` step indices spread evenly from the first step to the last (fewer if the run is shorter).

    >>> from kit.simulators import Heat2D
    >>> kept_steps(Heat2D(n=8, steps=10), 3)
    [1, 6, 10]
    """
    if isinstance(n_maps, bool) or not isinstance(n_maps, int) or n_maps < 1:
        raise ValueError(f"n_maps must be an int >= 1, got {n_maps!r}")
    return sorted({int(round(s)) for s in np.linspace(1, simulator.steps, n_maps)})


def sensitivity_study(
    simulator,
    *,
    n_groups: int = 8,
    n_maps: int = 3,
    n_validation: int = 4,
    seed: int = 0,
    client=None,
    n_workers: int = 2,
    progress: bool = True,
    **study_options,
) -> xr.Dataset:
    """Run ``n_groups`` pick-freeze groups (``n_groups * (d + 2)`` simulations) through an online study.

    The same streamed steps train the surrogate and feed a :class:`~kit.sensitivity.FieldSobol` at
    ``n_maps`` times, with the SSIM against the run at the centre of the space (same seed as the study,
    physical ``data_range`` = ``simulator.field_range``) as a scalar quantity. Returns the Sobol' Dataset
    (``S1``, ``ST`` per cell, ``*_field``, ``*_ssim``) with the surrogate's final validation error
    (``val_mean``, ``val_p99``, ``val_max``) beside it, and for a simulator with exact maps (``Heat2D``)
    ``S_exact`` and the largest errors per step. ``study_options`` go to :class:`OnlineStudy`.
    """
    d = simulator.space.dim
    centre = simulator.space.scale(np.full((1, d), 0.5))[0]
    reference = simulator.trajectory(centre, seed=seed).values
    quantity = SSIMQuantity(reference, simulator.field_range)
    maps = FieldSobol(d, reference.shape[1:], kept_steps(simulator, n_maps), quantities={"ssim": quantity})
    with connect(client, n_workers=n_workers) as client:
        validation = ValidationSet.simulate(simulator, n_validation, seed=seed + 1, client=client)
        study = OnlineStudy(
            simulator,
            n_simulations=n_groups * (d + 2),
            sampler="pick_freeze",
            sensitivity=maps,
            validation=validation,
            seed=seed,
            client=client,
            **study_options,
        )
        result = study.run(progress=progress)
    data = result.sensitivity
    if hasattr(simulator, "exact_sobol_maps"):  # a model with exact maps (heat): the error of the estimate
        exact = simulator.exact_sobol_maps()[:, np.asarray(data.step) - 1]
        data["S_exact"] = (("parameter", "step", "y", "x"), exact, {"units": "1"})
        data["S1_max_error"] = abs(data.S1 - data.S_exact).max(("parameter", "y", "x"))
        data["ST_max_error"] = abs(data.ST - data.S_exact).max(("parameter", "y", "x"))
    for key, value in result.validation.isel(check_batch=-1).items():
        data[key] = value.drop_vars("check_batch")
        data[key].attrs["units"] = simulator.units
    data.attrs.update(
        simulator=repr(simulator),
        n_simulations=n_groups * (d + 2),
        batches=study.trainer.batches,
        ssim_reference=str(dict(zip(simulator.space.names, centre.tolist(), strict=True))),
        ssim_data_range=str(tuple(simulator.field_range)),
    )
    return data
