"""Replay by files: a task fetches what it reads, once per host, from whoever holds it; wide tasks take their
cores; the critical path follows the input that arrived last. Every makespan is computed by hand."""

import pytest

from kit.replay import Platform, Task, Trace, replay
from kit.replay.analysis import critical_path, latency_split


def two_hosts(storage=None, cores=2):
    """``a`` and ``b``, ``cores`` cores each at speed 1, one link of 1000 B/s and 0.5 s latency."""
    return Platform.from_dict(
        {
            "hosts": {"a": {"tier": "hpc", "cores": cores}, "b": {"tier": "hpc", "cores": cores}},
            "links": [{"ends": ["a", "b"], "bandwidth": 1000.0, "latency": 0.5}],
            "storage": storage,
        }
    )


def job(task_id, runtime, parents=(), reads=(), writes=(), cores=1.0, start=0.0):
    return Task(task_id, task_id, start, start + runtime, "recorded", tuple(parents), cores=cores,
                reads=tuple(reads), writes=tuple(writes))  # fmt: skip


def test_a_child_fetches_only_the_files_it_reads():
    files = {"big": 10**9, "small": 1000}
    trace = Trace("split", [job("p", 1.0, writes=["big", "small"]), job("c", 1.0, ["p"], reads=["small"])], files=files)
    result = replay(trace, two_hosts(), {"p": "a", "c": "b"})
    # 1 s of p, 0.5 s latency, 1000 bytes at 1000 B/s, 1 s of c (the old model sent 10^9 + 1000 bytes: 10^6 s).
    assert result.makespan == pytest.approx(1.0 + 0.5 + 1.0 + 1.0)
    assert result.bytes_moved == 1000


def test_a_file_read_by_two_tasks_on_one_host_moves_once():
    trace = Trace(
        "fan",
        [job("p", 1.0, writes=["f"]), job("c1", 1.0, ["p"], ["f"]), job("c2", 2.0, ["p"], ["f"])],
        files={"f": 1000},
    )
    result = replay(trace, two_hosts(), {"p": "a", "c1": "b", "c2": "b"})
    assert result.bytes_moved == 1000
    assert result.ready == pytest.approx({"p": 0.0, "c1": 2.5, "c2": 2.5})
    assert result.makespan == pytest.approx(2.5 + 2.0)


def test_a_file_of_a_grandparent_moves_from_the_host_that_wrote_it():
    # g writes f on a; p (on a) runs after g; c (on b) reads f from g and nothing from p.
    trace = Trace(
        "skip", [job("g", 1.0, writes=["f"]), job("p", 3.0, ["g"]), job("c", 1.0, ["p"], reads=["f"])],
        files={"f": 2000},
    )  # fmt: skip
    result = replay(trace, two_hosts(), {"g": "a", "p": "a", "c": "b"})
    # f leaves a when g ends (1 s) and is on b at 1 + 0.5 + 2 = 3.5; p ends at 4: c waits for p's end alone.
    assert result.bytes_moved == 2000
    assert result.ready["c"] == pytest.approx(4.0) and result.makespan == pytest.approx(5.0)


def test_workflow_inputs_come_from_the_storage_host_or_are_everywhere_without_one():
    trace = Trace("input", [job("t", 1.0, reads=["in"])], files={"in": 2000})
    assert replay(trace, two_hosts(), "b").makespan == pytest.approx(1.0)
    from_storage = replay(trace, two_hosts(storage="a"), "b")
    assert from_storage.makespan == pytest.approx(0.5 + 2.0 + 1.0) and from_storage.bytes_moved == 2000
    assert replay(trace, two_hosts(storage="a"), "a").makespan == pytest.approx(1.0)


