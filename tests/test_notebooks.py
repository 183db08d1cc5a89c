"""Starter notebooks: shipped only with jupyter on, every cell runs headless, and
they survive template updates.

Each notebook is executed with nbclient on the current interpreter's kernel in a
copy of the render; a cell error fails the test, and so does any file written
outside data/ (Python's own __pycache__ aside). The update tests run the real
sequence: the user runs and saves the notebook through nbformat (what Jupyter
does on save) and commits, the template changes one cell, and the update merges.
"""
from __future__ import annotations

import html
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import copier
import mistune
import nbformat
import pathspec
import pytest
import yaml
from nbclient import NotebookClient

from helpers import MARKUP_TITLES, VARIANTS, commit_all, conflict_marked, flakewright, git

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
        "from core.profiles import current_profile; from addons.todos import todos; profile = current_profile({}); "
        f"todos.insert(profile_id=profile.id, title={title!r}, done=True, priority=0)"
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
        assert "notebook-sample/note-3.txt: " in text, text
        assert f"{words:,} words in 3 files." in text
        recorded = sqlite3.connect(next((project / "data").glob("*.db"))).execute(
            "SELECT title, status, done, total, kind FROM tasks").fetchall()
        assert recorded == [("Count words", "done", 3, 3, "tool:count_words")], "record() put the run in the app"
        assert "profile 'Default': 1 todos, 1 done" in text
        assert "Written by the app" in text


def heading_text(markdown: str) -> str:
    """The first line of ``markdown`` rendered with GitHub-style math and strikethrough, as plain text."""
    rendered = mistune.create_markdown(plugins=["math", "strikethrough"])(markdown.splitlines()[0]).strip()
    assert rendered.startswith("<h1>") and rendered.endswith("</h1>"), rendered
    inner = rendered.removeprefix("<h1>").removesuffix("</h1>")
    assert "<" not in inner, f"markup in the heading: {inner}"
    return html.unescape(inner)


@pytest.mark.parametrize("variant", VARIANTS)
def test_starter_notebook_is_byte_for_byte_what_nbformat_writes(render, variant):
    """Jupyter saves through nbformat: an unchanged notebook saved by the user must equal the render."""
    path = render(variant, jupyter=True, app_title=MARKUP_TITLES[-1]) / "notebooks" / "starter.ipynb"
    text = path.read_text(encoding="utf-8")
    notebook = nbformat.reads(text, as_version=4)
    nbformat.validate(notebook)
    assert nbformat.writes(notebook) + "\n" == text
    assert all(cell.get("outputs", []) == [] for cell in notebook.cells)
    assert all(len(line.splitlines()) == 1 for cell in notebook.cells for line in cell.source.splitlines(True))


@pytest.mark.parametrize("title", MARKUP_TITLES)
def test_title_shows_as_typed_in_the_readme_heading(render, title):
    """GitHub-style Markdown. The notebook's heading, rendered by JupyterLab's own Markdown and MathJax,
    is checked with the same titles in tests/e2e/test_jupyterlab.py."""
    assert heading_text((render("darwinix", app_title=title) / "README.md").read_text()) == title


def test_markdown_headings_do_escape_the_title():
    """Control for the test above: the same title unescaped does render as math and emphasis."""
    assert '<span class="math">' in mistune.create_markdown(plugins=["math"])("# " + MARKUP_TITLES[0])
    assert "<em>" in mistune.create_markdown()("# " + MARKUP_TITLES[3])


def run_and_save(path: Path) -> nbformat.NotebookNode:
    """What a user does in Jupyter: run every cell, then save through nbformat."""
    notebook = run_notebook(path)
    nbformat.write(notebook, path)
    return notebook


