"""The Binder recipe: repo2docker renders the image's Dockerfile from binder/ without building it."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kit import paths

ROOT = paths.root()


@pytest.fixture(scope="module")
def dockerfile() -> str:
    """The Dockerfile repo2docker would build for this repository (``--no-build --debug``; no Docker needed)."""
    command = shutil.which("jupyter-repo2docker") or str(Path(sys.executable).with_name("jupyter-repo2docker"))
    if not Path(command).exists():
        pytest.skip("jupyter-repo2docker is not installed: pip install -r requirements.lock (it pins it)")
    result = subprocess.run(
        [command, "--no-build", "--debug", "--user-id", "1000", "--user-name", "jovyan", str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, f"repo2docker could not render the recipe from binder/:\n{result.stderr[-3000:]}"
    return result.stdout


def test_the_image_builds_the_conda_environment_of_binder_then_installs_the_kit(dockerfile):
    create = dockerfile.index('--file "binder/environment.yml"')
    post_build = dockerfile.index("RUN ./binder/postBuild")
    assert create < post_build, "the kit must be installed after its dependencies"
    assert re.search(r"COPY --chown=\S+ src/binder/environment.yml \$\{REPO_DIR\}/binder/environment.yml", dockerfile)
    # postBuild installs the kit itself (its dependencies come from the environment).
    commands = [line.strip() for line in (ROOT / "binder" / "postBuild").read_text().splitlines()]
    assert "pip install --no-deps -e ." in commands


def test_the_image_uses_python_311_and_the_badge_opens_jupyterlab_on_the_tour(dockerfile):
    assert re.search(r"^python=3\.11$|- python=3\.11", (ROOT / "binder" / "environment.yml").read_text(), re.M)
    assert "jupyterlab" in (ROOT / "binder" / "environment.yml").read_text()
    badge = re.search(r"\(https://mybinder\.org/v2/gh/([^)]+)\)", (ROOT / "README.md").read_text())
    assert badge, "README.md has no Binder badge"
    path = badge.group(1).split("?urlpath=lab/tree/", 1)
    assert len(path) == 2 and path[1] == "notebooks/start_here.ipynb", badge.group(1)
    assert (ROOT / path[1]).is_file()
