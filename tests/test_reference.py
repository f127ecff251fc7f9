"""The replay engine against SimGrid, the field's reference simulator: hand-built cases and WfCommons instances.
Where SimGrid is not installed these are skipped (install: apt-get install python3-simgrid), except the
comparison with SimGrid's recorded run."""

import pytest

from kit import paths
from kit.replay import Platform, Task, Trace, replay
from kit.replay.agreement import agreement
from kit.replay.reference import INSTALL, simgrid_python, simgrid_replay

RECORDED = paths.root() / "papers" / "deployment" / "recorded" / "simgrid-agreement.nc"
needs_simgrid = pytest.mark.skipif(simgrid_python() is None, reason=f"SimGrid is not installed: {INSTALL}")


def star(storage="s", disks=None):
    """Three 2-core hosts, two of them on 1000 B/s links (0.5 s latency) to the third, which holds the inputs;
    ``disks`` maps hosts to their ``disk`` entry."""
    disks = disks or {}
    return Platform.from_dict(
        {
            "hosts": {name: {"tier": "hpc", "cores": 2, "disk": disks.get(name, {})} for name in ("a", "b", "s")},
            "links": [{"ends": [name, "s"], "bandwidth": 1000.0, "latency": 0.5} for name in ("a", "b")],
            "storage": storage,
        }
    )


def job(task_id, runtime, parents=(), reads=(), writes=(), cores=1.0, start=0.0):
    return Task(task_id, task_id, start, start + runtime, "r", tuple(parents), cores=cores, reads=tuple(reads),
                writes=tuple(writes))  # fmt: skip


CASES = {
    "per-file": (
        [job("p", 1.0, reads=["in"], writes=["big", "small"]), job("c", 1.0, ["p"], ["small"]),
         job("d", 2.0, ["p"], ["small", "big"])],
        {"in": 3000, "big": 4000, "small": 1000},
        {"p": "a", "c": "b", "d": "b"},
    ),
    "wide": (
        [job("x", 2.0), job("w", 1.0, cores=2, start=0.1), job("y", 1.0, start=0.2), job("z", 3.0, ["w"])],
        {},
        {"x": "a", "w": "a", "y": "a", "z": "b"},
    ),
    "shared-link": (
        [job("p1", 1.0, writes=["f1"]), job("p2", 1.5, writes=["f2"]), job("c", 1.0, ["p1", "p2"], ["f1", "f2"])],
        {"f1": 3000, "f2": 1000},
        {"p1": "a", "p2": "a", "c": "b"},
    ),
    "quiet-parent": (
        [job("p", 2.0), Task("c", "c", 0, 1, "r", ("p",))],
        {},
        {"p": "a", "c": "b"},
    ),
    "implicit": (
        [Task("p", "p", 0, 1, "r", output_bytes=2000), Task("c", "c", 0, 1, "r", ("p",))],
        {},
        {"p": "a", "c": "b"},
    ),
}  # fmt: skip


@needs_simgrid
@pytest.mark.parametrize("name", sorted(CASES))
def test_hand_built_cases_end_every_task_when_simgrid_does(name):
    tasks, files, placement = CASES[name]
    trace = Trace(name, tasks, files=files)
    ours, theirs = replay(trace, star(), placement), simgrid_replay(trace, star(), placement)
    assert ours.ends == pytest.approx(theirs["ends"], rel=1e-12, abs=1e-12)
    assert ours.starts == pytest.approx(theirs["starts"], rel=1e-12, abs=1e-12)


@needs_simgrid
@pytest.mark.parametrize("name", ["per-file", "shared-link", "implicit"])
def test_disks_share_their_bandwidth_as_simgrid_shares_links(name):
    tasks, files, placement = CASES[name]
    trace = Trace(name, tasks, files=files)
    platform = star(disks={"s": {"read": 400.0}, "a": {"read": 700.0}, "b": {"write": 600.0, "read": 5000.0}})
    ours, theirs = replay(trace, platform, placement), simgrid_replay(trace, platform, placement)
    assert ours.ends == pytest.approx(theirs["ends"], rel=1e-12, abs=1e-12)
    assert ours.makespan > replay(trace, star(), placement).makespan  # the disks slow it down


@needs_simgrid
def test_generated_instances_agree_with_simgrid_on_both_platforms():
    data = agreement(["epigenomics", "srasearch"], [110], seed=3, live=True)
    assert abs(data.simgrid_makespan_error).max() < 1e-9
    assert (data.kit_seconds > 0).all() and (data.simgrid_seconds > 0).all()


def test_the_kit_agrees_with_simgrids_recorded_run():
    data = agreement(["blast", "montage"], [110, 200], seed=0, recorded=RECORDED, live=False)
    assert abs(data.simgrid_makespan_error).max() < 1e-9
    assert data.attrs["simgrid_run"].startswith("recorded")
    with pytest.raises(ValueError, match=r"no recorded SimGrid run of \[\('soykb', 110\)\]: apt-get install"):
        agreement(["soykb"], [110], seed=0, recorded=RECORDED, live=False)


def test_what_simgrid_does_not_model_here_is_refused():
    from kit.replay.reference import case

    changing = Platform.from_dict(
        {"hosts": {"a": {"tier": "hpc", "cores": 1}, "b": {"tier": "hpc", "cores": 1}},
         "links": [{"ends": ["a", "b"], "bandwidth": [[0, 10.0], [5, 1.0]]}]}
    )  # fmt: skip
    trace = Trace("t", [job("p", 1.0)])
    with pytest.raises(ValueError, match=r"link\(s\) \['a--b'\] change theirs"):
        case(trace, changing, "a")
