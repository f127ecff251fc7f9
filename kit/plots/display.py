"""Figures shown as PNG in Jupyter: kit never imports pyplot, whose inline backend would register that."""

from __future__ import annotations

import sys


def register_png_display() -> bool:
    """In an IPython kernel, display ``matplotlib.figure.Figure`` as a PNG image (not ``<Figure size ...>``).

    Does nothing outside IPython (and never imports it); returns whether a kernel was found.
    """
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return False
    from IPython.core.pylabtools import select_figure_formats

    select_figure_formats(shell, {"png"})
    return True
