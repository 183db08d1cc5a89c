"""Who owns what, once people sign in (core/profiles.py, core/shares.py): `python server.py` served with OpenID
Connect against the fake provider (fake_oidc.py). Alice makes profiles, runs, uploads, outputs, todos (where the
demo's add-on is rendered) and a page's socket; Bob, signed in too, tries every route with every id of hers and gets
what an unknown id gets. A run Alice shares opens to Bob read-only, with its downloads, until she unshares it; an
admin sees everyone's."""
from __future__ import annotations

import json
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from conftest import REPO, TASK_ID, query, task_id_of
from fake_oidc import browser, oidc, sign_in

TODOS = (REPO / "addons" / "todos.py").exists()  # the demo's add-on, whose ids must reach no one else

TOOLS = '''
import time
from pathlib import Path


def shout(notes: Path, word: str, report):
    """The notes upper-cased, in a file."""
    report(1, 1, f"shouting about {word}")
    out = Path("shout.txt")
    out.write_text(Path(notes).read_text().upper())
    return out


def ticking(report):
    """Reports until cancelled."""
    step = 0
    while True:
        step += 1
        report(step, 0, f"tick {step}")
        time.sleep(0.05)
'''
ALICE, BOB, ADMIN = "alice@example.com", "bob@example.com", "root@example.com"
HTMX = {"HX-Request": "true"}
UNKNOWN_TASK = "That task does not exist."
SECRET = "alices-secret"  # in every name, title, upload and output of Alice's: none may reach Bob
OPTION = re.compile(r'<option value="(\d+)"( selected)?>([^<]*)</option>')


@dataclass
class Alice:
    """What Alice made: her browser, her page's tab, and the ids of her profiles, runs and todo (if any)."""
    client: httpx.Client
    tab: str
    profiles: list[int] = field(default_factory=list)
    run: int = 0  # a finished run of shout, with an upload and an output file
    ticking: int = 0  # a run still going
    todo: int = 0  # a todo, where the demo's todos are rendered


def tab_of(page: str) -> str:
    return json.loads(re.search(r"hx-headers='([^']+)'", page)[1])["X-Tab"]


def ended(client: httpx.Client, task_id: int, timeout: float = 60) -> str:
    """The task's row, once it is no longer running."""
    deadline = time.monotonic() + timeout
    while 'class="task running"' in (row := client.get(f"/tasks/{task_id}", headers=HTMX).text):
        assert time.monotonic() < deadline, row
        time.sleep(0.1)
    return row


@pytest.fixture
def served(live_server, fake, app_dir):
    """The app, signing in with the fake provider, with tools of the tests' own and an admin."""
    (app_dir / "tools" / "shouting.py").write_text(TOOLS)
    with live_server(**oidc(fake, ADMINS=ADMIN)) as url:
        yield url


@contextmanager
def signed_in(url: str, fake, user: str):
    """A browser of the user's own, signed in."""
    with browser(url) as client:
        assert sign_in(client, fake, user).status_code == 200
        yield client


@contextmanager
def alice_at_work(url: str, fake):
    """Alice signed in, with two profiles of her own, a finished run and a running one in the second, and a todo
    where the demo's todos are rendered."""
    with signed_in(url, fake, ALICE) as client:
        page = client.get("/").text
        alice = Alice(client, tab_of(page), [int(OPTION.search(page)[1])])
        made = client.post("/profiles", data={"name": f"{SECRET} plans"}, headers=HTMX).text
        alice.profiles.append(int(next(id for id, chosen, _ in OPTION.findall(made) if chosen)))
        headers = {**HTMX, "X-Tab": alice.tab}
        started = client.post("/tools/shout", data={"word": SECRET}, headers=headers,
                              files={"notes": (f"{SECRET}.txt", f"the {SECRET} notes".encode())})
        alice.run = task_id_of(started.text)
        assert 'class="task done"' in ended(client, alice.run)
        alice.ticking = task_id_of(client.post("/tools/ticking", headers=headers).text)
        if TODOS:
            todo = client.post("/todos", data={"title": SECRET}, headers=HTMX).text
            alice.todo = int(re.search(r'id="todo-(\d+)"', todo)[1])
        yield alice
        client.post(f"/tasks/{alice.ticking}/cancel", headers=HTMX)


