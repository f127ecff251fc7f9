"""An online-training study: simulations on dask stream time steps into a buffer that a trainer draws from.

No epochs and no dataset on disk: parameters are asked of a sampler when a simulation is launched,
per-sample losses are told back after each batch, and memory is bounded by the buffer's capacity plus
the chunks in flight (``in_flight`` simulations, a queue of ``queue_size`` chunks).
"""

from __future__ import annotations

import logging
import os
import pickle
import time
import uuid
from pathlib import Path

import numpy as np

from kit.cluster import connect
from kit.online.buffers import Sample, make_buffer
from kit.online.ledger import Ledger, Simulation
from kit.online.producer import simulate
from kit.online.results import StudyResult
from kit.online.surrogates import make_surrogate
from kit.online.timeline import Timeline
from kit.online.trainer import Encoding, Trainer, seeded_model
from kit.sampling import Sampler, make_sampler
from kit.seeding import simulation_seed

log = logging.getLogger(__name__)


class StudyError(RuntimeError):
    """A study cannot go on (too many failed simulations); the message lists them."""


class OnlineStudy:
    """Train a surrogate of ``simulator`` from simulations streamed while they run.

    Parameters
    ----------
    simulator
        A kit simulator (``space``, ``steps``, ``t_end``, ``field_range``, ``run``); it is pickled to workers.
    n_simulations
        Simulations to complete (failed ones are retried, then redrawn, and do not count).
    sampler
        A sampler name (``"random"``, ``"lhs"``, ``"sobol"``...), a :class:`kit.sampling.Sampler`, or an
        array ``(n, d)`` of parameter points used in order.
    model
        ``"mlp"``, ``"conv"`` or a ``torch.nn.Module`` mapping ``(b, d + 1)`` to ``(b, ny, nx)``.
    buffer, capacity, watermark
        Buffer policy (``"fifo"``, ``"firo"``, ``"reservoir"``) or a buffer object, its size and the
        number of samples held before training starts.
    batch_size, lr, max_batches
        Training batch size, Adam learning rate, and an optional cap on gradient steps (the study stops
        there, cancelling running simulations).
    batches_per_simulation
        Rate limit (Melissa's): once the buffer is ready, no more steps are pulled from the queue until
        this many batches per simulation's worth of steps received were trained, so simulations wait
        (backpressure), and before it ends the study trains up to that many batches per simulation while
        the buffer can serve batches (always for a reservoir, which reuses samples): the training done per
        simulation does not depend on the cluster's speed.
    validation, validate_every
        A :class:`~kit.online.validation.ValidationSet` evaluated every ``validate_every`` batches and at the end.
    in_flight, chunk_steps, queue_size
        Simulations running at once, time steps per streamed chunk, chunks waiting in the queue.
    retries, timeout, max_failures
        Attempts with the same parameters after a failure, seconds without a step before a simulation
        counts as hung (counted from submission: keep ``in_flight`` at most the cluster's threads, or the
        timeout above the wait for a free thread), failed simulations tolerated before the study stops.
    sensitivity
        A :class:`kit.sensitivity.FieldSobol` fed with every simulated step it keeps, so that one simulation
        budget yields the surrogate and Sobol' maps (``result.sensitivity``); needs ``sampler="pick_freeze"``
        (simulation ``i`` is row ``i % (d + 2)`` of pick-freeze group ``i // (d + 2)``). ``n_simulations`` a
        multiple of ``d + 2`` completes every group unless a simulation is redrawn: its group is dropped
        (``discarded_groups``) and the replacement starts the next one, which stays incomplete.
    checkpoint, checkpoint_every
        File to checkpoint to every ``checkpoint_every`` batches; an existing one is resumed.
    client, n_workers, connect_timeout
        None (a ``LocalCluster`` of ``n_workers`` processes), a scheduler address (an error after
        ``connect_timeout`` seconds when none answers), or a ``Client``.
    seed, device, torch_threads
        Study seed (simulation seeds derive from it and the simulation id), torch device, and the CPU
        threads torch may use while the study runs (default 1: the other cores run simulations).
    record
        Keep a timeline of every chunk received and batch trained (``result.trace()``: a
        :class:`kit.replay.Trace` to replay on other platforms); a resumed study records from the resume on.
    """

    def __init__(
        self,
        simulator,
        *,
        n_simulations: int = 8,
        sampler="sobol",
        model="mlp",
        model_options: dict | None = None,
        buffer="reservoir",
        capacity: int = 1000,
        watermark: int | None = None,
        batch_size: int = 32,
        lr: float = 1e-3,
        max_batches: int | None = None,
        batches_per_simulation: float | None = None,
        validation=None,
        validate_every: int = 50,
        in_flight: int = 2,
        chunk_steps: int = 5,
        queue_size: int = 8,
        retries: int = 1,
        timeout: float = 120.0,
        max_failures: int | None = None,
        sensitivity=None,
        checkpoint: str | os.PathLike | None = None,
        checkpoint_every: int = 100,
        client=None,
        n_workers: int = 2,
        connect_timeout: float = 10.0,
        seed: int = 0,
        device: str = "cpu",
        torch_threads: int | None = 1,
        record: bool = False,
    ):
        for name, value, low in (
            ("n_simulations", n_simulations, 1),
            ("batch_size", batch_size, 1),
            ("in_flight", in_flight, 1),
            ("chunk_steps", chunk_steps, 1),
            ("queue_size", queue_size, 1),
            ("retries", retries, 0),
            ("validate_every", validate_every, 1),
            ("checkpoint_every", checkpoint_every, 1),
            ("seed", seed, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if max_batches is not None and (not isinstance(max_batches, int) or max_batches < 1):
            raise ValueError(f"max_batches must be None or an int >= 1, got {max_batches!r}")
        if batches_per_simulation is not None and (
            isinstance(batches_per_simulation, bool)
            or not isinstance(batches_per_simulation, int | float)
            or not batches_per_simulation > 0
        ):
            raise ValueError(f"batches_per_simulation must be None or > 0, got {batches_per_simulation!r}")
        self.batches_per_simulation = batches_per_simulation
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        self.simulator, self.space = simulator, simulator.space
        self.n_simulations, self.batch_size, self.max_batches = n_simulations, batch_size, max_batches
        self.in_flight, self.chunk_steps, self.queue_size = in_flight, chunk_steps, queue_size
        self.retries, self.timeout = retries, float(timeout)
        self.max_failures = n_simulations if max_failures is None else max_failures
        self.validation, self.validate_every = validation, validate_every
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.checkpoint_every, self.client, self.n_workers, self.seed = checkpoint_every, client, n_workers, seed
        # Independent streams for the sampler, the buffer and the model's initial weights.
        sampler_seed, buffer_seed, model_seed = np.random.SeedSequence(seed).spawn(3)
        self.sampler = _sampler(sampler, self.space, sampler_seed)
        self.buffer = buffer if not isinstance(buffer, str) else make_buffer(buffer, capacity, watermark, buffer_seed)
        self.buffer.check_batch_size(batch_size)
        low, high = simulator.field_range
        self.encoding = Encoding(self.space, simulator.t_end, offset=(low + high) / 2, scale=(high - low) / 2)
        shape = (len(simulator.y), len(simulator.x))
        if isinstance(model, str):
            options = model_options or {}
            init = int(model_seed.generate_state(1)[0])
            model = seeded_model(lambda: make_surrogate(model, self.space.dim + 1, shape, **options), init)
        self.trainer = Trainer(model, lr=lr, device=device)
        self.sensitivity = _sensitivity(sensitivity, self.sampler, shape)
        self.torch_threads = torch_threads
        self.connect_timeout = connect_timeout
        self.ledger = Ledger()
        self.timeline = Timeline() if record else None
        self.metrics: list[dict] = []
        self.checks: list[dict] = []
        self.pending: list[Sample] = []
        self.next_id = 0
        self.name = f"kit-study-{uuid.uuid4().hex[:8]}"

    # -- the loop -------------------------------------------------------------------------------------
    def run(self, *, progress: bool = True, callback=None, callback_every: int = 20) -> StudyResult:
        """Run the study to the end; ``callback(result_so_far)`` every ``callback_every`` batches."""
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(self.torch_threads or threads)
        try:
            return self._run(progress, callback, callback_every)
        finally:
            torch.set_num_threads(threads)

    def _run(self, progress, callback, callback_every) -> StudyResult:
        from distributed import Event, Queue
        from tqdm.auto import tqdm

        self._resume()
        with connect(self.client, n_workers=self.n_workers, timeout=self.connect_timeout) as client:
            queue = Queue(self.name, client=client, maxsize=self.queue_size)
            stop = Event(f"{self.name}-stop", client=client)  # simulations blocked on a full queue watch it
            # Clock from the first launch (cluster start-up excluded), continued across a resume.
            self.started = time.perf_counter() - (self.metrics[-1]["seconds"] if self.metrics else 0.0)
            self.futures, self.activity = {}, {}
            for sim in self._running():
                self._submit(client, sim)
            bar = tqdm(total=self.n_simulations, desc="simulations", unit="sim", disable=not progress)
            bar.update(self._completed())
            try:
                while not self._finished():
                    self.iteration = time.time()  # a batch's recorded time includes its loop's receiving
                    self._launch(client)
                    received = self._receive(client, queue)
                    self._fill_buffer()
                    trained = self._train()
                    self._watch(client)
                    bar.update(self._completed() - bar.n)
                    if trained:
                        bar.set_postfix(batches=self.trainer.batches, loss=f"{self.metrics[-1]['loss']:.3g}")
                        self._maybe_checkpoint()
                        if callback and self.trainer.batches % callback_every == 0:
                            drawn = time.perf_counter()
                            callback(self.result())
                            self.started += time.perf_counter() - drawn  # drawing is not study time
                    if not (received or trained):
                        time.sleep(0.01)  # idle: leave the cores to the workers
                self._stop(client, queue)
            finally:
                stop.set()
                bar.close()
                queue.close()
        self._validate()
        return self.result()

    def _finished(self) -> bool:
        if self.max_batches is not None and self.trainer.batches >= self.max_batches:
            return True
        if self._running() or self.pending or self._completed() < self.n_simulations:
            return False
        if self._rate_limited():  # the batches owed to the last simulations come first
            return False
        self.buffer.close()
        return not self.buffer.ready()

    def _running(self) -> list[Simulation]:
        return list(self.ledger.running.values())

    def _completed(self) -> int:
        return self.ledger.ended["ok"] + self.ledger.ended["retried"]

    # -- simulations ------------------------------------------------------------------------------------
    def _launch(self, client) -> None:
        while len(self._running()) < self.in_flight and self._completed() + len(self._running()) < self.n_simulations:
            (params,) = self.space.validate(np.atleast_2d(self.sampler.ask(1)))
            sim = Simulation(self.next_id, params, simulation_seed(self.seed, self.next_id))
            self.ledger.add(sim)
            self.next_id += 1
            self._submit(client, sim)

    def _submit(self, client, sim: Simulation) -> None:
        sim.runs.clear()  # executions of this attempt (more than one: dask reran it after a worker died)
        if self.timeline is not None:
            self.timeline.launch(sim.sim_id, sim.attempts)
        self.futures[sim.sim_id] = client.submit(
            simulate,
            self.simulator,
            self.name,
            sim.params,
            sim.seed,
            sim.sim_id,
            sim.attempts,
            self.chunk_steps,
            key=f"simulate-{self.name}-{sim.sim_id}-attempt-{sim.attempts}",  # "simulate": traces label it
            pure=False,
        )
        self.activity[sim.sim_id] = time.perf_counter()

    def _watch(self, client) -> None:
        """Settle finished simulations, retry failed and hung ones."""
        now = time.perf_counter()
        for sim in self._running():
            future = self.futures[sim.sim_id]
            if future.status == "finished" and len(sim.steps) == self.simulator.steps:
                lost = client.run_on_scheduler(_workers_lost, key=future.key)
                if lost or len(sim.runs) > 1:  # dask reran the task elsewhere after its worker died
                    sim.reasons.append(f"worker lost while running ({max(lost, 1)} time(s)); rerun by dask")
                self.ledger.end(sim, "retried" if sim.attempts > 1 or sim.reasons else "ok")
                del self.futures[sim.sim_id]
            elif future.status == "error":
                self._failed(client, sim, f"{type(future.exception()).__name__}: {future.exception()}")
            elif future.status == "cancelled":
                self._failed(client, sim, "cancelled by the cluster (worker lost or restarted)")
            elif now - self.activity[sim.sim_id] > self.timeout:
                _restart_worker_of(client, future)
                self._failed(client, sim, f"no time step for {self.timeout:g} s (hung)")

    def _failed(self, client, sim: Simulation, reason: str) -> None:
        sim.reasons.append(reason)
        log.warning("simulation %d (attempt %d) failed: %s", sim.sim_id, sim.attempts, reason)
        if sim.attempts <= self.retries:
            sim.attempts += 1
            self._submit(client, sim)
            return
        del self.futures[sim.sim_id]
        if self.ledger.ended["redrawn"] >= self.max_failures:
            failures = [s for s in self.ledger.simulations.values() if s.status == "redrawn"]
            self.ledger.end(sim, "failed")
            lines = "\n".join(f"  simulation {s.sim_id} {s.params.tolist()}: {s.reasons}" for s in [*failures, sim])
            raise StudyError(f"{len(failures) + 1} simulations failed (max_failures={self.max_failures}):\n{lines}")
        self.ledger.end(sim, "redrawn")  # _launch gives its slot to new parameters
        if self.sensitivity is not None:
            self.sensitivity.discard(sim.sim_id)  # its pick-freeze group cannot complete

    # -- data -------------------------------------------------------------------------------------------
    def _receive(self, client, queue) -> bool:
        if len(self.pending) >= self.chunk_steps * self.in_flight or self._rate_limited():
            for sim in self._running():  # held back on purpose: not a hang
                self.activity[sim.sim_id] = time.perf_counter()
            return False
        futures = queue.get(batch=True)
        for chunk in _gather(client, futures):
            self._accept(chunk)
        return bool(futures)

    def _accept(self, chunk) -> None:
        sim = self.ledger.simulations[chunk.sim_id]
        seconds = time.perf_counter() - self.started
        self.activity[sim.sim_id] = time.perf_counter()
        if chunk.attempt == sim.attempts:
            sim.runs.add(chunk.run)
        late = sim.status != "running"
        inputs = self.encoding.inputs(sim.params, chunk.times)  # one call per chunk, not per step
        targets = self.encoding.targets(chunk.fields)
        for step, x, y, field in zip(chunk.steps, inputs, targets, chunk.fields, strict=True):
            if not self.ledger.receive(sim, int(step), self.trainer.batches, seconds):
                continue
            if late:  # the last chunks of a simulation given up on
                self.ledger.discarded["study ended" if sim.status == "cancelled" else f"{sim.status} simulation"] += 1
                continue
            self.pending.append(Sample(sim.sim_id, int(step), x, y))
            if self.sensitivity is not None:
                self.sensitivity.add(sim.sim_id, int(step), field)
        if self.timeline is not None:
            self.timeline.chunk(chunk, used=not late)

    def _rate_limited(self) -> bool:
        if self.batches_per_simulation is None or not self.buffer.ready():
            return False
        received = self.ledger.produced / self.simulator.steps
        return self.trainer.batches < self.batches_per_simulation * received

    def _fill_buffer(self) -> None:
        accepted = 0
        for sample in self.pending:
            if not self.buffer.put(sample):
                break
            accepted += 1
        del self.pending[:accepted]

    # -- training ---------------------------------------------------------------------------------------
    def _train(self) -> bool:
        if not self.buffer.ready() or (self.max_batches is not None and self.trainer.batches >= self.max_batches):
            return False
        batch = self.buffer.get_batch(self.batch_size)
        x = np.stack([s.x for s in batch])
        y = np.stack([s.y for s in batch])
        losses = self.trainer.step(x, y)
        if self.timeline is not None:
            self.timeline.batch(self.trainer.batches, self.iteration, time.time())
        params = np.stack([self.ledger.simulations[s.sim_id].params for s in batch])
        self.sampler.tell(params, losses)
        metrics = self.buffer.metrics()
        seconds = time.perf_counter() - self.started
        self.metrics.append(
            {
                "batch": self.trainer.batches,
                "seconds": seconds,
                "loss": float(losses.mean()),
                "produced": self.ledger.produced,
                "consumed": metrics["draws"],
                "trained": metrics["trained"],
                "occupancy": metrics["occupancy"],
                "pending": len(self.pending),
                "age_mean": metrics["age_mean"],
                "age_max": metrics["age_max"],
            }
        )
        if self.trainer.batches % self.validate_every == 0:
            self._validate()
        return True

    def _validate(self) -> None:
        if self.validation is None or (self.checks and self.checks[-1]["batch"] == self.trainer.batches):
            return
        errors = self.validation.errors(self.trainer, self.encoding)
        self.checks.append({"batch": self.trainer.batches, **self.validation.summary(errors)})

    def _stop(self, client, queue) -> None:
        """Cancel what still runs and account for every step not trained on."""
        for sim in self._running():
            self.futures.pop(sim.sim_id).cancel()
            self.ledger.end(sim, "cancelled")
        for chunk in _gather(client, queue.get(batch=True)):
            self._accept(chunk)
        for sim in self.ledger.simulations.values():
            if sim.status == "cancelled" and self.sensitivity is not None:
                self.sensitivity.discard(sim.sim_id)
        self.ledger.discarded["study ended"] += len(self.pending) + self.buffer.metrics()["held_unseen"]
        self.pending.clear()

    # -- checkpoints ------------------------------------------------------------------------------------
    def _state(self) -> dict:
        return {
            "trainer": self.trainer.state_dict(),
            "buffer": self.buffer.state_dict(),
            "sampler": self.sampler.state_dict(),
            "ledger": self.ledger,
            "metrics": self.metrics,
            "checks": self.checks,
            "pending": self.pending,
            "next_id": self.next_id,
            "sensitivity": None if self.sensitivity is None else self.sensitivity.state_dict(),
        }

    def _fingerprint(self) -> dict:
        """What a checkpoint must match to be resumed by this study."""
        return {
            "simulator": repr(self.simulator),
            "space": self.space.to_salib(),
            "buffer": f"{type(self.buffer).__name__}({self.buffer.capacity})",
            "model": type(self.trainer.model).__name__,
            "n_simulations": self.n_simulations,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "sensitivity": None
            if self.sensitivity is None
            else (list(self.sensitivity.steps), *self.sensitivity.quantities),
        }

    def _maybe_checkpoint(self) -> None:
        if self.checkpoint is None or self.trainer.batches % self.checkpoint_every:
            return
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        part = self.checkpoint.with_name(self.checkpoint.name + ".part")
        with open(part, "wb") as out:
            pickle.dump({"fingerprint": self._fingerprint(), **self._state()}, out)
        os.replace(part, self.checkpoint)

    def _resume(self) -> None:
        if self.checkpoint is None or not self.checkpoint.exists():
            return
        with open(self.checkpoint, "rb") as src:
            state = pickle.load(src)
        if state.get("fingerprint") != self._fingerprint():
            raise ValueError(
                f"checkpoint {str(self.checkpoint)!r} belongs to another study: saved {state.get('fingerprint')}, "
                f"this study is {self._fingerprint()}; pass a new checkpoint path or delete the file"
            )
        self.trainer.load_state_dict(state["trainer"])
        self.buffer.load_state_dict(state["buffer"])
        self.sampler.load_state_dict(state["sampler"])
        self.ledger, self.metrics, self.checks = state["ledger"], state["metrics"], state["checks"]
        self.pending, self.next_id = state["pending"], state["next_id"]
        if self.sensitivity is not None:
            self.sensitivity.load_state_dict(state["sensitivity"])
        for sim in self._running():
            sim.reasons.append("resumed from checkpoint")
        log.info("resumed %s at batch %d", self.checkpoint, self.trainer.batches)

    def result(self) -> StudyResult:
        config = {**self._fingerprint(), "sampler": type(self.sampler).__name__}
        return StudyResult(
            self.metrics,
            self.checks,
            self.ledger,
            dict(self.ledger.discarded),
            self.buffer,
            self.trainer,
            self.space,
            config,
            self.sensitivity,
            self.simulator,
            self.timeline,
        )


def _gather(client, futures, timeout: float = 10.0) -> list:
    """Chunks fetched straight from the workers; a chunk lost with its worker is skipped (its run is redone)."""
    try:
        return _gather_within(client, futures, timeout)
    except Exception:  # one or more chunks died with their worker: keep the others
        chunks = []
        for future in futures:
            try:
                chunks.extend(_gather_within(client, [future], timeout))
            except Exception as exc:
                log.warning("a streamed chunk was lost with its worker (%s: %s)", type(exc).__name__, exc)
        return chunks


def _gather_within(client, futures, timeout: float) -> list:
    # client.gather has no timeout, and a key lost with its worker can leave it waiting for good.
    return client.sync(client._gather, futures, direct=True, callback_timeout=timeout)


def _restart_worker_of(client, future) -> None:
    """Cancel a hung simulation and restart the worker process running it (a thread cannot be stopped)."""
    address = client.run_on_scheduler(_processing_on, key=future.key)
    future.cancel()
    if address is None:
        return
    try:
        client.restart_workers([address], timeout=30)
    except Exception as exc:  # a worker without a nanny cannot be restarted: its thread stays busy
        log.warning("could not restart worker %s running a hung simulation: %s", address, exc)


def _workers_lost(dask_scheduler, key) -> int:
    """How many workers died while running the task ``key`` (dask reruns such a task)."""
    task = dask_scheduler.tasks.get(key)
    return task.suspicious if task is not None else 0


def _processing_on(dask_scheduler, key):
    task = dask_scheduler.tasks.get(key)
    return task.processing_on.address if task is not None and task.processing_on is not None else None


def _sampler(sampler, space, seed):
    if isinstance(sampler, str):
        return make_sampler(sampler, space, seed=seed)
    if isinstance(sampler, np.ndarray | list):
        from kit.sampling import FixedSampler

        return FixedSampler(space, sampler)
    if not isinstance(sampler, Sampler):
        raise TypeError(
            f"sampler must be a name, an array of points or an object with ask, tell, state_dict and "
            f"load_state_dict (kit.sampling.Sampler); got {sampler!r}"
        )
    return sampler


def _sensitivity(sensitivity, sampler, shape):
    """Check that a ``FieldSobol`` matches the sampler (pick-freeze groups) and the simulator's field."""
    if sensitivity is None:
        return None
    from kit.sampling import PickFreezeSampler
    from kit.sensitivity import FieldSobol

    if not isinstance(sensitivity, FieldSobol):
        raise TypeError(f"sensitivity must be a kit.sensitivity.FieldSobol or None, got {sensitivity!r}")
    if not isinstance(sampler, PickFreezeSampler):
        raise ValueError(
            f"sensitivity needs pick-freeze simulations: pass sampler='pick_freeze', not {type(sampler).__name__}"
        )
    if sensitivity.n_params != sampler.space.dim or sensitivity.shape != tuple(shape):
        raise ValueError(
            f"sensitivity is for {sensitivity.n_params} parameters and fields {sensitivity.shape}; this study has "
            f"{sampler.space.dim} parameters and fields {tuple(shape)}"
        )
    return sensitivity
