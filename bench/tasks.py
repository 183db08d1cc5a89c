"""Task bench: a rendered Pipulate now and before (--before, a git ref of this repo), side by side in one run.

    python bench/tasks.py [--before d4b4253] [--reports 100000] [--tabs 10] [--repeats 3] [--cap 10]
                          [--python python3]

  cancel   A tab that stops reading (a raw websocket client: handshake, then never a read) while its task logs
           64 KB lines every 5 ms. Once the task has had time to fill the socket, POST /tasks/{id}/cancel is
           timed, giving up after --cap seconds. Also printed: how far the task got while its tab was stalled.
  loop     --tabs other tabs send {"type": "stop"} back to back and time the "Nothing to stop" answer, first
           with nothing running (idle), then while one task calls report() --reports times in a tight loop, once
           with its tab open (reading every frame) and once with its tab closed: round trip p50/p99.
  frames   the frames that task's own tab receives, the task's run time, and whether its final row is exact.

Each repeat starts a fresh server for each side, alternating sides; figures are medians over repeats (latency
percentiles pool every round trip). Servers run under uvicorn on 127.0.0.1 and are stopped at the end.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline import BEFORE, LAYOUT, spread  # noqa: E402
from baseline import renders as now_and_before  # noqa: E402
from ws_stream import REPO, uvicorn  # noqa: E402

sys.path.insert(0, str(REPO / "tests"))

BENCH_TASKS = '''
import asyncio

''' + LAYOUT + '''
start_task = names.start_task
# Either side of a comparison: create_app() since the app is built on demand, a module-level app before.
app = names.create_app() if hasattr(names, "create_app") else names.app


async def tight(report, count: int):
    for done in range(1, count + 1):
        await report(done, count, f"line {done}")
    return f"{count} reports"


async def chatter(report, size: int, pause: float):
    step = 0
    while True:
        step += 1
        await report(step, 0, f"{step} " + "x" * size)
        await asyncio.sleep(pause)


@app.post("/bench/tight")
async def bench_tight(req, count: int):
    return start_task(req, title="tight", fn=tight, params=dict(count=count))


@app.post("/bench/chatter")
async def bench_chatter(req, size: int, pause: float):
    return start_task(req, title="chatter", fn=chatter, params=dict(size=size, pause=pause))
'''
TASK_ID = re.compile(r'id="task-(\d+)"')
COUNT = re.compile(r'-count">(\d+)/(\d+)<')


def silent_socket(host: str, tab: str) -> socket.socket:
    """A websocket client that completes the handshake and then never reads."""
    name, port = host.split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((name, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(f"GET /ws?tab={tab} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    response = b""
    while not response.endswith(b"\r\n\r\n"):
        response += sock.recv(1)
    return sock


async def cancel(host: str, cap: float) -> tuple[float | None, int]:
    """Seconds a cancel took (None past the cap) and the steps the task made while its tab was stalled."""
    sock = silent_socket(host, "frozen")
    try:
        async with httpx.AsyncClient(base_url=f"http://{host}", timeout=cap) as http:
            await http.get("/")
            row = (await http.post("/bench/chatter?size=64000&pause=0.005", headers={"X-Tab": "frozen"})).text
            task_id = TASK_ID.search(row)[1]
            await asyncio.sleep(3)  # 600 steps at full speed: 38 MB for a socket that buffers a few
            steps = int(COUNT.search((await http.get(f"/tasks/{task_id}")).text)[1])
            started = time.perf_counter()
            try:
                await http.post(f"/tasks/{task_id}/cancel")
            except httpx.TimeoutException:
                return None, steps
            return time.perf_counter() - started, steps
    finally:
        sock.close()


async def round_trips(host: str, tab: str, until: asyncio.Event, seen: list[float]) -> None:
    async with connect(f"ws://{host}/ws?tab={tab}") as ws:
        while not until.is_set():
            started = time.perf_counter()
            await ws.send('{"type": "stop"}')
            while "Nothing to stop" not in await ws.recv():
                pass
            seen.append(time.perf_counter() - started)


async def closed_tab(host: str, tabs: int, reports: int) -> list[float]:
    """Round trips of other tabs while a task whose tab has closed reports in a tight loop."""
    seen = []
    async with httpx.AsyncClient(base_url=f"http://{host}", timeout=600) as http:
        await http.get("/")
        done = asyncio.Event()
        others = [asyncio.create_task(round_trips(host, f"closed{i}", done, seen)) for i in range(tabs)]
        await asyncio.sleep(0.5)
        task_id = TASK_ID.search((await http.post(f"/bench/tight?count={reports}", headers={"X-Tab": "gone"})).text)[1]
        while 'class="task running"' in (await http.get(f"/tasks/{task_id}")).text:
            await asyncio.sleep(0.2)
        done.set()
        await asyncio.gather(*others)
    return seen


async def loop(host: str, tabs: int, reports: int, idle_seconds: float = 2.0) -> dict:
    """Round trips of other tabs, idle and while a task reports in a tight loop; that task's frames."""
    idle, busy, frames = [], [], 0
    stop = asyncio.Event()
    others = [asyncio.create_task(round_trips(host, f"idle{i}", stop, idle)) for i in range(tabs)]
    await asyncio.sleep(idle_seconds)
    stop.set()
    await asyncio.gather(*others)
    async with httpx.AsyncClient(base_url=f"http://{host}", timeout=600) as http, \
            connect(f"ws://{host}/ws?tab=worker", max_size=None) as ws:
        await http.get("/")
        done = asyncio.Event()
        others = [asyncio.create_task(round_trips(host, f"busy{i}", done, busy)) for i in range(tabs)]
        await asyncio.sleep(0.5)
        started = time.perf_counter()
        row = (await http.post(f"/bench/tight?count={reports}", headers={"X-Tab": "worker"})).text
        task_id = TASK_ID.search(row)[1]
        final = f'id="task-{task_id}" class="task done"'
        async for frame in ws:
            if final in frame:
                break
            frames += f'id="task-{task_id}-bar"' in frame
        seconds = time.perf_counter() - started
        done.set()
        await asyncio.gather(*others)
        saved = (await http.get(f"/tasks/{task_id}")).text
        exact = f"{reports}/{reports}" in frame and f"{reports}/{reports}" in saved
    closed = await closed_tab(host, tabs, reports)
    return dict(idle=idle, busy=busy, closed=closed, frames=frames, seconds=seconds, exact=exact)


