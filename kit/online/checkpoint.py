"""A study's checkpoint: its state (model, optimizer, buffer, sampler, simulations: O(state), not O(history))
pickled to one file by a background thread, and its logs (metrics, checks, arrivals) appended to files of
their own, so that a checkpoint costs what changed since the last one and training goes on while it is
written. A crash between the two leaves longer logs, cut back to the checkpoint's counts on resume.
"""

from __future__ import annotations

import logging
import os
import pickle
import threading
from pathlib import Path

from kit.online.history import History, append_rows

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
