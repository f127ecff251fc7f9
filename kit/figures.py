"""The figure registry (``papers/<paper>/figures.yaml``) and the papermill runner that builds figures.

Each registered figure names a notebook and the parameters that give the paper-scale figure. Building
runs the notebook with papermill and leaves, under ``papers/<paper>/``::

    figures/<id>.png, figures/<id>.pdf   the figure
    data/<id>.nc                         the data it plots, with provenance attributes
    executed/<id>.ipynb                  the executed notebook, provenance in its metadata
    executed/<id>.sha256                 what was built (notebook, parameters, kit sources)

Only the registry's parameters write there: a build with overrides (``-p``) or at smoke size writes the
same files under ``papers/<paper>/scratch/`` (or an output folder given), so the paper's outputs are always
paper-scale.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import numpy as np
import yaml

from kit import io, notebooks, paths

log = logging.getLogger(__name__)

#: Parameters every figure notebook declares; the runner sets them.
RUNNER_PARAMETERS = ("figure_id", "output_dir")
KERNEL = "python3"
#: The kernel's own warnings (TCP to this machine's loopback without encryption) are noise in a build.
KERNEL_QUIET = ["--IPKernelApp.log_level=ERROR"]
#: A report entry's target: a comparison (``within``: in absolute value at most) and a number, or
#: ``between <low> and <high>`` (both included).
_NUMBER = r"(-?[0-9.eE+-]+)"
TARGET = re.compile(rf"^\s*(?:(<=|>=|<|>|within)\s*{_NUMBER}|between\s+{_NUMBER}\s+and\s+{_NUMBER})\s*$")


def _valid_target(text: str) -> bool:
    """A comparison and a number, or ``between <low> and <high>`` with low <= high."""
    match = TARGET.match(text)
    return bool(match) and (match[1] is not None or float(match[3]) <= float(match[4]))


class FigureError(Exception):
    """A registry entry, a parameter or a build is wrong; the message names the figure."""


@dataclass(frozen=True)
class Figure:
    """One registered figure."""

    paper: str
    id: str
    notebook: Path
    folder: Path
    parameters: dict = field(default_factory=dict)
    caption: str = ""
    golden: tuple[str, ...] | None = None  # data variables compared with golden files; None: all
    smoke: dict = field(default_factory=dict)  # parameters kept at smoke size (which model, not how big)
    report: dict = field(default_factory=dict)  # data variable -> {what, target, format} for `kit figures report`

    @property
    def key(self) -> str:
        return f"{self.paper}/{self.id}"


@dataclass(frozen=True)
class Failure:
    """Why a figure did not build."""

    key: str
    reason: str
    executed: Path | None = None

    def __str__(self) -> str:
        where = f"\n  executed notebook: {self.executed}" if self.executed else ""
        return f"{self.key}: {self.reason}{where}"


def load_registry(papers_dir: Path | None = None) -> list[Figure]:
    """Every figure of every ``papers/<paper>/figures.yaml``, by paper then in file order."""
    papers_dir = Path(papers_dir or paths.papers())
    root = papers_dir.parent
    figures = []
    for registry in sorted(papers_dir.glob("*/figures.yaml")):
        paper = registry.parent.name
        try:
            content = yaml.safe_load(registry.read_text()) or {}
        except yaml.YAMLError as exc:
            raise FigureError(f"{registry}: not valid YAML: {exc}") from exc
        entries = content.get("figures") or {}
        if not isinstance(entries, dict):
            raise FigureError(f"{registry}: 'figures' must map figure ids to entries")
        for fig_id, entry in entries.items():
            if not isinstance(entry, dict) or "notebook" not in entry:
                raise FigureError(f"{registry}: figure {fig_id!r} needs a 'notebook' entry")
            unknown = sorted(set(entry) - {"notebook", "parameters", "caption", "golden", "smoke", "report"})
            if unknown:
                raise FigureError(f"{registry}: figure {fig_id!r} has unknown keys {unknown}")
            params, smoke = entry.get("parameters") or {}, entry.get("smoke") or {}
            for key, value in (("parameters", params), ("smoke", smoke)):
                if not isinstance(value, dict):
                    raise FigureError(f"{registry}: figure {fig_id!r}: {key!r} must be a mapping")
            golden = entry.get("golden")
            if golden is not None and not (isinstance(golden, list) and all(isinstance(g, str) for g in golden)):
                raise FigureError(f"{registry}: figure {fig_id!r}: 'golden' must be a list of variable names")
            notebook = root / entry["notebook"]
            figures.append(
                Figure(
                    paper,
                    str(fig_id),
                    notebook,
                    registry.parent,
                    params,
                    entry.get("caption", ""),
                    None if golden is None else tuple(golden),
                    smoke,
                    _report_entries(registry, fig_id, entry.get("report") or {}),
                )
            )
    return figures


def _targets(target) -> dict[str, str]:
    """A report target by the coordinates it applies to: ``">= 0.8"`` applies to all (``""``), a mapping
    ``{"chunk_steps=25": ">= 0.95"}`` to the values at those coordinates."""
    if target is None:
        return {}
    return {str(where): str(t) for where, t in target.items()} if isinstance(target, dict) else {"": str(target)}


def _report_entries(registry: Path, fig_id, report) -> dict[str, dict]:
    """A figure's ``report`` mapping, each entry as ``{what, target, format}`` (a bare string is ``what``)."""
    if not isinstance(report, dict):
        raise FigureError(f"{registry}: figure {fig_id!r}: 'report' must map data variables to descriptions")
    entries = {}
    for variable, spec in report.items():
        spec = {"what": spec} if isinstance(spec, str) else spec
        valid = (
            isinstance(spec, dict)
            and set(spec) <= {"what", "target", "format"}
            and isinstance(spec.get("what", ""), str)
            and all(_valid_target(str(t)) for t in _targets(spec.get("target")).values())
        )
        if not valid:
            raise FigureError(
                f"{registry}: figure {fig_id!r}: report entry {variable!r} must be a description or a mapping "
                f"with 'what', 'target' (e.g. '>= 0.8', 'between 0.93 and 0.97', or by coordinates: "
                f"{{'chunk_steps=25': '>= 0.95'}}) "
                f"and 'format' (e.g. '.2f')"
            )
        entries[str(variable)] = {"what": "", "format": ".3g"} | spec | {"target": _targets(spec.get("target"))}
    return entries


