"""Logs that grow as a study runs (metrics per batch, validation checks, arrivals per chunk), kept as blocks
of numbers and saved to their own file incrementally: a checkpoint writes the rows added since the last
one, never the whole log again."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


class History:
    """Rows of named float64 columns, appended one or many at a time."""

    def __init__(self, columns):
        self.columns = tuple(columns)
        self._new: list[tuple] = []  # rows appended since the last rows()
        self._rows = np.zeros((0, len(self.columns)))
        self._saved = 0  # rows already in the file

    def __len__(self) -> int:
        return len(self._rows) + len(self._new)

    def append(self, **row) -> None:
        """One row; every column must be given."""
        self._new.append(tuple(row[c] for c in self.columns))

    def extend(self, rows: np.ndarray) -> None:
        """Rows ``(n, columns)`` at once."""
        self._rows = np.concatenate([self.rows(), np.asarray(rows, dtype=float).reshape(-1, len(self.columns))])

    def add(self, *row) -> None:
        """One row, its values in the order of ``columns`` (the fast way)."""
        self._new.append(row)

    def rows(self) -> np.ndarray:
        """All rows ``(n, columns)``."""
        if self._new:
            self._rows = np.concatenate([self._rows, np.array(self._new, dtype=float).reshape(-1, len(self.columns))])
            self._new = []
        return self._rows

    def __getitem__(self, column: str) -> np.ndarray:
        return self.rows()[:, self.columns.index(column)]

    def last(self) -> dict[str, float] | None:
        """The last row as a dict, or None when empty."""
        rows = self.rows()
        return dict(zip(self.columns, rows[-1].tolist(), strict=True)) if len(rows) else None

    def unsaved(self) -> np.ndarray:
        """The rows added since the last :meth:`mark_saved`, copied."""
        return self.rows()[self._saved :].copy()

    def mark_saved(self, count: int) -> None:
        self._saved = count

    def state(self) -> dict:
        """What a checkpoint keeps of the log: its columns and length (the rows go to :func:`append_rows`)."""
        return {"columns": self.columns, "rows": len(self)}

    def load(self, path: Path, state: dict) -> None:
        """The first ``state["rows"]`` rows saved at ``path`` (rows written after that checkpoint are cut)."""
        if tuple(state["columns"]) != self.columns:
            raise ValueError(f"{path}: columns {state['columns']} saved, {self.columns} expected")
        count, width = state["rows"], len(self.columns)
        data = np.fromfile(path, dtype="<f8") if count else np.zeros(0)
        if len(data) < count * width:
            raise ValueError(f"{path} holds {len(data) // width} rows, its checkpoint says {count}: the log is damaged")
        self._rows, self._new, self._saved = data[: count * width].reshape(count, width), [], count
        with open(path, "r+b" if path.exists() else "wb") as out:
            out.truncate(count * width * 8)


def append_rows(path: Path, rows: np.ndarray) -> None:
    """Append ``rows`` to the log file ``path`` and flush them to disk."""
    with open(path, "ab") as out:
        out.write(np.ascontiguousarray(rows, dtype="<f8").tobytes())
        out.flush()
        os.fsync(out.fileno())
