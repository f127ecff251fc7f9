"""Figures draw what their data and targets say: every colour in the legend, targets labelled, data inside the axes."""

import numpy as np
import pytest
import xarray as xr
from matplotlib.colors import to_rgba

import kit.plots
from kit.plots.replay import COLORS, host_labels


def _labels(ax) -> list[str]:
    legend = ax.get_legend()
    return [text.get_text() for text in legend.get_texts()] if legend else []


@pytest.fixture
def timeline():
    hosts = ["tcp://10.0.0.2:41417", "client", "tcp://10.0.0.1:50000", "tcp://10.0.0.2:41417"]
    return xr.Dataset(
        {
            "recorded_start": ("task", [0.2, 0.5, 0.0, 0.3]),
            "recorded_end": ("task", [0.3, 0.6, 0.1, 0.4]),
            "replayed_start": ("task", [0.2, 0.4, 0.0, 0.3]),
            "replayed_end": ("task", [0.3, 0.5, 0.1, 0.4]),
            "component": ("task", ["simulation", "training", "simulation", "simulation"]),
            "host": ("task", hosts),
        },
        coords={"task": ["a", "b", "c", "d"]},
    )


def test_fidelity_rows_are_named_by_role_and_worker_order_not_port(timeline):
    assert host_labels(timeline) == {
        "client": "client (trains)",
        "tcp://10.0.0.1:50000": "worker 0 (10.0.0.1)",  # its first task starts first
        "tcp://10.0.0.2:41417": "worker 1 (10.0.0.2)",
    }


def test_fidelity_legend_explains_every_colour(timeline):
    table = xr.Dataset({"makespan_error": ("run", [-0.12, 0.05])}, coords={"run": ["8 simulations", "12"]})
    lanes, errors = kit.plots.fidelity(table, timeline).axes
    assert [t.get_text() for t in lanes.get_yticklabels()] == list(host_labels(timeline).values())
    assert not any(":" in t.get_text() for t in lanes.get_yticklabels())
    labels = _labels(lanes)
    assert labels[:2] == ["simulation", "training"] and any("recorded" in x for x in labels[2:])
    drawn = {to_rgba(c.get_facecolor()[0], 1) for c in lanes.collections}  # every bar colour has an entry
    assert drawn == {to_rgba(COLORS[c]) for c in ("simulation", "training")}
    assert any("10 %" in x for x in _labels(errors)) and len(_labels(errors)) == 2


@pytest.fixture
def tradeoff():
    strategies, fractions = ["optimal", "uniform", "store_all", "recompute_all"], [0.1, 0.5, 1.0]
    shape = (1, len(strategies), len(fractions))
    peaks = np.broadcast_to(np.array([2.0, 3.0, 4.0]) * 2**20, shape)
    times = np.broadcast_to(np.array([3.0, 2.0, 1.0]), shape)
    return xr.Dataset(
        {
            "measured_peak": (("chain", "strategy", "fraction"), peaks),
            "predicted_peak": (("chain", "strategy", "fraction"), peaks),
            "measured_time": (("chain", "strategy", "fraction"), times),
            "predicted_time": (("chain", "strategy", "fraction"), 1.1 * times),
            "budget_bytes": (("chain", "fraction"), np.array([[2.0, 3.0, 4.0]]) * 2**20),
            "time_ratio_vs_uniform": (("chain", "fraction"), [[0.9, 0.8, 1.0]]),
        },
        coords={"chain": ["mlp"], "strategy": strategies, "fraction": fractions},
    )


def test_tradeoff_legend_sits_outside_the_data_and_budgets_are_labelled(tradeoff):
    figure = kit.plots.memory_tradeoff(tradeoff)
    (ax,) = figure.axes
    figure.canvas.draw()
    legend, frame = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert legend.x0 >= frame.x1  # beside the panel, hiding no marker
    assert _labels(ax)[:4] == list(tradeoff.strategy.values) and "predicted" in _labels(ax)
    budgets = [line for line in ax.get_lines() if line.get_linestyle() == ":"]
    assert len(budgets) == 3 and all(to_rgba(line.get_color())[0] < 0.6 for line in budgets)  # dark enough to see
    assert sorted(t.get_text() for t in ax.texts) == ["10%", "100%", "50%"]


