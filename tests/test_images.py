"""Image metrics between fields (kit.sensitivity.images) against hand computations and scikit-image."""

import math
import warnings

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from kit.sensitivity.images import SSIM_PAD, SSIMQuantity, psnr, psnr_map, ssim, ssim_map
from kit.simulators import GrayScott, Heat2D

R = 400.0  # Heat2D.field_range width


def fields(seed=0, shape=(32, 40)):
    """Two smooth, different temperature-like fields in [100, 500]."""
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(np.linspace(0, 1, shape[0]), np.linspace(0, 1, shape[1]), indexing="ij")
    a = 300 + 150 * np.sin(3 * x) * np.cos(2 * y) + 5 * rng.normal(size=shape)
    b = 280 + 120 * np.sin(3 * x + 0.4) * np.cos(2 * y) + 5 * rng.normal(size=shape)
    return a, b


def test_identical_fields_give_ssim_one_and_psnr_inf_without_warnings():
    a, _ = fields()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ssim(a, a, Heat2D.field_range) == 1.0
        assert psnr(a, a, Heat2D.field_range) == math.inf
        np.testing.assert_array_equal(ssim_map(a, a, R), np.ones(a.shape))


@pytest.mark.parametrize(("c", "data_range"), [(4.0, 400.0), (-40.0, (100, 500)), (0.01, GrayScott.field_range)])
def test_psnr_of_a_constant_offset_is_10_log10_r2_over_c2(c, data_range):
    a, _ = fields(1)
    width = data_range if np.isscalar(data_range) else data_range[1] - data_range[0]
    assert psnr(a, a + c, data_range) == pytest.approx(10 * math.log10(width**2 / c**2), rel=1e-12)


