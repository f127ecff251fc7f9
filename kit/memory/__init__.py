"""Memory for training chains (pillar 3): profile each stage, plan re-materialisation under a byte budget.

:func:`profile` measures a chain model (``nn.Sequential``) stage by stage on CPU or CUDA; :func:`plan` builds
``store_all``, ``recompute_all``, ``uniform`` (``checkpoint_sequential``) or ``optimal`` (rotor's dynamic
program) schedules and predicts their peak and time. Knows nothing of ``kit.online`` or ``kit.replay``.
"""

from kit.memory.chain import stages
from kit.memory.plan import STRATEGIES, Plan, plan
from kit.memory.profile import profile

__all__ = ["STRATEGIES", "Plan", "plan", "profile", "stages"]
