"""JupyterLab in a real browser: run online_training.ipynb, move a widget, press Start and Stop; run each tour
(start_here.ipynb) with its dashboards on.

JupyterLab serves a copy of a notebook (``interactive = True`` injected, smoke-sized defaults otherwise) on
127.0.0.1 at a free port behind a token; the Debian Chromium package, driven by Playwright, opens it. Run with
``make test-browser``; without Chromium or Playwright the test is skipped with how to install them.
"""

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import nbformat
import pytest

from kit import paths

pytestmark = pytest.mark.browser

ROOT = paths.root()
NOTEBOOK = "online_training.ipynb"
#: Guide notebooks (tests/test_notebooks.py TOURS): each runs with its dashboards on, every cell free of errors.
TOURS = ["start_here.ipynb"]
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: JupyterLab settings for a test: every cell in the DOM, no news or update checks.
SETTINGS = {
    "notebook-extension/tracker": {"windowingMode": "none"},
    "apputils-extension/notification": {"checkForUpdates": False, "fetchNews": "false"},
}


@pytest.fixture
def chromium() -> str:
    """The distribution's Chromium; checked before JupyterLab starts, so a machine without it skips at once."""
    path = shutil.which("chromium")
    if path is None:
        pytest.skip(
            "Chromium not found on PATH: install the distribution's package (Debian/Ubuntu: "
            "'apt-get install -y chromium'; .ci/run does it), then run 'make test-browser'"
        )
    return path


@pytest.fixture
def playwright():
    return pytest.importorskip("playwright.sync_api", reason="pip install playwright (requirements.lock pins it)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_settings(folder) -> None:
    for name, values in SETTINGS.items():
        path = folder / "@jupyterlab" / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def interactive_copy(folder, name: str = NOTEBOOK):
    """The notebook with ``interactive = True`` in a cell after its parameters cell, as papermill injects it."""
    nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    after = next(i for i, cell in enumerate(nb.cells) if "parameters" in cell.metadata.get("tags", [])) + 1
    nb.cells.insert(after, nbformat.v4.new_code_cell("interactive = True", metadata={"tags": ["injected-parameters"]}))
    nbformat.write(nb, folder / name)
    return folder / name


@pytest.fixture
def notebook_name() -> str:
    """The notebook JupyterLab serves; a test parametrized on ``notebook_name`` serves another."""
    return NOTEBOOK


@pytest.fixture
def lab(tmp_path, notebook_name):
    """(base URL, token, notebook path) of a JupyterLab serving a copy of the notebook; stopped afterwards,
    kernels and their workers included."""
    import psutil

    served = tmp_path / "served"
    served.mkdir()
    notebook = interactive_copy(served, notebook_name)
    write_settings(tmp_path / "settings")
    port, token = free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
    }
    log = (tmp_path / "lab.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={served}", f"--LabApp.user_settings_dir={tmp_path / 'settings'}",
            f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
            *(["--allow-root"] if os.geteuid() == 0 else []),  # CI runs as root
        ],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(server, base, token, tmp_path / "lab.log")
        yield base, token, notebook
    finally:
        started = psutil.Process(server.pid).children(recursive=True) if server.poll() is None else []
        stop_server(server, base, token)
        gone, alive = psutil.wait_procs(started, timeout=30)
        for process in alive:  # kernels or workers that outlived the server: ours, ended by id
            process.kill()
        log.close()
        assert not alive, f"JupyterLab left {[p.pid for p in alive]} running after shutdown; they were killed"


def wait_until_up(server, base: str, token: str, log) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"JupyterLab did not answer at {base} within 90 s:\n{log.read_text()[-3000:]}")


def stop_server(server, base: str, token: str) -> None:
    """Ask the server to shut down (it stops its kernels), then end it by its process group if it lingers."""
    if server.poll() is None:
        headers = {"Authorization": f"token {token}"}
        request = urllib.request.Request(f"{base}/api/shutdown", method="POST", headers=headers)
        with contextlib.suppress(OSError):  # it is going down: the connection may close before the answer
            urllib.request.urlopen(request, timeout=10).close()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)


