"""``kit doctor``: what this environment lacks to run and explore the kit, and how to fix it."""

from __future__ import annotations

import sys
from importlib import metadata, util

FIX_INSTALL = "run 'make test' or 'make lab' once (they build .venv from requirements.lock)"


def checks() -> list[tuple[bool, str, str]]:
    """(ok, what, how to fix) for each requirement."""
    found = [
        (sys.version_info >= (3, 11), f"python {sys.version.split()[0]} ({sys.executable})", "use Python >= 3.11"),
    ]
    for module, package in (
        ("ipykernel", "ipykernel"),
        ("ipywidgets", "ipywidgets"),
        ("jupyterlab_widgets", "jupyterlab_widgets"),
        ("papermill", "papermill"),
        ("distributed", "distributed"),
        ("torch", "torch"),
        ("xarray", "xarray"),
        ("h5netcdf", "h5netcdf"),
    ):
        present = util.find_spec(module) is not None
        version = metadata.version(package) if present else "missing"
        found.append((present, f"{package} {version}", FIX_INSTALL))
    found.append(_kernel())
    found.append(_device())
    return found


def _kernel() -> tuple[bool, str, str]:
    from kit.figures import KERNEL, kernel_python

    try:
        other = kernel_python()
    except Exception as exc:  # no kernelspec at all
        return False, f"kernel {KERNEL!r}: {exc}", "pip install ipykernel in this environment"
    if other:
        return (
            False,
            f"kernel {KERNEL!r} starts {other}, not this environment's {sys.executable}",
            f"remove the stale kernelspec: jupyter kernelspec remove {KERNEL}",
        )
    return True, f"kernel {KERNEL!r} runs {sys.executable}", ""


def _device() -> tuple[bool, str, str]:
    if util.find_spec("torch") is None:
        return False, "torch device: torch missing", FIX_INSTALL
    import torch

    if torch.cuda.is_available():
        return True, f"torch device: cuda ({torch.cuda.get_device_name(0)})", ""
    return True, "torch device: cpu only (pass device='cuda' where a GPU is present)", ""


def main() -> int:
    results = checks()
    for ok, what, fix in results:
        sys.stdout.write(f"{'ok     ' if ok else 'MISSING'} {what}" + ("" if ok else f"\n        fix: {fix}") + "\n")
    return 0 if all(ok for ok, _, _ in results) else 1
