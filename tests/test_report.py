"""Measured results rendered from figure data into the papers' READMEs (``kit figures report``)."""

import json
import textwrap

import numpy as np
import pytest
import xarray as xr
from conftest import write_notebook

from kit import figures, paths, report

REGISTRY = figures.load_registry()


def figure(report_entries: dict, paper="demo", fig_id="fig") -> figures.Figure:
    path = paths.root() / "papers" / paper
    entries = figures._report_entries(path / "figures.yaml", fig_id, report_entries)
    return figures.Figure(paper, fig_id, path / "nb.ipynb", path, report=entries)


def data() -> xr.Dataset:
    ratio = xr.DataArray([0.5, 0.9, 1.2], dims="chunk_steps", coords={"chunk_steps": [1, 5, 25]})
    attrs = {
        "provenance_git_commit": "0123456789abcdef",
        "provenance_git_dirty": 0,
        "provenance_created": "2026-12-02T10:00:00+00:00",
        "provenance_host_cpu": "AMD EPYC (2 cores)",
        "provenance_host_gpu": "none",
        "provenance_build_seconds": 75.0,
    }
    return xr.Dataset(
        {
            "ratio": ratio,
            "ratio_low": ratio - 0.1,
            "ratio_high": ratio + 0.1,
            "error": ("run", [-0.05, 0.2]),
            "many": ("cell", np.arange(30.0)),
            "unknown": ("cell", np.full(30, np.nan)),
        },
        attrs=attrs,
    )


def test_render_lists_values_intervals_targets_and_provenance():
    fig = figure(
        {
            "ratio": {
                "what": "kit / plain",
                "format": ".2f",
                "target": {"chunk_steps=25": ">= 0.95", "chunk_steps=1": ">= 0.8"},
            },
            "error": {"what": "relative error", "target": "within 0.1", "format": "+.0%"},
            "many": {"target": "<= 10", "format": ".0f"},
            "unknown": {"target": "<= 10"},
        }
    )
    text = report.render([fig], {"fig": report.summarise(fig, data())})
    assert text.startswith(report.BEGIN) and text.endswith(report.END)
    assert "**`fig`** (commit 0123456, 2026-12-02, AMD EPYC (2 cores), built in 1 min 15 s)" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert rows == [
        "| `ratio` | chunk_steps=1 | 0.50 [0.40, 0.60] | >= 0.8 missed |",
        "|  | chunk_steps=5 | 0.90 [0.80, 1.00] |  |",
        "|  | chunk_steps=25 | 1.20 [1.10, 1.30] | >= 0.95 met |",
        "| `error` | run=0 | -5% | within 0.1 met |",
        "|  | run=1 | +20% | within 0.1 missed |",
        "| `many` | all 30 values | 0 to 29 | <= 10 partly met |",
        "| `unknown` | all 30 values | n/a | <= 10 n/a |",
    ]
    assert "- `ratio`: kit / plain" in text and "- `error`: relative error" in text
    recorded = data().assign_attrs(device="NVIDIA H100 80GB HBM3", recorded="2026-11-27T08:28:05+00:00")
    text = report.render([fig], {"fig": report.summarise(fig, recorded)})
    assert "built in 1 min 15 s; values from the run recorded on NVIDIA H100 80GB HBM3, 2026-11-27)" in text


def test_unknown_variable_and_bad_entries_are_named():
    with pytest.raises(figures.FigureError, match=r"demo/fig: reported variable 'nope' is not in its data"):
        report.summarise(figure({"nope": "absent"}), data())
    with pytest.raises(figures.FigureError, match=r"figure 'fig': report entry 'ratio' must be"):
        figure({"ratio": {"target": "at least 0.8"}})
    with pytest.raises(figures.FigureError, match=r"figure 'fig': report entry 'ratio' must be"):
        figure({"ratio": {"colour": "red"}})
    with pytest.raises(figures.FigureError, match=r"figure 'fig': report entry 'ratio' must be"):
        figure({"ratio": {"target": "between 0.9"}})


