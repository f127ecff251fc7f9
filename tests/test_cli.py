"""The ``kit`` command, run as a user would."""

import os
import subprocess
import sys
import textwrap

from conftest import write_notebook

from kit import figures
from kit.cli import _parse_value


def kit(*args, root=None):
    env = {**os.environ, **({"KIT_ROOT": str(root)} if root else {})}
    return subprocess.run([sys.executable, "-m", "kit.cli", *args], capture_output=True, text=True, env=env)


def test_list_prints_one_figure_a_line_starting_with_paper_and_id():
    result = kit("figures", "list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == [f.key for f in figures.load_registry()]
    assert any(line.startswith("parameter-space/heat-snapshots\t") for line in lines)


def test_check_passes_on_the_registry():
    result = kit("figures", "check")
    assert result.returncode == 0, result.stderr
    assert ", 0 problem(s)" in result.stdout


def test_unknown_figure_exits_non_zero_naming_it():
    result = kit("figures", "build", "--figure", "no-such-figure")
    assert result.returncode == 1
    assert "unknown figure 'no-such-figure'; figures are [" in result.stderr
    assert "'parameter-space/heat-snapshots'" in result.stderr


def test_unknown_and_mistyped_parameters_exit_non_zero():
    result = kit("figures", "build", "--figure", "heat-snapshots", "-p", "grid", "3")
    assert result.returncode == 1
    assert "unknown parameter 'grid'" in result.stderr and "n: int = 32  # interior grid nodes" in result.stderr
    result = kit("figures", "build", "--figure", "heat-snapshots", "-p", "n", "big")
    assert result.returncode == 1
    assert "parameter 'n' takes a int, got 'big' (str)" in result.stderr


def test_build_with_parameter_and_failure_exit_status(tmp_path):
    params = 'n = 2  # points\nfigure_id = ""  # id\noutput_dir = ""  # folder'
    body = textwrap.dedent(
        """\
        import xarray as xr
        from matplotlib.figure import Figure
        import kit.plots
        assert n < 10, f"n = {n} is too large"
        kit.plots.save(Figure(), xr.Dataset({"n": n}), figure_id, output_dir)"""
    )
    write_notebook(tmp_path / "notebooks" / "nb.ipynb", params, body)
    (tmp_path / "papers" / "p").mkdir(parents=True)
    (tmp_path / "papers" / "p" / "figures.yaml").write_text("figures:\n  f: {notebook: notebooks/nb.ipynb}\n")
    planned = kit("figures", "build", "-p", "n", "3", "--dry-run", root=tmp_path)
    assert planned.returncode == 0, planned.stderr
    assert f'p/f: {{"n": 3}} -> {tmp_path / "papers" / "p" / "scratch"}' in planned.stderr
    assert not (tmp_path / "papers" / "p" / "scratch").exists()
    ok = kit("figures", "build", "-p", "n", "3", root=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "(the paper's own figures are untouched)" in ok.stderr
    assert (tmp_path / "papers" / "p" / "scratch" / "data" / "f.nc").exists()
    assert not (tmp_path / "papers" / "p" / "data").exists()
    assert kit("figures", "build", root=tmp_path).returncode == 0
    assert (tmp_path / "papers" / "p" / "data" / "f.nc").exists()
    failed = kit("figures", "build", "-p", "n", "30", root=tmp_path)
    assert failed.returncode == 1
    assert "p/f: cell" in failed.stderr and "AssertionError: n = 30 is too large" in failed.stderr


def test_parameter_values_parse_as_yaml_scalars():
    assert _parse_value("3") == 3
    assert _parse_value("0.5") == 0.5
    assert _parse_value("1e-3") == 0.001
    assert _parse_value("true") is True
    assert _parse_value("[1, 2]") == [1, 2]
    assert _parse_value("hello") == "hello"


def test_doctor_reports_a_working_environment():
    result = kit("doctor")
    assert result.returncode == 0, result.stdout
    assert "kernel 'python3' runs" in result.stdout
    assert "torch device:" in result.stdout
    assert "ok      JupyterLab widgets extension in" in result.stdout
    assert "running on a laptop or server (not Binder)" in result.stdout


def test_doctor_lists_what_is_missing_with_its_fix(tmp_path):
    # A stale kernelspec (required: fails), no Chromium on PATH (optional: listed, does not fail), on Binder.
    spec = tmp_path / "jupyter" / "kernels" / "python3" / "kernel.json"
    spec.parent.mkdir(parents=True)
    spec.write_text('{"argv": ["/opt/old/bin/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"], '
                    '"display_name": "old", "language": "python"}')  # fmt: skip
    env = {**os.environ, "JUPYTER_PATH": str(tmp_path / "jupyter"), "PATH": str(tmp_path), "BINDER_REQUEST": "1"}
    result = subprocess.run([sys.executable, "-m", "kit.cli", "doctor"], capture_output=True, text=True, env=env)
    assert result.returncode == 1, result.stdout
    assert "ok      running on Binder" in result.stdout
    assert "MISSING kernel 'python3' starts /opt/old/bin/python" in result.stdout
    assert "fix: remove the stale kernelspec: jupyter kernelspec remove python3" in result.stdout
    assert "missing chromium for the browser test: not found" in result.stdout
    assert "fix: apt-get install -y chromium (Debian/Ubuntu; another system: its chromium package) (optional)" in (
        result.stdout
    )
