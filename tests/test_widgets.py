"""The simulator explorer, driven without a browser: moving a slider changes the field shown."""

import numpy as np

from kit.simulators import Heat2D
from kit.widgets import SimulatorExplorer


def test_parameter_and_step_sliders_change_the_field():
    sim = Heat2D(n=8, steps=5)
    explorer = SimulatorExplorer(sim, [300.0, 500.0, 100.0, 100.0, 100.0])
    assert list(explorer.sliders) == list(sim.space.names)
    assert explorer.sliders["left"].min == 100.0 and explorer.sliders["left"].max == 500.0
    last = explorer.frame.values.copy()
    np.testing.assert_allclose(last[0], list(sim.run(explorer.point))[-1].field)

    explorer.sliders["left"].value = 100.0
    assert explorer.point["left"] == 100.0
    assert not np.allclose(explorer.frame.values, last)
    np.testing.assert_allclose(explorer.frame.values[0], list(sim.run(explorer.point))[-1].field)

    explorer.step.value = 1
    assert float(explorer.frame.time[0]) == sim.t_end / sim.steps
    np.testing.assert_allclose(explorer.frame.values[0], next(sim.run(explorer.point)).field)


def test_sobol_map_explorer_shows_the_chosen_parameter_and_step():
    import pytest

    from kit.sensitivity import FieldSobol
    from kit.widgets import SobolMapExplorer

    rng = np.random.default_rng(0)
    maps = FieldSobol(2, (3, 3), steps=[1, 2])
    for point in range(4 * 8):
        for step in (1, 2):
            maps.add(point, step, rng.random((3, 3)))
    data = maps.to_dataset(["a", "b"], times=[0.5, 1.0])
    explorer = SobolMapExplorer(data)
    assert explorer.parameter.options == ("a", "b") and explorer.step.value == 2
    np.testing.assert_array_equal(explorer.frame.S1, data.S1.sel(parameter="a", step=2))
    explorer.parameter.value, explorer.step.value = "b", 1
    np.testing.assert_array_equal(explorer.frame.ST, data.ST.sel(parameter="b", step=1))
    with pytest.raises(ValueError, match=r"missing \['ST'\]"):
        SobolMapExplorer(data[["S1"]])


def test_plan_explorer_replans_when_the_budget_moves():
    import torch
    from torch import nn

    from kit.memory import profile
    from kit.widgets import PlanExplorer

    torch.manual_seed(0)
    model = nn.Sequential(*[nn.Sequential(nn.Linear(64, 64), nn.Tanh()) for _ in range(6)])
    explorer = PlanExplorer(profile(model, torch.randn(256, 64), repeats=1), points=6)
    fast = explorer.current["optimal"]
    assert fast.predicted_peak <= explorer.budget.value == explorer.full
    explorer.budget.value = explorer.budget.min
    tight = explorer.current["optimal"]
    assert tight.predicted_peak <= explorer.budget.value and tight.predicted_time > fast.predicted_time
