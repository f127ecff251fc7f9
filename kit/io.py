"""xarray Datasets to and from netCDF (engine h5netcdf), with provenance attributes."""

from __future__ import annotations

import os
from pathlib import Path

import xarray as xr

from kit import provenance

ENGINE = "h5netcdf"


def save_dataset(ds: xr.Dataset, path: str | os.PathLike, *, parameters: dict | None = None, seed=None) -> Path:
    """Write ``ds`` to ``path`` (netCDF, h5netcdf) with provenance attributes added; returns the path.

    Attributes already set on ``ds`` win over collected ones, so a runner can stamp its own parameters.
    """
    path = Path(path)
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"save_dataset takes an xarray.Dataset, got {type(ds).__name__}")
    path.parent.mkdir(parents=True, exist_ok=True)
    out = ds.copy()
    out.attrs = {**provenance.collect(parameters, seed), **ds.attrs}
    tmp = path.with_suffix(path.suffix + ".part")
    out.to_netcdf(tmp, engine=ENGINE)
    os.replace(tmp, path)
    return path


def load_dataset(path: str | os.PathLike) -> xr.Dataset:
    """Read a netCDF file fully into memory (the file is closed on return)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no netCDF file at {str(path)!r}")
    try:
        with xr.open_dataset(path, engine=ENGINE) as ds:
            return ds.load()
    except OSError as exc:
        raise ValueError(f"{str(path)!r} is not a readable netCDF4/HDF5 file: {exc}") from exc
