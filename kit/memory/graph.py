"""Any model as a chain of stages: cut its ``torch.fx`` graph where one activation alone is alive.

A model's forward is traced symbolically (``torch.fx.symbolic_trace``: modules of ``torch.nn`` stay whole,
user modules are traced through). Walking the graph in order, a cut after a node is allowed when the node's
value is the only activation any later node still needs: the inside of a residual block (its shortcut keeps
the block's input alive), of a U-Net's long skips and of any branch stays in one stage, and a chain of
stages computes exactly the model's function. A cut is refused before an in-place operation on the value
cut (``nn.ReLU(inplace=True)``, ``F.relu(x, True)``, ``x.relu_()``): the stage would modify its own input,
a leaf of the planner's graph (``out += x`` is traced as an addition into a new tensor). Parameters and
buffers are shared with the model, so training the stages trains it. Inputs beyond the first are context,
bound for a step by :func:`bound`.

What cannot be traced (control flow on tensor values, inputs beyond the first that are neither context
nor defaulted, tuple or dict outputs) is refused with an error naming the model and why.
"""

from __future__ import annotations

import contextlib
import inspect
import weakref

from torch import fx, nn

__all__ = ["GraphStage", "bound", "module_name", "traced_stages"]

_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class GraphStage(fx.GraphModule):
    """One stage of a traced model: the nodes between two cuts, its ``label`` the modules it calls and its
    ``context_names`` the model's other inputs it reads (bound by :func:`bound`)."""

    label: str = ""
    context_names: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"GraphStage({self.label})"


