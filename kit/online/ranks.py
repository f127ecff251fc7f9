"""Several trainers: data-parallel online training on ranks, each a dask task on its own worker with its own
receiving socket, buffer and share of the simulations; gradients are all-reduced at every step
(``torch.distributed``: gloo on CPU, nccl on CUDA, through ``DistributedDataParallel``).

The study's process coordinates (:func:`run_ranks`): it chooses the workers, hosts the store the ranks meet
through and the study's one sampler (:mod:`kit.online.draws`), shows progress, and names a rank that
failed or died. Each rank (:func:`train_rank`) runs the study's own loop on its share; at every turn of
that loop the ranks agree (:meth:`Group.agree`) whether to step, all of them together, or to stop: when
every share is done, or when the coordinator stopped.
"""

from __future__ import annotations

import copy
import datetime
import pickle
import time
from dataclasses import dataclass

import numpy as np

from kit.cluster import connect
from kit.online.checkpoint import Checkpoint, fingerprint, restore, take
from kit.online.control import StudyError, workers_lost
from kit.online.dataplane import default_bind, new_epoch
from kit.online.draws import RemoteDraws, SamplerService
from kit.online.history import History
from kit.online.ledger import Ledger
from kit.online.resplit import merge_ledgers, share, split

#: Seconds between two looks at the ranks' tasks, and between two questions to the scheduler about their workers.
WATCH_EVERY, ASK_EVERY = 0.1, 1.0
#: Most seconds the scheduler may take to notice a dead worker after its rank's peers failed.
NOTICE = 20.0


@dataclass(frozen=True)
class Rendezvous:
    """Where the ranks of one study run meet: the coordinator's store (keys under ``prefix``) and sampler,
    the number of ranks, the backend, and the seconds a rank waits for the others before it fails."""

    host: str
    port: int
    prefix: str
    world: int
    backend: str
    timeout: float
    sampler: str


class Group:
    """This process's place among the ranks: a ``torch.distributed`` process group joined through the
    coordinator's store. A rank started twice (dask reran it after its worker died) refuses to join."""

    def __init__(self, rendezvous: Rendezvous, rank: int):
        import torch
        import torch.distributed as dist

        self.rank, self.world, self.dist = rank, rendezvous.world, dist
        timeout = datetime.timedelta(seconds=rendezvous.timeout)
        store = dist.TCPStore(rendezvous.host, rendezvous.port, is_master=False, timeout=timeout)
        self.store = dist.PrefixStore(rendezvous.prefix, store)
        if self.store.add(f"starts/{rank}", 1) > 1:
            raise StudyError(f"rank {rank} was started again after its worker died: the study ends")
        dist.init_process_group(rendezvous.backend, store=self.store, rank=rank, world_size=self.world, timeout=timeout)
        self._flags = torch.zeros(3)  # on the CPU: a cuda:nccl group reduces it with gloo
        self._reported, self._told = None, 0.0
        self._looked = 0.0  # when rank 0 last looked for the coordinator's stop

    def agree(self, done: bool, ready: bool) -> tuple[bool, bool, float]:
        """Decided by all ranks together: whether to stop (every rank is done, or the coordinator said
        stop), whether to step (every rank not done has a batch), and this rank's weight in the step (its
        loss scaled so that the average over all ranks is the mean over those not done; 0 once done)."""
        stopped = False
        if self.rank == 0 and time.monotonic() - self._looked > WATCH_EVERY:
            stopped, self._looked = self.store.check(["stop"]), time.monotonic()
        self._flags[0], self._flags[1], self._flags[2] = float(not done), float(not done and not ready), float(stopped)
        self.dist.all_reduce(self._flags)
        going, waiting, stop = (int(flag) for flag in self._flags.tolist())
        if stop or not going:
            return True, False, 0.0
        return False, not waiting, 0.0 if done else self.world / going

    def gather(self, obj) -> list | None:
        """Every rank's ``obj``, in rank order, on rank 0 (None elsewhere)."""
        parts = [None] * self.world if self.rank == 0 else None
        self.dist.gather_object(obj, parts, dst=0)
        return parts

    def report(self, completed: int, drawn) -> None:
        """Tell the coordinator how many of this rank's simulations completed and samples it drew into
        batches (``drawn()``, asked only then: at most every :data:`WATCH_EVERY` seconds, and when a
        simulation completed)."""
        if completed != self._reported or time.monotonic() - self._told > WATCH_EVERY:
            self.store.set(f"progress/{self.rank}", f"{completed} {drawn()}")
            self._reported, self._told = completed, time.monotonic()

    def close(self) -> None:
        if self.dist.is_initialized():
            self.dist.destroy_process_group()


