"""Tool bench: `GET /` latency of a rendered Pipulate while 4 sync CPU-bound tools run, against the same app idle.

    python bench/tools_latency.py [--requests 800] [--interval 0.02] [--repeats 2] [--before REF]... [--no-runners]

  app      A fresh render of this template, `python server.py` on a free 127.0.0.1 port in production mode, with
           tools/bench_spin.py dropped into its tools/ folder: a plain (sync) function counting in a pure-Python
           loop, the kind of work a notebook cell pasted into a tool does. Phases alternate, --repeats times each,
           each in a new profile, so that every phase's page lists 4 runs:
             idle  4 quick runs of that tool finish; then --requests paced GETs (one every --interval seconds,
                   each waiting for the previous), taking turns between `GET /` and `GET /tasks/<id>`, a page
                   whose content never changes (a finished run of another profile, in a second session)
             busy  the same while 4 runs of that tool (POST /tools/bench_spin, as a colleague's form would) spin;
                   then --requests more in blocks of 50, alternately with the 4 runs' processes stopped
                   (SIGSTOP) and running: the same page with the same runs listed, and any other load on the
                   machine falls on both. The phase counts only if all 4 are still running when it ends; then
                   they are cancelled.
           Goal: `GET /` busy p99 <= 2x idle p99.
  before   With --before REF (repeatable), the template at that git ref is rendered and served too, and its
           phases alternate with this one's in the same run.
  runners  Why the app runs tools in child processes (skip with --no-runners): a bare Starlette app serving a
           small page, idle vs 4 busy threads vs 4 busy child processes (multiprocessing forkserver, at the
           app's tools' nice value), same loads.

Latency percentiles pool every request of a side's phases; medians and ratios are printed at the end, pooled and
as the median of each repeat's ratio.
Servers are stopped at the end.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from functools import partial
from pathlib import Path
from statistics import median

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from baseline import percentile_ms, render_at, spread  # noqa: E402
from helpers import free_port, render_variant  # noqa: E402

TOOLS = 4
BLOCK = 50  # requests in a row with the busy phase's runs paused, then running
NICENESS = 10  # the template's toolbox.NICENESS: the bare app's child processes run as the app's tools do
SPIN_TOOL = '''"""A CPU-bound tool for bench/tools_latency.py."""
import time


def bench_spin(seconds: float, report) -> int:
    """Count in a pure-Python loop for `seconds`, reporting about once a second."""
    end = time.monotonic() + seconds
    count = 0
    while time.monotonic() < end:
        for _ in range(200_000):
            count += 1
        report(int(seconds - (end - time.monotonic())), int(seconds), "")
    return count
'''
RUNNERS_APP = '''
import multiprocessing
import os
import threading
import time

from starlette.applications import Starlette
from starlette.responses import HTMLResponse, PlainTextResponse
from starlette.routing import Route

PAGE = "<!doctype html><title>bench</title><ul>" + "<li>row</li>" * 200 + "</ul>"
stop = threading.Event()
running = []


def spin(until: float, niceness: int) -> int:
    os.nice(niceness)
    count = 0
    while time.monotonic() < until and not stop.is_set():
        for _ in range(200_000):
            count += 1
    return count


async def home(request):
    return HTMLResponse(PAGE)


async def start(request):
    until = time.monotonic() + float(request.query_params["seconds"])
    stop.clear()
    for _ in range(int(request.query_params["count"])):
        if request.path_params["kind"] == "threads":  # as in the server's thread pool, at its priority
            worker = threading.Thread(target=spin, args=(until, 0), daemon=True)
        else:
            worker = multiprocessing.get_context("forkserver").Process(
                target=spin, args=(until, int(request.query_params["niceness"])), daemon=True)
        worker.start()
        running.append(worker)
    return PlainTextResponse("started")


async def alive(request):
    return PlainTextResponse(str(sum(worker.is_alive() for worker in running)))


async def halt(request):
    stop.set()
    for worker in running:
        if isinstance(worker, multiprocessing.process.BaseProcess):
            worker.terminate()
        worker.join()
    running.clear()
    return PlainTextResponse("stopped")


app = Starlette(routes=[Route("/", home), Route("/start/{kind}", start, methods=["POST"]),
                        Route("/alive", alive), Route("/stop", halt, methods=["POST"])])
'''
TASK_ID = re.compile(r'id="task-(\d+)"')
TASK_STATUS = re.compile(r'<article[^>]* class="task (\w+)"')


@contextmanager
def serve(argv: list[str], cwd: Path, env: dict[str, str]) -> Iterator[str]:
    """Run ``argv`` in ``cwd`` (listening on $PORT) in its own process group; yield its URL once / answers."""
    port = free_port()
    log = (cwd / "bench-server.log").open("wb")
    process = subprocess.Popen(argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                               env={**os.environ, "HOST": "127.0.0.1", "PORT": str(port), **env})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{' '.join(argv)} did not start; see {log.name}")
            try:
                if httpx.get(url + "/", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def paced_gets(targets: list[tuple[httpx.Client, str]], requests: int, interval: float) -> dict[str, list[float]]:
    """Seconds each of ``requests`` sequential GETs took, by path, taking turns between the ``targets`` and
    starting one every ``interval`` at most."""
    seen = {path: [] for _, path in targets}
    next_start = time.perf_counter()
    for number in range(requests):
        http, path = targets[number % len(targets)]
        time.sleep(max(0.0, next_start - time.perf_counter()))
        started = time.perf_counter()
        response = http.get(path)
        seen[path].append(time.perf_counter() - started)
        response.raise_for_status()
        next_start = started + interval
    return seen


def pool(runs: list[dict[str, list[float]]], key: str) -> list[float]:
    return [value for run in runs for value in run[key]]


def ratios(runs: list[dict[str, list[float]]], key: str, base: str) -> str:
    """``key``'s p50 and p99 over ``base``'s: pooled, then the median of each repeat's own ratio (phases next to
    each other in time, so that a machine busy with other work for a while shifts both)."""
    def ratio(q: float, values: list[float], base_values: list[float]) -> float:
        return percentile_ms(values, q) / percentile_ms(base_values, q)

    pooled = [ratio(q, pool(runs, key), pool(runs, base)) for q in (0.5, 0.99)]
    each = [median(ratio(q, run[key], run[base]) for run in runs) for q in (0.5, 0.99)]
    return (f"p50 {pooled[0]:5.2f}x  p99 {pooled[1]:5.2f}x"
            f"   (median of repeats: p50 {each[0]:5.2f}x  p99 {each[1]:5.2f}x)")


def alternate(phases: dict[str, Callable[[], dict[str, list[float]]]], repeats: int) -> list[dict[str, list[float]]]:
    """Each phase ``repeats`` times, in turn; each repeat's requests by "<phase> <series>"."""
    runs = []
    for repeat in range(repeats):
        runs.append({})
        for name, phase in phases.items():
            for series, seen in phase().items():
                runs[-1][f"{name} {series}"] = seen
                print(f"  repeat {repeat + 1}, {name:<12} {series:<5} {spread(seen)}", flush=True)
    return runs


