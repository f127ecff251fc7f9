import os
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", help="rewrite tests/golden/ from the current code")
    parser.addoption("--browser", action="store_true", help="run the real-browser tests (make test-browser)")


def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto``: a process per core, at most four (each test file may start a dask cluster of its own)."""
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def pytest_collection_modifyitems(config, items):
    """Real-browser tests run only when asked (``--browser``): they need Chromium and start JupyterLab."""
    if config.getoption("--browser"):
        return
    skip = pytest.mark.skip(reason="real-browser test: run it with 'make test-browser' (pytest --browser)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def update_golden(request) -> bool:
    return request.config.getoption("--update-golden")


@pytest.fixture(scope="module")
def cluster_client():
    """A real LocalCluster of two single-thread worker processes, shared by the tests of one module."""
    from kit.cluster import connect

    with connect(None, n_workers=2) as client:
        yield client


def write_notebook(path: Path, parameters: str, *cells: str) -> Path:
    """A notebook with one ``parameters`` cell and the given code cells."""
    nb = new_notebook()
    cell = new_code_cell(parameters)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, *(new_code_cell(source) for source in cells)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def pick_freeze_fields(sim, study_seed, n_groups, step):
    """Fields at ``step`` of the pick-freeze simulations a study with ``study_seed`` runs, as float32 streams."""
    from kit.sampling import PickFreezeSampler
    from kit.seeding import simulation_seed

    sampler_seed = np.random.SeedSequence(study_seed).spawn(3)[0]  # the study's sampler stream
    points = PickFreezeSampler(sim.space, sampler_seed).ask(n_groups * (sim.space.dim + 2))
    group = sim.space.dim + 2  # the rows of a group share its first row's seed
    fields = [sim.trajectory(p, seed=simulation_seed(study_seed, i - i % group)).values[step - 1]
              for i, p in enumerate(points)]  # fmt: skip
    return np.array(fields, dtype=np.float32).reshape(n_groups, sim.space.dim + 2, *fields[0].shape)
