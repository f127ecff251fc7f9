import json

import numpy as np
import pytest
import xarray as xr

from kit import io, provenance


def test_round_trip_keeps_data_and_adds_provenance(tmp_path):
    ds = xr.Dataset(
        {"temperature": (("y", "x"), np.arange(6.0).reshape(2, 3), {"units": "K"})},
        coords={"x": [0.1, 0.2, 0.3], "y": [0.0, 1.0]},
        attrs={"note": "mine"},
    )
    path = io.save_dataset(ds, tmp_path / "sub" / "out.nc", parameters={"n": 3, "points": [[1, 2]]}, seed=7)
    back = io.load_dataset(path)
    xr.testing.assert_identical(back.drop_attrs(), ds.drop_attrs())
    assert back.temperature.attrs["units"] == "K"
    assert back.attrs["note"] == "mine"
    assert json.loads(back.attrs["provenance_parameters"]) == {"n": 3, "points": [[1, 2]]}
    assert back.attrs["provenance_seed"] == 7
    versions = json.loads(back.attrs["provenance_versions"])
    assert {"python", "kit", "numpy", "torch", "dask", "xarray"} <= set(versions)
    for key in ("provenance_git_commit", "provenance_git_dirty", "provenance_host_cpu", "provenance_host_gpu"):
        assert key in back.attrs
    assert not list(tmp_path.glob("sub/*.part"))


def test_git_state_reads_this_checkout():
    commit, dirty = provenance.git_state()
    assert commit == "unknown" or len(commit) == 40
    assert isinstance(dirty, bool)


def test_missing_and_corrupt_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no netCDF file at .*absent.nc"):
        io.load_dataset(tmp_path / "absent.nc")
    bad = tmp_path / "bad.nc"
    bad.write_text("not netcdf")
    with pytest.raises(ValueError, match="bad.nc.* is not a readable netCDF4/HDF5 file"):
        io.load_dataset(bad)


def test_save_rejects_non_datasets(tmp_path):
    with pytest.raises(TypeError, match="takes an xarray.Dataset, got DataArray"):
        io.save_dataset(xr.DataArray([1.0]), tmp_path / "x.nc")
