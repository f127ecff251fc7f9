"""Models as chains of stages: what the memory planners understand."""

from __future__ import annotations

from torch import nn


def stages(model: nn.Module) -> list[nn.Module]:
    """The stages of a chain model, in order: the children of an ``nn.Sequential``, nested ones flattened.

    Any other module is a stage of its own inside a ``Sequential``; a model that is not a ``Sequential`` is
    an error saying what is supported (its ``forward`` may branch, which a chain cannot represent).

    Examples
    --------
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.Sequential(nn.ReLU(), nn.Linear(8, 2)))
    >>> [type(stage).__name__ for stage in stages(model)]
    ['Linear', 'ReLU', 'Linear']
    """
    if not isinstance(model, nn.Sequential):
        raise TypeError(
            f"kit.memory plans chains: pass an nn.Sequential (nested Sequentials are flattened, any module can "
            f"be one stage); got {type(model).__name__}, whose forward may branch. Wrap its parts in a "
            f"Sequential if they run one after the other"
        )
    flat = []
    for child in model:
        flat.extend(stages(child) if isinstance(child, nn.Sequential) else [child])
    if not flat:
        raise ValueError("the model is an empty nn.Sequential: there is nothing to plan")
    return flat
