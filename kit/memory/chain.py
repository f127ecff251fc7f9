"""Models as chains of stages: what the memory planners understand."""

from __future__ import annotations

from torch import nn

from kit.memory.graph import traced_stages


def stages(model: nn.Module, context=()) -> list[nn.Module]:
    """The stages of ``model``, in order; ``context`` names the inputs of its forward beyond the first.

    A plain ``nn.Sequential`` gives its children, nested plain ones flattened (any other module is a stage
    of its own inside it); any other model, a ``Sequential`` subclass with its own ``forward`` included, is
    traced and cut where one activation alone is alive (:func:`kit.memory.graph.traced_stages`). A module
    that works in place on its input (``nn.ReLU(inplace=True)``) joins the stage before it.

    Examples
    --------
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.Sequential(nn.ReLU(), nn.Linear(8, 2)))
    >>> [type(stage).__name__ for stage in stages(model)]
    ['Linear', 'ReLU', 'Linear']
    """
    if not _plain_sequential(model):
        return traced_stages(model, tuple(context))
    if context:
        raise TypeError(f"an nn.Sequential takes one input; it has no use for the context {sorted(context)}")
    flat: list[nn.Module] = []
    for child in _flattened(model):
        if flat and getattr(child, "inplace", False):
            flat[-1] = nn.Sequential(*_flattened(flat[-1]), child)
        else:
            flat.append(child)
    if not flat:
        raise ValueError("the model is an empty nn.Sequential: there is nothing to plan")
    return flat


def _plain_sequential(module: nn.Module) -> bool:
    return isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward


def _flattened(module: nn.Module) -> list[nn.Module]:
    if not _plain_sequential(module):
        return [module]
    return [leaf for child in module for leaf in _flattened(child)]
