"""Websocket streaming bench: a rendered Pipulate now and before (--before, a git ref of this repo), against
a bare Starlette websocket, side by side in one run.

    python bench/ws_stream.py [--clients 100 500] [--messages 200] [--interval 0.1] [--repeats 3] [--rounds 5]
                              [--before d4b4253] [--phases burst paced] [--parts progress demo chat]
                              [--python /path/to/python3.12] [--instructions]

Task progress. N clients each open a tab socket and start a task that reports M times, through the real
path: POST -> start_task -> report() -> `tasks` table -> push to that tab. Each log line carries a time, so
clients measure delivery latency: in a burst, when report() was called; when paced, when the report was due.
The same load runs against a bare Starlette endpoint that only sends, one frame per report. All streams begin
together half a second after the last client is connected (and, on the app side, its POST has answered), so
setting up is never measured as streaming; the sides alternate, --repeats times each, and the median
throughput is compared. Throughput counts reports delivered (log lines reaching the page, plus those a frame
counts as not shown: a frame carries a task's newest 50), since the app may carry several in one frame;
frames/s is printed beside it. Three phases:
  burst      reports back to back: delivery throughput (reports/s), app vs bare
  paced      one report per --interval per task, every task in step: delivery latency p50/p99 under load, app
             vs bare. The default (10 reports/s per task) stays under the app's 20 progress frames/s per task,
             so this is latency, not coalescing. In step, each round's reports run in one turn of the event
             loop, so p99 is about the CPU of a whole round
  staggered  as paced, but the tasks' first reports spread evenly over one interval, as tabs people start
             are: the latency of a report rather than of a round
Paced tasks keep a timetable (report k is due at start + k * interval), as a load generator must. A task that
slept an interval after each report drifted later whenever the loop ran late; tasks late together stayed
together, so over a run the staggered tasks merged into ever larger groups, whose size set p99 and differed
from run to run. The due time as the stamp also counts a report that the server's loop started late, which
the time of the call would hide.
Each app side also prints the median time its POSTs took to start the N tasks (all at once, like N tabs), and,
from one more run whose deliveries are not counted (the bare side has no such user), the latency of another
user's POSTs (POST /profiles/switch every 100 ms from a separate process) while the N tasks stream.
The shipped demo task (count words of M-1 files under data/) runs too, for its real-work throughput.

Chat. The rendered fake Ollama streams stamped tokens; their latency read straight from it vs through the
app's websocket. The difference of the medians is what forwarding adds per chunk.

Servers run under uvicorn on 127.0.0.1 (on --python, which needs the render's requirements; the template's
default Python is 3.12, whose eager tasks the app's tab writer uses), both without permessage-deflate as
server.py serves the app, and are stopped at the end. Server CPU comes from /proc and counts the streaming
only. Every run's p99 is printed, and the ratio to bare is given pooled and as the median of the runs side by
side; beside them, the host stalls each run met (WATCHER) and p99 over the reports that met none.
--instructions also counts each server's instructions per report with `perf stat`, a figure that holds still
when the host gets busy, for comparing how much work a report takes. It costs the runs their latency: on this
machine (a VM) perf stops every process for 100-200 ms about every 1.2 s and multiplies the servers' CPU per
report 2-5 times, so a run with it says nothing about p99 or CPU time.
"""
from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import gc
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

REPO = Path(__file__).resolve().parent.parent
from baseline import BEFORE, LAYOUT, percentile_ms  # noqa: E402
from baseline import renders as now_and_before  # noqa: E402
sys.path.insert(0, str(REPO / "tests"))

from helpers import free_port  # noqa: E402

STAMP = re.compile(r"(\d{19}) ")
LOG_LINES = re.compile(r'hx-swap-oob="beforeend">(.*?)</pre>', re.S)
GAP = re.compile(r"… ([\d,]+) lines not shown here")  # a frame carries a task's newest lines and counts the rest
TASK_ID = re.compile(r'id="task-(\d+)"')
LEAD = 0.5  # seconds from the last client being ready to every stream's start
# Per phase: whether tasks wait --interval between reports, and whether their starts spread over one interval.
PHASES = {"burst": (False, False), "paced": (True, False), "staggered": (True, True)}
COUNT_WORDS = ("/tools/count_words", "/tasks/count-words")  # the demo task, as a tool and before it was one

