"""`flakewright backport`: a derived repo's edits to generated files go back into the template."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ANSWERS, REPO, TemplateRepo, commit_all, flakewright, git, literal_line, need, render_tagged

SERVER = "server.py"
SETTINGS = "settings.py"  # the one rendered Python file: its answers are lines Jinja produced


def rendered_lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def literal_index(template_file: Path, rendered: list[str], *, after: int = 0) -> int:
    """Index in ``rendered`` of a non-blank line the template holds verbatim, once, past ``after``."""
    source = template_file.read_text().splitlines()
    for index, line in enumerate(rendered):
        if index > after and line.strip() and "{" not in line and source.count(line) == 1 and rendered.count(line) == 1:
            return index
    raise AssertionError("no literal line")


def backport(repo: Path, *args: str | Path):
    """`flakewright backport -C REPO --yes ARGS`: as a user who reviewed the list."""
    return flakewright("backport", "-C", repo, "--yes", *args)


@pytest.fixture
def setup(released):
    return released("pipulate", name="pip")


def test_backport_applies_literal_edits_and_they_reach_other_variants(setup, tmp_path: Path) -> None:
    template, pip = setup
    other = render_tagged(template, tmp_path / "other", "botifython")
    source = template.source(SERVER)
    lines = rendered_lines(pip / SERVER)

    # The user edits one literal line, and adds a block after another, far down the file.
    edited = literal_index(source, lines, after=len(lines) // 4)
    anchor = literal_index(source, lines, after=len(lines) // 2)
    old_line, anchor_line = lines[edited], lines[anchor]
    new_line = old_line + "  # backported edit"
    block = ["", "", "def backported_helper():", '    return "from the derived repo"']
    lines[edited] = new_line
    lines[anchor + 1 : anchor + 1] = block
    (pip / SERVER).write_text("\n".join(lines) + "\n")
    (pip / "NOTES.md").write_text("the user's own file\n")
    commit_all(pip, "user edits")

    # The second derived repo's own edit, at the end of its server.py.
    with (other / SERVER).open("a") as handle:
        handle.write('\n\ndef others_own():\n    return "kept"\n')
    commit_all(other, "other's edits")

    result = backport(pip)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"applied: {SERVER}" in result.stdout
    assert "NOTES.md" not in result.stdout
    branch = re.search(r"Committed on branch (\S+)", result.stdout).group(1)
    assert branch == "backport/pip"
    # The template checkout's work tree and branch are untouched; the branch holds the edit.
    assert git(template.path, "status", "--porcelain") == ""
    assert "backported_helper" not in source.read_text()
    patched = git(template.path, "show", f"{branch}:{source.relative_to(template.path).as_posix()}")
    assert new_line in patched.splitlines() and "def backported_helper():" in patched
    assert not any("NOTES" in f for f in git(template.path, "diff", "--name-only", "HEAD", branch).split())

    # A Botifython rendered from the patched template has both edits in place.
    fresh = tmp_path / "fresh"
    made = flakewright("new", "botifython", fresh, "--template", template.path, "--defaults", "--vcs-ref", branch)
    assert made.returncode == 0, made.stderr
    fresh_lines = rendered_lines(fresh / SERVER)
    assert new_line in fresh_lines and old_line not in fresh_lines
    at = fresh_lines.index(anchor_line)
    assert fresh_lines[at + 1 : at + 1 + len(block)] == block

    # Released, the edit reaches the second derived repo, whose own edit stays.
    git(template.path, "merge", "-q", "--ff-only", branch)
    template.release("v2.0.0")
    updated = flakewright("update", other)
    assert updated.returncode == 0, updated.stdout + updated.stderr
    other_text = (other / SERVER).read_text()
    assert new_line in other_text.splitlines() and "def backported_helper():" in other_text
    assert 'def others_own():\n    return "kept"' in other_text


def test_edit_to_jinja_produced_line_is_refused_and_shown(setup) -> None:
    template, pip = setup
    source = template.source(SETTINGS)
    lines = rendered_lines(pip / SETTINGS)
    produced = next(i for i, line in enumerate(lines) if line.startswith("DB_FILE = "))
    template_line = next(
        n for n, line in enumerate(source.read_text().splitlines(), start=1) if line.startswith("DB_FILE = ")
    )
    assert "{{" in source.read_text().splitlines()[template_line - 1]
    lines[produced] = 'DB_FILE = DATA / "renamed.db"'
    literal = literal_index(source, lines, after=len(lines) // 2)
    lines[literal] += "  # literal edit"
    (pip / SETTINGS).write_text("\n".join(lines) + "\n")
    commit_all(pip, "edit a produced line and a literal one")

    result = backport(pip)

    assert result.returncode == 1, result.stdout + result.stderr
    assert f"partly applied: {SETTINGS}" in result.stdout and "1 hunk(s) applied, 1 not" in result.stdout
    assert f"line {produced + 1}: touches text produced by Jinja" in result.stdout
    assert '+ DB_FILE = DATA / "renamed.db"' in result.stdout
    # shown with the template line it came from, numbered as in the template
    assert re.search(rf"^\s+{template_line} \| DB_FILE = DATA / \"{{{{ project_name }}}}\.db\"$", result.stdout, re.M), result.stdout
    branch = re.search(r"Committed on branch (\S+)", result.stdout).group(1)
    patched = git(template.path, "show", f"{branch}:{source.relative_to(template.path).as_posix()}")
    assert lines[literal] in patched.splitlines()
    assert "renamed.db" not in patched and '"{{ project_name }}.db"' in patched


def test_line_inside_a_taken_if_block_is_literal(setup) -> None:
    template, pip = setup
    flake = pip / "flake.nix"
    source = template.source("flake.nix")
    text = source.read_text()
    block = re.search(r"\{%-? if installer == 'uv' %\}\n(.*)\n", text)
    assert block, "flake.nix.jinja must hold an {% if installer == 'uv' %} block"
    inside = block.group(1)
    assert inside in flake.read_text().splitlines()
    added = inside[: len(inside) - len(inside.lstrip())] + "pkgs.ruff"
    flake.write_text(flake.read_text().replace(inside + "\n", inside + "\n" + added + "\n", 1))
    commit_all(pip, "add ruff next to uv")

    result = backport(pip)

    assert result.returncode == 0, result.stdout + result.stderr
    branch = re.search(r"Committed on branch (\S+)", result.stdout).group(1)
    patched = git(template.path, "show", f"{branch}:{source.relative_to(template.path).as_posix()}")
    patched_block = re.search(r"\{%-? if installer == 'uv' %\}\n(.*)\n(.*)\n", patched)
    assert patched_block.groups() == (inside, added)
    # pip-installer renders do not take the block, so they do not get the line
    pip_render = flakewright("new", "pipulate", pip.parent / "pip-installer", "-t", template.path, "--defaults",
                             "--vcs-ref", branch, "-d", "installer=pip")
    assert pip_render.returncode == 0, pip_render.stderr
    assert "ruff" not in (pip.parent / "pip-installer" / "flake.nix").read_text()


def test_nothing_to_backport_and_user_only_files_are_ignored(setup) -> None:
    template, pip = setup
    (pip / "NOTES.md").write_text("mine\n")
    commit_all(pip, "notes")
    before = git(template.path, "branch", "--list")

    result = backport(pip)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "nothing to backport" in result.stdout
    assert git(template.path, "branch", "--list") == before


def test_backport_needs_a_local_checkout(setup, tmp_path: Path) -> None:
    _, pip = setup
    result = backport(pip, "--template", tmp_path / "missing")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "--template" in result.stderr


def test_trace_maps_verbatim_lines_only(tmp_path: Path) -> None:
    """Taken if-blocks and whitespace control map; loops, expressions and macros do not."""
    import copier

    from flakewright._trace import instrument, read_trace

    template = tmp_path / "template"
    (template / "template").mkdir(parents=True)
    (template / "copier.yml").write_text("_subdirectory: template\nname:\n  type: str\n  default: x\nflag:\n  type: bool\n  default: true\n")
    lines = [
        "{% macro m() %}from a macro{% endmacro -%}",  # 1
        "head",  # 2
        "{%- if flag %}",  # 3
        "inside a taken block",  # 4
        "{%- endif %}",  # 5
        "{%- if not flag %}",  # 6
        "inside a block not taken",  # 7
        "{%- endif %}",  # 8
        "",  # 9
        "{% for i in [1, 2] %}",  # 10
        "loop line",  # 11
        "{% endfor %}",  # 12
        "value {{ name }}",  # 13
        "{{ m() }}",  # 14
        "tail",  # 15
        "",  # 16: eaten by the `{%-` below
        "{%- if flag %}",  # 17
        "after a blank line",  # 18
        "{%- endif %}",  # 19
        "",
    ]
    (template / "template" / "out.txt.jinja").write_text("\n".join(lines))
    sources = instrument(template, tmp_path / "tagged-src")
    for src, dst in ((template, tmp_path / "plain"), (tmp_path / "tagged-src", tmp_path / "tagged")):
        copier.run_copy(str(src), str(dst), defaults=True, quiet=True)

    trace = read_trace(
        template=template, plain=tmp_path / "plain", tagged=tmp_path / "tagged", sources=sources, relative="out.txt"
    )

    rendered = (tmp_path / "plain" / "out.txt").read_text().splitlines()
    assert trace.source == "template/out.txt.jinja"
    mapping = dict(zip(rendered, trace.lines))
    assert len(rendered) == len(trace.lines)
    assert mapping["head"] == 2
    assert mapping["inside a taken block"] == 4
    assert "inside a block not taken" not in mapping
    assert rendered.count("loop line") == 2 and mapping["loop line"] is None
    assert mapping["value x"] is None
    assert mapping["from a macro"] is None
    assert mapping["tail"] == 15
    assert mapping["after a blank line"] == 18


def test_an_existing_branch_is_refused_before_any_work(setup) -> None:
    template, pip = setup
    with (pip / "requirements.txt").open("a") as handle:
        handle.write("rich\n")
    commit_all(pip, "a requirement")
    git(template.path, "branch", "taken")
    result = backport(pip, "--branch", "taken")
    assert result.returncode == 2
    assert result.stderr.strip() == f"flakewright: error: branch taken already exists in {template.path}; choose another with --branch"
    assert backport(pip, "--branch", "two words").returncode == 2


def test_deleted_file_and_line_ending_change_are_refused_with_reasons(setup) -> None:
    template, pip = setup
    (pip / "scripts" / "run").unlink()
    requirements = pip / "requirements.txt"
    requirements.write_bytes(requirements.read_bytes().replace(b"\n", b"\r\n"))
    commit_all(pip, "drop the run script, CRLF requirements")

    result = backport(pip)

    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(r"^refused: scripts/run .*: deleted in [0-9a-f]{10}; backport does not remove template files", result.stdout, re.M), result.stdout
    assert re.search(r"^refused: requirements\.txt ", result.stdout, re.M), result.stdout
    assert "Nothing was applied; the template is unchanged." in result.stdout
    assert git(template.path, "branch", "--list", "backport/*") == ""


def test_backport_reads_no_file_through_a_symlink(tmp_path: Path) -> None:
    """A fork's symlinks (to a private file, to a folder elsewhere, to another file of the repo) are refused by
    name and nothing of their targets reaches the template; odd file names and a DEST with `..` still work."""
    template = TemplateRepo.create(tmp_path / "template")
    odd = ("with space.txt", "-dash.txt")
    for name in odd:
        (template.path / "template" / name).write_text("".join(f"{name} line {n}\n" for n in range(1, 6)))
    template.release("v1.1.0")
    fork = render_tagged(template, tmp_path / "fork", "pipulate")
    private = tmp_path / "private"
    private.mkdir()
    (private / "app.js").write_text((fork / "static" / "app.js").read_text() + "// FORK-PRIVATE private line\n")
    (fork / "static" / "app.js").unlink()
    (fork / "static" / "app.js").symlink_to(private / "app.js")
    shutil.move(fork / "scripts", private / "scripts")
    (private / "scripts" / "run").write_text((private / "scripts" / "run").read_text() + "# FORK-PRIVATE in a linked folder\n")
    (fork / "scripts").symlink_to(private / "scripts")
    (fork / "requirements.txt").unlink()
    (fork / "requirements.txt").symlink_to("README.md")
    for name in odd:
        (fork / name).write_text((fork / name).read_text().replace("line 3\n", "line 3, edited\n"))
    server = fork / SERVER
    line = literal_line(template.source(SERVER), server, from_end=True)
    server.write_text(server.read_text().replace(f"{line}\n", f"{line}  # edited\n", 1))
    commit_all(fork, "links and edits")

    result = backport(tmp_path / "elsewhere" / ".." / "fork")

    assert result.returncode == 1, result.stdout + result.stderr
    for path, link in (("static/app.js", "static/app.js"), ("scripts/run", "scripts"), ("requirements.txt", "requirements.txt")):
        assert re.search(rf"^refused: {re.escape(path)} .*: {re.escape(link)} is a symlink in ", result.stdout, re.M), result.stdout
    branch = re.search(r"Committed on branch (\S+)", result.stdout).group(1)
    base = git(template.path, "rev-parse", "v1.1.0").strip()
    changed = git(template.path, "diff", "--name-only", base, branch).splitlines()
    assert sorted(changed) == sorted([f"template/{name}" for name in odd] + [template.source(SERVER).relative_to(template.path).as_posix()])
    assert "FORK-PRIVATE" not in git(template.path, "diff", base, branch)
    for name in odd:
        assert f"{name} line 3, edited" in git(template.path, "show", f"{branch}:template/{name}")


BAD_BRANCHES = ["-m", "-f", "--force", "--help", "-D", "@{-1}", "HEAD", "a..b", "two words"]


def test_branch_names_git_would_misread_are_refused_and_change_nothing(setup) -> None:
    """`--branch=-m` once ran `git branch -m` and renamed the checkout's main; refs from --to and the answers
    file are never options either."""
    template, pip = setup
    server = pip / SERVER
    line = literal_line(template.source(SERVER), server, from_end=True)
    server.write_text(server.read_text().replace(f"{line}\n", f"{line}  # edited\n", 1))
    commit_all(pip, "a literal edit")
    git(template.path, "checkout", "-q", "-b", "other")
    git(template.path, "checkout", "-q", "main")  # so that @{-1} names a branch
    refs = git(template.path, "for-each-ref", "--format=%(refname) %(objectname)")

    for name in BAD_BRANCHES:
        result = backport(pip, f"--branch={name}")
        assert result.returncode == 2, (name, result.stdout + result.stderr)
        assert result.stderr.strip() == f"flakewright: error: {name!r} is not a valid branch name; choose another with --branch"
        assert "Committed" not in result.stdout
        assert git(template.path, "for-each-ref", "--format=%(refname) %(objectname)") == refs, name
        assert git(template.path, "symbolic-ref", "HEAD").strip() == "refs/heads/main", name

    for option in ("-m", "--all", "--git-dir"):
        moved = flakewright("update", pip, f"--to={option}")
        assert moved.returncode == 2 and len(moved.stderr.strip().splitlines()) == 1, moved.stderr
        assert f"{option} is neither a release nor a git ref" in moved.stderr
    answers = pip / ANSWERS
    answers.write_text(answers.read_text().replace("_commit: v1.0.0", "_commit: --all"))
    commit_all(pip, "a tampered answers file")
    for command in ("update", "check", "backport"):
        refused = flakewright(command, pip) if command != "backport" else backport(pip)
        assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert "_commit: --all, which is no template or commit" in refused.stderr
    assert git(pip, "status", "--porcelain", "--untracked-files=all") == ""
    assert git(template.path, "for-each-ref", "--format=%(refname) %(objectname)") == refs


def test_a_repo_folder_git_would_refuse_in_a_branch_name_still_gets_one(setup, tmp_path: Path) -> None:
    template, pip = setup
    fork = shutil.move(pip, tmp_path / "-my fork")
    server = Path(fork) / SERVER
    line = literal_line(template.source(SERVER), server, from_end=True)
    server.write_text(server.read_text().replace(f"{line}\n", f"{line}  # edited\n", 1))
    commit_all(Path(fork), "a literal edit")

    result = backport(fork)

    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"Committed on branch backport/my-fork ", result.stdout), result.stdout
    assert git(template.path, "branch", "--list", "backport/*").split() == ["backport/my-fork"]


def uv_env() -> dict[str, str]:
    """uv run the way scripts/relock.py runs it: this Python, no download."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")}
    return env | {"UV_PYTHON": sys.executable, "UV_PYTHON_DOWNLOADS": "never"}


