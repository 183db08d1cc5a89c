"""The pieces every page and card shares: the page itself, the one-line error under a field, the page's notice."""
import json
import secrets

from fasthtml.common import H1, Div, Header, Main, Small, Title

from settings import TITLE


def Error(message: str, id: str):
    return Small(message, id=id, cls="error", role="alert")


def Notice():
    """Where the page shows an answer that belongs to no one element: the database is busy, a body too big."""
    return Div(id="notice", cls="error", role="alert")


def Page(bodykw: dict, heading: str, *content):
    """A whole page. Its HTMX requests name its tab, and its socket brings that tab's task progress."""
    tab = secrets.token_urlsafe(12)
    bodykw.update(hx_headers=json.dumps({"X-Tab": tab}), hx_ext="ws", ws_connect=f"/ws?tab={tab}")
    return (Title(heading), Header(H1(TITLE), cls="container"),
            Main(Notice(), *content, cls="container"))
