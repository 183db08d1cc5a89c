"""A user's own tools survive `flakewright update`: no conflict, byte for byte, while the template's tools change.

Each scenario renders a web variant from a template repo tagged v1.0.0, lets the user add a tool module, a
helper module and a notebook under tools/, then releases a v2.0.0 that edits the template's own tool
(tools/word_count.py), server.py and adds a tool of its own, and runs the real CLI.
"""
from __future__ import annotations

import re

import nbformat
import pytest
import yaml

from helpers import ANSWERS, WEB, commit_all, conflict_marked, flakewright, git, insert_after, listed, literal_line

USER_TOOL = '''"""Sales reports for the team."""
from pathlib import Path

import pandas as pd

from tools._money import euros


def sales_by_country(orders: Path) -> pd.DataFrame:
    """Total sales per country."""
    return pd.read_csv(orders).groupby("country")["amount"].sum().map(euros).reset_index()
'''
USER_HELPER = 'def euros(amount: float) -> str:\n    return f"{amount:,.2f} \\u20ac"\n'
TEMPLATE_TOOL = '''"""Added by template v2."""


def template_v2_tool(name: str) -> str:
    """Greets."""
    return f"Hello, {name}"
'''


def user_notebook() -> bytes:
    """A notebook as JupyterLab saves it: a tagged parameters cell, a cell with an output."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("months = 12  # how many months", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("months * 2", execution_count=1,
                                  outputs=[nbformat.v4.new_output("execute_result", {"text/plain": "24"},
                                                                  execution_count=1)]),
    ]
    return (nbformat.writes(notebook) + "\n").encode()


@pytest.mark.parametrize("variant", WEB)
def test_users_tools_come_through_an_update_byte_for_byte(released, variant: str) -> None:
    template, dest = released(variant)
    mine = {
        "tools/sales.py": USER_TOOL.encode(),
        "tools/_money.py": USER_HELPER.encode(),
        "tools/forecast.ipynb": user_notebook(),
    }
    for path, content in mine.items():
        (dest / path).write_bytes(content)
    commit_all(dest, "my tools")

    word_count = template.source("tools/word_count.py")
    anchor = literal_line(word_count, dest / "tools" / "word_count.py", from_end=True)
    insert_after(word_count, word_count.read_text().splitlines().index(anchor), "# template v2: word count")
    server = template.source("server.py")
    server_anchor = literal_line(server, dest / "server.py")
    insert_after(server, server.read_text().splitlines().index(server_anchor), "# template v2: server")
    word_count.with_name("greet.py").write_text(TEMPLATE_TOOL)
    template.release("v2.0.0")

    result = flakewright("update", dest)

    assert result.returncode == 0, result.stdout + result.stderr
    assert {path: (dest / path).read_bytes() for path in mine} == mine
    assert conflict_marked(dest) == [] and not list(dest.rglob("*.rej"))
    assert "# template v2: word count" in (dest / "tools" / "word_count.py").read_text()
    assert "# template v2: server" in (dest / "server.py").read_text()
    assert (dest / "tools" / "greet.py").read_text() == TEMPLATE_TOOL
    assert listed(result.stdout, "changed") == ["server.py", "tools/word_count.py"], result.stdout
    assert listed(result.stdout, "new") == ["tools/greet.py"], result.stdout
    assert listed(result.stdout, "merged with your edits") == listed(result.stdout, "conflicts") == [], result.stdout
    assert not any(path in result.stdout for path in mine), result.stdout
    assert yaml.safe_load((dest / ANSWERS).read_text())["_commit"] == "v2.0.0"
    assert not re.search(r"^( M|M |\?\?) tools/(sales|_money|forecast)", git(dest, "status", "--porcelain"), re.M)


@pytest.mark.parametrize("variant", WEB)
def test_a_user_who_deleted_the_demo_tool_keeps_it_deleted(released, variant: str) -> None:
    template, dest = released(variant)
    git(dest, "rm", "-q", "tools/word_count.py")
    (dest / "tools" / "sales.py").write_bytes(USER_TOOL.encode())
    commit_all(dest, "my tools instead of the demo")

    word_count = template.source("tools/word_count.py")
    word_count.write_text(word_count.read_text() + "# template v2: word count\n")
    server = template.source("server.py")
    server_anchor = literal_line(server, dest / "server.py")
    insert_after(server, server.read_text().splitlines().index(server_anchor), "# template v2: server")
    template.release("v2.0.0")

    result = flakewright("update", dest)

    assert result.returncode == 0, result.stdout + result.stderr
    assert not (dest / "tools" / "word_count.py").exists()
    assert (dest / "tools" / "sales.py").read_bytes() == USER_TOOL.encode()
    assert "# template v2: server" in (dest / "server.py").read_text(), "the update did not run"
    assert conflict_marked(dest) == [] and not list(dest.rglob("*.rej"))
