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