def test_sampler_comparison_draws_the_targets_labelled():
    samplers, seeds, checks = ["random", "breed"], [0, 1, 2], 3
    curve = np.linspace(1.0, 0.5, checks) * np.ones((len(samplers), len(seeds), checks))
    ratios = {f"{m}{s}": ("sampler", [1.0, 0.9]) for m in ("mean_ratio", "p99_ratio", "max_ratio")
              for s in ("", "_low", "_high")}  # fmt: skip
    data = xr.Dataset(
        {
            "check_mean": (("sampler", "seed", "check"), curve),
            "check_p99": (("sampler", "seed", "check"), 2 * curve),
            "check_simulations": (("sampler", "seed", "check"), np.broadcast_to([4, 8, 12], curve.shape)),
            "val_mean": (("sampler", "seed"), curve[..., -1]),
            "points": (("sampler", "seed", "simulation", "parameter"), np.zeros((2, 3, 4, 2))),
            **ratios,
        },
        coords={"sampler": samplers, "seed": seeds, "parameter": ["feed", "kill"]},
    )
    fig = kit.plots.sampler_comparison(data, targets={"p99": 0.75})
    ratio_ax = fig.axes[2]
    targets = [line for line in ratio_ax.get_lines() if line.get_label() == "p99 target <= 0.75"]
    assert len(targets) == 1 and tuple(targets[0].get_ydata()) == (0.75, 0.75)
    assert "p99 target <= 0.75" in _labels(ratio_ax)
    fig.draw_without_rendering()  # the legend sits above the highest bar and interval, not on them
    legend_bottom = ratio_ax.get_legend().get_window_extent().y0
    assert legend_bottom > ratio_ax.transData.transform((0, 1.0))[1]


def test_sobol_maps_keep_indices_beyond_zero_and_one_inside_the_axes():
    steps, names = 2, ["a", "b"]
    cells = np.full((steps, len(names), 3, 3), 0.5)
    ssim = np.array([[-0.8, 0.2], [0.1, 1.3]])
    data = xr.Dataset(
        {
            "S1": (("step", "parameter", "y", "x"), cells),
            "ST": (("step", "parameter", "y", "x"), cells),
            "S1_ssim": (("step", "parameter"), ssim),
            "ST_ssim": (("step", "parameter"), ssim + 0.1),
        },
        coords={"step": [0, 1], "parameter": names, "y": [0, 1, 2], "x": [0, 1, 2], "time": ("step", [0.1, 0.2])},
    )
    (panel,) = [ax for ax in kit.plots.sobol_maps(data).axes if ax.get_title() == "ssim against the reference run"]
    low, high = panel.get_ylim()
    assert low <= -0.8 and high >= 1.4


def test_online_vs_offline_shows_seed_bands_and_says_what_the_ratio_compares():
    seeds, batches = [0, 1], [10, 20]
    rmse = np.array([[[[5.0, 3.0], [6.0, 2.0]], [[5.0, 4.0], [5.5, 4.5]]]])  # (model, mode, seed, batch)
    data = xr.Dataset(
        {
            "val_mean": (("model", "mode", "seed", "batch"), rmse),
            "val_p99": (("model", "mode", "seed", "batch"), 2 * rmse),
            "train_mean": (("model", "mode", "seed", "batch"), rmse / 4),
        },
        coords={"model": ["mlp"], "mode": ["online", "offline"], "seed": seeds, "batch": batches},
    )
    data["error_ratio"] = data.val_mean.isel(batch=-1).sel(mode="online") / data.val_mean.isel(batch=-1).sel(
        mode="offline"
    )
    data["error_ratio_mean"] = data.error_ratio.mean("seed")
    data["error_ratio_mean_low"], data["error_ratio_mean_high"] = (
        data.error_ratio.min("seed"),
        data.error_ratio.max("seed"),
    )
    figure = kit.plots.online_vs_offline(data)
    (ax,) = figure.axes
    assert "online / offline final mean validation RMSE at equal gradient steps" in figure.get_suptitle()
    assert ax.get_title() == "mlp: error_ratio 0.60 [0.44, 0.75]"
    (stored,) = [line for line in ax.lines if line.get_label() == "offline, on its stored set"]
    assert stored.get_linestyle() == ":" and stored.get_ydata().tolist() == [1.3125, 1.0625]  # offline, seed mean / 4
    online_band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert online_band.min() == 2.0 and online_band.max() == 6.0  # min-max over seeds
