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
    """Every module a file imports; ``from kit import x`` counts as ``kit.x``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            if node.module == "kit":
                found |= {f"kit.{alias.name}" for alias in node.names}
    return found


def kit_parts(path):
    return {name.split(".")[1] for name in imports(path) if name.startswith("kit.")}


MODULES = {path: path.relative_to(PACKAGE).with_suffix("").parts for path in sorted(PACKAGE.rglob("*.py"))}


@pytest.mark.parametrize("path", [p for p, parts in MODULES.items() if parts[0] in FOUNDATIONS], ids=str)
def test_foundations_import_no_other_kit_module_than_foundations(path):
    assert kit_parts(path) <= FOUNDATIONS, f"{path.name} imports {kit_parts(path) - FOUNDATIONS}"


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
    code = (
        "import sys, kit.online.producer, kit.online.baselines, kit.simulators.premade; print('torch' in sys.modules)"
    )
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        == "False"
    )


PILLARS = {"simulators", "sampling", "sensitivity", "online", "replay", "memory"}


@pytest.mark.parametrize("path", [p for p, parts in MODULES.items() if parts[0] in PILLARS], ids=str)
def test_pillars_never_import_presentation_or_orchestration(path):
    upward = kit_parts(path) & (PRESENTATION | ORCHESTRATION)
    assert not upward, f"{path.relative_to(PACKAGE)} imports kit.{upward}"


@pytest.mark.parametrize("path", list(MODULES), ids=str)
def test_only_figures_and_cli_know_papermill(path):
    if MODULES[path][0] in ("figures", "cli"):
        return
    assert not any(name.split(".")[0] == "papermill" for name in imports(path)), f"{path.name} imports papermill"


@pytest.mark.parametrize("path", [p for p, parts in MODULES.items() if parts[0] == "memory"], ids=str)
def test_memory_knows_nothing_of_online_or_replay(path):
    assert not kit_parts(path) & {"online", "replay"}, f"{path.relative_to(PACKAGE)} imports {kit_parts(path)}"
