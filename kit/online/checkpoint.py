"""A study's checkpoint: its state (model, optimizer, buffer, sampler, simulations: O(state), not O(history))
pickled to one file by a background thread, and its logs (metrics, checks, arrivals) appended to files of
their own, so that a checkpoint costs what changed since the last one and training goes on while it is
written. A crash between the two leaves longer logs, cut back to the checkpoint's counts on resume.

What a study's state is, and how a study (or a rank) takes it back: :func:`snapshot`, :func:`restore`,
:func:`take`, :func:`resume`, checked against the study's :func:`fingerprint`.
"""

from __future__ import annotations

import copy
import logging
import os
import pickle
import threading
from pathlib import Path

from kit.online.history import History, append_rows
from kit.online.resplit import split

log = logging.getLogger(__name__)


class Checkpoint:
    """The checkpoint at ``path`` and the logs ``histories`` (by name) saved beside it."""

    def __init__(self, path: str | os.PathLike, histories: dict[str, History]):
        self.path, self.histories = Path(path).absolute(), histories  # the same file from a rank's worker
        self._writer: threading.Thread | None = None
        self.error: BaseException | None = None

    def log_path(self, name: str) -> Path:
        return self.path.with_name(f"{self.path.name}.{name}")

    def busy(self) -> bool:
        """Whether the last save is still being written."""
        return self._writer is not None and self._writer.is_alive()

    def save(self, state: dict) -> None:
        """Write ``state`` (a snapshot the caller no longer changes) and the logs' new rows in the background."""
        self.wait()
        logs = {name: (history.unsaved(), len(history)) for name, history in self.histories.items()}
        state = {**state, "logs": {name: history.state() for name, history in self.histories.items()}}
        for name, history in self.histories.items():
            history.mark_saved(logs[name][1])
        self._writer = threading.Thread(target=self._write, args=(state, logs), name="kit-checkpoint", daemon=True)
        self._writer.start()

    def _write(self, state: dict, logs: dict) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            for name, (rows, _) in logs.items():
                append_rows(self.log_path(name), rows)
            part = self.path.with_name(self.path.name + ".part")
            with open(part, "wb") as out:
                pickle.dump(state, out, protocol=pickle.HIGHEST_PROTOCOL)
                out.flush()
                os.fsync(out.fileno())
            os.replace(part, self.path)
        except BaseException as exc:  # raised by the study at its next save or at the end
            self.error = exc

    def wait(self) -> None:
        """Wait for the last save; raise its error, if any."""
        if self._writer is not None:
            self._writer.join()
            self._writer = None
        if self.error is not None:
            error, self.error = self.error, None
            raise OSError(f"writing the checkpoint {str(self.path)!r} failed: {error}") from error

    def load(self) -> dict | None:
        """The saved state with the logs restored into ``histories``, or None (and empty logs) without one."""
        if not self.path.exists():
            for name in self.histories:
                self.log_path(name).unlink(missing_ok=True)  # left by an earlier study at this path
            return None
        with open(self.path, "rb") as src:
            state = pickle.load(src)
        for name, history in self.histories.items():
            history.load(self.log_path(name), state["logs"][name])
        return state


def fingerprint(study) -> dict:
    """What a checkpoint must match to be resumed by ``study``."""
    sensitivity = study.sensitivity
    return {
        "simulator": repr(study.simulator),
        "space": study.space.to_salib(),
        "buffer": f"{type(study.buffer).__name__}({study.buffer.capacity})",
        "model": type(study.trainer.model).__name__,
        "n_simulations": study.total_simulations,
        "batch_size": study.batch_size,
        "seed": study.seed,
        "sensitivity": None if sensitivity is None else (list(sensitivity.steps), *sensitivity.quantities),
    }


def snapshot(study) -> dict:
    """A one-trainer study's state: what its receiver also changes (buffer, ledger, held steps, Sobol'
    accumulators) copied under the intake's lock, then the model, optimizer and sampler."""
    with study.intake.lock:
        state = {
            "buffer": study.buffer.state_dict(),
            "ledger": study.ledger.state(),
            "held": copy.deepcopy(study.intake.held),
            "sensitivity": None if study.sensitivity is None else copy.deepcopy(study.sensitivity.state_dict()),
        }
    return state | {
        "fingerprint": fingerprint(study),
        "trainer": copy.deepcopy(study.trainer.state_dict()),
        "sampler": copy.deepcopy(study.sampler.state_dict()),
        "next_id": study.next_id,
        "offered": list(study.offered),
        "epochs": list(study.epochs),
    }


def resume(study) -> None:
    """Resume ``study`` from its checkpoint, written by it or by ranks (their samples in one buffer); ranks
    get their part from the study's process instead (:func:`take`)."""
    if study.checkpoint is None or study.group is not None:
        return
    state = restore(study)
    if state is not None:
        (part,) = split(state, 1, study.buffer.capacity, study.n_simulations)
        take(study, part)


def restore(study) -> dict | None:
    """Load ``study``'s checkpoint and restore what is not split between ranks: the model and optimizer, the
    sampler and its draws, the logs, the epochs; the state, or None without a checkpoint."""
    state = study.checkpoint.load()
    if state is None:
        return None
    if state.get("fingerprint") != fingerprint(study):
        raise ValueError(
            f"checkpoint {str(study.checkpoint.path)!r} belongs to another study: saved {state.get('fingerprint')}, "
            f"this study is {fingerprint(study)}; pass a new checkpoint path or delete the file"
        )
    study.trainer.load_state_dict(state["trainer"])
    study.sampler.load_state_dict(state["sampler"])
    study.next_id, study.epochs, study.offered = state["next_id"], state["epochs"], list(state.get("offered", ()))
    if study.sensitivity is not None:
        study.sensitivity.load_state_dict(state["sensitivity"])
    log.info("resumed %s at batch %d", study.checkpoint.path, study.trainer.batches)
    return state


def take(study, part: dict) -> None:
    """``study``'s (or a rank's) part of a checkpoint (:func:`kit.online.resplit.split`)."""
    study.buffer.load_state_dict(part["buffer"])
    study.held = part["held"]
    study.ledger.load(part["ledger"])
    for sim in study.ledger.running.values():
        sim.reasons.append("resumed from checkpoint")
