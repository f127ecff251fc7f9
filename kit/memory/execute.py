"""Run a plan as a real PyTorch training step, and measure its peak memory and time.

The plan's operations (:mod:`kit.memory.schedule`) drive the stages by hand: ``Fn`` runs a stage without
grad and keeps its output, ``Fe`` runs it with grad from a detached copy of its input, ``B`` back-propagates
one stage from the gradient of its output (the last stage from the loss) and leaves the gradient of its
input. Recomputations replay the random state of the stage's first forward (dropout masks agree) and
restore the stage's buffers afterwards (BatchNorm running statistics are updated once), so gradients and
buffers equal those of eager execution. ``offload`` copies the tensors a stage saved for its backward (not
its input, output or parameters) to host memory on a side CUDA stream beside the next operation, then frees
them; ``prefetch`` copies them back beside the next operation.
"""

from __future__ import annotations

import contextlib
from collections import Counter

import numpy as np
import torch

from kit.memory.chain import stages
from kit.memory.graph import bound
from kit.memory.measure_memory import AllocatorTrace
from kit.memory.measure_memory import now as _now
from kit.memory.profiling import check_device, mean_square


def run(model: torch.nn.Module, plan, inputs: torch.Tensor, loss=mean_square, context=None) -> torch.Tensor:
    """One training step of ``model`` on ``inputs`` (and the ``context`` inputs of its forward, by name)
    following ``plan``; gradients accumulate in ``.grad``. Returns the loss."""
    step = Step(model, plan, inputs, context=context)
    losses = []

    def backward(output):
        value = loss(output)
        value.backward()
        losses.append(value.detach())  # drop the graph: it would keep stage inputs and gradients

    step.forward()
    step.backward(backward)
    return losses[0]


class Step:
    """One training step following a plan, in two phases: :meth:`forward` runs the operations up to the
    backward of the last stage and returns that stage's output; :meth:`backward` back-propagates it (given
    what does it, e.g. a loss's backward) and runs the rest. ``input_grad`` leaves the gradient of the
    inputs in :attr:`input_grad`."""

    def __init__(self, model: torch.nn.Module, plan, inputs: torch.Tensor, *, input_grad=False, context=None):
        self.context = dict(context or {})
        self.chain = stages(model, self.context)
        operations = plan.operations
        planned = 1 + max(j for _, j in operations)
        if planned != len(self.chain):
            raise ValueError(
                f"the plan schedules {planned} stages, {type(model).__name__} has {len(self.chain)}: plan from "
                f"this model's profile (kit.memory.profile(model, x))"
            )
        self.last = len(self.chain) - 1
        split = operations.index(("B", self.last))
        self.operations = operations[:split], operations[split:]
        self.inputs, self.wants_input_grad, self.input_grad = inputs, input_grad, None
        self.kept: dict[int, torch.Tensor] = {}  # outputs of forwards without grad
        self.graphs: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # (input leaf, output) of forwards with grad
        self.grads: dict[int, torch.Tensor] = {}  # gradients of stage outputs
        self.states: dict[int, tuple] = {}  # random state before the first forward of each recomputed stage
        self.runs = Counter(j for op, j in operations if op in ("Fn", "Fe"))
        self.restore: dict[int, list] = {}  # buffers to put back once a recomputed stage's graph is gone
        self.offloaded = {j for op, j in operations if op == "offload"}
        self.saved: dict[int, _SavedTensors] = {}  # what offloaded stages saved for their backward
        self.pending: list = []  # copies to complete once the next operation is queued

    def forward(self) -> torch.Tensor:
        """Run the operations before the last stage's backward; the last stage's output (in its graph)."""
        with bound(self.chain, self.context):
            self._execute(self.operations[0], None)
        return self.graphs[self.last][1]

    def backward(self, last_backward) -> None:
        """``last_backward(output)`` back-propagates the last stage's output; then the rest of the plan."""
        with bound(self.chain, self.context):
            self._execute(self.operations[1], last_backward)

    def _input_of(self, j):
        if j == 0:
            return self.inputs
        return self.kept[j - 1] if j - 1 in self.kept else self.graphs[j - 1][1]

    def _forward(self, j, source):
        stage = self.chain[j]
        if j not in self.states:
            if self.runs[j] > 1:
                self.states[j] = _random_state(source.device)
            return stage(source)
        self.restore[j] = [b.detach().clone() for b in stage.buffers()]
        with torch.random.fork_rng(devices=_cuda_devices(source.device)):
            _set_random_state(self.states[j], source.device)
            out = stage(source)
        if not torch.is_grad_enabled():
            _put_back(stage, self.restore.pop(j))
        return out

    def _execute(self, operations, last_backward) -> None:
        pending = self.pending
        for op, j in operations:
            if op == "offload":
                pending.append(self.saved[j].offload(self.chain[j], *self.graphs[j]))
                continue
            if op == "prefetch":
                pending.append(self.saved[j].prefetch())
                continue
            if op == "Fn":
                with torch.no_grad():
                    self.kept[j] = self._forward(j, self._input_of(j))
            elif op == "Fe":
                source = self._input_of(j).detach()
                if (j > 0 or self.wants_input_grad) and source.is_floating_point():
                    source.requires_grad_(True)
                if j in self.offloaded:
                    self.saved[j] = _SavedTensors(source.device)
                    with torch.autograd.graph.saved_tensors_hooks(self.saved[j].pack, _SavedTensors.unpack):
                        self.graphs[j] = (source, self._forward(j, source))
                else:
                    self.graphs[j] = (source, self._forward(j, source))
            elif op == "B":
                source, output = self.graphs.pop(j)
                if j == self.last:
                    last_backward(output)
                else:
                    torch.autograd.backward(output, self.grads.pop(j))
                if j > 0:
                    self.grads[j - 1] = source.grad
                elif self.wants_input_grad:
                    self.input_grad = source.grad
                del source, output
                self.saved.pop(j, None)  # the prefetched tensors die with the graph
                if j in self.restore:  # autograd may have saved the buffers: put them back only now
                    _put_back(self.chain[j], self.restore.pop(j))
            elif op == "free":
                del self.kept[j]
                continue
            while pending:  # the copies ran beside the operation just queued
                pending.pop(0)()


