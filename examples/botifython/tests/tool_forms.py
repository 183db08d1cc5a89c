"""Tools through the web app, for the tests of its pages: tool sources a test writes under tools/, and a run
through a tool's form to its end."""
from __future__ import annotations

import asyncio
import re
import textwrap
from pathlib import Path

from conftest import task_id_of

EVERY_TYPE = '''
import datetime
import enum
from pathlib import Path
from typing import Literal


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


def echo(text: str, count: int, ratio: float, day: datetime.date, data: Path, names: list[str],
         mode: Literal["fast", "slow"] = "slow", colour: Colour = Colour.BLUE, loud: bool = False,
         note: str | None = None):
    """Send back what arrived, with its Python type.

    Args:
        text: Any words.
        count: A whole number.
    """
    return {"text": text, "count": count, "ratio": ratio, "day": day.isoformat(), "data": data.read_text(),
            "data_type": type(data).__name__, "names": names, "mode": mode, "colour": colour.name, "loud": loud,
            "note": note, "day_type": type(day).__name__}
'''


WAITING = '''
import time
from pathlib import Path


def wait_for(flag: str, report):
    """Report, then wait until the file `flag` exists: a sync tool that would freeze a thread-run app."""
    report(0, 1, "waiting")
    while not Path(flag).exists():
        time.sleep(0.02)
    report(1, 1, "saw it")
    return "released"


def forever(report):
    step = 0
    while True:
        step += 1
        report(step, 0, f"step {step}")
        time.sleep(0.02)
'''

FAILING = '''
def sales(country: str = "fr"):
    totals = {"de": 1}
    return totals[country]
'''


def add_tool(app_dir: Path, name: str, source: str) -> None:
    (app_dir / "tools" / name).write_text(textwrap.dedent(source))


def ended(client, server, task_id: int, headers: dict) -> str:
    """The task's row once it has ended (a notebook's kernel runs at the tools' lower priority: on a loaded
    machine it waits for whatever else is running)."""
    for _ in range(2400):
        if task_id not in server.tasks.RUNS:
            return client.get(f"/tasks/{task_id}", headers=headers).text
        client.portal.call(asyncio.sleep, 0.05)
    raise AssertionError(f"task {task_id} did not end")


def run(client, server, headers: dict, name: str, data: dict | None = None, files: dict | None = None) -> str:
    """Start the tool through its form and return its row once the run has ended."""
    response = client.post(f"/tools/{name}", data=data or {}, files=files, headers=headers)
    assert response.status_code == 200 and 'class="task running"' in response.text, response.text
    return ended(client, server, task_id_of(response.text), headers)


def result_of(row: str) -> str:
    return re.search(r'<div class="result">(.*?)</div>\s*</article>', row, re.S)[1]