def choose_workers(client, n: int, resources: dict | None) -> list[str]:
    """``n`` workers to host the ranks: those with ``resources`` (such as ``{"GPU": 1}``), the last by name."""
    workers = client.scheduler_info(n_workers=-1)["workers"]
    fit = [
        address
        for address, info in sorted(workers.items(), key=lambda item: str(item[1].get("name")))
        if all(info.get("resources", {}).get(key, 0) >= amount for key, amount in (resources or {}).items())
    ]
    if len(fit) < n:
        what = f" with resources {resources}" if resources else ""
        found = {address: info.get("resources", {}) for address, info in workers.items()}
        raise ValueError(
            f"trainers={n} needs {n} dask workers{what}, one a rank; the cluster has {len(fit)} (workers and their "
            f"resources: {found}); start workers with e.g. 'dask worker <scheduler> --resources GPU=1'"
        )
    return fit[-n:]


def run_ranks(study, *, progress: bool, callback=None, callback_every: int = 20) -> list[dict]:
    """Run ``study`` on ``study.trainers`` ranks; what each rank returns, in rank order. ``callback`` gets the
    study so far every ``callback_every`` batches (:func:`report`); :meth:`OnlineStudy.stop` ends the ranks."""
    import torch.distributed as dist
    from tqdm.auto import tqdm

    n = study.trainers
    with connect(study.client, n_workers=study.n_workers + n, timeout=study.connect_timeout) as client:
        workers = choose_workers(client, n, study.trainer_resources)
        host = default_bind(client.scheduler.address).split("://")[1].rsplit(":", 1)[0]
        timeout = datetime.timedelta(seconds=study.rank_timeout)
        store = dist.TCPStore(host, 0, is_master=True, wait_for_workers=False, timeout=timeout)
        prefix = f"{study.name}-{new_epoch()}"
        for rank in range(n):
            store.set(f"{prefix}/progress/{rank}", "0 0")
        resumed = [None] * n
        if study.checkpoint is not None and (state := restore(study)) is not None:
            resumed = split(state, n, study.buffer.capacity, study.n_simulations)
        study.report_every = callback_every if callback is not None else None
        reports = Reports(study)
        with SamplerService(study.sampler, study.space, host, study.next_id, study.offered) as service:
            rendezvous = Rendezvous(host, store.port, prefix, n, study.backend, study.rank_timeout, service.address)
            futures = [
                client.submit(train_rank, _spec(study, rank, resumed[rank]), rank, rendezvous,
                              key=f"train-rank-{rank}-{prefix}",
                              workers=[worker], allow_other_workers=False, resources=study.trainer_resources,
                              pure=False)
                for rank, worker in enumerate(workers)
            ]  # fmt: skip
            bar = tqdm(total=study.n_simulations, desc="simulations", unit="sim", disable=not progress)
            begun = asked = time.monotonic()
            try:
                while not all(future.status == "finished" for future in futures):
                    if service.error is not None:
                        raise StudyError("the study's sampler failed") from service.error
                    if time.monotonic() - asked > ASK_EVERY or any(f.status in ("error", "cancelled") for f in futures):
                        _check(client, futures, workers)
                        asked = time.monotonic()
                    if time.monotonic() - begun > study.rank_timeout:
                        _started(store, prefix, workers, study.rank_timeout)
                    progress = [store.get(f"{prefix}/progress/{rank}").split() for rank in range(n)]
                    bar.update(sum(int(done) for done, _ in progress) - bar.n)
                    drawn = sum(int(count) for _, count in progress)
                    bar.set_postfix(samples_per_s=f"{drawn / (time.monotonic() - begun):.0f}", refresh=False)
                    if study.stopping:
                        store.set(f"{prefix}/stop", "1")
                    _call_back(store, prefix, reports, callback)
                    time.sleep(WATCH_EVERY)
                _call_back(store, prefix, reports, callback)  # what came in the last turn
                parts = client.gather(futures)
            finally:
                store.set(f"{prefix}/stop", "1")  # ranks still running (an error here, an interrupt) stop
                _wait_for_ranks(client, futures)
                bar.close()
                study.next_id, study.offered = service.next_id, service.offered
    return parts


def _spec(study, rank: int, resumed: dict | None):
    """The copy of ``study`` sent to rank ``rank`` with its part of the checkpoint resumed: without its
    client and sampler (they stay here), and without the validation set and the Sobol' maps so far but on
    rank 0 (which validates, and whose maps the others' are merged into)."""
    spec = copy.copy(study)
    spec.client = spec.sampler = None
    spec.resumed = resumed
    if rank:  # rank 0 validates, and its Sobol' maps go on from the study's (a resumed study's) own
        spec.validation = None
        spec.sensitivity = None if study.sensitivity is None else study.sensitivity.empty()
    return spec


