"""What a study leaves: metrics over batches, validation checks, simulations, arrivals, accounting."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from kit.online.history import History
from kit.online.ledger import Ledger
from kit.online.timeline import trace


@dataclass
class StudyResult:
    """Results of an :class:`~kit.online.study.OnlineStudy`, as xarray Datasets."""

    rows: History  # metrics per batch
    checks: History  # validation checks
    ledger: Ledger
    discarded: dict[str, int]
    buffer_metrics: dict  # the buffer's counters (added up over the ranks)
    trainer: object
    space: object
    config: dict
    field_sobol: object = None
    simulator: object = None
    timeline: object = None  # a Timeline, or a list of them (one a training rank)
    rank_metrics: list[History] | None = None  # each training rank's metrics, with several

    def trace(self, name: str = "online-study"):
        """The study as a :class:`kit.replay.Trace` (chunks on their workers, batches and validations on the
        client, or on ``client-r`` for rank ``r`` of several); needs ``OnlineStudy(record=True)``."""
        if self.timeline is None:
            raise ValueError("this study kept no timeline: run it with OnlineStudy(..., record=True)")
        return trace(self.timeline if isinstance(self.timeline, list) else [self.timeline], name)

    @property
    def metrics(self) -> xr.Dataset:
        """Per batch: loss, produced and consumed counts and rates, buffer occupancy, sample age and the
        steps received but not yet in the buffer (``pending``)."""
        if not len(self.rows):
            return xr.Dataset(coords={"batch": np.array([], dtype=int)})
        columns = {key: self.rows[key] for key in self.rows.columns}
        for key in ("batch", "produced", "consumed", "trained", "pending", "age_max"):
            columns[key] = columns[key].astype(np.int64)
        batch = columns.pop("batch")
        seconds = np.maximum(columns["seconds"], 1e-9)
        ds = xr.Dataset({key: ("batch", value) for key, value in columns.items()}, coords={"batch": batch})
        ds["produced_per_second"] = ds.produced / seconds
        ds["consumed_per_second"] = ds.consumed / seconds
        ds["trained_per_second"] = ds.trained / seconds
        ds["seconds"].attrs["units"] = "s"
        ds["age_mean"].attrs["units"] = "batches"
        return ds

    @property
    def ranks(self) -> xr.Dataset:
        """Per training rank and batch: samples produced, drawn into batches (``consumed``) and trained, and
        their rates (one rank without ``trainers``; a resumed study's ranks from the resume on); summed over
        ``rank``, the study's."""
        rows = self.rank_metrics or [self.rows]
        data = xr.Dataset(
            {
                key: (("rank", "batch"), np.stack([r[key] for r in rows]).astype(np.int64))
                for key in ("produced", "consumed", "trained")
            },
            coords={"rank": np.arange(len(rows)), "batch": rows[0]["batch"].astype(np.int64)},
        )
        data["seconds"] = (("rank", "batch"), np.stack([r["seconds"] for r in rows]), {"units": "s"})
        seconds = np.maximum(data.seconds, 1e-9)
        for key in ("produced", "consumed", "trained"):
            data[f"{key}_per_second"] = data[key] / seconds
        return data

    @property
    def validation(self) -> xr.Dataset:
        """Validation error (mean, p99, max over held-out samples) at each check."""
        keys = [k for k in self.checks.columns if k != "batch"]
        return xr.Dataset(
            {k: ("check_batch", self.checks[k]) for k in keys},
            coords={"check_batch": self.checks["batch"].astype(np.int64)},
        )

    @property
    def simulations(self) -> xr.Dataset:
        """Per simulation: parameters, status, attempts, steps received, failure reasons."""
        sims = sorted(self.ledger.simulations.values(), key=lambda s: s.sim_id)
        return xr.Dataset(
            {
                "params": (
                    ("simulation", "parameter"),
                    np.array([s.params for s in sims]).reshape(len(sims), self.space.dim),
                ),
                "status": ("simulation", [s.status for s in sims]),
                "seed": ("simulation", np.array([s.seed for s in sims], dtype=np.uint64)),
                "attempts": ("simulation", [s.attempts for s in sims]),
                "steps_received": ("simulation", [s.n_received for s in sims]),
                "reasons": ("simulation", ["; ".join(s.reasons) for s in sims]),
            },
            coords={"simulation": [s.sim_id for s in sims], "parameter": list(self.space.names)},
        )

    @property
    def arrivals(self) -> xr.Dataset:
        """The arrival log, one entry per step: simulation id, time step, the batch count at arrival and
        seconds since start."""
        log = self.ledger.arrivals
        first, last = log["first"].astype(np.int64), log["last"].astype(np.int64)
        counts = last - first + 1
        starts = np.repeat(np.cumsum(counts) - counts, counts)
        steps = np.repeat(first, counts) + np.arange(counts.sum()) - starts
        return xr.Dataset(
            {
                "simulation": ("arrival", np.repeat(log["simulation"].astype(np.int64), counts)),
                "step": ("arrival", steps),
                "batch": ("arrival", np.repeat(log["batch"].astype(np.int64), counts)),
                "seconds": ("arrival", np.repeat(log["seconds"], counts)),
            }
        )

    @property
    def sensitivity(self) -> xr.Dataset | None:
        """Sobol' maps from the study's pick-freeze simulations (dims step, parameter, y, x), or None."""
        if self.field_sobol is None:
            return None
        steps = np.asarray(self.field_sobol.steps)
        times = steps * self.simulator.t_end / self.simulator.steps
        data = self.field_sobol.to_dataset(list(self.space.names), times=times)
        data = data.assign_coords(y=self.simulator.y, x=self.simulator.x)
        data.attrs["field"] = f"{self.simulator.field_name} [{self.simulator.units}]"
        return data

    @property
    def accounting(self) -> dict[str, int]:
        """produced = trained + evicted_unseen + discarded (each reason); ``balanced`` says it holds."""
        metrics = self.buffer_metrics
        counts = {
            "produced": self.ledger.produced,
            "trained": int(metrics["trained"]),
            "evicted_unseen": int(metrics["evicted_unseen"]),
            **{f"discarded_{reason.replace(' ', '_')}": n for reason, n in sorted(self.discarded.items()) if n},
        }
        accounted = counts["trained"] + counts["evicted_unseen"] + sum(self.discarded.values())
        counts["balanced"] = int(accounted == counts["produced"])
        return counts

    def to_dataset(self) -> xr.Dataset:
        """Metrics, validation checks, simulations and arrivals in one Dataset; the study's settings and
        accounting in ``attrs``."""
        arrivals = self.arrivals.rename({name: f"arrival_{name}" for name in self.arrivals.data_vars})
        data = xr.merge([self.metrics, self.validation, self.simulations, arrivals], compat="no_conflicts")
        data.attrs = {f"study_{key}": str(value) for key, value in self.config.items()}
        data.attrs.update({f"accounting_{key}": int(value) for key, value in self.accounting.items()})
        return data