def select(figures: list[Figure], paper: str | None = None, figure: str | None = None) -> list[Figure]:
    """Figures of one paper and/or one figure id (``id`` or ``paper/id``); an unknown name lists what exists."""
    chosen = figures
    if paper is not None:
        chosen = [f for f in chosen if f.paper == paper]
        if not chosen:
            raise FigureError(f"unknown paper {paper!r}; papers are {sorted({f.paper for f in figures})}")
    if figure is not None:
        chosen = [f for f in chosen if figure in (f.id, f.key)]
        if not chosen:
            raise FigureError(f"unknown figure {figure!r}; figures are {[f.key for f in figures]}")
    return chosen


def resolve_parameters(fig: Figure, overrides: dict | None = None, *, smoke: bool = False) -> dict:
    """The parameters a build passes: the registry's (its ``smoke`` ones when ``smoke``), then ``overrides``, checked.

    An unknown name or a value of the wrong type raises ``FigureError`` listing the declared parameters.
    """
    declared = notebooks.declared_parameters(fig.notebook)
    chosen = {**(fig.smoke if smoke else fig.parameters), **(overrides or {})}
    listing = "\n".join(f"  {p.describe()}" for p in declared.values())
    for name, value in chosen.items():
        if name in RUNNER_PARAMETERS:
            raise FigureError(f"{fig.key}: {name!r} is set by the runner, not by the registry or -p")
        if name not in declared:
            raise FigureError(f"{fig.key}: unknown parameter {name!r}; {fig.notebook.name} declares:\n{listing}")
        if not declared[name].accepts(value):
            raise FigureError(
                f"{fig.key}: parameter {name!r} takes a {declared[name].type.__name__}, "
                f"got {value!r} ({type(value).__name__}); {fig.notebook.name} declares:\n{listing}"
            )
    return chosen


