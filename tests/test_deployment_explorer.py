"""The Gantt chart of a replay and the deployment explorer, driven without a browser."""

import numpy as np
import pytest

from kit.plots import gantt
from kit.replay import Task, Trace, replay
from kit.replay.platform import example
from kit.widgets import DeploymentExplorer


def workflow() -> Trace:
    """Six simulations feed a training task, which feeds three inferences."""
    sims = [Task(f"s{i}", "sim", 0.0, 1.0, "w", component="simulation", output_bytes=10**6) for i in range(6)]
    train = Task("t", "train", 1.0, 3.0, "w", parents=tuple(s.id for s in sims), component="training")
    infer = [Task(f"i{i}", "infer", 3.0, 3.5, "w", parents=("t",), component="inference") for i in range(3)]
    return Trace("demo", [*sims, train, *infer])


def bars(fig):
    """(row centre, start, end) of every task bar."""
    ax = fig.axes[0]
    return sorted((p.get_y() + p.get_height() / 2, p.get_x(), p.get_x() + p.get_width()) for p in ax.patches)


def test_gantt_draws_each_task_from_its_start_to_its_end_in_lanes_that_never_overlap():
    platform = example("continuum")
    result = replay(workflow(), platform, "heft")
    drawn = bars(gantt(result))
    assert len(drawn) == len(result.trace.tasks)
    expected = sorted((result.starts[t.id], result.ends[t.id]) for t in result.trace.tasks)
    np.testing.assert_allclose(sorted((start, end) for _, start, end in drawn), expected)
    for lane in {row for row, _, _ in drawn}:
        spans = sorted((start, end) for row, start, end in drawn if row == lane)
        assert all(a_end <= b_start + 1e-12 for (_, a_end), (b_start, _) in zip(spans, spans[1:], strict=False))
    labels = [t.get_text() for t in gantt(result).axes[0].get_yticklabels()]
    assert labels == sorted(set(result.hosts.values()))


def test_gantt_by_tier_groups_hosts_and_shows_idle_ones_with_the_platform():
    platform = example("continuum")
    result = replay(workflow(), platform, "edge-ward")
    tiers = [t.get_text() for t in gantt(result, "tier", platform=platform).axes[0].get_yticklabels()]
    assert tiers == ["edge", "fog", "cloud"]
    hosts = [t.get_text() for t in gantt(result, platform=platform).axes[0].get_yticklabels()]
    assert hosts == ["edge-1", "edge-2", "fog-1", "cloud-1", "cloud-2"]
    with pytest.raises(ValueError, match="by='tier' needs the platform"):
        gantt(result, "tier")
    with pytest.raises(ValueError, match="by must be 'host' or 'tier', got 'core'"):
        gantt(result, "core")


def test_deployment_explorer_replays_the_chosen_platform_and_strategy():
    trace = workflow()
    explorer = DeploymentExplorer(trace)
    assert list(explorer.platform.options) == ["laptop", "continuum", "hpc-cloud"]
    explorer.platform.value, explorer.strategy.value = "continuum", "all-edge"
    slow = replay(trace, example("continuum"), "all-edge")
    assert explorer.metrics["makespan"] == pytest.approx(slow.makespan)
    assert explorer.metrics["bytes moved"] == slow.bytes_moved
    assert "makespan" in explorer.summary.value and len(explorer.figure.axes[0].patches) == len(trace.tasks)
    explorer.strategy.value = "heft"
    assert explorer.metrics["makespan"] < slow.makespan
    split = [explorer.metrics[f"critical {what}"] for what in ("compute", "transfer", "waiting")]
    assert sum(split) == pytest.approx(explorer.metrics["makespan"])
    explorer.by.value = "tier"
    assert [t.get_text() for t in explorer.figure.axes[0].get_yticklabels()] == ["edge", "fog", "cloud"]


def test_a_strategy_that_does_not_fit_the_platform_is_shown_not_raised():
    explorer = DeploymentExplorer(workflow())
    explorer.strategy.value = "all-cloud"  # the laptop has no cloud tier
    assert explorer.current is None and explorer.figure is None
    assert "no host in tier 'cloud'" in explorer.error and "does not apply to 'laptop'" in explorer.summary.value
    with pytest.raises(ValueError, match="unknown strategy 'fastest'"):
        DeploymentExplorer(workflow(), strategy="fastest")
