"""An online-training study: simulations on dask stream time steps into a buffer that a trainer draws from.

No epochs and no dataset on disk: parameters are asked of a sampler when a simulation is launched,
per-sample losses are told back after each batch. dask is the control plane (:mod:`kit.online.control`);
the steps travel on the data plane (:mod:`kit.online.dataplane`) into the buffer through the intake
(:mod:`kit.online.intake`), in a receiving thread, while this loop trains. Memory is bounded by the buffer's
capacity, one message waiting for room, and each simulation's socket queues.
"""

from __future__ import annotations

import gc
import logging
import os
import time
import uuid

import numpy as np

from kit.cluster import connect
from kit.online import sharedmem
from kit.online.buffers import make_buffer
from kit.online.checkpoint import Checkpoint, fingerprint, resume, snapshot
from kit.online.control import Control, StudyError
from kit.online.dataplane import Endpoint, Receiver, default_bind, new_epoch
from kit.online.draws import RemoteDraws, draw
from kit.online.history import History
from kit.online.intake import Intake
from kit.online.ledger import Ledger, Simulation
from kit.online.producer import epoch_of, stop_event_name
from kit.online.ranks import check_ranks, merge, run_ranks, save_checkpoint
from kit.online.results import StudyResult
from kit.online.surrogates import make_surrogate
from kit.online.timeline import Timeline
from kit.online.trainer import Encoding, Trainer, seeded_model
from kit.sampling import Sampler, make_sampler
from kit.seeding import simulation_seed

log = logging.getLogger(__name__)

__all__ = ["OnlineStudy", "StudyError"]