def _check(client, futures, workers) -> None:
    """Raise a :class:`StudyError` naming the ranks that died with their worker, else the ranks that failed."""
    deadline = time.monotonic() + NOTICE  # a rank's death fails the others at once: the scheduler may lag
    while True:
        failed = [rank for rank, future in enumerate(futures) if future.status in ("error", "cancelled")]
        lost = client.run_on_scheduler(workers_lost, keys=[future.key for future in futures])
        died = [rank for rank, future in enumerate(futures) if lost[future.key]]
        if died or not failed:
            break
        if time.monotonic() > deadline or all(future.status != "pending" for future in futures):
            break
        time.sleep(WATCH_EVERY)
    if died:
        names = ", ".join(f"rank {rank} (worker {workers[rank]})" for rank in died)
        raise StudyError(f"training {names} died: the study ends")
    if not failed:
        return
    rank = failed[0]
    error = futures[rank].exception() if futures[rank].status == "error" else None
    raise StudyError(f"training rank {rank} (worker {workers[rank]}) failed: {error!r}") from error


def _wait_for_ranks(client, futures) -> None:
    """Wait (up to :data:`NOTICE` seconds) until no rank runs: a failed study returns once its ranks ended (and
    rank 0 wrote its last checkpoint), so that it can be resumed at once."""
    keys = {future.key for future in futures}
    deadline = time.monotonic() + NOTICE
    while time.monotonic() < deadline:
        if not keys & {key for running in client.processing().values() for key in running}:
            return
        time.sleep(WATCH_EVERY)


def _started(store, prefix: str, workers: list[str], timeout: float) -> None:
    """Raise a :class:`StudyError` naming the ranks that did not start within ``timeout`` seconds."""
    late = [rank for rank in range(len(workers)) if not store.check([f"{prefix}/starts/{rank}"])]
    if late:
        names = ", ".join(f"rank {rank} (worker {workers[rank]})" for rank in late)
        raise StudyError(f"training {names} did not start within {timeout:g} s (rank_timeout): is the worker busy?")


def train_rank(study, rank: int, rendezvous: Rendezvous) -> dict:
    """The task of rank ``rank``: join the group, run the study's loop on this rank's share, return its part."""
    from distributed import get_client

    group = draws = None
    try:
        group = Group(rendezvous, rank)
        draws = RemoteDraws(rendezvous.sampler, rendezvous.timeout)
        study.group, study.sampler, study.client = group, draws, get_client()
        logs = {"metrics": study.metrics, "checks": study.checks, "arrivals": study.ledger.arrivals}  # as restored
        last = logs["metrics"].last()
        study.seconds_before = last["seconds"] if last else 0.0  # the study's clock goes on
        study.metrics, study.ledger = History(study.metrics.columns), Ledger()  # this rank's, from now on
        if study.checkpoint is not None:  # rank 0 writes the checkpoint, with the ranks' logs merged
            study.checkpoint, study.merged, study.unlaunched = Checkpoint(study.checkpoint.path, logs), logs, []
        if study.resumed is None:
            study.n_simulations = share(study.n_simulations, rank, group.world)
        else:
            take(study, study.resumed)
            study.n_simulations = study.resumed["n_simulations"]
        study.buffer.reseed(study._buffer_seed.spawn(group.world)[rank])
        study.trainer.to(study.device)
        study.trainer.distribute()
        study.name = f"{study.name}-rank-{rank}"
        told = {"metrics": 0, "checks": len(study.checks), "reports": 0}  # a resumed study's checks are known
        reporting = (lambda _: report(study, told)) if study.report_every else None
        study.run(progress=False, callback=reporting, callback_every=study.report_every or 1)
        trainer = _on_cpu(study.trainer.state_dict()) if rank == 0 else None
        return {"ledger": study.ledger, "metrics": study.metrics, "checks": study.checks,
                "buffer": study.buffer.metrics(), "run_stats": study.run_stats, "trainer": trainer,
                "sensitivity": study.sensitivity, "timeline": study.timeline}  # fmt: skip
    finally:
        if draws is not None:
            draws.close()
        if group is not None:
            group.close()