def wait_ended(http: httpx.Client, ids: list[str], what: str) -> None:
    deadline = time.monotonic() + 30
    while any('class="task running"' in http.get(f"/tasks/{task}").text for task in ids):
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} still run after 30 s")
        time.sleep(0.2)


def start_runs(http: httpx.Client, count: int, seconds: float) -> list[str]:
    ids = []
    for _ in range(count):
        response = http.post("/tools/bench_spin", files={"seconds": (None, str(seconds))})
        found = TASK_ID.search(response.text)
        if response.status_code != 200 or not found:
            raise SystemExit(f"POST /tools/bench_spin answered {response.status_code}: {response.text[:300]}")
        ids.append(found[1])
    return ids


def run_processes(outputs: list[Path]) -> list[int]:
    """The processes working in these folders: each tool run's process works in its own outputs folder."""
    wanted, found = {path.resolve() for path in outputs}, []
    for proc in Path("/proc").iterdir():
        with suppress(OSError):
            if proc.name.isdigit() and Path(os.readlink(proc / "cwd")) in wanted:
                found.append(int(proc.name))
    return found


def paused_or_running(targets: list[tuple[httpx.Client, str]], pids: list[int], args: argparse.Namespace
                      ) -> dict[str, dict[str, list[float]]]:
    """--requests paced GETs in blocks of BLOCK, alternately with the processes stopped and running: the same
    page, the same runs listed, only their CPU use differs, and any other load on the machine falls on both."""
    seen: dict[str, dict[str, list[float]]] = {"paused": {}, "running": {}}
    try:
        for _ in range(max(1, args.requests // (2 * BLOCK))):
            for state, sent in (("paused", signal.SIGSTOP), ("running", signal.SIGCONT)):
                for pid in pids:
                    os.kill(pid, sent)
                for path, values in paced_gets(targets, BLOCK, args.interval).items():
                    seen[state].setdefault(path, []).extend(values)
    finally:
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    return seen


def rows(page: str) -> str:
    statuses = TASK_STATUS.findall(page)
    return f"{len(statuses)} runs listed, {statuses.count('running')} running, {len(page):,} bytes"


def app_phases(label: str, url: str, render: Path, args: argparse.Namespace
               ) -> dict[str, Callable[[], dict[str, list[float]]]]:
    """The app's idle and busy phases. Each starts a new profile, so that its page lists only its own 4 runs."""
    fixed, http = (httpx.Client(base_url=url, timeout=120, headers={"X-Tab": "bench"}) for _ in range(2))
    fixed.post("/profiles", data={"name": "fixed"}).raise_for_status()
    row = start_runs(fixed, 1, 0)
    wait_ended(fixed, row, "the fixed page's run")
    targets = [(http, "/"), (fixed, f"/tasks/{row[0]}")]
    phases = 0

    def measure(phase: str, seconds: float) -> dict[str, list[float]]:
        nonlocal phases
        phases += 1
        http.post("/profiles", data={"name": f"{phase} {phases}"}).raise_for_status()
        ids = start_runs(http, TOOLS, seconds)
        if seconds:
            time.sleep(2)  # the children start (imports) before the clock runs
        else:
            wait_ended(http, ids, "quick runs")
        seen = paced_gets(targets, args.requests, args.interval)
        print(f"  {label} {phase} page: {rows(http.get('/').text)}")
        series = {"page": seen["/"], "row": seen[targets[1][1]]}
        if seconds:
            pids = run_processes([render / "data" / "outputs" / task for task in ids])
            if len(pids) != TOOLS:
                raise SystemExit(f"found {len(pids)} processes for the {TOOLS} runs")
            for state, by_path in paused_or_running(targets, pids, args).items():
                series[f"{state} page"], series[f"{state} row"] = by_path["/"], by_path[targets[1][1]]
            ended = [task for task in ids if 'class="task running"' not in http.get(f"/tasks/{task}").text]
            for task in ids:
                http.post(f"/tasks/{task}/cancel")
            if ended:
                raise SystemExit(f"tasks {ended} ended before the busy phase did: the figures would be idle ones")
            wait_ended(http, ids, "cancelled tools")
        return series

    return {f"{label} idle": partial(measure, "idle", 0),
            f"{label} busy": partial(measure, "busy", args.requests * args.interval * 20 + 60)}


def runner_phases(url: str, args: argparse.Namespace) -> dict[str, Callable[[], dict[str, list[float]]]]:
    http = httpx.Client(base_url=url, timeout=120)

    def idle() -> dict[str, list[float]]:
        return paced_gets([(http, "/")], args.requests, args.interval)

    def busy(kind: str) -> Callable[[], dict[str, list[float]]]:
        def phase() -> dict[str, list[float]]:
            seconds = args.requests * args.interval * 20 + 60
            http.post(f"/start/{kind}", params={"count": TOOLS, "seconds": seconds, "niceness": NICENESS}
                      ).raise_for_status()
            time.sleep(1)
            seen = paced_gets([(http, "/")], args.requests, args.interval)
            alive = int(http.get("/alive").text)
            http.post("/stop").raise_for_status()
            if alive != TOOLS:
                raise SystemExit(f"only {alive} of {TOOLS} {kind} were still busy when the phase ended")
            return seen
        return phase

    return {"bare idle": idle, "bare threads": busy("threads"), "bare processes": busy("processes")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=800, help="paced GETs per phase, half of them GET /")
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between request starts")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--before", action="append", default=[], metavar="REF",
                        help="also serve the template at this git ref (repeatable), phases alternating")
    parser.add_argument("--no-runners", action="store_true", help="skip the threads vs processes comparison")
    args = parser.parse_args()
    env = {"PIPULATE_ENV": "prod", "OLLAMA_HOST": "http://127.0.0.1:9", "PYTHONUNBUFFERED": "1"}
    with tempfile.TemporaryDirectory(prefix="flakewright-bench-") as tmp, ExitStack() as servers:
        root = Path(tmp)
        renders = {"now": render_variant(root / "now", "pipulate")}
        for ref in args.before:
            renders[ref] = render_at(ref, root / ref, "pipulate", project_name="pipulate")
        phases = {}
        for label, render in renders.items():
            (render / "tools" / "bench_spin.py").write_text(SPIN_TOOL)
            url = servers.enter_context(serve([sys.executable, "server.py"], render, env))
            phases.update(app_phases(label, url, render, args))
        if not args.no_runners:
            (root / "runners").mkdir()
            (root / "runners" / "bench_runners.py").write_text(RUNNERS_APP)
            argv = [sys.executable, "-c", "import os, uvicorn; uvicorn.run('bench_runners:app', host='127.0.0.1',"
                    " port=int(os.environ['PORT']), log_level='warning')"]
            phases.update(runner_phases(servers.enter_context(serve(argv, root / "runners", {})), args))
        print(f"{', '.join(renders)}: idle vs while {TOOLS} sync CPU-bound tools run"
              + ("" if args.no_runners else f"; bare Starlette idle vs {TOOLS} busy threads vs processes"), flush=True)
        runs = alternate(phases, args.repeats)

    print(f"\nLatency, pooled over {args.repeats} repeats of {args.requests} paced requests "
          f"(one every {args.interval * 1000:.0f} ms at most); load average {os.getloadavg()[0]:.1f}")
    for label in renders:
        for series, path in (("page", "GET /"), ("row", "GET /tasks/<id>")):
            idle, busy = f"{label} idle {series}", f"{label} busy {series}"
            paused, running = f"{label} busy paused {series}", f"{label} busy running {series}"
            print(f"  {label:<7} {path:<16} idle           {spread(pool(runs, idle))}")
            print(f"  {label:<7} {path:<16} {TOOLS} tools        {spread(pool(runs, busy))}")
            goal = "   goal: p99 <= 2x" if series == "page" else ""
            print(f"  {label:<7} {path:<16} busy/idle      {ratios(runs, busy, idle)}{goal}")
            print(f"  {label:<7} {path:<16} runs paused    {spread(pool(runs, paused))}")
            print(f"  {label:<7} {path:<16} runs running   {spread(pool(runs, running))}")
            print(f"  {label:<7} {path:<16} running/paused {ratios(runs, running, paused)}")
    if not args.no_runners:
        print(f"  bare    GET /            idle           {spread(pool(runs, 'bare idle /'))}")
        for kind in ("threads", "processes"):
            print(f"  bare    GET /            {TOOLS} {kind:<12} {spread(pool(runs, f'bare {kind} /'))}")
            print(f"  bare    GET /            {kind + '/idle':<14} {ratios(runs, f'bare {kind} /', 'bare idle /')}")

if __name__ == "__main__":
    main()
