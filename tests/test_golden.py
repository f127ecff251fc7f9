"""Smoke-profile figure data against small golden netCDF files in tests/golden/.

Data, not pixels: the comparison survives matplotlib and font changes. Every figure's data must have the
golden variables and dimensions; the values of the variables its registry entry lists under ``golden``
(all when omitted) must match. After an intended change of a figure's data, rewrite the files with
``pytest tests/test_golden.py --update-golden`` and review the diff.
"""

import pytest
import xarray as xr

from kit import figures, io, notebooks, paths, report

GOLDEN = paths.root() / "tests" / "golden"
REGISTRY = figures.load_registry()
#: Lines that are noise in an executed notebook: the torch profiler's backend, the kernel's transport warning.
NOISE = ("USDT:", "STAGE:", "SyncActivityProfilerHandler", "without encryption")


def noisy_lines(executed) -> list[str]:
    """Output lines of an executed notebook that hold known noise."""
    texts = [out.get("text", "") for cell in executed.cells for out in cell.get("outputs", [])]
    return [line for text in texts for line in text.splitlines() if any(noise in line for noise in NOISE)]


@pytest.mark.parametrize("fig", REGISTRY, ids=lambda f: f.key)
def test_smoke_figure_data_matches_golden(fig, tmp_path, update_golden):
    (built,) = figures.build([fig], smoke=True, output_root=tmp_path, progress=False)
    data = io.load_dataset(built)
    golden = GOLDEN / fig.paper / f"{fig.id}.nc"
    if update_golden:
        io.save_dataset(data.drop_attrs(), golden)
    assert golden.exists(), f"no golden data for {fig.key}: run pytest {__file__} --update-golden"
    expected = io.load_dataset(golden)
    assert sorted(data.data_vars) == sorted(expected.data_vars)
    assert {name: data[name].dims for name in data.data_vars} == {name: expected[name].dims for name in expected}
    compared = list(expected.data_vars) if fig.golden is None else list(fig.golden)
    xr.testing.assert_allclose(data[compared], expected[compared], rtol=1e-9, atol=1e-9)
    assert noisy_lines(notebooks.read(built.parents[1] / "executed" / f"{fig.id}.ipynb")) == []
    rendered = report.render([fig], {fig.id: report.summarise(fig, data)})  # its reported variables exist
    assert rendered.count("\n| `") == len(fig.report)
