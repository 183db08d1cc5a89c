"""The seeds' story end to end, as one test: three forks with their own edits, a fix backported by commit, a
release, and one fleet update of all three.

One fork adds `rich` as `scripts/deps add rich` does (pyproject.toml, uv.lock and requirements.txt in one commit)
before it fixes the bug. The fix arrives in all three, no line a user added is lost, the executed notebook stays a
valid notebook that has the user's edit, outputs and the template's change, and a render from the backport branch
works: its lock matches its pyproject.toml (`uv lock --check`), which `rich` travelling with the fix would break.
"""
from __future__ import annotations

import os
import py_compile
import re
import subprocess
import sys
from pathlib import Path

import nbformat

from helpers import TemplateRepo, commit_all, flakewright, git, need, render_tagged

FIXED_FILE = "tests/test_environment.py"  # rendered by every variant
FIX = {  # the bug fix, two literal lines of the template: a pin line split on a tab, option lines read as pins
    '        pin = line.split(" --hash=")[0].strip()': '        pin = line.split("--hash=")[0].strip()',
    '        if pin and not pin.startswith("#"):': '        if pin and not pin.startswith(("#", "-")):',
}
NOTEBOOK = "notebooks/starter.ipynb"
TEMPLATE_HEADING = ('    "## numpy: whole-array arithmetic\\n",', '    "## numpy: arithmetic on whole arrays\\n",')
ADDON = '''"""Team routes, in the user's own place: an add-on server.py imports."""
from fasthtml.common import APIRouter

router = APIRouter(prefix="/team")


@router.get("/health")
def health():
    return "ok: {name}"
'''
TOOL = '''"""Shout: the team's own tool."""


def shout(text: str = "hello") -> str:
    """Say it louder.

    Args:
        text: What to say.
    """
    return text.upper() + "!"
'''


def replace_once(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old + "\n") == 1, (path, old)
    path.write_text(text.replace(old + "\n", new + "\n"))


def append(path: Path, text: str) -> None:
    with path.open("a") as handle:
        handle.write(text)


def edit_and_execute_notebook(path: Path) -> None:
    """The user changes the seed of the readings cell and runs the notebook (outputs as a kernel leaves them)."""
    notebook = nbformat.read(path, as_version=4)
    readings = next(cell for cell in notebook.cells if cell.get("id") == "readings")
    readings.source = readings.source.replace("seed=42", "seed=7")
    for count, cell in enumerate((c for c in notebook.cells if c.cell_type == "code"), start=1):
        cell.execution_count = count
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"run {count} by the team\n")]
    nbformat.write(notebook, path)