def check(figures: list[Figure]) -> list[str]:
    """Problems of the registry: missing notebooks, runner parameters not declared, bad parameters."""
    problems = []
    for fig in figures:
        try:
            declared = notebooks.declared_parameters(fig.notebook)
            missing = [name for name in RUNNER_PARAMETERS if name not in declared]
            if missing:
                problems.append(f"{fig.key}: {fig.notebook.name} does not declare {missing}")
            resolve_parameters(fig)
            resolve_parameters(fig, smoke=True)
        except (FigureError, ValueError, FileNotFoundError) as exc:
            problems.append(str(exc) if str(exc).startswith(fig.key) else f"{fig.key}: {exc}")
    return problems


def outputs(fig: Figure, output_root: Path | None = None, *, scratch: bool = False) -> dict[str, Path]:
    """Where a figure's files go: under ``output_root/<paper>/``, else the paper's folder, or its ``scratch/``
    for a build that does not use the registry's parameters."""
    base = Path(output_root) / fig.paper if output_root else fig.folder / "scratch" if scratch else fig.folder
    return {
        "png": base / "figures" / f"{fig.id}.png",
        "pdf": base / "figures" / f"{fig.id}.pdf",
        "data": base / "data" / f"{fig.id}.nc",
        "executed": base / "executed" / f"{fig.id}.ipynb",
        "hash": base / "executed" / f"{fig.id}.sha256",
    }


def build_hash(fig: Figure, parameters: dict) -> str:
    """SHA-256 of what a figure depends on: notebook source, parameters and every kit source file."""
    digest = hashlib.sha256()
    digest.update(notebooks.source_hash(fig.notebook).encode())
    digest.update(json.dumps(parameters, sort_keys=True, default=str).encode())
    for source in paths.kit_sources():
        digest.update(str(source.relative_to(paths.package())).encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Job:
    """One figure to build: its parameters and where its files go."""

    figure: Figure
    parameters: dict
    files: dict[str, Path]
    scratch: bool  # not the registry's parameters: the files go to a scratch or given folder, not the paper's


def plan(
    figures: list[Figure], *, overrides: dict | None = None, smoke: bool = False, output_root: Path | None = None
) -> list[Job]:
    """What :func:`build` would run, checked: parameters resolved, output files chosen, nothing executed."""
    scratch = bool(overrides) or smoke
    return [
        Job(fig, resolve_parameters(fig, overrides, smoke=smoke), outputs(fig, output_root, scratch=scratch), scratch)
        for fig in figures
    ]


def build(
    figures: list[Figure],
    *,
    overrides: dict | None = None,
    force: bool = False,
    smoke: bool = False,
    output_root: Path | None = None,
    progress: bool = True,
) -> list[Path]:
    """Build ``figures``; returns the data files written or kept.

    With ``overrides`` or ``smoke`` the files go under ``papers/<paper>/scratch/`` (or ``output_root``), never
    over the paper's own. A figure whose notebook, parameters and kit sources are unchanged since its last
    build is skipped unless ``force``. Every failure is collected; at the end ``FigureError`` lists each with
    its id, failing cell and executed notebook.
    """
    return run(plan(figures, overrides=overrides, smoke=smoke, output_root=output_root), force=force, progress=progress)


def run(jobs: list[Job], *, force: bool = False, progress: bool = True) -> list[Path]:
    """Run the planned ``jobs`` (:func:`plan`) as :func:`build` does; returns the data files written or kept."""
    from tqdm.auto import tqdm

    other = kernel_python()
    if other:
        raise FigureError(
            f"the {KERNEL!r} kernel starts {other}, not this environment's {sys.executable}; "
            f"remove the stale kernelspec (jupyter kernelspec remove {KERNEL}) or run from this environment"
        )
    written, failures = [], []
    bar = tqdm(jobs, desc="figures", unit="figure", disable=not progress)
    for job in bar:
        fig, params, files = job.figure, job.parameters, job.files
        bar.set_postfix_str(fig.key)
        digest = build_hash(fig, params)
        if not force and _up_to_date(files, digest):
            log.info("%s is up to date", fig.key)
            written.append(files["data"])
            continue
        failure = _run(fig, params, files)
        if failure:
            failures.append(failure)
            continue
        files["hash"].write_text(digest + "\n")
        written.append(files["data"])
    if failures:
        raise FigureError(f"{len(failures)} of {len(jobs)} figure(s) failed:\n" + "\n".join(map(str, failures)))
    return written


def _up_to_date(files: dict[str, Path], digest: str) -> bool:
    if not all(path.exists() for path in files.values()):
        return False
    return files["hash"].read_text().strip() == digest


def _run(fig: Figure, params: dict, files: dict[str, Path]) -> Failure | None:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    for path in files.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
    injected = {**params, "figure_id": fig.id, "output_dir": str(files["data"].parents[1])}
    started = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(fig.notebook),
            str(files["executed"]),
            parameters=injected,
            kernel_name=KERNEL,
            cwd=str(fig.notebook.parent),
            progress_bar=False,
            extra_arguments=KERNEL_QUIET,
        )
    except PapermillExecutionError as exc:
        first_line = exc.source.strip().splitlines()[0] if exc.source.strip() else ""
        reason = f"cell {exc.cell_index} ({first_line!r}) raised {exc.ename}: {exc.evalue}"
        return Failure(fig.key, reason, files["executed"])
    except Exception as exc:  # a kernel that died or never started is a failure of this figure
        return Failure(fig.key, f"{type(exc).__name__}: {exc}", files["executed"])
    missing = [str(files[k]) for k in ("png", "pdf", "data") if not files[k].exists()]
    if missing:
        return Failure(fig.key, f"the notebook ran but did not write {missing}", files["executed"])
    _stamp(fig, params, files, seconds=time.perf_counter() - started)
    return None


