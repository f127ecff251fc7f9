"""The figure registry and the papermill runner, on a small project made in a temporary folder."""

import json
import textwrap

import pytest
from conftest import write_notebook

from kit import figures, io, notebooks

PARAMETERS = textwrap.dedent(
    """\
    n = 5  # number of points
    scale = 1.0  # factor applied to the data
    label = "line"  # legend label
    fail = False  # raise in the second cell (to test failures)
    figure_id = "tiny"  # figure id (set by kit figures build)
    output_dir = ""  # paper folder to save into; empty: save nothing"""
)
BODY = textwrap.dedent(
    """\
    import numpy as np
    import xarray as xr
    from matplotlib.figure import Figure

    import kit.plots

    if fail:
        raise RuntimeError("boom in the body")
    data = xr.Dataset({"y": ("x", np.arange(n) * scale)})
    fig = Figure()
    fig.subplots().plot(data.y, label=label)
    kit.plots.save(fig, data, figure_id, output_dir)"""
)


@pytest.fixture
def project(tmp_path):
    """papers/demo/figures.yaml with two figures of notebooks/tiny.ipynb."""
    write_notebook(tmp_path / "notebooks" / "tiny.ipynb", PARAMETERS, BODY)
    (tmp_path / "papers" / "demo").mkdir(parents=True)
    (tmp_path / "papers" / "demo" / "figures.yaml").write_text(
        textwrap.dedent(
            """\
            figures:
              tiny:
                notebook: notebooks/tiny.ipynb
                caption: a line
                parameters: {n: 4, scale: 2}
              broken:
                notebook: notebooks/tiny.ipynb
                parameters: {fail: true}
            """
        )
    )
    return tmp_path


def registry(project):
    return figures.load_registry(project / "papers")


def test_registry_lists_figures_with_keys(project):
    figs = registry(project)
    assert [f.key for f in figs] == ["demo/tiny", "demo/broken"]
    assert figs[0].parameters == {"n": 4, "scale": 2}
    assert figs[0].notebook == project / "notebooks" / "tiny.ipynb"
    assert figures.select(figs, figure="demo/broken") == [figs[1]]
    assert figures.select(figs, paper="demo", figure="tiny") == [figs[0]]


def test_unknown_figure_and_paper_list_what_exists(project):
    figs = registry(project)
    with pytest.raises(figures.FigureError, match=r"unknown figure 'nope'; figures are \['demo/tiny', 'demo/broken'\]"):
        figures.select(figs, figure="nope")
    with pytest.raises(figures.FigureError, match=r"unknown paper 'other'; papers are \['demo'\]"):
        figures.select(figs, paper="other")


def test_unknown_parameter_lists_declared_ones_with_help(project):
    fig = registry(project)[0]
    with pytest.raises(figures.FigureError, match=r"demo/tiny: unknown parameter 'size'") as info:
        figures.resolve_parameters(fig, {"size": 3})
    assert "n: int = 5  # number of points" in str(info.value)
    assert "label: str = 'line'  # legend label" in str(info.value)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [("n", "five", "int"), ("n", 2.5, "int"), ("n", True, "int"), ("fail", 1, "bool"), ("label", 3, "str")],
)
def test_wrong_parameter_type_is_an_error(project, name, value, expected):
    fig = registry(project)[0]
    with pytest.raises(figures.FigureError, match=rf"demo/tiny: parameter '{name}' takes a {expected}, got"):
        figures.resolve_parameters(fig, {name: value})


def test_compatible_values_and_smoke_profile(project):
    fig = registry(project)[0]
    assert figures.resolve_parameters(fig, {"scale": 3}) == {"n": 4, "scale": 3}
    assert figures.resolve_parameters(fig, {"scale": 3}, smoke=True) == {"scale": 3}
    with pytest.raises(figures.FigureError, match="'output_dir' is set by the runner"):
        figures.resolve_parameters(fig, {"output_dir": "/tmp"})


def test_smoke_keeps_the_registry_smoke_parameters(project):
    (project / "papers" / "demo" / "figures.yaml").write_text(
        "figures:\n  tiny: {notebook: notebooks/tiny.ipynb, parameters: {n: 400, label: big}, smoke: {label: big}}\n"
    )
    fig = registry(project)[0]
    assert fig.smoke == {"label": "big"}
    assert figures.resolve_parameters(fig, smoke=True) == {"label": "big"}
    assert figures.resolve_parameters(fig, {"n": 2}, smoke=True) == {"label": "big", "n": 2}


def test_check_reports_a_bad_smoke_parameter(project):
    (project / "papers" / "demo" / "figures.yaml").write_text(
        "figures:\n  tiny: {notebook: notebooks/tiny.ipynb, smoke: {size: 1}}\n"
    )
    assert figures.check(registry(project))[0].startswith("demo/tiny: unknown parameter 'size'")


