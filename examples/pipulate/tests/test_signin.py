"""Sign-in (core/auth.py), over the real wire: `python server.py` served with OpenID Connect against the fake
provider (fake_oidc.py), or behind a "proxy" that is this machine's second loopback address, 127.0.0.2. On
loopback with nothing configured there is no sign-in: every other test of this suite runs that way."""
from __future__ import annotations

import base64
import html
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import itsdangerous
import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from conftest import ENV_PREFIX
from fake_oidc import FLAWS, browser, oidc, sign_in

SETTINGS = ("OIDC_ISSUER", "OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET", "OIDC_USER_CLAIM", "TRUSTED_PROXIES",
            "PROXY_USER_HEADER", "ALLOWED_USERS", "ADMINS", "PUBLIC_URL")
PROXY = dict(TRUSTED_PROXIES="127.0.0.2", PROXY_USER_HEADER="X-Forwarded-Email", ALLOWED_USERS="@example.com")
PAGE = {"Accept": "text/html"}  # what a browser's address bar sends
SIGNED_IN = re.compile(r"Signed in as ([^<]+)\.")


@pytest.fixture(autouse=True)
def no_signin_from_your_shell(monkeypatch: pytest.MonkeyPatch):
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def oidc_app(live_server, fake):
    """The app's base URL, served with sign-in by the fake provider."""
    with live_server(**oidc(fake)) as url:
        yield url


def who(browser: httpx.Client, **headers: str) -> str | None:
    """Who the app takes this browser for: its sign-out page says."""
    found = SIGNED_IN.search(browser.get("/signout", headers=headers).text)
    return found and found[1]


def session_of(cookie: str, app_dir: Path) -> dict:
    """What a session cookie holds, read with the app's key as the app reads it."""
    key = (app_dir / "data" / ".sesskey").read_text().strip()
    return json.loads(base64.b64decode(itsdangerous.TimestampSigner(key).unsign(cookie)))


def cookie_for(session: dict, app_dir: Path) -> str:
    """A session cookie signed with the app's key, as the app would write it."""
    key = (app_dir / "data" / ".sesskey").read_text().strip()
    return itsdangerous.TimestampSigner(key).sign(base64.b64encode(json.dumps(session).encode())).decode()