def test_a_wide_task_takes_its_cores_and_does_not_hold_back_narrower_ones():
    # Trace order: a (1 core, 2 s), w (2 cores, 1 s), b (1 core, 1 s) on one 2-core host.
    trace = Trace("wide", [job("a", 2.0), job("w", 1.0, cores=2, start=0.1), job("b", 1.0, start=0.2)])
    result = replay(trace, two_hosts(), "a")
    # a and b start at 0 (w does not fit beside a); w starts when a ends, at 2.
    assert result.starts == pytest.approx({"a": 0.0, "b": 0.0, "w": 2.0}) and result.makespan == pytest.approx(3.0)
    with pytest.raises(ValueError, match="task 'w' needs 2 cores, host 'a' has 1"):
        replay(trace, two_hosts(cores=1), "a")


def test_the_critical_path_follows_the_input_that_arrived_last_not_the_parent_that_ended_last():
    # p1 ends first on a, its 1000 bytes reach b at 2.5; p2 ends at 2 on b itself: c is ready at 2.5 because of p1.
    tasks = [job("p1", 1.0, writes=["f1"]), job("p2", 2.0, writes=["f2"]), job("c", 1.0, ["p1", "p2"], ["f1", "f2"])]
    trace = Trace("late", tasks, files={"f1": 1000, "f2": 5000})
    result = replay(trace, two_hosts(), {"p1": "a", "p2": "b", "c": "b"})
    assert result.ends["p2"] > result.ends["p1"] and result.makespan == pytest.approx(3.5)
    assert critical_path(result) == ["p1", "c"]
    split = latency_split(result)
    assert split.transfer_time.values.tolist() == pytest.approx([0.0, 1.5])
    assert float((split.compute_time + split.transfer_time + split.waiting_time).sum()) == pytest.approx(3.5)


def test_a_parent_that_gives_no_file_is_waited_for_without_a_transfer():
    trace = Trace("control", [job("p", 1.0, writes=["f"]), job("c", 1.0, ["p"])], files={"f": 10**6})
    result = replay(trace, two_hosts(), {"p": "a", "c": "b"})
    assert result.makespan == pytest.approx(2.0) and result.bytes_moved == 0


def test_a_lost_file_is_written_again_and_fetched_once_more():
    # p on a writes f for c on b; a fails at 1.2 while f is in flight: p runs again on b, and c reads it there.
    trace = Trace("lost", [job("p", 1.0, writes=["f"]), job("c", 1.0, ["p"], ["f"])], files={"f": 1000})
    result = replay(trace, two_hosts(), {"p": "a", "c": "b"}, failures={"a": 1.2})
    assert result.starts["p"] == pytest.approx(1.2) and result.hosts["p"] == "b"
    assert result.makespan == pytest.approx(1.2 + 1.0 + 1.0)
    assert result.attempts.reason.values.tolist() == ["output lost"]


def test_a_task_without_file_lists_waits_for_a_parent_that_wrote_nothing():
    trace = Trace("quiet", [job("p", 2.0), Task("c", "c", 0.0, 1.0, "recorded", ("p",))])
    result = replay(trace, two_hosts(), {"p": "a", "c": "b"})
    assert result.starts["c"] == pytest.approx(2.0) and result.bytes_moved == 0


def test_a_task_moved_after_its_storage_failed_cannot_read_its_inputs_again():
    trace = Trace("input", [job("t", 2.0, reads=["in"])], files={"in": 100})
    with pytest.raises(RuntimeError, match="storage host 'a' failed: task 't', moved to 'b', cannot read"):
        replay(trace, two_hosts(storage="a"), "a", failures={"a": 1.0})


def test_bad_files_name_the_task_and_the_file():
    with pytest.raises(ValueError, match=r"task 'c': file\(s\) \['g'\] have no size"):
        Trace("bad", [job("c", 1.0, reads=["g"])], files={})
    with pytest.raises(ValueError, match="file 'f' is written by two tasks, 'a' and 'b'"):
        Trace("bad", [job("a", 1.0, writes=["f"]), job("b", 1.0, writes=["f"])], files={"f": 1})
    with pytest.raises(ValueError, match="cycle"):
        Trace("bad", [job("a", 1.0, reads=["g"], writes=["f"]), job("b", 1.0, reads=["f"], writes=["g"])],
              files={"f": 1, "g": 1})  # fmt: skip


