"""Where parallel work runs (simulations, replays): a dask ``LocalCluster`` by default, or any scheduler reached
by address."""

from __future__ import annotations

import contextlib
import logging

log = logging.getLogger(__name__)

#: Loggers that report a closing cluster's own shutdown (a worker's heartbeat to a scheduler already gone, a
#: nanny killing a worker slow to exit on a busy machine): noise when the kit closes a cluster it started.
SHUTDOWN_LOGGERS = ("distributed.worker", "distributed.nanny", "distributed.core", "distributed.comm")


@contextlib.contextmanager
def connect(client=None, *, n_workers: int = 2, timeout: float = 10.0):
    """Yield a ``distributed.Client``.

    ``client`` is None (start a ``LocalCluster`` of ``n_workers`` single-threaded processes, closed on
    exit), a scheduler address such as ``"tcp://10.0.0.5:8786"`` (from dask-jobqueue, dask-kubernetes or
    ``dask scheduler``), or an existing ``Client`` (used as is, left open). An unreachable address is a
    ``ConnectionError`` after ``timeout`` seconds. Its workers get glibc's usual malloc thresholds
    (:mod:`kit.workers`).
    """
    from distributed import Client, LocalCluster

    from kit.workers import UsualMalloc

    if isinstance(client, Client):
        client.register_plugin(UsualMalloc())
        yield client
        return
    if client is None:
        with (
            _quiet_shutdown() as silence,
            # No dashboard; its HTTP routes on a free loopback port (None would try 8787 and warn when taken).
            LocalCluster(
                n_workers=n_workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address="127.0.0.1:0",
                scheduler_kwargs={"dashboard": False},
            ) as cluster,
            Client(cluster) as owned,
        ):
            owned.register_plugin(UsualMalloc())
            try:
                yield owned
            finally:
                silence(owned)
        return
    if not isinstance(client, str):
        raise TypeError(f"client must be None, a scheduler address or a distributed.Client, got {client!r}")
    try:
        owned = Client(client, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        raise ConnectionError(
            f"no dask scheduler answered at {client!r} within {timeout:g} s; start one with "
            "'dask scheduler' (and 'dask worker <address>'), or pass client=None for a LocalCluster"
        ) from exc
    with owned:
        owned.register_plugin(UsualMalloc())
        yield owned


def _silence(level: int = logging.CRITICAL) -> dict[str, int]:
    """Set this process's shutdown loggers to ``level``; their former levels."""
    former = {name: logging.getLogger(name).level for name in SHUTDOWN_LOGGERS}
    for name in SHUTDOWN_LOGGERS:
        logging.getLogger(name).setLevel(level)
    return former


@contextlib.contextmanager
def _quiet_shutdown():
    """Yield ``silence(client)``, to call just before the kit closes its own cluster: the shutdown loggers of
    its workers are silenced for good, those of this process (the nannies) until this context exits.
    Work done before is unaffected: its errors were raised or logged already."""
    former = {}

    def silence(client):
        with contextlib.suppress(Exception):  # a broken cluster closes as it can, a hung worker is not waited for
            client.sync(client._run, _silence, on_error="ignore", callback_timeout=5)
        former.update(_silence())

    try:
        yield silence
    finally:
        for name, level in former.items():
            logging.getLogger(name).setLevel(level)
