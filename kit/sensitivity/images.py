"""Image metrics between 2D fields: SSIM (map and mean) and PSNR, from scikit-image.

Both metrics take the *physical* range of the study (``data_range``: a width ``> 0`` or a simulator's
``field_range`` pair such as ``Heat2D.field_range == (100, 500)``), never the min/max of each image, so
values are comparable across parameters. SSIM is that of Wang et al. (2004): an 11-tap Gaussian window
(``gaussian_weights=True, sigma=1.5``) and population covariances (``use_sample_covariance=False``).

Note that SSIM compares absolute levels (its luminance term), so it is invariant to a common change of
unit scale of the fields and ``data_range`` but not to a common offset: use one unit (e.g. kelvin)
throughout a study. scikit-image is imported on first use.
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np

__all__ = ["SSIM_OPTIONS", "SSIM_PAD", "SSIMQuantity", "psnr", "psnr_map", "ssim", "ssim_map"]

#: Options of ``skimage.metrics.structural_similarity`` that give Wang et al.'s SSIM.
SSIM_OPTIONS = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}

#: Half-width of the Gaussian window (``int(3.5 * 1.5 + 0.5)``; 11 taps). :func:`ssim` is the mean of
#: :func:`ssim_map` with this many cells cropped off each side, as scikit-image computes it.
SSIM_PAD = 5

_MIN_SIDE = 2 * SSIM_PAD + 1


def ssim(a, b, data_range) -> float:
    """Mean structural similarity of two 2D fields (1 for identical fields).

    ``data_range`` is the physical range: a float ``> 0`` or a pair ``(low, high)``. Fields must have the
    same shape, at least 11x11 (the Gaussian window), and finite values.

    >>> field = np.linspace(100.0, 500.0, 256).reshape(16, 16)
    >>> ssim(field, field, data_range=(100, 500))
    1.0
    >>> round(ssim(field, field + 40.0, data_range=400.0), 4)
    0.9918
    """
    return float(_structural_similarity(a, b, data_range, full=False))


def ssim_map(a, b, data_range) -> np.ndarray:
    """The local SSIM at every cell, an array of the fields' shape (same arguments as :func:`ssim`).

    Near the borders the window is reflected; :func:`ssim` equals
    ``ssim_map(a, b, r)[SSIM_PAD:-SSIM_PAD, SSIM_PAD:-SSIM_PAD].mean()``, not the mean of the whole map.
    """
    _, local = _structural_similarity(a, b, data_range, full=True)
    return np.asarray(local, dtype=float)


def psnr(a, b, data_range) -> float:
    """Peak signal-to-noise ratio ``10 log10(R^2 / mean((a - b)^2))`` in dB, ``R`` the physical range.

    Identical fields give ``inf`` (no error), without a warning.

    >>> field = np.zeros((4, 4))
    >>> psnr(field, field + 4.0, data_range=400.0)  # 10 log10(400^2 / 4^2)
    40.0
    >>> psnr(field, field, data_range=(0, 1))
    inf
    """
    from skimage.metrics import peak_signal_noise_ratio

    a, b = _check_pair(a, b, min_side=1)
    width = _check_data_range(data_range)
    if np.array_equal(a, b):
        return math.inf
    return float(peak_signal_noise_ratio(a, b, data_range=width))


def psnr_map(a, b, data_range) -> np.ndarray:
    """Local PSNR in dB at every cell: ``10 log10(R^2 / mse)`` with the squared error averaged over the
    same Gaussian window as SSIM (sigma 1.5, 11 taps, reflected borders); ``inf`` where the fields agree.

    >>> field = np.zeros((4, 4))
    >>> psnr_map(field, field + 4.0, data_range=400.0).round(6).min()  # a uniform error: psnr everywhere
    np.float64(40.0)
    """
    from scipy.ndimage import gaussian_filter

    a, b = _check_pair(a, b, min_side=1)
    width = _check_data_range(data_range)
    local = gaussian_filter((a - b) ** 2, sigma=SSIM_OPTIONS["sigma"], truncate=3.5, mode="reflect")
    out = np.full(local.shape, math.inf)
    np.divide(width**2, local, out=out, where=local > 0)
    return np.where(np.isinf(out), math.inf, 10 * np.log10(out))


class SSIMQuantity:
    """The SSIM of a field against the same time step of a reference trajectory: a scalar per time step.

    ``reference`` is an array ``(steps, ny, nx)`` (e.g. the run at the centre of the parameter space) and
    ``data_range`` the physical range (see :func:`ssim`). ``quantity(step, field)`` with a 1-based
    ``step`` (``Step.index``) returns ``ssim(field, reference[step - 1], data_range)``: the quantity of
    interest whose Sobol' indices are computed per time step.

    >>> reference = np.linspace(0.0, 1.0, 2 * 144).reshape(2, 12, 12)
    >>> quantity = SSIMQuantity(reference, data_range=(0, 1))
    >>> quantity(2, reference[1]), quantity.steps
    (1.0, 2)
    """

    def __init__(self, reference, data_range):
        reference = _as_float_array(reference, "reference")
        if reference.ndim != 3:
            raise ValueError(f"reference must be an array (steps, ny, nx) of fields, got shape {reference.shape}")
        if reference.shape[0] < 1 or min(reference.shape[1:]) < _MIN_SIDE:
            raise ValueError(
                f"reference must hold at least one step of fields at least {_MIN_SIDE}x{_MIN_SIDE} "
                f"(the SSIM window), got shape {reference.shape}"
            )
        if not np.isfinite(reference).all():
            raise ValueError("reference has non-finite values (nan or inf); SSIM needs finite fields")
        self.data_range = _check_data_range(data_range)
        self.reference = reference.copy()
        self.reference.flags.writeable = False

    @property
    def steps(self) -> int:
        """Number of time steps of the reference."""
        return self.reference.shape[0]

    def __call__(self, step: int, field) -> float:
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or not 1 <= step <= self.steps:
            raise ValueError(f"step must be an int from 1 to {self.steps} (1-based, as Step.index), got {step!r}")
        field = _check_field(field, "field")
        if field.shape != self.reference.shape[1:]:
            raise ValueError(f"field has shape {field.shape}, the reference fields {self.reference.shape[1:]}")
        return ssim(field, self.reference[int(step) - 1], self.data_range)

    def __repr__(self) -> str:
        return f"SSIMQuantity(reference shape={self.reference.shape}, data_range={self.data_range:g})"


# ---------------------------------------------------------------------------------------------- checks


def _structural_similarity(a, b, data_range, *, full: bool):
    from skimage.metrics import structural_similarity

    a, b = _check_pair(a, b, min_side=_MIN_SIDE)
    width = _check_data_range(data_range)
    return structural_similarity(a, b, data_range=width, full=full, **SSIM_OPTIONS)


def _check_data_range(data_range) -> float:
    """The width of ``data_range`` (a float > 0 or a pair (low, high) with high > low), else ValueError."""
    valid = (
        "pass the physical range of the study: a finite float > 0 or a pair (low, high) with high > low, "
        "such as a simulator's field_range (never per-image min/max)"
    )

    def number(value) -> bool:
        return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)

    if number(data_range):
        if data_range > 0:
            return float(data_range)
    elif isinstance(data_range, (tuple, list, np.ndarray)) and len(data_range) == 2:
        low, high = data_range
        if number(low) and number(high) and high > low:
            return float(high) - float(low)
    raise ValueError(f"invalid data_range {data_range!r}: {valid}")


def _as_float_array(value, name: str) -> np.ndarray:
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric array, got {type(value).__name__}: {exc}") from exc
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"{name} must hold real numbers, got dtype {array.dtype}")
    return array.astype(float, copy=False)


def _check_field(value, name: str, min_side: int = _MIN_SIDE) -> np.ndarray:
    field = _as_float_array(value, name)
    if field.ndim != 2:
        raise ValueError(f"{name} must be a 2D field (ny, nx), got shape {field.shape}")
    if min(field.shape) < min_side:
        need = "not be empty" if min_side == 1 else f"be at least {min_side}x{min_side} (the SSIM window)"
        raise ValueError(f"{name} must {need}, got shape {field.shape}")
    if not np.isfinite(field).all():
        raise ValueError(f"{name} has non-finite values (nan or inf); image metrics need finite fields")
    return field


def _check_pair(a, b, *, min_side: int) -> tuple[np.ndarray, np.ndarray]:
    a, b = _check_field(a, "a", min_side), _check_field(b, "b", min_side)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got a {a.shape} and b {b.shape}")
    return a, b