def test_the_per_task_overhead_delays_each_task_between_ready_and_queued():
    platform = Platform.from_dict({"hosts": {"a": {"tier": "hpc", "cores": 1}}, "overhead": 0.5})
    result = replay(Trace("chain", [job("p", 1.0), job("c", 1.0, ["p"])]), platform, "a")
    assert result.starts == pytest.approx({"p": 0.5, "c": 2.0}) and result.makespan == pytest.approx(3.0)
    split = latency_split(result)
    assert split.waiting_time.values.tolist() == pytest.approx([0.5, 0.5])
    with pytest.raises(ValueError, match="platform: overhead must be >= 0 s, got -1.0"):
        Platform.from_dict({"hosts": {"a": {"tier": "hpc", "cores": 1}}, "overhead": -1})


def test_calibrate_takes_the_median_gap_between_a_local_parent_and_its_child():
    from kit.replay.calibrate import calibrate

    def ran(task_id, start, end, host, parents=()):
        return Task(task_id, task_id, start, end, host, tuple(parents))

    tasks = [ran("a", 0.0, 1.0, "h"), ran("b", 1.2, 2.2, "h", ["a"]), ran("c", 2.5, 3.0, "h", ["b"]),
             ran("d", 9.0, 9.5, "g", ["a"])]  # fmt: skip
    assert calibrate(Trace("gaps", tasks)).overhead == pytest.approx(0.25)  # (0.2 + 0.3) / 2; d crossed hosts
    # On one core, c is ready at 1 but x holds the core until 3: c's gap counts from 3 (0.1), d's from 4 (0.2).
    busy = [ran("a", 0.0, 1.0, "h"), ran("x", 1.0, 3.0, "h"), ran("c", 3.1, 4.0, "h", ["a"]),
            ran("d", 4.2, 5.0, "h", ["c"])]  # fmt: skip
    assert calibrate(Trace("busy", busy)).overhead == pytest.approx(0.15)
    # Two threads ran tasks on h (2 cores), but the wide w held both from 1 to 3: c's gap counts from 3.
    wide = [ran("a", 0.0, 1.0, "h"), Task("w", "w", 1.0, 3.0, "h", cores=2, thread=1),
            ran("c", 3.1, 4.0, "h", ["a"]), ran("d", 4.2, 5.0, "h", ["c"])]  # fmt: skip
    assert calibrate(Trace("wide", wide)).overhead == pytest.approx(0.15)


def test_streams_relabels_and_scaled_platforms_keep_files_storage_and_overhead():
    from kit.replay import Stream
    from kit.replay.factors import scaled
    from kit.replay.trace import relabel

    trace = Trace("files", [job("p", 1.0, reads=["in"], writes=["f"]), job("c", 1.0, ["p"], ["f"])],
                  files={"in": 1000, "f": 1000})  # fmt: skip
    platform = two_hosts(storage="a")
    platform = Platform(platform.hosts, platform.links, platform.storage, overhead=0.25)
    faster = scaled(platform, {"speed": 2.0})
    assert (faster.storage, faster.overhead) == ("a", 0.25)
    named = relabel(trace, {"p": "simulation"})
    assert named.files == trace.files and named.tasks[0].component == "simulation"
    steps = Stream("trainer", work=0.5, component="training", consumes="simulation", batch=1)
    result = replay(named, platform, {"p": "a", "c": "b", "training": "a"}, streams=[steps])
    # p: overhead 0.25, 1 s; f to b: 0.5 + 1 s, then overhead; the training step after p on a: 0.25 + 0.5 s.
    assert result.ends["c"] == pytest.approx(0.25 + 1.0 + 1.5 + 0.25 + 1.0)
    assert result.ends["trainer:0"] == pytest.approx(0.25 + 1.0 + 0.25 + 0.5)


