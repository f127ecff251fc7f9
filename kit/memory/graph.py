"""Any model as a chain of stages: cut its ``torch.fx`` graph where one activation alone is alive.

A model's forward is traced symbolically (``torch.fx.symbolic_trace``: modules of ``torch.nn`` stay whole,
user modules are traced through). Walking the graph in order, a cut after a node is allowed when the node's
value is the only activation any later node still needs: the inside of a residual block (its shortcut keeps
the block's input alive), of a U-Net's long skips and of any branch stays in one stage, and a chain of
stages computes exactly the model's function. A cut is refused before an in-place operation on the value
cut (``nn.ReLU(inplace=True)``, ``out += x``, ``relu_``): the stage would modify its own input, a leaf of
the planner's graph. Parameters and buffers are shared with the model, so training the stages trains it.

What cannot be traced (control flow on tensor values, several tensor inputs without defaults, tuple or dict
outputs) is refused with an error naming the model and why.
"""

from __future__ import annotations

import inspect
import operator
import weakref

from torch import fx, nn

__all__ = ["GraphStage", "module_name", "traced_stages"]

_INPLACE_FUNCTIONS = {operator.iadd, operator.isub, operator.imul, operator.itruediv, operator.imatmul}
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class GraphStage(fx.GraphModule):
    """One stage of a traced model: the nodes between two cuts, its ``label`` the modules it calls."""

    label: str = ""

    def __repr__(self) -> str:
        return f"GraphStage({self.label})"


def traced_stages(model: nn.Module) -> list[nn.Module]:
    """The stages of any single-input, single-output ``model``, cut where one activation alone is alive.

    Traced once per model (cached while the model lives).

    Examples
    --------
    >>> class Block(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.inner, self.head = nn.Linear(4, 4), nn.Linear(4, 2)
    ...     def forward(self, x):
    ...         return self.head((x + self.inner(x)).relu())  # the skip stays in stage "inner"
    >>> [stage.label for stage in traced_stages(Block())]
    ['inner', 'relu', 'head']
    """
    if model in _CACHE:
        return _CACHE[model]
    graph = _trace(model)
    nodes = [n for n in graph.graph.nodes if n.op not in ("get_attr", "output")]
    inputs = [n for n in nodes if n.op == "placeholder"]
    if len(inputs) != 1:
        names = [n.target for n in inputs]
        raise TypeError(
            f"kit.memory plans models of one tensor input; {type(model).__name__}.forward takes {names}: give the "
            f"others defaults, or wrap the model in a module whose forward(x) passes them (a mask as a buffer)"
        )
    output = next(n for n in graph.graph.nodes if n.op == "output")
    if not isinstance(output.args[0], fx.Node):
        raise TypeError(
            f"kit.memory plans models whose forward returns one tensor; {type(model).__name__}.forward returns "
            f"{type(output.args[0]).__name__}: wrap the model in a module that returns the tensor the loss uses"
        )
    stages = [_stage(graph, segment) for segment in _segments(nodes, output)]
    _CACHE[model] = stages
    return stages


def _trace(model: nn.Module) -> fx.GraphModule:
    defaults = {}
    try:
        for name, parameter in list(inspect.signature(model.forward).parameters.items())[1:]:
            if parameter.default is not inspect.Parameter.empty:
                defaults[name] = parameter.default
        return fx.symbolic_trace(model, concrete_args=defaults or None)
    except Exception as error:  # noqa: BLE001 - fx raises many types; the message says which
        raise TypeError(
            f"kit.memory could not trace {type(model).__name__} with torch.fx ({type(error).__name__}: {error}); "
            f"a forward that branches on tensor values cannot be cut into stages: make such a module one stage "
            f"by putting it inside an nn.Sequential"
        ) from error


def _segments(nodes: list[fx.Node], output: fx.Node) -> list[list[fx.Node]]:
    """The nodes split after every allowed cut."""
    position = {node: i for i, node in enumerate(nodes)}
    last_use = {node: max((position.get(u, len(nodes)) for u in node.users), default=-1) for node in nodes}
    segments, current, alive = [], [], set()
    for i, node in enumerate(nodes):
        current.append(node)
        alive = {n for n in alive | {node} if last_use[n] > i}
        if node.op != "placeholder" and alive == {node} and i < len(nodes) - 1 and not _modified_by_a_user(node):
            segments.append(current)
            current = []
    segments.append(current)
    return [segment for segment in segments if any(n.op != "placeholder" for n in segment)]


def _modified_by_a_user(node: fx.Node) -> bool:
    """Whether a user of ``node`` modifies it in place (its first argument)."""
    for user in node.users:
        if not user.args or user.args[0] is not node:
            continue
        if user.op == "call_module" and getattr(user.graph.owning_module.get_submodule(user.target), "inplace", False):
            return True
        if user.op == "call_function" and (user.target in _INPLACE_FUNCTIONS or user.kwargs.get("inplace")):
            return True
        if user.op == "call_method" and user.target.endswith("_") and not user.target.startswith("_"):
            return True
        name = getattr(user.target, "__name__", "")
        if user.op == "call_function" and name.endswith("_") and not name.startswith("_"):
            return True
    return False


def _stage(graph: fx.GraphModule, segment: list[fx.Node]) -> GraphStage:
    """A module running ``segment``: its input is the value cut before it, its output the last node's value."""
    new = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    members = set(segment)
    for node in segment:
        for used in node.all_input_nodes:
            if used in env:
                continue
            if used.op == "get_attr":
                env[used] = new.get_attr(used.target)
            elif used not in members:
                env[used] = new.placeholder("x")
        if node.op == "placeholder":
            env[node] = new.placeholder("x")
        else:
            env[node] = new.node_copy(node, lambda n: env[n])
    new.output(env[segment[-1]])
    stage = GraphStage(graph, new, class_name="GraphStage")
    stage.label = _label(segment)
    return stage


def _label(segment: list[fx.Node]) -> str:
    """The modules a stage calls, as their common dotted prefix (``layer1.0``) or ``first..last``."""
    names = [str(n.target) for n in segment if n.op == "call_module"] or [
        getattr(n.target, "__name__", str(n.target)) for n in segment if n.op != "placeholder"
    ]
    parts = [name.split(".") for name in names]
    common = []
    for pieces in zip(*parts, strict=False):
        if len(set(pieces)) > 1:
            break
        common.append(pieces[0])
    if common and len(names) > 1:
        return ".".join(common)
    return names[0] if len(names) == 1 else f"{names[0]}..{names[-1]}"


def module_name(stage: nn.Module) -> str:
    """What a profile calls a stage: a traced stage's label, else its class name."""
    return stage.label if isinstance(stage, GraphStage) else type(stage).__name__
