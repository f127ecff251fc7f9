"""Figures of memory planning: time against peak memory, predicted and measured."""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

MARKERS = {"optimal": "o", "uniform": "s", "store_all": "^", "recompute_all": "v"}


def memory_tradeoff(data: xr.Dataset) -> Figure:
    """One panel per chain: step time against peak memory of each strategy over the budgets, measured
    (filled, solid) and predicted (hollow, dashed); the budgets as dotted lines labelled by their fraction;
    the legend beside the last panel."""
    chains = list(data.chain.values) if "chain" in data.dims else [None]
    fig = Figure(figsize=(4.6 * len(chains) + 2.2, 4.2), layout="constrained")
    _tradeoff_panels(fig, data, chains)
    fig.suptitle(f"device: {data.attrs.get('device', '')}; dotted: budgets, 0 % the least peak, 100 % store-all",
                 fontsize="small")  # fmt: skip
    return fig


def _tradeoff_panels(fig, data: xr.Dataset, chains: list) -> None:
    axes = np.atleast_1d(fig.subplots(1, len(chains), squeeze=False)[0])
    for ax, chain in zip(axes, chains, strict=True):
        part = data.sel(chain=chain) if chain is not None else data
        for i, strategy in enumerate(part.strategy.values):
            run = part.sel(strategy=strategy)
            style = {"color": f"C{i}", "marker": MARKERS.get(str(strategy), "o")}
            ax.plot(run.measured_peak / 2**20, run.measured_time, **style)
            ax.plot(run.predicted_peak / 2**20, run.predicted_time, linestyle="--", markerfacecolor="none", **style)
        _budget_lines(ax, part)
        ratio = float(part.time_ratio_vs_uniform.min()) if np.isfinite(part.time_ratio_vs_uniform).any() else np.nan
        ax.set(
            xlabel="peak memory of a training step [MiB]",
            ylabel="time of a training step [s]",
            title=f"{chain or ''}\nbest optimal / uniform time {ratio:.2f} (target <= 0.85)",
        )
    axes[-1].legend(handles=_tradeoff_handles(data.strategy.values), fontsize="x-small", loc="upper left",
                    bbox_to_anchor=(1.02, 1.0))  # fmt: skip


def _budget_lines(ax, part: xr.Dataset) -> None:
    """Each budget as a dotted vertical line, its fraction written at the top of the panel."""
    budgets = np.atleast_1d(part.budget_bytes.values) / 2**20
    fractions = np.atleast_1d(part.fraction.values) if "fraction" in part.coords else [None] * len(budgets)
    for budget, fraction in zip(budgets, fractions, strict=True):
        ax.axvline(budget, color="0.45", linestyle=":", linewidth=1.0, zorder=0)
        if fraction is not None:
            ax.text(budget, 1.0, f"{fraction:.0%}", transform=ax.get_xaxis_transform(), rotation=90,
                    ha="right", va="top", fontsize="x-small", color="0.35")  # fmt: skip


def _tradeoff_handles(strategies) -> list:
    """Legend entries: a colour and marker per strategy, then what solid/filled, dashed/hollow and dotted mean."""
    handles = [Line2D([], [], color=f"C{i}", marker=MARKERS.get(str(s), "o"), label=str(s))
               for i, s in enumerate(strategies)]  # fmt: skip
    return handles + [
        Line2D([], [], color="0.3", marker="o", label="measured"),
        Line2D([], [], color="0.3", marker="o", linestyle="--", markerfacecolor="none", label="predicted"),
        Line2D([], [], color="0.45", linestyle=":", label="budget (fraction)"),
    ]


def real_models(data: xr.Dataset) -> Figure:
    """Left: measured peak / budget of the optimal plan per model and budget fraction, with the prediction
    errors of peak and time annotated; right: step time of torch's per-stage checkpointing and of the kit's
    plan at torch's measured peak (absent where torch's peak is below every plan of the kit)."""
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    models = [str(m) for m in data.model.values]
    for i, model in enumerate(models):
        part = data.sel(model=model)
        left.plot(part.fraction, part.peak_over_budget, marker="o", color=f"C{i}", label=model)
    left.axhline(1.0, color="0.3", linestyle="--", linewidth=0.8)
    peak_error = float(np.nanmax(np.abs(data.prediction_error_peak)))
    time_error = float(np.nanmax(np.abs(data.prediction_error_time)))
    title = f"optimal plan (largest prediction error: peak {peak_error:.1%}, time {time_error:.0%})"
    left.set(xlabel="budget: 0 the least peak, 1 store-all's", ylabel="measured peak / budget", title=title)
    left.legend(fontsize="small")
    x = np.arange(len(models))
    right.bar(x - 0.2, data.torch_time * 1e3, width=0.4, color="0.6", label="torch.utils.checkpoint per stage")
    right.bar(x + 0.2, data.kit_time_at_torch_peak * 1e3, width=0.4, color="C0", label="kit plan at torch's peak")
    for k, model in enumerate(models):
        ratio = float(data.time_ratio_vs_torch.sel(model=model))
        text = f"x{ratio:.2f}" if np.isfinite(ratio) else "torch peak below\nthe kit's least"
        top = float(np.nanmax([data.torch_time.sel(model=model), data.kit_time_at_torch_peak.sel(model=model)]))
        right.annotate(text, (k, top * 1e3), textcoords="offset points", xytext=(0, 4), ha="center", fontsize="x-small")
    right.set_xticks(x, labels=models)
    right.set(ylabel="training step [ms]", title=f"same peak, batch {data.attrs.get('batch', '?')}")
    right.legend(fontsize="small", loc="upper left")
    return fig


