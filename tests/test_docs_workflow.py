"""The update workflow in docs/cli.md, run as written: after it, the repo is clean for the next update."""
from __future__ import annotations

import os
import re
import subprocess

from helpers import GIT_ENV, REPO, flakewright, git



def documented_commit_line() -> str:
    workflow = (REPO / "docs" / "cli.md").read_text().split("Workflow:", 1)[1]
    block = re.search(r"```\n(.*?)```", workflow, re.S).group(1)
    [line] = [line for line in block.splitlines() if line.startswith("git ") and " commit" in line]
    return line


def test_documented_commit_keeps_the_files_an_update_adds(released, tmp_path):
    template, dest = released("darwinix")
    (template.path / "template" / "CONTRIBUTING.md").write_text("How to contribute (template v2)\n")
    template.release("v2.0.0")
    assert flakewright("update", dest).returncode == 0

    subprocess.run(["bash", "-c", documented_commit_line()], cwd=dest, check=True, capture_output=True,
                   env={**os.environ, **GIT_ENV})

    assert git(dest, "status", "--porcelain", "--untracked-files=all") == ""
    assert "CONTRIBUTING.md" in git(dest, "ls-files")


def test_no_doc_tells_users_to_commit_with_dash_a(render):
    """`git commit -a` skips untracked files: a release's new files would block the next update."""
    rendered = [render(variant) / "README.md" for variant in ("darwinix", "pipulate")]
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *rendered]:
        assert not re.search(r"git commit -\w*a", path.read_text()), path
