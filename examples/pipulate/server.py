"""The web app: `python server.py` (or ./scripts/run) serves it on http://HOST:PORT (settings.py).

This file is yours. Routes you add to `rt` below join the app; a bigger feature reads better as a module of its
own under addons/ (addons/__init__.py says how), and a notebook function as a tool under tools/. core/ is the
template's: `flakewright update` keeps it current, so leave it as it is and your changes never conflict.

    @rt("/hello")
    def hello(name: str = "you"):
        return P(f"Hello, {name}")
"""
from fasthtml.common import *

from core import app

rt = APIRouter()


def create_app():
    """The app, with the routes above: uvicorn makes it (see serve), and so does a test."""
    return app.create_app(routers=[rt])


if __name__ == "__main__":
    app.serve("server:create_app")
