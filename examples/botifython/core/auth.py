"""Sign-in: who is using the app, once it is served beyond this machine.

Off on loopback unless configured (settings.py says how). Once on, every request but the sign-in routes and
/static needs a signed-in user (SignIn): a page is sent to /signin, an HTMX request gets 401 and a socket is
closed. Two methods:
    OpenID Connect  Authlib's client: the provider's discovery document, the code flow with state, nonce and PKCE,
                    and the ID token's signature checked against the provider's keys, with its iss, aud, exp and
                    nonce;
    a proxy header  a reverse proxy that signed the user in names them in PROXY_USER_HEADER, believed only on a
                    request whose peer address is in TRUSTED_PROXIES.
The user is kept in the session cookie (signed, HttpOnly, SameSite=Lax, Secure behind https), which starts afresh
at each sign-in. Other rooms ask `current_user(sess or request)` and `is_admin(user)`.
"""
import binascii
import functools
import ipaddress
import ssl
import time
import unicodedata
from collections import deque
from urllib.parse import urlsplit

from authlib.common.errors import AuthlibBaseError
from fasthtml.common import *
from joserfc.errors import JoseError

from core import hidden
from core.security import notice
from settings import (ADMINS, ALLOWED_USERS, HOST, LOOPBACK, OIDC, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, OIDC_ISSUER,
                      OIDC_USER_CLAIM, PROXY, PROXY_USER_HEADER, PUBLIC_URL, TITLE, TRUSTED_PROXIES, name_key)

SIGNIN = OIDC or PROXY
# A sign-in lasts this long, however often the session changes since: Starlette re-signs the cookie (and so
# renews its age) at every change, which would keep a busy session signed in forever.
SIGNED_IN_FOR = 7 * 24 * 3600
# Attempts (starting a sign-in, or coming back from the provider) per client address in WINDOW seconds.
ATTEMPTS, WINDOW = 20, 60
RECENT: dict[str, deque] = {}  # a client address's attempts in the last WINDOW seconds
SWEPT = [0.0]  # when RECENT was last swept of addresses gone quiet
# Open to anyone: signing in and out, the page's files, and the development-mode socket that only says "restarted".
OPEN_PATHS = {"/signin", "/signin/start", "/signin/callback", "/signout", "/favicon.ico", "/live-reload"}
router = APIRouter()


def start_problem() -> str:
    """Why the server must not start, in one line, or ''."""
    if not SIGNIN and not LOOPBACK:
        return (f"server.py: HOST={HOST} lets other machines in, but no sign-in is configured: set OIDC_ISSUER, "
                "OIDC_CLIENT_ID and OIDC_CLIENT_SECRET, or TRUSTED_PROXIES and PROXY_USER_HEADER (settings.py says "
                "how), or serve on HOST=127.0.0.1")
    if OIDC and not LOOPBACK and not PUBLIC_URL:
        return ("server.py: OpenID Connect beyond this machine needs PUBLIC_URL, the address people open, such as "
                "https://tools.example.com: PUBLIC_URL/signin/callback is the redirect URI to register")
    return ""


def current_user(where) -> str | None:
    """Who signed in, given a session (a handler's `sess`), a request or a socket; None while sign-in is off.
    With sign-in on, every request that reaches a route other than OPEN_PATHS has one."""
    if not SIGNIN:
        return None
    session = where if isinstance(where, dict) else where.scope.get("session", {})
    return session.get("user")


def is_admin(user: str | None) -> bool:
    """Whether `user` is in ADMINS: they may see every user's profiles and runs."""
    return bool(user) and name_key(user) in ADMINS


def may_sign_in(user: str) -> bool:
    """Whether ALLOWED_USERS (or ADMINS) has this user, their domain (@example.com, for a name with an @) or *."""
    name = name_key(user)
    domain = {f"@{name.rpartition('@')[2]}"} if "@" in name else set()
    return bool({"*", name, *domain} & ALLOWED_USERS) or is_admin(user)