class _SavedTensors:
    """The tensors one stage's forward saved for its backward, each in a box. ``offload`` copies every
    storage they use (once, whole: views and aliases survive) to host memory and empties the boxes;
    ``prefetch`` copies the storages back and refills the boxes with the same views of them."""

    def __init__(self, device: torch.device):
        self.device, self.boxes, self.moved = device, [], []
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None

    def pack(self, tensor: torch.Tensor) -> list:
        box = [tensor]
        self.boxes.append(box)
        return box

    @staticmethod
    def unpack(box: list) -> torch.Tensor:
        """Hand the tensor to the backward and let go of it: autograd frees each saved tensor once used."""
        tensor, box[0] = box[0], None
        return tensor

    @property
    def moved_bytes(self) -> int:
        """Bytes in host memory now."""
        return sum(host.numel() for host, _ in self.moved)

    def offload(self, stage: torch.nn.Module, source: torch.Tensor, output: torch.Tensor):
        """Start copying to host what only the backward needs; returns what frees the device copies."""
        stay = {t.untyped_storage().data_ptr() for t in (source, output, *stage.parameters(), *stage.buffers())}
        groups: dict[int, list] = {}
        for box in self.boxes:
            pointer = box[0].untyped_storage().data_ptr()
            if pointer not in stay:
                groups.setdefault(pointer, []).append(box)
        with self._side():
            for boxes in groups.values():
                raw = torch.empty(0, dtype=torch.uint8, device=self.device).set_(boxes[0][0].untyped_storage())
                host = self._host_buffer(raw.numel())
                host.copy_(raw, non_blocking=self.stream is not None)
                views = [(b[0].dtype, b[0].size(), b[0].stride(), b[0].storage_offset()) for b in boxes]
                self.moved.append((host, list(zip(boxes, views, strict=True))))
        done = self._mark()

        def complete():
            done()  # the copies are in host memory: the device storages can go
            for boxes in groups.values():
                for box in boxes:
                    box[0] = None
            groups.clear()

        return complete

    def prefetch(self):
        """Start copying the storages back; returns what hands their views to the backward."""
        moved, self.moved = self.moved, []
        storages = [torch.empty(host.numel(), dtype=torch.uint8, device=self.device) for host, _ in moved]
        with self._side():
            for storage, (host, _) in zip(storages, moved, strict=True):
                storage.copy_(host, non_blocking=self.stream is not None)
        done = self._mark(wait_on_device=True)

        def complete():
            done()  # the current stream waits for the copies (the pinned allocator keeps the host buffers alive)
            for storage, (_, boxes) in zip(storages, moved, strict=True):
                for box, (dtype, size, stride, offset) in boxes:
                    box[0] = torch.empty(0, dtype=dtype, device=self.device).set_(
                        storage.untyped_storage(), offset, size, stride
                    )
            storages.clear()
            moved.clear()

        return complete

    def _host_buffer(self, nbytes: int) -> torch.Tensor:
        """Pinned host memory beside a GPU; on a CPU, memory numpy owns, outside the torch allocator that
        :func:`measure` counts as the device's, so an offloading plan's peak is checked without a GPU."""
        if self.stream is not None:
            return torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)
        return torch.from_numpy(np.empty(nbytes, dtype=np.uint8))

    def _side(self):
        """Copies run on the side stream, after what the current stream queued (nothing to order on CPU)."""
        if self.stream is None:
            return contextlib.nullcontext()
        self.stream.wait_stream(torch.cuda.current_stream(self.device))
        return torch.cuda.stream(self.stream)

    def _mark(self, *, wait_on_device: bool = False):
        """What waits for the copies queued so far: the host (to free them) or the current stream (to use them)."""
        if self.stream is None:
            return lambda: None
        event = torch.cuda.Event()
        event.record(self.stream)
        if wait_on_device:
            return lambda: torch.cuda.current_stream(self.device).wait_event(event)
        return event.synchronize


