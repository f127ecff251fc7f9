"""kit.cluster: the clusters the kit starts, and how they close."""

import logging

from kit.cluster import SHUTDOWN_LOGGERS, _quiet_shutdown, connect


def _levels() -> dict[str, int]:
    return {name: logging.getLogger(name).level for name in SHUTDOWN_LOGGERS}


def test_closing_its_own_cluster_silences_the_workers_shutdown_logs_and_restores_this_process(cluster_client):
    before = _levels()
    with _quiet_shutdown() as silence:
        for levels in cluster_client.run(_levels).values():
            assert set(levels.values()) != {logging.CRITICAL}
        silence(cluster_client)
        assert set(_levels().values()) == {logging.CRITICAL}  # the nannies, while the cluster closes
        for levels in cluster_client.run(_levels).values():
            assert set(levels.values()) == {logging.CRITICAL}
    assert _levels() == before


def test_a_client_passed_in_is_used_as_is_and_left_open(cluster_client):
    with connect(cluster_client) as client:
        assert client is cluster_client
    assert cluster_client.status == "running"
    assert len(cluster_client.run(_levels)) == 2


def test_a_local_cluster_is_started_and_closed_leaving_the_log_levels_as_they_were():
    before = _levels()
    with connect(None, n_workers=1) as client:
        assert len(client.scheduler_info()["workers"]) == 1
    assert client.status == "closed"
    assert _levels() == before


def fresh_array_faults(count: int = 40, nbytes: int = 1 << 20) -> int:
    """Page faults of this thread while it makes and drops ``count`` arrays of ``nbytes``: about
    ``count * nbytes / 4096`` when each is mapped anew, a few hundred when the heap reuses one."""
    import resource

    import numpy as np

    before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    for _ in range(count):
        np.ones(nbytes // 8).sum()
    return resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before


def test_workers_reuse_their_heap_for_large_arrays_despite_the_nanny_setting(cluster_client, tmp_path):
    import os
    import subprocess
    import sys

    pages = 40 * (1 << 20) // 4096
    script = "from test_cluster import fresh_array_faults; print(fresh_array_faults())"
    nanny_like = subprocess.run(  # what a worker did with the nanny's setting alone
        [sys.executable, "-c", script], env={**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536"},
        cwd=os.path.dirname(__file__), capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert int(nanny_like.stdout) > pages // 2
    with connect(cluster_client) as client:
        for faults in client.run(fresh_array_faults).values():
            assert faults < pages // 4
        assert set(client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_").values()) == {"65536"}