def effective_parameters(fig: Figure, params: dict | None = None) -> dict:
    """Every parameter a build of ``fig`` runs with: the notebook's defaults, then ``params`` (default: the
    registry's)."""
    declared = notebooks.declared_parameters(fig.notebook)
    chosen = fig.parameters if params is None else params
    return {name: p.default for name, p in declared.items() if name not in RUNNER_PARAMETERS} | chosen


def _stamp(fig: Figure, params: dict, files: dict[str, Path], seconds: float) -> None:
    """Record what was run, and how long it took, in the data's attributes and the executed notebook's
    metadata."""
    effective = effective_parameters(fig, params)
    # Host, GPU, versions and git state were written by the kernel that made the data (kit.io).
    stamp = {
        "provenance_parameters": json.dumps(effective, sort_keys=True, default=str),
        "provenance_build_seconds": round(seconds, 1),
    }
    if isinstance(effective.get("seed"), int):
        stamp["provenance_seed"] = effective["seed"]
    stamp["provenance_figure"] = fig.key
    stamp["provenance_notebook"] = (
        str(fig.notebook.relative_to(paths.root())) if fig.notebook.is_relative_to(paths.root()) else str(fig.notebook)
    )
    stamp["provenance_notebook_sha256"] = notebooks.source_hash(fig.notebook)
    data = io.load_dataset(files["data"])
    data.attrs.update(stamp)
    io.save_dataset(data, files["data"])
    executed = notebooks.read(files["executed"])
    recorded = {key: value for key, value in data.attrs.items() if key.startswith("provenance_")}
    executed.metadata["kit"] = {"provenance": {key: _plain(value) for key, value in recorded.items()}}
    nbformat.write(executed, files["executed"])


def _plain(value):
    """A JSON-friendly copy of a netCDF attribute (numpy scalars become Python numbers)."""
    return value.item() if isinstance(value, np.generic) else value


def kernel_python() -> str | None:
    """The interpreter the ``python3`` kernel would start, or None when it is this process's own."""
    from jupyter_client.kernelspec import KernelSpecManager

    argv = KernelSpecManager().get_kernel_spec(KERNEL).argv
    if argv[0] in ("python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}", sys.executable):
        return None
    return argv[0]