def test_ssim_is_skimage_wang_et_al_with_the_physical_range():
    a, b = fields()
    wang = structural_similarity(a, b, data_range=R, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert ssim(a, b, R) == wang
    assert ssim(a, b, Heat2D.field_range) == wang  # a (low, high) pair means its width
    # skimage's defaults (7x7 uniform window, sample covariance) give another number: the options matter
    assert abs(structural_similarity(a, b, data_range=R) - wang) > 1e-3


def test_ssim_does_not_depend_on_per_image_min_max():
    """Stretching the dynamic range of one field changes SSIM with a fixed data_range; a per-image min/max
    normalisation (the mistake to avoid) would not see it at all."""
    a, b = fields()
    stretched = b.mean() + 1.5 * (b - b.mean())

    def per_image(x, y):  # the mistake: each image scaled by its own min/max
        scale = [(z - z.min()) / (z.max() - z.min()) for z in (x, y)]
        return structural_similarity(*scale, data_range=1.0, gaussian_weights=True, sigma=1.5)

    assert per_image(a, stretched) == pytest.approx(per_image(a, b), rel=1e-12)
    assert abs(ssim(a, stretched, R) - ssim(a, b, R)) > 0.01
    # and the range used is the physical one: the per-image range of b gives another value
    assert abs(ssim(a, b, R) - ssim(a, b, float(np.ptp(b)))) > 1e-3


def test_ssim_follows_a_change_of_unit_scale_but_not_a_common_offset():
    """SSIM is invariant to scaling both fields and data_range by the same factor; it is NOT invariant to
    adding the same offset to both fields even with a fixed data_range, because its luminance term
    (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1) compares absolute levels: keep one unit (kelvin) in a study."""
    a, b = fields()
    assert ssim(1e-3 * a, 1e-3 * b, 1e-3 * R) == pytest.approx(ssim(a, b, R), rel=1e-10)
    np.testing.assert_allclose(ssim_map(2 * a, 2 * b, 2 * R), ssim_map(a, b, R), rtol=1e-10)
    assert abs(ssim(a - 273.15, b - 273.15, R) - ssim(a, b, R)) > 1e-3


def test_ssim_is_the_mean_of_the_map_with_the_window_radius_cropped():
    a, b = fields(2, shape=(24, 30))
    local = ssim_map(a, b, R)
    assert local.shape == a.shape and local.dtype == np.float64
    assert SSIM_PAD == 5  # 11-tap Gaussian window: int(3.5 * 1.5 + 0.5)
    assert ssim(a, b, R) == pytest.approx(local[SSIM_PAD:-SSIM_PAD, SSIM_PAD:-SSIM_PAD].mean(), rel=1e-14)
    assert abs(ssim(a, b, R) - local.mean()) > 1e-4  # not the mean of the whole map


@pytest.mark.parametrize(
    "data_range", [None, 0, -400.0, math.nan, math.inf, True, "400", (500, 100), (100, 100), (1, 2, 3), (100, math.nan)]
)
def test_bad_data_range_is_an_error_saying_what_is_valid(data_range):
    a, b = fields()
    for metric in (ssim, ssim_map, psnr):
        with pytest.raises(ValueError, match=r"data_range .*float > 0 or a pair \(low, high\) with high > low"):
            metric(a, b, data_range)
    with pytest.raises(ValueError, match="data_range"):
        SSIMQuantity(a[None], data_range)


@pytest.mark.parametrize(
    ("a", "b", "match"),
    [
        (np.ones((12, 12)), np.ones((12, 13)), r"a and b must have the same shape, got a \(12, 12\) and b \(12, 13\)"),
        (np.ones((2, 12, 12)), np.ones((12, 12)), r"^a must be a 2D field"),
        (np.ones((12, 12)), np.ones(144), r"^b must be a 2D field"),
        (np.full((12, 12), np.nan), np.ones((12, 12)), "^a has non-finite values"),
        (np.ones((12, 12)), np.full((12, 12), np.inf), "^b has non-finite values"),
        (np.ones((12, 12)), np.full((12, 12), "x"), "^b must hold real numbers"),
        (np.ones((10, 12)), np.ones((10, 12)), r"^a must be at least 11x11 \(the SSIM window\)"),
    ],
)
def test_bad_fields_are_errors_naming_a_or_b(a, b, match):
    for metric in (ssim, ssim_map):
        with pytest.raises(ValueError, match=match):
            metric(a, b, 1.0)
    if "11x11" not in match:
        with pytest.raises(ValueError, match=match):
            psnr(a, b, 1.0)


def test_psnr_takes_fields_smaller_than_the_ssim_window():
    assert psnr(np.zeros((2, 3)), np.full((2, 3), 0.1), 1.0) == pytest.approx(20.0)


def test_ssim_quantity_compares_each_step_with_the_reference_step():
    sim = Heat2D(n=16, steps=4)
    centre = sim.space.bounds.mean(axis=1)
    reference = np.stack([step.field for step in sim.run(centre)])
    quantity = SSIMQuantity(reference, sim.field_range)
    assert quantity.steps == 4 and quantity.data_range == 400.0
    assert [quantity(step.index, step.field) for step in sim.run(centre)] == [1.0] * 4
    other = [500.0, 100.0, 100.0, 100.0, 500.0]
    values = [quantity(step.index, step.field) for step in sim.run(other)]
    expected = [ssim(step.field, reference[step.index - 1], (100, 500)) for step in sim.run(other)]
    assert values == expected and all(0 < v < 1 for v in values)
    reference[:] = 0.0  # the quantity kept its own copy
    assert quantity(1, next(iter(sim.run(centre))).field) == 1.0


def test_ssim_quantity_bad_inputs_name_the_culprit():
    reference = np.zeros((3, 12, 12))
    quantity = SSIMQuantity(reference, 1.0)
    for step in (0, 4, 1.0, True, "1"):
        with pytest.raises(ValueError, match=r"step must be an int from 1 to 3 \(1-based"):
            quantity(step, reference[0])
    with pytest.raises(ValueError, match=r"field has shape \(12, 13\), the reference fields \(12, 12\)"):
        quantity(1, np.zeros((12, 13)))
    with pytest.raises(ValueError, match="^field has non-finite values"):
        quantity(1, np.full((12, 12), np.nan))
    with pytest.raises(ValueError, match=r"reference must be an array \(steps, ny, nx\)"):
        SSIMQuantity(np.zeros((12, 12)), 1.0)
    with pytest.raises(ValueError, match="at least 11x11"):
        SSIMQuantity(np.zeros((2, 8, 8)), 1.0)
    with pytest.raises(ValueError, match="^reference has non-finite values"):
        SSIMQuantity(np.full((1, 12, 12), np.inf), 1.0)


def test_psnr_map_of_a_uniform_error_is_the_scalar_psnr_everywhere_and_local_otherwise():
    rng = np.random.default_rng(0)
    field = rng.uniform(100.0, 500.0, (16, 16))
    np.testing.assert_allclose(psnr_map(field, field + 8.0, (100, 500)), psnr(field, field + 8.0, (100, 500)))
    spot = field.copy()
    spot[2, 2] += 50.0
    local = psnr_map(field, spot, 400.0)
    assert local[2, 2] == local.min() and local[14, 14] == math.inf  # the error stays within the window