# The one timetable both servers' streams keep (the docstring says why), and each report's stamp.
TIMETABLE = '''

async def timetable(count: int, start: float, interval: float):
    for done in range(1, count + 1):
        due = start + (done - 1) * interval
        if done == 1 or interval:
            await asyncio.sleep(max(0.0, due - time.time()))
        yield done, round(due * 1e9) if interval else time.time_ns()
'''

BENCH_APP = '''
import asyncio
import time

''' + LAYOUT + '''
start_task = names.start_task
# Either side of a comparison: create_app() since the app is built on demand, a module-level app before.
app = names.create_app() if hasattr(names, "create_app") else names.app

STARTS: dict[str, asyncio.Future] = {}  # run -> the time its streams begin, set once every client is ready


def start_of(run: str) -> asyncio.Future:
    return STARTS.setdefault(run, asyncio.get_running_loop().create_future())
''' + TIMETABLE + '''

async def stamped(report, count: int, run: str, interval: float, offset: float):
    async for done, stamp in timetable(count, await start_of(run) + offset, interval):
        await report(done, count, f"{stamp} ")
    return f"{count} messages"


@app.post("/bench/start")
async def bench_start(req, count: int, run: str, interval: float, offset: float):
    return start_task(req, title="bench", fn=stamped,
                      params=dict(count=count, run=run, interval=interval, offset=offset))


@app.post("/bench/go")
async def bench_go(run: str, at: float):
    start_of(run).set_result(at)
'''

# Another user's clicks while the tabs stream: one POST every 100 ms from its own process (the bench's own
# process is busy driving the tabs), each latency printed on a line.
PROBE = '''
import sys
import time

import httpx

with httpx.Client(base_url=sys.argv[1], timeout=120) as http:
    http.get("/")
    time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
    while True:
        started = time.perf_counter()
        try:
            http.post("/profiles/switch", data={"id": "1"})
        except httpx.TransportError:  # the server's accept queue is full: that click did not get through
            print("inf", flush=True)
        else:
            print(time.perf_counter() - started, flush=True)
        time.sleep(0.1)
'''

# A process that only sleeps, 1 ms at a time, from each run's start to its end, and prints every wake-up over
# 20 ms late: when it woke and how late (ns). Neither idle nor under this bench's load does this machine have
# any; something else on it can stop every process (perf counting, as with --instructions, did so for 100-200
# ms about every 1.2 s), and a few such stalls set a run's p99 alone, whatever the server. So each side also
# prints how many its runs met, and p99 over the reports whose way from due to delivered met none.
WATCHER = '''
import sys
import time

time.sleep(max(0.0, float(sys.argv[1]) - time.time()))
while True:
    asleep = time.time_ns()
    time.sleep(0.001)
    if (late := (woke := time.time_ns()) - asleep - 1_000_000) > 20_000_000:
        print(woke, late, flush=True)
'''

BARE_APP = '''
import asyncio
import json
import time

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute

PAD = "x" * 180  # the size of one progress frame of the app
''' + TIMETABLE + '''

async def stream(ws):
    await ws.accept()
    load = json.loads(await ws.receive_text())
    async for _, stamp in timetable(load["count"], load["at"] + load["offset"], load["interval"]):
        await ws.send_text(f"{stamp} {PAD}")
    await ws.send_text("done")
    await ws.receive_text()


app = Starlette(routes=[WebSocketRoute("/ws", stream)])
'''


@dataclass
class Server:
    host: str
    pid: int
    counted: bool = False  # --instructions

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def count_instructions(self) -> asyncio.subprocess.Process | None:
        """`perf stat` counting the server's instructions until it is stopped by `instructions()`; None unless
        --instructions (the docstring at the top says what it costs) and perf is on the PATH. Attaching stops
        the server for about 170 ms, so a timed run attaches it during the lead, not as the streams begin."""
        if not self.counted or not shutil.which("perf"):
            return None
        return await asyncio.create_subprocess_exec("perf", "stat", "-x,", "-e", "instructions", "-p", str(self.pid),
                                                    stderr=asyncio.subprocess.PIPE)