def test_between_targets_include_both_bounds():
    target = {"": "between 0.93 and 0.97"}
    verdicts = [report._verdict(target, {"where": "k=0", "value": v}) for v in (0.93, 0.97, 0.929, 0.971)]
    assert verdicts == ["between 0.93 and 0.97 " + v for v in ("met", "met", "missed", "missed")]
    assert report._verdict(target, {"where": "all", "min": 0.92, "max": 0.95}) == "between 0.93 and 0.97 partly met"
    assert report._verdict(target, {"where": "all", "min": 0.92, "max": 0.98}) == "between 0.93 and 0.97 partly met"
    assert report._verdict(target, {"where": "all", "min": 0.98, "max": 0.99}) == "between 0.93 and 0.97 missed"
    figure({"ratio": {"target": {"k=0": "between 0.93 and 0.97"}}})  # accepted by the registry
    with pytest.raises(figures.FigureError, match=r"figure 'fig': report entry 'ratio' must be"):
        figure({"ratio": {"target": "between 0.97 and 0.93"}})


PARAMETERS = 'scale = 1.0  # factor\nfigure_id = ""  # id\noutput_dir = ""  # folder'
BODY = textwrap.dedent(
    """\
    import xarray as xr
    from matplotlib.figure import Figure
    import kit.plots
    kit.plots.save(Figure(), xr.Dataset({"ratio": ("k", [0.5 * scale, 2.0 * scale])}), figure_id, output_dir)"""
)


@pytest.fixture
def project(tmp_path):
    """papers/demo with a reporting figure and a README holding an empty results section."""
    write_notebook(tmp_path / "notebooks" / "nb.ipynb", PARAMETERS, BODY)
    paper = tmp_path / "papers" / "demo"
    paper.mkdir(parents=True)
    (paper / "figures.yaml").write_text(
        "figures:\n  fig:\n    notebook: notebooks/nb.ipynb\n    parameters: {scale: 2.0}\n"
        "    report:\n      ratio: {what: a ratio, target: '<= 1.5', format: .1f}\n"
    )
    (paper / "README.md").write_text(f"# Demo\n\n{report.BEGIN}\n{report.END}\n\nAfter.\n")
    return tmp_path


def test_report_renders_paper_scale_data_into_readme_and_ignores_scratch_builds(project):
    registry = figures.load_registry(project / "papers")
    papers, readme = project / "papers", project / "papers" / "demo" / "README.md"
    assert report.report(registry, papers) == [papers / "demo" / "results.json", readme]
    assert "Not built yet: `fig`." in readme.read_text()

    figures.build(registry, progress=False)
    report.report(registry, papers)
    text = readme.read_text()
    assert text.startswith("# Demo\n\n") and text.endswith("\n\nAfter.\n")
    assert "| `ratio` | k=0 | 1.0 | <= 1.5 met |" in text and "| k=1 | 4.0 | <= 1.5 missed |" in text
    stored = json.loads((papers / "demo" / "results.json").read_text())
    assert [row["value"] for row in stored["fig"]["variables"]["ratio"]] == [1.0, 4.0]
    assert report.section(readme) == report.render(registry, stored)

    # An override builds into scratch/: the paper's data and its report stay as they were.
    figures.build(registry, overrides={"scale": 10.0}, progress=False)
    assert (papers / "demo" / "scratch" / "data" / "fig.nc").exists()
    assert report.report(registry, papers) == []


def test_paper_data_built_with_other_parameters_is_refused(project):
    registry = figures.load_registry(project / "papers")
    figures.build(registry, overrides={"scale": 3.0}, output_root=project / "papers", progress=False)
    with pytest.raises(figures.FigureError, match=r"demo/fig: .* was built with other parameters .*\['scale'\]"):
        report.report(registry, project / "papers")


@pytest.mark.parametrize("paper", sorted({fig.paper for fig in REGISTRY}))
def test_paper_readme_results_are_the_rendered_ones(paper):
    """Nothing typed by hand: each README's results section is ``results.json`` rendered."""
    chosen = [fig for fig in REGISTRY if fig.paper == paper]
    folder = paths.papers() / paper
    stored = json.loads((folder / "results.json").read_text())
    assert set(stored) <= {fig.id for fig in chosen if fig.report}
    assert report.section(folder / "README.md") == report.render(chosen, stored), (
        f"papers/{paper}/README.md's results were edited by hand or are stale: run `kit figures report`"
    )
