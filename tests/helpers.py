"""What the host-side tests share: paths, git, the CLI runners, template repos, tree comparison.

Test modules import from here (or from nixenv/uvlock/terminal), never from one another.
"""
from __future__ import annotations

import contextlib
import filecmp
import os
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import copier
import pytest
from typer.testing import CliRunner

from flakewright._answers import ANSWERS_FILE as ANSWERS
from flakewright._cli import app as cli_app
from flakewright._variants import VARIANTS as VARIANT_TABLE

REPO = Path(__file__).resolve().parent.parent
VARIANTS = tuple(VARIANT_TABLE)
WEB = tuple(name for name, v in VARIANT_TABLE.items() if v.flags["web"])
REQUIRE_ALL = os.environ.get("FLAKEWRIGHT_REQUIRE_ALL") == "1"
# Titles full of what Markdown, GitHub and MathJax would read as markup, and what JSON must escape.
MARKUP_TITLES = [
    "Cost $x$ and $$y$$",
    "Price: $5 or $6",
    "back\\slash \\$ \\*",
    "*bold* and _italic_ and __both__",
    "<b>tag</b> &amp; &copy;",
    "`code` span",
    "Issue #1 #",
    "[link](http://example.com) ![img](x.png)",
    "~~struck~~ a|b",
    'Quote "q" \\ é 😀 it\'s',
]
GIT_ENV = {
    "GIT_AUTHOR_NAME": "flakewright tests",
    "GIT_AUTHOR_EMAIL": "tests@flakewright.invalid",
    "GIT_COMMITTER_NAME": "flakewright tests",
    "GIT_COMMITTER_EMAIL": "tests@flakewright.invalid",
}

# Compiling every installed module's .pyc (pandas', numpy's) is most of a pip install's CPU, and Python writes
# them on import anyway. PIP_COMPILE, not PIP_NO_COMPILE: pip reads a --no-* option's variable inverted, so
# PIP_NO_COMPILE=1 turns compiling on.
PIP_NO_COMPILING = {"PIP_COMPILE": "false"}


def flags(answers: dict) -> dict[str, bool]:
    """The feature flags a render with ``answers`` gets: the variant's, with a jupyter answer winning, and
    ``demo`` (web renders only; on unless answered false)."""
    derived = dict(VARIANT_TABLE[answers["variant"]].flags)
    if "jupyter" in answers:
        derived["jupyter"] = bool(answers["jupyter"])
    derived["demo"] = derived["web"] and bool(answers.get("demo", True))
    return derived


def need(tool: str, *, why: str = "") -> str:
    """Return the path of ``tool`` or skip (fail under FLAKEWRIGHT_REQUIRE_ALL)."""
    found = shutil.which(tool) or (tool if os.path.isabs(tool) and os.access(tool, os.X_OK) else None)
    if found:
        return found
    message = f"{tool} is not installed{': ' + why if why else ''}"
    if REQUIRE_ALL:
        pytest.fail(f"{message} (FLAKEWRIGHT_REQUIRE_ALL=1 forbids skipping)")
    pytest.skip(message)


# xdist worker gwN's ports: 20000 + 1000 N up to the next thousand, all below the ephemeral range (32768 up).
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
_PORTS = iter(range(20_000 + 1_000 * _WORKER, 21_000 + 1_000 * _WORKER))


def free_port() -> int:
    """A 127.0.0.1 port for a server a test is about to start, which may bind it minutes later (after an install).

    Each xdist worker takes ports from its own block below the kernel's ephemeral range, and never one twice. So
    neither another worker's server nor a port the kernel hands out (a bind to 0 in a rendered suite, an outgoing
    connection) can take it first, as a port the kernel picked could be.
    """
    for port in _PORTS:
        with socket.socket() as s, contextlib.suppress(OSError):
            s.bind(("127.0.0.1", port))
            return port
    raise AssertionError("this worker has used every port of its block")


def own_basetemp(tmp_path: Path) -> list[str]:
    """pytest arguments for a rendered repo's own suite run inside this one: by default an inner pytest prunes
    the outer run's old temp folders (renders, venvs)."""
    return ["--basetemp", str(tmp_path / "suite")]


def render_variant(dest: Path, variant: str, *, template: Path = REPO, **data: object) -> Path:
    """Render the working-tree template (or ``template``, a plain copy of it) into ``dest`` with default answers."""
    copier.run_copy(
        str(template),
        str(dest),
        data={"variant": variant, "project_name": variant, **data},  # as examples/<variant>/ gets from its folder
        defaults=True,
        overwrite=True,
        quiet=True,
        # From the git checkout: the working tree, dirty changes included (tags would pick a release).
        vcs_ref="HEAD" if (Path(template) / ".git").exists() else None,
    )
    return dest


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_ENV},
    )
    assert result.returncode == 0, f"git {' '.join(args)} failed: {result.stderr}"
    return result.stdout


def commit_all(cwd: Path, message: str) -> None:
    git(cwd, "add", "-A")
    git(cwd, "commit", "-q", "--allow-empty", "-m", message)


