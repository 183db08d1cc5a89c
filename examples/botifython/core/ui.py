"""The pieces every page and card shares: the page itself with who is signed in, the one-line error under a field,
the page's notice."""
import json
import secrets

from fasthtml.common import H1, Button, Div, Form, Header, Main, Nav, Small, Title

from settings import TITLE


def Error(message: str, id: str):
    return Small(message, id=id, cls="error", role="alert")


def Notice():
    """Where the page shows an answer that belongs to no one element: the database is busy, a body too big."""
    return Div(id="notice", cls="error", role="alert")


def SignedIn(user: str):
    """Who the page is for, and the way out: a form, since signing out is a POST (no other site's link can)."""
    return Nav(Small("signed in as ", user), " · ",
               Form(Button("Sign out", cls="outline secondary"), method="post", action="/signout"), cls="signed-in")


def Page(bodykw: dict, heading: str, *content, user: str | None = None):
    """A whole page, naming its `user` while sign-in is on. Its HTMX requests name its tab, and its socket brings
    that tab's task progress."""
    tab = secrets.token_urlsafe(12)
    bodykw.update(hx_headers=json.dumps({"X-Tab": tab}), hx_ext="ws", ws_connect=f"/ws?tab={tab}")
    return (Title(heading), Header(H1(TITLE), SignedIn(user) if user else "", cls="container"),
            Main(Notice(), *content, cls="container"))
