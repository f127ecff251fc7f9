"""Traces of real dask runs, their WfFormat round trip, public WfCommons instances, and bad traces."""

import json
import time

import pytest
from distributed import Client, LocalCluster

from kit.replay import Task, Trace, load_trace, record


def simulate(i):
    time.sleep(0.02)
    return bytes(1000 * (i + 1))


def train(*chunks):
    return sum(len(c) for c in chunks)


def fail():
    raise RuntimeError("boom")


@pytest.fixture(scope="module")
def client():
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        yield client


def test_a_recorded_run_has_every_task_with_its_dependencies_sizes_and_workers(client):
    with record(client, name="fork-join") as recording:
        chunks = client.map(simulate, range(4))
        assert client.submit(train, *chunks).result() == 10000
    trace = recording.trace
    assert len(trace.tasks) == 5 and trace.name == "fork-join"
    sims = [t for t in trace.tasks if t.name == "simulate"]
    (trainer,) = [t for t in trace.tasks if t.name == "train"]
    assert {t.component for t in sims} == {"simulation"} and trainer.component == "training"
    assert set(trainer.parents) == {t.id for t in sims}
    assert sorted(t.output_bytes for t in sims) == [1000, 2000, 3000, 4000] and trainer.input_bytes == 10000
    assert set(trace.hosts) <= set(client.scheduler_info()["workers"])
    assert all(t.end > t.start >= 0 for t in sims)
    assert trainer.start >= max(t.end for t in sims) - 1e-3  # a task starts after its parents ended
    assert trace.makespan == pytest.approx(trainer.end - min(t.start for t in sims))


def test_failed_tasks_are_counted_not_dropped_silently(client):
    with record(client, components={"fail": "inference"}) as recording:
        future = client.submit(fail, pure=False)
        with pytest.raises(RuntimeError):
            future.result()
    assert recording.trace.attrs["erred"] == 1 and "fail" in recording.trace.attrs["erred_keys"][0]


def test_wfformat_round_trip_keeps_everything(client, tmp_path):
    with record(client) as recording:
        client.submit(train, *client.map(simulate, range(2))).result()
    trace = recording.trace
    path = trace.save(tmp_path / "trace.json")
    content = json.loads(path.read_text())
    assert content["schemaVersion"] == "1.5"
    spec = {t["id"]: t for t in content["workflow"]["specification"]["tasks"]}
    for task in trace.tasks:  # parents and children describe the same edges
        assert all(task.id in spec[p]["children"] for p in task.parents)
    back = load_trace(path)
    assert back.tasks == trace.tasks and back.name == trace.name and back.makespan == trace.makespan


PUBLIC = {
    "name": "public",
    "schemaVersion": "1.5",
    "workflow": {
        "specification": {
            "tasks": [
                {"name": "split", "id": "ID01", "parents": [], "children": ["ID02"], "outputFiles": ["a.txt"]},
                {"name": "analyze", "id": "ID02", "parents": ["ID01"], "children": [], "inputFiles": ["a.txt"]},
            ],
            "files": [{"id": "a.txt", "sizeInBytes": 512}],
        },
        "execution": {
            "makespanInSeconds": 14.2,
            "executedAt": "2020-04-01T15:10:53-08:00",
            "tasks": [
                {"id": "ID01", "runtimeInSeconds": 4.2, "executedAt": "2020-04-01T15:10:53-08:00", "machines": ["n1"]},
                {"id": "ID02", "runtimeInSeconds": 10.0, "executedAt": "2020-04-01T15:10:57.2-08:00"},
            ],
        },
    },
}


def test_public_wfcommons_instances_are_read(tmp_path):
    path = tmp_path / "public.json"
    path.write_text(json.dumps(PUBLIC))
    trace = load_trace(path)
    split, analyze = trace.tasks
    assert (split.start, split.end, split.host, split.output_bytes) == (0.0, 4.2, "n1", 512)
    assert analyze.start == pytest.approx(4.2) and analyze.input_bytes == 512 and analyze.host == "unknown"
    assert trace.makespan == pytest.approx(14.2) and analyze.component == "other"


@pytest.mark.parametrize(
    ("tasks", "match"),
    [
        ([Task("a", "x", 0, 1, "h", parents=("b",)), Task("b", "x", 0, 1, "h", parents=("a",))], "cycle"),
        ([Task("a", "x", 0, 1, "h", parents=("z",))], r"task 'a': parent\(s\) \['z'\] are not tasks"),
        ([Task("a", "x", 0, 1, "h"), Task("a", "x", 0, 1, "h")], "task 'a' appears twice"),
        ([Task("a b", "x", 0, 1, "h")], "task id 'a b' has characters WfFormat does not allow"),
        ([Task("a", "x", 2, 1, "h")], "task 'a': end 1 is before start 2"),
        ([Task("a", "x", 0, 1, "h", component="gpu")], "task 'a': unknown component 'gpu'"),
    ],
)
def test_bad_traces_name_the_task(tasks, match):
    with pytest.raises(ValueError, match=match):
        Trace("bad", tasks)


def test_bad_files_name_the_field_and_task(tmp_path):
    broken = json.loads(json.dumps(PUBLIC))
    del broken["workflow"]["execution"]["tasks"][1]["runtimeInSeconds"]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    with pytest.raises(ValueError, match=r"task 'ID02': missing field 'runtimeInSeconds'"):
        load_trace(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not a readable WfFormat JSON file"):
        load_trace(path)
    broken = json.loads(json.dumps(PUBLIC))
    broken["schemaVersion"] = "0.9"
    path.write_text(json.dumps(broken))
    with pytest.raises(ValueError, match=r"schemaVersion '0.9' is not one of"):
        load_trace(path)


def test_replay_never_imports_torch_and_loads_dask_only_to_record():
    import subprocess
    import sys

    code = "import sys, kit.replay; print(','.join(m for m in ('torch', 'distributed') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == ""
