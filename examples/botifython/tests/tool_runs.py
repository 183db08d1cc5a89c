"""Running a tool the way the app does, without the app: an app folder holding the toolbox and tools/, a tool
written into it, a run to its end, a result rendered, and the processes a run leaves. Shared by the tests of what
a run may not do."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
import toolbox  # noqa: E402

LINUX = Path("/proc/self/environ").exists()  # what finds a run's processes that left its group; macOS has none
AUTOGROUP = Path("/proc/self/autogroup")  # Linux's: the CPU share of this process's session against the others'
TOOL_NICE = min(os.nice(0) + toolbox.NICENESS, 19)  # a tool's process's nice value, counted from this process's
TOOL_SESSION = str(toolbox.NICENESS) if AUTOGROUP.exists() else "-"  # its session's autogroup value, if any


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """An app folder holding the toolbox package and an empty tools/ package, as a render has them."""
    dest = tmp_path / "app"
    (dest / "tools").mkdir(parents=True)
    shutil.copytree(REPO / "toolbox", dest / "toolbox", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "tools" / "__init__.py", dest / "tools")
    return dest


@pytest.fixture
def umask():
    """Set the test process's umask (a run's child inherits it) and put it back afterwards."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


def write(app: Path, name: str, code: str) -> Path:
    path = app / "tools" / name
    path.write_text(textwrap.dedent(code), encoding="utf-8")
    return path


def cells_notebook(app: Path, name: str, *cells: tuple[str, str, list[str]]) -> Path:
    """A notebook of (cell type, source, tags) cells, as Jupyter saves one."""
    path = app / "tools" / name
    path.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}, "cells": [
        {"cell_type": kind, "id": f"c{n}", "metadata": {"tags": tags}, "source": source,
         **({"outputs": [], "execution_count": None} if kind == "code" else {})}
        for n, (kind, source, tags) in enumerate(cells)]}), encoding="utf-8")
    return path


def one_tool(app: Path, code: str, name: str = "tool.py") -> toolbox.Tool:
    (app / "tools" / name).write_text(textwrap.dedent(code), encoding="utf-8")
    tools, broken = toolbox.discover(app / "tools", jupyter=False)
    assert broken == []
    return next(iter(tools.values()))


def run(tool: toolbox.Tool, outputs: Path, params: dict | None = None, *, timeout: float = 60.0,
        cancel_after: float | None = None) -> tuple[object, list[str]]:
    """Run the tool to its end (or cancel it `cancel_after` seconds after its first report); its result HTML or
    the exception, and its log lines."""
    lines: list[str] = []

    async def main():
        reported = asyncio.Event()

        async def report(done, total, line=""):
            reported.set()
            if line:
                lines.append(line)

        job = asyncio.ensure_future(toolbox.run_tool(tool, params or {}, report=report, outputs=outputs,
                                                     download_url=lambda name: f"/files/{name}"))
        if cancel_after is not None:
            await asyncio.wait_for(reported.wait(), timeout)
            await asyncio.sleep(cancel_after)
            job.cancel()
        return await asyncio.wait_for(job, timeout)
    try:
        return asyncio.run(main()), lines
    except BaseException as error:  # CancelledError too
        return error, lines


def notebook(path: Path, parameters: str, code: str) -> None:
    """A notebook of a parameters cell and one cell of code, as Jupyter saves one."""
    path.write_text(json.dumps({
        "nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {"name": "python3", "language": "python"}},
        "cells": [{"cell_type": "code", "id": "p", "metadata": {"tags": ["parameters"]}, "outputs": [],
                   "execution_count": None, "source": parameters},
                  {"cell_type": "code", "id": "c", "metadata": {}, "outputs": [], "execution_count": None,
                   "source": code}]}))


def run_reporting(tool, params=None, outputs: Path | None = None, *, reports: list | None = None):
    """Run a tool to its end, collecting every report (done, total, line); returns (result HTML or the exception,
    reports). Results link to /tasks/1/files/."""
    reports = [] if reports is None else reports
    outputs = outputs or tool.source.parent.parent / "data" / "outputs" / "1"

    async def report(done, total, line=""):
        reports.append((done, total, line))

    async def main():
        return await toolbox.run_tool(tool, params or {}, report=report, outputs=outputs,
                                      download_url=lambda name: f"/tasks/1/files/{name}")
    try:
        return asyncio.run(main()), reports
    except Exception as error:
        return error, reports


def cancel_after_first_report(tool, outputs: Path):
    """Start the tool, cancel it once it has reported, and return what the awaiting coroutine raised."""
    async def main():
        started = asyncio.Event()

        async def report(done, total, line=""):
            started.set()

        job = asyncio.create_task(toolbox.run_tool(tool, {}, report=report, outputs=outputs,
                                                   download_url=lambda name: name))
        await started.wait()
        job.cancel()
        try:
            await job
        except BaseException as error:
            return error
    return asyncio.run(main())


def render(value, outputs: Path, name: str = "sales") -> str:
    outputs.mkdir(exist_ok=True)
    return toolbox.render_result(value, outputs, lambda file: f"/files/{file}", name=name)


def alive(pid: int) -> bool:
    """Whether the process runs; a zombie (ended, waiting for its parent to collect it) does not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def all_gone(pids, timeout: float = 10.0) -> bool:
    """Whether every process ends within `timeout` seconds (a SIGKILL takes effect a moment after it is sent)."""
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def kill_all(pids) -> None:
    """What a failing test leaves is not left to run: these sleep for minutes."""
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
