"""Backends bench: the same Pipulate render on SQLite and on PostgreSQL, side by side in one run.

    python bench/backends.py [--todos 1000] [--repeats 30] [--users 50] [--seconds 60] [--pool 10]

PostgreSQL is a throwaway cluster started here as the render's own suite starts it (tests/postgres.py: Debian's
initdb and pg_ctl, a Unix socket, fsync off; SQLite keeps its synchronous=NORMAL, so writes are not compared at
equal durability). Each side is
`python server.py` in production mode on 127.0.0.1, signed in through a proxy's header (TRUSTED_PROXIES=127.0.0.1)
so that every client is a user of its own, as on a team server.

Pages and writes: one keep-alive client, --todos todos stored; GET / (the page: profile, todos, tasks), GET /todos
(a page of todos), GET /tasks/<id> (a finished run of the demo's word count), add and toggle; medians of --repeats, the two sides taking turns,
and PostgreSQL/SQLite ratios (goal: within 2x).

Load: --users users with sessions of their own add and toggle their todos for --seconds: requests, errors (goal 0),
p50, p99 and the most connections the PostgreSQL side held (its pool is --pool).

Drivers: the app's PostgreSQL module (psycopg 3, a pool) against fastsql (the MiniDataAPI on SQLAlchemy, one shared
connection), each read and written by --threads threads at once as the server's thread pool does: operations per
second and errors.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from baseline import spread  # noqa: E402
from helpers import free_port, render_variant  # noqa: E402

HTMX = {"HX-Request": "true"}
SIGNED_IN = {"TRUSTED_PROXIES": "127.0.0.1", "PROXY_USER_HEADER": "X-Forwarded-Email", "ALLOWED_USERS": "*"}


def user(name: str) -> dict[str, str]:
    return {"X-Forwarded-Email": f"{name}@example.com"}


@contextlib.contextmanager
def serving(app: Path, database_url: str, pool: int):
    port = free_port()
    env = {**os.environ, **SIGNED_IN, "HOST": "127.0.0.1", "PORT": str(port), "PIPULATE_ENV": "prod",
           "DATABASE_URL": database_url, "PIPULATE_POOL_SIZE": str(pool)}
    log = (app / "server.log").open("wb")
    process = subprocess.Popen([sys.executable, "server.py"], cwd=app, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            if process.poll() is not None:
                raise SystemExit(f"the server in {app} exited:\n{(app / 'server.log').read_text()[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url + "/", headers=user("probe"), timeout=60).status_code == 200:
                    break
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def ok(response: httpx.Response) -> httpx.Response:
    assert response.status_code == 200, (response.status_code, response.text[:300])
    return response


def prepare(client: httpx.Client, todos: int) -> tuple[int, int]:
    """The signed-in user's todos and one finished task; the id of a todo in the middle and of the task."""
    ok(client.get("/"))
    for i in range(todos):
        ok(client.post("/todos", data={"title": f"todo {i}"}, headers=HTMX))
    middle = int(re.findall(r'id="todo-(\d+)"', ok(client.get("/todos", params={"page": todos // 100})).text)[0])
    task = int(re.findall(r'id="task-(\d+)"', ok(client.post("/tools/count_words", data={"top": "3"},
                                                                headers=HTMX)).text)[0])
    for _ in range(600):
        if 'class="task running"' not in ok(client.get(f"/tasks/{task}", headers=HTMX)).text:
            return middle, task
        time.sleep(0.1)
    raise SystemExit("the word count did not finish within a minute")


def pages_and_writes(urls: dict[str, str], todos: int, repeats: int) -> dict[str, dict[str, float]]:
    clients = {side: httpx.Client(base_url=url, headers={**user("bench"), "Origin": url}, timeout=120)
               for side, url in urls.items()}
    try:
        ids = {side: prepare(client, todos) for side, client in clients.items()}
        operations = {
            "GET /": lambda c, ids, i: c.get("/"),
            "GET /todos": lambda c, ids, i: c.get("/todos", params={"page": i % 10}),
            "GET /tasks/<id>": lambda c, ids, i: c.get(f"/tasks/{ids[1]}", headers=HTMX),
            "add": lambda c, ids, i: c.post("/todos", data={"title": f"added {i}"}, headers=HTMX),
            "toggle": lambda c, ids, i: c.post(f"/todos/{ids[0]}/toggle", headers=HTMX),
        }
        timings = {side: {name: [] for name in operations} for side in urls}
        for i in range(repeats):
            for name, call in operations.items():
                for side, client in (clients.items() if i % 2 else reversed(clients.items())):
                    started = time.perf_counter()
                    ok(call(client, ids[side], i))
                    timings[side][name].append(time.perf_counter() - started)
        return {side: {name: statistics.median(values) for name, values in ops.items()}
                for side, ops in timings.items()}
    finally:
        for client in clients.values():
            client.close()


def load(url: str, users: int, seconds: float, connections=None) -> dict:
    """`users` users adding and toggling their own todos at once for `seconds`."""
    latencies, errors, peak, stop = [], [], [0], threading.Event()

    def one(n: int) -> None:
        with httpx.Client(base_url=url, headers={**user(f"user{n}"), "Origin": url}, timeout=60) as client:
            client.get("/")
            mine, i = None, 0
            while not stop.is_set():
                i += 1
                started = time.perf_counter()
                try:
                    if mine is None or i % 2:
                        response = client.post("/todos", data={"title": f"u{n} {i}"}, headers=HTMX)
                        mine = mine or (re.findall(r'id="todo-(\d+)"', response.text) or [None])[0]
                    else:
                        response = client.post(f"/todos/{mine}/toggle", headers=HTMX)
                    if response.status_code != 200:
                        errors.append(f"{response.status_code} {response.text[:80]}")
                except httpx.HTTPError as error:
                    errors.append(repr(error))
                    continue
                latencies.append(time.perf_counter() - started)

    def watch() -> None:
        while not stop.wait(0.2):
            peak[0] = max(peak[0], connections())

    threads = [threading.Thread(target=one, args=(n,)) for n in range(users)]
    threads += [threading.Thread(target=watch)] if connections else []
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return {"requests": len(latencies), "errors": errors, "latencies": latencies, "peak connections": peak[0]}


DRIVERS = r"""
import json, os, sys, threading, time
from core import db as app_db
from core.app import import_addons
from core.postgres import Postgres
from fastsql import Database

threads, each = int(sys.argv[1]), int(sys.argv[2])
url = os.environ["DATABASE_URL"]
import_addons()
app_db.db.execute("SELECT 1")  # the app's tables, the demo's todos among them
READ = "SELECT id, title, done FROM todos WHERE profile_id = {} ORDER BY priority, id LIMIT 50"
WRITE = "INSERT INTO todos (profile_id, title, done, priority) VALUES ({}, 'x', 0, 0)"


def pool_side():
    database = Postgres(url)
    return lambda i: database.execute(READ.format("?"), [1]) if i % 2 else database.execute(WRITE.format("?"), [1])


def fastsql_side():
    database = Database(url.replace("postgresql://", "postgresql+psycopg://", 1))

    def one(i):
        database.q(READ.format(":p") if i % 2 else WRITE.format(":p"), p=1)
        if not i % 2:
            database.conn.commit()
    return one


figures = {}
for name, side in (("psycopg pool", pool_side), ("fastsql", fastsql_side)):
    call, errors = side(), []

    def work():
        for i in range(each):
            try:
                call(i)
            except Exception as error:
                errors.append(type(error).__name__)
    started = time.perf_counter()
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    figures[name] = {"ops": threads * each / elapsed, "errors": len(errors), "kinds": sorted(set(errors))[:3]}
print(json.dumps(figures))
"""


def drivers(app: Path, url: str, threads: int, each: int) -> dict:
    result = subprocess.run([sys.executable, "-c", DRIVERS, str(threads), str(each)], cwd=app, capture_output=True,
                            text=True, env={**os.environ, "DATABASE_URL": url, "PIPULATE_ENV": "prod"}, timeout=600)
    if result.returncode:
        raise SystemExit(f"the drivers' side failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--todos", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--pool", type=int, default=10)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--operations", type=int, default=200, help="per thread, in the drivers' comparison")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-backends-") as tmp:
        render = render_variant(Path(tmp) / "render", "pipulate")
        sys.path.insert(0, str(render / "tests"))
        from postgres import Postgres  # the render's own throwaway cluster, as its suite starts it

        import psycopg

        cluster = Postgres()
        try:
            apps = {side: shutil.copytree(render, Path(tmp) / side, ignore=shutil.ignore_patterns("tests", ".git"))
                    for side in ("sqlite", "postgres")}
            addresses = {"sqlite": "", "postgres": cluster.new_database()}

            def connections() -> int:
                with psycopg.connect(cluster.url()) as conn:
                    return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                                        [urlsplit(addresses["postgres"]).path.lstrip("/")]).fetchone()[0]

            with serving(apps["sqlite"], "", args.pool) as sqlite, \
                    serving(apps["postgres"], addresses["postgres"], args.pool) as postgres:
                urls = {"sqlite": sqlite, "postgres": postgres}
                medians = pages_and_writes(urls, args.todos, args.repeats)
                print(f"Pages and writes, {args.todos} todos stored, median of {args.repeats} (ms):")
                print(f"  {'':16} {'SQLite':>9} {'PostgreSQL':>11} {'PG/SQLite':>10}")
                for name, value in medians["sqlite"].items():
                    theirs = medians["postgres"][name]
                    print(f"  {name:16} {value * 1000:9.2f} {theirs * 1000:11.2f} {theirs / value:9.2f}x")
                print(f"Load: {args.users} signed-in users adding and toggling for {args.seconds:g} s each side:")
                for side, url in urls.items():
                    result = load(url, args.users, args.seconds, connections if side == "postgres" else None)
                    pool = f", pool {args.pool}, at most {result['peak connections']} connections" \
                        if side == "postgres" else ""
                    print(f"  {side:10} {result['requests']:6} requests ({result['requests'] / args.seconds:.0f}/s), "
                          f"errors {len(result['errors'])}, {spread(result['latencies'])}{pool}")
                    for error in sorted(set(result["errors"]))[:5]:
                        print(f"    error: {error}")
            print(f"Drivers: {args.threads} threads, {args.operations} reads and writes each:")
            for name, figures in drivers(apps["postgres"], cluster.new_database(), args.threads,
                                         args.operations).items():
                kinds = f" ({', '.join(figures['kinds'])})" if figures["kinds"] else ""
                print(f"  {name:14} {figures['ops']:8.0f} operations/s, errors {figures['errors']}{kinds}")
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
