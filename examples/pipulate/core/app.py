"""The app factory and the server's start: create_app() puts core's rooms, the add-ons and server.py's routes
together; serve() runs it."""
import gc
import importlib
import json
import socket
import sys

import uvicorn
from fasthtml.common import *

from core import auth, db, live, shares, tasks, tool_pages, workspace
from core.db import BUSY_ERRORS, make_data_folders
from core.security import (BodyLimit, KnownHost, SameOrigin, SecurityHeaders, Sessions, database_busy,
                           session_secret)
from settings import ADDONS_DIR, APP_DIR, DATA, DEV, HOST, PORT, SECURE_COOKIES, STATIC, TITLE, TOOLS_DIR


# htmx swaps only 2xx answers by default; 404, 413 and 503 answers carry a one-line notice for the page to show.
# Indicator styles are in app.css: htmx would inject them as an inline <style>, which the page's CSP refuses.
HTMX_CONFIG = {"includeIndicatorStyles": False,
               "responseHandling": [{"code": "204", "swap": False}, {"code": "[23]..", "swap": True},
                                    {"code": "404|413|503", "swap": True},
                                    {"code": "...", "swap": False, "error": True}]}
# No inline script anywhere (the CSP forbids it): the page's own few lines are app.js, tables.js (a result's table
# pages and sorts) and live-reload.js; static/vendor/ holds the upstream files, unmodified.
HEAD = (charset, viewport, Meta(name="htmx-config", content=json.dumps(HTMX_CONFIG)),
        Script(src="/static/vendor/htmx.min.js"), Script(src="/static/vendor/ws.js"), Script(src="/static/app.js"),
        Script(src="/static/tables.js"),
        *([Script(src="/static/live-reload.js")] if DEV else []),
        Link(rel="stylesheet", href="/static/vendor/pico.min.css"), Link(rel="stylesheet", href="/static/app.css"),
        Link(rel="icon", href="/static/favicon.svg", type="image/svg+xml"))


class DirectSockets:
    """Hands websocket connections straight to their handler in SOCKETS.

    The exception middleware after this one wraps the `send` of every frame, and a socket handles its own
    errors; it names its tab in the URL. Host, Origin and who signed in are checked before this.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and (handler := live.SOCKETS.get(scope["path"])):
            return await handler(WebSocket(scope, receive, send))
        await self.app(scope, receive, send)


def create_app(*, routers=()) -> FastHTML:
    """The app: data/ made, the add-ons imported, core's routes, the add-ons' and then `routers` (server.py's)
    added. `python server.py` makes it once; a test makes one of its own. Refused on an address other machines
    reach unless sign-in is configured (core/auth.py), however the app is served.

    FastHTML() rather than fast_app(): fast_app's static route follows ../ out of the app folder. No default
    headers: they load htmx and helper scripts from a CDN; HEAD has what the page uses, served locally. Not
    FastHTMLWithLiveReload: it puts its script inline; static/live-reload.js is the same few lines. gc.freeze:
    what exists at start-up (modules, routes) lives as long as the server, and a full garbage collection walking
    it all would pause every tab and socket for about 20 ms at unpredictable moments. The session middleware is
    Sessions, placed before SignIn (which reads it) rather than last, where FastHTML would put its own.
    """
    if problem := auth.start_problem():
        sys.exit(problem)
    make_data_folders()
    secret = session_secret(DATA / ".sesskey")
    app = FastHTML(
        title=TITLE, default_hdrs=False, hdrs=HEAD, canonical=False, secret_key=secret, sess_cls=None,
        on_startup=[tasks.mark_interrupted, gc.freeze], on_shutdown=[tasks.interrupt_runs],
        exception_handlers={error: database_busy for error in BUSY_ERRORS},
        middleware=[Middleware(SecurityHeaders), Middleware(KnownHost), Middleware(SameOrigin), Middleware(BodyLimit),
                    Middleware(Sessions, secret_key=secret, session_cookie="session_", max_age=365 * 24 * 3600,
                               same_site="lax", https_only=SECURE_COOKIES),
                    Middleware(auth.SignIn), Middleware(DirectSockets)])
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    workspace.ADDONS[:] = import_addons()
    addons = [router for addon in workspace.ADDONS if (router := getattr(addon, "router", None))]
    for router in (auth.router, workspace.router, tasks.router, shares.router, tool_pages.router, *addons, *routers):
        router.to_app(app)
    return app


def import_addons() -> list:
    """Every module addons/<name>.py (not starting with _), in name order; addons/__init__.py says what one may
    define."""
    return [importlib.import_module(f"addons.{path.stem}") for path in sorted(ADDONS_DIR.glob("[!_]*.py"))]


def port_taken() -> str:
    """Why the server cannot listen on HOST:PORT, in one line, or ''. uvicorn would say only "[Errno 98] Address
    already in use", naming neither the port nor how to choose another."""
    host = HOST.strip("[]")
    try:
        with socket.create_server((host, PORT), family=socket.AF_INET6 if ":" in host else socket.AF_INET):
            return ""
    except OSError as error:
        return f"server.py: cannot listen on {HOST} port {PORT} ({error.strerror}): stop what uses it, or choose " \
               f"another port with PORT={PORT + 1} python server.py"


def database_problem() -> str:
    """Why the database in DATABASE_URL cannot be reached, in one line, or ''."""
    problem = db.backend.unreachable()
    return problem and f"server.py: cannot reach the database in DATABASE_URL ({problem}): is it running?"


def serve(factory: str) -> None:
    """Serve the app that `factory` ("module:function") makes, on HOST:PORT. uvicorn imports the module by name,
    once, so routes defined anywhere in it are there before the first request.

    The page's socket runs over loopback by default, where compressing frames costs a tenth of the server's CPU.
    In development a change to a module restarts the server. A notebook is not app code: notebooks/ holds the
    author's own, which JupyterLab autosaves every few minutes, and each save would end every run and reload every
    tab. tools/ is left out too: the next page reads the tools (notebooks among them) again without a restart, so a
    run going on and what a tab holds survive an edit there; so are data/ and JupyterLab's checkpoints. uvicorn
    must find data/ to leave it out (a path it cannot find is a pattern).

    No proxy headers: uvicorn would otherwise take a request's client address from the X-Forwarded-For that any
    program on this machine may send, and core/auth.py must see the real peer to trust a proxy's sign-in."""
    if problem := auth.start_problem() or port_taken() or database_problem():
        sys.exit(problem)
    serving = dict(factory=True, app_dir=str(APP_DIR), host=HOST.strip("[]"), port=PORT, ws_per_message_deflate=False,
                   proxy_headers=False)
    if DEV:
        make_data_folders()
        serving.update(reload=True, reload_dirs=[str(APP_DIR)], reload_includes=["*.py"],
                       reload_excludes=[str(DATA), str(TOOLS_DIR), ".ipynb_checkpoints/*"])
    uvicorn.run(factory, **serving)
