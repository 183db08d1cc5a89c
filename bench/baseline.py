"""Shared by the side-by-side benches: the template as it was at a git ref of this repo, rendered, and percentiles."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import copier

REPO = Path(__file__).resolve().parent.parent
BEFORE = "d4b4253"  # the last commit before the template locked its .venv and took database work off the loop


def render_at(ref: str, dest: Path, variant: str = "pipulate", **data: object) -> Path:
    """Render ``variant`` from the template at ``ref`` (git archive: no checkout, no history needed)."""
    with tempfile.TemporaryDirectory(prefix="flakewright-before-") as source:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", source], input=archive, check=True)
        copier.run_copy(source, str(dest), data={"variant": variant, **data}, defaults=True, overwrite=True,
                        quiet=True)
    return dest


def renders(tmp: Path, before: str, variant: str = "pipulate") -> dict[str, Path]:
    """This template's render as "now" and, unless ``before`` is empty, the one at that ref as "before"."""
    from helpers import render_variant  # tests/helpers.py, on the path of the bench that imports this

    found = {"now": render_variant(tmp / "now", variant)}
    if before:
        found["before"] = render_at(before, tmp / "before", variant)
    return found


# Python source a side's program starts with, run in a render's folder: `names`, the rendered app's names found
# in whichever layout that render has. Since 6649926 core/ holds the app (core.db: db and the tables; core.tasks,
# core.live, core.profiles, ...), settings.py its settings, addons/ the demo, and server.py only create_app();
# before, server.py held all of it. Importing it imports what `import server` imported before: every module of
# the app (the add-ons' tables too), building no app.
LAYOUT = '''
import importlib as _importlib
import os as _os


class _AppNames:
    def __init__(self):
        if _os.path.exists("core/tasks.py"):
            names = ["core.db", "core.tasks", "core.live", "core.profiles", "core.task_rows", "core.workspace",
                     "core.tool_pages", "core.security", "settings", "server", "core.app"]
            self._modules = [_importlib.import_module(name) for name in names]
            self._modules += self._modules[-1].import_addons()
        else:
            self._modules = [_importlib.import_module("server")]

    def __getattr__(self, name):
        for module in self._modules:
            if hasattr(module, name):
                return getattr(module, name)
        raise AttributeError(f"the rendered app has no {name!r}")


names = _AppNames()
'''


def run_side(render: Path, program: str, *args: object) -> dict:
    """Run ``program`` (Python source) in ``render``'s folder, as its server runs in production, and return the
    JSON it printed last; a side that fails ends the bench with its error."""
    result = subprocess.run([sys.executable, "-c", program, *map(str, args)], cwd=render, capture_output=True,
                            text=True, env={**os.environ, "PIPULATE_ENV": "prod"}, timeout=600)
    if result.returncode:
        raise SystemExit(f"the {render.name} side failed:\n{result.stderr}")
    return json.loads(result.stdout.splitlines()[-1])


def percentile_ms(values: list[float], q: float) -> float:
    """The q-quantile of durations given in seconds, in milliseconds."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


def spread(values: list[float]) -> str:
    """p50, p99 and worst of durations in seconds: a loop held for seconds makes each waiter count once, so p99
    alone can hide it."""
    return (f"p50 {percentile_ms(values, 0.5):7.2f} p99 {percentile_ms(values, 0.99):7.2f}"
            f" max {max(values) * 1000:7.1f} ms ({len(values)})")