def replace_line(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(f"{old}\n") == 1, old
    path.write_text(text.replace(f"{old}\n", f"{new}\n"))


@pytest.fixture
def busy_fork(tmp_path: Path) -> tuple[TemplateRepo, Path, dict[str, str]]:
    """A template that ships scripts/relock.py, and a fork with four commits since its render: team notes in
    README.md, a private route in server.py, a two-line fix in server.py, and `rich` in pyproject.toml with
    a hand-edited requirements.txt."""
    template = TemplateRepo.create(tmp_path / "template")
    (template.path / "scripts").mkdir()
    shutil.copy2(REPO / "scripts" / "relock.py", template.path / "scripts" / "relock.py")
    template.release("v1.1.0")
    fork = render_tagged(template, tmp_path / "fork", "pipulate")
    commits = {}
    with (fork / "README.md").open("a") as handle:
        handle.write("\n## Team notes\n\nAsk Dana before touching the importer.\n")
    commit_all(fork, "team notes")
    server = fork / SERVER
    first = literal_line(template.source(SERVER), server)
    replace_line(server, first, first + "\n\n\ndef private_health():\n    return 'ok'")
    commit_all(fork, "a private /health route")
    source_lines = template.source(SERVER).read_text().splitlines()
    fixed = [line for line in source_lines if line.startswith("    ") and "{" not in line and "%" not in line
             and source_lines.count(line) == 1 and server.read_text().splitlines().count(line) == 1][-2:]
    for line in fixed:
        replace_line(server, line, line + "  # fixed")
    commit_all(fork, "the fix")
    commits["fix"] = git(fork, "rev-parse", "HEAD").strip()
    replace_line(fork / "pyproject.toml", '    "requests",', '    "requests",\n    "rich",')
    with (fork / "requirements.txt").open("a") as handle:
        handle.write("rich==14.0.0\n")
    commit_all(fork, "rich")
    commits["rich"] = git(fork, "rev-parse", "HEAD").strip()
    return template, fork, {**commits, "fixed": "\n".join(fixed)}


def test_backport_sends_exactly_the_named_commit(busy_fork) -> None:
    """The fix travels alone: not the README notes, not the private route, not `rich`."""
    template, fork, commits = busy_fork
    result = backport(fork, commits["fix"])

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Sending 1 commit(s):" in result.stdout and "the fix" in result.stdout
    branch = re.search(r"Committed on branch (\S+)", result.stdout).group(1)
    diff = git(template.path, "diff", "--unified=0", "v1.1.0", branch)
    changed = [line for line in diff.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert sorted(changed) == sorted([f"-{line}" for line in commits["fixed"].splitlines()]
                                     + [f"+{line}  # fixed" for line in commits["fixed"].splitlines()]), diff
    assert git(template.path, "diff", "--name-only", "v1.1.0", branch).splitlines() == [
        template.source(SERVER).relative_to(template.path).as_posix()]


def test_backport_without_names_lists_the_commits_since_the_last_update_and_waits_for_a_yes(busy_fork) -> None:
    template, fork, _ = busy_fork
    refs = git(template.path, "for-each-ref")

    dry = flakewright("backport", "-C", fork, "--dry-run")

    assert dry.returncode == 0, dry.stdout + dry.stderr
    listed = dry.stdout.split("Sending 4 commit(s):\n", 1)[1].splitlines()[:4]
    assert [line.split(" ", 3)[-1] for line in listed] == ["team notes", "a private /health route", "the fix", "rich"]
    assert "+## Team notes" in dry.stdout and '+    "rich",' in dry.stdout
    assert "relocked: requirements.txt" in dry.stdout and "would also relock template/_locks" in dry.stdout
    no_tty = flakewright("backport", "-C", fork)
    assert no_tty.returncode == 2 and no_tty.stdout == ""
    assert no_tty.stderr.strip().splitlines() == [
        "flakewright: error: backport commits only after a yes: run it on a terminal, or pass --yes "
        "(--dry-run shows what it would send)"]
    assert git(template.path, "for-each-ref") == refs and git(template.path, "status", "--porcelain") == ""


def test_a_pyproject_change_relocks_the_template_and_a_render_from_the_branch_installs(busy_fork, tmp_path: Path) -> None:
    """`rich` in pyproject.toml without its locks once broke `source scripts/venv.sh` in every render."""
    need("uv")
    template, fork, commits = busy_fork

    result = backport(fork, commits["rich"])

    assert result.returncode == 0, result.stdout + result.stderr
    assert "relocked: requirements.txt" in result.stdout and "lock file(s) relocked" in result.stdout
    branch = re.search(r"Committed on branch (\S+)", result.stdout).group(1)
    changed = git(template.path, "diff", "--name-only", "v1.1.0", branch).split()
    assert "template/pyproject.toml.jinja" in changed
    assert {"template/_locks/web/uv.lock", "template/_locks/web/requirements.txt"} <= set(changed), changed
    fresh = tmp_path / "fresh"
    made = flakewright("new", "pipulate", fresh, "--template", template.path, "--defaults", "--vcs-ref", branch)
    assert made.returncode == 0, made.stderr
    assert '"rich",' in (fresh / "pyproject.toml").read_text()
    checked = subprocess.run(["uv", "lock", "--check", "--offline"], cwd=fresh, env=uv_env(), capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert re.search(r"^rich==", (fresh / "requirements.txt").read_text(), re.M)
    assert "rich==14.0.0" not in (fresh / "requirements.txt").read_text()  # the fork's hand edit never travels


def test_bad_names_get_one_line_and_change_nothing(busy_fork, tmp_path: Path) -> None:
    template, fork, commits = busy_fork
    (fork / "NOTES.md").write_text("mine\n")
    commit_all(fork, "notes")
    (tmp_path / "outside.txt").write_text("not the fork's\n")
    template_commit = git(template.path, "rev-parse", "HEAD").strip()
    refs, status = git(template.path, "for-each-ref"), git(fork, "status", "--porcelain")
    cases = {
        ("deadbeef",): "deadbeef is not a commit of",
        (template_commit,): f"{template_commit} is not a commit of",
        (str(fork),): f"is not a commit of {fork}; to name the repo, pass -C {fork}",
        ("--", "../outside.txt"): "../outside.txt is outside",
        ("--", str(tmp_path / "outside.txt")): "outside.txt is outside",
        ("--", "NOTES.md"): "NOTES.md is no file the template renders",
        (commits["fix"], "--", "missing.py"): "missing.py is no file the template renders",
        ("--branch=-m", commits["fix"]): "'-m' is not a valid branch name",
    }
    for args, message in cases.items():
        result = backport(fork, *args)
        assert result.returncode == 2, (args, result.stdout + result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, (args, result.stderr)
        assert git(template.path, "for-each-ref") == refs and git(fork, "status", "--porcelain") == status
    first = git(fork, "rev-list", "--max-parents=0", "HEAD").strip()
    refused = backport(fork, first)
    assert refused.returncode == 2 and "the render itself" in refused.stderr


def test_named_files_are_sent_whole_and_limit_named_commits(busy_fork) -> None:
    template, fork, commits = busy_fork
    readme = backport(fork, "--branch", "readme", "--", "README.md")
    assert readme.returncode == 0, readme.stdout + readme.stderr
    assert "Sending the named files" in readme.stdout
    assert git(template.path, "diff", "--name-only", "v1.1.0", "readme").split() == ["template/README.md.jinja"]
    limited = backport(fork, "--branch", "limited", commits["rich"], "--", "requirements.txt")
    assert limited.returncode == 1, limited.stdout + limited.stderr  # sent, with the expected refusal of a lock file
    assert "refused: requirements.txt" in limited.stdout and "a lock file is never sent" in limited.stdout
    assert "Nothing was applied" in limited.stdout


def test_notebook_cell_lines_are_backported_and_its_title_is_refused_with_its_own_line(setup) -> None:
    """Every cell line of the starter notebook is a template line; only the title is Jinja's."""
    template, pip = setup
    notebook = pip / "notebooks" / "starter.ipynb"
    source = template.source("notebooks/starter.ipynb")
    cell_line = '    "DATA.mkdir(mode=0o700, parents=True, exist_ok=True)\\n",'
    markdown_line = '    "## Run a tool from the notebook\\n",'
    title_line = next(line for line in notebook.read_text().splitlines() if line.startswith('    "# '))
    replace_line(notebook, cell_line, '    "DATA.mkdir(mode=0o750, parents=True, exist_ok=True)\\n",')
    replace_line(notebook, markdown_line, '    "## Run one of the app\'s tools from here\\n",')
    replace_line(notebook, title_line, '    "# Team Lab: starter notebook\\n",')
    commit_all(pip, "notebook edits")

    result = backport(pip)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "partly applied: notebooks/starter.ipynb" in result.stdout and "2 hunk(s) applied, 1 not" in result.stdout
    shown = result.stdout.split("from the template lines:\n", 1)[1].splitlines()
    numbered = [n for n, line in enumerate(source.read_text().splitlines(), start=1) if "md_text(app_title" in line]
    assert len(numbered) == 1 and shown[0] == f"    {numbered[0]:>5} | {source.read_text().splitlines()[numbered[0] - 1]}"
    assert not shown[1].startswith("    ") or "|" not in shown[1], result.stdout  # the title line alone
    branch = re.search(r"Committed on branch (\S+)", result.stdout).group(1)
    patched = git(template.path, "show", f"{branch}:{source.relative_to(template.path).as_posix()}")
    assert '    "DATA.mkdir(mode=0o750, parents=True, exist_ok=True)\\n",' in patched.splitlines()
    assert '    "## Run one of the app\'s tools from here\\n",' in patched.splitlines()
    assert "Team Lab" not in patched


def test_exit_codes_tell_expected_refusals_from_a_failure(setup) -> None:
    """1: sent, with refusals each named (a lock file, a Jinja line): the rest is committed. 3: failed, nothing
    committed (here: a pyproject.toml change, and a template without scripts/relock.py to relock with)."""
    template, pip = setup
    server = pip / SERVER
    line = literal_line(template.source(SERVER), server, from_end=True)
    replace_line(server, line, f"{line}  # edited")
    with (pip / "requirements.txt").open("a") as handle:
        handle.write("rich==14.0.0\n")
    commit_all(pip, "a literal edit, a hand-edited lock")
    sent = backport(pip)
    assert sent.returncode == 1, sent.stdout + sent.stderr
    assert "refused: requirements.txt" in sent.stdout and "Committed on branch backport/pip" in sent.stdout

    replace_line(pip / "pyproject.toml", '    "requests",', '    "requests",\n    "rich",')
    commit_all(pip, "rich")
    refs = git(template.path, "for-each-ref")
    failed = backport(pip, "HEAD")
    assert failed.returncode == 3, failed.stdout + failed.stderr
    assert failed.stderr.strip().splitlines() == [
        "flakewright: error: the template has no scripts/relock.py to relock template/_locks after the "
        "pyproject.toml change; nothing was committed"]
    assert git(template.path, "for-each-ref") == refs


def test_after_a_partial_backport_lands_the_fork_updates_without_false_conflicts(tmp_path: Path) -> None:
    """The fork edits TITLE (Jinja's: refused) and the HOST line under it (sent); the template merges and releases
    the backport; the fork's update must not turn its own TITLE line into a conflict."""
    template = TemplateRepo.create(tmp_path / "template")
    fork = render_tagged(template, tmp_path / "fork", "pipulate")
    server = fork / SETTINGS
    title = next(line for line in server.read_text().splitlines() if line.startswith("TITLE = "))
    host = 'HOST = os.environ.get("HOST", "127.0.0.1")'
    replace_line(server, title, 'TITLE = "Team Console"')
    replace_line(server, host, host + ".strip()")
    commit_all(fork, "title and host")
    sent = backport(fork)
    assert sent.returncode == 1 and "1 hunk(s) applied, 1 not" in sent.stdout, sent.stdout
    git(template.path, "merge", "-q", "--ff-only", "backport/fork")
    template.release("v2.0.0")

    updated = flakewright("update", fork)

    assert updated.returncode == 0, updated.stdout + updated.stderr
    assert 'TITLE = "Team Console"\n' + host + ".strip()\n" in server.read_text()


@pytest.mark.parametrize("answer", ["n", "y"])
def test_on_a_terminal_backport_lists_what_it_would_send_and_sends_only_after_a_yes(setup, answer: str) -> None:
    from terminal import Terminal

    template, pip = setup
    server = pip / SERVER
    line = literal_line(template.source(SERVER), server, from_end=True)
    server.write_text(server.read_text().replace(f"{line}\n", f"{line}  # the fix\n", 1))
    commit_all(pip, "the fix")
    refs = git(template.path, "for-each-ref", "--format=%(refname) %(objectname)")

    with Terminal("flakewright", "backport", "-C", pip, width=200, height=60) as term:
        asked = term.wait_for(f"Commit this to a new branch of {template.path}? [y/N]")
        assert "Sending 1 commit(s):" in asked and "the fix" in asked, asked
        assert f"applied: {SERVER}" in asked, asked
        assert git(template.path, "for-each-ref", "--format=%(refname) %(objectname)") == refs  # nothing sent yet
        term.type(answer, "Enter")
        screen = term.wait_for("EXIT=")
    assert "EXIT=0" in screen, screen
    if answer == "n":
        assert "Nothing sent; the template is unchanged." in screen, screen
        assert git(template.path, "for-each-ref", "--format=%(refname) %(objectname)") == refs
    else:
        assert re.search(r"Committed on branch backport/pip ", screen.replace("\n", "")), screen
        assert git(template.path, "branch", "--list", "backport/*").split() == ["backport/pip"]
        sent = git(template.path, "diff", "v1.0.0", "backport/pip")
        assert f"+{line}  # the fix" in sent.splitlines(), sent
    assert git(template.path, "status", "--porcelain") == ""
