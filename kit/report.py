"""Measured results rendered from figure data into the papers' READMEs (``kit figures report``).

A figure's ``report`` entries in ``figures.yaml`` name the data variables that carry its claims. The report
reads them from the paper-scale data (``papers/<paper>/data/<id>.nc``) into ``papers/<paper>/results.json``
with the provenance of each figure (commit, date, host, build time), then renders that file into the
README between two markers. Nothing between the markers is typed by hand; a figure whose data is absent
keeps its last recorded results.
"""

from __future__ import annotations

import json
import operator
from pathlib import Path

import numpy as np

from kit import io
from kit.figures import TARGET, Figure, FigureError, effective_parameters, outputs

BEGIN = "<!-- results: begin (written by `kit figures report` from the figure data; do not edit) -->"
END = "<!-- results: end -->"
MAX_ROWS = 24  # a variable with more values is summarised by its range
COMPARE = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
    "within": lambda value, bound: abs(value) <= bound,
    "between": lambda value, low, high: low <= value <= high,
}


def summarise(fig: Figure, data) -> dict:
    """The reported variables of one figure's Dataset, as plain JSON: values by coordinates, and provenance."""
    attrs = data.attrs
    summary = {
        "commit": str(attrs.get("provenance_git_commit", "unknown")),
        "dirty": bool(attrs.get("provenance_git_dirty", True)),
        "created": str(attrs.get("provenance_created", "unknown")),
        "host_cpu": str(attrs.get("provenance_host_cpu", "unknown")),
        "host_gpu": str(attrs.get("provenance_host_gpu", "unknown")),
        "build_seconds": _number(attrs.get("provenance_build_seconds")),
        "variables": {},
    }
    if "recorded" in attrs and "device" in attrs:  # drawn from a run recorded elsewhere (e.g. on a GPU)
        summary["recorded"] = f"{attrs['device']}, {str(attrs['recorded'])[:10]}"
    for name in fig.report:
        if name not in data.data_vars:
            raise FigureError(
                f"{fig.key}: reported variable {name!r} is not in its data; it has {sorted(data.data_vars)}"
            )
        variable, rows = data[name], []
        bounds = [data[f"{name}_{b}"] for b in ("low", "high") if f"{name}_{b}" in data.data_vars]
        for index in np.ndindex(variable.shape):
            row = {"where": _where(variable, index), "value": _number(variable.values[index])}
            if len(bounds) == 2:  # an interval (over seeds or repeats) stored beside the value
                row["low"], row["high"] = (_number(b.values[index]) for b in bounds)
            rows.append(row)
        summary["variables"][name] = rows
    return summary


def collect(figures: list[Figure], papers_dir: Path, previous: dict) -> dict:
    """Results of every reporting figure of one paper: from its paper-scale data where built, else ``previous``.

    Data built with other parameters than the registry's raises ``FigureError`` naming the figure.
    """
    results = {}
    for fig in figures:
        if not fig.report:
            continue
        path = outputs(fig, papers_dir)["data"]
        if not path.exists():
            if fig.id in previous:
                results[fig.id] = previous[fig.id]
            continue
        data = io.load_dataset(path)
        recorded = json.loads(data.attrs.get("provenance_parameters", "{}"))
        expected = json.loads(json.dumps(effective_parameters(fig), default=str))
        if recorded != expected:
            changed = sorted(k for k in expected.keys() | recorded.keys() if recorded.get(k) != expected.get(k))
            raise FigureError(
                f"{fig.key}: {path} was built with other parameters than the registry's ({changed}); "
                f"rebuild it with `kit figures build --figure {fig.key}`"
            )
        results[fig.id] = summarise(fig, data)
    return results


def render(figures: list[Figure], results: dict) -> str:
    """The README section (markers included) for one paper's results: per figure its provenance, a table of
    its reported values with their targets, and what each variable is."""
    lines = [BEGIN, ""]
    for fig in figures:
        if fig.id not in results:
            continue
        found = results[fig.id]
        lines += [
            f"**`{fig.id}`** ({_provenance(found)})",
            "",
            "| variable | where | value | target |",
            "|---|---|---|---|",
        ]
        specs = {name: spec for name, spec in fig.report.items() if name in found["variables"]}  # registry order
        for name in specs:
            for i, row in enumerate(_shown(found["variables"][name])):
                value, target = _format(row, specs[name]["format"]), _verdict(specs[name]["target"], row)
                lines.append(f"| {f'`{name}`' if i == 0 else ''} | {row['where']} | {value} | {target} |")
        lines += ["", *(f"- `{name}`: {spec['what']}" for name, spec in specs.items() if spec["what"]), ""]
    missing = [fig.id for fig in figures if fig.report and fig.id not in results]
    if missing:
        lines += [f"Not built yet: {', '.join(f'`{m}`' for m in missing)}.", ""]
    return "\n".join([*lines, END])


