"""The repo's own flake: three templates, a dev shell, the CLI as an app.

The flake is evaluated from a copy of the working tree's tracked and
untracked-but-not-ignored files (what a commit would hold), with flake.lock
pinning nixpkgs to the offline stand-in, so `nix flake init` never downloads.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import REPO, VARIANTS, need
from nixenv import GIT_ID, OVERRIDE, STANDIN, flake_check, flake_show, run, shell

_spec = importlib.util.spec_from_file_location("regenerate", REPO / "examples" / "regenerate.py")
regenerate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(regenerate)


@pytest.fixture(scope="module")
def root_flake(tmp_path_factory) -> Path:
    need("nix")
    dest = tmp_path_factory.mktemp("root-flake")
    files = subprocess.run(["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard", "-z"],
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            (dest / name).write_bytes(source.read_bytes())
            (dest / name).chmod(source.stat().st_mode)
    run(["nix", "flake", "lock", "--override-input", "nixpkgs", f"path:{STANDIN}", f"path:{dest}"])
    return dest


def tree(root: Path) -> dict[str, tuple[bytes, bool]]:
    """Relative path -> (content, executable) for every file under root."""
    return {
        str(p.relative_to(root)): (p.read_bytes(), os.access(p, os.X_OK))
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_flake_show_lists_the_three_templates_shells_and_app(root_flake):
    shown = flake_show(root_flake)
    assert set(shown["templates"]) == {*VARIANTS, "default"}
    assert shown["templates"]["default"]["description"] == shown["templates"]["pipulate"]["description"]
    assert set(shown["devShells"]) == set(shown["apps"]) == {"x86_64-linux", "aarch64-linux", "x86_64-darwin", "aarch64-darwin"}
    flake_check(root_flake)


@pytest.mark.parametrize("variant", VARIANTS)
def test_flake_init_gives_exactly_the_example(root_flake, tmp_path, variant):
    example = REPO / "examples" / variant
    assert example.is_dir(), f"examples/{variant} is missing: run python examples/regenerate.py"
    result = run(["nix", "flake", "init", "-t", f"path:{root_flake}#{variant}"], cwd=tmp_path)
    assert {name: content for name, (content, _) in tree(tmp_path).items()} == \
        {name: content for name, (content, _) in tree(example).items()}
    assert "nix develop" in result.stderr + result.stdout


@pytest.fixture(scope="module")
def current_root_flake(root_flake, tmp_path_factory) -> Path:
    """root_flake with examples/darwinix rendered from today's template, so shell tests see its flake.nix
    even before examples/ is regenerated (test_examples.py guards that examples/ is current)."""
    dest = tmp_path_factory.mktemp("current-root-flake") / "flake"
    shutil.copytree(root_flake, dest, symlinks=True)
    shutil.rmtree(dest / "examples" / "darwinix")
    regenerate.render_example("darwinix", dest / "examples" / "darwinix")
    return dest


def test_entering_the_shell_leaves_an_initialised_repo_clean(current_root_flake, tmp_path):
    """Nix 2.8's flake init writes every file 0644 (newer Nix keeps the bits: make it 0644 either way).

    The shell must still offer start/stop without changing a tracked file's mode, or git is dirty and the
    next `flakewright update` refuses.
    """
    repo = tmp_path / "lab"
    repo.mkdir()
    run(["nix", "flake", "init", "-t", f"path:{current_root_flake}#darwinix"], cwd=repo)
    for script in (repo / "scripts").iterdir():
        script.chmod(0o644)
    run(["git", "init", "-q"], cwd=repo)
    run(["git", "add", "-A"], cwd=repo)
    run(["git", *GIT_ID, "commit", "-q", "-m", "nix flake init"], cwd=repo)

    entered = shell(repo, 'command -v start stop && stop && "$(command -v stop)" && git status --porcelain --untracked-files=all')

    start, stop, stopped, stopped_by_path, *dirty = entered.stdout.splitlines()
    assert os.access(start, os.X_OK) and os.access(stop, os.X_OK), entered.stdout
    assert stopped == stopped_by_path == "JupyterLab is not running", entered.stdout
    assert dirty == [], f"entering the shell changed tracked files: {dirty}"
    assert not any(os.access(script, os.X_OK) for script in (repo / "scripts").iterdir())


def test_template_welcome_text_says_what_to_run_next(root_flake):
    for variant, next_step in {"darwinix": "`start`", "pipulate": "`run`", "botifython": "`run`"}.items():
        text = run(["nix", "eval", "--raw", f"path:{root_flake}#templates.{variant}.welcomeText", *OVERRIDE]).stdout
        assert "`nix develop`" in text and next_step in text, text


def test_welcome_text_steps_show_as_a_numbered_list(root_flake, tmp_path):
    """What nix flake init prints: each step on its own line, not run together into one paragraph."""
    result = run(["nix", "flake", "init", "-t", f"path:{root_flake}#darwinix"], cwd=tmp_path)
    printed = result.stdout + result.stderr
    steps = [line.strip() for line in printed.splitlines() if re.match(r"\s*\d\. ", line)]
    assert [step[:3] for step in steps] == ["1. ", "2. ", "3. ", "4. "], printed
    assert "git add -A && git commit" in steps[0], "an uncommitted tree is refused by the first update"
    assert steps[1].startswith("2. nix develop") and steps[2].startswith("3. start / stop"), printed


def test_dev_shell_for_flakewright_itself_evaluates(root_flake):
    drv = run(["nix", "eval", "--raw", f"path:{root_flake}#devShells.x86_64-linux.default.drvPath", *OVERRIDE]).stdout
    assert drv.startswith("/nix/store/") and drv.endswith(".drv")


def test_app_runs_the_cli(root_flake, tmp_path):
    need("uv", why="the app installs flakewright's source into a cached venv with uv")
    result = run(["nix", "run", f"path:{root_flake}", *OVERRIDE, "--", "--help"], env={"XDG_CACHE_HOME": str(tmp_path)})
    assert "Usage" in result.stdout and "new" in result.stdout