def flakewright(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI in-process (fast) through typer's CliRunner, as a user would call it."""
    argv = ["flakewright", *map(str, args)]
    previous = Path.cwd()
    try:
        if cwd:
            os.chdir(cwd)
        result = CliRunner().invoke(cli_app, argv[1:], prog_name="flakewright", catch_exceptions=False)
    finally:
        os.chdir(previous)
    return subprocess.CompletedProcess(argv, result.exit_code, result.stdout, result.stderr)


def flakewright_process(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the real console script in a subprocess (for what in-process cannot show)."""
    return subprocess.run(
        [sys.executable, "-m", "flakewright", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_ENV},
    )


def plain_name(part: str) -> str:
    """The name a template path part renders to when its condition holds."""
    return re.sub(r"\{%.*?%\}", "", part).removesuffix(".jinja")


def copy_template(path: Path) -> Path:
    """copier.yml and template/ of this working tree, copied to ``path``."""
    path.mkdir()
    shutil.copy2(REPO / "copier.yml", path / "copier.yml")
    shutil.copytree(REPO / "template", path / "template", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return path


@dataclass
class TemplateRepo:
    """A git copy of this repo's template that a test can edit and tag."""

    path: Path

    @classmethod
    def create(cls, path: Path, *, tag: str = "v1.0.0") -> TemplateRepo:
        copy_template(path)
        git(path, "init", "-q")
        repo = cls(path)
        repo.release(tag)
        return repo

    def release(self, tag: str) -> None:
        commit_all(self.path, f"template {tag}")
        git(self.path, "tag", tag)

    def source(self, rendered: str) -> Path:
        """The template file that renders to ``rendered`` (e.g. server.py)."""
        for candidate in (self.path / "template").rglob("*"):
            relative = candidate.relative_to(self.path / "template")
            if candidate.is_file() and "/".join(plain_name(p) for p in relative.parts) == rendered:
                return candidate
        raise AssertionError(f"no template file renders {rendered}")


def insert_after(path: Path, index: int, line: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines.insert(index + 1, line + "\n")
    path.write_text("".join(lines))


def literal_line(template_file: Path, rendered_file: Path, *, from_end: bool = False) -> str:
    """A line the template holds verbatim (no Jinja) and the render contains."""
    rendered = rendered_file.read_text().splitlines()
    source = template_file.read_text().splitlines()
    ordered = reversed(source) if from_end else source
    for line in ordered:
        if line.strip() and "{" not in line and "%" not in line and rendered.count(line) == 1:
            return line
    raise AssertionError(f"{template_file.name} has no literal line to anchor on")


def render_tagged(template: TemplateRepo, dest: Path, variant: str, *extra: str) -> Path:
    """`flakewright new` from a TemplateRepo's latest tag, committed as a user's first commit."""
    result = flakewright("new", variant, dest, "--template", template.path, "--defaults", *extra)
    assert result.returncode == 0, result.stderr
    git(dest, "init", "-q")
    commit_all(dest, "render")
    return dest


def copy_releases(root: Path, tmp_path: Path, *names: str) -> tuple[TemplateRepo, list[Path]]:
    """Copy ``root``'s template/ and the repos ``names`` rendered from it into ``tmp_path``, each repo's
    answers pointing at the copied template (amended into its last commit)."""
    template = TemplateRepo(shutil.copytree(root / "template", tmp_path / "template", symlinks=True))
    cached, copied = f"_src_path: {(root / 'template').resolve()}\n", f"_src_path: {template.path.resolve()}\n"
    repos = []
    for name in names:
        dest = shutil.copytree(root / name, tmp_path / name, symlinks=True)
        answers = dest / ANSWERS
        text = answers.read_text()
        assert cached in text, text
        answers.write_text(text.replace(cached, copied))
        git(dest, "commit", "-q", "--amend", "-a", "--no-edit")
        repos.append(dest)
    return template, repos


def tree_files(root: Path) -> list[str]:
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(root).parts
    )


def assert_same_tree(left: Path, right: Path, *, ignore: tuple[str, ...] = (ANSWERS,)) -> None:
    left_files = [f for f in tree_files(left) if f not in ignore]
    right_files = [f for f in tree_files(right) if f not in ignore]
    assert left_files == right_files
    differ = [f for f in left_files if not filecmp.cmp(left / f, right / f, shallow=False)]
    assert differ == [], f"files differ: {differ}"


def conflict_marked(root: Path) -> list[str]:
    return [f for f in tree_files(root) if re.search(r"^<<<<<<< |^>>>>>>> ", (root / f).read_text(errors="replace"), re.M)]


def listed(stdout: str, label: str) -> list[str]:
    """The paths `flakewright update` lists under ``label (n):``; [] when it prints no such section."""
    lines = stdout.splitlines()
    heads = [i for i, line in enumerate(lines) if re.fullmatch(rf"{re.escape(label)} \(\d+\):", line)]
    if not heads:
        return []
    assert len(heads) == 1, stdout
    paths = []
    for line in lines[heads[0] + 1:]:
        if not line.startswith("  "):
            break
        paths.append(line.strip())
    assert f"{label} ({len(paths)}):" == lines[heads[0]], stdout
    return paths
