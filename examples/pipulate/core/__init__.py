"""The app's rooms that belong to the template: `flakewright update` keeps them current, so a fix here goes back
to the template with `flakewright backport`, and your own code goes in server.py, addons/ and tools/.

    db          connections, transactions, tables (a notebook may import it: it needs no web stack)
    sqlite      the laptop's database, a file in data/ (the default)
    postgres    a team server's database, when DATABASE_URL is set
    pg_tables   its tables, through the same MiniDataAPI calls fastlite gives on SQLite
    migrate     a data folder's SQLite database into PostgreSQL (scripts/migrate-to-postgres)
    security    host names, origins, framing, body size, the session cookie and its key
    auth        who signs in (OpenID Connect or a proxy's header), the gate on every route; /signin, /signout
    profiles    profiles and what deleting one deletes
    live        the page's socket, its frames both ways
    task_rows   how a task shows in the page
    tasks       runs on the event loop, their progress saved and pushed; the /tasks routes
    shares      a run's read-only permalink for other signed-in users; the /shared routes
    tool_pages  the tools under tools/ as forms and runs; the /tools routes
    ui          the page and its shared pieces
    workspace   the main page, its cards, the /profiles routes
    app         create_app() and the server's start

Importing core builds nothing and opens no file.
"""
import sys
from contextlib import contextmanager


@contextmanager
def hidden(*modules: str):
    """Inside the block, importing these modules fails as if they were not installed (unless already imported)."""
    absent = [name for name in modules if name not in sys.modules]
    sys.modules.update(dict.fromkeys(absent, None))
    try:
        yield
    finally:
        for name in absent:
            del sys.modules[name]


# Hidden while the libraries below import, these stay out of the server unless a tool imports them, which then
# works as usual. apswutils, under fastlite, tries `import pandas` and `import numpy` only to map their scalar
# types to SQL column types, which this app never stores: about 1.5 s and 40 MB. httpx, under FastHTML, imports
# its command-line client when rich is installed: about 0.1 s of CPU.
with hidden("numpy", "pandas", "rich"):
    import fasthtml.common  # noqa: F401
    import fastlite  # noqa: F401
