"""JupyterLab opens the darwinix starter notebook, runs it, and refuses requests without the token;
a title full of Markdown and math markup shows as typed in the notebook's heading."""
from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys

import httpx
import nbformat
import pytest

from helpers import MARKUP_TITLES, render_variant

from .harness import free_port, screenshot, wait_until


@contextlib.contextmanager
def running_jupyterlab(project, state):
    """JupyterLab on a free 127.0.0.1 port serving ``project``; yields (base URL, token)."""
    token = secrets.token_hex(16)
    port = free_port()
    news = state / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text('{"fetchNews": "false"}')  # no consent toast, no request to jupyter.org
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
        "JUPYTERLAB_WORKSPACES_DIR": str(state / "workspaces"),
        "JUPYTERLAB_SETTINGS_DIR": str(state / "settings"),
    }
    log = state / "jupyterlab.log"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "jupyterlab", "--no-browser",
            "--ip=127.0.0.1", f"--port={port}", f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={project}",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",
            *(["--allow-root"] if os.geteuid() == 0 else []),
        ],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert process.poll() is None, f"jupyterlab exited:\n{log.read_text()[-3000:]}"
        try:
            return httpx.get(f"{base}/api/status", params={"token": token}, timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(ready, timeout=60, interval=0.2, what="JupyterLab to answer")
        yield base, token
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture
def jupyterlab(render, tmp_path):
    project = shutil.copytree(render("darwinix", jupyter=True), tmp_path / "project")
    with running_jupyterlab(project, tmp_path / "jupyter-state") as (base, token):
        yield base, token, project


def test_starter_notebook_runs_in_jupyterlab(jupyterlab, context):
    base, token, project = jupyterlab
    assert httpx.get(f"{base}/api/contents/notebooks").status_code == 403
    assert httpx.get(f"{base}/api/contents/notebooks", params={"token": "wrong"}).status_code == 403

    page = context.new_page()
    # Lab's own readiness is awaited below: its page load event (megabytes of script) says nothing more.
    page.goto(f"{base}/lab/tree/notebooks/starter.ipynb?token={token}", wait_until="commit")
    notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook")
    notebook.get_by_role("heading", name="starter notebook").wait_for(timeout=60_000)
    # Run All before the notebook's kernel is connected runs nothing, silently. The toolbar's execution
    # indicator reads "idle" from the start, so wait for the status bar's kernel status instead.
    page.get_by_title("Change kernel for starter.ipynb").filter(has_text=re.compile(r"\| Idle$")).wait_for(
        timeout=60_000)

    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    notebook.get_by_text("wrote data/summary.csv: 4 rows").wait_for(timeout=60_000)
    assert notebook.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").count() == 0
    assert (project / "data" / "summary.csv").is_file()

    page.keyboard.press("Control+b")  # fold the file browser so the notebook gets the width
    notebook.get_by_role("heading", name="pandas: label the same numbers").scroll_into_view_if_needed()
    screenshot(page, "jupyterlab-starter", docs=True)


def test_title_markup_shows_as_typed_in_the_notebook_heading(tmp_path, context):
    """The heading cell of starter notebooks rendered with each title, shown by JupyterLab's own Markdown
    and MathJax, in one notebook that ends with a control cell of real math."""
    headings = []
    for n, title in enumerate(MARKUP_TITLES):
        rendered = render_variant(tmp_path / f"render-{n}", "darwinix", jupyter=True, app_title=title)
        intro = nbformat.read(rendered / "notebooks" / "starter.ipynb", as_version=4).cells[0]
        headings.append(nbformat.v4.new_markdown_cell(intro.source.splitlines()[0], id=f"title-{n}"))
    control = nbformat.v4.new_markdown_cell("# Control $x^2$", id="control")
    project = tmp_path / "project"
    project.mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=[*headings, control]), project / "titles.ipynb")

    with running_jupyterlab(project, tmp_path / "jupyter-state") as (base, token):
        page = context.new_page()
        page.goto(f"{base}/lab/tree/titles.ipynb?token={token}", wait_until="commit")
        rendered_headings = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-RenderedMarkdown h1")
        rendered_headings.last.locator("mjx-container").wait_for(timeout=60_000)  # MathJax has typeset the page
        shown = rendered_headings.evaluate_all(
            "hs => hs.map(h => [...h.childNodes].filter(n => !n.classList?.contains('jp-InternalAnchorLink'))"
            ".map(n => n.textContent).join(''))"
        )
        marked_up = rendered_headings.evaluate_all(
            "hs => hs.map(h => h.querySelectorAll('mjx-container, em, strong, b, code, del, img').length)"
        )
        page.close()  # before the server stops, so the page's polling does not fail

    assert shown[:-1] == [f"{title}: starter notebook" for title in MARKUP_TITLES]
    assert marked_up == [0] * len(MARKUP_TITLES) + [1]
