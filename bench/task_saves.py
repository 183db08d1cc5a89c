"""Task saves against the event loop: a rendered Pipulate now and before (--before, a git ref of this repo), side
by side in one run.

    python bench/task_saves.py [--before 82462c3] [--tasks 100] [--seconds 10] [--repeats 5]

While tasks run, the server saves them all every SAVE_EVERY seconds in a worker thread (save_tasks), and that
thread shares the GIL with the event loop. Each side's process, run in its render's folder, creates --tasks
task rows and drives its own event loop as --tasks staggered tasks reporting 10 times a second would: a tick
due every 1/(10 * tasks) seconds on a timetable, doing about as much Python as a report. Meanwhile it saves
the tasks' progress (the lines logged since the last save, a 50-line tail) every SAVE_EVERY seconds of that
side, through its save_tasks, in a worker thread, as the Saver does. Printed per side: how late the ticks ran
(p50, p99, max, pooled over repeats; asyncio's timers alone make them about half a millisecond late), how long
a save took, and the ratio of now to before. The sides alternate, --repeats times each.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline import percentile_ms  # noqa: E402
from baseline import renders as now_and_before  # noqa: E402
from baseline import LAYOUT, run_side  # noqa: E402
from ws_stream import REPO  # noqa: E402

sys.path.insert(0, str(REPO / "tests"))

SIDE = '''
import asyncio
import json
import sys
import time

''' + LAYOUT + '''

TASKS, SECONDS = int(sys.argv[1]), float(sys.argv[2])
LINE = "x" * 40


def batch(ids: list[int], round_: int) -> list:
    new = round(10 * names.SAVE_EVERY)  # lines each task logged since the last save, at 10 reports a second
    tail = "".join(f"{LINE} {n}\\n" for n in range(50))
    first = round_ * new
    return [(("running", first, 100_000, tail, "", task_id), first, [f"{LINE} {first + n}" for n in range(new)])
            for task_id in ids]


async def ticks(lateness: list[float], until: float) -> None:
    every = 1 / (10 * TASKS)
    due = time.monotonic()
    while (now := time.monotonic()) < until:
        lateness.append(max(0.0, now - due))
        json.loads(json.dumps({"done": len(lateness), "line": LINE}))  # about a report's worth of Python
        "".join(f"<span>{n}</span>" for n in range(20))
        due += every
        await asyncio.sleep(max(0.0, due - time.monotonic()))


async def saves(ids: list[int], took: list[float], until: float) -> None:
    round_ = 0
    while time.monotonic() < until:
        await asyncio.sleep(names.SAVE_EVERY)
        round_ += 1
        started = time.monotonic()
        await asyncio.to_thread(names.save_tasks, batch(ids, round_))
        took.append(time.monotonic() - started)


async def main() -> None:
    row = dict(profile_id=names.current_profile({}).id, tab="", title="t", status="running", done=0, total=0,
               log="", result="", kind="", params="")
    ids = [names.tasks.insert(**row).id for _ in range(TASKS)]
    lateness, took = [], []
    until = time.monotonic() + SECONDS
    await asyncio.gather(ticks(lateness, until), saves(ids, took, until))
    print(json.dumps({"lateness": lateness, "saves": took}))


asyncio.run(main())
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="82462c3", help="git ref to compare against")
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flakewright-bench-") as tmp:
        renders = now_and_before(Path(tmp), args.before)
        found = {name: {"lateness": [], "saves": []} for name in renders}
        for _ in range(args.repeats):
            for name, render in renders.items():
                for key, values in run_side(render, SIDE, args.tasks, args.seconds).items():
                    found[name][key] += values
    print(f"{args.tasks} tasks' saves every SAVE_EVERY in a worker thread, beside a loop ticking {10 * args.tasks} "
          f"times a second; {args.repeats} runs of {args.seconds:.0f} s per side, alternating")
    for name, seen in found.items():
        late = seen["lateness"]
        took = seen["saves"]
        print(f"  {name:<7} ticks late p50 {percentile_ms(late, 0.5):6.3f} p99 {percentile_ms(late, 0.99):6.2f} "
              f"max {max(late) * 1000:6.1f} ms ({len(late)})   a save p50 {statistics.median(took) * 1000:6.2f} "
              f"p99 {percentile_ms(took, 0.99):6.1f} ms ({len(took)})")
    if "before" in found:
        now, before = found["now"], found["before"]
        late = percentile_ms(now["lateness"], 0.99) / percentile_ms(before["lateness"], 0.99)
        took = statistics.median(now["saves"]) / statistics.median(before["saves"])
        print(f"  now/before: ticks late p99 {late:.2f}, a save p50 {took:.2f}")


if __name__ == "__main__":
    main()
