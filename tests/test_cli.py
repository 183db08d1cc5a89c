"""The `flakewright` command line: new, variants, --version, and its one-line errors."""
from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from helpers import ANSWERS, VARIANTS, TemplateRepo, assert_same_tree, flakewright, flakewright_process, tree_files


def one_line_error(result) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("flakewright: error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize("variant", VARIANTS)
def test_new_renders_the_variant_like_copier(variant: str, render, tmp_path: Path) -> None:
    dest = tmp_path / variant  # the default project_name comes from the folder, as in the render fixture
    result = flakewright("new", variant, dest, "--defaults", "--vcs-ref", "HEAD")
    assert result.returncode == 0, result.stderr
    assert f"Rendered {variant} into {dest}" in result.stdout
    assert_same_tree(dest, render(variant))
    answers = yaml.safe_load((dest / ANSWERS).read_text())
    assert answers["variant"] == variant
    assert Path(answers["_src_path"]) == Path(__file__).resolve().parent.parent


def test_new_refuses_a_non_empty_dest(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine\n")
    message = one_line_error(flakewright("new", "pipulate", tmp_path, "--defaults"))
    assert "not empty" in message and "--force" in message
    assert tree_files(tmp_path) == ["keep.txt"]
    assert (tmp_path / "keep.txt").read_text() == "mine\n"


def test_new_force_renders_into_a_non_empty_dest(plain_template: Path, tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine\n")
    result = flakewright("new", "darwinix", tmp_path, "--defaults", "--force", "-t", plain_template)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "keep.txt").read_text() == "mine\n"
    assert (tmp_path / "flake.nix").is_file()


BAD_ANSWERS = {
    "unknown variant": (["nope"], "unknown variant"),
    "project_name validator": (["pipulate", "-d", "project_name=Bad Name"], "project_name must be"),
    "app_title validator": (["pipulate", "-d", "app_title=   "], "app_title must not be empty"),
    "port validator": (["pipulate", "-d", "port=80"], "port must be a number from 1024"),
    "port not a number": (["pipulate", "-d", "port=abc"], "expected a whole number"),
    "bool not a bool": (["darwinix", "-d", "jupyter=maybe"], "expected true or false"),
    "choice": (["darwinix", "-d", "python_version=2.7"], "choose one of 3.11, 3.12, 3.13"),
    "unknown question": (["darwinix", "-d", "colour=blue"], "unknown question"),
    "derived question": (["darwinix", "-d", "env_prefix=X"], "derived"),
    "malformed data": (["darwinix", "-d", "no-equals-sign"], "is not KEY=VALUE"),
    "variant through data": (["darwinix", "-d", "variant=pipulate"], "VARIANT argument"),
}


@pytest.mark.parametrize("case", BAD_ANSWERS, ids=str)
def test_bad_answers_are_one_line_exit_2_and_write_nothing(case: str, plain_template: Path, tmp_path: Path) -> None:
    args, expected = BAD_ANSWERS[case]
    fresh, empty = tmp_path / "fresh", tmp_path / "empty"
    empty.mkdir()
    for dest in (fresh, empty):
        variant, *rest = args
        message = one_line_error(flakewright("new", variant, dest, *rest, "--defaults", "-t", plain_template))
        assert expected in message
    assert not fresh.exists()
    assert list(empty.iterdir()) == []


def test_data_values_are_parsed_and_typed(plain_template: Path, tmp_path: Path) -> None:
    dest = tmp_path / "app"
    result = flakewright(
        "new", "pipulate", dest, "--defaults", "-t", plain_template,
        "-d", "app_title=Ops = Console", "--data", "jupyter=off", "-d", "port=6001",
        "-d", "python_version=3.11", "-d", "project_name=ops-console",
    )
    assert result.returncode == 0, result.stderr
    answers = yaml.safe_load((dest / ANSWERS).read_text())
    assert answers["app_title"] == "Ops = Console"
    assert answers["jupyter"] is False
    assert answers["port"] == 6001
    assert answers["python_version"] == "3.11"
    assert answers["project_name"] == "ops-console"


def test_unsafe_template_needs_trust(tmp_path: Path) -> None:
    template = TemplateRepo.create(tmp_path / "template")
    config = template.path / "copier.yml"
    config.write_text(config.read_text() + "\n_tasks:\n  - touch task-ran\n")
    template.release("v1.1.0")

    message = one_line_error(flakewright("new", "darwinix", tmp_path / "untrusted", "-t", template.path, "--defaults"))
    assert "--trust" in message
    assert not (tmp_path / "untrusted").exists()

    trusted = flakewright("new", "darwinix", tmp_path / "trusted", "-t", template.path, "--defaults", "--trust")
    assert trusted.returncode == 0, trusted.stderr
    assert (tmp_path / "trusted" / "task-ran").exists()


def test_unreachable_template_is_one_line(tmp_path: Path) -> None:
    message = one_line_error(flakewright("new", "darwinix", tmp_path / "x", "-t", tmp_path / "missing", "--defaults"))
    assert message == "flakewright: error: new failed: Local template must be a directory."
    assert not (tmp_path / "x").exists()


def test_variants_table_lists_each_variant_and_what_it_adds() -> None:
    result = flakewright("variants")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    for name, adds in (("darwinix", "JupyterLab"), ("pipulate", "FastHTML"), ("botifython", "Botify API token")):
        row = next(i for i, line in enumerate(lines) if line.startswith(name))
        following = " ".join(lines[row : row + 4])
        assert adds in following, (name, result.stdout)


def test_version() -> None:
    result = flakewright_process("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"flakewright {version('flakewright')}"


def test_usage_errors_are_one_line_from_the_console_script(plain_template: Path, tmp_path: Path) -> None:
    assert "Missing argument" in one_line_error(flakewright_process("new"))
    assert "--conflict" in one_line_error(flakewright_process("update", "--conflict", "sideways"))
    assert "No such command" in one_line_error(flakewright_process("frobnicate"))
    bad = one_line_error(flakewright_process("new", "pipulate", tmp_path / "x", "-d", "port=80", "-t", plain_template))
    assert "port must be a number" in bad
    assert not (tmp_path / "x").exists()


def test_no_arguments_shows_help() -> None:
    result = flakewright_process()
    assert result.returncode == 0
    for command in ("new", "variants", "update", "check"):
        assert f"  {command} " in result.stdout


def test_new_force_over_a_directory_where_a_file_renders_is_one_line_and_writes_nothing(plain_template: Path, tmp_path: Path) -> None:
    (tmp_path / "server.py").mkdir()
    (tmp_path / "server.py" / "mine.txt").write_text("mine\n")
    (tmp_path / "keep.txt").write_text("keep\n")
    message = one_line_error(flakewright("new", "pipulate", tmp_path, "--defaults", "--force", "-t", plain_template))
    assert f"{tmp_path / 'server.py'} is a directory where the template renders a file" in message
    assert tree_files(tmp_path) == ["keep.txt", "server.py/mine.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt", "server.py"]


def test_new_force_over_a_file_where_a_directory_renders_is_one_line(plain_template: Path, tmp_path: Path) -> None:
    (tmp_path / "static").write_text("a file\n")
    message = one_line_error(flakewright("new", "pipulate", tmp_path, "--defaults", "--force", "-t", plain_template))
    assert "static is a file where the template renders a directory" in message
    assert tree_files(tmp_path) == ["static"]


@pytest.mark.parametrize("raw", [b"app_title=caf\xe9", b"project_name=\xff\xfe", b"app_\xe9=x"], ids=["latin-1", "bytes", "key"])
def test_non_utf8_answer_is_one_line(raw: bytes, plain_template: Path, tmp_path: Path) -> None:
    import os

    message = one_line_error(
        flakewright_process("new", "pipulate", tmp_path / "x", "--defaults", "-t", plain_template, "-d", os.fsdecode(raw))
    )
    assert "is not UTF-8 text" in message and "codec" not in message
    assert not (tmp_path / "x").exists()


def children_running(pid: int, program: str) -> bool:
    """Whether a child process of `pid` runs `program` (Linux's /proc)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and (stat.parent / "comm").read_text().strip() == program:
                return True
        except (OSError, IndexError, ValueError):  # the process ended while we looked
            continue
    return False


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_signal_during_new_leaves_no_dest(signame: str, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    template = TemplateRepo.create(tmp_path / "template")
    config = template.path / "copier.yml"
    config.write_text(config.read_text() + "\n_tasks:\n  - exec sleep 60\n")
    template.release("v1.1.0")
    parent = tmp_path / "out"
    parent.mkdir()
    dest = parent / "app"
    process = subprocess.Popen(
        [sys.executable, "-m", "flakewright", "new", "darwinix", str(dest), "-t", str(template.path), "--defaults", "--trust"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    # Wait until the render is done and its task's `sleep` runs: a signal while copier is still starting that
    # process could leave it behind, holding the output pipes open.
    deadline = time.monotonic() + 60
    while not children_running(process.pid, "sleep"):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the render never reached its task"
        time.sleep(0.05)
    process.send_signal(getattr(signal, signame))
    stdout, stderr = process.communicate(timeout=30)

    assert process.returncode == 130, stdout + stderr
    assert stderr.strip() == "flakewright: interrupted; nothing was changed"
    assert not dest.exists()
    assert list(parent.iterdir()) == []


def test_interactive_validation_message_wraps_instead_of_being_cut(plain_template: Path, tmp_path: Path) -> None:
    """A 40-column terminal shows the whole validator message, wrapped (prompt_toolkit would cut it)."""
    from terminal import Terminal

    expected = "project_name must be 2-40 lowercase letters, digits or dashes, starting with a letter"
    with Terminal("flakewright", "new", "pipulate", tmp_path / "app", "-t", plain_template, width=40) as term:
        assert "Repo slug" in term.wait_for("Repo slug")
        term.type("C-u", "Bad Name", "Enter")
        screen = term.wait_for(expected)
    assert expected in screen.replace("\n", ""), screen
    assert max(len(line) for line in screen.splitlines()) <= 40
    assert not (tmp_path / "app").exists()


def test_the_prompt_toolkit_shape_the_wrap_patch_relies_on() -> None:
    from prompt_toolkit.layout import Window
    from prompt_toolkit.widgets.toolbars import ValidationToolbar

    from flakewright._console import wrap_validation_messages

    wrap_validation_messages()
    toolbar = ValidationToolbar()
    window = toolbar.container.content
    assert isinstance(window, Window) and window.content is toolbar.control
    assert window.wrap_lines() and window.height is None  # Filter objects are callable


@pytest.mark.parametrize("args", [["--help"], ["--version"], []], ids=str)
def test_help_and_version_load_neither_copier_nor_package_metadata(args: list[str]) -> None:
    """Start-up cost: --help must not pay for copier (issue 14's <= 1.0x copier --help)."""
    import subprocess
    import sys

    probe = (
        "import runpy, sys\n"
        f"sys.argv = ['flakewright', *{args!r}]\n"
        "try:\n    runpy.run_module('flakewright', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('copier', 'plumbum', 'jinja2', 'questionary')"
        " or m == 'importlib.metadata')\n"
        "sys.stderr.write(repr(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.stderr == "[]", result.stderr
    assert "flakewright" in result.stdout