def plain_name(text: str) -> str | None:
    """The user a provider or proxy names, if it is a plain name: no spaces, control characters or commas (a list
    smuggled into one header), and the same after Unicode's compatibility normalization (no look-alikes of
    another name)."""
    name = text.strip(" \t")
    odd = any(unicodedata.category(c)[0] in "CZ" or c == "," for c in name)
    return name if name and not odd and unicodedata.normalize("NFKC", name) == name else None


def only(scope, header: str) -> str:
    """A header's one value; '' when it is missing or sent more than once (which one would a proxy have set?)."""
    values = Headers(scope=scope).getlist(header)
    return values[0] if len(values) == 1 else ""


def start_session(session: dict, user: str, via: str) -> None:
    """A fresh session for a new sign-in: nothing set before it (by whoever planted the cookie) carries over, and
    the browser gets a new cookie."""
    session.clear()
    session.update(user=user, via=via, since=int(time.time()))


def peer_is_proxy(scope) -> bool:
    """Whether the request's peer, the other end of its connection, is in TRUSTED_PROXIES. serve() keeps uvicorn
    from replacing the peer with what X-Forwarded-For says."""
    try:
        address = ipaddress.ip_address((scope.get("client") or ("",))[0])
    except ValueError:
        return False
    address = getattr(address, "ipv4_mapped", None) or address  # ::ffff:10.0.0.2 is 10.0.0.2
    return any(address in network for network in TRUSTED_PROXIES)


def signed_in(scope) -> str | None:
    """The request's user, or None: the proxy's header if a trusted proxy sent it (which starts a session when it
    names someone new), else the session's user while its sign-in lasts. Either only if still allowed."""
    session = scope["session"]
    if PROXY and peer_is_proxy(scope) and (user := plain_name(only(scope, PROXY_USER_HEADER)) or ""):
        if (session.get("user"), session.get("via")) != (user, "proxy"):  # (a socket's session is never saved)
            start_session(session, user, "proxy")
        return user if may_sign_in(user) else None
    fresh = time.time() - session.get("since", 0) < SIGNED_IN_FOR
    user = session.get("user") if session.get("via") == "oidc" and fresh else None
    return user if user and may_sign_in(user) else None


@functools.cache
def on_the_network(local_address) -> bool:
    """Whether the server's own address a request came in on (the ASGI scope's `server`) is one other machines
    reach. A name (a test client's "testserver") or a Unix socket is not."""
    try:
        address = ipaddress.ip_address(local_address)
    except ValueError:
        return False
    return not (getattr(address, "ipv4_mapped", None) or address).is_loopback  # ::ffff:127.0.0.1 is loopback