def disks(read=None, write=None, storage=None):
    """Hosts ``a``, ``b``, ``c`` (2 cores each) joined to ``a`` by links of 10^6 B/s without latency; disk
    bandwidths (B/s) by host as given."""
    hosts = {name: {"tier": "hpc", "cores": 2} for name in "abc"}
    for mode, bandwidths in (("read", read or {}), ("write", write or {})):
        for name, bandwidth in bandwidths.items():
            hosts[name].setdefault("disk", {})[mode] = bandwidth
    links = [{"ends": ["a", name], "bandwidth": 1e6} for name in "bc"]
    return Platform.from_dict({"hosts": hosts, "links": links, "storage": storage})


def test_transfers_from_one_disk_share_its_read_bandwidth():
    # p on a writes two 1000-byte files, read by c1 on b and c2 on c: both leave a's disk at 500 B/s each.
    trace = Trace(
        "fan",
        [job("p", 1.0, writes=["f1", "f2"]), job("c1", 1.0, ["p"], ["f1"]), job("c2", 3.0, ["p"], ["f2"])],
        files={"f1": 1000, "f2": 1000},
    )
    placement = {"p": "a", "c1": "b", "c2": "c"}
    result = replay(trace, disks(read={"a": 1000.0}), placement)
    assert result.ready == pytest.approx({"p": 0.0, "c1": 3.0, "c2": 3.0}) and result.makespan == pytest.approx(6.0)
    # Without a disk bandwidth the links alone (10^6 B/s) take 1 ms; on a's own host the files cost nothing.
    assert replay(trace, disks(), placement).ready["c1"] == pytest.approx(1.001)
    assert replay(trace, disks(read={"a": 1000.0}), "a").makespan == pytest.approx(4.0)


def test_transfers_to_one_disk_share_its_write_bandwidth_and_the_slowest_part_of_a_route_sets_the_rate():
    # b's 3000 bytes and c's 1000 bytes go to a, whose disk writes 2000 B/s: 1000 B/s each until c's ends at
    # 2 (1 + 1000 / 1000), then b's last 2000 bytes alone at 2000 B/s: at 3.
    tasks = [job("pb", 1.0, writes=["fb"]), job("pc", 1.0, writes=["fc"]), job("c", 1.0, ["pb", "pc"], ["fb", "fc"])]
    trace = Trace("gather", tasks, files={"fb": 3000, "fc": 1000})
    placement = {"pb": "b", "pc": "c", "c": "a"}
    result = replay(trace, disks(write={"a": 2000.0}), placement)
    assert result.ready["c"] == pytest.approx(3.0) and result.makespan == pytest.approx(4.0)
    assert result.waited_for["c"] == "pb"
    # A slower disk read at b (500 B/s) holds fb to 500 B/s; fc takes the rest of a's write bandwidth.
    slow = replay(trace, disks(read={"b": 500.0}, write={"a": 2000.0}), placement)
    assert slow.ready["c"] == pytest.approx(1.0 + 3000 / 500)


def test_workflow_inputs_leave_the_storage_hosts_disk():
    trace = Trace("inputs", [job("t1", 1.0, reads=["in1"]), job("t2", 1.0, reads=["in2"])],
                  files={"in1": 1000, "in2": 3000})  # fmt: skip
    result = replay(trace, disks(read={"a": 1000.0}, storage="a"), {"t1": "b", "t2": "c"})
    # 500 B/s each until in1 is read (2 s), then in2's last 2000 bytes at 1000 B/s (4 s).
    assert result.starts == pytest.approx({"t1": 2.0, "t2": 4.0})


def test_bad_disks_name_the_host_and_the_field():
    def platform(disk):
        return Platform.from_dict({"hosts": {"a": {"tier": "hpc", "cores": 1, "disk": disk}}})

    with pytest.raises(ValueError, match=r"host 'a': disk: unknown field\(s\) \['speed'\]; fields are read, write"):
        platform({"speed": 1})
    with pytest.raises(ValueError, match="host 'a': disk write must be > 0 bytes/s, got 0.0"):
        platform({"write": 0})
    with pytest.raises(ValueError, match=r"host 'a': disk: expected a mapping \{read, write\}"):
        platform(5)
    assert platform({"read": 1e9}).disks[0].name == "a:disk-read"
