"""Per-stage profile of a chain model: times, activation sizes and transient memory, for the planners.

For stage ``i`` fed the output of stage ``i - 1`` (rotor's notation, Beaumont et al. 2019): forward time
``uf`` and backward time ``ub`` (median of repeats, with the interquartile range), output size ``x``, memory
kept for the backward after a forward with grad ``xbar`` (the allocator's net growth: output and what
autograd saved), transient peaks of the forward ``fwd_tmp`` (above ``xbar``), of a forward without grad
``fn_tmp`` (above its output: intermediates are freed as it goes, not kept) and of the backward ``bwd_tmp``
(above what the backward held when it began, the parameter and input gradients it allocates excluded).
Memory comes from the allocator (``AllocatorTrace``: the torch profiler's events on CPU, the caching
allocator's counters on CUDA); the saved activations are cross-checked with
``torch.autograd.graph.saved_tensors_hooks``, deduplicated by storage.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import xarray as xr

from kit.memory.chain import _plain_sequential, stages
from kit.memory.graph import bound, module_name
from kit.memory.measure_memory import AllocatorTrace
from kit.memory.measure_memory import now as _now


def mean_square(output: torch.Tensor) -> torch.Tensor:
    """The default loss: the mean of the squared outputs."""
    return output.float().square().mean()


def check_device(device) -> torch.device:
    """``device`` as a ``torch.device``; an absent CUDA device is an error saying what is present."""
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} is absent: torch sees no CUDA device here; use device='cpu'")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"device {str(device)!r} is absent: torch sees {torch.cuda.device_count()} CUDA device(s)")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda[:n]', got {str(device)!r}")
    return device


def profile(
    model: torch.nn.Module,
    sample_input: torch.Tensor,
    device="cpu",
    *,
    repeats: int = 5,
    loss=mean_square,
    context: dict | None = None,
) -> xr.Dataset:
    """Profile each stage of ``model`` on ``sample_input``; a Dataset with dim ``stage``.

    Any model of one tensor input and output goes in: it is cut into stages by :func:`kit.memory.stages`,
    and the stages, run in order, must compute ``model(sample_input)`` (else an error). The model is left as
    it was found: parameters and their ``.grad``, buffers (BatchNorm statistics), the random state, the
    training mode and the device.

    ``loss`` (a function of the model's output to a scalar, the one the step will use) is profiled with the
    last stage, so that its forward, what it saves and the output's gradient are planned for; ``None``
    profiles the last stage alone (its output's gradient is then held for the whole step). ``context`` gives
    the other inputs of ``model.forward`` by name (an attention mask): every stage that reads one gets it.

    Variables (bytes and seconds): ``uf``, ``ub`` and their ``*_iqr``; ``x`` (output), ``xbar`` (kept for
    the backward), ``fwd_tmp``, ``fn_tmp`` (forward without grad), ``bwd_tmp``; ``saved_hooks`` (distinct
    storages autograd saved beyond the parameters and the stage's input, output included) to cross-check
    ``xbar``; ``saves_input`` and ``saves_output`` (1 when the backward needs the stage's input, its output);
    ``grad_bytes`` (parameter gradients, allocated once); ``buffer_bytes`` (what a recomputation copies its
    buffers into). The input's size is ``attrs["input_bytes"]``.
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an int >= 1, got {repeats!r}")
    device = check_device(device)
    context = _context_on(context, device)
    with _untouched(model, device):
        model.to(device)
        chain = stages(model, context)  # after the move: a traced stage holds the buffers it reads
        activation = sample_input.to(device)
        rows = []
        with bound(chain, context):
            if not _plain_sequential(model):  # a plain Sequential's children are its function by definition
                check_chain(model, chain, activation, context)
            for index, stage in enumerate(chain):
                profiled = _WithLoss(stage, loss) if index == len(chain) - 1 and loss is not None else stage
                rows.append(_profile_stage(profiled, activation, device, repeats, needs_input_grad=index > 0))
                with torch.no_grad():
                    activation = stage(activation)
    _count_shared_gradients_once(chain, rows)
    data = xr.Dataset(
        {key: ("stage", [row[key] for row in rows]) for key in rows[0]},
        coords={"stage": np.arange(len(chain)), "module": ("stage", [module_name(s) for s in chain])},
    )
    for key in ("uf", "ub", "uf_iqr", "ub_iqr"):
        data[key].attrs["units"] = "s"
    for key in ("x", "xbar", "fwd_tmp", "fn_tmp", "bwd_tmp", "saved_hooks", "grad_bytes", "buffer_bytes"):
        data[key].attrs["units"] = "bytes"
    data.attrs.update(
        device=_device_name(device),
        input_bytes=_nbytes(sample_input),
        repeats=repeats,
        loss=getattr(loss, "__name__", repr(loss)) if loss is not None else "",
        memory_source="torch profiler allocator events" if device.type == "cpu" else "CUDA allocator counters",
    )
    return data


def _count_shared_gradients_once(chain: list, rows: list[dict]) -> None:
    """A parameter used by several stages (tied weights) gets its gradient kept by the last of them, whose
    backward runs first; the backwards of the others only allocate a transient gradient to add to it."""
    seen: set[int] = set()
    for stage, row in zip(reversed(chain), reversed(rows), strict=True):
        shared = sum(_nbytes(p) for p in stage.parameters() if p.requires_grad and id(p) in seen)
        row["grad_bytes"] -= shared
        row["bwd_tmp"] += shared
        seen |= {id(p) for p in stage.parameters()}


class _WithLoss(torch.nn.Module):
    """The last stage followed by the loss: one scalar out."""

    def __init__(self, stage: torch.nn.Module, loss):
        super().__init__()
        self.stage, self.loss = stage, loss

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.loss(self.stage(inputs))


def _context_on(context: dict | None, device: torch.device) -> dict:
    """The context inputs on ``device``; anything but a tensor is an error naming it."""
    moved = {}
    for name, value in (context or {}).items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"context input {name!r} must be a tensor, got {type(value).__name__}")
        moved[name] = value.to(device)
    return moved


def check_chain(model: torch.nn.Module, chain: list, sample_input: torch.Tensor, context: dict) -> None:
    """Refuse a chain whose stages, run one after the other, do not compute ``model(sample_input, **context)``.

    Both run without grad from the same random state; buffers and the random state are the caller's to
    restore (:func:`profile` does).
    """
    cuda = [sample_input.device] if sample_input.device.type == "cuda" else []
    with torch.no_grad(), torch.random.fork_rng(devices=cuda):  # each run from the same random state
        expected = model(sample_input, **context)
    with torch.no_grad(), torch.random.fork_rng(devices=cuda):
        output = sample_input
        for index, stage in enumerate(chain):
            output = stage(output)
            if not isinstance(output, torch.Tensor):
                raise TypeError(
                    f"stage {index} ({module_name(stage)}) of {type(model).__name__} returns "
                    f"{type(output).__name__}, not a tensor: a chain passes one tensor from stage to stage"
                )
    if not isinstance(expected, torch.Tensor) or expected.shape != output.shape:
        shape = tuple(expected.shape) if isinstance(expected, torch.Tensor) else type(expected).__name__
        raise ValueError(
            f"the {len(chain)} stages of {type(model).__name__} give shape {tuple(output.shape)}, the model "
            f"{shape}: they do not compute the model's function"
        )
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    difference = float((output - expected).abs().max()) if expected.numel() else 0.0
    if difference > 1e-4 * max(scale, 1.0):
        raise ValueError(
            f"the {len(chain)} stages of {type(model).__name__} do not compute the model's function (largest "
            f"difference {difference:.3g} on outputs up to {scale:.3g}): its forward depends on something a trace "
            f"freezes (Python state it changes, a value read outside its inputs); make that part one stage by "
            f"putting it inside an nn.Sequential"
        )


@contextlib.contextmanager
def _untouched(model: torch.nn.Module, device: torch.device):
    """Put back what profiling on ``device`` changes: buffers (BatchNorm statistics; the same tensors, on their
    device), ``.grad``, the random state of the CPU and of every CUDA device involved, the mode and the
    device of the parameters."""
    owners = [(m, name, b) for m in model.modules() for name, b in m._buffers.items() if b is not None]
    values = [buffer.detach().clone() for _, _, buffer in owners]
    grads = [(p, p.grad) for p in model.parameters()]
    places = [(p, p.device) for p in model.parameters()]
    training = model.training
    cuda = {t.device for t in [*model.parameters(), *model.buffers()] if t.device.type == "cuda"}
    cuda |= {device} if device.type == "cuda" else set()
    with torch.random.fork_rng(devices=sorted(cuda, key=str)):
        try:
            yield
        finally:
            for parameter, place in places:
                if parameter.device != place:
                    parameter.data = parameter.data.to(place)
            with torch.no_grad():
                for (module, name, buffer), value in zip(owners, values, strict=True):
                    buffer.copy_(value)
                    module._buffers[name] = buffer  # the model's own tensor again, where it was
            for parameter, grad in grads:
                parameter.grad = grad
            model.train(training)


def _profile_stage(stage, activation, device, repeats: int, *, needs_input_grad: bool) -> dict:
    for parameter in stage.parameters():
        parameter.grad = None
    grad_bytes = sum(_nbytes(p) for p in stage.parameters() if p.requires_grad)
    excluded = {p.untyped_storage().data_ptr() for p in stage.parameters()}
    # One run under the allocator trace and the saved-tensor hooks (memory), then untraced timed runs.
    inputs = activation.detach().requires_grad_(needs_input_grad and activation.is_floating_point())
    input_storage, saved = inputs.untyped_storage().data_ptr(), {}
    with AllocatorTrace(device) as fwd, torch.autograd.graph.saved_tensors_hooks(_packer(saved), _unpack):
        output = stage(inputs)
    grad = torch.ones_like(output)
    with AllocatorTrace(device) as bwd:
        if output.requires_grad:
            torch.autograd.backward(output, grad)
    cuda = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda), torch.no_grad(), AllocatorTrace(device) as without_grad:
        stage(activation)
    memory = {"fwd": fwd, "bwd": bwd, "fn": without_grad, "saved": saved, "output": output}
    del grad, inputs
    forward, backward = [], []
    for _ in range(repeats):
        for parameter in stage.parameters():
            parameter.grad = None
        inputs = activation.detach().requires_grad_(needs_input_grad and activation.is_floating_point())
        start = _now(device)
        output = stage(inputs)
        forward.append(_now(device) - start)
        grad = torch.ones_like(output)
        start = _now(device)
        if output.requires_grad:
            torch.autograd.backward(output, grad)
        backward.append(_now(device) - start)
        del output, grad, inputs
    for parameter in stage.parameters():
        parameter.grad = None
    saves_input = input_storage in memory["saved"]
    saves_output = memory["output"].untyped_storage().data_ptr() in memory["saved"]
    storages = {ptr: size for ptr, size in memory["saved"].items() if ptr not in excluded | {input_storage}}
    storages[memory["output"].untyped_storage().data_ptr()] = _nbytes(memory["output"])
    uf, ub = np.array(forward), np.array(backward)
    # The backward allocates the parameter gradients and the input gradient beside its transient buffers.
    xbar = memory["fwd"].net
    input_grad = _nbytes(activation) if needs_input_grad and activation.is_floating_point() else 0
    return {
        "uf": float(np.median(uf)),
        "ub": float(np.median(ub)),
        "uf_iqr": float(np.subtract(*np.percentile(uf, [75, 25]))),
        "ub_iqr": float(np.subtract(*np.percentile(ub, [75, 25]))),
        "x": _nbytes(memory["output"]),
        "xbar": int(xbar),
        "fwd_tmp": int(max(memory["fwd"].peak - xbar, 0)),
        "fn_tmp": int(max(memory["fn"].peak - _nbytes(memory["output"]), 0)),
        "bwd_tmp": int(max(memory["bwd"].peak - grad_bytes - input_grad, 0)),
        "saved_hooks": int(sum(storages.values())),
        "grad_bytes": int(grad_bytes),
        "buffer_bytes": int(sum(b.numel() * b.element_size() for b in stage.buffers())),
        "saves_input": int(saves_input),
        "saves_output": int(saves_output),
    }


def _packer(saved: dict):
    def pack(tensor):
        storage = tensor.untyped_storage()
        saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    return pack


def _unpack(tensor):
    return tensor


def _nbytes(tensor: torch.Tensor) -> int:
    return int(tensor.untyped_storage().nbytes())


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"cpu ({platform.processor() or platform.machine()})"
