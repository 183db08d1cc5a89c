"""The repo's own flake: three templates, a dev shell, the CLI as an app.

The flake is evaluated from a copy of the working tree's tracked and
untracked-but-not-ignored files (what a commit would hold), with flake.lock
pinning nixpkgs to the offline stand-in, so `nix flake init` never downloads.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from conftest import VARIANTS, need
from nixenv import OVERRIDE, REPO, STANDIN, flake_check, flake_show, git_checkout, run, shell


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


def test_shell_of_an_initialised_repo_has_executable_scripts(root_flake, tmp_path):
    """Nix 2.8's flake init writes every file 0644; the shellHook restores the scripts' bits."""
    run(["nix", "flake", "init", "-t", f"path:{root_flake}#darwinix"], cwd=tmp_path)
    repo = git_checkout(tmp_path, tmp_path.parent / f"{tmp_path.name}-repo")
    shell(repo, "true")
    for name in ("start", "stop"):
        assert os.access(repo / "scripts" / name, os.X_OK), name


def test_template_welcome_text_says_what_to_run_next(root_flake):
    for variant, next_step in {"darwinix": "`start`", "pipulate": "`run`", "botifython": "`run`"}.items():
        text = run(["nix", "eval", "--raw", f"path:{root_flake}#templates.{variant}.welcomeText", *OVERRIDE]).stdout
        assert "`nix develop`" in text and next_step in text, text


def test_dev_shell_for_flakewright_itself_evaluates(root_flake):
    drv = run(["nix", "eval", "--raw", f"path:{root_flake}#devShells.x86_64-linux.default.drvPath", *OVERRIDE]).stdout
    assert drv.startswith("/nix/store/") and drv.endswith(".drv")


def test_app_runs_the_cli(root_flake, tmp_path):
    need("uv", why="the app installs flakewright's source into a cached venv with uv")
    result = run(["nix", "run", f"path:{root_flake}", *OVERRIDE, "--", "--help"], env={"XDG_CACHE_HOME": str(tmp_path)})
    assert "Usage" in result.stdout and "new" in result.stdout