def edit_line(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not a unique line of {path.name}"
    path.write_text(text.replace(old, new))


def update_with(tool: str, dest: Path) -> None:
    if tool == "flakewright":
        result = flakewright("update", dest)
        assert result.returncode == 0, result.stdout + result.stderr
    else:
        copier.run_update(str(dest), defaults=True, overwrite=True, quiet=True)


# One cell the template changes in v2: the first source line of a code cell the user ran (right
# after that cell's outputs), and a line of a markdown cell.
CELL_EDITS = {
    "code-cell-the-user-ran": ("rng = np.random.default_rng(seed=42)", "rng = np.random.default_rng(seed=2025)"),
    "markdown-cell": ("## pandas: label the same numbers", "## pandas: label the same numbers by day and hour"),
}


@pytest.fixture(scope="module")
def saved_starter(first_releases, tmp_path_factory) -> str:
    """The starter notebook of released("darwinix") as the user saves it after running every cell, run once."""
    project = shutil.copytree(first_releases("darwinix", (), "app") / "app", tmp_path_factory.mktemp("ran") / "app")
    run_and_save(project / "notebooks" / "starter.ipynb")
    return (project / "notebooks" / "starter.ipynb").read_text()


@pytest.mark.parametrize("tool", ["flakewright", "copier"])
@pytest.mark.parametrize("edit", CELL_EDITS, ids=list(CELL_EDITS))
def test_template_change_merges_into_a_notebook_the_user_ran_and_saved(released, saved_starter, tmp_path, edit, tool):
    template, dest = released("darwinix")
    notebook_path = dest / "notebooks" / "starter.ipynb"
    notebook_path.write_text(saved_starter)
    saved = nbformat.reads(saved_starter, as_version=4)
    user_outputs = [cell.outputs for cell in saved.cells if cell.cell_type == "code"]
    assert any(user_outputs), "running the notebook gave no outputs to keep"
    commit_all(dest, "ran the starter notebook")

    old, new = CELL_EDITS[edit]
    edit_line(template.source("notebooks/starter.ipynb"), old, new)
    template.release("v2.0.0")

    update_with(tool, dest)

    assert conflict_marked(dest) == [] and not list(dest.rglob("*.rej"))
    merged = nbformat.read(notebook_path, as_version=4)
    nbformat.validate(merged)
    sources = "\n".join(cell.source for cell in merged.cells)
    assert new in sources and old not in sources.replace(new, "")
    assert [cell.outputs for cell in merged.cells if cell.cell_type == "code"] == user_outputs
    assert [cell.execution_count for cell in merged.cells if cell.cell_type == "code"] == \
        [cell.execution_count for cell in saved.cells if cell.cell_type == "code"]


@pytest.mark.parametrize("tool", ["flakewright", "copier"])
def test_a_deleted_starter_notebook_stays_deleted_across_updates(released, tmp_path, tool):
    template, dest = released("darwinix")
    git(dest, "rm", "-q", "notebooks/starter.ipynb")
    commit_all(dest, "the user does not want the starter notebook")
    notebook_src = template.source("notebooks/starter.ipynb")
    readme_src = template.source("README.md")

    for release, (old, new) in zip(["v2.0.0", "v3.0.0"], CELL_EDITS.values()):
        edit_line(notebook_src, old, new)
        readme_src.write_text(readme_src.read_text() + f"\nAdded in {release}.\n")
        template.release(release)

        update_with(tool, dest)

        assert f"Added in {release}." in (dest / "README.md").read_text(), "the update did not run"
        assert not (dest / "notebooks" / "starter.ipynb").exists()
        assert not list(dest.rglob("*.rej"))
        commit_all(dest, f"update to {release}")


def test_the_starter_notebook_is_not_in_skip_if_exists(released, tmp_path):
    """Copier re-creates deleted files that match _skip_if_exists, so the notebook must never be listed."""
    template, dest = released("darwinix")
    git(dest, "rm", "-q", "notebooks/starter.ipynb")
    commit_all(dest, "the user does not want the starter notebook")
    readme_src = template.source("README.md")
    readme_src.write_text(readme_src.read_text() + "\nv2\n")
    config = template.path / "copier.yml"
    config.write_text(config.read_text() + "\n_skip_if_exists: ['notebooks/*.ipynb']\n")
    template.release("v2.0.0")

    update_with("flakewright", dest)

    assert (dest / "notebooks" / "starter.ipynb").exists(), "control: _skip_if_exists brings deleted files back"
    shipped = yaml.safe_load((Path(__file__).resolve().parent.parent / "copier.yml").read_text())
    skipped = pathspec.PathSpec.from_lines("gitwildmatch", shipped.get("_skip_if_exists", []))
    assert not skipped.match_file("notebooks/starter.ipynb")