def test_check_reports_missing_notebook_and_bad_registry_parameters(project):
    (project / "papers" / "demo" / "figures.yaml").write_text(
        "figures:\n"
        "  gone: {notebook: notebooks/gone.ipynb}\n"
        "  typo: {notebook: notebooks/tiny.ipynb, parameters: {m: 1}}\n"
    )
    problems = figures.check(registry(project))
    assert len(problems) == 2
    assert "demo/gone: notebook" in problems[0]
    assert "gone.ipynb' does not exist" in problems[0]
    assert problems[1].startswith("demo/typo: unknown parameter 'm'")


def test_check_reports_notebook_without_runner_parameters(project):
    write_notebook(project / "notebooks" / "bare.ipynb", "n = 1  # a number", "print(n)")
    (project / "papers" / "demo" / "figures.yaml").write_text("figures:\n  bare: {notebook: notebooks/bare.ipynb}\n")
    assert figures.check(registry(project)) == ["demo/bare: bare.ipynb does not declare ['figure_id', 'output_dir']"]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("figures: [1, 2", "not valid YAML"),
        ("figures:\n  x: {parameters: {}}\n", "figure 'x' needs a 'notebook' entry"),
        ("figures:\n  x: {notebook: a.ipynb, colour: red}\n", r"figure 'x' has unknown keys \['colour'\]"),
        ("figures:\n  x: {notebook: a.ipynb, smoke: [1]}\n", r"figure 'x': 'smoke' must be a mapping"),
    ],
)
def test_bad_registry_files_are_named(project, content, match):
    (project / "papers" / "demo" / "figures.yaml").write_text(content)
    with pytest.raises(figures.FigureError, match=rf"figures.yaml: .*{match}"):
        registry(project)


def test_build_writes_figure_data_executed_notebook_with_provenance(project, tmp_path):
    fig = registry(project)[0]
    out = tmp_path / "out"
    (data_path,) = figures.build([fig], output_root=out, progress=False)
    files = figures.outputs(fig, out)
    assert data_path == files["data"] == out / "demo" / "data" / "tiny.nc"
    assert all(path.exists() for path in files.values())
    data = io.load_dataset(data_path)
    assert data.y.values.tolist() == [0.0, 2.0, 4.0, 6.0]
    assert json.loads(data.attrs["provenance_parameters"]) == {"fail": False, "label": "line", "n": 4, "scale": 2}
    assert data.attrs["provenance_figure"] == "demo/tiny"
    assert data.attrs["provenance_notebook_sha256"] == notebooks.source_hash(fig.notebook)
    executed = notebooks.read(files["executed"])
    assert executed.metadata["kit"]["provenance"]["provenance_figure"] == "demo/tiny"
    assert executed.metadata["papermill"]["parameters"]["figure_id"] == "tiny"

    # Unchanged notebook, parameters and kit sources: skipped. A new parameter value or --force: rebuilt.
    stamp = files["data"].stat().st_mtime_ns
    figures.build([fig], output_root=out, progress=False)
    assert files["data"].stat().st_mtime_ns == stamp
    figures.build([fig], output_root=out, overrides={"scale": 3}, progress=False)
    assert io.load_dataset(files["data"]).y.values.tolist() == [0.0, 3.0, 6.0, 9.0]
    stamp = files["data"].stat().st_mtime_ns
    figures.build([fig], output_root=out, overrides={"scale": 3}, force=True, progress=False)
    assert files["data"].stat().st_mtime_ns != stamp


def test_failure_names_figure_cell_and_executed_notebook_and_others_still_build(project, tmp_path):
    tiny, broken = registry(project)
    out = tmp_path / "out"
    with pytest.raises(figures.FigureError) as info:
        figures.build([broken, tiny], output_root=out, progress=False)
    message = str(info.value)
    assert "1 of 2 figure(s) failed" in message
    assert "demo/broken: cell" in message
    assert "RuntimeError: boom in the body" in message
    assert f"executed notebook: {out / 'demo' / 'executed' / 'broken.ipynb'}" in message
    assert (out / "demo" / "executed" / "broken.ipynb").exists()
    assert not (out / "demo" / "executed" / "broken.sha256").exists()
    assert (out / "demo" / "data" / "tiny.nc").exists()


def test_notebook_that_saves_nothing_is_a_failure(project, tmp_path):
    write_notebook(
        project / "notebooks" / "quiet.ipynb",
        'figure_id = ""  # figure id\noutput_dir = ""  # where to save',
        "x = 1",
    )
    (project / "papers" / "demo" / "figures.yaml").write_text("figures:\n  quiet: {notebook: notebooks/quiet.ipynb}\n")
    with pytest.raises(figures.FigureError, match="demo/quiet: the notebook ran but did not write"):
        figures.build(registry(project), output_root=tmp_path / "out", progress=False)


def test_missing_notebook_is_an_error_naming_it(project):
    (project / "papers" / "demo" / "figures.yaml").write_text("figures:\n  gone: {notebook: notebooks/gone.ipynb}\n")
    with pytest.raises(FileNotFoundError, match="notebook .*gone.ipynb' does not exist"):
        figures.build(registry(project), progress=False)
