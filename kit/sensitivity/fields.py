"""Sobol' maps of a simulated field over time, assembled from pick-freeze simulations streamed in any order.

The ``d + 2`` simulations of a pick-freeze group (rows A, B, E_1 ... E_d, see ``kit.sampling.pick_freeze``)
run independently and send their time steps whenever they are ready. :class:`FieldSobol` holds the kept
steps of each group until its ``d + 2`` rows have delivered all of them, then folds them into each step's
:class:`~kit.sensitivity.IterativeSobol` and frees them (as Melissa does, Terraz et al. SC17), so every map
is estimated from the same groups: memory is one accumulator per kept step plus the kept steps of the
groups still running, not the trajectories.
Scalar quantities of interest (e.g. the SSIM of each field against a reference, ``kit.sensitivity.images``)
get their own indices from the same simulations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from kit.sensitivity.moments import _check_shape
from kit.sensitivity.sobol import IterativeSobol

__all__ = ["FieldSobol"]

#: Names a scalar quantity cannot take (they would clash with ``S1_field``, ``S1_low``, ...).
RESERVED = ("field", "low", "high")


class FieldSobol:
    """Per-cell and whole-field Sobol' indices of a field at chosen time steps, fed one simulated step at a time.

    Parameters
    ----------
    n_params
        Number ``d`` of parameters; simulation ``point`` (its index in the pick-freeze order, 0, 1, ...) is
        row ``point % (d + 2)`` of group ``point // (d + 2)``.
    shape
        Shape of one field, e.g. ``(ny, nx)``.
    steps
        The 1-based step indices whose indices are estimated; other steps are ignored.
    estimator
        ``"martinez"`` (default) or ``"jansen"``, as for :class:`~kit.sensitivity.IterativeSobol`.
    quantities
        Scalar quantities of interest, ``{name: f}`` with ``f(step, field) -> float``, indexed per step too.

    An instance accumulates everything it is given: give each study its own.

    Examples
    --------
    >>> from kit.sampling import pick_freeze
    >>> from kit.space import ParameterSpace
    >>> space = ParameterSpace({"a": (0.0, 1.0), "b": (0.0, 1.0)})
    >>> points = pick_freeze(space, 256, seed=0).reshape(-1, 2)
    >>> maps = FieldSobol(2, shape=(1, 2), steps=[1])
    >>> for point in reversed(range(len(points))):  # any arrival order
    ...     a, b = points[point]
    ...     maps.add(point, 1, [[a, a + 3 * b]])
    >>> (np.round(maps.sobols[1].first_order[:, 0], 1) + 0.0).tolist()  # cell 0 is a; cell 1 mostly b
    [[1.0, 0.1], [0.0, 0.9]]
    """

    def __init__(
        self,
        n_params: int,
        shape: Sequence[int],
        steps: Sequence[int],
        *,
        estimator: str = "martinez",
        quantities: Mapping[str, Callable] | None = None,
    ):
        self.n_params, self.shape = int(n_params), _check_shape(shape)
        self.steps = _check_steps(steps)
        self.quantities = dict(quantities or {})
        for name, quantity in self.quantities.items():
            if name in RESERVED:
                raise ValueError(f"quantity name {name!r} is taken by the indices' variables; avoid {RESERVED}")
            if not callable(quantity):
                raise TypeError(f"quantity {name!r} must be callable as f(step, field) -> float, got {quantity!r}")
        self.sobols = {step: IterativeSobol(n_params, self.shape, estimator) for step in self.steps}
        self.quantity_sobols = {
            step: IterativeSobol(n_params, (len(self.quantities),), estimator) for step in self.steps
        }
        self.discarded: set[int] = set()  # groups that lost a member and will never complete
        self._position = {step: i for i, step in enumerate(self.steps)}
        self._partial: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # group -> values, scalars, arrived

    @property
    def group_size(self) -> int:
        return self.n_params + 2

    def add(self, point: int, step: int, field) -> None:
        """Record ``field`` of simulation ``point`` at ``step``; a group is folded in once complete."""
        step = int(step)
        if step not in self.sobols:
            return
        if int(point) < 0:
            raise ValueError(f"point must be a simulation index >= 0, got {point!r}")
        group, row = divmod(int(point), self.group_size)
        if group in self.discarded:
            return
        field = np.asarray(field, dtype=float)
        if field.shape != self.shape:
            raise ValueError(f"field of simulation {point} at step {step} has shape {field.shape}, not {self.shape}")
        if group not in self._partial:
            kept, size = len(self.steps), self.group_size
            self._partial[group] = (
                np.zeros((kept, size, *self.shape)),
                np.zeros((kept, size, len(self.quantities))),
                np.zeros((kept, size), dtype=bool),
            )
        values, scalars, arrived = self._partial[group]
        at = self._position[step]
        values[at, row] = field
        scalars[at, row] = [quantity(step, field) for quantity in self.quantities.values()]
        arrived[at, row] = True
        self._fold(group)

    def _fold(self, group: int) -> None:
        """Fold ``group`` into the indices once every row delivered every kept step."""
        values, scalars, arrived = self._partial[group]
        if arrived.all():
            for at, kept in enumerate(self.steps):
                self.sobols[kept].update(values[at])
                self.quantity_sobols[kept].update(scalars[at])
            del self._partial[group]

    def empty(self) -> FieldSobol:
        """An instance built with the same arguments that has seen nothing."""
        estimator = self.sobols[self.steps[0]].estimator
        return FieldSobol(self.n_params, self.shape, self.steps, estimator=estimator, quantities=self.quantities)

    def merge(self, other: FieldSobol) -> FieldSobol:
        """Add what ``other`` (built with the same arguments, fed other simulations: another training rank's)
        took in: its folded groups exactly, its partial groups joined with these (folded once complete), its
        discarded groups; returns self."""
        for name, mine, theirs in _arguments(self, other):
            if mine != theirs:
                raise ValueError(f"cannot merge: {name} differs ({theirs!r} in other, {mine!r} here)")
        for step in self.steps:
            self.sobols[step].merge(other.sobols[step])
            self.quantity_sobols[step].merge(other.quantity_sobols[step])
        self.discarded |= other.discarded
        for group, (values, scalars, arrived) in other._partial.items():
            if group in self.discarded:
                continue
            if group not in self._partial:
                self._partial[group] = (values.copy(), scalars.copy(), arrived.copy())
            else:
                mine = self._partial[group]
                mine[0][arrived], mine[1][arrived], mine[2][arrived] = values[arrived], scalars[arrived], True
            self._fold(group)
        for group in self.discarded:
            self._partial.pop(group, None)
        return self

    def discard(self, point: int) -> None:
        """Simulation ``point`` will never deliver all its steps: drop its group (counted in ``discarded``),
        unless it already delivered every kept step (its group can still complete, here or, merged, with
        the rows another training rank received)."""
        group, row = divmod(int(point), self.group_size)
        if group in self._partial and self._partial[group][2][:, row].all():
            return
        self.discarded.add(group)
        self._partial.pop(group, None)

    @property
    def n_groups(self) -> int:
        """Groups folded in (complete at every kept step)."""
        return self.sobols[self.steps[0]].n_groups

    @property
    def pending(self) -> int:
        """Groups still waiting for steps."""
        return len(self._partial)

    def to_dataset(self, names: Sequence[str] | None = None, *, times=None, dims=("y", "x"), level=0.95):
        """``S1``, ``ST`` (and their intervals) with dims ``(step, parameter, *dims)``; whole-field indices
        ``S1_field``, ``ST_field`` ``(step, parameter)``; for each quantity ``q``, ``S1_q``, ``ST_q``
        ``(step, parameter)``. ``times`` (one per kept step) becomes a ``time`` coordinate."""
        import xarray as xr

        per_step = []
        for step in self.steps:
            sobol = self.sobols[step]
            data = sobol.to_dataset(names, dims, level=level)
            first, total = sobol.aggregated()
            data["S1_field"] = ("parameter", first)
            data["ST_field"] = ("parameter", total)
            scalar = self.quantity_sobols[step]
            for i, name in enumerate(self.quantities):
                data[f"S1_{name}"] = ("parameter", scalar.first_order[:, i])
                data[f"ST_{name}"] = ("parameter", scalar.total_order[:, i])
            per_step.append(data.drop_attrs())
        out = xr.concat(per_step, dim=xr.DataArray(list(self.steps), dims="step", name="step"))
        for name in out.data_vars:
            out[name].attrs["units"] = "1"
        if times is not None:
            out = out.assign_coords(time=("step", np.asarray(times, dtype=float)))
        out.attrs = {
            "n_groups": self.n_groups,
            "discarded_groups": len(self.discarded),
            "estimator": self.sobols[self.steps[0]].estimator,
            "quantities": list(self.quantities),
            "confidence_level": float(level),
        }
        return out

    def state_dict(self) -> dict:
        """Accumulators, partial groups and discarded groups (quantity callables are not saved)."""
        return {
            "n_params": self.n_params,
            "shape": list(self.shape),
            "steps": list(self.steps),
            "quantities": list(self.quantities),
            "sobols": {step: sobol.state_dict() for step, sobol in self.sobols.items()},
            "quantity_sobols": {step: sobol.state_dict() for step, sobol in self.quantity_sobols.items()},
            "discarded": sorted(self.discarded),
            "partial": {group: tuple(a.copy() for a in value) for group, value in self._partial.items()},
        }

    def load_state_dict(self, state: dict) -> FieldSobol:
        """Restore a :meth:`state_dict` saved by an instance built with the same arguments."""
        for name in ("n_params", "shape", "steps", "quantities"):
            mine = getattr(self, name)
            mine = list(mine) if name != "n_params" else mine
            if state[name] != mine:
                raise ValueError(f"state has {name}={state[name]!r}, this FieldSobol has {name}={mine!r}")
        for step in self.steps:
            self.sobols[step].load_state_dict(state["sobols"][step])
            self.quantity_sobols[step].load_state_dict(state["quantity_sobols"][step])
        self.discarded = set(state["discarded"])
        self._partial = {int(group): tuple(np.array(a) for a in value) for group, value in state["partial"].items()}
        return self

    def __repr__(self) -> str:
        return (
            f"FieldSobol(n_params={self.n_params}, shape={self.shape}, steps={list(self.steps)}, "
            f"n_groups={self.n_groups}, pending={self.pending})"
        )


def _arguments(a: FieldSobol, b: FieldSobol):
    """What two instances must share to be merged: (name, a's, b's)."""
    for name, of in (("n_params", int), ("shape", tuple), ("steps", tuple), ("quantities", list)):
        yield name, of(getattr(a, name)), of(getattr(b, name))


def _check_steps(steps) -> tuple[int, ...]:
    try:
        values = [int(s) for s in steps]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"steps must be 1-based step indices, got {steps!r}") from exc
    if not values or min(values) < 1 or len(set(values)) != len(values):
        raise ValueError(f"steps must be distinct 1-based step indices (at least one), got {steps!r}")
    return tuple(sorted(values))