def update_readme(readme: Path, section: str) -> bool:
    """Replace the README's results section with ``section``; True when the file changed."""
    text = readme.read_text()
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        raise FigureError(f"{readme}: needs exactly one results section, from {BEGIN!r} to {END!r}")
    start, stop = text.index(BEGIN), text.index(END) + len(END)
    updated = text[:start] + section + text[stop:]
    if updated != text:
        readme.write_text(updated)
    return updated != text


def section(readme: Path) -> str:
    """The results section of a README as it is now (markers included)."""
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        raise FigureError(f"{readme}: has no results section ({BEGIN!r} ... {END!r})")
    return text[text.index(BEGIN) : text.index(END) + len(END)]


def report(figures: list[Figure], papers_dir: Path) -> list[Path]:
    """Refresh ``results.json`` and the README's results section of each paper of ``figures``; returns the
    files that changed."""
    changed = []
    for paper in sorted({fig.paper for fig in figures}):
        chosen = [fig for fig in figures if fig.paper == paper]
        store = papers_dir / paper / "results.json"
        previous = json.loads(store.read_text()) if store.exists() else {}
        results = collect(chosen, papers_dir, previous)
        text = json.dumps(results, indent=1, sort_keys=True) + "\n"
        if not store.exists() or store.read_text() != text:
            store.write_text(text)
            changed.append(store)
        if update_readme(papers_dir / paper / "README.md", render(chosen, results)):
            changed.append(papers_dir / paper / "README.md")
    return changed


def _where(variable, index: tuple) -> str:
    """``grid=32, workers=1`` for one element of a variable (its coordinates' values, else positions)."""
    parts = []
    for dim, i in zip(variable.dims, index, strict=True):
        value = variable[dim].values[i] if dim in variable.coords else i
        parts.append(f"{dim}={value.item() if isinstance(value, np.generic) else value}")
    return ", ".join(parts)


def _number(value):
    """A JSON number (None for NaN or absent) or string."""
    if value is None:
        return None
    value = value.item() if isinstance(value, np.generic | np.ndarray) else value
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _shown(rows: list[dict]) -> list[dict]:
    """The rows of a variable, or its range when it has too many to list."""
    if len(rows) <= MAX_ROWS:
        return rows
    values = [row["value"] for row in rows if isinstance(row["value"], int | float)]
    if not values:
        return [{"where": f"all {len(rows)} values", "value": None}]
    return [{"where": f"all {len(rows)} values", "value": None, "min": min(values), "max": max(values)}]


def _format(row: dict, spec: str) -> str:
    """``0.93``, ``0.93 [0.78, 1.09]`` with an interval, ``0.12 to 0.57`` for a range."""
    if "min" in row:
        return f"{_one(row['min'], spec)} to {_one(row['max'], spec)}"
    text = _one(row["value"], spec)
    return f"{text} [{_one(row['low'], spec)}, {_one(row['high'], spec)}]" if "low" in row else text


def _one(value, spec: str) -> str:
    if value is None:
        return "n/a"
    return f"{value:{spec}}" if isinstance(value, int | float) and not isinstance(value, bool) else str(value)


def _verdict(targets: dict[str, str], row: dict) -> str:
    """``>= 0.8 met`` or ``>= 0.8 missed`` for the value (``partly met`` for a range that straddles it); empty
    when no target applies to the row's coordinates."""
    where = set(row["where"].split(", "))
    applies = [t for at, t in targets.items() if not at or set(at.replace(" ", "").split(",")) <= where]
    if not applies:
        return ""
    target = applies[0]
    match = TARGET.match(target)
    compare, bounds = COMPARE[match[1] or "between"], [float(b) for b in match.groups()[1:] if b is not None]
    values = [row["min"], row["max"]] if "min" in row else [row["value"]]
    if any(v is None for v in values):
        return f"{target} n/a"
    if len(bounds) == 2 and len(values) == 2 and values[0] < bounds[0] and values[1] > bounds[1]:
        return f"{target} partly met"  # a range over the whole band: some of its values are in it
    met = [compare(v, *bounds) for v in values]
    return f"{target} " + ("met" if all(met) else "missed" if not any(met) else "partly met")


def _provenance(found: dict) -> str:
    commit = found["commit"][:7] + (" with uncommitted changes" if found["dirty"] else "")
    built = f", built in {_duration(found['build_seconds'])}" if found.get("build_seconds") else ""
    gpu = "" if found["host_gpu"] in ("none", "unknown") else f", {found['host_gpu']}"
    recorded = f"; values from the run recorded on {found['recorded']}" if found.get("recorded") else ""
    return f"commit {commit}, {found['created'][:10]}, {found['host_cpu']}{gpu}{built}{recorded}"


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"
