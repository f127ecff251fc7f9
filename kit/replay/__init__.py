"""Deployment replay (pillar 2): record workflow runs as traces, replay them on models of other platforms.

:func:`record` captures every task of a dask computation (a scheduler plugin) into a :class:`Trace`, saved as
WfCommons WfFormat JSON (:meth:`Trace.save`) and read back, like public WfCommons instances, by
:func:`load_trace`. :class:`Platform` (hosts in tiers, links, routes; ``from_yaml``) and :func:`replay` (a
discrete-event engine: cores, max-min fair links, latency) replay a trace under a placement. Placement
strategies and the explanation tools come next. Never imports torch; dask loads only with :func:`record`.
"""

from importlib import import_module

from kit.replay.platform import Host, Link, Platform
from kit.replay.simulate import Replay, replay
from kit.replay.trace import COMPONENTS, Task, Trace, load_trace

__all__ = ["COMPONENTS", "Host", "Link", "Platform", "Replay", "Task", "Trace", "load_trace", "record", "replay"]


def __getattr__(name: str):
    if name == "record":
        return import_module("kit.replay.recorder").record
    raise AttributeError(f"module 'kit.replay' has no attribute {name!r}")