#: What the study records after each batch.
METRICS = ("batch", "seconds", "loss", "produced", "consumed", "trained", "occupancy", "pending", "age_mean", "age_max")
#: What it records at each validation check.
CHECKS = ("batch", "val_mean", "val_p99", "val_max")
#: Seconds between two looks at the simulations' tasks (the control plane needs no more).
WATCH_EVERY = 0.02


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
        ``"mlp"``, ``"conv"``, a ``torch.nn.Module`` mapping ``(b, d + 1)`` to ``(b, ny, nx)``, or a
        :class:`~kit.online.trainer.Trainer` of one (its own optimizer and device: ``lr`` and ``device`` unused;
        with several ``trainers`` its ``step`` takes a ``weight``).
    buffer, capacity, watermark
        Buffer policy (``"fifo"``, ``"firo"``, ``"reservoir"``) or a buffer object, its size and the
        number of samples held before training starts.
    batch_size, lr, max_batches
        Training batch size, Adam learning rate, and an optional cap on gradient steps (the study stops
        there, cancelling running simulations).
    batches_per_simulation
        Rate limit (Melissa's): once the buffer is ready, no more steps are taken in until this many
        batches per simulation's worth of steps received were trained, so simulations wait
        (backpressure), and before it ends the study trains up to that many batches per simulation while
        the buffer can serve batches (always for a reservoir, which reuses samples): the training done per
        simulation does not depend on the cluster's speed.
    validation, validate_every
        A :class:`~kit.online.validation.ValidationSet` evaluated every ``validate_every`` batches and at the end.
    in_flight, chunk_steps, queue_size
        Simulations streaming at once (one whose steps all arrived makes room for the next before its task
        returns), time steps per streamed message, and the messages each simulation may have queued on each
        side of its connection before its send blocks.
    retries, timeout, max_failures
        Attempts with the same parameters after a failure; seconds without a message from a started
        simulation (its task start counts; time held back by the study does not) before it counts as hung,
        or after its task ended before its missing steps count as lost; failed simulations tolerated before
        the study stops.
    data_address, send_timeout, shared_memory
        Where the study listens for steps: ``"tcp://host:port"`` (port ``*`` or 0: any free one; workers
        must reach it) or ``"ipc:///path"`` (same node); default TCP on the interface facing the scheduler.
        A simulation gives up after ``send_timeout`` seconds without a connection to the study (killed).
        With ``shared_memory``, simulations on the study's host put their fields in ``/dev/shm`` and send
        only headers (:mod:`kit.online.sharedmem`).
    sensitivity
        A :class:`kit.sensitivity.FieldSobol` fed with every simulated step it keeps, so that one simulation
        budget yields the surrogate and Sobol' maps (``result.sensitivity``); needs ``sampler="pick_freeze"``
        (simulation ``i`` is row ``i % (d + 2)`` of pick-freeze group ``i // (d + 2)``). ``n_simulations`` a
        multiple of ``d + 2`` completes every group unless a simulation is redrawn: its group is dropped
        (``discarded_groups``) and the replacement starts the next one, which stays incomplete.
    checkpoint, checkpoint_every
        File to checkpoint to every ``checkpoint_every`` batches (written in the background; its logs go to
        files beside it); an existing one is resumed, on a cluster of any size and with any number of
        ``trainers`` (its samples and simulations split again: :mod:`kit.online.resplit`).
    client, n_workers, connect_timeout
        None (a ``LocalCluster`` of ``n_workers`` processes), a scheduler address (an error after
        ``connect_timeout`` seconds when none answers), or a ``Client``.
    seed, device, torch_threads
        Study seed (simulation seeds derive from it and the simulation id, or the sampler's ``seed_group``:
        the rows of a pick-freeze group share one), torch device, and the CPU threads torch may use while the
        study runs (default 1: the other cores run simulations).
    record
        Keep a timeline of every chunk received, batch trained and validation run (``result.trace()``: a
        :class:`kit.replay.Trace` to replay on other platforms; each rank's, with several); a resumed study
        records from the resume on.
    trainers, trainer_resources, backend, rank_timeout
        Training ranks (data-parallel, :mod:`kit.online.ranks`): each a task on its own dask worker (one with
        ``trainer_resources``, such as ``{"GPU": 1}``, when given; a ``LocalCluster`` gets ``trainers`` more
        workers) with its own receiving socket, its own buffer of ``capacity`` samples and a round-robin
        share of the simulations; gradients are all-reduced at every step (``backend``: default gloo on
        CPU, nccl on CUDA), so the global batch is ``trainers * batch_size``, until every rank's share is
        done (a rank done first takes its part in the steps with an empty batch). A rank waits
        ``rank_timeout`` seconds for the others (rank 0's validation included) before it fails.
        ``in_flight``, ``retries`` and ``max_failures`` apply to each rank, and each rank's buffer draws from a
        random stream of its own (a buffer object given is reseeded). Which rank launches which
        simulation depends on timing (simulation ``i`` still gets the sampler's ``i``-th point and seed).

    After :meth:`run`, ``run_stats`` says what the data plane did: ``messages`` received, ``rejected``
    (malformed), ``chunks``, ``receiver_cpu_seconds`` (the receiving thread's CPU time) and ``cpu_seconds``
    (this process's, from the first launch on).
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
        queue_size: int = 2,
        retries: int = 1,
        timeout: float = 120.0,
        max_failures: int | None = None,
        data_address: str | None = None,
        send_timeout: float = 60.0,
        shared_memory: bool = True,
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
        trainers: int = 1,
        trainer_resources: dict | None = None,
        backend: str | None = None,
        rank_timeout: float = 120.0,
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
            ("trainers", trainers, 1),
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
        for name, value in (("timeout", timeout), ("send_timeout", send_timeout), ("rank_timeout", rank_timeout)):
            if not value > 0:
                raise ValueError(f"{name} must be > 0 seconds, got {value!r}")
        if data_address is not None and not (
            isinstance(data_address, str) and data_address.startswith(("tcp://", "ipc://"))
        ):
            raise ValueError(f"data_address must be None, 'tcp://host:port' or 'ipc:///path', got {data_address!r}")
        self.batches_per_simulation = batches_per_simulation
        self.simulator, self.space = simulator, simulator.space
        self.n_simulations, self.batch_size, self.max_batches = n_simulations, batch_size, max_batches
        self.total_simulations = n_simulations  # the study's (n_simulations is a rank's share on a rank)
        self.in_flight, self.chunk_steps, self.queue_size = in_flight, chunk_steps, queue_size
        self.retries, self.timeout, self.send_timeout = retries, float(timeout), float(send_timeout)
        self.data_address, self.shared_memory = data_address, bool(shared_memory)
        self.max_failures = n_simulations if max_failures is None else max_failures
        self.validation, self.validate_every = validation, validate_every
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
        # With several ranks the model goes to ``device`` on theirs: this process may have no GPU.
        self.device = device
        here = device if trainers == 1 else "cpu"
        self.trainer = model if isinstance(model, Trainer) else Trainer(model, lr=lr, device=here)
        self.sensitivity = _sensitivity(sensitivity, self.sampler, shape)
        self.torch_threads = torch_threads
        self.connect_timeout = connect_timeout
        self.ledger = Ledger()
        self.timeline = Timeline() if record else None
        self.metrics, self.checks = History(METRICS), History(CHECKS)
        self.checkpoint = (
            None
            if checkpoint is None
            else Checkpoint(
                checkpoint, {"metrics": self.metrics, "checks": self.checks, "arrivals": self.ledger.arrivals}
            )
        )
        self.next_id = 0
        self.offered: list = []  # (simulation id, parameters, seed id) drawn and never launched, from a checkpoint
        self.resumed = None  # a rank's part of the checkpoint, given by the study's process
        self.seconds_before = 0.0  # the study's clock where a rank's run starts (a resumed study's)
        self.epochs: list[str] = []  # stop events of earlier runs (a killed study's orphaned simulations)
        self.held = None  # a chunk's steps received but not yet stored, restored from a checkpoint
        self._staging = None  # host arrays batches are gathered into (pinned for a CUDA trainer)
        self.name = f"kit-study-{uuid.uuid4().hex[:8]}"
        self.intake = None
        self.trainers, self.trainer_resources, self.rank_timeout = trainers, trainer_resources, float(rank_timeout)
        self.backend = backend or ("cpu:gloo,cuda:nccl" if str(device).startswith("cuda") else "gloo")
        self.group = None  # this rank's Group, in a rank's process
        self.buffer_metrics = self.rank_metrics = None  # the ranks' buffers added up, each rank's metrics
        self.report_every = None  # on a rank: batches between its reports to the study's callback
        self.stopping = False
        self._buffer_seed = buffer_seed
        if trainers > 1:
            check_ranks(self)

    # -- the loop -------------------------------------------------------------------------------------
    def run(self, *, progress: bool = True, callback=None, callback_every: int = 20) -> StudyResult:
        """Run the study to the end; ``callback(result_so_far)`` every ``callback_every`` batches (with several
        ranks, in this process, once the ranks' parts so far reached it).

        While it runs, the objects that existed before are left out of Python's full garbage collections
        (``gc.freeze``): scanning torch, dask and the rest took up to 250 ms a time, the receiving thread
        waiting, and simulations with it.
        """
        import torch

        try:
            if self.trainers > 1 and self.group is None:
                merge(self, run_ranks(self, progress=progress, callback=callback, callback_every=callback_every))
                return self.result()
            threads = torch.get_num_threads()
            torch.set_num_threads(self.torch_threads or threads)
            gc.freeze()
            try:
                return self._run(progress, callback, callback_every)
            finally:
                gc.unfreeze()
                torch.set_num_threads(threads)
        finally:
            self.stopping = False  # a stop ends this run, not the next

    def _run(self, progress, callback, callback_every) -> StudyResult:
        from distributed import Event
        from tqdm.auto import tqdm

        resume(self)
        self.buffer.reserve((self.space.dim + 1,), (len(self.simulator.y), len(self.simulator.x)))
        with connect(self.client, n_workers=self.n_workers, timeout=self.connect_timeout) as client:
            epoch = new_epoch()
            self.intake = intake = Intake(
                self.ledger, self.buffer, self.encoding, epoch=epoch, steps=self.simulator.steps, clock=self._seconds,
                sensitivity=self.sensitivity, timeline=self.timeline, rate=self.batches_per_simulation,
            )  # fmt: skip
            intake.held, intake.batches = self.held, self.trainer.batches
            receiver = Receiver(self.data_address or default_bind(client.scheduler.address), intake.deliver,
                                room=intake.room, queue_size=self.queue_size,
                                epoch=epoch if self.shared_memory else None)  # fmt: skip
            try:  # the receiver's socket and marker go with it if the study cannot start
                endpoint = Endpoint(receiver.address, self.name, epoch, queue_size=self.queue_size,
                                    send_timeout=self.send_timeout, shared=receiver.shared)  # fmt: skip
                stop = Event(stop_event_name(endpoint), client=client)
                for name in self.epochs:  # end the simulations a killed run of this study left behind, and its files
                    Event(name, client=client).set()
                    sharedmem.clean(epoch_of(name))
                self.epochs.append(stop_event_name(endpoint))
                self.control = control = Control(
                    client, self.simulator, endpoint, self.ledger, intake.lock, chunk_steps=self.chunk_steps,
                    retries=self.retries, timeout=self.timeout, max_failures=self.max_failures,
                    on_submit=self._launched, on_redrawn=self._redrawn,
                )  # fmt: skip
                # Clock from the first launch (cluster start-up excluded), continued across a resume.
                last = self.metrics.last()
                self.started = time.perf_counter() - (last["seconds"] if last else self.seconds_before)
                cpu, loop_cpu = time.process_time(), time.thread_time()
                receiver.start()
                for sim in list(self.ledger.running.values()):
                    control.submit(sim)
                bar = tqdm(total=self.n_simulations, desc="simulations", unit="sim", disable=not progress)
                bar.update(self._completed())
            except BaseException:
                receiver.close()
                raise
            watched = time.monotonic()
            try:
                while True:
                    done, ready, weight = self._finished(), self._ready(), 1.0
                    if self.group is not None:  # the ranks step together, until all are done
                        done, ready, weight = self.group.agree(done, ready)
                        self.group.report(self._completed(), self._drawn)
                    if done:
                        break
                    if receiver.error is not None:
                        raise RuntimeError(f"the study's receiver at {receiver.address} failed") from receiver.error
                    self._launch()
                    intake.flush()
                    trained = ready and self._train(weight)
                    if time.monotonic() - watched > WATCH_EVERY:
                        control.watch()
                        watched = time.monotonic()
                    bar.update(self._completed() - bar.n)
                    if trained:
                        bar.set_postfix(batches=self.trainer.batches, loss=f"{self.metrics.last()['loss']:.3g}")
                        self._maybe_checkpoint()
                        if callback and self.trainer.batches % callback_every == 0:
                            drawn = time.perf_counter()
                            callback(self.result())
                            self.started += time.perf_counter() - drawn  # drawing is not study time
                    else:
                        with intake.lock:  # idle: until a chunk arrives
                            intake.lock.wait(0.01)
                control.cancel_all()
            finally:
                stop.set()
                intake.close()
                receiver.close()
                self.run_stats = {"messages": receiver.messages, "rejected": receiver.rejected,
                                  "chunks": intake.chunks, "receiver_cpu_seconds": receiver.cpu_seconds,
                                  "cpu_seconds": time.process_time() - cpu,
                                  "loop_cpu_seconds": time.thread_time() - loop_cpu}  # fmt: skip
                bar.close()
                if self.checkpoint is not None:
                    self.checkpoint.wait()
            self._account_for_the_rest()
        self._validate()
        return self.result()

    def _seconds(self) -> float:
        return time.perf_counter() - self.started

    def stop(self) -> None:
        """End the study at its next batch (with several ranks a moment later: the study's process and rank 0
        look every :data:`kit.online.ranks.WATCH_EVERY` seconds): running simulations are cancelled, what was
        trained is kept. Safe from another thread."""
        self.stopping = True

    def _finished(self) -> bool:
        if self.stopping or (self.max_batches is not None and self.trainer.batches >= self.max_batches):
            return True
        with self.intake.lock:
            if self.ledger.running or self.intake.held or self._completed() < self.n_simulations:
                return False
            if self.intake.rate_limited():  # the batches owed to the last simulations come first
                return False
            self.buffer.close()
            return not self.buffer.ready()

    def _completed(self) -> int:
        return self.ledger.ended["ok"] + self.ledger.ended["retried"]

    # -- simulations ------------------------------------------------------------------------------------
    def _launch(self) -> None:
        while self._streaming() < self.in_flight and self._completed() + len(self.ledger.running) < self.n_simulations:
            if isinstance(self.sampler, RemoteDraws):  # a rank: the study's sampler numbers the draws
                sim_id, params, seeded = self.sampler.draw()
            elif self.offered:  # drawn before a checkpoint by ranks, not launched by then
                sim_id, params, seeded = self.offered.pop(0)
            else:
                sim_id, (params, seeded) = self.next_id, draw(self.sampler, self.space, self.next_id)
                self.next_id += 1
            sim = Simulation(sim_id, params, simulation_seed(self.seed, seeded), self.simulator.steps)
            with self.intake.lock:
                self.ledger.add(sim)
            self.control.submit(sim)

    def _streaming(self) -> int:
        """Simulations whose steps are still coming: one whose last step and end arrived frees its slot at
        once, before dask says that its task returned."""
        with self.intake.lock:
            return sum(not sim.delivered() for sim in self.ledger.running.values())

    def _launched(self, sim: Simulation) -> None:
        if self.timeline is not None:
            self.timeline.launch(sim.sim_id, sim.attempts)

    def _redrawn(self, sim: Simulation) -> None:
        if self.sensitivity is not None:
            self.sensitivity.discard(sim.sim_id)  # its pick-freeze group cannot complete

    # -- training ---------------------------------------------------------------------------------------
    def _drawn(self) -> int:
        """Samples drawn into batches so far."""
        return self._buffer_metrics()["draws"]

    def _buffer_metrics(self) -> dict:
        """The buffer's counters, read under the intake's lock while the receiving thread may fill it."""
        if self.intake is None:
            return self.buffer.metrics()
        with self.intake.lock:
            return self.buffer.metrics()

    def _ready(self) -> bool:
        """Whether a batch can be trained now."""
        if self.max_batches is not None and self.trainer.batches >= self.max_batches:
            return False
        with self.intake.lock:
            return self.buffer.ready()

    def _train(self, weight: float = 1.0) -> bool:
        """One batch (the buffer is ready: only this loop draws from it), its loss scaled by ``weight``; a
        rank whose share is done (``weight`` 0) takes its part in the step with an empty batch."""
        if not weight:
            shapes = (self.space.dim + 1,), (len(self.simulator.y), len(self.simulator.x))
            self.trainer.step(*(np.zeros((1, *shape), np.float32) for shape in shapes), weight=0.0)
            self._record(float("nan"))
            return True
        with self.intake.lock:
            begun = time.time()  # under the lock the receiving thread notes chunks with: the split is exact
            if self._staging is None:
                self._staging = self.trainer.host_arrays(self.batch_size, *self.buffer.sample_shapes())
            batch = self.buffer.get_batch(self.batch_size, out=self._staging)
            self.intake.lock.notify_all()  # room in the buffer
        y = self.encoding.targets(batch.y, out=batch.y)  # in place: the batch is a copy
        # a trainer of one's own needs ``step(x, y, weight)`` only for several ranks
        losses = self.trainer.step(batch.x, y) if weight == 1 else self.trainer.step(batch.x, y, weight=weight)
        params = np.stack([self.ledger.simulations[int(i)].params for i in batch.sim_id])
        self.sampler.tell(params, losses)
        self._record(float(losses.mean()), begun)
        return True

    def _record(self, loss: float, begun: float | None = None) -> None:
        """The metrics after a batch drawn at ``begun`` (noted in the timeline when recording); validation when
        due."""
        with self.intake.lock:
            self.intake.batches = self.trainer.batches
            self.intake.lock.notify_all()  # the rate limit may let more steps in
            metrics, produced, pending = self.buffer.metrics(), self.ledger.produced, self.intake.pending
        self.metrics.append(
            batch=self.trainer.batches,
            seconds=self._seconds(),
            loss=loss,
            produced=produced,
            consumed=metrics["draws"],
            trained=metrics["trained"],
            occupancy=metrics["occupancy"],
            pending=pending,
            age_mean=metrics["age_mean"],
            age_max=metrics["age_max"],
        )
        if self.timeline is not None and begun is not None:
            with self.intake.lock:  # the receiving thread notes chunks in it
                self.timeline.batch(self.trainer.batches, begun, time.time())
        if self.trainer.batches % self.validate_every == 0:
            self._validate()

    def _validate(self) -> None:
        last = self.checks.last()
        if self.validation is None or (last and last["batch"] == self.trainer.batches):
            return
        if self.group is not None and self.group.rank:  # the ranks hold one model: rank 0 checks it
            return
        begun = time.time()
        errors = self.validation.errors(self.trainer, self.encoding)
        self.checks.append(batch=self.trainer.batches, **self.validation.summary(errors))
        if self.timeline is not None:
            self.timeline.validation(self.trainer.batches, begun, time.time())

    def _account_for_the_rest(self) -> None:
        """Steps received and never trained on, now that the study ended."""
        for sim in self.ledger.simulations.values():
            if sim.status == "cancelled" and self.sensitivity is not None:
                self.sensitivity.discard(sim.sim_id)
        self.ledger.discarded["study ended"] += self.buffer.metrics()["held_unseen"]
        self.held = None

    # -- checkpoints ------------------------------------------------------------------------------------
    def _maybe_checkpoint(self) -> None:
        if self.checkpoint is None or self.trainer.batches % self.checkpoint_every:
            return
        if self.group is not None:  # every rank's part, written by rank 0
            save_checkpoint(self)
        elif self.checkpoint.busy():  # the last one is still being written: training does not wait for it
            log.debug("checkpoint at batch %d skipped: the previous one is still being written", self.trainer.batches)
        else:
            self.checkpoint.save(snapshot(self))

    def result(self) -> StudyResult:
        config = {**fingerprint(self), "sampler": type(self.sampler).__name__}
        return StudyResult(
            self.metrics,
            self.checks,
            self.ledger,
            dict(self.ledger.discarded),
            self.buffer_metrics or self._buffer_metrics(),  # a callback's result is made while data arrive
            self.trainer,
            self.space,
            config,
            self.sensitivity,
            self.simulator,
            self.timeline,
            self.rank_metrics,
        )


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
