"""What produced an artifact: code version, parameters, seed, package versions, host CPU and GPU."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata

from kit import paths

PACKAGES = ("kit", "numpy", "scipy", "xarray", "torch", "dask", "distributed", "SALib", "matplotlib", "papermill")


def git_state() -> tuple[str, bool]:
    """(commit, dirty) of the project checkout; ("unknown", True) outside a git work tree."""
    where = paths.root()
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown", True
    return commit, bool(status.strip())


def versions() -> dict[str, str]:
    """Python and key package versions (``"absent"`` for a package not installed)."""
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def host_cpu() -> str:
    """The CPU model name and core count."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            model = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model} ({os.cpu_count()} cores)"


def host_gpu() -> str:
    """CUDA device names if torch is already loaded and sees any, else ``"none"`` (never imports torch)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return "none"
    return ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))


def collect(parameters: dict | None = None, seed: int | None = None) -> dict[str, str | int]:
    """Provenance as flat netCDF-safe attributes (strings and ints), prefixed ``provenance_``."""
    commit, dirty = git_state()
    attrs: dict[str, str | int] = {
        "provenance_git_commit": commit,
        "provenance_git_dirty": int(dirty),
        "provenance_created": datetime.now(UTC).isoformat(timespec="seconds"),
        "provenance_host_cpu": host_cpu(),
        "provenance_host_gpu": host_gpu(),
        "provenance_versions": json.dumps(versions(), sort_keys=True),
    }
    if parameters is not None:
        attrs["provenance_parameters"] = json.dumps(parameters, sort_keys=True, default=str)
    if seed is not None:
        attrs["provenance_seed"] = int(seed)
    return attrs
