"""The commands of generator/flakewright/ share what they need (the derived repo, the template source) through
modules of their own, and never import each other: not directly, not through another module, not for types."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "generator" / "flakewright"
COMMANDS = ("_update", "_check", "_backport", "_backport_cli")


def imports(module: str) -> set[str]:
    """The package's modules that ``module`` imports anywhere in its text (under TYPE_CHECKING and in function
    bodies too); ``__init__`` for the package itself."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0 and not (node.module or "").startswith("flakewright"):
                continue
            parts = (node.module or "").split(".")[1:] if node.level == 0 else (node.module or "").split(".")
            if parts and parts[0]:
                found.add(parts[0])
            else:  # `from . import x`: a module of the package, or a name of __init__
                found |= {a.name if (PACKAGE / f"{a.name}.py").is_file() else "__init__" for a in node.names}
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "flakewright":
                    found.add(parts[1] if len(parts) > 1 else "__init__")
    return found


def reachable(start: str) -> dict[str, list[str]]:
    """Every module ``start`` imports, directly or through others, with one chain of imports that leads to it."""
    chains = {start: [start]}
    todo = [start]
    while todo:
        module = todo.pop()
        for name in sorted(imports(module)):
            if name not in chains and (PACKAGE / f"{name}.py").is_file():
                chains[name] = [*chains[module], name]
                todo.append(name)
    return chains


def test_the_helper_sees_every_kind_of_import() -> None:
    """The checker itself: relative, absolute, nested and type-only imports all count."""
    assert "_answers" in imports("_new")
    assert {"_update", "_check", "_backport"} <= imports("__init__")


def test_no_command_imports_another() -> None:
    wrong = []
    for command in COMMANDS:
        chains = reachable(command)
        wrong += [" -> ".join(chains[other]) for other in COMMANDS if other != command and other in chains]
    assert not wrong, "commands import each other:\n" + "\n".join(wrong)
