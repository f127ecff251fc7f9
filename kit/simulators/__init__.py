"""Simulators that stream time steps: ``run(params, seed)`` yields :class:`Step` objects.

Light to import: numpy and scipy only (xarray loads when a trajectory or snapshots are asked for).
"""

from kit.simulators.analytic import Ishigami, SobolG
from kit.simulators.base import Step
from kit.simulators.grayscott import GrayScott
from kit.simulators.heat import Heat2D
from kit.simulators.snapshots import snapshots

__all__ = ["GrayScott", "Heat2D", "Ishigami", "SobolG", "Step", "snapshots"]