def test_a_user_gets_nothing_of_anothers_by_any_route_or_id(served, fake, app_dir):
    with alice_at_work(served, fake) as alice, signed_in(served, fake, BOB) as bob:
        first = bob.get("/").text
        assert SECRET not in first and [name for _, _, name in OPTION.findall(first)] == ["Default"]
        bobs = int(OPTION.search(first)[1])
        assert bobs not in alice.profiles

        for profile in alice.profiles:  # switch to, rename or delete hers: as for a profile that does not exist
            for method, path, data in (("POST", "/profiles/switch", {"id": profile}),
                                       ("POST", f"/profiles/{profile}/rename", {"name": "mine now"}),
                                       ("DELETE", f"/profiles/{profile}", None)):
                answer = bob.request(method, path, data=data, headers=HTMX).text
                assert "That profile no longer exists." in answer and SECRET not in answer, (method, path)
        assert query(app_dir, "SELECT name FROM profiles WHERE owner = ? ORDER BY id", [ALICE]) == \
            [("Default",), (f"{SECRET} plans",)]

        for task in (alice.run, alice.ticking):  # her runs' rows, logs, files, cancel, run again and sharing
            for method, path in (("GET", f"/tasks/{task}"), ("GET", f"/tasks/{task}/log"),
                                 ("POST", f"/tasks/{task}/cancel"), ("POST", f"/tasks/{task}/again"),
                                 ("POST", f"/tasks/{task}/share"), ("POST", f"/tasks/{task}/unshare")):
                answer = bob.request(method, path, headers=HTMX)
                assert UNKNOWN_TASK in answer.text and SECRET not in answer.text, (method, path)
            file = bob.get(f"/tasks/{task}/files/shout.txt", headers=HTMX)
            assert file.status_code == 404 and SECRET.upper() not in file.text
        assert alice.client.get(f"/tasks/{alice.run}/files/shout.txt").text == f"THE {SECRET.upper()} NOTES"
        assert 'class="task running"' in alice.client.get(f"/tasks/{alice.ticking}", headers=HTMX).text
        assert query(app_dir, "SELECT count(*) FROM tasks") == [(2,)]  # nothing ran again
        assert query(app_dir, "SELECT share FROM tasks WHERE id = ?", [alice.run]) == [(None,)]

        for page in ("/", "/tools/shout", "/tools/ticking"):  # her runs are in none of his pages
            shown = bob.get(page).text
            assert SECRET not in shown and not {alice.run, alice.ticking} & set(map(int, TASK_ID.findall(shown)))

        if TODOS:
            todo = alice.todo
            for method, path, data in (("POST", f"/todos/{todo}/toggle", None), ("POST", f"/todos/{todo}/rename",
                                       {"title": "mine"}), ("DELETE", f"/todos/{todo}", None)):
                answer = bob.request(method, path, data=data, headers=HTMX).text
                assert "That todo does not exist" in answer and SECRET not in answer, (method, path)
            moved = bob.post(f"/todos/{todo}/move", data={"by": 1}, headers=HTMX).text
            assert "That todo does not exist" in moved and SECRET not in moved
            assert SECRET not in bob.get("/todos", headers=HTMX).text
            assert query(app_dir, "SELECT title, done FROM todos WHERE id = ?", [todo]) == [(SECRET, 0)]

        # Still Bob's own profile after all that, and his own "last chosen" in a browser of his he opens next
        assert SECRET not in bob.get("/").text
        with signed_in(served, fake, BOB) as again:
            assert SECRET not in (page := again.get("/").text) and OPTION.search(page)[1] == str(bobs)


