"""``kit doctor``: what this environment (a laptop or Binder) lacks to run and explore the kit, and how to fix it.

Required checks fail the command; optional ones (the browser test's Chromium and Playwright) are listed with
their fix without failing it; informational ones (where it runs, the torch device) always pass.
"""

from __future__ import annotations

import os
import shutil
import sys
from importlib import metadata, util
from pathlib import Path
from typing import NamedTuple

FIX_INSTALL = "run 'make test' or 'make lab' once (they build .venv from requirements.lock)"
FIX_BINDER = "the Binder image installs it from binder/environment.yml; rebuild it, or pip install it in the terminal"
#: (module, distribution) pairs needed to run and explore the kit.
PACKAGES = (
    ("jupyterlab", "jupyterlab"),
    ("ipykernel", "ipykernel"),
    ("ipywidgets", "ipywidgets"),
    ("jupyterlab_widgets", "jupyterlab_widgets"),
    ("papermill", "papermill"),
    ("distributed", "distributed"),
    ("torch", "torch"),
    ("xarray", "xarray"),
    ("h5netcdf", "h5netcdf"),
    ("matplotlib", "matplotlib"),
)
WIDGETS_EXTENSION = Path("labextensions", "@jupyter-widgets", "jupyterlab-manager")


class Check(NamedTuple):
    ok: bool
    what: str
    fix: str = ""
    required: bool = True


def on_binder() -> bool:
    """Binder's JupyterHub sets ``BINDER_REQUEST`` or ``BINDER_LAUNCH_HOST`` in the user's environment."""
    return any(name in os.environ for name in ("BINDER_REQUEST", "BINDER_LAUNCH_HOST", "BINDER_REPO_URL"))


def checks() -> list[Check]:
    """Every check, in the order ``kit doctor`` prints them."""
    binder = on_binder()
    fix = FIX_BINDER if binder else FIX_INSTALL
    found = [
        Check(True, f"running on {'Binder' if binder else 'a laptop or server (not Binder)'}", required=False),
        Check(sys.version_info >= (3, 11), f"python {sys.version.split()[0]} ({sys.executable})", "use Python >= 3.11"),
        _kit_installed(binder),
    ]
    for module, package in PACKAGES:
        present = util.find_spec(module) is not None
        found.append(Check(present, f"{package} {metadata.version(package) if present else 'missing'}", fix))
    found += [_widgets_extension(), _kernel(), _device(), _simgrid(), *_browser_test()]
    return found


def _kit_installed(binder: bool) -> Check:
    try:
        version = metadata.version("kit")
    except metadata.PackageNotFoundError:
        where = "binder/postBuild runs it" if binder else "make does it"
        return Check(False, "kit is importable but not installed", f"pip install --no-deps -e . ({where})")
    return Check(True, f"kit {version} installed ({Path(__file__).parent})")


def _widgets_extension() -> Check:
    """The JupyterLab extension that renders ipywidgets (shipped by jupyterlab_widgets)."""
    from jupyter_core.paths import jupyter_path

    places = [Path(p) / WIDGETS_EXTENSION for p in jupyter_path()]
    found = next((p for p in places if p.is_dir()), None)
    if found is None:
        return Check(
            False,
            "JupyterLab widgets extension (@jupyter-widgets/jupyterlab-manager) not found: widgets show as text",
            "pip install jupyterlab_widgets (the version in requirements.lock), then restart JupyterLab",
        )
    return Check(True, f"JupyterLab widgets extension in {found.parent.parent}")


def _kernel() -> Check:
    from kit.figures import KERNEL, kernel_python

    try:
        other = kernel_python()
    except Exception as exc:  # no kernelspec at all
        return Check(False, f"kernel {KERNEL!r}: {exc}", "pip install ipykernel in this environment")
    if other:
        return Check(
            False,
            f"kernel {KERNEL!r} starts {other}, not this environment's {sys.executable}",
            f"remove the stale kernelspec: jupyter kernelspec remove {KERNEL}",
        )
    return Check(True, f"kernel {KERNEL!r} runs {sys.executable}")


def _device() -> Check:
    if util.find_spec("torch") is None:
        return Check(False, "torch device: torch missing", FIX_INSTALL)
    import torch

    if torch.cuda.is_available():
        return Check(True, f"torch device: cuda ({torch.cuda.get_device_name(0)})", required=False)
    return Check(True, "torch device: cpu only (pass device='cuda' where a GPU is present)", required=False)


def _simgrid() -> Check:
    """SimGrid's Python bindings, the replay engine's reference (for the system's Python, not this one)."""
    from kit.replay.reference import INSTALL, simgrid_python

    python = simgrid_python()
    found = f"SimGrid for the replay reference: {python or 'not found'}"
    fix = f"{INSTALL} (Debian/Ubuntu), or set KIT_SIMGRID_PYTHON to a Python that imports simgrid"
    return Check(python is not None, found, fix, required=False)


def _browser_test() -> list[Check]:
    """What ``make test-browser`` needs: Chromium from the distribution and the Playwright package."""
    chromium = shutil.which("chromium")
    playwright = util.find_spec("playwright") is not None
    return [
        Check(
            chromium is not None,
            f"chromium for the browser test: {chromium or 'not found'}",
            "apt-get install -y chromium (Debian/Ubuntu; another system: its chromium package)",
            required=False,
        ),
        Check(
            playwright,
            f"playwright for the browser test: {'present' if playwright else 'missing'}",
            "pip install -r requirements.lock",
            required=False,
        ),  # fmt: skip
    ]


def main() -> int:
    results = checks()
    for check in results:
        label = "ok     " if check.ok else ("MISSING" if check.required else "missing")
        note = "" if check.ok else f"\n        fix: {check.fix}" + ("" if check.required else " (optional)")
        sys.stdout.write(f"{label} {check.what}{note}\n")
    return 0 if all(check.ok for check in results if check.required) else 1
