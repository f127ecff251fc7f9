"""Where the project's folders are: the repository root, notebooks/ and papers/."""

from __future__ import annotations

import os
from pathlib import Path

ROOT_ENV = "KIT_ROOT"


def root() -> Path:
    """The project root: ``$KIT_ROOT`` if set, else the folder above the ``kit`` package."""
    env = os.environ.get(ROOT_ENV)
    if env:
        path = Path(env).expanduser().resolve()
        if not path.is_dir():
            raise FileNotFoundError(f"{ROOT_ENV}={env!r} is not a folder")
        return path
    return Path(__file__).resolve().parent.parent


def notebooks() -> Path:
    """The ``notebooks/`` folder."""
    return root() / "notebooks"


def papers() -> Path:
    """The ``papers/`` folder, one sub-folder per paper."""
    return root() / "papers"


def package() -> Path:
    """The folder of the ``kit`` package itself."""
    return Path(__file__).resolve().parent


def kit_sources() -> list[Path]:
    """Every Python source of the ``kit`` package, sorted (used to hash what a figure depends on)."""
    return sorted(p for p in package().rglob("*.py") if "__pycache__" not in p.parts)