async def measure(servers: dict, args: argparse.Namespace) -> None:
    cancels = {name: [] for name in servers}
    loops = {name: [] for name in servers}
    for repeat in range(args.repeats):
        for name, start in servers.items():
            with start() as server:
                cancels[name].append(await cancel(server.host, args.cap))
            with start() as server:
                loops[name].append(await loop(server.host, args.tabs, args.reports))
            print(f"  repeat {repeat + 1}, {name}: cancel {cancels[name][-1]}, "
                  f"frames {loops[name][-1]['frames']}", flush=True)

    print(f"cancel with a stalled tab (task logs 64 KB lines every 5 ms; cap {args.cap:.0f} s), "
          f"{args.repeats} runs each side")
    for name, runs in cancels.items():
        answered = [seconds for seconds, _ in runs if seconds is not None]
        latency = f"median {statistics.median(answered) * 1000:8.1f} ms" if answered else "never answered  "
        print(f"  {name:<7} {latency}  answered {len(answered)}/{len(runs)} within {args.cap:.0f} s;"
              f"  steps before cancel: median {statistics.median(steps for _, steps in runs):.0f}")

    print(f"other tabs while one task reports {args.reports:,} times in a tight loop ({args.tabs} tabs, "
          f"stop -> 'Nothing to stop' round trips; target p99 < 50 ms)")
    for name, runs in loops.items():
        idle, busy, closed = ([x for run in runs for x in run[key]] for key in ("idle", "busy", "closed"))
        print(f"  {name:<7} idle {spread(idle)} | its tab open {spread(busy)} | its tab closed {spread(closed)}")
    print(f"frames to the reporting task's own tab for {args.reports:,} reports")
    for name, runs in loops.items():
        frames = statistics.median(run["frames"] for run in runs)
        seconds = statistics.median(run["seconds"] for run in runs)
        exact = all(run["exact"] for run in runs)
        print(f"  {name:<7} {frames:8.0f} frames in {seconds:6.2f} s ({frames / seconds:7.1f} frames/s, "
              f"target <= ~20/s)  final row exact: {exact}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=BEFORE, help="git ref to compare against ('' for none)")
    parser.add_argument("--reports", type=int, default=100_000)
    parser.add_argument("--tabs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cap", type=float, default=10.0, help="seconds to wait for a cancel")
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter every server runs on (the template's default Python is 3.12)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flakewright-bench-") as tmp:
        renders = now_and_before(Path(tmp), args.before)
        for render in renders.values():
            (render / "bench_tasks.py").write_text(BENCH_TASKS)
        env = {"PIPULATE_ENV": "prod", "OLLAMA_HOST": "http://127.0.0.1:9"}
        servers = {name: (lambda render=render: uvicorn("bench_tasks:app", render, args.python, env))
                   for name, render in renders.items()}
        asyncio.run(measure(servers, args))


if __name__ == "__main__":
    main()
