"""The dashboards of kit.widgets, driven without a browser: moving a control changes what is shown."""

import numpy as np
import pytest

import kit.plots as kit_plots
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


def test_the_heat_explorer_starts_on_a_field_with_structure_and_its_time_slider_reads_the_time():
    sim = Heat2D(n=8, steps=5)
    explorer = SimulatorExplorer(sim)
    assert explorer.point == sim.example() and float(explorer.frame.max() - explorer.frame.min()) > 100.0
    assert explorer.step.readout and (explorer.step.description, explorer.step.label) == ("time", "0.1")
    explorer.step.value = 1
    assert explorer.step.label == "0.02" and float(explorer.frame.time[0]) == pytest.approx(0.02)
    # Readouts and labels get room: the controls keep their width beside the figure instead of shrinking.
    assert all(
        w.style.description_width == "64px" and w.layout.width == "340px"
        for w in [*explorer.sliders.values(), explorer.step]
    )
    assert explorer.widget.children[0].layout.flex == "0 0 auto"


def test_time_labels_take_the_digits_that_tell_times_apart():
    from kit.widgets.explorer import time_labels

    assert time_labels([0.5, 1.0]) == [("0.5", 1), ("1", 2)]
    assert time_labels([0.1, 0.1001, 0.2]) == [("0.1", 1), ("0.1001", 2), ("0.2", 3)]


def test_a_uniform_field_draws_plain_ticks_around_its_value_and_one_label():
    import io

    explorer = SimulatorExplorer(Heat2D(n=8, steps=5), [300.0] * 5)
    explorer.figure.savefig(io.BytesIO(), format="png")  # draws the tick labels
    (image,) = (image for ax in explorer.figure.axes for image in ax.images)
    assert image.get_clim() == pytest.approx((297.0, 303.0))
    bar, curve_ax = image.colorbar.ax, next(ax for ax in explorer.figure.axes if ax.lines)
    assert [t.get_text() for t in bar.get_yticklabels()] == ["297", "298", "299", "300", "301", "302", "303"]
    assert bar.yaxis.get_offset_text().get_text() == curve_ax.yaxis.get_offset_text().get_text() == ""
    assert curve_ax.get_ylim()[0] < 297.0 and curve_ax.get_ylim()[1] > 303.0
    labels = [ax.get_ylabel() for ax in explorer.figure.axes]
    assert labels.count("temperature [K]") == 1 and bar.get_ylabel() == ""


def test_simulator_explorer_draws_the_time_evolution_of_gray_scott():
    from kit.simulators import GrayScott

    sim = GrayScott(n=12, steps=4, substeps=5)
    explorer = SimulatorExplorer(sim, seed=0)
    assert list(explorer.sliders) == list(sim.space.names) and explorer.trajectory.sizes["time"] == 4
    image_ax, curve_ax = (ax for ax in explorer.figure.axes if ax.get_label() != "<colorbar>")
    np.testing.assert_allclose(image_ax.images[0].get_array(), explorer.frame.values[0])
    np.testing.assert_allclose(curve_ax.lines[0].get_ydata(), explorer.trajectory.mean(("y", "x")))
    explorer.step.value = 2
    marker = next(ax for ax in explorer.figure.axes if ax.get_title() == "over the plate, in time").lines[1]
    assert marker.get_xdata()[0] == float(explorer.trajectory.time[1])
    with pytest.raises(ValueError, match=r"step must be in \[0, 4\), got 4"):
        kit_plots.field_evolution(explorer.trajectory, 4)


def test_sobol_map_explorer_shows_the_chosen_parameter_and_step():
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
    assert explorer.budget.description == "budget [MiB]" and explorer.budget.value == explorer.full / 2**20
    assert fast.predicted_peak <= explorer.budget_bytes == explorer.full
    explorer.budget.value = explorer.budget.min
    tight = explorer.current["optimal"]
    assert explorer.budget_bytes == explorer.least
    assert tight.predicted_peak <= explorer.budget_bytes and tight.predicted_time > fast.predicted_time
    times = [p.predicted_time for p in explorer.curve["optimal"]]
    assert (np.diff(times) <= 1e-9 * np.array(times[:-1])).all(), times
    # The schedule drawn: one bar per forward and backward of the optimal plan, in the plan's order.
    optimal = next(ax for ax in explorer.figure.axes if ax.get_title().startswith("optimal:"))
    drawn = sorted((p.get_x(), round(p.get_y() + p.get_height() / 2), p.get_width()) for p in optimal.patches)
    costs = explorer.costs
    expected = [(j, costs.ub[j] if op == "B" else costs.uf[j]) for op, j in tight.operations if op != "free"]
    np.testing.assert_allclose([(stage, width) for _, stage, width in drawn], expected)
    np.testing.assert_allclose([x for x, _, _ in drawn], np.cumsum([0.0] + [w for _, w in expected])[:-1])
    assert len(drawn) > 2 * costs.length  # recomputations


