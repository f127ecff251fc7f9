"""Ishigami and Sobol' G: values and exact indices against anchors.md, and SALib on the same samples."""

import numpy as np
import pytest

from kit.simulators import Ishigami, SobolG


def test_ishigami_exact_indices_and_variance():
    first, total = Ishigami().exact_indices()
    np.testing.assert_allclose(first, [0.313905, 0.442411, 0.0], atol=1e-6)
    np.testing.assert_allclose(total, [0.557589, 0.442411, 0.243684], atol=1e-6)
    values = Ishigami().evaluate(Ishigami().space.scale(np.random.default_rng(0).random((400_000, 3))))
    assert values.var() == pytest.approx(13.844588, rel=0.01)


def test_sobol_g_exact_indices():
    first, total = SobolG().exact_indices()
    np.testing.assert_allclose(first[:4], [0.716192, 0.179048, 0.023676, 0.007162], atol=1e-6)
    np.testing.assert_allclose(first[4:], 7.2e-5, rtol=0.01)
    np.testing.assert_allclose(total[:4], [0.787144, 0.242198, 0.034317, 0.010460], atol=1e-6)
    np.testing.assert_allclose(total[4:], 1.05e-4, rtol=0.01)


def test_values_run_and_bad_input():
    assert Ishigami().evaluate([[np.pi / 2, np.pi / 2, 0.0]]).tolist() == pytest.approx([8.0])
    assert SobolG([0.0, 1.0]).evaluate([[0.5, 0.5]]).tolist() == [0.0]
    (step,) = list(SobolG([0.0]).run([1.0]))
    assert float(step.field) == 2.0
    with pytest.raises(ValueError, match="parameter 'x2' = 4.0 is outside"):
        Ishigami().evaluate([[0.0, 4.0, 0.0]])
    with pytest.raises(ValueError, match="a must be a non-empty list of numbers >= 0"):
        SobolG([-1.0])


def test_salib_sobol_on_ishigami_agrees_with_the_exact_indices():
    from SALib.analyze import sobol as analyze
    from SALib.sample import sobol as sample

    model = Ishigami()
    problem = model.space.to_salib()
    x = sample.sample(problem, 2**12, seed=1)
    result = analyze.analyze(problem, model.evaluate(x), seed=1)
    first, total = model.exact_indices()
    np.testing.assert_allclose(result["S1"], first, atol=0.05)
    np.testing.assert_allclose(result["ST"], total, atol=0.05)