def report(study, told: dict) -> None:
    """Every rank's simulations and new metric rows (rank 0's new checks too), gathered on rank 0 and put in
    the coordinator's store for its callback; ``told`` counts what earlier reports sent."""
    with study.intake.lock:  # a consistent snapshot of what the receiver also changes
        part = {"ledger": study.ledger.state(), "buffer": study.buffer.metrics()}
    part["metrics"] = study.metrics.rows()[told["metrics"] :]
    told["metrics"] += len(part["metrics"])
    parts = study.group.gather(part)
    if parts is None:
        return
    checks = study.checks.rows()[told["checks"] :]
    told["checks"] += len(checks)
    told["reports"] += 1
    study.group.store.set(f"report/{told['reports']}", pickle.dumps({"parts": parts, "checks": checks}))


def _call_back(store, prefix: str, reports, callback) -> None:
    """Take in the ranks' reports waiting in the store, then call ``callback`` once with the study so far."""
    if callback is None:
        return
    count = reports.count
    while store.check([key := f"{prefix}/report/{reports.count + 1}"]):
        reports.add(pickle.loads(store.get(key)))
        store.delete_key(key)
    if reports.count > count:
        callback(reports.result())


class Reports:
    """What the ranks reported so far (:func:`report`), and the study's result from it."""

    def __init__(self, study):
        self.study, self.count, self.parts = study, 0, []
        self.metrics = [History(study.metrics.columns) for _ in range(study.trainers)]
        self.checks = History(study.checks.columns)
        self.checks.extend(study.checks.rows())  # those of a resumed study's earlier runs

    def add(self, report: dict) -> None:
        for history, part in zip(self.metrics, report["parts"], strict=True):
            history.extend(part["metrics"])
        self.checks.extend(report["checks"])
        self.parts, self.count = report["parts"], self.count + 1

    def result(self):
        """The study's :class:`~kit.online.results.StudyResult` so far (its model is not trained here, and its
        Sobol' maps are empty until the end)."""
        view = copy.copy(self.study)
        view.ledger = Ledger()
        view.ledger.load(merge_ledgers([part["ledger"] for part in self.parts]))
        view.metrics = History(self.study.metrics.columns)
        view.metrics.extend(self.study.metrics.rows())  # a resumed study's earlier batches
        view.metrics.extend(summed([history.rows() for history in self.metrics], self.study.metrics.columns))
        view.checks, view.rank_metrics = _copy(self.checks), [_copy(history) for history in self.metrics]
        if view.sensitivity is not None:  # the ranks' Sobol' maps are merged at the end
            view.sensitivity = view.sensitivity.empty()
        view.buffer_metrics = _buffers(self.parts)
        return view.result()


def _copy(history: History) -> History:
    """A copy of ``history`` that later rows do not change."""
    copied = History(history.columns)
    copied.extend(history.rows())
    return copied


def check_ranks(study) -> None:
    """Refuse, naming the culprit, what several ranks cannot do."""
    import torch
    import torch.distributed as dist

    n = study.trainers
    if study.n_simulations < n:
        raise ValueError(f"n_simulations ({study.n_simulations}) must be at least trainers ({n}): each rank needs some")
    address = study.data_address
    if address is not None and not (address.startswith("tcp://") and address.rsplit(":", 1)[-1] in ("*", "0")):
        raise ValueError(
            f"data_address must be None or 'tcp://host:*' with trainers > 1 (each rank listens on a port of its "
            f"own), got {address!r}"
        )
    backends = [
        name for name in ("gloo", "nccl", "mpi", "ucc") if dist.is_available() and dist.is_backend_available(name)
    ]
    named = [part.rsplit(":", 1)[-1] for part in study.backend.split(",")]
    if any(name not in backends for name in named):
        raise ValueError(
            f"backend {study.backend!r} is not available in this torch build ({torch.__version__}); "
            f"available: {backends}"
        )
    if "nccl" in named and not str(study.device).startswith("cuda"):
        raise ValueError(f"backend {study.backend!r} needs device='cuda' (the model trains on {study.device!r})")
    if not any(parameter.requires_grad for parameter in study.trainer.model.parameters()):
        raise ValueError(
            f"model {type(study.trainer.model).__name__} has no parameter that requires a gradient: there is nothing "
            "to train data-parallel"
        )


#: How the ranks' metrics after each batch add up: summed, averaged, or their maximum (the rest).
_SUMMED = ("produced", "consumed", "trained", "pending")
_AVERAGED = ("loss", "occupancy", "age_mean")


def summed(rows: list[np.ndarray], columns: tuple) -> np.ndarray:
    """The ranks' metric rows ``(batch, column)`` (as many each: the ranks step together) added up."""
    rows = np.stack(rows)
    total = rows.max(axis=0)
    for name in _SUMMED:
        total[:, columns.index(name)] = rows[:, :, columns.index(name)].sum(axis=0)
    for name in _AVERAGED:  # a rank done before the others has no loss (NaN) in its last steps
        total[:, columns.index(name)] = np.nanmean(rows[:, :, columns.index(name)], axis=0)
    return total


