"""Starter notebooks: shipped only with jupyter on, and every cell runs headless.

Each notebook is executed with nbclient on the current interpreter's kernel in a
copy of the render; a cell error fails the test, and so does any file written
outside data/ (Python's own __pycache__ aside).
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import VARIANTS

IGNORED_DIRS = {"data", "__pycache__", ".ipynb_checkpoints"}


def files_outside_data(root: Path) -> dict[str, int]:
    """Map every file outside the ignored dirs to its mtime, so changes show."""
    return {
        str(path.relative_to(root)): path.stat().st_mtime_ns
        for path in root.rglob("*")
        if path.is_file() and not IGNORED_DIRS.intersection(path.relative_to(root).parts)
    }


def run_notebook(path: Path) -> nbformat.NotebookNode:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    client = NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    return notebook


def seed_todo(project: Path, title: str) -> None:
    """Store a todo through the app's own module, as the web app would, before the notebook runs."""
    code = (
        "import server; profile = server.current_profile({}); "
        f"server.todos.insert(profile_id=profile.id, title={title!r}, done=True, priority=0)"
    )
    subprocess.run([sys.executable, "-c", code], cwd=project, check=True, timeout=60)


def output_text(notebook: nbformat.NotebookNode) -> str:
    chunks = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            chunks.append(output.get("text", ""))
            chunks.append(output.get("data", {}).get("text/plain", ""))
            chunks.append(output.get("data", {}).get("text/html", ""))
    return "\n".join(chunks)


@pytest.mark.parametrize("variant", VARIANTS)
def test_jupyter_off_ships_no_notebooks(render, variant):
    dest = render(variant, jupyter=False)
    assert not (dest / "notebooks").exists()


@pytest.mark.parametrize("variant", VARIANTS)
def test_starter_notebook_runs_and_writes_only_data(render, variant, tmp_path):
    project = shutil.copytree(render(variant, jupyter=True), tmp_path / "project")
    notebooks = sorted((project / "notebooks").glob("*.ipynb"))
    assert [p.name for p in notebooks] == ["starter.ipynb"]
    if variant != "darwinix":
        seed_todo(project, "Written by the app")
    before = files_outside_data(project)

    executed = run_notebook(notebooks[0])

    assert files_outside_data(project) == before, "the notebook wrote outside data/"
    text = output_text(executed)
    if variant == "darwinix":
        summary = (project / "data" / "summary.csv").read_text().splitlines()
        assert summary[0] == "part,mean,min,max"
        assert [line.split(",")[0] for line in summary[1:]] == ["night", "morning", "afternoon", "evening"]
        assert "wrote data/summary.csv: 4 rows" in text
    else:
        sample = sorted((project / "data" / "notebook-sample").glob("*.txt"))
        words = sum(len(path.read_text().split()) for path in sample)
        assert len(sample) == 3
        assert "[3/3] note-3.txt: " in text, text
        assert f"{words:,} words in 3 files." in text
        assert "profile 'Default': 1 todos, 1 done" in text
        assert "Written by the app" in text
