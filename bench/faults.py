"""Fault bench: the pre-session Pipulate (d4b4253) and this one, side by side in one run.

    python bench/faults.py [--rounds 3]

1. Another program holds the database's write lock for 3 s (a process in BEGIN IMMEDIATE). Meanwhile one
   client adds a todo, which needs that lock, and another fetches /static/app.css every 50 ms: the static
   file's latency, median and worst. Then the lock is held for 6 s, past the 5 s busy timeout: what the add gets.
2. A 3,000-todo profile: one tab loads the page 5 times in a row while another tab's WebSocket sends a frame
   that the app answers at once ({"type": "stop"} -> "Nothing to stop."): that round-trip, median and worst,
   against the same round-trip with nothing else going on.

Servers run as `python server.py` (production mode) on 127.0.0.1; figures are medians over --rounds rounds.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from websockets.sync.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent))

from baseline import BEFORE, render_at  # noqa: E402
from todos_scaling import app_server, fresh_copy, render_variant, seed  # noqa: E402

HOLD = """
import sys, time, apsw
conn = apsw.Connection(sys.argv[1])
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT OR REPLACE INTO store (key, value) VALUES ('held', '1')")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


def hold_lock(app: Path, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(next((app / "data").glob("*.db"))), str(seconds)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "locked\n"
    return holder


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def locked_database(app: Path) -> dict:
    with app_server(app) as server, httpx.Client(base_url=server.url, timeout=60) as writer, \
            httpx.Client(base_url=server.url, timeout=60) as reader, ThreadPoolExecutor(1) as pool:
        writer.get("/")
        holder = hold_lock(app, 3)
        add = pool.submit(writer.post, "/todos", data={"title": "during the lock"}, headers={"HX-Request": "true"})
        static = []
        while holder.poll() is None:
            started = time.perf_counter()
            assert reader.get("/static/app.css").status_code == 200
            static.append(time.perf_counter() - started)
            time.sleep(0.05)
        add_during = add.result().status_code
        holder = hold_lock(app, 6)
        past = writer.post("/todos", data={"title": "past the timeout"}, headers={"HX-Request": "true"})
        holder.wait()
    return {"static median": statistics.median(static), "static worst": max(static), "add during 3 s": add_during,
            "past timeout": f"{past.status_code} {past.text.strip()[:70]!r}"}


def round_trip(ws) -> float:
    started = time.perf_counter()
    ws.send('{"type": "stop"}')
    assert "Nothing to stop" in ws.recv(timeout=120)
    return time.perf_counter() - started


def big_profile_load(app: Path) -> dict:
    with app_server(app) as server, httpx.Client(base_url=server.url, timeout=600) as tab_a, \
            connect(f"ws://{server.url.removeprefix('http://')}/ws?tab=bench-tab-b") as tab_b:
        tab_a.get("/")  # the first render too: later ones are what a user waits for on every reload
        idle = [round_trip(tab_b) for _ in range(20)]
        loading, loads = threading.Event(), []

        def load_pages() -> None:
            for _ in range(5):
                started = time.perf_counter()
                assert tab_a.get("/").status_code == 200
                loads.append(time.perf_counter() - started)
            loading.set()

        thread = threading.Thread(target=load_pages)
        thread.start()
        during = []
        while not loading.is_set():
            during.append(round_trip(tab_b))
        thread.join()
    return {"page load": statistics.median(loads),
            "round-trip idle": statistics.median(idle), "round-trip median": statistics.median(during),
            "round-trip worst": max(during)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="faults-") as tmp:
        work = Path(tmp)
        renders = {"before": render_at(BEFORE, work / "render-before"),
                   "after": render_variant(work / "render-after", "pipulate")}
        locks = {name: [] for name in renders}
        loads = {name: [] for name in renders}
        for _ in range(args.rounds):
            for name, render in renders.items():
                app = fresh_copy(render, work / f"{name}-lock")
                seed(app, 10)
                locks[name].append(locked_database(app))
                app = fresh_copy(render, work / f"{name}-big")
                seed(app, 3_000)
                loads[name].append(big_profile_load(app))
                print(f"  round done for {name}", file=sys.stderr, flush=True)

    print(f"\n1. Write lock held by another process (median of {args.rounds} rounds)")
    for name in renders:
        runs = locks[name]
        print(f"  {name:<7} /static/app.css during a 3 s lock:"
              f" median {ms(statistics.median(r['static median'] for r in runs))},"
              f" worst {ms(statistics.median(r['static worst'] for r in runs))};"
              f" the add waiting on the lock: {[r['add during 3 s'] for r in runs]}")
        print(f"  {'':<7} an add past the 5 s busy timeout: {runs[-1]['past timeout']}")
    print(f"\n2. Another tab's WebSocket round-trip while a 3,000-todo profile loads 5 times (median of {args.rounds})")
    for name in renders:
        runs = loads[name]
        print(f"  {name:<7} page load {ms(statistics.median(r['page load'] for r in runs))};"
              f" round-trip idle {ms(statistics.median(r['round-trip idle'] for r in runs))},"
              f" during loads median {ms(statistics.median(r['round-trip median'] for r in runs))},"
              f" worst {ms(statistics.median(r['round-trip worst'] for r in runs))}")


if __name__ == "__main__":
    main()
