"""Todo scaling bench: the pre-session Pipulate (d4b4253) and this one, side by side in one run.

    python bench/todos_scaling.py [--sizes 10 100 1000 10000] [--repeats 15] [--slow-repeats 3] [--before d4b4253]
                                  [--parts scaling throughput startup]

For each size, both renders get a fresh copy whose database holds that many todos, written straight into the
SQLite file before the server starts. Each server runs as `python server.py` (production mode) on 127.0.0.1;
one keep-alive client times GET /, add, move (one place up or down, in the middle of the list), toggle and
delete, and the medians are printed with the fitted exponent: the slope of log(time) against log(size)
between 100 and 10,000 todos (0 means the cost does not grow with the list, 1 means it grows in step).
--slow-repeats bounds the repeats of a request whose first run took over 2 s (the old render at 10,000).

Then, both renders and a minimal FastHTML todo app (bench/minimal_todo.py): add throughput with 1,000 todos
stored (4 clients adding at once, median of --rounds alternating rounds), start-up to the first 200 on an
empty data folder and the server's resident memory once idle (median of 5 starts each).
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import apsw
import httpx

REPO = Path(__file__).resolve().parent.parent
from baseline import BEFORE, LAYOUT, render_at  # noqa: E402
sys.path.insert(0, str(REPO / "tests"))

from helpers import free_port, render_variant  # noqa: E402

HTMX = {"HX-Request": "true"}


def fresh_copy(render: Path, into: Path) -> Path:
    shutil.rmtree(into, ignore_errors=True)
    shutil.copytree(render, into, ignore=shutil.ignore_patterns("data", "tests", ".git"))
    return into


def seed(app: Path, count: int) -> None:
    """Create the app's tables through its first connection (the app's modules imported, in either layout, before
    create_app()), then write one profile with `count` todos straight into SQLite."""
    subprocess.run([sys.executable, "-c", LAYOUT + "names.db.execute('SELECT 1')"], cwd=app, check=True,
                   env={**os.environ, "PIPULATE_ENV": "prod"})
    conn = apsw.Connection(str(next((app / "data").glob("*.db"))))
    with conn:
        conn.execute("INSERT INTO profiles (id, name) VALUES (1, 'Default')")
        conn.executemany("INSERT INTO todos (profile_id, title, done, priority) VALUES (1, ?, 0, ?)",
                         [(f"todo {i}", i) for i in range(count)])
    conn.close()


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    startup: float
    startup_cpu: float  # the server's user + system seconds until then: steadier than wall time on a busy machine

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))) / 1024


@contextlib.contextmanager
def serving(app: Path, command: list[str]):
    port = free_port()
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "PIPULATE_ENV": "prod"}
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=app, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            assert process.poll() is None, f"{command} in {app} exited"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url + "/", timeout=120).status_code == 200:
                    break
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
        fields = Path(f"/proc/{process.pid}/stat").read_text().rpartition(")")[2].split()
        yield Server(url, process, elapsed, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
    finally:
        process.terminate()
        process.wait(30)


def app_server(app: Path):
    return serving(app, [sys.executable, "server.py"])


def timed(call) -> float:
    started = time.perf_counter()
    response = call()
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, (response.status_code, response.text[:200])
    return elapsed


def todo_ids(app: Path) -> list[int]:
    conn = apsw.Connection(str(next((app / "data").glob("*.db"))))
    ids = [i for i, in conn.execute("SELECT id FROM todos ORDER BY priority, id")]
    conn.close()
    return ids


def measure_size(app: Path, size: int, repeats: int, slow_repeats: int) -> dict[str, float]:
    """Median seconds per operation with `size` todos stored."""
    seed(app, size)
    ids = todo_ids(app)
    middle = ids[len(ids) // 2]
    with app_server(app) as server, httpx.Client(base_url=server.url, timeout=600) as client:
        client.get("/")
        operations = {
            "GET /": lambda i: client.get("/"),
            "add": lambda i: client.post("/todos", data={"title": f"added {i}"}, headers=HTMX),
            "move": lambda i: client.post(f"/todos/{middle}/move", data={"by": -1 if i % 2 else 1}, headers=HTMX),
            "toggle": lambda i: client.post(f"/todos/{middle}/toggle", headers=HTMX),
            "delete": lambda i: client.delete(f"/todos/{next(victims)}", headers=HTMX),
        }
        medians = {}
        for name, operation in operations.items():
            if name == "delete":  # from the middle on, after the adds: enough at every size
                later = todo_ids(app)
                victims = iter(later[len(later) // 4:])
            times = [timed(lambda: operation(0))]
            runs = slow_repeats if times[0] > 2 else repeats
            times += [timed(lambda: operation(i)) for i in range(1, runs)]
            medians[name] = statistics.median(times)
    return medians


def exponent(sizes: list[int], seconds: list[float]) -> float:
    """Least-squares slope of log(seconds) against log(size)."""
    xs, ys = [math.log(s) for s in sizes], [math.log(t) for t in seconds]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def scaling(renders: dict[str, Path], work: Path, args) -> None:
    results = {name: {} for name in renders}
    for size in args.sizes:
        for name, render in renders.items():
            app = fresh_copy(render, work / f"{name}-{size}")
            results[name][size] = measure_size(app, size, args.repeats, args.slow_repeats)
            print(f"  measured {name} at {size:,} todos", file=sys.stderr, flush=True)
    fitted = [s for s in args.sizes if 100 <= s <= 10_000]
    print(f"\nMedian ms per request (repeats: {args.repeats}, or {args.slow_repeats} when one took over 2 s)")
    header = f"{'operation':<10}{'render':<8}" + "".join(f"{s:>12,}" for s in args.sizes) + f"{'exponent':>10}"
    print(header)
    for operation in ("GET /", "add", "move", "toggle", "delete"):
        for name in renders:
            row = [results[name][s][operation] for s in args.sizes]
            slope = exponent(fitted, [results[name][s][operation] for s in fitted]) if len(fitted) > 1 else math.nan
            print(f"{operation:<10}{name:<8}" + "".join(f"{t * 1000:>12.1f}" for t in row) + f"{slope:>10.2f}")
    largest = max(args.sizes)
    print(f"\nAt {largest:,} todos, before/after: " + ", ".join(
        f"{op} {results['before'][largest][op] / results['after'][largest][op]:.1f}×" for op in
        ("GET /", "add", "move", "toggle", "delete")))


def add_rate(server_url: str, clients: int, adds: int) -> float:
    """Adds per second with `clients` adding at once, `adds` each."""
    def one_client(n: int) -> None:
        with httpx.Client(base_url=server_url, headers=HTMX, timeout=60) as client:
            client.get("/")
            for i in range(adds):
                assert client.post("/todos", data={"title": f"c{n} {i}"}).status_code == 200
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one_client, range(clients)))
    return clients * adds / (time.perf_counter() - started)


def minimal_app(work: Path, count: int) -> Path:
    app = work / "minimal"
    shutil.rmtree(app, ignore_errors=True)
    app.mkdir()
    shutil.copy(REPO / "bench" / "minimal_todo.py", app)
    subprocess.run([sys.executable, "-c", "import minimal_todo"], cwd=app, check=True)
    conn = apsw.Connection(str(app / "todos.db"))
    with conn:
        conn.executemany("INSERT INTO todos (title, done) VALUES (?, 0)", [(f"todo {i}",) for i in range(count)])
    conn.close()
    return app


def throughput(renders: dict[str, Path], work: Path, args) -> None:
    apps = {name: fresh_copy(render, work / f"{name}-throughput") for name, render in renders.items()}
    for app in apps.values():
        seed(app, 1_000)
    apps["minimal"] = minimal_app(work, 1_000)
    commands = {name: [sys.executable, "minimal_todo.py" if name == "minimal" else "server.py"] for name in apps}
    rates = {name: [] for name in apps}
    with contextlib.ExitStack() as stack:
        servers = {name: stack.enter_context(serving(app, commands[name])) for name, app in apps.items()}
        for _ in range(args.rounds):
            for name, server in servers.items():
                rates[name].append(add_rate(server.url, clients=4, adds=25))
    print(f"\nAdd throughput with 1,000 todos stored, 4 clients x 25 adds, median of {args.rounds} rounds")
    minimal = statistics.median(rates["minimal"])
    for name in apps:
        rate = statistics.median(rates[name])
        print(f"  {name:<8}{rate:>8.0f} adds/s   {rate / minimal:.2f}x the minimal FastHTML app")


def startup(renders: dict[str, Path], work: Path) -> None:
    startups, cpu, memory = ({name: [] for name in renders} for _ in range(3))
    for _ in range(5):
        for name, render in renders.items():
            app = fresh_copy(render, work / f"{name}-startup")
            with app_server(app) as server:
                startups[name].append(server.startup)
                cpu[name].append(server.startup_cpu)
                time.sleep(1)  # idle
                memory[name].append(server.rss_mb())
    print("\nStart-up to the first 200 on an empty data folder (wall, and the server's CPU time), and resident"
          " memory once idle (median of 5)")
    for name in renders:
        print(f"  {name:<8}{statistics.median(startups[name]):>6.2f} s wall  {statistics.median(cpu[name]):>6.2f} s CPU"
              f"  {statistics.median(memory[name]):>6.1f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1_000, 10_000])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--slow-repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--before", default=BEFORE, help="git ref to compare against")
    parser.add_argument("--parts", nargs="+", choices=("scaling", "throughput", "startup"),
                        default=["scaling", "throughput", "startup"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="todos-scaling-") as tmp:
        work = Path(tmp)
        renders = {"before": render_at(args.before, work / "render-before"),
                   "after": render_variant(work / "render-after", "pipulate")}
        if "scaling" in args.parts:
            scaling(renders, work, args)
        if "throughput" in args.parts:
            throughput(renders, work, args)
        if "startup" in args.parts:
            startup(renders, work)


if __name__ == "__main__":
    main()
