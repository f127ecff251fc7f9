"""Deployment replay (pillar 2): record workflow runs as traces, replay them on models of other platforms.

:func:`record` captures every task of a dask computation (a scheduler plugin) into a :class:`Trace`, saved as
WfCommons WfFormat JSON (:meth:`Trace.save`) and read back, like public WfCommons instances, by
:func:`load_trace`. :class:`Platform` (hosts in tiers, links, routes; ``from_yaml``) and :func:`replay` (a
discrete-event engine: cores and GPUs, max-min fair links with bandwidth profiles, latency, disks, host failures)
replay a trace under a placement (a strategy of :mod:`kit.replay.strategies`), with :class:`Stream` s of
requests or training steps beside it. Never imports torch; dask loads only with :func:`record`.
"""

from importlib import import_module

from kit.replay.platform import Host, Link, Platform
from kit.replay.simulate import Replay, replay
from kit.replay.streams import Stream
from kit.replay.trace import COMPONENTS, Task, Trace
from kit.replay.wfformat import load_trace

__all__ = [
    "COMPONENTS",
    "Host",
    "Link",
    "Platform",
    "Replay",
    "Stream",
    "Task",
    "Trace",
    "load_trace",
    "record",
    "replay",
]


def __getattr__(name: str):
    if name == "record":
        return import_module("kit.replay.recorder").record
    raise AttributeError(f"module 'kit.replay' has no attribute {name!r}")