def test_a_page_socket_gets_only_its_own_users_frames(served, fake):
    """Bob opens the socket of Alice's page (its tab id) before she does: her run's progress does not reach him.
    Her own socket on another page gets hers, so the frames do flow."""
    with alice_at_work(served, fake) as alice, signed_in(served, fake, BOB) as bob:
        ws_url = served.replace("http", "ws", 1)
        other_tab = tab_of(alice.client.get("/").text)
        with connect(f"{ws_url}/ws?tab={alice.tab}", additional_headers=cookie(bob)) as bobs, \
                connect(f"{ws_url}/ws?tab={other_tab}", additional_headers=cookie(alice.client)) as hers:
            time.sleep(0.5)  # both sockets registered
            for tab in (alice.tab, other_tab):
                run = task_id_of(alice.client.post("/tools/ticking", headers={**HTMX, "X-Tab": tab}).text)
                time.sleep(1)
                alice.client.post(f"/tasks/{run}/cancel", headers=HTMX)
            theirs = frames(bobs)
            mine = frames(hers)
        assert theirs == [] and any("tick" in frame for frame in mine), (theirs, mine)


def test_another_users_socket_cannot_take_over_an_open_page(served, fake):
    """Alice's page is open; Bob's socket with her page's tab id is closed, and her page goes on getting her frames."""
    with alice_at_work(served, fake) as alice, signed_in(served, fake, BOB) as bob:
        ws_url = served.replace("http", "ws", 1)
        with connect(f"{ws_url}/ws?tab={alice.tab}", additional_headers=cookie(alice.client)) as hers:
            time.sleep(0.5)  # hers registered first
            with connect(f"{ws_url}/ws?tab={alice.tab}", additional_headers=cookie(bob)) as bobs:
                with pytest.raises(ConnectionClosed) as closed:
                    bobs.recv(timeout=5)
                assert closed.value.rcvd.code == 1008
            run = task_id_of(alice.client.post("/tools/ticking", headers={**HTMX, "X-Tab": alice.tab}).text)
            time.sleep(1)
            alice.client.post(f"/tasks/{run}/cancel", headers=HTMX)
            assert any("tick" in frame for frame in frames(hers))


def cookie(client: httpx.Client) -> dict:
    return {"Cookie": f"session_={client.cookies['session_']}"}


def frames(socket, quiet: float = 2.0, at_most: float = 10.0) -> list[str]:
    """What the socket received, up to a pause of `quiet` seconds (or `at_most` seconds, if frames keep coming)."""
    got, deadline = [], time.monotonic() + at_most
    while time.monotonic() < deadline:
        try:
            got.append(socket.recv(timeout=quiet))
        except TimeoutError:
            break
    return got