def save_checkpoint(study) -> None:
    """Every rank's part of the checkpoint at this batch, gathered by rank 0 and written there with the model,
    the sampler's snapshot, the draws not launched yet and the ranks' logs merged."""
    with study.intake.lock:  # a consistent snapshot of what the receiver also changes
        part = {"buffer": study.buffer.state_dict(), "ledger": study.ledger.state(),
                "held": copy.deepcopy(study.intake.held), "metrics": study.metrics.unsaved(),
                "arrivals": study.ledger.arrivals.unsaved(), "epoch": study.epochs[-1],
                "sensitivity": None if study.sensitivity is None else study.sensitivity.state_dict()}  # fmt: skip
        study.metrics.mark_saved(len(study.metrics))
        study.ledger.arrivals.mark_saved(len(study.ledger.arrivals))
    parts = study.group.gather(part)
    if parts is None:
        return
    sampler, next_id, draws = study.sampler.snapshot()
    ledger = merge_ledgers([p["ledger"] for p in parts])
    # draws no rank had launched by its snapshot: kept until one did, launched first on resume
    unlaunched = {d[0]: d for d in [*study.unlaunched, *draws] if d[0] not in ledger["simulations"]}
    study.unlaunched = list(unlaunched.values())
    study.merged["metrics"].extend(summed([p["metrics"] for p in parts], study.metrics.columns))
    study.merged["arrivals"].extend(np.concatenate([p["arrivals"] for p in parts]))
    study.checkpoint.save({
        "fingerprint": fingerprint(study), "trainer": _on_cpu(study.trainer.state_dict()), "sampler": sampler,
        "next_id": next_id, "offered": study.unlaunched,
        "epochs": [*study.epochs[:-1], *(p["epoch"] for p in parts)], "ledger": ledger,
        "buffers": [p["buffer"] for p in parts], "helds": [p["held"] for p in parts],
        "sensitivity": _merged(study.sensitivity, [p["sensitivity"] for p in parts]),
    })  # fmt: skip


def _merged(sensitivity, states: list) -> dict | None:
    """The ranks' Sobol' maps (their states) merged into one state, or None without maps."""
    if sensitivity is None:
        return None
    total = sensitivity.empty()
    for state in states:
        total.merge(sensitivity.empty().load_state_dict(state))
    return total.state_dict()


def _buffers(parts: list[dict]) -> dict:
    """The ranks' buffer counters that a study's accounting reads, added up."""
    return {key: sum(part["buffer"][key] for part in parts) for key in ("trained", "evicted_unseen")}


def _on_cpu(state):
    """A copy of a state dict with its tensors on the CPU."""
    import torch

    if isinstance(state, torch.Tensor):
        return state.detach().to("cpu", copy=True)
    if isinstance(state, dict):
        return {key: _on_cpu(value) for key, value in state.items()}
    if isinstance(state, list | tuple):
        return type(state)(_on_cpu(value) for value in state)
    return copy.deepcopy(state)


def merge(study, parts: list[dict]) -> None:
    """Put what the ranks returned into ``study``: the trained model, one ledger, metrics added up over the
    ranks at each batch (``study.rank_metrics`` keeps each rank's), rank 0's validation checks."""
    study.trainer.load_state_dict(parts[0]["trainer"])
    study.ledger = ledger = Ledger(arrivals=study.ledger.arrivals)  # the log of a resumed study goes on
    ledger.load(merge_ledgers([vars(part["ledger"]) for part in parts]))
    for part in parts:
        ledger.arrivals.extend(part["ledger"].arrivals.rows())
    study.metrics.extend(summed([part["metrics"].rows() for part in parts], study.metrics.columns))
    study.checks = parts[0]["checks"]
    if study.sensitivity is not None:  # into the study's own object: rank 0's maps went on from it
        study.sensitivity.load_state_dict(_merged(study.sensitivity, [p["sensitivity"].state_dict() for p in parts]))
    study.rank_metrics = [part["metrics"] for part in parts]
    if study.timeline is not None:  # each rank's: a trace puts their batches on hosts of their own
        study.timeline = [part["timeline"] for part in parts]
    study.buffer_metrics = _buffers(parts)
    study.run_stats = {
        **{key: sum(part["run_stats"][key] for part in parts) for key in parts[0]["run_stats"]},
        "ranks": [part["run_stats"] for part in parts],
    }
