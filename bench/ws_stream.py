"""Websocket streaming bench: a rendered Pipulate against a bare Starlette websocket, side by side in one run.

    python bench/ws_stream.py [--clients 100] [--messages 200] [--chunks 100]

1. Task progress: N clients each open a tab socket and start a task that reports M times. The task goes
   through the real path (start_task -> report -> tasks table -> push to the tab); its log line carries the
   send time, so the client measures delivery latency. The same N x M load runs against a bare Starlette
   endpoint that only sends. Also runs the shipped demo task (count words of M-1 files) for throughput.
2. Chat: the rendered fake Ollama streams stamped tokens; latency read directly from it vs through
   the app's websocket. The difference of medians is what forwarding adds per chunk.
Everything runs on 127.0.0.1 and stops by itself.
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
from pathlib import Path

import copier
import httpx
from websockets.asyncio.client import connect

REPO = Path(__file__).resolve().parent.parent
STAMP = re.compile(r"(\d{19}) ")
TASK_ID = re.compile(r'id="task-(\d+)"')

BENCH_APP = '''
import time
from server import app, start_task


async def stamped(report, count):
    for done in range(1, count + 1):
        await report(done, count, f"{time.time_ns()} ")
    return f"{count} messages"


@app.post("/bench/start")
async def bench_start(req, count: int):
    return start_task(req, title="bench", fn=stamped, params={"count": count})
'''

BARE_APP = '''
import time
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute

PAD = "x" * 180  # about the size of one progress frame of the app


async def stream(ws):
    await ws.accept()
    count = int(await ws.receive_text())
    for _ in range(count):
        await ws.send_text(f"{time.time_ns()} {PAD}")
    await ws.send_text("done")
    await ws.receive_text()


app = Starlette(routes=[WebSocketRoute("/ws", stream)])
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
        yield f"127.0.0.1:{port}", process.pid
    finally:
        process.terminate()
        process.wait(10)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summary(name: str, latencies_ns: list[int], messages: int, seconds: float) -> float:
    ms = sorted(x / 1e6 for x in latencies_ns)
    p50 = statistics.median(ms) if ms else float("nan")
    p99 = ms[int(len(ms) * 0.99) - 1] if ms else float("nan")
    rate = messages / seconds
    latency = f"p50 {p50:7.2f} ms  p99 {p99:7.2f} ms" if ms else "latency not stamped       "
    print(f"  {name:<28} {latency}  {rate:9.0f} msgs/s  ({messages} msgs in {seconds:.2f} s)")
    return rate


async def app_client(host: str, tab: str, start: str, http: httpx.AsyncClient, latencies: list[int]) -> int:
    received = 0
    async with connect(f"ws://{host}/ws?tab={tab}") as ws:
        row = (await http.post(start, headers={"X-Tab": tab, "HX-Request": "true"})).text
        done = f'id="task-{TASK_ID.search(row)[1]}" class="task done"'
        async for frame in ws:
            now = time.time_ns()
            if done in frame:
                return received
            received += 1
            if match := STAMP.search(frame):
                latencies.append(now - int(match[1]))


async def bare_client(host: str, count: int, latencies: list[int]) -> int:
    async with connect(f"ws://{host}/ws") as ws:
        await ws.send(str(count))
        received = 0
        async for frame in ws:
            now = time.time_ns()
            if frame == "done":
                await ws.send("bye")
                return received
            received += 1
            latencies.append(now - int(frame.split(" ", 1)[0]))


async def fan_out(make, clients: int, pid: int) -> tuple[int, float]:
    started, cpu = time.perf_counter(), cpu_seconds(pid)
    counts = await asyncio.gather(*(make(i) for i in range(clients)))
    seconds, total = time.perf_counter() - started, sum(counts)
    print(f"    server CPU {cpu_seconds(pid) - cpu:.2f} s = {(cpu_seconds(pid) - cpu) / total * 1e6:.0f} us/msg")
    return total, seconds


async def progress(app: tuple[str, int], bare: tuple[str, int], clients: int, messages: int) -> None:
    (app_host, app_pid), (bare_host, bare_pid) = app, bare
    print(f"task progress: {clients} clients x {messages} messages")
    lat_app, lat_bare = [], []
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=f"http://{app_host}", limits=limits, timeout=60) as http:
        await http.get("/")  # one session cookie, shared like the tabs of one browser
        total, seconds = await fan_out(
            lambda i: app_client(app_host, f"bench{i}", f"/bench/start?count={messages}", http, lat_app), clients, app_pid)
        app_rate = summary("app (start_task/report)", lat_app, total, seconds)
        total, seconds = await fan_out(lambda i: bare_client(bare_host, messages, lat_bare), clients, bare_pid)
        bare_rate = summary("bare Starlette websocket", lat_bare, total, seconds)
        total, seconds = await fan_out(
            lambda i: app_client(app_host, f"demo{i}", "/tasks/count-words", http, []), clients, app_pid)
        demo_rate = summary("app demo task (count words)", [], total, seconds)
    print(f"  throughput ratio app/bare: {app_rate / bare_rate:.2f} (demo task {demo_rate / bare_rate:.2f})")


async def chat_direct(fake_url: str, rounds: int) -> list[int]:
    latencies = []
    async with httpx.AsyncClient(timeout=None) as http:
        for _ in range(rounds):
            body = {"model": "big:latest", "messages": [{"role": "user", "content": "hi"}], "stream": True}
            async with http.stream("POST", f"{fake_url}/api/chat", json=body) as response:
                async for line in response.aiter_lines():
                    now = time.time_ns()
                    if match := STAMP.search(json.loads(line)["message"]["content"]):
                        latencies.append(now - int(match[1]))
    return latencies


async def chat_via_app(app_host: str, rounds: int, chunks: int) -> list[int]:
    latencies = []
    async with connect(f"ws://{app_host}/ws?tab=chatbench") as ws:
        for _ in range(rounds):
            await ws.send(json.dumps({"type": "chat", "msg": "hi"}))
            seen = 0
            while seen < chunks:
                frame = await ws.recv()
                now = time.time_ns()
                if "beforeend:#reply-" in frame and (match := STAMP.search(frame)):
                    latencies.append(now - int(match[1]))
                    seen += 1
            await asyncio.sleep(0.05)  # let the reply finish before the next one starts
    return latencies


async def chat(app_host: str, fake, rounds: int, chunks: int) -> None:
    print(f"chat forwarding: {rounds} replies x {chunks} chunks, {fake.delay * 1000:.0f} ms apart")
    direct = await chat_direct(fake.url, rounds)
    via_app = await chat_via_app(app_host, rounds, chunks)
    summary("fake Ollama read directly", direct, len(direct), 1)
    summary("through the app websocket", via_app, len(via_app), 1)
    added = statistics.median(via_app) / 1e6 - statistics.median(direct) / 1e6
    print(f"  forwarding adds {added:.2f} ms median per chunk (target < 2 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--chunks", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flakewright-bench-") as tmp:
        render = Path(tmp) / "app"
        copier.run_copy(str(REPO), str(render), data={"variant": "pipulate"}, defaults=True, quiet=True,
                        vcs_ref="HEAD")
        (render / "bench_app.py").write_text(BENCH_APP)
        (render / "bare_app.py").write_text(BARE_APP)
        (render / "data" / "docs").mkdir(parents=True)
        for i in range(args.messages - 1):
            (render / "data" / "docs" / f"doc{i}.txt").write_text("lorem ipsum dolor sit amet " * (i % 50 + 1))
        sys.path.insert(0, str(render / "tests"))
        from fake_ollama import FakeOllama

        with FakeOllama() as fake:
            fake.stamp, fake.delay, fake.tokens = True, 0.005, ["t"] * args.chunks
            env = {"PIPULATE_ENV": "prod", "OLLAMA_HOST": fake.url}
            with uvicorn("bench_app:app", render, env) as app, uvicorn("bare_app:app", render) as bare:
                asyncio.run(progress(app, bare, args.clients, args.messages))
                asyncio.run(chat(app[0], fake, args.rounds, args.chunks))


if __name__ == "__main__":
    main()
