"""JupyterLab opens the darwinix starter notebook, runs it, and refuses requests without the token."""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys

import httpx
import pytest

from .harness import free_port, screenshot, wait_until


@pytest.fixture
def jupyterlab(render, tmp_path):
    project = shutil.copytree(render("darwinix", jupyter=True), tmp_path / "project")
    token = secrets.token_hex(16)
    port = free_port()
    state = tmp_path / "jupyter-state"
    news = state / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text('{"fetchNews": "false"}')  # no consent toast, no request to jupyter.org
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
        "JUPYTERLAB_WORKSPACES_DIR": str(state / "workspaces"),
        "JUPYTERLAB_SETTINGS_DIR": str(state / "settings"),
    }
    log = tmp_path / "jupyterlab.log"
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
        yield base, token, project
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def test_starter_notebook_runs_in_jupyterlab(jupyterlab, context):
    base, token, project = jupyterlab
    assert httpx.get(f"{base}/api/contents/notebooks").status_code == 403
    assert httpx.get(f"{base}/api/contents/notebooks", params={"token": "wrong"}).status_code == 403

    page = context.new_page()
    page.goto(f"{base}/lab/tree/notebooks/starter.ipynb?token={token}")
    notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook")
    notebook.get_by_role("heading", name="starter notebook").wait_for(timeout=60_000)
    page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=60_000)

    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    notebook.get_by_text("wrote data/summary.csv: 4 rows").wait_for(timeout=60_000)
    assert notebook.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").count() == 0
    assert (project / "data" / "summary.csv").is_file()

    page.keyboard.press("Control+b")  # fold the file browser so the notebook gets the width
    notebook.get_by_role("heading", name="pandas: label the same numbers").scroll_into_view_if_needed()
    screenshot(page, "jupyterlab-starter", docs=True)
