"""Who needs what in a replay: the files (or whole outputs) each task reads and writes, who produces each,
and the workflow inputs that start on the platform's storage host (:class:`Dataflow`)."""

from __future__ import annotations

from collections import defaultdict


class Dataflow:
    """Who needs what: ``needs[task]`` (keys: a task's own output is its id, a listed file ``("file", name)``,
    the end of a parent that gives no file ``("task", id)``), ``produces[task]``, ``producer[key]`` (absent
    for workflow inputs), ``size[key]`` (bytes), ``readers[key]`` (of a file), ``after[task]`` (the tasks waiting for
    its end alone) and ``inputs[task]`` (the workflow inputs it reads from storage)."""

    def __init__(self, trace, storage: str | None):
        tasks = trace.tasks
        self.inputs: dict[str, tuple] = {}
        self.after: dict[str, list] = {}
        if all(t.reads is None and t.writes is None for t in tasks):  # each output whole to each child
            self.produces = {t.id: (t.id,) for t in tasks}
            self.producer = {t.id: t.id for t in tasks}
            self.size = {t.id: float(t.output_bytes) for t in tasks}
            self.needs = {t.id: t.parents if len(t.parents) < 2 else tuple(dict.fromkeys(t.parents)) for t in tasks}
            self.readers = trace.children()
            return
        self.needs, self.produces, self.size, self.producer = {}, {}, {}, {}
        self.readers = defaultdict(list)
        for t in tasks:
            if t.writes is None:
                self.produces[t.id] = (t.id,)
                self.size[t.id] = float(t.output_bytes)
            else:
                self.produces[t.id] = keys = tuple(("file", name) for name in t.writes)
                self.size.update((key, float(trace.files[key[1]])) for key in keys)
            self.producer.update((key, t.id) for key in self.produces[t.id])
        for t in tasks:
            self.needs[t.id] = needs = self._needs(t, trace.files, storage)
            for key in needs:
                if is_end(key):
                    self.after.setdefault(key[1], []).append(t.id)
                else:
                    self.readers[key].append(t.id)

    def _needs(self, t, files: dict, storage: str | None) -> tuple:
        parents = dict.fromkeys(t.parents)
        if t.reads is None:  # everything its parents wrote; the end of a parent that wrote nothing
            control = tuple(("task", parent) for parent in parents if not self.produces[parent])
            self.producer.update((key, key[1]) for key in control)
            return tuple(key for parent in parents for key in self.produces[parent]) + control
        read = tuple(
            key for key in (("file", name) for name in dict.fromkeys(t.reads)) if self.producer.get(key) != t.id
        )
        given = {self.producer.get(key) for key in read}
        control = tuple(("task", parent) for parent in parents if parent not in given)
        self.producer.update((key, key[1]) for key in control)
        inputs = tuple(key for key in read if key not in self.producer)
        if inputs and storage is not None:
            self.inputs[t.id] = inputs
            self.size.update((key, float(files[key[1]])) for key in inputs)
        return tuple(key for key in read if key in self.producer or storage is not None) + control


def is_end(key) -> bool:
    """Whether a dataflow key is a parent's end (not a file)."""
    return isinstance(key, tuple) and key[0] == "task"