def profiler_accuracy(data: xr.Dataset) -> Figure:
    """A recorded device run (``kit.memory.accuracy.load_recorded``): top, the host CPU allocator's bytes
    against the device's, per stage (kept for the backward, transient peaks) and per planned step; bottom,
    the time/peak trade-off measured on the device."""
    chains = list(data.chain.values)
    fig = Figure(figsize=(4.4 * len(chains), 8.2), layout="constrained")
    top, bottom = fig.subfigures(2, 1)
    stage_ax, step_ax, error_ax = top.subplots(1, 3)
    for i, chain in enumerate(chains):
        rows = data.sel(layer=data.layer_chain == chain)
        for key, marker in (("xbar", "o"), ("bwd_tmp", "^")):
            device, host = rows[key].sel(on="device") / 2**20, rows[key].sel(on="host") / 2**20
            both = (device > 0) & (host > 0)  # stages without a transient peak have nothing to compare
            stage_ax.scatter(device[both], host[both], color=f"C{i}", marker=marker, s=14, label=f"{chain} {key}")
        step = data.step_peak.sel(chain=chain) / 2**20
        step_ax.scatter(step.sel(on="device"), step.sel(on="host"), color=f"C{i}", label=chain)
        errors = data.prediction_error_peak.sel(chain=chain).values.ravel()
        error_ax.scatter(np.full(errors.shape, i), 100 * errors, color=f"C{i}", marker="_", s=200)
    for ax, what in ((stage_ax, "per stage"), (step_ax, "peak of a planned step")):
        low, high = min(ax.get_xlim()[0], ax.get_ylim()[0]), max(ax.get_xlim()[1], ax.get_ylim()[1])
        ax.plot([low, high], [low, high], color="0.6", linewidth=0.8, zorder=0)
        ax.set(xscale="log", yscale="log", xlabel=f"{data.attrs.get('device', 'device')} [MiB]",
               ylabel="host CPU allocator [MiB]", title=f"{what}: CPU profile against the device")  # fmt: skip
        ax.legend(fontsize="x-small")
    error_ax.axhspan(-10, 10, color="0.9", zorder=0, label="target: within 10 %")
    error_ax.axhline(0, color="0.6", linewidth=0.8)
    error_ax.legend(fontsize="x-small")
    error_ax.set(xticks=range(len(chains)), xticklabels=chains, ylabel="measured / predicted peak - 1 [%]",
                 title="device: peak of every plan against its prediction")  # fmt: skip
    _tradeoff_panels(bottom, data, chains)
    bottom.suptitle("time against peak on the device (dotted: budgets)", fontsize="small")
    fig.suptitle(
        f"recorded on {data.attrs.get('device', '')} ({data.attrs.get('recorded', '')}, torch "
        f"{data.attrs.get('torch', '')}, CUDA {data.attrs.get('cuda', '')}); batches {data.attrs.get('batch', '')}",
        fontsize="small",
    )
    return fig


def partitioning(data: xr.Dataset) -> Figure:
    """Per chain: the objective (pipeline period or latency) of the partition and of the greedy fill against
    the fast device's memory; a greedy fill that overflows is marked on the axis (it cannot run)."""
    chains = list(data.chain.values)
    fig = Figure(figsize=(4.4 * len(chains), 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(chains), squeeze=False)[0])
    for ax, chain in zip(axes, chains, strict=True):
        part = data.sel(chain=chain)
        memory = part.fast_memory / 2**20
        ax.plot(memory, part.objective_partition, "o-", color="C0", label="partition (dynamic program)")
        ax.plot(memory, part.objective_greedy, "s--", color="C3", label="greedy fill by parameters")
        overflow = part.greedy_fits == 0
        if overflow.any():
            low = float(np.nanmin(part.objective_partition))
            ax.plot(memory[overflow], np.full(int(overflow.sum()), low), "x", color="C3", markersize=9,
                    label="greedy overflows the fast device")  # fmt: skip
        what = "period" if data.attrs.get("mode") == "training" else "latency"
        ax.set(xlabel="fast device memory [MiB]", ylabel=f"{what} [s]", title=str(chain), yscale="log")
    axes[0].legend(fontsize="x-small")
    fig.suptitle(
        f"fast device {data.attrs.get('fast_speed', '')}x the profiled one, then a host of ample memory "
        f"({data.attrs.get('mode', '')}; modelled from CPU profiles)",
        fontsize="small",
    )
    return fig


