"""Tool bench: `GET /` latency of a rendered Pipulate while 4 sync CPU-bound tools run, against the same app idle.

    python bench/tools_latency.py [--requests 400] [--interval 0.02] [--repeats 2] [--no-runners]

  app      A fresh render of this template, `python server.py` on a free 127.0.0.1 port in production mode, with
           tools/bench_spin.py dropped into its tools/ folder: a plain (sync) function counting in a pure-Python
           loop, the kind of work a notebook cell pasted into a tool does. Phases alternate, --repeats times each:
             idle  --requests paced `GET /` (one every --interval seconds, each waiting for the previous)
             busy  the same while 4 runs of that tool (POST /tools/bench_spin, as a colleague's form would) spin;
                   the phase counts only if all 4 are still running when it ends; then they are cancelled.
           Goal: busy p99 <= 2x idle p99.
  runners  Why the app runs tools in child processes (skip with --no-runners): a bare Starlette app serving a
           small page, idle vs 4 busy threads vs 4 busy child processes (multiprocessing forkserver), same loads.

Latency percentiles pool every request of a side's phases; medians and ratios are printed at the end.
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
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from baseline import percentile_ms  # noqa: E402
from helpers import free_port, render_variant  # noqa: E402

TOOLS = 4
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
import threading
import time

from starlette.applications import Starlette
from starlette.responses import HTMLResponse, PlainTextResponse
from starlette.routing import Route

PAGE = "<!doctype html><title>bench</title><ul>" + "<li>row</li>" * 200 + "</ul>"
stop = threading.Event()
running = []


def spin(until: float) -> int:
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
        if request.path_params["kind"] == "threads":
            worker = threading.Thread(target=spin, args=(until,), daemon=True)
        else:
            worker = multiprocessing.get_context("forkserver").Process(target=spin, args=(until,), daemon=True)
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


def paced_gets(http: httpx.Client, requests: int, interval: float) -> list[float]:
    """Seconds each of ``requests`` sequential GET / took, starting one every ``interval`` at most."""
    seen = []
    next_start = time.perf_counter()
    for _ in range(requests):
        time.sleep(max(0.0, next_start - time.perf_counter()))
        started = time.perf_counter()
        response = http.get("/")
        seen.append(time.perf_counter() - started)
        response.raise_for_status()
        next_start = started + interval
    return seen


def spread(values: list[float]) -> str:
    return (f"p50 {percentile_ms(values, 0.5):7.2f} p99 {percentile_ms(values, 0.99):7.2f}"
            f" max {max(values) * 1000:7.1f} ms ({len(values)} requests)")


def ratios(values: list[float], base: list[float]) -> str:
    return (f"p50 {percentile_ms(values, 0.5) / percentile_ms(base, 0.5):5.2f}x"
            f"  p99 {percentile_ms(values, 0.99) / percentile_ms(base, 0.99):5.2f}x")


def alternate(phases: dict[str, Callable[[], list[float]]], repeats: int) -> dict[str, list[float]]:
    pooled = {name: [] for name in phases}
    for repeat in range(repeats):
        for name, phase in phases.items():
            seen = phase()
            pooled[name] += seen
            print(f"  repeat {repeat + 1}, {name:<9} {spread(seen)}", flush=True)
    return pooled


def app_phases(url: str, args: argparse.Namespace) -> dict[str, list[float]]:
    http = httpx.Client(base_url=url, timeout=120, headers={"X-Tab": "bench"})
    http.get("/").raise_for_status()

    def idle() -> list[float]:
        return paced_gets(http, args.requests, args.interval)

    def busy() -> list[float]:
        seconds = str(args.requests * args.interval * 20 + 60)
        ids = []
        for _ in range(TOOLS):
            response = http.post("/tools/bench_spin", files={"seconds": (None, seconds)})
            found = TASK_ID.search(response.text)
            if response.status_code != 200 or not found:
                raise SystemExit(f"POST /tools/bench_spin answered {response.status_code}: {response.text[:300]}")
            ids.append(found[1])
        time.sleep(2)  # the children start (forkserver, imports) before the clock runs
        seen = paced_gets(http, args.requests, args.interval)
        rows = [http.get(f"/tasks/{task}").text for task in ids]
        for task in ids:
            http.post(f"/tasks/{task}/cancel")
        stopped = [task for task, row in zip(ids, rows) if 'class="task running"' not in row]
        if stopped:
            raise SystemExit(f"tasks {stopped} ended before the busy phase did: the figures would be idle ones")
        deadline = time.monotonic() + 30
        while any('class="task running"' in http.get(f"/tasks/{task}").text for task in ids):
            if time.monotonic() > deadline:
                raise SystemExit("cancelled tools still run after 30 s")
            time.sleep(0.2)
        return seen

    print(f"app: GET / idle vs while {TOOLS} sync CPU-bound tools run", flush=True)
    return alternate({"idle": idle, "busy": busy}, args.repeats)


def runner_phases(url: str, args: argparse.Namespace) -> dict[str, list[float]]:
    http = httpx.Client(base_url=url, timeout=120)

    def idle() -> list[float]:
        return paced_gets(http, args.requests, args.interval)

    def busy(kind: str) -> Callable[[], list[float]]:
        def phase() -> list[float]:
            seconds = args.requests * args.interval * 20 + 60
            http.post(f"/start/{kind}", params={"count": TOOLS, "seconds": seconds}).raise_for_status()
            time.sleep(1)
            seen = paced_gets(http, args.requests, args.interval)
            alive = int(http.get("/alive").text)
            http.post("/stop").raise_for_status()
            if alive != TOOLS:
                raise SystemExit(f"only {alive} of {TOOLS} {kind} were still busy when the phase ended")
            return seen
        return phase

    print(f"runners: a bare Starlette app idle vs {TOOLS} busy threads vs {TOOLS} busy child processes", flush=True)
    return alternate({"idle": idle, "threads": busy("threads"), "processes": busy("processes")}, args.repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="paced GET / per phase")
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between request starts")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-runners", action="store_true", help="skip the threads vs processes comparison")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flakewright-bench-") as tmp:
        root = Path(tmp)
        render = render_variant(root / "app", "pipulate")
        (render / "tools" / "bench_spin.py").write_text(SPIN_TOOL)
        env = {"PIPULATE_ENV": "prod", "OLLAMA_HOST": "http://127.0.0.1:9", "PYTHONUNBUFFERED": "1"}
        with serve([sys.executable, "server.py"], render, env) as url:
            app = app_phases(url, args)
        runners = {}
        if not args.no_runners:
            (root / "runners").mkdir()
            (root / "runners" / "bench_runners.py").write_text(RUNNERS_APP)
            argv = [sys.executable, "-c", "import os, uvicorn; uvicorn.run('bench_runners:app', host='127.0.0.1',"
                    " port=int(os.environ['PORT']), log_level='warning')"]
            with serve(argv, root / "runners", {}) as url:
                runners = runner_phases(url, args)

    print(f"\nGET / latency, pooled over {args.repeats} repeats of {args.requests} requests "
          f"(one every {args.interval * 1000:.0f} ms at most)")
    print(f"  app idle          {spread(app['idle'])}")
    print(f"  app, {TOOLS} tools      {spread(app['busy'])}")
    print(f"  ratio busy/idle   {ratios(app['busy'], app['idle'])}   (goal: p99 <= 2x)")
    if runners:
        print(f"  bare idle         {spread(runners['idle'])}")
        print(f"  bare, {TOOLS} threads   {spread(runners['threads'])}")
        print(f"  bare, {TOOLS} processes {spread(runners['processes'])}")
        print(f"  threads/idle      {ratios(runners['threads'], runners['idle'])}")
        print(f"  processes/idle    {ratios(runners['processes'], runners['idle'])}")


if __name__ == "__main__":
    main()
