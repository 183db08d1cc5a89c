"""Tool discovery never imports a tool module into the server: a module that ends its process, crashes, hangs or
loads pandas when imported costs one card on the tools menu, and every other tool still shows."""
import html
import os
import textwrap
import threading
import time
from contextlib import suppress
from pathlib import Path

import httpx
import pytest

ON_PROC = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads processes from /proc (Linux)")
FINE = {"alpha.py": "def alpha(x: int = 1):\n    return x\n",  # sorted before the bad module, and after it:
        "zulu.py": "def zulu(x: int = 1):\n    return x\n"}  # the module after the one that failed is read too


def write(app_dir: Path, name: str, code: str) -> Path:
    path = app_dir / "tools" / name
    path.write_text(textwrap.dedent(code), encoding="utf-8")
    return path


def with_fine_tools(app_dir: Path, name: str, code: str) -> None:
    for fine, fine_code in FINE.items():
        write(app_dir, fine, fine_code)
    write(app_dir, name, code)


def assert_card_and_fine_tools(page: str, problem: str) -> None:
    assert html.escape(problem) in page
    assert 'href="/tools/alpha"' in page and 'href="/tools/zulu"' in page


@ON_PROC
@pytest.mark.parametrize("name, code, problem", [
    ("crash.py", "import os\n\nos._exit(3)\n", "crash.py: importing it ended its process (exit code 3)"),
    ("segfault.py", "import ctypes\n\nctypes.string_at(0)\n",
     "segfault.py: importing it ended its process (signal SIGSEGV)"),
    ("interrupted.py", "raise KeyboardInterrupt\n", "interrupted.py:1: KeyboardInterrupt"),
], ids=["exit", "segfault", "keyboard-interrupt"])
def test_a_module_that_ends_its_process_or_interrupts_it_at_import_is_one_card(live_server, app_dir, name, code,
                                                                             problem):
    with_fine_tools(app_dir, name, code)
    with live_server() as url, httpx.Client(base_url=url, timeout=30) as browser:
        for _ in range(2):  # and the server still answers
            page = browser.get("/")
            assert page.status_code == 200
            assert_card_and_fine_tools(page.text, problem)


def test_a_module_calling_sys_exit_is_a_card_and_runs_in_a_child_not_in_the_server(client, app_dir):
    with_fine_tools(app_dir, "quits.py", '''
        import os
        from pathlib import Path

        with open(Path(__file__).resolve().parent.parent / "imported-by", "a") as out:
            out.write(f"{os.getpid()}\\n")
        raise SystemExit(4)
    ''')
    assert_card_and_fine_tools(client.get("/").text, "quits.py:7: SystemExit: 4")
    pids = (app_dir / "imported-by").read_text().split()
    assert pids and str(os.getpid()) not in pids


def test_a_module_slower_to_import_than_the_limit_is_a_card_and_other_pages_answer_meanwhile(client, server,
                                                                                             app_dir, monkeypatch):
    monkeypatch.setattr(server.toolbox.discovery, "DISCOVER_TIMEOUT", 3)
    with_fine_tools(app_dir, "slow.py", '''
        import os
        import time
        from pathlib import Path

        (Path(__file__).resolve().parent.parent / "slow-pid").write_text(str(os.getpid()))
        time.sleep(30)
    ''')
    menu = {}

    def load_menu():
        started = time.monotonic()
        menu["page"] = client.get("/").text
        menu["seconds"] = time.monotonic() - started

    loading = threading.Thread(target=load_menu)
    loading.start()
    time.sleep(0.5)
    started = time.monotonic()
    assert client.get("/tasks/1").status_code < 500
    assert time.monotonic() - started < 2 and loading.is_alive()  # answered while the menu waits on slow.py
    loading.join(60)
    assert_card_and_fine_tools(menu["page"], "slow.py: importing it took longer than 3 s")
    assert menu["seconds"] < 3 + 10
    with pytest.raises(ProcessLookupError):  # its process was killed, not left sleeping
        os.kill(int((app_dir / "slow-pid").read_text()), 0)


def server_pid(app_dir: Path) -> int:
    """The process of the live server running from the app copy: `python server.py` there."""
    for process in Path("/proc").iterdir():
        with suppress(OSError):  # not a process, gone, or another user's
            if process.name.isdigit() and os.readlink(process / "cwd") == str(app_dir.resolve()) and \
                    (process / "cmdline").read_bytes().split(b"\0")[1:2] == [b"server.py"]:
                return int(process.name)
    raise AssertionError(f"no server.py process runs in {app_dir}")


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) / 1024


@ON_PROC
def test_a_tool_importing_pandas_leaves_the_servers_memory_as_it_was(live_server, app_dir):
    with live_server() as url, httpx.Client(base_url=url, timeout=30) as browser:
        pid = server_pid(app_dir)
        for _ in range(3):  # the menu read and the page rendered once, as they are for every visit
            assert browser.get("/").status_code == 200
        before = rss_mb(pid)
        write(app_dir, "frames.py", '''
            import pandas as pd


            def frame(rows: int = 3):
                return pd.DataFrame({"n": range(rows)})
        ''')
        assert 'href="/tools/frame"' in browser.get("/").text
        assert rss_mb(pid) - before < 10  # pandas alone is about 40 MB
