"""copier.yml's questions: project_name's default comes from DEST's folder, and help texts fit the variant."""
from __future__ import annotations

import re
import sys

import jinja2
import jinja2.sandbox
import pexpect  # installed with ipykernel (IPython's dependency on POSIX)
import pytest
import yaml

from helpers import REPO, VARIANTS, flags, flakewright

FOLDERS = {
    "my-lab": "my-lab",
    "My_Lab": "my-lab",
    "Ops Console v2": "ops-console-v2",
    "2024 report": "report",
    "lab.": "lab",
    "a" * 50: "a" * 40,
    "a" * 39 + "-b": "a" * 39,
    "_": "darwinix",
    "x": "darwinix",
    "2024": "darwinix",
    "Été": "darwinix",
}


def answers(dest) -> dict:
    return yaml.safe_load((dest / ".copier-answers.yml").read_text())


@pytest.mark.parametrize("folder", FOLDERS, ids=[f"{k!r}" for k in FOLDERS])
def test_default_project_name_is_the_folder_as_a_slug(plain_template, tmp_path, folder):
    result = flakewright("new", "darwinix", tmp_path / folder, "--defaults", "--template", plain_template)

    assert result.returncode == 0, result.stderr
    assert answers(tmp_path / folder)["project_name"] == FOLDERS[folder]


@pytest.mark.parametrize("variant", VARIANTS)
def test_defaults_ship_jupyter_everywhere_and_the_demo_in_web_apps(render, variant):
    """Notebooks are where tools come from, so JupyterLab is on by default; the demo (todos, chat, the
    word-count tool) is asked, and on by default, only where there is a web app."""
    recorded = answers(render(variant))
    assert recorded["jupyter"] is True
    if flags({"variant": variant})["web"]:
        assert recorded["demo"] is True
    else:
        assert "demo" not in recorded


def test_relative_dest_and_dot_use_the_real_folder_name(plain_template, tmp_path, monkeypatch):
    (tmp_path / "Field Notes").mkdir()
    monkeypatch.chdir(tmp_path / "Field Notes")
    assert flakewright("new", "pipulate", ".", "--defaults", "--template", plain_template).returncode == 0
    rendered = answers(tmp_path / "Field Notes")
    assert rendered["project_name"] == "field-notes" and rendered["app_title"] == "Field Notes"
    assert 'DB_FILE = DATA / "field-notes.db"' in (tmp_path / "Field Notes" / "settings.py").read_text()


def test_an_explicit_project_name_wins_over_the_folder(plain_template, tmp_path):
    dest = tmp_path / "folder-name"
    result = flakewright("new", "darwinix", dest, "--defaults", "-d", "project_name=chosen", "--template", plain_template)
    assert result.returncode == 0, result.stderr
    assert answers(dest)["project_name"] == "chosen"


def help_texts(**flags: object) -> dict[str, str]:
    """Every asked question's help as copier renders it for ``flags`` (same Jinja, sandboxed)."""
    questions = yaml.safe_load((REPO / "copier.yml").read_text())
    env = jinja2.sandbox.SandboxedEnvironment(undefined=jinja2.StrictUndefined)
    return {
        name: env.from_string(spec["help"]).render(**flags)
        for name, spec in questions.items()
        if not name.startswith("_") and isinstance(spec, dict) and spec.get("when") is not False
    }


def test_darwinix_is_not_asked_about_a_database_or_a_page():
    darwinix = " ".join(help_texts(web=False, botify=False).values()).lower()
    pipulate = " ".join(help_texts(web=True, botify=False).values()).lower()
    for web_only in ("database", "page title", "env vars"):
        assert web_only not in darwinix
        assert web_only in pipulate, f"control: the web variants' help mentions {web_only!r}"


def prompts(variant: str, dest, template, *, offers: str) -> str:
    """The project_name and app_title prompts `flakewright new VARIANT DEST` shows in a terminal; fails
    unless project_name offers ``offers`` as its default (which Enter then takes)."""
    child = pexpect.spawn(sys.executable, ["-m", "flakewright", "new", variant, str(dest), "--template", str(template)],
                          encoding="utf-8", timeout=60, dimensions=(40, 200))
    try:
        child.expect(r"Repo slug[^\r\n]*")
        shown = child.after
        child.expect_exact(offers)
        child.send("\r")
        child.expect(r"Human-readable title[^\r\n]*")
        shown += "\n" + child.after
    finally:
        child.terminate(force=True)
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown)


def test_darwinix_prompts_fit_it_and_offer_the_folder_name(plain_template, tmp_path):
    darwinix = prompts("darwinix", tmp_path / "My_Lab", plain_template, offers="my-lab")
    assert "shell banner" in darwinix, darwinix
    assert "database" not in darwinix and "page title" not in darwinix, darwinix
    pipulate = prompts("pipulate", tmp_path / "Shop Floor", plain_template, offers="shop-floor")
    assert "database" in pipulate and "page title" in pipulate, pipulate


@pytest.mark.parametrize("prefix", ["A${x}", "a", "1A", "A-B", "A B", "A'", ""])
def test_an_env_prefix_given_to_copier_itself_must_be_a_name(plain_template, tmp_path, prefix):
    """flakewright refuses `-d env_prefix` (it is derived); `copier copy -d` would render it bare into Nix, shell
    and Python, so copier's own run refuses anything but a name, and writes nothing."""
    import copier

    with pytest.raises(ValueError, match="env_prefix must be capital letters, digits and _"):
        copier.run_copy(str(plain_template), str(tmp_path / "app"), data={"variant": "pipulate", "env_prefix": prefix},
                        defaults=True, quiet=True)
    assert not (tmp_path / "app" / "settings.py").exists()
    copier.run_copy(str(plain_template), str(tmp_path / "fine"), data={"variant": "pipulate", "env_prefix": "MY_APP2"},
                    defaults=True, quiet=True)
    assert 'ENV_PREFIX = "MY_APP2"' in (tmp_path / "fine" / "settings.py").read_text()
