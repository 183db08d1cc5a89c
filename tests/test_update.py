"""`flakewright update` against real git and real copier, in temp dirs.

Each scenario builds a template repo from this repo's copier.yml + template/,
tags it v1.0.0, renders a derived repo, lets a "user" commit edits, changes the
template and tags v2.0.0, then runs the real CLI. Anchor lines are located at
test time (other engineers are still writing server.py and flake.nix), so the
tests depend on the shape of the files, not on their content.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from helpers import (ANSWERS, REPO, VARIANTS, TemplateRepo, assert_same_tree, commit_all, conflict_marked, flakewright,
                     git, insert_after, listed, literal_line, render_tagged, tree_files)


@dataclass(frozen=True)
class Scenario:
    """Which rendered files play which role for one variant."""

    variant: str
    user_appends_to: str  # the user's "new route": appended at the end
    template_edits_top_of: str  # template change away from the user's edit


SCENARIOS = [
    Scenario("darwinix", user_appends_to="flake.nix", template_edits_top_of="README.md"),
    Scenario("pipulate", user_appends_to="server.py", template_edits_top_of="server.py"),
    Scenario("botifython", user_appends_to="server.py", template_edits_top_of="server.py"),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.variant)
def test_update_merges_template_changes_with_user_edits(released, tmp_path: Path, scenario: Scenario) -> None:
    template, dest = released(scenario.variant)

    # The user's edits: an appended block, a changed requirement, a new file.
    user_file = dest / scenario.user_appends_to
    assert len(user_file.read_text().splitlines()) >= 20, f"{scenario.user_appends_to} too short to edit apart"
    user_block = (
        '\n\n@rt("/user-added")\ndef user_added():\n    return "added by the user"\n'
        if user_file.suffix == ".py"
        else "\n# added by the user: keep this comment\n"
    )
    with user_file.open("a") as handle:
        handle.write(user_block)
    requirement = literal_line(template.source("pyproject.toml"), dest / "pyproject.toml")
    requirements = (dest / "pyproject.toml").read_text()
    (dest / "pyproject.toml").write_text(requirements.replace(f"{requirement}\n", f"{requirement}  # user pin\n", 1))
    (dest / "NOTES.md").write_text("user notes\n")
    commit_all(dest, "user edits")

    # The template's v2: a flake package, an edit far from the user's, a new file, an overlapping edit.
    flake_src = template.source("flake.nix")
    flake_lines = flake_src.read_text().splitlines()
    package_line = next(i for i, line in enumerate(flake_lines) if re.search(r"\bpackages\s*=.*\[|buildInputs\s*=.*\[", line))
    insert_after(flake_src, package_line, "            pkgs.ripgrep")
    top_src = template.source(scenario.template_edits_top_of)
    top_anchor = literal_line(top_src, dest / scenario.template_edits_top_of)
    top_index = top_src.read_text().splitlines().index(top_anchor)
    assert top_index < len(top_src.read_text().splitlines()) // 2, "anchor must be far from the end"
    marker = "# template v2: explains the next section" if top_src.name != "README.md.jinja" else "Template v2 note."
    insert_after(top_src, top_index, marker)
    (template.path / "template" / "CONTRIBUTING.md").write_text("How to contribute (template v2)\n")
    req_src = template.source("pyproject.toml")
    req_src.write_text(req_src.read_text().replace(f"{requirement}\n", f"{requirement}  # template v2 pin\n", 1))
    template.release("v2.0.0")

    result = flakewright("update", dest)

    assert result.returncode == 1, result.stdout + result.stderr
    # every template change arrived
    assert "pkgs.ripgrep" in (dest / "flake.nix").read_text()
    assert marker in (dest / scenario.template_edits_top_of).read_text()
    assert (dest / "CONTRIBUTING.md").read_text() == "How to contribute (template v2)\n"
    # every user edit survived
    assert user_block.strip() in user_file.read_text()
    assert (dest / "NOTES.md").read_text() == "user notes\n"
    merged_requirements = (dest / "pyproject.toml").read_text()
    assert f"{requirement}  # user pin" in merged_requirements
    assert f"{requirement}  # template v2 pin" in merged_requirements
    # exactly the overlapping edit conflicts, and the report says so
    assert conflict_marked(dest) == ["pyproject.toml"]
    assert re.search(r"conflicts \(1\):\s+pyproject\.toml", result.stdout), result.stdout
    assert listed(result.stdout, "new") == ["CONTRIBUTING.md"], result.stdout
    assert listed(result.stdout, "merged with your edits") == [scenario.user_appends_to], result.stdout
    answers = yaml.safe_load((dest / ANSWERS).read_text())
    assert answers["_commit"] == "v2.0.0"


@pytest.mark.parametrize("variant", VARIANTS)
def test_update_without_user_edits_equals_fresh_render(released, tmp_path: Path, variant: str) -> None:
    template, dest = released(variant)
    readme = template.source("README.md")
    readme.write_text(readme.read_text() + "\nTemplate v2 adds this paragraph.\n")
    (template.path / "template" / "CONTRIBUTING.md").write_text("How to contribute\n")
    template.release("v2.0.0")

    result = flakewright("update", dest)

    assert result.returncode == 0, result.stderr
    fresh = tmp_path / "fresh" / "app"
    assert flakewright("new", variant, fresh, "--template", template.path, "--defaults").returncode == 0
    assert_same_tree(dest, fresh)
    assert listed(result.stdout, "new") == ["CONTRIBUTING.md"], result.stdout
    assert listed(result.stdout, "changed") == ["README.md"], result.stdout
    assert listed(result.stdout, "merged with your edits") == listed(result.stdout, "conflicts") == [], result.stdout


def test_update_can_turn_jupyter_off_and_rename_app_title(released, tmp_path: Path) -> None:
    template, dest = released("pipulate", "-d", "jupyter=true")
    assert (dest / "notebooks").is_dir()

    refused = flakewright("update", dest, "-d", "jupyter=false", "-d", "app_title=Renamed Console")
    assert refused.returncode == 2
    assert re.search(r"remove \d+ tracked file\(s\) \(notebooks/", refused.stderr) and "--force" in refused.stderr
    assert git(dest, "status", "--porcelain", "--untracked-files=all") == ""
    assert (dest / "notebooks").is_dir()

    before = tree_files(dest)
    off = flakewright("update", dest, "-d", "jupyter=false", "-d", "app_title=Renamed Console", "--force")

    assert off.returncode == 0, off.stderr
    fresh = tmp_path / "fresh" / "app"
    created = flakewright(
        "new", "pipulate", fresh, "--template", template.path, "--defaults",
        "-d", "jupyter=false", "-d", "app_title=Renamed Console",
    )
    assert created.returncode == 0, created.stderr
    assert not (dest / "notebooks").exists()
    assert_same_tree(dest, fresh)
    removed = sorted(set(before) - set(tree_files(fresh)))
    assert removed and any(p.startswith("notebooks/") for p in removed)
    assert listed(off.stdout, "deleted") == removed, off.stdout
    answers = yaml.safe_load((dest / ANSWERS).read_text())
    assert answers["jupyter"] is False and answers["app_title"] == "Renamed Console"


def test_update_refuses_a_dirty_tree(released, tmp_path: Path) -> None:
    template, dest = released("darwinix")
    (dest / "requirements.txt").write_text("edited but not committed\n")

    result = flakewright("update", dest)

    assert result.returncode == 2
    assert "uncommitted" in result.stderr and "commit or stash" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert (dest / "requirements.txt").read_text() == "edited but not committed\n"


def test_update_outside_a_rendered_repo_is_one_line(tmp_path: Path) -> None:
    result = flakewright("update", tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "not a git repository" in result.stderr


def released_with_guide(tmp_path: Path) -> tuple[TemplateRepo, Path]:
    """A template released as v1.1.0 with a 30-line docs/guide.md, and a darwinix rendered from it."""
    template = TemplateRepo.create(tmp_path / "template")
    guide = template.path / "template" / "docs" / "guide.md"
    guide.parent.mkdir()
    guide.write_text("".join(f"guide line {n}\n" for n in range(1, 31)))
    template.release("v1.1.0")
    return template, render_tagged(template, tmp_path / "app", "darwinix")


def test_migration_carries_a_moved_file_with_user_edits(tmp_path: Path) -> None:
    """copier.yml's move_file migration, run by a v1 -> v2 release that moves a file."""
    shipped = yaml.safe_load((REPO / "copier.yml").read_text())["_migrations"]
    move_file = next(m["command"][:4] for m in shipped if "move_file" in m["command"])
    template, dest = released_with_guide(tmp_path)
    edited = (dest / "docs" / "guide.md").read_text().replace("guide line 15\n", "guide line 15, edited by the user\n")
    (dest / "docs" / "guide.md").write_text(edited)
    commit_all(dest, "user edits the guide")

    git(template.path, "mv", "template/docs/guide.md", "template/docs/handbook.md")
    config = yaml.safe_load((template.path / "copier.yml").read_text())
    config["_migrations"] = [
        {"version": "2.0.0", "when": "{{ _stage == 'after' }}", "command": [*move_file, "docs/guide.md", "docs/handbook.md"]}
    ]
    (template.path / "copier.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    template.release("v2.0.0")

    untrusted = flakewright("update", dest)
    assert untrusted.returncode == 2
    assert "--trust" in untrusted.stderr and len(untrusted.stderr.strip().splitlines()) == 1
    assert "1.1.0 -> 2.0.0 runs 1 migration(s)" in untrusted.stderr
    assert "2.0.0: move_file docs/guide.md docs/handbook.md" in untrusted.stderr
    assert git(dest, "status", "--porcelain") == ""

    trusted = flakewright("update", dest, "--trust")

    assert trusted.returncode == 0, trusted.stderr
    assert not (dest / "docs" / "guide.md").exists()
    assert (dest / "docs" / "handbook.md").read_text() == edited
    assert yaml.safe_load((dest / ANSWERS).read_text())["_commit"] == "v2.0.0"


def test_without_the_migration_the_edited_old_path_is_kept_as_a_conflict(tmp_path: Path) -> None:
    """Control for the test above: without the migration the edits do not reach the new path, but they are
    not dropped either (copier alone deletes the old path, edits and all)."""
    template, dest = released_with_guide(tmp_path)
    guide = dest / "docs" / "guide.md"
    guide.write_text(guide.read_text().replace("line 15\n", "line 15 edited\n"))
    commit_all(dest, "user edits the guide")
    git(template.path, "mv", "template/docs/guide.md", "template/docs/handbook.md")
    template.release("v2.0.0")

    result = flakewright("update", dest)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "line 15 edited" not in (dest / "docs" / "handbook.md").read_text()
    assert "line 15 edited" in guide.read_text()
    assert listed(result.stdout, "conflicts") == ["docs/guide.md (deleted upstream, edited here: kept)"], result.stdout


def test_conflicts_as_rej_files(released, tmp_path: Path) -> None:
    template, dest = released("darwinix")
    requirement = literal_line(template.source("pyproject.toml"), dest / "pyproject.toml")
    text = (dest / "pyproject.toml").read_text()
    (dest / "pyproject.toml").write_text(text.replace(f"{requirement}\n", f"{requirement}  # user\n", 1))
    commit_all(dest, "user pin")
    req_src = template.source("pyproject.toml")
    req_src.write_text(req_src.read_text().replace(f"{requirement}\n", f"{requirement}  # template\n", 1))
    template.release("v2.0.0")

    result = flakewright("update", dest, "--conflict", "rej")

    assert result.returncode == 1, result.stdout + result.stderr
    assert (dest / "pyproject.toml.rej").is_file()
    assert conflict_marked(dest) == []
    # rej mode: the file takes the template's lines, the user's hunk waits in the .rej file
    assert f"{requirement}  # template" in (dest / "pyproject.toml").read_text()
    assert f"+{requirement}  # user" in (dest / "pyproject.toml.rej").read_text()
    assert re.search(r"conflicts \(1\):\s+pyproject\.toml", result.stdout), result.stdout
    assert "1 file(s) hold conflicts (a .rej file next to it); resolve them, then commit" in result.stderr, result.stderr


def test_update_at_the_current_release_has_nothing_to_do(released, tmp_path: Path) -> None:
    template, dest = released("pipulate")
    head = git(dest, "rev-parse", "HEAD")

    result = flakewright("update", dest)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "already at 1.0.0, nothing to do"
    assert git(dest, "status", "--porcelain", "--untracked-files=all") == ""
    assert git(dest, "rev-parse", "HEAD") == head


def test_variant_change_that_removes_files_asks_for_force(released, tmp_path: Path) -> None:
    template, dest = released("pipulate")

    refused = flakewright("update", dest, "-d", "variant=darwinix")

    assert refused.returncode == 2
    assert len(refused.stderr.strip().splitlines()) == 1 and "--force" in refused.stderr
    assert (dest / "server.py").is_file()
    assert git(dest, "status", "--porcelain", "--untracked-files=all") == ""

    dry = flakewright("update", dest, "-d", "variant=darwinix", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    would_delete = re.findall(r"^  deleted\s+(\S+)$", dry.stdout, re.M)
    assert "server.py" in would_delete and (dest / "server.py").is_file()

    forced = flakewright("update", dest, "-d", "variant=darwinix", "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    deleted = forced.stdout.split(f"deleted ({len(would_delete)}):", 1)[1].split()[: len(would_delete)]
    assert deleted == would_delete
    assert not (dest / "server.py").exists()
    assert "changed" not in forced.stdout or "server.py" not in forced.stdout.split("deleted (")[0]


@pytest.mark.parametrize("answer", ["n", "y"])
def test_variant_change_on_a_terminal_asks_before_removing_files(released, answer: str, tmp_path: Path) -> None:
    from terminal import Terminal

    template, dest = released("pipulate")
    # Tall enough for the list of what the new answers remove and the report after it.
    with Terminal("flakewright", "update", dest, "-d", "variant=darwinix", width=100, height=100) as term:
        asked = term.wait_for("Remove them? [y/N]")
        assert "The new answers remove" in asked and "  server.py" in asked, asked
        term.type(answer, "Enter")
        screen = term.wait_for("EXIT=")
    if answer == "n":
        assert "EXIT=2" in screen and "nothing was changed" in screen.replace("\n", ""), screen
        assert (dest / "server.py").is_file()
        assert git(dest, "status", "--porcelain", "--untracked-files=all") == ""
    else:
        assert "EXIT=0" in screen, screen
        assert not (dest / "server.py").exists()
        assert "deleted (" in screen


def test_a_release_deleting_a_file_the_fork_edited_keeps_it_as_a_conflict(released) -> None:
    template, dest = released("darwinix")
    readme = dest / "README.md"
    readme.write_text(readme.read_text() + "\nThe user's own section.\n")
    commit_all(dest, "user edits the readme")
    git(template.path, "rm", "-q", str(template.source("README.md").relative_to(template.path)))
    template.release("v2.0.0")

    result = flakewright("update", dest)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "The user's own section." in readme.read_text()
    assert listed(result.stdout, "conflicts") == ["README.md (deleted upstream, edited here: kept)"], result.stdout
    assert listed(result.stdout, "deleted") == [], result.stdout
    assert "UD README.md" in git(dest, "status", "--porcelain").splitlines()  # "deleted by them" until decided


def test_an_edit_committed_with_the_render_is_still_the_forks_edit(released) -> None:
    """Labels come from the pristine render of the recorded version, not from the commit that wrote the answers."""
    template, dest = released("darwinix")
    readme = dest / "README.md"
    readme.write_text("The user's first line.\n" + readme.read_text())
    git(dest, "commit", "-q", "-a", "--amend", "--no-edit")  # edited before the first commit: same commit as the answers
    source = template.source("README.md")
    source.write_text(source.read_text() + "\nTemplate v2 paragraph.\n")
    template.release("v2.0.0")

    result = flakewright("update", dest)

    assert result.returncode == 0, result.stdout + result.stderr
    assert listed(result.stdout, "merged with your edits") == ["README.md"], result.stdout
    assert listed(result.stdout, "changed") == ["README.md"], result.stdout


def test_template_fixes_follow_a_file_the_fork_renamed(released) -> None:
    template, dest = released("pipulate")
    git(dest, "mv", "tools/word_count.py", "tools/words.py")
    words = dest / "tools" / "words.py"
    words.write_text(words.read_text() + "\n\n# the user's helper\n")
    commit_all(dest, "user renames the demo tool")
    drift = flakewright("check", dest)
    assert "  renamed  tools/word_count.py -> tools/words.py" in drift.stdout, drift.stdout
    assert "deleted  tools/word_count.py" not in drift.stdout, drift.stdout
    source = template.source("tools/word_count.py")
    text = source.read_text()
    source.write_text(text.replace("from pathlib import Path\n", "from pathlib import Path  # template v2 fix\n", 1))
    template.release("v2.0.0")

    result = flakewright("update", dest)

    assert result.returncode == 0, result.stdout + result.stderr
    merged = words.read_text()
    assert "from pathlib import Path  # template v2 fix" in merged and "# the user's helper" in merged
    assert not (dest / "tools" / "word_count.py").exists()
    assert listed(result.stdout, "merged with your edits") == [
        "tools/words.py (the template's change to tools/word_count.py, which you renamed)"
    ], result.stdout


def test_a_notebook_conflict_keeps_a_valid_notebook_with_both_sides(released) -> None:
    import nbformat

    template, dest = released("darwinix")
    notebook = dest / "notebooks" / "starter.ipynb"
    line = '"import numpy as np\\n",'
    assert notebook.read_text().count(line) == 1
    notebook.write_text(notebook.read_text().replace(line, '"import numpy as np  # user\\n",'))
    commit_all(dest, "user edits a cell")
    source = template.source("notebooks/starter.ipynb")
    text = source.read_text()
    for plain in (line, "import numpy as np\n"):  # the template holds the cell's line as JSON text or as Python
        if plain in text:
            source.write_text(text.replace(plain, plain.replace("np", "np  # template v2", 1), 1))
            break
    else:
        raise AssertionError("the starter notebook's template lost its numpy import")
    template.release("v2.0.0")

    result = flakewright("update", dest)

    assert result.returncode == 1, result.stdout + result.stderr
    merged = nbformat.read(notebook, as_version=4)  # copier alone leaves markers in the JSON: NotJSONError
    nbformat.validate(merged)
    sources = "\n".join(cell.source for cell in merged.cells)
    assert "import numpy as np  # user" in sources and "import numpy as np  # template v2" in sources
    assert "<<<<<<< local" in sources and ">>>>>>> remote" in sources
    assert [p.split(" (")[0] for p in listed(result.stdout, "conflicts")] == ["notebooks/starter.ipynb"], result.stdout
    assert "UU notebooks/starter.ipynb" in git(dest, "status", "--porcelain")


@pytest.mark.parametrize("conflict", ["inline", "rej"])
def test_a_template_change_conflicting_with_a_renamed_and_edited_file_names_both_paths(released, conflict: str) -> None:
    """The fork renamed the demo tool and changed the line the template changes: a conflict at the new path, with
    both sides between markers (in rej mode too: copier has no .rej to offer for a path it does not know)."""
    template, dest = released("pipulate")
    git(dest, "mv", "tools/word_count.py", "tools/words.py")
    words = dest / "tools" / "words.py"
    assert words.read_text().count("from pathlib import Path\n") == 1
    words.write_text(words.read_text().replace("from pathlib import Path\n", "from pathlib import Path  # mine\n"))
    commit_all(dest, "user renames the demo tool and edits the line the template fixes")
    source = template.source("tools/word_count.py")
    source.write_text(source.read_text().replace("from pathlib import Path\n", "from pathlib import Path  # template v2\n", 1))
    template.release("v2.0.0")

    result = flakewright("update", dest, "--conflict", conflict)

    assert result.returncode == 1, result.stdout + result.stderr
    assert listed(result.stdout, "conflicts") == [
        "tools/words.py (the template's change to tools/word_count.py, which you renamed)"
    ], result.stdout
    assert listed(result.stdout, "merged with your edits") == [], result.stdout
    text = words.read_text()
    assert "from pathlib import Path  # mine" in text and "from pathlib import Path  # template v2" in text
    assert conflict_marked(dest) == ["tools/words.py"]
    assert not (dest / "tools" / "word_count.py").exists() and not list(dest.rglob("*.rej"))
    assert "UU tools/words.py" in git(dest, "status", "--porcelain").splitlines()
    assert "1 file(s) hold conflicts (markers <<<<<<< / >>>>>>>)" in result.stderr, result.stderr
    assert ".rej" not in result.stderr, result.stderr


def test_rej_mode_merges_a_notebook_cell_by_cell_and_reports_no_rej_file(released) -> None:
    """``--conflict rej``: the notebook stays a valid notebook holding both sides (no .rej), and the report's
    footer names the .rej files there are (pyproject.toml's) and the markers the notebook holds, no more."""
    import nbformat

    template, dest = released("darwinix")
    notebook = dest / "notebooks" / "starter.ipynb"
    line = '"import numpy as np\\n",'
    assert notebook.read_text().count(line) == 1
    notebook.write_text(notebook.read_text().replace(line, '"import numpy as np  # user\\n",'))
    requirement = literal_line(template.source("pyproject.toml"), dest / "pyproject.toml")
    text = (dest / "pyproject.toml").read_text()
    (dest / "pyproject.toml").write_text(text.replace(f"{requirement}\n", f"{requirement}  # user\n", 1))
    commit_all(dest, "user edits a cell and pins a requirement")
    source = template.source("notebooks/starter.ipynb")
    text = source.read_text()
    for plain in (line, "import numpy as np\n"):  # the template holds the cell's line as JSON text or as Python
        if plain in text:
            source.write_text(text.replace(plain, plain.replace("np", "np  # template v2", 1), 1))
            break
    else:
        raise AssertionError("the starter notebook's template lost its numpy import")
    req_src = template.source("pyproject.toml")
    req_src.write_text(req_src.read_text().replace(f"{requirement}\n", f"{requirement}  # template\n", 1))
    template.release("v2.0.0")

    result = flakewright("update", dest, "--conflict", "rej")

    assert result.returncode == 1, result.stdout + result.stderr
    merged = nbformat.read(notebook, as_version=4)
    nbformat.validate(merged)
    sources = "\n".join(cell.source for cell in merged.cells)
    assert "import numpy as np  # user" in sources and "import numpy as np  # template v2" in sources
    assert "<<<<<<< local" in sources and ">>>>>>> remote" in sources
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*.rej")) == ["pyproject.toml.rej"]
    assert [p.split(" (")[0] for p in listed(result.stdout, "conflicts")] == ["notebooks/starter.ipynb", "pyproject.toml"]
    footer = [line for line in result.stderr.splitlines() if "hold conflicts" in line]
    assert footer == ["2 file(s) hold conflicts (markers <<<<<<< / >>>>>>> in 1, a .rej file next to 1); "
                      "resolve them, then commit"], result.stderr


def test_rej_mode_footer_without_a_rej_file_does_not_mention_one(released) -> None:
    """Only a notebook conflicts: the footer speaks of markers, not of .rej files there are none of."""
    import nbformat

    template, dest = released("darwinix")
    notebook = dest / "notebooks" / "starter.ipynb"
    line = '"import numpy as np\\n",'
    notebook.write_text(notebook.read_text().replace(line, '"import numpy as np  # user\\n",'))
    commit_all(dest, "user edits a cell")
    source = template.source("notebooks/starter.ipynb")
    text = source.read_text()
    plain = next(p for p in (line, "import numpy as np\n") if p in text)
    source.write_text(text.replace(plain, plain.replace("np", "np  # template v2", 1), 1))
    template.release("v2.0.0")

    result = flakewright("update", dest, "--conflict", "rej")

    assert result.returncode == 1, result.stdout + result.stderr
    nbformat.validate(nbformat.read(notebook, as_version=4))
    assert not list(dest.rglob("*.rej"))
    assert "1 file(s) hold conflicts (markers <<<<<<< / >>>>>>>); resolve them, then commit" in result.stderr, result.stderr
    assert ".rej" not in result.stderr, result.stderr
