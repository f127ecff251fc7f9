"""pyproject.toml, requirements.in, requirements.lock, environment.yml and binder/ agree."""

import re
import tomllib

import pytest
import yaml

from kit import paths

ROOT = paths.root()
CONDA_NAMES = {"torch": "pytorch-cpu"}  # PyPI name -> conda-forge name where they differ
#: Test tools that drive a browser and render the Binder recipe: pip only (make test-browser, tests/test_binder.py),
#: not in the conda environments, which a Binder image or a conda user explores with.
PIP_ONLY = {"playwright", "jupyter-repo2docker"}
#: Packages conda-forge does not carry: the conda environments install them with pip, at the lock's version.
PIP_SECTION = {"wfcommons"}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_lines(path):
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def direct():
    return {norm(re.split(r"[=<>\[ ]", line)[0]) for line in requirement_lines(ROOT / "requirements.in")}


def lock():
    pins = {}
    for line in requirement_lines(ROOT / "requirements.lock"):
        assert "==" in line, f"requirements.lock: {line!r} is not pinned to an exact version"
        name, version = line.split("==")
        pins[norm(name)] = version
    return pins


def conda(path):
    env = yaml.safe_load(path.read_text())
    specs = [dep for dep in env["dependencies"] if isinstance(dep, str) and dep != "pip"]
    pip_sections = [dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict)]
    return env, dict(spec.split("=", 1) for spec in specs), pip_sections


def test_pyproject_lists_the_direct_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {norm(re.split(r"[=<>\[ ;]", d)[0]) for d in project["dependencies"]}
    declared |= {norm(re.split(r"[=<>\[ ;]", d)[0]) for d in project["optional-dependencies"]["test"]}
    assert declared == direct()
    assert project["requires-python"] == ">=3.11"


def test_lock_pins_every_direct_dependency_and_cpu_torch():
    pins = lock()
    assert direct() <= set(pins), f"not in requirements.lock: {sorted(direct() - set(pins))}"
    assert pins["torch"] == "2.13.0"
    assert "kit" not in pins


@pytest.mark.parametrize("where", ["environment.yml", "binder/environment.yml"])
def test_conda_environments_match_the_lock(where):
    env, specs, pip_sections = conda(ROOT / where)
    assert env["channels"] == ["conda-forge"]
    assert specs.pop("python") == "3.11"
    pins = lock()
    expected = {CONDA_NAMES.get(name, name): pins[name] for name in direct() - PIP_ONLY - PIP_SECTION}
    assert specs == expected
    pip_pins = {norm(line.split("==")[0]): line.split("==")[1].split()[0] for s in pip_sections for line in s}
    assert pip_pins == {name: pins[name] for name in PIP_SECTION}
    assert not any("-e" in line for section in pip_sections for line in section), f"{where}: no local -e installs"


def test_binder_installs_the_kit_in_post_build():
    post_build = (ROOT / "binder" / "postBuild").read_text().splitlines()
    assert post_build[0].startswith("#!")
    commands = [line for line in post_build[1:] if line.strip() and not line.startswith("#")]
    assert commands[0] == "set -euo pipefail"
    assert "pip install --no-deps -e ." in commands
    assert (ROOT / "binder" / "postBuild").stat().st_mode & 0o111, "binder/postBuild must be executable"
