"""Tasks that end together: N tasks of a rendered Pipulate, started at once, end in the same moment. How long
until every final row is in the database, the event loop's longest stall meanwhile, and the CPU it took, now
and before (--before, a git ref of this repo), side by side in one run.

    python bench/task_ends.py [--tasks 100 500] [--repeats 5] [--before 3d689ab]

Each measurement runs in a fresh process that imports the rendered app (in either layout: baseline.LAYOUT) and
drives its tasks on an event loop of its own, with no sockets: what is measured is the ending, not the sending.
A ticker wakes every millisecond and records how late it woke, which is what every other tab would wait for.
The sides alternate and the medians are compared.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from baseline import renders as now_and_before  # noqa: E402
from baseline import LAYOUT, run_side  # noqa: E402

ENDING = '''
import asyncio
import json
import sys
import time
from types import SimpleNamespace

sys.path.insert(0, ".")
''' + LAYOUT + '''


async def main(count: int) -> dict:
    gate = asyncio.Event()

    async def work(report):
        await report(1, 2, "started")
        await gate.wait()
        await report(2, 2, "ending")
        return "done"

    request = SimpleNamespace(session={}, headers={"x-tab": ""})
    tasks = [names.new_task(request, title="ending") for _ in range(count)]
    for task in tasks:
        names.launch(task, work)
    await asyncio.sleep(names.SAVE_EVERY * 2)  # every task has reported and its first save is behind it
    lateness, ticking = [], True

    async def ticker():
        while ticking:
            asleep = time.perf_counter()
            await asyncio.sleep(0.001)
            lateness.append(time.perf_counter() - asleep - 0.001)

    ticks = asyncio.create_task(ticker())
    cpu, started = time.process_time(), time.perf_counter()
    gate.set()
    await asyncio.gather(*(names.RUNS[task.id].job for task in tasks))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    ticking = False
    await ticks
    saved = all(names.tasks[task.id].status == "done" for task in tasks)
    return dict(seconds=seconds, cpu=cpu, stall=max(lateness), saved=saved)


print(json.dumps(asyncio.run(main(int(sys.argv[1])))))
'''


def measure(render: Path, count: int) -> dict:
    found = run_side(render, ENDING, count)
    if not found["saved"]:
        raise SystemExit(f"the {render.name} side left a task's final row unsaved")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--before", default="3d689ab", help="git ref to compare against")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flakewright-bench-") as tmp:
        renders = now_and_before(Path(tmp), args.before)
        for count in args.tasks:
            found: dict[str, list[dict]] = {name: [] for name in renders}
            for _ in range(args.repeats):
                for name, render in renders.items():
                    found[name].append(measure(render, count))
            print(f"{count} tasks ending at once, median of {args.repeats}:")
            medians = {name: {key: statistics.median(run[key] for run in runs)
                              for key in ("seconds", "cpu", "stall")} for name, runs in found.items()}
            for name, median in medians.items():
                print(f"  {name:<7} every final row saved in {median['seconds'] * 1000:7.0f} ms, "
                      f"CPU {median['cpu'] * 1000:7.0f} ms, "
                      f"longest stall of the event loop {median['stall'] * 1000:6.1f} ms")
            if "before" in medians:
                now, before = medians["now"], medians["before"]
                print(f"  now/before: time {now['seconds'] / before['seconds']:.2f}, "
                      f"CPU {now['cpu'] / before['cpu']:.2f}, longest stall {now['stall'] / before['stall']:.2f}",
                      flush=True)


if __name__ == "__main__":
    main()
