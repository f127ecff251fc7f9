"""Memory for training chains (pillar 3): profile each stage, plan re-materialisation and offloading under a
byte budget, partition chains over devices, run the plan as a training step and measure it.

:func:`profile` measures a model stage by stage on CPU or CUDA (an ``nn.Sequential``'s children, or any
model's ``torch.fx`` graph cut where one activation alone is alive, :func:`stages`); :func:`plan` builds
``store_all``, ``recompute_all``, ``uniform`` (``checkpoint_sequential``) or ``optimal`` (rotor's dynamic
program) schedules, or ``offload`` ones over a :class:`HostLink`, and predicts their peak and time;
:func:`measure` runs one and reports both; :class:`Planned` wraps a model so that an ordinary training loop
runs every step by a plan within a budget. Knows nothing
of ``kit.online`` or ``kit.replay``. Planning needs numpy only; the names that need torch load it on first use.
"""

from importlib import import_module

from kit.memory.plan import STRATEGIES, Plan, plan

_LAZY = {
    "profile": "kit.memory.profiling",
    "measure": "kit.memory.execute",
    "run": "kit.memory.execute",
    "stages": "kit.memory.chain",
    "HostLink": "kit.memory.host_link",
    "Planned": "kit.memory.planned",
}

__all__ = ["STRATEGIES", "Plan", "plan", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kit.memory' has no attribute {name!r}")
