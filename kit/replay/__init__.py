"""Deployment replay (pillar 2): record workflow runs as traces; replay and explanation come next.

:func:`record` captures every task of a dask computation (a scheduler plugin) into a :class:`Trace`, saved as
WfCommons WfFormat JSON (:meth:`Trace.save`) and read back, like public WfCommons instances, by
:func:`load_trace`. Never imports torch; dask loads only with :func:`record`.
"""

from importlib import import_module

from kit.replay.trace import COMPONENTS, Task, Trace, load_trace

__all__ = ["COMPONENTS", "Task", "Trace", "load_trace", "record"]


def __getattr__(name: str):
    if name == "record":
        return import_module("kit.replay.recorder").record
    raise AttributeError(f"module 'kit.replay' has no attribute {name!r}")