def handshake(url: str, path: str, address: str = "127.0.0.1", **headers: str) -> str:
    """The status line a websocket handshake for `path`, from `address`, gets."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10, source_address=(address, 0)) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n".encode())
        return sock.recv(4096).split(b"\r\n", 1)[0].decode()


def start(app_dir: Path, *command: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {name: value for name, value in os.environ.items() if name not in ("HOST", "PORT")}
    return subprocess.run([sys.executable, *command], cwd=app_dir, capture_output=True, text=True, timeout=120,
                          env={**clean, f"{ENV_PREFIX}_ENV": "prod", "PORT": "0", **env})


@pytest.mark.parametrize("how", [["server.py"], ["-c", "from server import create_app; create_app()"]])
def test_an_open_address_without_sign_in_refuses_to_start_in_one_line(app_dir, how):
    refused = start(app_dir, *how, HOST="0.0.0.0")
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        "server.py: HOST=0.0.0.0 lets other machines in, but no sign-in is configured: set OIDC_ISSUER, "
        "OIDC_CLIENT_ID and OIDC_CLIENT_SECRET, or TRUSTED_PROXIES and PROXY_USER_HEADER (settings.py says how), "
        "or serve on HOST=127.0.0.1"]


def test_without_sign_in_what_arrives_on_a_network_address_is_refused(web_app, client):
    """HOST says loopback, yet the app may be bound wider (uvicorn --host 0.0.0.0 run by hand): a request that came
    in on a network address of the machine is refused, one on loopback served as ever."""
    far = TestClient(web_app, base_url="http://192.0.2.10")  # the server's own address, as the scope names it
    refused = far.get("/", headers={"Host": "127.0.0.1"})  # a Host that KnownHost, which reads only that, lets by
    assert refused.status_code == 403 and "answers on this machine only" in refused.text
    with pytest.raises(WebSocketDisconnect) as closed:
        with far.websocket_connect("ws://192.0.2.10/ws?tab=t", headers={"Host": "127.0.0.1"}) as socket_:
            socket_.receive_text()
    assert closed.value.code == 1008
    assert client.get("/").status_code == 200


def test_openid_connect_off_loopback_needs_the_public_url(app_dir, fake, live_server):
    refused = start(app_dir, "server.py", HOST="0.0.0.0", **oidc(fake))
    assert refused.returncode == 1 and len(refused.stderr.splitlines()) == 1
    assert refused.stderr.startswith("server.py: OpenID Connect beyond this machine needs PUBLIC_URL")
    with live_server(HOST="0.0.0.0", PUBLIC_URL="http://127.0.0.1", **oidc(fake)) as url:
        port = urlsplit(url).port
        assert httpx.get(f"http://127.0.0.1:{port}/", headers=PAGE).headers["location"] == "/signin"


def test_two_users_sign_in_each_in_a_session_of_their_own(oidc_app, fake, app_dir):
    with browser(oidc_app) as alice, browser(oidc_app) as bob:
        assert who(alice) is None and who(bob) is None
        landed = sign_in(alice, fake, "alice@example.com")
        assert landed.status_code == 200 and landed.url == f"{oidc_app}/" and 'id="workspace"' in landed.text
        cookie = landed.history[-1].headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie  # served over http
        assert sign_in(bob, fake, "bob@example.com").status_code == 200
        assert (who(alice), who(bob)) == ("alice@example.com", "bob@example.com")
        assert session_of(bob.cookies["session_"], app_dir)["user"] == "bob@example.com"
    # The protocol as it is spoken: state, nonce and an S256 PKCE challenge in each authorization; the code, the
    # verifier and the client's own secret (HTTP Basic) in each token request.
    assert len(fake.authorizations) == len(fake.token_requests) == 2
    for asked, exchanged in zip(fake.authorizations, fake.token_requests):
        assert asked["state"] and asked["nonce"] and asked["code_challenge_method"] == "S256"
        assert asked["redirect_uri"] == exchanged["redirect_uri"] == f"{oidc_app}/signin/callback"
        assert exchanged["code_verifier"] and exchanged["authorization"].startswith("Basic ")


def test_a_user_not_allowed_is_refused(oidc_app, fake):
    with browser(oidc_app) as eve:
        refused = sign_in(eve, fake, "eve@elsewhere.test")
        assert refused.status_code == 403 and "eve@elsewhere.test may not use this app" in refused.text
        assert who(eve) is None


@pytest.mark.parametrize("flaw", FLAWS)
def test_an_id_token_that_does_not_check_out_signs_no_one_in(oidc_app, fake, flaw):
    fake.flaw = flaw
    with browser(oidc_app) as mallory:
        refused = sign_in(mallory, fake, "alice@example.com")
        assert refused.status_code == 401 and "Sign-in failed" in refused.text
        assert len(fake.token_requests) == 1  # it did get as far as the token
        assert who(mallory) is None and mallory.get("/", headers=PAGE).status_code == 303
    fake.flaw = None
    with browser(oidc_app) as alice:  # the very same flow without the flaw
        assert sign_in(alice, fake, "alice@example.com").status_code == 200 and who(alice) == "alice@example.com"


@pytest.mark.parametrize("issuer, said", [
    ("http://127.0.0.1:9", "The sign-in provider at http://127.0.0.1:9 did not answer; try again."),
    ("{fake}/realms/other", "Sign-in is misconfigured: the provider names itself '{fake}', not OIDC_ISSUER."),
])
def test_a_provider_that_is_down_or_names_another_issuer_signs_no_one_in(live_server, fake, issuer, said):
    with live_server(**oidc(fake, OIDC_ISSUER=issuer.format(fake=fake.url))) as url, browser(url) as alice:
        refused = alice.get("/signin/start")
        assert refused.status_code == 502 and said.format(fake=fake.url) in html.unescape(refused.text)
        assert fake.authorizations == []


def test_a_callback_with_another_browsers_state_is_refused(oidc_app, fake):
    with browser(oidc_app) as alice, browser(oidc_app) as mallory:
        sent = alice.get("/signin/start")
        back = httpx.get(sent.headers["location"])  # the provider's answer, meant for alice's browser
        stolen = mallory.get(urlsplit(back.headers["location"])._replace(scheme="", netloc="").geturl())
        assert stolen.status_code == 401 and who(mallory) is None


def test_anonymous_requests_get_nothing_from_any_route(oidc_app, fake, web_app, server):
    """Every route the app has (core's, the add-ons', server.py's), every method: a page is sent to sign in, and
    anything else is 401 without data. The socket is refused. /static stays open: it holds only the page's files."""
    with browser(oidc_app) as alice:
        sign_in(alice, fake, "alice@example.com")
        made = alice.post("/profiles", data={"name": "Alice's secret plans"}, headers={"HX-Request": "true"})
        assert "Alice&#x27;s secret plans" in made.text or "Alice's secret plans" in made.text
        tab = json.loads(re.search(r"hx-headers='([^']+)'", alice.get("/").text)[1])["X-Tab"]
        alice_cookie = f"session_={alice.cookies['session_']}"
    routes = [(re.sub(r"\{[^}]*\}", "1", route.path), sorted(set(route.methods) - {"HEAD"}))
              for route in web_app.routes if getattr(route, "methods", None)]
    open_paths = server.app.auth.OPEN_PATHS
    checked = 0
    with browser(oidc_app) as anonymous:
        for path, methods in routes:
            for method in methods:
                for headers in (PAGE, {"HX-Request": "true"}):
                    answer = anonymous.request(method, path, headers=headers)
                    assert "secret plans" not in answer.text and "alice" not in answer.text, (method, path)
                    if path not in open_paths:
                        checked += 1
                        page = method == "GET" and "HX-Request" not in headers
                        assert answer.status_code == (303 if page else 401), (method, path, answer.status_code)
                        assert answer.headers.get("location" if page else "hx-redirect") == "/signin"
        assert checked > 20
        assert anonymous.get("/static/app.css").status_code == 200
    for path in server.live.SOCKETS:
        assert handshake(oidc_app, f"{path}?tab={tab}") == "HTTP/1.1 403 Forbidden"
    assert handshake(oidc_app, f"/ws?tab={tab}", Cookie=alice_cookie) == "HTTP/1.1 101 Switching Protocols"


def test_signing_in_starts_a_fresh_session_whatever_the_browser_held(oidc_app, fake, app_dir):
    """Session fixation: a cookie planted in the victim's browser before they sign in is worth nothing after."""
    with browser(oidc_app) as attacker:
        attacker.get("/tasks/1", headers=PAGE)  # a session holding where to go after signing in
        attacker.get("/signin/start")  # and a sign-in's state
        planted = attacker.cookies["session_"]
    assert {"next", "_state_oidc_"} <= {key[:12] if key.startswith("_state") else key
                                        for key in session_of(planted, app_dir)}
    with browser(oidc_app) as victim:
        victim.cookies.set("session_", domain="127.0.0.1", value=planted)
        assert sign_in(victim, fake, "alice@example.com").status_code == 200
        fresh = victim.cookies["session_"]
    assert fresh != planted and set(session_of(fresh, app_dir)) == {"user", "via", "since"}
    with browser(oidc_app) as attacker:
        attacker.cookies.set("session_", domain="127.0.0.1", value=planted)
        assert who(attacker) is None and attacker.get("/", headers=PAGE).status_code == 303


def test_a_sign_in_lasts_a_week(oidc_app, app_dir):
    week = 7 * 24 * 3600
    for since, signed_in in ((time.time() - week + 60, True), (time.time() - week - 60, False)):
        cookie = cookie_for({"user": "alice@example.com", "via": "oidc", "since": int(since)}, app_dir)
        with browser(oidc_app) as alice:
            alice.cookies.set("session_", domain="127.0.0.1", value=cookie)
            assert (alice.get("/", headers=PAGE).status_code == 200) is signed_in


def test_signing_out(oidc_app, fake):
    with browser(oidc_app) as alice:
        sign_in(alice, fake, "alice@example.com")
        left = alice.post("/signout")
        assert left.status_code == 303 and left.headers["location"] == "/signin"
        assert who(alice) is None and alice.get("/", headers=PAGE).status_code == 303


def test_the_cookie_is_secure_behind_https(live_server, fake, app_dir):
    """PUBLIC_URL https://...: the session cookie goes to the server over https only (Secure). The provider sends
    the browser back to PUBLIC_URL, which is this same server behind a TLS proxy."""
    with live_server(PUBLIC_URL="https://tools.example.test", **oidc(fake)) as url, httpx.Client() as plain:
        assert plain.get(f"{url}/signin", headers={"Host": "tools.example.test"}).status_code == 200  # the proxy's
        sent = plain.get(f"{url}/signin/start")
        assert "; secure" in sent.headers["set-cookie"].lower()
        back = urlsplit(httpx.get(sent.headers["location"]).headers["location"])
        assert back.netloc == "tools.example.test" and back.path == "/signin/callback"
        state_cookie = sent.headers["set-cookie"].split(";", 1)[0]
        landed = plain.get(f"{url}{back.path}?{back.query}", headers={"Cookie": state_cookie})
        assert landed.status_code == 303, landed.text
        assert all(flag in landed.headers["set-cookie"].lower() for flag in ("httponly", "samesite=lax", "secure"))
        assert session_of(landed.headers["set-cookie"].split(";")[0].split("=", 1)[1], app_dir)["user"] == \
            "alice@example.com"


def test_sign_in_attempts_are_limited_per_address(oidc_app):
    with browser(oidc_app) as busy, browser(oidc_app, "127.0.0.2") as other:
        assert [busy.get("/signin/start").status_code for _ in range(20)] == [302] * 20
        refused = busy.get("/signin/start")
        assert refused.status_code == 429 and "Too many sign-in attempts" in refused.text
        assert refused.headers["retry-after"] == "60"
        assert busy.get("/signin/callback?code=x&state=y").status_code == 429
        assert other.get("/signin/start").status_code == 302  # another address is counted apart


def test_behind_a_proxy_on_this_machine_attempts_count_per_client_and_ipv6_per_64(oidc_app):
    """The TLS proxy in front of OpenID Connect connects from 127.0.0.1 and names each client in X-Forwarded-For:
    one client's attempts must not lock the others out; an IPv6 client counts by its /64."""
    with browser(oidc_app) as proxy:
        def start(client: str) -> int:
            return proxy.get("/signin/start", headers={"X-Forwarded-For": client}).status_code

        assert [start("203.0.113.5") for _ in range(20)] == [302] * 20 and start("203.0.113.5") == 429
        assert start("203.0.113.6") == 302
        assert [start(f"2001:db8::{n:x}") for n in range(1, 21)] == [302] * 20 and start("2001:db8::ffff") == 429
        assert start("2001:db8:0:1::1") == 302


def test_a_proxys_header_counts_only_from_the_proxy(live_server):
    """Served on an open address, signed in by a proxy at 127.0.0.2 that names the user in X-Forwarded-Email. The
    same header from any other address (127.0.0.1 here) is a forgery and gets nothing."""
    with live_server(HOST="0.0.0.0", **PROXY) as url:
        url = f"http://127.0.0.1:{urlsplit(url).port}"
        alice = {"X-Forwarded-Email": "alice@example.com"}
        with browser(url) as forger:
            assert forger.get("/", headers={**PAGE, **alice}).headers["location"] == "/signin"
            assert forger.post("/profiles", data={"name": "x"}, headers=alice).status_code == 401
            assert who(forger, **alice) is None
            assert handshake(url, "/ws?tab=t", **alice) == "HTTP/1.1 403 Forbidden"
        with browser(url, "127.0.0.2") as proxy:
            assert proxy.get("/", headers={**PAGE, **alice}).status_code == 200
            assert who(proxy, **alice) == "alice@example.com"
            assert handshake(url, "/ws?tab=t", "127.0.0.2", **alice) == "HTTP/1.1 101 Switching Protocols"
            assert who(proxy, **{"X-Forwarded-Email": "bob@example.com"}) == "bob@example.com"
            assert who(proxy, **{"X-Forwarded-Email": "eve@elsewhere.test"}) is None  # not in ALLOWED_USERS
            assert proxy.get("/", headers=PAGE).status_code == 303  # no header: the proxy vouches for no one
            assert who(proxy, **alice) == "alice@example.com"
            held = proxy.cookies["session_"]
        with browser(url) as forger:  # the proxy's session, replayed from elsewhere
            forger.cookies.set("session_", domain="127.0.0.1", value=held)
            assert forger.get("/", headers=PAGE).status_code == 303


def test_behind_a_proxy_the_public_urls_origin_may_post_and_no_other(live_server):
    """A proxy that passes on its own Host (127.0.0.1:port): the browser's form posts name PUBLIC_URL as Origin."""
    with live_server(HOST="0.0.0.0", PUBLIC_URL="https://tools.example.com", **PROXY) as url:
        url = f"http://127.0.0.1:{urlsplit(url).port}"
        alice = {"X-Forwarded-Email": "alice@example.com"}
        with browser(url, "127.0.0.2") as proxy:
            proxy.get("/", headers={**PAGE, **alice})
            posted = proxy.post("/profiles", data={"name": "Ours"},
                                headers={**alice, "Origin": "https://tools.example.com"})
            assert posted.status_code == 200 and ">Ours</option>" in posted.text
            for origin in ("https://evil.example", "http://tools.example.com", "https://tools.example.com:8443"):
                refused = proxy.post("/profiles", data={"name": "Theirs"}, headers={**alice, "Origin": origin})
                assert refused.status_code == 403, origin


@pytest.mark.parametrize("name", ["bo\u017fs@example.com", "\u212aing@example.com", "alice@example.com,x@y.test",
                                  "example.com"])
def test_a_provider_naming_a_look_alike_a_list_or_a_bare_domain_signs_no_one_in(live_server, fake, name):
    """ADMINS names boss@example.com: the long s (U+017F) folds to an s in Unicode's casefold, the Kelvin sign to a
    k; a comma smuggles a list; a name without @ is no one at @example.com."""
    with live_server(**oidc(fake, ADMINS="boss@example.com")) as url, browser(url) as mallory:
        refused = sign_in(mallory, fake, name)
        assert refused.status_code in (401, 403) and who(mallory) is None, refused.text


def test_a_proxy_header_must_name_one_plain_user(live_server):
    with live_server(HOST="0.0.0.0", **PROXY) as url:
        url = f"http://127.0.0.1:{urlsplit(url).port}"
        with browser(url, "127.0.0.2") as proxy:
            for headers in ([("X-Forwarded-Email", "boss@example.com"), ("X-Forwarded-Email", "alice@example.com")],
                            [("X-Forwarded-Email", "mallory@evil.test,alice@example.com")],
                            [("X-Forwarded-Email", "\xa0alice@example.com".encode("latin-1"))]):
                page = proxy.get("/signout", headers=headers).text
                assert SIGNED_IN.search(page) is None, headers
            assert who(proxy, **{"X-Forwarded-Email": "alice@example.com"}) == "alice@example.com"
