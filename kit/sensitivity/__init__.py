"""Sensitivity analysis in one pass: Sobol' indices per field cell and running moments.

:class:`IterativeSobol` turns pick-freeze groups (``kit.sampling.pick_freeze``) into first-order and total
indices per output cell (Martinez or Jansen estimators), with confidence intervals, whole-field indices and
exact merging of partial accumulators; :class:`FieldSobol` assembles them per time step from pick-freeze
simulations streamed in any order; :func:`ssim`, :func:`ssim_map`, :func:`psnr`, :func:`psnr_map` and
:class:`SSIMQuantity` compare fields with their physical range (scikit-image); :class:`IterativeMoments`
keeps count, mean, variance, min and max.

Light to import: numpy only (xarray loads in ``IterativeSobol.to_dataset``).
"""

from kit.sensitivity.fields import FieldSobol
from kit.sensitivity.images import SSIMQuantity, psnr, psnr_map, ssim, ssim_map
from kit.sensitivity.moments import IterativeMoments
from kit.sensitivity.sobol import ESTIMATORS, Intervals, IterativeSobol

__all__ = [
    "ESTIMATORS",
    "FieldSobol",
    "Intervals",
    "IterativeMoments",
    "IterativeSobol",
    "SSIMQuantity",
    "psnr",
    "psnr_map",
    "ssim",
    "ssim_map",
]
