"""A rendered Pipulate in Chromium: todos and profiles, streamed chat, tasks per tab, live reload.

One production-mode server (live reload off) serves the todo, chat and task scenarios against the render's
own fake Ollama (tests/fake_ollama.py); a development-mode server with no Ollama behind it serves the outage and live-reload scenarios.
Every assertion reads what the page shows.
"""
from __future__ import annotations

import contextlib
import re
import secrets
import shutil

import apsw

import pytest
from playwright.sync_api import expect

from .harness import free_port, htmx_idle, load_module, screenshot, start_server, wait_until

CORPUS_FILES = 24
# Large enough that counting takes about half a second: the row must be on the page before most pushes
# arrive, or the bar has nothing to show between 50% and done.
WORDS_PER_FILE = 100_000
TOKEN_DELAY = 0.15  # seconds the fake Ollama waits before each token
VISIBLE_MS = 50  # three frames at 60 Hz
BUSY_TIMEOUT = 2  # seconds a write waits for another program's lock before the page says the database is busy

# Records every state the watched element's text passes through, with a timestamp, so a test can tell a
# reply that grew token by token from one that appeared at once, whatever the polling rhythm.
RECORD_TEXT = """([selector, child]) => {
    window.__states = [];
    const root = document.querySelector(selector);
    const record = () => {
        const nodes = root.querySelectorAll(child);
        const text = nodes.length ? nodes[nodes.length - 1].textContent : "";
        const last = window.__states[window.__states.length - 1];
        if (!last || last.text !== text) window.__states.push({t: performance.now(), text});
    };
    new MutationObserver(record).observe(root, {subtree: true, childList: true, characterData: true});
}"""

# Records every value a task's progress bar shows in this tab, and counts every change to the task list.
RECORD_PROGRESS = """() => {
    window.__progress = [];
    window.__taskListChanges = 0;
    const list = document.querySelector("#task-list");
    new MutationObserver(() => {
        window.__taskListChanges += 1;
        for (const bar of list.querySelectorAll("progress")) {
            window.__progress.push({id: bar.id, value: Number(bar.value), max: Number(bar.max)});
        }
    }).observe(list, {subtree: true, childList: true, attributes: true});
}"""


# --- fixtures --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def project(render, tmp_path_factory):
    """A private copy of the render: the app writes data/ next to server.py."""
    return shutil.copytree(render("pipulate"), tmp_path_factory.mktemp("pipulate") / "app")


@pytest.fixture(scope="module")
def fake_ollama(project):
    module = load_module(project / "tests" / "fake_ollama.py", "pipulate_e2e_fake_ollama")
    with module.FakeOllama() as fake:
        yield fake


@pytest.fixture
def ollama(fake_ollama):
    """The module's fake Ollama, reset to answer at once with a fresh script."""
    fake_ollama.tokens = ["Hello", " there", "!"]
    fake_ollama.delay = 0.0
    fake_ollama.pause_after = None
    fake_ollama.break_after = None
    fake_ollama.resume.clear()
    fake_ollama.client_gone.clear()
    yield fake_ollama
    fake_ollama.resume.set()