def traced_stages(model: nn.Module, context: tuple[str, ...] = ()) -> list[nn.Module]:
    """The stages of ``model``, cut where one activation alone is alive.

    The first input of ``model.forward`` flows from stage to stage; the inputs named in ``context`` (a mask,
    positions: tensors that need no gradient) are read by any stage that uses them, bound for a step by
    :func:`bound`; the other inputs keep their defaults. Traced once per model, context and mode, again
    when its buffers change (cached while the model lives).

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
    context = tuple(context)
    # A trace freezes the mode (dropout, ``if self.training``) and holds the buffers it reads: traced again
    # when either changes (``model.to`` replaces buffers).
    key, signature = (context, model.training), tuple(id(b) for b in model.buffers())
    cached = _CACHE.setdefault(model, {})
    if key in cached and cached[key][0] == signature:
        return cached[key][1]
    graph = _trace(model, context)
    placeholders = [n for n in graph.graph.nodes if n.op == "placeholder"]
    nodes = [n for n in graph.graph.nodes if n.op not in ("get_attr", "output") and n not in placeholders[1:]]
    output = next(n for n in graph.graph.nodes if n.op == "output")
    if not isinstance(output.args[0], fx.Node):
        raise TypeError(
            f"kit.memory plans models whose forward returns one tensor; {type(model).__name__}.forward returns "
            f"{type(output.args[0]).__name__}: wrap the model in a module that returns the tensor the loss uses"
        )
    names = dict(zip(placeholders[1:], context, strict=True))
    stages = [_stage(graph, segment, names) for segment in _segments(nodes, output)]
    if not any(n.op == "call_module" and n.target == "model" for n in nodes):  # else a stage holds the model
        cached[key] = (signature, stages)
    return stages


@contextlib.contextmanager
def bound(chain: list, context: dict):
    """Give the stages of a traced chain the context inputs they read, for the ``with`` block."""
    traced = [stage for stage in chain if isinstance(stage, GraphStage)]
    try:
        for stage in traced:
            for name in stage.context_names:
                setattr(stage, f"context_{name}", context[name])
        yield chain
    finally:
        for stage in traced:
            for name in stage.context_names:
                setattr(stage, f"context_{name}", None)


def _trace(model: nn.Module, context: tuple[str, ...]) -> fx.GraphModule:
    """Trace ``model`` called as ``model(x, name=name, ...)`` for the names in ``context``: its other inputs
    keep their defaults, and a forward without defaults for them is an error naming them."""
    parameters = list(inspect.signature(model.forward).parameters.values())
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    takes_any = any(p.kind == inspect.Parameter.VAR_KEYWORD for p in parameters)
    unknown = [] if takes_any else sorted(set(context) - {p.name for p in parameters[1:]})
    missing = [
        p.name
        for p in parameters[1:]
        if p.default is inspect.Parameter.empty and p.kind not in variadic and p.name not in context
    ]
    if not parameters or unknown or missing:
        raise TypeError(
            f"{type(model).__name__}.forward takes {[p.name for p in parameters]}: kit.memory passes the first "
            f"from stage to stage and the others by name as context (profile(model, x, context={{...}})); "
            f"missing from the context: {missing}, not inputs of forward: {unknown}"
        )
    call = ", ".join(f"{name}={name}" for name in context)
    source = f"def forward(self, x{''.join(', ' + n for n in context)}):\n    return self.model(x, {call})\n"
    namespace: dict = {}
    exec(source, namespace)  # noqa: S102 - a forward with the context's names as its parameters, for fx
    wrapper = type("Traced", (nn.Module,), {"forward": namespace["forward"]})()
    wrapper.model = model
    try:
        return fx.symbolic_trace(wrapper)
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
    """Whether a user of ``node`` modifies it in place (its first argument): a module with ``inplace=True``,
    a function called with ``inplace=True`` (by keyword or position) or a method or function named ``*_``."""
    for user in node.users:
        if not user.args or user.args[0] is not node:
            continue
        if user.op == "call_module" and getattr(user.graph.owning_module.get_submodule(user.target), "inplace", False):
            return True
        if user.op == "call_method" and user.target.endswith("_") and not user.target.startswith("_"):
            return True
        if user.op == "call_function":
            name = getattr(user.target, "__name__", "")
            if (name.endswith("_") and not name.startswith("_")) or _inplace_argument(user):
                return True
    return False


def _inplace_argument(call: fx.Node) -> bool:
    """Whether a function call passes ``inplace=True``, by keyword or by position."""
    if call.kwargs.get("inplace"):
        return True
    try:
        bound_args = inspect.signature(call.target).bind(*call.args, **call.kwargs)
    except (TypeError, ValueError):  # builtins without a signature, or arguments it would refuse
        return False
    return bool(bound_args.arguments.get("inplace", False))


def _stage(graph: fx.GraphModule, segment: list[fx.Node], context: dict[fx.Node, str]) -> GraphStage:
    """A module running ``segment``: its input is the value cut before it, its output the last node's value;
    the context inputs it uses are read from attributes ``context_<name>``."""
    new = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    members, read = set(segment), []
    for node in segment:
        for used in node.all_input_nodes:
            if used in env:
                continue
            if used.op == "get_attr":
                env[used] = new.get_attr(used.target)
            elif used in context:
                read.append(context[used])
                env[used] = new.get_attr(f"context_{context[used]}")
            elif used not in members:
                env[used] = new.placeholder("x")
        if node.op == "placeholder":
            env[node] = new.placeholder("x")
        else:
            env[node] = new.node_copy(node, lambda n: env[n])
    new.output(env[segment[-1]])
    for name in read:
        setattr(graph, f"context_{name}", None)  # what the stage copies from its root; bound for a step
    stage = GraphStage(graph, new, class_name="GraphStage")
    stage.label, stage.context_names = _label(graph, segment), tuple(read)
    return stage


def _label(root: fx.GraphModule, segment: list[fx.Node]) -> str:
    """The modules a stage calls, as their common dotted prefix (``layer1.0``) or ``first..last``."""
    modules = [str(n.target) for n in segment if n.op == "call_module"]
    names = [type(root.model).__name__ if m == "model" else m.removeprefix("model.") for m in modules] or [
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