def offloading(data: xr.Dataset, recorded: xr.Dataset | None = None) -> Figure:
    """Per chain: predicted time of the best keep / recompute / offload plan over recomputation alone
    against the budget, one line per host-link bandwidth (``kit.memory.offloading.sweep``); with
    ``recorded`` (a GPU run of ``kit.memory.offloading.compare``), a last panel of its ratios, predicted and
    measured."""
    chains = list(data.chain.values)
    panels = len(chains) + (recorded is not None)
    fig = Figure(figsize=(4.2 * panels, 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, panels, squeeze=False)[0])
    for ax, chain in zip(axes, chains, strict=False):
        part = data.sel(chain=chain)
        for i, bandwidth in enumerate(part.bandwidth.values):
            run = part.sel(bandwidth=bandwidth)
            moved = run.offloaded_stages.sel(strategy="offload")
            ax.plot(run.fraction, run.time_ratio_offload_predicted, "o-", color=f"C{i}",
                    label=f"{bandwidth / 1e9:g} GB/s")  # fmt: skip
            for fraction, ratio, count in zip(run.fraction.values, run.time_ratio_offload_predicted.values,
                                              moved.values, strict=True):  # fmt: skip
                if count:
                    ax.annotate(f"{int(count)}", (fraction, ratio), fontsize="x-small", xytext=(2, 2),
                                textcoords="offset points", color=f"C{i}")  # fmt: skip
        ax.axhline(1.0, color="0.6", linewidth=0.8)
        ax.set(xlabel="budget: 0 least peak of recomputation, 1 store-all", title=f"{chain} (planned)",
               ylabel="time offload+recompute / recompute only")  # fmt: skip
    axes[0].legend(title="host link", fontsize="x-small")
    if recorded is not None:
        ax = axes[-1]
        for i, chain in enumerate(recorded.chain.values):
            run = recorded.sel(chain=chain)
            ax.plot(run.fraction, run.time_ratio_offload_measured, "o-", color=f"C{i}", label=f"{chain} measured")
            ax.plot(run.fraction, run.time_ratio_offload_predicted, "--", color=f"C{i}", label=f"{chain} predicted")
        ax.axhline(1.0, color="0.6", linewidth=0.8)
        link = f"{recorded.attrs.get('d2h_bandwidth', 0) / 1e9:.0f} GB/s"
        moved = int(recorded.offloaded_stages.sel(strategy="offload").sum())
        title = f"{recorded.attrs.get('device', 'GPU')}, {link}: executed, {moved} stages offloaded"
        ax.set(xlabel="budget fraction", ylabel="time offload / optimal", title=title)
        ax.legend(fontsize="x-small")
    fig.suptitle(f"profiles: {data.attrs.get('device', '')}; overlap {data.attrs.get('overlap', '')}; "
                 "numbers: stages offloaded", fontsize="small")  # fmt: skip
    return fig


OPERATIONS = {"Fe": ("C0", "forward, graph kept"), "Fn": ("C1", "forward without grad"), "B": ("C2", "backward")}


def plan_schedule(plans: dict, costs, *, fig=None) -> Figure:
    """The schedule of each plan (``kit.memory.plan``; None: the strategy cannot fit): its operations in
    order over the predicted time, one row per stage of the chain (``costs``: ``kit.memory.schedule.Costs``),
    forwards that keep their graph, forwards without grad (checkpoint sweeps and recomputations), backwards.
    Draws into ``fig`` (a Figure or SubFigure) when given."""
    fig = fig if fig is not None else Figure(figsize=(6.5, 2.2 * len(plans)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(plans), 1, sharex=True, squeeze=False)[:, 0])
    for ax, (name, chosen) in zip(axes, plans.items(), strict=True):
        if chosen is None:
            ax.text(0.5, 0.5, f"{name}: no schedule fits this budget", ha="center", va="center", transform=ax.transAxes)
            ax.set(yticks=[])
            continue
        now, spans = 0.0, {op: [] for op in OPERATIONS}
        for op, stage in chosen.operations:
            if op in OPERATIONS:
                seconds = float(costs.ub[stage] if op == "B" else costs.uf[stage])
                spans[op].append((stage, now, seconds))
                now += seconds
        for op, (color, label) in OPERATIONS.items():
            if spans[op]:
                stage, start, width = zip(*spans[op], strict=True)
                ax.barh(stage, width, left=start, height=0.8, color=color, label=label)
        extra = len(spans["Fe"]) + len(spans["Fn"]) - costs.length
        ax.set(
            ylabel="stage",
            ylim=(costs.length - 0.5, -0.5),
            title=f"{name}: peak {chosen.predicted_peak / 2**20:.3g} MiB, {chosen.predicted_time:.3g} s, "
            f"{extra} extra forward(s)",
        )
    axes[0].legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    axes[-1].set_xlabel("predicted time [s]")
    return fig
