"""The dependency rules of design.md section 3, read from the imports of every module."""

import ast
import subprocess
import sys

import pytest

from kit import paths

PACKAGE = paths.root() / "kit"
FOUNDATIONS = {"space", "seeding", "provenance", "paths", "io"}
PRESENTATION = {"plots", "widgets"}
ORCHESTRATION = {"figures", "cli", "notebooks", "doctor"}
GUI_OR_RUNNER = {"matplotlib", "ipywidgets", "papermill", "IPython"}


def imports(path):
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


MODULES = {path: path.relative_to(PACKAGE).with_suffix("").parts for path in sorted(PACKAGE.rglob("*.py"))}


@pytest.mark.parametrize("path", [p for p, parts in MODULES.items() if parts[0] in FOUNDATIONS], ids=str)
def test_foundations_import_no_other_kit_module_than_foundations(path):
    kit_imports = {name.split(".")[1] for name in imports(path) if name.startswith("kit.")}
    kit_imports |= {n.split(".")[0] for n in imports(path) if n == "kit"}
    assert kit_imports <= FOUNDATIONS | {"kit"}, f"{path.name} imports {kit_imports - FOUNDATIONS}"


@pytest.mark.parametrize(
    "path", [p for p, parts in MODULES.items() if parts[0] not in PRESENTATION | ORCHESTRATION], ids=str
)
def test_computation_modules_never_import_plotting_widgets_or_papermill(path):
    heavy = {name for name in imports(path) if name.split(".")[0] in GUI_OR_RUNNER}
    assert not heavy, f"{path.relative_to(PACKAGE)} imports {heavy}"


def test_import_kit_stays_light():
    code = (
        "import sys, kit, kit.space, kit.seeding, kit.simulators, kit.paths;"
        "heavy = ('torch', 'matplotlib', 'dask', 'distributed', 'papermill', 'ipywidgets');"
        "heavy = [m for m in heavy if m in sys.modules];"
        "print(','.join(heavy))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "", f"importing kit loaded {loaded}"


def test_workers_unpickling_the_producer_do_not_import_torch():
    code = "import sys, kit.online.producer; print('torch' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        == "False"
    )