def test_a_shared_run_opens_read_only_to_others_until_unshared(served, fake):
    with alice_at_work(served, fake) as alice, signed_in(served, fake, BOB) as bob:
        row = alice.client.post(f"/tasks/{alice.run}/share", headers=HTMX).text
        token = re.search(r'href="/shared/([\w-]+)"', row)[1]
        assert len(token) >= 22 and "Unshare" in row
        assert alice.client.post(f"/tasks/{alice.run}/share", headers=HTMX).text == row  # sharing again: one link

        page = bob.get(f"/shared/{token}")
        assert page.status_code == 200
        shown = page.text
        assert f"word: {SECRET}" in shown and f"notes: {SECRET}.txt" in shown  # the inputs, an upload by its name
        assert f"shouting about {SECRET}" in shown  # the log
        assert f'href="/shared/{token}/files/shout.txt"' in shown  # the result's download, through the share
        assert "signed in as " + BOB in shown
        assert not re.search(r"hx-(post|delete)|Cancel|Run again|Unshare|/tasks/|/uploads/", shown)  # read-only
        assert bob.get(f"/shared/{token}/files/shout.txt").text == f"THE {SECRET.upper()} NOTES"
        assert f"shouting about {SECRET}" in bob.get(f"/shared/{token}/log").text
        assert bob.get(f"/shared/{token}/files/.sesskey").status_code == 404
        # The share opens this run, nothing else of hers
        assert UNKNOWN_TASK in bob.get(f"/tasks/{alice.run}", headers=HTMX).text
        assert bob.get(f"/tasks/{alice.run}/files/shout.txt").status_code == 404

        with browser(served) as anonymous:  # signed in, that is
            assert anonymous.get(f"/shared/{token}", headers={"Accept": "text/html"}).status_code == 303
        for guess in ("A" * 22, token[:-1] + ("A" if token[-1] != "A" else "B"), "1", str(alice.run)):
            assert bob.get(f"/shared/{guess}").status_code == 404

        unshared = alice.client.post(f"/tasks/{alice.run}/unshare", headers=HTMX).text
        assert "/shared/" not in unshared and ">Share<" in unshared
        for path in (f"/shared/{token}", f"/shared/{token}/log", f"/shared/{token}/files/shout.txt"):
            for someone in (bob, alice.client):
                gone = someone.get(path)
                assert gone.status_code == 404 and SECRET not in gone.text, path
        again = alice.client.post(f"/tasks/{alice.run}/share", headers=HTMX).text
        assert re.search(r'href="/shared/([\w-]+)"', again)[1] != token
        assert bob.get(f"/shared/{token}").status_code == 404
        assert ">Share<" not in alice.client.get(f"/tasks/{alice.ticking}", headers=HTMX).text  # running: not yet


def test_an_admin_sees_and_opens_everyones(served, fake, app_dir):
    with alice_at_work(served, fake) as alice, signed_in(served, fake, ADMIN) as admin:
        query(app_dir, "INSERT INTO profiles (name) VALUES ('from before sign-in') RETURNING id")  # no owner
        assert "from before sign-in" not in alice.client.get("/").text
        menu = OPTION.findall(admin.get("/").text)
        assert {name for _, _, name in menu} == {f"Default · {ALICE}", f"{SECRET} plans · {ALICE}", "Default",
                                                 "from before sign-in · no owner"}
        switched = admin.post("/profiles/switch", data={"id": alice.profiles[1]}, headers=HTMX).text
        assert str(alice.run) in TASK_ID.findall(switched)
        assert "shouting about" in admin.get(f"/tasks/{alice.run}/log").text
        assert admin.get(f"/tasks/{alice.run}/files/shout.txt").status_code == 200
        assert query(app_dir, "SELECT owner FROM profiles WHERE name = 'Default' ORDER BY id") == [(ALICE,), (ADMIN,)]


def test_the_page_names_who_is_signed_in_and_signs_them_out(served, fake):
    with signed_in(served, fake, ALICE) as alice:
        page = alice.get("/").text
        assert "signed in as alice@example.com" in page
        assert re.search(r'<form[^>]*method="post"[^>]*action="/signout"[^>]*>\s*<button[^>]*>Sign out</button>', page)
        assert "signed in as alice@example.com" in alice.get("/tools/shout").text


def test_without_sign_in_nothing_shows_owners_or_sharing(client, server, app_dir):
    """Laptop mode: no one to name, to share with or to keep apart."""
    (app_dir / "tools" / "shouting.py").write_text(TOOLS)
    page = client.get("/").text
    assert "signed in as" not in page and "/signout" not in page
    started = client.post("/tools/shout", data={"word": "w"}, files={"notes": ("n.txt", b"n")}, headers=HTMX)
    task_id = task_id_of(started.text)
    assert 'class="task done"' in ended(client, task_id)
    assert "Share" not in client.get(f"/tasks/{task_id}", headers=HTMX).text
    assert server.db.profiles[server.profiles.current_profile({}).id].owner is None
