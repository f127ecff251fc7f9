"""Online training: simulations on dask stream time steps to a PyTorch trainer while they run.

:class:`OnlineStudy` runs one study; buffers (:func:`make_buffer`: FIFO, FIRO, Reservoir), surrogates
(:func:`make_surrogate`: MLP, conv decoder) and :class:`ValidationSet` are its parts. The names that
need torch load it on first use, so dask workers, which only unpickle :mod:`kit.online.producer`, never do.
"""

from importlib import import_module

from kit.online.buffers import FIFO, FIRO, Batch, Reservoir, make_buffer

_LAZY = {
    "OnlineStudy": "kit.online.study",
    "StudyError": "kit.online.study",
    "ValidationSet": "kit.online.validation",
    "make_surrogate": "kit.online.surrogates",
}

__all__ = ["FIFO", "FIRO", "Batch", "Reservoir", "make_buffer", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kit.online' has no attribute {name!r}")
