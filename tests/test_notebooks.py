"""Every committed notebook: one parameters cell of typed, commented literals, and no outputs."""

import subprocess

import nbformat
import pytest
from nbformat.v4 import new_code_cell
from papermill.inspection import inspect_notebook

from kit import figures, notebooks, paths

ROOT = paths.root()
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
#: Notebooks that are guides, not paper figures: not registered in any figures.yaml, no runner parameters.
TOURS = ["start_here.ipynb"]


def committed_notebooks():
    listed = subprocess.run(["git", "ls-files", "*.ipynb"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    return [ROOT / name for name in listed] or NOTEBOOKS


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ is empty"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_one_parameters_cell_of_commented_literals(path):
    declared = notebooks.declared_parameters(path)  # raises on a second cell, a non-literal, a missing help
    if path.name not in TOURS:
        assert set(figures.RUNNER_PARAMETERS) <= set(declared)
    if "kit.widgets" in "".join(cell.source for cell in notebooks.read(path).cells):
        assert "interactive" in declared and declared["interactive"].default is False, "widgets need interactive"
    # papermill must see exactly the same parameters (it parses the cell line by line on its own).
    assert list(inspect_notebook(str(path))) == list(declared)


@pytest.mark.parametrize("path", committed_notebooks(), ids=lambda p: p.name)
def test_committed_notebooks_carry_no_outputs(path):
    nb = notebooks.read(path)
    code = [(i, cell) for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    dirty = [i for i, cell in code if cell.outputs or cell.execution_count]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; strip them (pre-commit does)"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


def test_every_notebook_is_registered_as_a_figure():
    used = {fig.notebook.resolve() for fig in figures.load_registry()}
    assert {p.resolve() for p in NOTEBOOKS if p.name not in TOURS} <= used


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ("n = 1\n", r"line 1 \('n = 1'\): add a trailing '# help' comment"),
        ("n = f(1)  # computed\n", "line 1 .*the default must be a literal"),
        ("n, m = 1, 2  # two\n", "line 1 .*the target must be a plain name"),
        ("import os  # no\n", "line 1 .*expected 'name = literal  # help'"),
    ],
)
def test_bad_parameters_cells_are_errors_naming_the_line(tmp_path, source, match):
    from conftest import write_notebook

    path = write_notebook(tmp_path / "bad.ipynb", source)
    with pytest.raises(ValueError, match=match):
        notebooks.declared_parameters(path)


def test_two_parameters_cells_are_an_error(tmp_path):
    from conftest import write_notebook

    path = write_notebook(tmp_path / "two.ipynb", "a = 1  # one")
    nb = notebooks.read(path)
    second = new_code_cell("b = 2  # two", metadata={"tags": ["parameters"]})
    nb.cells.append(second)
    nbformat.write(nb, path)
    with pytest.raises(ValueError, match="has 2 cells tagged 'parameters'; exactly one is required"):
        notebooks.declared_parameters(path)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_stay_thin_no_definitions(path):
    import ast

    for cell in notebooks.read(path).cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            assert not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda), (
                f"{path.name}: move the definition on line {node.lineno} of a cell into kit, with a test"
            )
