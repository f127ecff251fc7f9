"""Every example of the READMEs runs: Python blocks in order (one session per README), `kit figures` commands
(builds as ``--dry-run``: they check their parameters and outputs without running), shell blocks parsed."""

import re
import shlex
import subprocess
import sys

import pytest

from kit import paths

ROOT = paths.root()
READMES = [ROOT / "README.md", *sorted((ROOT / "papers").glob("*/README.md"))]
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.S | re.M)


def blocks(readme, language: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(readme.read_text()) if lang == language]


def kit_commands() -> list[tuple[str, list[str]]]:
    """(README, argv) of each `kit figures` command in a bash block; reports rewrite READMEs: test_report runs them."""
    found = []
    for readme in READMES:
        for body in blocks(readme, "bash"):
            for line in body.splitlines():
                words = shlex.split(line, comments=True)
                if words and words[0].endswith("bin/kit") and words[1:2] == ["figures"] and "report" not in words:
                    found.append((readme.relative_to(ROOT).as_posix(), words[1:]))
    return found


@pytest.mark.parametrize("readme", READMES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_python_examples_run(readme, tmp_path):
    code = "\n".join(blocks(readme, "python"))
    if not code:
        pytest.skip("no Python example")
    # As typed into a notebook or `python -c` (a script file would be imported again by dask's worker processes).
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{readme}: an example failed:\n{result.stderr[-3000:]}"


@pytest.mark.parametrize(("readme", "argv"), kit_commands(), ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_kit_commands_run(readme, argv):
    if argv[1] == "build":
        argv = [*argv, "--dry-run"]
    result = subprocess.run([sys.executable, "-m", "kit.cli", *argv], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{readme}: kit {' '.join(argv)} failed:\n{result.stderr}"


@pytest.mark.parametrize("readme", READMES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_shell_examples_parse(readme):
    for body in blocks(readme, "bash"):
        result = subprocess.run(["bash", "-n"], input=body, capture_output=True, text=True)
        assert result.returncode == 0, f"{readme}: a shell example does not parse:\n{body}\n{result.stderr}"


def test_readme_commands_are_found():
    assert any(argv[:2] == ["figures", "build"] for _, argv in kit_commands())
