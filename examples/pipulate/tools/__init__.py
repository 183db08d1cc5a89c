"""The app's tools: every public function defined in a module here, and every notebook here with a cell tagged
`parameters`, is a page of the app (see the toolbox package). Files starting with `_` are helpers, never tools.

In a notebook, the same functions run as they are. Two helpers make that pleasant:

    from tools import progress, record
    from tools.sales import total
    total("sales.csv", report=progress)     # shows a progress bar; returns the plain result
    record(total, path="sales.csv")         # the same, and the run appears in the app's task history
"""
import datetime
import enum
import html
import inspect
import json
from pathlib import Path, PurePath
from urllib.parse import quote

import toolbox

BAR_WIDTH = 30
LOG_LINES = 50  # the log lines a task row shows, as the app keeps them


class Finished:
    """What progress() returns: awaiting it does nothing, so an async tool's `await report(...)` works too."""

    def __await__(self):
        return iter(())


FINISHED = Finished()


def progress(done: int, total: int, line: str = "") -> Finished:
    """A tool's `report` for notebooks and scripts: prints the line, then a bar (tqdm's when it is installed)."""
    if line:
        clear_bar()
        print(line)
    draw_bar(done, total)
    return FINISHED


try:
    from tqdm.auto import tqdm
except ImportError:
    tqdm = None

bar = None  # tqdm's bar, or the last text bar drawn, while a run is under way


def draw_bar(done: int, total: int) -> None:
    global bar
    if tqdm is not None:
        if bar is None or bar.total != total:
            clear_bar()
            bar = tqdm(total=total)
        bar.n = done
        bar.refresh()
    else:
        filled = BAR_WIDTH * done // total if total > 0 else 0
        bar = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total}"
        print(f"\r{bar}", end="", flush=True)
    if total and done >= total:
        clear_bar()


def clear_bar() -> None:
    """End the bar's line, so what is printed next starts on its own."""
    global bar
    if tqdm is not None and bar is not None:
        bar.close()
    elif bar is not None:
        print()
    bar = None


def record(fn, /, **params):
    """Run fn(**params) here with progress shown, store the run in the app's task history (for the profile last
    chosen in the app) and return its result. For an async tool, `await record(fn, ...)`."""
    database = connect()
    if inspect.iscoroutinefunction(fn):
        return record_async(database, fn, params)
    run = Run(fn, params)
    try:
        value = fn(**params, **run.report_param(fn))
    except BaseException as error:
        run.store(database, error=error)
        raise
    finally:
        clear_bar()
    run.store(database, value=value)
    return value


async def record_async(database, fn, params: dict):
    run = Run(fn, params)
    try:
        value = await fn(**params, **run.report_param(fn))
    except BaseException as error:
        run.store(database, error=error)
        raise
    finally:
        clear_bar()
    run.store(database, value=value)
    return value


def connect():
    """The app's database as the app opens it (DATA_DIR, DATABASE_URL): imported when a run is recorded, so that
    importing tools for progress() needs nothing of the app."""
    from settings import DATABASE_URL, DB_FILE

    if not DATABASE_URL and not DB_FILE.exists():
        raise FileNotFoundError(f"{DB_FILE} does not exist yet: start the app once with ./scripts/run first")
    from core.db import db

    return db


class Run:
    """One recorded run: its progress and log lines as the tool reports them."""

    def __init__(self, fn, params: dict):
        self.fn, self.params = fn, params
        self.done = self.total = 0
        self.lines: list[str] = []

    def report(self, done: int, total: int, line: str = "") -> Finished:
        self.done, self.total = int(done), int(total)
        if line:
            self.lines.append(str(line))
        return progress(done, total, line)

    def report_param(self, fn) -> dict:
        return {"report": self.report} if "report" in inspect.signature(fn).parameters else {}

    def store(self, database, *, value=None, error: BaseException | None = None) -> None:
        """Insert the finished task, then render its result into its outputs folder (which needs its id)."""
        profile = profile_id(database)
        name = self.fn.__name__
        status = "done" if error is None else "failed"
        log = "".join(f"{line}\n" for line in self.lines[-LOG_LINES:])
        task_id = database.execute(
            "INSERT INTO tasks (profile_id, tab, title, status, done, total, log, result, kind, params) "
            "VALUES (?, '', ?, ?, ?, ?, ?, '', ?, ?) RETURNING id",
            [profile, toolbox.label(name), status, self.done, self.total, toolbox.scrub(log), f"tool:{name}",
             json.dumps(self.params, default=plain)]).fetchone()[0]
        database.executemany("INSERT INTO task_lines (task_id, n, line) VALUES (?, ?, ?)",
                             [(task_id, n, toolbox.scrub(line)) for n, line in enumerate(self.lines)])
        if error is None:
            from settings import DATA

            outputs = DATA / "outputs" / str(task_id)
            outputs.mkdir(mode=0o700, parents=True, exist_ok=True)
            result = toolbox.render_result(value, outputs, lambda file: f"/tasks/{task_id}/files/{quote(file)}",
                                           name=name)
        else:
            where = toolbox.place(Path(inspect.getsourcefile(self.fn) or ""), error.__traceback__)
            result = html.escape(f"Failed: {toolbox.one_line(error)}" + (f" ({where})" if where else ""))
        database.execute("UPDATE tasks SET result = ? WHERE id = ?", [toolbox.scrub(result), task_id])


def profile_id(database) -> int:
    """The profile last chosen in the app, else its first."""
    chosen = database.execute("SELECT value FROM store WHERE key = 'profile_id'").fetchone()
    row = database.execute("SELECT id FROM profiles WHERE id = ?", [json.loads(chosen[0])]).fetchone() \
        if chosen else None
    row = row or database.execute("SELECT id FROM profiles ORDER BY id LIMIT 1").fetchone()
    if not row:
        raise LookupError("the app has no profile yet: open it in a browser once")
    return row[0]


def plain(value):
    """A parameter as the app's form would have sent it, so "Run again" in the app works."""
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, PurePath):
        return str(value)
    return repr(value)