def measure(
    model: torch.nn.Module, plan, inputs: torch.Tensor, *, loss=mean_square, repeats: int = 3, context=None
) -> dict:
    """Measured ``peak`` (bytes allocated during a step beyond the inputs and parameters; the parameter
    gradients, set to None before each step, are allocated by it) and ``time`` (median seconds of ``repeats``
    steps after a warm-up) of ``plan`` on ``inputs``, beside the plan's predictions."""
    parameters = list(model.parameters())
    device = check_device(parameters[0].device if parameters else "cpu")
    inputs = inputs.to(device)
    peak, seconds = peak_and_time(model, lambda: run(model, plan, inputs, loss, context), device, repeats)
    return {
        "peak": peak,
        "time": seconds,
        "predicted_peak": int(plan.predicted_peak),
        "predicted_time": float(plan.predicted_time),
    }


def peak_and_time(model: torch.nn.Module, step, device: torch.device, repeats: int) -> tuple[int, float]:
    """Peak bytes of one ``step()`` after a warm-up (beyond what was allocated before it), and the median
    seconds of ``repeats`` more; ``model``'s parameter gradients are set to None before each."""
    step()  # warm-up
    model.zero_grad(set_to_none=True)
    with AllocatorTrace(device) as trace:
        step()
    times = []
    for _ in range(repeats):
        model.zero_grad(set_to_none=True)
        start = _now(device)
        step()
        times.append(_now(device) - start)
    return int(trace.peak), float(np.median(times))


def _put_back(stage: torch.nn.Module, saved: list) -> None:
    """A recomputation must not update running statistics (BatchNorm) a second time."""
    with torch.no_grad():
        for buffer, value in zip(stage.buffers(), saved, strict=True):
            buffer.copy_(value)


def _cuda_devices(device: torch.device) -> list:
    return [device] if device.type == "cuda" else []


def _random_state(device: torch.device) -> tuple:
    """The generators' states as host bytes, outside the tensor allocator the plan's budget counts."""
    cpu = torch.get_rng_state().numpy().tobytes()
    return cpu, torch.cuda.get_rng_state(device).numpy().tobytes() if device.type == "cuda" else None


def _set_random_state(state: tuple, device: torch.device) -> None:
    torch.set_rng_state(torch.frombuffer(bytearray(state[0]), dtype=torch.uint8))
    if device.type == "cuda":
        torch.cuda.set_rng_state(torch.frombuffer(bytearray(state[1]), dtype=torch.uint8), device)
