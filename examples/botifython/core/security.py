"""What keeps other machines, other sites and oversized requests out: host names, origins, framing, body size,
and the session cookie with the key that signs it. Who may come in at all is core/auth.py's."""
import html
import json
import os
import secrets
from base64 import b64decode
from pathlib import Path
from urllib.parse import urlsplit

from fasthtml.common import Headers, HTMLResponse, Response, WebSocket
from itsdangerous import BadSignature
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import HTTPConnection

from core.db import BUSY
from settings import HOST, PUBLIC_URL

# Host names the app answers to: its own, and PUBLIC_URL's (a reverse proxy passes on the name people open);
# binding a wildcard address opts out of the check (and into the network, where core/auth.py asks who comes in).
ALLOWED_HOSTS = {"*"} if HOST in ("0.0.0.0", "::") else \
    {"127.0.0.1", "localhost", "::1", HOST.strip("[]"), urlsplit(PUBLIC_URL).hostname or "127.0.0.1"}
# Request bodies are forms unless their path starts with a prefix here; uploads arrive under /tools/.
MAX_BODY = 1024 * 1024
BODY_LIMITS = {"/tools/": 100 * 1024 * 1024}


def session_secret(path: Path) -> str:
    """The cookie-signing key, made owner-only on first run. A file too short to be a key (a crash during the
    first start can leave it empty) counts as missing: given no key, FastHTML would write its own beside server.py."""
    try:
        key = path.read_text().strip()
    except FileNotFoundError:
        key = ""
    if len(key) >= 32:
        return key
    partial = path.with_name(f"{path.name}.{os.getpid()}")
    with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(key := secrets.token_urlsafe(32))
    partial.replace(path)  # whole or not at all
    return key


class Sessions(SessionMiddleware):
    """Starlette's session in a signed cookie, also read (never written) for a socket, so that core/auth.py can
    ask who opened it. Starlette's own would wrap the socket's `send`, and with it every frame, only to look for
    an HTTP response's start that a socket never sends."""

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return await super().__call__(scope, receive, send)
        signed = HTTPConnection(scope).cookies.get(self.session_cookie, "")
        try:
            scope["session"] = json.loads(b64decode(self.signer.unsign(signed, max_age=self.max_age)))
        except (BadSignature, ValueError):
            scope["session"] = {}
        await self.app(scope, receive, send)


class SameOrigin:
    """Refuses writes and sockets that another site's page starts.

    Listening on 127.0.0.1 keeps other machines out, not other web pages: any page in the browser can post a
    form here or open the socket. Browsers send Origin with both, so it must name this very host.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket") and not same_origin(scope):
            if scope["type"] == "websocket":
                return await WebSocket(scope, receive, send).close(code=1008)
            return await Response("Refused: this request came from another site.", 403)(scope, receive, send)
        await self.app(scope, receive, send)


# Behind a reverse proxy that passes on its own Host (127.0.0.1:port), a browser's Origin names the address people
# open: PUBLIC_URL's.
PUBLIC_ORIGIN = "{0.scheme}://{0.netloc}".format(urlsplit(PUBLIC_URL)) if PUBLIC_URL else None


def same_origin(scope) -> bool:
    headers = Headers(scope=scope)
    origin = headers.get("origin")
    reads = scope["type"] == "http" and scope["method"] in ("GET", "HEAD", "OPTIONS")
    return reads or not origin or urlsplit(origin).netloc == headers.get("host") or origin == PUBLIC_ORIGIN


class KnownHost:
    """Refuses requests for a host name the app does not answer to: another site's name pointed at 127.0.0.1
    (DNS rebinding) would otherwise be same-origin with the app. Reads IPv6 hosts such as [::1]:5001, which
    Starlette's TrustedHostMiddleware cuts at the first colon."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        known = "*" in ALLOWED_HOSTS or scope["type"] not in ("http", "websocket") or host_name(scope) in ALLOWED_HOSTS
        if not known:
            return await Response("Refused: this app does not answer to that host name.", 400)(scope, receive, send)
        await self.app(scope, receive, send)


def host_name(scope) -> str:
    try:
        return urlsplit(f"//{Headers(scope=scope).get('host', '')}").hostname or ""
    except ValueError:  # such as an unclosed [
        return ""


# Scripts and styles only from this server (no inline script), and no framing by any page: another site could
# otherwise show this page invisibly under its own buttons and have the user click ours (clickjacking).
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                 b"connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
                                 b"frame-ancestors 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin")]


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every HTTP response. Sockets pass straight through: nothing is added per message."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Refuses a request body over its route's limit (BODY_LIMITS, else MAX_BODY) before it fills memory: at once
    when Content-Length says so, and as soon as a chunked body passes the limit."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = next((size for prefix, size in BODY_LIMITS.items() if scope["path"].startswith(prefix)), MAX_BODY)
        length = Headers(scope=scope).get("content-length", "0")
        if not length.isdigit() or int(length) > limit:
            return await too_large(limit)(scope, receive, send)
        received = 0

        async def receive_counted():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge
            return message

        try:
            await self.app(scope, receive_counted, send)
        except BodyTooLarge:
            await too_large(limit)(scope, receive, send)


def notice(message: str, status: int, **headers) -> HTMLResponse:
    """A one-line answer that HTMX shows in the page's notice, whichever element asked."""
    return HTMLResponse(html.escape(message), status, headers={"HX-Retarget": "#notice", "HX-Reswap": "innerHTML",
                                                               **headers})


def too_large(limit: int) -> HTMLResponse:
    return notice(f"That is too much to send at once: the limit here is {limit // 1024:,} KiB.", 413)


def database_busy(request, error) -> HTMLResponse:
    return notice(BUSY, 503, **{"Retry-After": "1"})
