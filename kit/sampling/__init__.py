"""Sampling of a :class:`~kit.space.ParameterSpace`: designs (whole arrays) and ask/tell samplers (online).

Designs: :func:`random`, :func:`lhs`, :func:`sobol` ``(space, n, seed) -> (n, d)`` and
:func:`pick_freeze` ``(space, n, seed) -> (n, d + 2, d)`` for one-pass Sobol' indices.
Samplers: :class:`RandomSampler`, :class:`LHSSampler`, :class:`SobolSampler`, :class:`PickFreezeSampler`
(rows of pick-freeze groups) and the adaptive :class:`BreedSampler` and :class:`LossDensitySampler` (built
by name with :func:`make_sampler`: ``random``, ``lhs``, ``sobol``, ``pick_freeze``, ``breed``,
``loss_density``) and :class:`FixedSampler` (given points), all following the :class:`Sampler` contract.

Light to import: numpy only (scipy.stats loads on the first draw).
"""

from kit.sampling.adaptive import BreedSampler, LossDensitySampler  # registers "breed" and "loss_density"
from kit.sampling.designs import lhs, pick_freeze, random, sobol
from kit.sampling.samplers import (
    FixedSampler,
    LHSSampler,
    PickFreezeSampler,
    RandomSampler,
    Sampler,
    SobolSampler,
    make_sampler,
)

__all__ = [
    "BreedSampler",
    "FixedSampler",
    "LHSSampler",
    "LossDensitySampler",
    "PickFreezeSampler",
    "RandomSampler",
    "Sampler",
    "SobolSampler",
    "lhs",
    "make_sampler",
    "pick_freeze",
    "random",
    "sobol",
]
