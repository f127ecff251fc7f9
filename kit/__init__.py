"""kit: a Jupyter-first research kit for online training, deployment replay and memory planning.

``import kit`` stays light: torch, dask.distributed and matplotlib load only when a submodule needs them.
"""

__version__ = "0.1.0"