def uv(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """uv as scripts/deps and scripts/relock.py run it: this Python, no download."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")}
    env |= {"UV_PYTHON": sys.executable, "UV_PYTHON_DOWNLOADS": "never"}
    return subprocess.run(["uv", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def deps_add(repo: Path, name: str) -> None:
    """`scripts/deps add NAME` without its final install: pyproject.toml, uv.lock and requirements.txt change
    together. From uv's cache when it has the package (offline, fast), else from the index."""
    added = uv("add", "--no-sync", "--offline", name, cwd=repo)
    if added.returncode != 0:
        added = uv("add", "--no-sync", name, cwd=repo)
    assert added.returncode == 0, added.stderr
    exported = uv("export", "--frozen", "--quiet", "--output-file", "requirements.txt", cwd=repo)
    assert exported.returncode == 0, exported.stderr


def lock_matches(repo: Path) -> subprocess.CompletedProcess[str]:
    """`uv lock --check`: the repo's uv.lock is the lock of its pyproject.toml (what `source scripts/venv.sh` needs)."""
    return uv("lock", "--check", "--offline", cwd=repo)


def user_lines(repo: Path, since: str) -> dict[str, list[str]]:
    """Per file (notebooks aside), the lines the user's commits since ``since`` added."""
    added: dict[str, list[str]] = {}
    for path in git(repo, "diff", "--name-only", "--diff-filter=AM", since, "HEAD").split():
        if path.endswith(".ipynb"):
            continue
        diff = git(repo, "diff", "--unified=0", since, "HEAD", "--", path)
        added[path] = [line[1:] for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    return added


def test_three_forks_a_backported_fix_a_release_and_a_fleet_update(tmp_path: Path) -> None:
    need("uv")
    template = TemplateRepo.create(tmp_path / "template")
    forks = {name: render_tagged(template, tmp_path / name, name) for name in ("darwinix", "pipulate", "botifython")}
    renders = {name: git(repo, "rev-parse", "HEAD").strip() for name, repo in forks.items()}
    darwinix, pipulate, botifython = forks.values()

    # Each fork's own edits: notes, a route and a tool in their own places, an edited and executed notebook.
    for name, repo in forks.items():
        append(repo / "README.md", f"\n## {name} team notes\n\nDeploys go through Sam; the staging box is {name}-stage.\n")
    (pipulate / "addons" / "team.py").write_text(ADDON.format(name="pipulate"))
    (pipulate / "tools" / "shout.py").write_text(TOOL)
    (botifython / "addons" / "health.py").write_text(ADDON.format(name="botifython"))
    edit_and_execute_notebook(darwinix / NOTEBOOK)
    for repo in forks.values():
        commit_all(repo, "the team's edits")
    deps_add(pipulate, "rich")  # the fork that will backport: its dependency must not travel with the fix
    assert {"pyproject.toml", "uv.lock", "requirements.txt"} <= set(git(pipulate, "status", "--porcelain").split())
    commit_all(pipulate, "deps add rich")
    # pipulate fixes a bug in a template-owned file, in a commit of its own, then another edit follows it.
    for old, new in FIX.items():
        replace_once(pipulate / FIXED_FILE, old, new)
    commit_all(pipulate, "fix: read pins split by a tab, skip option lines")
    fix = git(pipulate, "rev-parse", "HEAD").strip()
    append(pipulate / "README.md", "Ask Dana before touching the importer.\n")
    commit_all(pipulate, "more notes")

    # The fix goes back alone, by commit.
    sent = flakewright("backport", "-C", pipulate, "--yes", fix)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    branch = re.search(r"Committed on branch (\S+)", sent.stdout).group(1)
    assert git(template.path, "diff", "--name-only", "v1.0.0", branch).split() == [
        template.source(FIXED_FILE).relative_to(template.path).as_posix()]

    # A render from the branch works: it has the fix and not `rich`, its lock matches its pyproject.toml (the
    # web variants share one lock), its Python compiles, its scripts parse.
    fresh = tmp_path / "fresh"
    made = flakewright("new", "botifython", fresh, "--template", template.path, "--defaults", "--vcs-ref", branch)
    assert made.returncode == 0, made.stdout + made.stderr
    assert "rich" not in (fresh / "pyproject.toml").read_text()
    assert not re.search(r"^rich==", (fresh / "requirements.txt").read_text(), re.M)
    checked = lock_matches(fresh)
    assert checked.returncode == 0, checked.stderr
    assert all(new in (fresh / FIXED_FILE).read_text().splitlines() for new in FIX.values())
    for source in fresh.rglob("*.py"):
        py_compile.compile(str(source), cfile=str(tmp_path / "compiled.pyc"), doraise=True)
    for script in (fresh / "scripts").iterdir():
        if script.read_text().startswith("#!/usr/bin/env bash"):
            checked = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
            assert checked.returncode == 0, (script, checked.stderr)
    nbformat.validate(nbformat.read(fresh / NOTEBOOK, as_version=4))

    # The template takes the fix and a change of its own to the notebook, and releases.
    git(template.path, "merge", "-q", "--ff-only", branch)
    replace_once(template.source(NOTEBOOK), *TEMPLATE_HEADING)
    template.release("v1.1.0")

    before = {name: user_lines(repo, renders[name]) for name, repo in forks.items()}
    updated = flakewright("update", *forks.values())

    assert updated.returncode == 0, updated.stdout + updated.stderr
    rows = [line for line in updated.stdout.splitlines() if line.startswith(tuple(map(str, forks.values())))]
    assert len(rows) == 3 and all(re.search(r"1\.0\.0 -> 1\.1\.0 .* clean$", row) for row in rows), updated.stdout
    for name, repo in forks.items():
        # the fix arrived, and every line the user added is still there
        fixed = (repo / FIXED_FILE).read_text().splitlines()
        assert all(new in fixed for new in FIX.values()) and not any(old in fixed for old in FIX), name
        for path, lines in before[name].items():
            now = (repo / path).read_text().splitlines()
            assert [line for line in lines if line not in now] == [], (name, path)
        assert not re.search(r"^(<<<<<<<|>>>>>>>) ", git(repo, "diff"), re.M), name
    assert "Ask Dana before touching the importer." in (pipulate / "README.md").read_text()
    assert (pipulate / "tools" / "shout.py").read_text() == TOOL
    assert '"rich>=' in (pipulate / "pyproject.toml").read_text()  # the fork's dependency, still locked
    assert re.search(r"^rich==", (pipulate / "requirements.txt").read_text(), re.M)
    checked = lock_matches(pipulate)
    assert checked.returncode == 0, checked.stderr
    assert (botifython / "addons" / "health.py").read_text() == ADDON.format(name="botifython")

    notebook = nbformat.read(darwinix / NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    cells = {cell.get("id"): cell for cell in notebook.cells}
    assert "seed=7" in cells["readings"].source  # the user's edit
    assert cells["readings"].outputs[0]["text"].endswith("by the team\n")  # the user's outputs
    assert cells["numpy"].source.startswith("## numpy: arithmetic on whole arrays")  # the template's change