def small_study(client, n_simulations):
    from kit.online import OnlineStudy

    sim = Heat2D(n=8, steps=6)
    return OnlineStudy(sim, n_simulations=n_simulations, capacity=40, batch_size=8, client=client, seed=0)


def test_study_monitor_runs_headless_and_shows_where_the_simulations_went(cluster_client):
    from kit.widgets import StudyMonitor

    monitor = StudyMonitor(small_study(cluster_client, 6), every=2)
    assert monitor.status.value.startswith("ready: Start runs 6 simulations")
    result = monitor.run(progress=False)
    assert result.accounting["balanced"] and monitor.frames >= 2
    where = next(ax for ax in monitor.figure.axes if ax.get_title().startswith("where the sampler put"))
    plotted = np.concatenate([c.get_offsets() for c in where.collections])
    np.testing.assert_allclose(sorted(map(tuple, plotted)), sorted(map(tuple, result.simulations.params.values[:, :2])))
    with pytest.raises(RuntimeError, match="not started"):
        monitor.stop()


def test_study_monitor_start_runs_in_the_background_and_stop_keeps_the_result(cluster_client):
    import time

    from kit.widgets import StudyMonitor

    study = small_study(cluster_client, 500)
    monitor = StudyMonitor(study, every=2)
    monitor.start_button.click()
    assert monitor.start_button.disabled and not monitor.stop_button.disabled
    deadline = time.monotonic() + 120
    while monitor.frames < 2 and monitor.error is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert bytes(monitor.image.value).startswith(b"\x89PNG"), monitor.status.value
    monitor.stop_button.click()
    result = monitor.wait(120)
    assert result is not None and monitor.status.value.startswith("stopped"), monitor.status.value
    assert monitor.stopped and result.metrics.sizes["batch"] >= 2 * monitor.every and result.accounting["balanced"]
    assert len(result.simulations.simulation) < 500 and "cancelled" in set(result.simulations.status.values)
    with pytest.raises(RuntimeError, match="already started"):
        monitor.start()


@pytest.mark.parametrize("interactive", [False, True])
def test_the_online_notebook_runs_a_smoke_study_headless_and_a_long_one_to_stop(interactive):
    """Its parameters and study cells, run here without the study: only the budget differs."""
    from kit import notebooks, paths

    cells = [c.source for c in notebooks.read(paths.root() / "notebooks" / "online_training.ipynb").cells]
    (start,) = (i for i, c in enumerate(cells) if "OnlineStudy(" in c)
    namespace = {}
    exec(cells[start - 1], namespace)  # the parameters cell
    exec(f"interactive = {interactive}\n" + cells[start], namespace)
    wanted = namespace["interactive_simulations" if interactive else "n_simulations"]
    assert namespace["study"].n_simulations == wanted
    assert namespace["interactive_simulations"] >= 100 * namespace["n_simulations"]


def test_monitor_rates_are_windowed_over_the_last_batches():
    import xarray as xr

    from kit.plots.online import _windowed_rate

    metrics = xr.Dataset(
        {"produced": ("batch", [10, 20, 40, 80]), "seconds": ("batch", [1.0, 2.0, 3.0, 4.0])},
        coords={"batch": [1, 2, 3, 4]},
    )
    np.testing.assert_allclose(_windowed_rate(metrics, "produced", 2), [10.0, 10.0, 15.0, 30.0])
    with pytest.raises(ValueError, match="every must be an int >= 1"):
        from kit.widgets import StudyMonitor

        StudyMonitor(None, every=0)


def test_figures_display_as_png_in_a_jupyter_kernel(monkeypatch):
    """kit never imports pyplot, so kit.plots registers the PNG display of figures itself."""
    import nbclient
    import nbformat

    from kit import paths

    monkeypatch.setenv("PYTHONPATH", str(paths.root()))
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import kit.plots\nfrom matplotlib.figure import Figure\nf = Figure()\nf.subplots()\nf"
        )
    ]
    nbclient.NotebookClient(nb, timeout=120).execute()
    assert "image/png" in nb.cells[0].outputs[0]["data"]
    from kit.plots.display import register_png_display

    assert not register_png_display()  # outside a kernel: nothing to register
