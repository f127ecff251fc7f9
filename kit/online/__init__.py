"""Online training: simulations on dask stream time steps to a PyTorch trainer while they run.

:class:`OnlineStudy` runs one study; buffers (:func:`make_buffer`: FIFO, FIRO, Reservoir), surrogates
(:func:`make_surrogate`: MLP, conv decoder) and :class:`ValidationSet` are its parts.
"""

from kit.online.buffers import FIFO, FIRO, Reservoir, Sample, make_buffer
from kit.online.study import OnlineStudy, StudyError
from kit.online.surrogates import make_surrogate
from kit.online.validation import ValidationSet

__all__ = [
    "FIFO",
    "FIRO",
    "OnlineStudy",
    "Reservoir",
    "Sample",
    "StudyError",
    "ValidationSet",
    "make_buffer",
    "make_surrogate",
]