async def instructions(perf: asyncio.subprocess.Process | None) -> int:
    """What a `count_instructions()` counted, 0 if it counted nothing."""
    if not perf:
        return 0
    perf.send_signal(signal.SIGINT)
    counted = (await perf.communicate())[1].decode()
    return sum(int(line.split(",")[0]) for line in counted.splitlines() if line[:1].isdigit())


@contextlib.contextmanager
def uvicorn(app: str, cwd: Path, python: str, env: dict | None = None, *, counted: bool = False):
    port = free_port()
    process = subprocess.Popen(
        [python, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
         "--timeout-keep-alive", "120", "--ws-per-message-deflate", "false"],
        cwd=cwd, env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit(f"{app} did not start")
            time.sleep(0.1)
        yield Server(f"127.0.0.1:{port}", process.pid, counted)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:  # a server stuck on a request that never ends
            process.kill()
            process.wait()


@dataclass
class Seen:
    """What all clients of one run received: frames, stamped reports and their latencies, first and last
    arrival, and how long each client's POST took to start its task."""
    count: int = 0
    frames: int = 0
    reports: list[tuple[int, int]] = field(default_factory=list)  # each stamped report's due and arrival, ns
    posts: list[float] = field(default_factory=list)
    probes: list[float] = field(default_factory=list)
    stalls: list[tuple[int, int]] = field(default_factory=list)  # the host's, from WATCHER: start and end, ns
    first: int = sys.maxsize
    last: int = 0
    clients: int = 0
    ready: int = 0
    all_ready: asyncio.Event = field(default_factory=asyncio.Event)
    at: float = 0.0

    async def set_up(self) -> float:
        """Wait until every client of the run is set up; the time the streams begin."""
        self.ready += 1
        if self.ready == self.clients:
            self.at = time.time() + LEAD
            self.all_ready.set()
        await self.all_ready.wait()
        return self.at

    def frame(self, text: str) -> None:
        now = time.time_ns()
        self.frames += 1
        self.first, self.last = min(self.first, now), now
        stamps = STAMP.findall(text)
        not_shown = sum(int(count.replace(",", "")) for count in GAP.findall(text))
        self.count += (len(stamps) or sum(lines.count("\n") for lines in LOG_LINES.findall(text))) + not_shown
        self.reports += ((int(stamp), now) for stamp in stamps)

    def latencies(self, *, clear: bool = False) -> list[float]:
        """Seconds from due to delivered; with `clear`, only of the reports that met none of the host's stalls."""
        return [(arrived - due) / 1e9 for due, arrived in self.reports if not clear or not self.stalled(due, arrived)]

    def stalled(self, due: int, arrived: int) -> bool:
        """Whether a host stall overlapped [due, arrived]: the first to end after `due` began before `arrived`."""
        first = bisect.bisect_right(self.stalls, due, key=itemgetter(1))
        return first < len(self.stalls) and self.stalls[first][0] < arrived

    def seconds(self) -> float:
        return (self.last - self.first) / 1e9

    def rate(self) -> float:
        return self.count / self.seconds()


@dataclass
class Runs:
    """Repeated runs of one side: median throughput, pooled latencies, server CPU per message."""
    name: str
    runs: list[Seen] = field(default_factory=list)
    cpu: float = 0.0
    instructions: int = 0
    posts: list[float] = field(default_factory=list)
    probes: list[float] = field(default_factory=list)

    def rate(self) -> float:
        return statistics.median(run.rate() for run in self.runs)

    def frame_rate(self) -> float:
        return statistics.median(run.frames / run.seconds() for run in self.runs)

    def percentile_ms(self, q: float, *, clear: bool = False) -> float:
        return percentile_ms([x for run in self.runs for x in run.latencies(clear=clear)], q)

    def p99s_ms(self, *, clear: bool = False) -> list[float]:
        """Each run's own p99, in run order: runs of the two sides alternate, so run i of each met the same
        moment of a shared machine."""
        return [percentile_ms(run.latencies(clear=clear), 0.99) for run in self.runs]

    def print(self) -> None:
        messages = sum(run.count for run in self.runs)
        timed = bool(self.runs[0].reports)
        latency = (f"p50 {self.percentile_ms(0.5):7.2f} ms  p99 {self.percentile_ms(0.99):7.2f} ms"
                   if timed else " " * 32)
        each = f"\n    {'':<34} p99 of each run, ms: {' '.join(f'{p99:.1f}' for p99 in self.p99s_ms())}" \
            if timed and len(self.runs) > 1 else ""
        if timed:
            stalls = [(end - start) / 1e6 for run in self.runs for start, end in run.stalls]
            clear = sum(len(run.latencies(clear=True)) for run in self.runs)
            met = 1 - clear / sum(len(run.reports) for run in self.runs)
            each += f"\n    {'':<34} host stalls over 20 ms in each run: " \
                    f"{' '.join(str(len(run.stalls)) for run in self.runs)}" \
                    f"{f', the longest {max(stalls):.0f} ms' if stalls else ''}; {met:.2%} of reports met one;" \
                    f" p99 of the rest {self.percentile_ms(0.99, clear=True):.2f} ms"
        posts = [post for run in self.runs for post in run.posts] + self.posts
        probes = self.probes
        counted = f", {self.instructions / messages / 1000:5.0f}k instructions/report" if self.instructions else ""
        post = f"\n    {'':<34} start POSTs p50 {statistics.median(posts) * 1000:6.0f} ms" if posts else ""
        post += f"; another user's POST while they stream p50 {statistics.median(probes) * 1000:6.1f} ms" \
                f" p99 {percentile_ms(probes, 0.99):6.1f} ms ({len(probes)})" if probes else ""
        print(f"  {self.name:<34} {latency}  {self.rate():8.0f} reports/s (median of {len(self.runs)}),"
              f" {self.frame_rate():7.0f} frames/s  server CPU {self.cpu / messages * 1e6:4.0f} us/report{counted}{each}{post}")


def p99_ratios(runs: Runs, bare: Runs, *, clear: bool = False) -> str:
    """p99 of `runs` over `bare`'s, pooled and run by run side by side; with `clear`, outside host stalls."""
    pairs = [app / bare for app, bare in zip(runs.p99s_ms(clear=clear), bare.p99s_ms(clear=clear))]
    return (f"{runs.percentile_ms(0.99, clear=clear) / bare.percentile_ms(0.99, clear=clear):.2f} pooled, "
            f"{statistics.median(pairs):.2f} median of runs side by side; "
            f"run by run {' '.join(f'{ratio:.2f}' for ratio in pairs)}")


async def app_client(server: Server, http: httpx.AsyncClient, tab: str, start: str, seen: Seen,
                     go: str = "") -> None:
    """One tab: its socket, the POST that starts its task, then every frame until the task's final row. With
    `go`, the run's tasks wait for it to be POSTed with their start time once every tab is set up."""
    async with connect(f"ws://{server.host}/ws?tab={tab}", max_size=None, ping_interval=None) as ws:
        posted = time.perf_counter()
        row = (await http.post(start, headers={"X-Tab": tab, "HX-Request": "true"})).text
        seen.posts.append(time.perf_counter() - posted)
        done = f'id="task-{TASK_ID.search(row)[1]}" class="task done"'
        at = await seen.set_up()
        if go and seen.ready == seen.clients:
            seen.ready += 1  # one client sends the start
            await http.post(f"{go}&at={at}")
        async for frame in ws:
            if done in frame:
                return
            seen.frame(frame)


async def bare_client(server: Server, load: dict, seen: Seen) -> None:
    async with connect(f"ws://{server.host}/ws", ping_interval=None) as ws:
        at = await seen.set_up()
        await ws.send(json.dumps({**load, "at": at}))
        async for frame in ws:
            if frame == "done":
                return await ws.send("bye")
            seen.frame(frame)


async def run(runs: Runs, server: Server, clients, count: int, probe: bool = False, set_up_counts: bool = False
              ) -> None:
    """One run of `count` clients; with probe, another user's POSTs from the streams' start until they finish,
    and the run's deliveries kept out of `runs` (only its POSTs count). Server CPU counts from the streams' start,
    or from the first client with set_up_counts (work whose POST starts it at once, like the demo task)."""
    seen = Seen(clients=count)

    async def measure_from_start() -> tuple[float, asyncio.subprocess.Process | None]:
        if set_up_counts:
            return server.cpu_seconds(), await server.count_instructions()
        await seen.all_ready.wait()
        perf = await server.count_instructions()
        await asyncio.sleep(max(0.0, seen.at - time.time()))
        return server.cpu_seconds(), perf

    async def printed(script: str, *args: str) -> list[str]:
        """The lines a Python `script` printed until the streams finished. It starts once every
        client is ready, with the time the streams begin as its last argument."""
        await seen.all_ready.wait()
        process = await asyncio.create_subprocess_exec(sys.executable, "-c", script, *args, str(seen.at),
                                                       stdout=asyncio.subprocess.PIPE)
        await finished.wait()
        process.terminate()
        return (await process.communicate())[0].decode().splitlines()

    finished = asyncio.Event()
    cpu = asyncio.create_task(measure_from_start())
    stalls = asyncio.create_task(printed(WATCHER))
    if probe:
        probes = asyncio.create_task(printed(PROBE, f"http://{server.host}"))
    gc.collect()
    gc.disable()  # a full collection here stalls every client's reads for 100 ms or more, at random, either side
    try:
        await asyncio.gather(*(clients(i, seen) for i in range(count)))
    finally:
        gc.enable()
    cpu_then, perf = await cpu
    used, counted = server.cpu_seconds() - cpu_then, await instructions(perf)
    finished.set()
    seen.stalls = [(woke - late, woke) for woke, late in (map(int, line.split()) for line in await stalls)]
    if probe:
        runs.probes += map(float, await probes)
        runs.posts += seen.posts
        return
    runs.cpu += used
    runs.instructions += counted
    runs.runs.append(seen)


async def progress(apps: dict[str, Server], bare: Server, args: argparse.Namespace) -> None:
    limits = httpx.Limits(max_connections=max(args.clients))
    async with contextlib.AsyncExitStack() as stack:
        https = {}
        for name, app in apps.items():
            https[name] = await stack.enter_async_context(
                httpx.AsyncClient(base_url=f"http://{app.host}", limits=limits, timeout=120))
            await https[name].get("/")  # one session cookie, shared like the tabs of one browser
        for clients in args.clients:
            for phase in args.phases:
                paced, spread = PHASES[phase]
                interval = args.interval if paced else 0.0
                offsets = [i / clients * interval if spread else 0.0 for i in range(clients)]  # each task's start
                rate = "back to back" if not paced else f"one per {interval * 1000:.0f} ms per task, " + \
                    ("their starts spread evenly over one interval" if spread else "all in step")
                print(f"task progress, {phase}: {clients} clients x {args.messages} reports, {rate}, "
                      f"{args.repeats} runs each side, alternating", flush=True)
                in_apps = {name: Runs(f"{name} (start_task -> report -> tab)") for name in apps}
                in_bare = Runs("bare Starlette websocket")
                for repeat in range(args.repeats + 1):
                    for name, app in apps.items():
                        key = f"{name}-{phase}{clients}-{repeat}"
                        start = f"/bench/start?count={args.messages}&run={key}&interval={interval}&offset="
                        await run(in_apps[name], app, lambda i, seen, app=app, name=name, start=start, key=key:
                                  app_client(app, https[name], f"{key}-{i}", f"{start}{offsets[i]}", seen,
                                             f"/bench/go?run={key}"),
                                  clients, probe=repeat == args.repeats)
                    if repeat < args.repeats:
                        load = dict(count=args.messages, interval=interval)
                        await run(in_bare, bare, lambda i, seen: bare_client(bare, {**load, "offset": offsets[i]}, seen),
                                  clients)
                for runs in (*in_apps.values(), in_bare):
                    runs.print()
                for name, runs in in_apps.items():
                    print(f"  {name}/bare: throughput {runs.rate() / in_bare.rate():.2f} (target >= 0.8), "
                          f"p99 {p99_ratios(runs, in_bare)} (paced target <= 1.2)\n"
                          f"    {'':<10} outside host stalls: p99 {p99_ratios(runs, in_bare, clear=True)}", flush=True)
        if "demo" not in args.parts:
            return
        clients = args.clients[0]
        print(f"demo task: {clients} clients each count the words of {args.messages - 1} files")
        for name, app in apps.items():
            demo = Runs(f"{name} demo task (count words)")
            # A tool answers GET with its form; the demo task before it was a tool took POST only: its button's
            # hx-post on the main page shows it is there.
            page = (await https[name].get("/")).text
            served = [path for path in COUNT_WORDS
                      if f'"{path}"' in page or (await https[name].get(path)).status_code == 200]
            path = served[0]
            await run(demo, app, lambda i, seen: app_client(
                app, https[name], f"{name}-demo{i}", path, seen), clients, set_up_counts=True)
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
        await asyncio.sleep(max(0.0, await seen.set_up() - time.time()))  # as every client of a run does
        for _ in range(rounds):
            await ws.send(json.dumps({"type": "chat", "msg": "hi"}))
            received = 0
            while received < chunks:
                if "beforeend:#reply-" in (frame := await ws.recv()):
                    seen.frame(frame)
                    received += 1
            await asyncio.sleep(0.05)  # the stream's closing line, before the next message starts


async def chat(apps: dict[str, Server], fake, rounds: int) -> None:
    print(f"chat: {rounds} replies x {len(fake.tokens)} chunks, {fake.delay * 1000:.0f} ms apart")
    direct = Runs("fake Ollama read directly")
    direct.runs.append(Seen())
    await chat_direct(fake.url, rounds, direct.runs[0])
    direct.print()
    for name, app in apps.items():
        via_app = Runs(f"through the {name} app websocket")
        await run(via_app, app, lambda i, seen: chat_via_app(app, rounds, len(fake.tokens), seen), 1)
        via_app.print()
        added = via_app.percentile_ms(0.5) - direct.percentile_ms(0.5)
        print(f"  {name}: forwarding adds {added:.2f} ms median per chunk (target < 2 ms)")


def prepare(render: Path, messages: int) -> None:
    (render / "bench_app.py").write_text(BENCH_APP)
    docs = render / "data" / "docs"
    docs.mkdir(parents=True)
    for i in range(messages - 1):
        (docs / f"doc{i}.txt").write_text("lorem ipsum dolor sit amet " * (i % 50 + 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between reports when paced")
    parser.add_argument("--chunks", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5, help="chat replies")
    parser.add_argument("--repeats", type=int, default=3, help="runs per side of each progress phase")
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter every server runs on (the template's default Python is 3.12)")
    parser.add_argument("--before", default=BEFORE, help="git ref to compare against ('' for none)")
    parser.add_argument("--phases", nargs="+", choices=PHASES, default=list(PHASES))
    parser.add_argument("--parts", nargs="+", choices=("progress", "demo", "chat"),
                        default=["progress", "demo", "chat"], help="what to run (demo runs with progress)")
    parser.add_argument("--instructions", action="store_true",
                        help="count the servers' instructions per report with perf; the runs' latency is lost")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flakewright-bench-") as tmp:
        renders = now_and_before(Path(tmp), args.before)
        for render in renders.values():
            prepare(render, args.messages)
        (Path(tmp) / "bare_app.py").write_text(BARE_APP)
        sys.path.insert(0, str(renders["now"] / "tests"))
        from fake_ollama import FakeOllama

        with FakeOllama() as fake, contextlib.ExitStack() as stack:
            fake.stamp, fake.delay, fake.tokens = True, 0.005, ["t"] * args.chunks
            env = {"PIPULATE_ENV": "prod", "OLLAMA_HOST": fake.url}
            counted = args.instructions
            apps = {name: stack.enter_context(uvicorn("bench_app:app", render, args.python, env, counted=counted))
                    for name, render in renders.items()}
            bare = stack.enter_context(uvicorn("bare_app:app", Path(tmp), args.python, counted=counted))
            if "progress" in args.parts:
                asyncio.run(progress(apps, bare, args))
            if "chat" in args.parts:
                asyncio.run(chat(apps, fake, args.rounds))


if __name__ == "__main__":
    main()