@pytest.fixture(scope="module")
def corpus(project) -> int:
    """Text files for the word-count demo task; returns their total word count."""
    folder = project / "data" / "corpus"
    folder.mkdir(parents=True)
    total = 0
    for n in range(1, CORPUS_FILES + 1):
        words = WORDS_PER_FILE + 5 * n
        (folder / f"part-{n:02d}.txt").write_text("lorem ipsum dolor sit amet\n" * (words // 5))
        total += words
    return total


@pytest.fixture(scope="module")
def server(project, fake_ollama, corpus, tmp_path_factory):
    log = tmp_path_factory.mktemp("logs") / "pipulate.log"
    env = {"PIPULATE_ENV": "prod", "OLLAMA_HOST": fake_ollama.url, "PIPULATE_BUSY_TIMEOUT": str(BUSY_TIMEOUT)}
    running = start_server(project, log=log, env=env)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def dev_server(render, tmp_path_factory):
    """Development mode (live reload on) with nothing listening where Ollama should be."""
    root = tmp_path_factory.mktemp("pipulate-dev")
    project = shutil.copytree(render("pipulate"), root / "app")
    env = {"PIPULATE_ENV": "dev", "OLLAMA_HOST": f"http://127.0.0.1:{free_port()}"}
    running = start_server(project, log=root / "server.log", env=env)
    yield running
    running.stop()


@pytest.fixture
def page(context, server):
    tab = context.new_page()
    tab.goto(server.url + "/")
    wait_for_socket(tab)
    return tab


def wait_for_socket(page) -> None:
    """Wait until htmx's WebSocket to /ws is open, so frames sent from the page are not queued."""
    page.wait_for_function(
        "() => document.body['htmx-internal-data']?.webSocket?.socket?.readyState === WebSocket.OPEN"
    )


# --- scenario 1: todos and profiles ----------------------------------------------------------------------


def todo_rows(page) -> list[list]:
    """Each todo as [title, done], in the order the page lists them."""
    return page.eval_on_selector_all(
        "#todo-list > li",
        "items => items.map(li => [li.querySelector('input[name=title]').value,"
        " li.querySelector('input[type=checkbox]').checked])",
    )


def expect_todos(page, expected: list[tuple[str, bool]]) -> None:
    expected = [list(row) for row in expected]
    try:
        wait_until(lambda: todo_rows(page) == expected, timeout=10, what=f"todos {expected}")
    except AssertionError as timeout:
        raise AssertionError(f"{timeout}; the page shows {todo_rows(page)}") from None
    htmx_idle(page)


def add_todo(page, title: str) -> None:
    box = page.get_by_label("New todo")
    box.fill(title)
    page.locator("#new-todo").get_by_role("button", name="Add").click()
    expect(page.locator("#todo-list input[name=title]").last).to_have_value(title)
    expect(page.get_by_label("New todo")).to_have_value("")
    htmx_idle(page)


def create_profile(page, name: str) -> None:
    page.get_by_placeholder("New profile").fill(name)
    page.locator("#profiles").get_by_role("button", name="Create").click()
    expect(page.locator("#todos h2")).to_have_text(f"Todos · {name}")
    htmx_idle(page)


def switch_profile(page, name: str) -> None:
    page.get_by_label("Profile", exact=True).select_option(label=name)
    expect(page.locator("#todos h2")).to_have_text(f"Todos · {name}")
    htmx_idle(page)


def row(page, title: str):
    return page.locator("#todo-list > li").filter(has=page.locator(f"input[name=title][value='{title}']"))


def test_todos_and_profiles(page):
    alpha, beta = f"Alpha {secrets.token_hex(3)}", f"Beta {secrets.token_hex(3)}"
    create_profile(page, alpha)
    expect_todos(page, [])

    add_todo(page, "Buy milk")
    add_todo(page, "Write report")
    add_todo(page, "Call Sam")
    expect_todos(page, [("Buy milk", False), ("Write report", False), ("Call Sam", False)])

    row(page, "Buy milk").get_by_label("Done").check()
    expect(row(page, "Buy milk")).to_have_class("todo done")
    htmx_idle(page)

    title = row(page, "Write report").locator("input[name=title]")
    title.fill("Write the report")
    title.press("Tab")  # htmx posts the rename on the input's change event
    expect_todos(page, [("Buy milk", True), ("Write the report", False), ("Call Sam", False)])

    row(page, "Call Sam").get_by_role("button", name="Delete").click()
    expect_todos(page, [("Buy milk", True), ("Write the report", False)])

    create_profile(page, beta)
    expect_todos(page, [])
    add_todo(page, "Beta only")
    expect_todos(page, [("Beta only", False)])

    alpha_todos = [("Buy milk", True), ("Write the report", False)]
    for name, shown in ((alpha, alpha_todos), (beta, [("Beta only", False)]), (alpha, alpha_todos)):
        switch_profile(page, name)
        expect_todos(page, shown)

    page.reload()
    expect(page.locator("#todos h2")).to_have_text(f"Todos · {alpha}")
    expect(page.get_by_label("Profile", exact=True).locator("option:checked")).to_have_text(alpha)
    expect_todos(page, alpha_todos)
    assert "/live-reload" not in page.content(), "production mode must not carry the live-reload script"
    screenshot(page, "pipulate-todos")


def test_a_long_list_shows_pages_and_moves_across_them(context, server, project):
    tab = context.new_page()
    violations = []
    tab.on("console", lambda message: violations.append(message.text) if "Content Security Policy" in message.text
           else None)
    tab.goto(server.url + "/")
    wait_for_socket(tab)
    name = f"Long {secrets.token_hex(3)}"
    create_profile(tab, name)
    with contextlib.closing(apsw.Connection(str(next((project / "data").glob("*.db"))))) as db:
        profile = db.execute("SELECT id FROM profiles WHERE name = ?", (name,)).fetchone()[0]
        with db:
            db.executemany("INSERT INTO todos (profile_id, title, done, priority) VALUES (?, ?, 0, ?)",
                           [(profile, f"Item {i}", float(i)) for i in range(1, 121)])
    tab.reload()
    wait_for_socket(tab)
    expect(tab.locator("#todo-list > li")).to_have_count(50)
    expect(tab.locator(".pager")).to_contain_text("1–50 of 120")
    tab.get_by_role("button", name="Next page").click()
    expect(tab.locator(".pager")).to_contain_text("51–100 of 120")
    expect(tab.locator("#todo-list > li").first.locator("input[name=title]")).to_have_value("Item 51")
    htmx_idle(tab)
    tab.get_by_role("button", name="Last page").click()
    expect(tab.locator(".pager")).to_contain_text("101–120 of 120")
    htmx_idle(tab)
    row(tab, "Item 101").get_by_role("button", name="Move up").click()
    expect(tab.locator(".pager")).to_contain_text("51–100 of 120")  # the page it moved to
    expect(tab.locator("#todo-list > li input[name=title]").nth(49)).to_have_value("Item 101")
    htmx_idle(tab)
    add_todo(tab, "Item 121")
    expect(tab.locator(".pager")).to_contain_text("101–121 of 121")
    htmx_idle(tab)
    screenshot(tab, "pipulate-todo-pages")
    assert violations == [], violations


def test_a_busy_database_is_a_notice_and_the_next_try_works(page, project):
    name = f"Busy {secrets.token_hex(3)}"
    create_profile(page, name)
    other = apsw.Connection(str(next((project / "data").glob("*.db"))))  # a notebook, say, mid-write
    other.execute("BEGIN IMMEDIATE")
    try:
        page.get_by_label("New todo").fill("Written later")
        page.locator("#new-todo").get_by_role("button", name="Add").click()
        expect(page.locator("#notice")).to_have_text(
            "The database is busy (another program is writing); try again.", timeout=(BUSY_TIMEOUT + 10) * 1000)
        htmx_idle(page)
        screenshot(page, "pipulate-database-busy")
    finally:
        other.execute("ROLLBACK")
        other.close()
    expect_todos(page, [])
    page.locator("#new-todo").get_by_role("button", name="Add").click()
    expect_todos(page, [("Written later", False)])
    expect(page.locator("#notice")).to_be_empty()


# --- scenario 2: chat --------------------------------------------------------------------------------------


def send_chat(page, text: str) -> None:
    page.get_by_label("Message").fill(text)
    page.locator("#chat").get_by_role("button", name="Send").click()


def reply_text(page) -> str:
    replies = page.locator("#chat-log .message.assistant .reply")
    return replies.last.text_content() if replies.count() else ""


def test_chat_reply_streams_in_steps(page, ollama):
    ollama.tokens = ["Local ", "models ", "answer ", "token ", "by ", "token."]
    ollama.delay = TOKEN_DELAY
    full = "".join(ollama.tokens)
    page.evaluate(RECORD_TEXT, ["#chat-log", ".message.assistant .reply"])

    send_chat(page, "How do you answer?")
    expect(page.locator("#chat-log .message.you")).to_contain_text("How do you answer?")
    wait_until(lambda: reply_text(page) == full, timeout=15, what=f"the full reply {full!r}")

    states = [s for s in page.evaluate("window.__states") if s["text"]]
    texts = [s["text"] for s in states]
    assert texts[-1] == full
    assert all(b.startswith(a) and len(b) > len(a) for a, b in zip(texts, texts[1:])), texts
    # A step is visible when it stays on screen for several frames before the next chunk replaces it.
    visible = [a["text"] for a, b in zip(states, states[1:]) if b["t"] - a["t"] >= VISIBLE_MS]
    assert len(visible) >= 3, f"the reply should show at least 3 partial states before completing, saw {visible}"
    assert page.get_by_label("Message").input_value() == ""
    screenshot(page, "pipulate-chat-streamed")


def test_chat_stop_cancels_mid_reply(page, ollama):
    ollama.tokens = [f"{word} " for word in (
        "Everything here runs on your machine: todos live in SQLite under data/, this reply streams from"
        " Ollama over a WebSocket, and tasks report progress to the tab that started them."
    ).split()]
    ollama.pause_after = 14
    held = "".join(ollama.tokens[:14])

    send_chat(page, "Where does my data live?")
    wait_until(lambda: reply_text(page) == held, timeout=15, what=f"the reply to reach {held!r}")
    page.locator("#chat").scroll_into_view_if_needed()
    screenshot(page, "pipulate-chat", docs=True)

    page.locator("#chat").get_by_role("button", name="Stop").click()
    expect(page.locator("#chat-log [role=alert]").last).to_have_text("Stopped.")
    ollama.resume.set()
    assert ollama.client_gone.wait(10), "the server kept reading Ollama's stream after Stop"
    assert reply_text(page) == held

    ollama.pause_after = None
    ollama.tokens = ["Still ", "here."]
    send_chat(page, "Are you there?")
    wait_until(lambda: reply_text(page) == "Still here.", timeout=10, what="a new reply after Stop")
    screenshot(page, "pipulate-chat-stopped")


def test_chat_with_ollama_down_says_how_to_fix(context, dev_server):
    page = context.new_page()
    page.goto(dev_server.url + "/")
    wait_for_socket(page)
    send_chat(page, "Anyone home?")
    alert = page.locator("#chat-log [role=alert]").last
    expect(alert).to_contain_text("Ollama is not reachable")
    expect(alert).to_contain_text("ollama serve")
    assert "Traceback" not in page.content()
    screenshot(page, "pipulate-ollama-down")


# --- scenario 3: tasks report to the tab that started them -----------------------------------------------


def test_task_progress_goes_only_to_its_tab(context, server, corpus):
    tab_a, tab_b = context.new_page(), context.new_page()
    for tab in (tab_a, tab_b):
        tab.goto(server.url + "/tools/count_words")
        wait_for_socket(tab)
        tab.evaluate(RECORD_PROGRESS)
    before_b = tab_b.locator("#task-list > article").count()

    tab_a.get_by_role("button", name="Run", exact=True).click()
    row = tab_a.locator("#task-list > article").first
    expect(row).to_have_class("task done", timeout=30_000)
    task_id = row.get_attribute("id")

    seen = [p for p in tab_a.evaluate("window.__progress") if p["id"] == f"{task_id}-bar"]
    fractions = [p["value"] / p["max"] for p in seen]
    # The tool's process sends at most 20 bars a second, so a quick count may skip any given fraction.
    assert any(0 < f < 1 for f in fractions), f"tab A's bar never showed progress between 0 and 100%: {fractions}"
    assert fractions == sorted(fractions) and fractions[-1] == 1, fractions
    expect(row.locator(".result")).to_contain_text(f"{corpus:,} words in {CORPUS_FILES} files.")

    assert tab_b.evaluate("window.__taskListChanges") == 0, "tab B received updates for tab A's task"
    assert tab_b.locator(f"#{task_id}").count() == 0
    assert tab_b.locator("#task-list > article").count() == before_b
    screenshot(tab_a, "pipulate-task-done")

    tab_a.reload()
    reloaded = tab_a.locator(f"#{task_id}")
    expect(reloaded).to_have_class("task done")
    expect(reloaded.locator("progress")).to_have_attribute("value", str(CORPUS_FILES))
    expect(reloaded.locator(f"#{task_id}-count")).to_have_text(f"{CORPUS_FILES}/{CORPUS_FILES}")
    expect(reloaded.locator(".result")).to_contain_text(f"{corpus:,} words in {CORPUS_FILES} files.")
    screenshot(tab_a, "pipulate-task-reloaded")


# --- scenario 5: live reload in development ----------------------------------------------------------------


def test_editing_settings_py_reloads_the_open_page(context, dev_server):
    page = context.new_page()
    page.goto(dev_server.url + "/")
    expect(page.locator("header h1")).to_have_text("Pipulate")
    page.evaluate("window.__before_reload = true")

    assert "/live-reload" in page.content()
    source = dev_server.root / "settings.py"
    edited, count = re.subn(r'^TITLE = "Pipulate"$', 'TITLE = "Pipulate, edited"', source.read_text(), flags=re.M)
    assert count == 1, "settings.py no longer has a TITLE line to edit"
    source.write_text(edited)

    expect(page.locator("header h1")).to_have_text("Pipulate, edited", timeout=30_000)
    assert page.evaluate("window.__before_reload === undefined"), "the page changed without reloading"
    screenshot(page, "pipulate-live-reload")