def wait_for_kernel(base: str, token: str) -> None:
    """Until the notebook's kernel has started and is idle (the page shows 'Idle' before that)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{base}/api/sessions?token={token}", timeout=5) as answer:
            sessions = json.load(answer)
        if any(s["kernel"] and s["kernel"].get("execution_state") == "idle" for s in sessions):
            return
        time.sleep(0.3)
    raise TimeoutError(f"no idle kernel within 60 s; sessions: {sessions}")


def wait_for(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:g} s for {what}")
        time.sleep(0.2)


def code_cells(path) -> list:
    return [cell for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]


def saved_cells(path) -> list:
    """:func:`code_cells` once the file is whole: JupyterLab rewrites it in place while saving (empty or cut
    JSON for a moment), which reads as a cell not yet run."""
    try:
        return code_cells(path)
    except nbformat.reader.NotJSONError:
        return [nbformat.v4.new_code_cell()]


def button(page, label: str):
    return page.locator(".widget-button", has_text=re.compile(rf"^\s*{label}\s*$"))


def prompts(page) -> list[str]:
    return [text.strip() for text in page.locator(".jp-CodeCell .jp-InputArea-prompt").all_inner_texts()]


def run_all_cells(page, deadline_s: float = 150.0) -> list[str]:
    """Run > Run All Cells from the menu; wait until every code cell ran or the run stopped on an error."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        shown = prompts(page)
        if shown and all(re.fullmatch(r"\[\d+\]:", p) for p in shown):
            return shown
        if any(re.fullmatch(r"\[\d+\]:", p) for p in shown) and not any("*" in p for p in shown):
            return shown  # stopped: a cell failed and the rest were not run
        time.sleep(0.3)
    return prompts(page)


@contextlib.contextmanager
def notebook_page(driver, chromium: str, lab, tmp_path):
    """A Chromium page on the served notebook once its kernel is idle; on a failure, a screenshot and the page's
    HTML are left in ``tmp_path``."""
    base, token, notebook = lab
    browser = driver.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS, headless=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{base}/lab/tree/{notebook.name}?token={token}")
        wait_for_kernel(base, token)
        yield page
    except Exception:
        page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
        (tmp_path / "failure.html").write_text(page.content())
        raise
    finally:
        browser.close()


def tracebacks(page):
    return page.locator(".jp-OutputArea-output", has_text="Traceback (most recent call last)")


def run_all_without_errors(page, deadline_s: float = 150.0) -> None:
    """Run All Cells; every code cell ran (a prompt with its number) and none shows a traceback."""
    shown = run_all_cells(page, deadline_s)
    errors = tracebacks(page)
    assert errors.count() == 0, errors.all_inner_texts()
    assert shown and all(re.fullmatch(r"\[\d+\]:", p) for p in shown), f"cells not all run: {shown}"


def save_and_check_outputs(page, notebook) -> None:
    """Saved from the browser, the notebook has run every code cell and holds no error output."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^File$")).click()
    page.get_by_role("menuitem", name=re.compile(r"^Save Notebook")).first.click()
    cells = []

    def saved() -> bool:
        cells[:] = saved_cells(notebook)
        return all(c.execution_count for c in cells)

    wait_for(saved, "the browser to save the notebook")
    failed = [o for c in cells for o in c.outputs if o.output_type == "error"]
    assert not failed, failed


def test_online_training_notebook_runs_and_its_widgets_respond_in_chromium(chromium, playwright, lab, tmp_path):
    _, _, notebook = lab
    with playwright.sync_playwright() as driver, notebook_page(driver, chromium, lab, tmp_path) as page:
        run_all_without_errors(page)

        # The simulator explorer: typing a value into the 'left' slider reruns the simulation.
        explorer = page.locator(".widget-hbox", has=page.locator(".widget-label", has_text=re.compile(r"^left$")))
        image = explorer.first.locator(".widget-output img").first
        before = image.get_attribute("src")
        readout = explorer.first.locator(".widget-hslider", has_text="left").locator(".widget-readout")
        readout.click()
        page.keyboard.press("Control+A")
        page.keyboard.type("150")
        page.keyboard.press("Enter")
        wait_for(lambda: image.get_attribute("src") != before, "the field to redraw after moving 'left'")
        assert readout.inner_text().strip().startswith("150")

        # The study monitor: Start draws live frames, Stop (if the study has not ended yet) keeps the result.
        button(page, "Start").click()
        status = page.locator(".widget-label", has_text=re.compile(r"^(ready|running|stopping|stopped|finished)"))
        status.filter(has_text=re.compile(r"^(running: batch|stopped|finished)")).wait_for(timeout=60_000)
        stop = button(page, "Stop")
        if stop.is_enabled():
            stop.click(force=True)
        status.filter(has_text=re.compile(r"^(stopped|finished): \d+ batches")).wait_for(timeout=60_000)
        assert page.locator(".widget-image").first.get_attribute("src")
        assert tracebacks(page).count() == 0, tracebacks(page).all_inner_texts()

        save_and_check_outputs(page, notebook)


@pytest.mark.parametrize("notebook_name", TOURS)
def test_tour_runs_with_its_dashboards_in_chromium(chromium, playwright, lab, tmp_path, notebook_name):
    _, _, notebook = lab
    with playwright.sync_playwright() as driver, notebook_page(driver, chromium, lab, tmp_path) as page:
        run_all_without_errors(page, deadline_s=300.0)
        widgets = page.locator(".jp-OutputArea-output .jupyter-widgets")
        assert widgets.count() >= 1, "no widget rendered with interactive = True"
        broken = page.locator(".jp-OutputArea-output", has_text="Error displaying widget")
        assert broken.count() == 0, broken.all_inner_texts()
        save_and_check_outputs(page, notebook)
