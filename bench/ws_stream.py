"""Websocket streaming bench: a rendered Pipulate against a bare Starlette websocket, side by side in one run.

    python bench/ws_stream.py [--clients 100] [--messages 200] [--interval 0.01] [--repeats 5] [--rounds 5]

Task progress. N clients each open a tab socket and start a task that reports M times, through the real
path: POST -> start_task -> report() -> `tasks` table -> push to that tab. Each log line carries its send
time, so clients measure delivery latency. The same load runs against a bare Starlette endpoint that only
sends. All streams begin together once every client is connected; app and bare runs alternate, --repeats
times each, and the median throughput is compared. Two phases:
  burst   reports back to back: delivery throughput (msgs/s), app vs bare
  paced   one report per --interval per task: delivery latency p50/p99 under load, app vs bare
The shipped demo task (count words of M-1 files under data/) runs too, for its real-work throughput.

Chat. The rendered fake Ollama streams stamped tokens; their latency read straight from it vs through the
app's websocket. The difference of the medians is what forwarding adds per chunk.

Servers run under uvicorn on 127.0.0.1 and are stopped at the end; server CPU comes from /proc.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from conftest import free_port, render_variant  # noqa: E402

STAMP = re.compile(r"(\d{19}) ")
TASK_ID = re.compile(r'id="task-(\d+)"')
SETUP_SECONDS = 3.0  # every client connects and starts its task within this, then all streams begin

BENCH_APP = '''
import asyncio
import time

from server import app, start_task


async def stamped(report, count: int, at: float, interval: float):
    await asyncio.sleep(max(0.0, at - time.time()))
    for done in range(1, count + 1):
        await report(done, count, f"{time.time_ns()} ")
        if interval:
            await asyncio.sleep(interval)
    return f"{count} messages"


@app.post("/bench/start")
async def bench_start(req, count: int, at: float, interval: float):
    return start_task(req, title="bench", fn=stamped, params=dict(count=count, at=at, interval=interval))
'''

BARE_APP = '''
import asyncio
import json
import time

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute

PAD = "x" * 180  # the size of one progress frame of the app


async def stream(ws):
    await ws.accept()
    load = json.loads(await ws.receive_text())
    await asyncio.sleep(max(0.0, load["at"] - time.time()))
    for _ in range(load["count"]):
        await ws.send_text(f"{time.time_ns()} {PAD}")
        if load["interval"]:
            await asyncio.sleep(load["interval"])
    await ws.send_text("done")
    await ws.receive_text()


app = Starlette(routes=[WebSocketRoute("/ws", stream)])
'''


@dataclass
class Server:
    host: str
    pid: int

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def uvicorn(app: str, cwd: Path, env: dict | None = None):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        cwd=cwd, env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit(f"{app} did not start")
            time.sleep(0.1)
        yield Server(f"127.0.0.1:{port}", process.pid)
    finally:
        process.terminate()
        process.wait(10)


@dataclass
class Seen:
    """Frames received by all clients of one run: count, stamped latencies, first and last arrival."""
    count: int = 0
    latencies_ns: list[int] = field(default_factory=list)
    first: int = sys.maxsize
    last: int = 0

    def frame(self, text: str) -> None:
        now = time.time_ns()
        self.count += 1
        self.first, self.last = min(self.first, now), now
        if match := STAMP.search(text):
            self.latencies_ns.append(now - int(match[1]))

    def rate(self) -> float:
        return self.count / ((self.last - self.first) / 1e9)


@dataclass
class Runs:
    """Repeated runs of one side: median throughput, pooled latencies, server CPU per message."""
    name: str
    runs: list[Seen] = field(default_factory=list)
    cpu: float = 0.0

    def rate(self) -> float:
        return statistics.median(run.rate() for run in self.runs)

    def percentile_ms(self, q: float) -> float:
        pooled = sorted(x for run in self.runs for x in run.latencies_ns)
        return pooled[min(len(pooled) - 1, int(len(pooled) * q))] / 1e6

    def print(self) -> None:
        messages = sum(run.count for run in self.runs)
        latency = (f"p50 {self.percentile_ms(0.5):7.2f} ms  p99 {self.percentile_ms(0.99):7.2f} ms"
                   if self.runs[0].latencies_ns else " " * 32)
        print(f"  {self.name:<34} {latency}  {self.rate():8.0f} msgs/s (median of {len(self.runs)})"
              f"  server CPU {self.cpu / messages * 1e6:4.0f} us/msg")


async def app_client(server: Server, http: httpx.AsyncClient, tab: str, start: str, seen: Seen) -> None:
    async with connect(f"ws://{server.host}/ws?tab={tab}") as ws:
        row = (await http.post(start, headers={"X-Tab": tab, "HX-Request": "true"})).text
        done = f'id="task-{TASK_ID.search(row)[1]}" class="task done"'
        async for frame in ws:
            if done in frame:
                return
            seen.frame(frame)


async def bare_client(server: Server, load: dict, seen: Seen) -> None:
    async with connect(f"ws://{server.host}/ws") as ws:
        await ws.send(json.dumps(load))
        async for frame in ws:
            if frame == "done":
                return await ws.send("bye")
            seen.frame(frame)


async def run(runs: Runs, server: Server, clients, count: int) -> None:
    seen, cpu = Seen(), server.cpu_seconds()
    await asyncio.gather(*(clients(i, seen) for i in range(count)))
    runs.cpu += server.cpu_seconds() - cpu
    runs.runs.append(seen)


async def progress(app: Server, bare: Server, args: argparse.Namespace) -> None:
    limits = httpx.Limits(max_connections=args.clients)
    async with httpx.AsyncClient(base_url=f"http://{app.host}", limits=limits, timeout=60) as http:
        await http.get("/")  # one session cookie, shared like the tabs of one browser
        for phase, interval in (("burst", 0.0), ("paced", args.interval)):
            rate = "back to back" if not interval else f"one per {interval * 1000:.0f} ms per task"
            print(f"task progress, {phase}: {args.clients} clients x {args.messages} reports, {rate}, "
                  f"{args.repeats} runs each side, alternating")
            in_app, in_bare = Runs("app (start_task -> report -> tab)"), Runs("bare Starlette websocket")
            for repeat in range(args.repeats):
                at = time.time() + SETUP_SECONDS
                start = f"/bench/start?count={args.messages}&at={at}&interval={interval}"
                await run(in_app, app, lambda i, seen: app_client(
                    app, http, f"{phase}{repeat}-{i}", start, seen), args.clients)
                load = dict(count=args.messages, at=time.time() + SETUP_SECONDS, interval=interval)
                await run(in_bare, bare, lambda i, seen: bare_client(bare, load, seen), args.clients)
            in_app.print()
            in_bare.print()
            print(f"  app/bare throughput {in_app.rate() / in_bare.rate():.2f} (target >= 0.5)   "
                  f"app p99 {in_app.percentile_ms(0.99):.1f} ms (target < 50 ms)")
        print(f"demo task: {args.clients} clients each count the words of {args.messages - 1} files")
        demo = Runs("app demo task (count words)")
        await run(demo, app, lambda i, seen: app_client(app, http, f"demo{i}", "/tasks/count-words", seen),
                  args.clients)
        demo.print()


async def chat_direct(fake_url: str, rounds: int, seen: Seen) -> None:
    async with httpx.AsyncClient(timeout=None) as http:
        for _ in range(rounds):
            body = {"model": "big:latest", "messages": [{"role": "user", "content": "hi"}], "stream": True}
            async with http.stream("POST", f"{fake_url}/api/chat", json=body) as response:
                async for line in response.aiter_lines():
                    seen.frame(json.loads(line)["message"]["content"])


async def chat_via_app(app: Server, rounds: int, chunks: int, seen: Seen) -> None:
    async with connect(f"ws://{app.host}/ws?tab=chatbench") as ws:
        for _ in range(rounds):
            await ws.send(json.dumps({"type": "chat", "msg": "hi"}))
            received = 0
            while received < chunks:
                if "beforeend:#reply-" in (frame := await ws.recv()):
                    seen.frame(frame)
                    received += 1
            await asyncio.sleep(0.05)  # the stream's closing line, before the next message starts


async def chat(app: Server, fake, rounds: int) -> None:
    print(f"chat: {rounds} replies x {len(fake.tokens)} chunks, {fake.delay * 1000:.0f} ms apart")
    direct, via_app = Runs("fake Ollama read directly"), Runs("through the app websocket")
    direct.runs.append(Seen())
    await chat_direct(fake.url, rounds, direct.runs[0])
    await run(via_app, app, lambda i, seen: chat_via_app(app, rounds, len(fake.tokens), seen), 1)
    direct.print()
    via_app.print()
    added = via_app.percentile_ms(0.5) - direct.percentile_ms(0.5)
    print(f"  forwarding adds {added:.2f} ms median per chunk (target < 2 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.01, help="seconds between reports when paced")
    parser.add_argument("--chunks", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5, help="chat replies")
    parser.add_argument("--repeats", type=int, default=5, help="runs per side of each progress phase")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flakewright-bench-") as tmp:
        render = Path(tmp) / "app"
        render_variant(render, "pipulate")
        (render / "bench_app.py").write_text(BENCH_APP)
        (render / "bare_app.py").write_text(BARE_APP)
        docs = render / "data" / "docs"
        docs.mkdir(parents=True)
        for i in range(args.messages - 1):
            (docs / f"doc{i}.txt").write_text("lorem ipsum dolor sit amet " * (i % 50 + 1))
        sys.path.insert(0, str(render / "tests"))
        from fake_ollama import FakeOllama

        with FakeOllama() as fake:
            fake.stamp, fake.delay, fake.tokens = True, 0.005, ["t"] * args.chunks
            env = {"PIPULATE_ENV": "prod", "OLLAMA_HOST": fake.url}
            with uvicorn("bench_app:app", render, env) as app, uvicorn("bare_app:app", render) as bare:
                asyncio.run(progress(app, bare, args))
                asyncio.run(chat(app, fake, args.rounds))


if __name__ == "__main__":
    main()