class SignIn:
    """Lets a request through to its route only with a signed-in user, while sign-in is on. After Sessions (it
    reads the session) and before DirectSockets (a socket is asked too).

    With sign-in off, refuses what arrives on a network address: HOST says loopback, but uvicorn run by hand
    (`--host 0.0.0.0`) or a container's port mapping may have bound the app to every address regardless."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        if not SIGNIN and on_the_network((scope.get("server") or ("",))[0]):
            if scope["type"] == "websocket":
                return await WebSocket(scope, receive, send).close(code=1008)
            return await Response("Refused: without sign-in this app answers on this machine only (settings.py says "
                                  "how to turn sign-in on).", 403)(scope, receive, send)
        if not SIGNIN or scope["path"].startswith("/static/"):
            return await self.app(scope, receive, send)
        if not (user := signed_in(scope)) and "user" in scope["session"]:  # ended, or not from here: current_user()
            for key in ("user", "via", "since"):  # says None
                scope["session"].pop(key, None)
        if user or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            return await WebSocket(scope, receive, send).close(code=1008)
        headers = Headers(scope=scope)
        if scope["method"] == "GET" and "hx-request" not in headers:
            if "text/html" in headers.get("accept", ""):  # a page (not an icon the browser guessed at): back there
                query = scope["query_string"].decode("latin-1")  # once signed in
                scope["session"]["next"] = scope["path"] + (f"?{query}" if query else "")
            return await RedirectResponse("/signin", 303)(scope, receive, send)
        await notice("Sign in first: this page's session has ended.", 401, **{"HX-Redirect": "/signin"})(
            scope, receive, send)


def client_address(scope) -> str:
    """Whom to count attempts against: the peer, or behind a proxy (a trusted one, or one on this machine, such as
    the TLS proxy in front of OpenID Connect) the address it was connected from, the last X-Forwarded-For entry.
    An IPv6 client counts by its /64: one machine there holds a whole /64 of addresses."""
    peer = (scope.get("client") or ("",))[0]
    forwarded = ",".join(Headers(scope=scope).getlist("x-forwarded-for"))
    if forwarded and (peer_is_proxy(scope) or peer in ("127.0.0.1", "::1")):
        peer = forwarded.rsplit(",", 1)[-1].strip()
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return peer
    return str(ipaddress.ip_network(f"{address}/64", strict=False)) if address.version == 6 else str(address)


def over_the_limit(req) -> FtResponse | None:
    """Counts this attempt; the answer if the client made ATTEMPTS already in the last WINDOW seconds, else None.
    On the event loop (the routes below are async), so no lock."""
    now, address = time.monotonic(), client_address(req.scope)
    recent = RECENT.setdefault(address, deque())
    while recent and now - recent[0] > WINDOW:
        recent.popleft()
    if len(recent) >= ATTEMPTS:
        return SignInPage("Too many sign-in attempts from your address: wait a minute.", 429,
                          **{"Retry-After": str(WINDOW)})
    recent.append(now)
    if len(RECENT) > 10_000 and now - SWEPT[0] > WINDOW:  # many addresses: forget those with no attempt in the
        SWEPT[0] = now  # window, to bound memory; once a window, not at every attempt
        for stale in [key for key, times in RECENT.items() if now - times[-1] > WINDOW]:
            del RECENT[stale]
    return None


def SignInPage(message: str = "", status: int = 200, **headers: str) -> FtResponse:
    """The sign-in page: what went wrong, if anything, and the way in."""
    if OIDC:
        way_in = A(f"Sign in with {urlsplit(OIDC_ISSUER).hostname}", href="/signin/start", role="button")
    else:
        way_in = P(f"Open this app through your team's sign-in proxy{f' at {PUBLIC_URL}' if PUBLIC_URL else ''}.")
    alert = P(message, cls="error", role="alert") if message else ""
    return FtResponse((Title(f"Sign in · {TITLE}"), Main(H1(TITLE), alert, way_in, cls="container")), status, headers)


@router.get("/signin")
def signin():
    return SignInPage()


# What reading a provider's documents raises when they are not what they say (HTML for JSON, a key that is not one,
# discovery without its jwks_uri).
UNREADABLE = (ValueError, KeyError, TypeError, RuntimeError, binascii.Error)


@functools.cache
def provider():
    """The OpenID Connect client (it loads the discovery document on first use), and the error its HTTP calls
    raise when the provider does not answer. Imported once needed (about 0.1 s), with rich hidden for the reason
    core/__init__.py gives. Authlib talks through httpx2 where installed (the lock has it), else httpx."""
    with hidden("rich"):
        from authlib.integrations.starlette_client import OAuth
        try:
            import httpx2 as http
        except ImportError:
            import httpx as http
        import certifi
    # One TLS context for every call: Authlib makes an HTTP client per sign-in, and each would load the CA bundle
    # again, 25 ms of the event loop's time, which a stream of anonymous /signin/start requests would fill.
    verify = ssl.create_default_context(cafile=certifi.where())
    client = OAuth().register(
        "oidc", client_id=OIDC_CLIENT_ID, client_secret=OIDC_CLIENT_SECRET,
        server_metadata_url=f"{OIDC_ISSUER}/.well-known/openid-configuration",
        client_kwargs={"scope": "openid email profile", "code_challenge_method": "S256", "timeout": 10,
                       "verify": verify})
    return client, http.HTTPError


async def discovered(client) -> str:
    """Loads the provider's discovery document; why it cannot be used, or ''. The ID token's iss must then be the
    issuer the document names, and that must be OIDC_ISSUER: a document that names another is refused."""
    issuer = (await client.load_server_metadata()).get("issuer", "")
    return "" if issuer.rstrip("/") == OIDC_ISSUER else f"the provider names itself {issuer!r}, not OIDC_ISSUER"


@router.get("/signin/start")
async def signin_start(req):
    if not OIDC:
        return SignInPage()
    if refused := over_the_limit(req):
        return refused
    client, unanswered = provider()
    try:
        if problem := await discovered(client):
            return SignInPage(f"Sign-in is misconfigured: {problem}.", 502)
        callback = f"{PUBLIC_URL or str(req.base_url).rstrip('/')}/signin/callback"
        return await client.authorize_redirect(req, callback)
    except unanswered:
        return SignInPage(f"The sign-in provider at {OIDC_ISSUER} did not answer; try again.", 502)
    except UNREADABLE:
        return SignInPage(f"The sign-in provider at {OIDC_ISSUER} gave an answer that could not be read.", 502)


@router.get("/signin/callback")
async def signin_callback(req):
    """The provider sends the browser back here with a code: exchanged for the tokens (with the PKCE verifier and
    this app's secret), the ID token checked, and the user signed in."""
    if not OIDC:
        return SignInPage()
    if refused := over_the_limit(req):
        return refused
    client, unanswered = provider()
    try:
        if problem := await discovered(client):  # also after a restart between the start and this
            return SignInPage(f"Sign-in is misconfigured: {problem}.", 502)
        issuer = (await client.load_server_metadata())["issuer"]
        token = await client.authorize_access_token(req, claims_options={
            "iss": {"essential": True, "values": [issuer]}, "aud": {"essential": True, "values": [OIDC_CLIENT_ID]}})
    except (AuthlibBaseError, JoseError) as error:  # refused by the provider, a bad state, or an ID token that
        return SignInPage(f"Sign-in failed ({type(error).__name__}): try again.", 401)  # does not check out
    except unanswered:
        return SignInPage(f"The sign-in provider at {OIDC_ISSUER} did not answer; try again.", 502)
    except UNREADABLE:
        return SignInPage(f"The sign-in provider at {OIDC_ISSUER} gave an answer that could not be read.", 502)
    claims = token.get("userinfo") or {}
    user = plain_name(str(claims.get(OIDC_USER_CLAIM) or ""))
    # email_verified: only true is true (some providers send the string); a provider that never sends it (Entra)
    # vouches for its emails by issuing them.
    if not user or (OIDC_USER_CLAIM == "email" and claims.get("email_verified", True) not in (True, "true")):
        return SignInPage(f"Sign-in failed: the provider vouched for no plain, verified {OIDC_USER_CLAIM}.", 401)
    if not may_sign_in(user):
        return SignInPage(f"{user} may not use this app: ask its admin to add you to ALLOWED_USERS.", 403)
    next_path = req.session.get("next", "/")
    start_session(req.session, user, "oidc")
    # Only a path of this site: //other.example would be another site.
    return Redirect(next_path if next_path.startswith("/") and not next_path.startswith(("//", "/\\")) else "/")


@router.get("/signout")
def signout_page(sess):
    """A button, so that no link on another site (an image, say) can sign anyone out."""
    user = current_user(sess)
    return Titled(TITLE, P(f"Signed in as {user}." if user else "Not signed in."),
                  Form(Button("Sign out"), method="post", action="/signout"))


@router.post("/signout")
def signout(sess):
    """Forgets the user in this browser. A proxy signs its users in again at their next request: they sign out
    there (oauth2-proxy's /oauth2/sign_out, say)."""
    sess.clear()
    return Response(status_code=303, headers={"Location": "/signin", "HX-Redirect": "/signin"})

