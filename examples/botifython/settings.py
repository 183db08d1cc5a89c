"""This app's settings: what `flakewright new` was answered, and what the environment overrides.

The one file here the template renders from your answers; everything under core/ is plain Python that reads it,
and so do tools/ and addons/: every path the app writes under comes from DATA below, never from a file's own
place, because the code may live where nothing can be written (a Nix store path under `nix run`).

Settings come from the environment: DATA_DIR, DATABASE_URL, HOST, PORT, BOTIFYTHON_ENV, BOTIFYTHON_BUSY_TIMEOUT,
and sign-in's (below).
Secrets come from an env file that is never in the repo: ENV_FILE, else DATA_DIR/.env (data/.env in a
checkout, which git ignores). It holds NAME=value lines, must be readable by you only (chmod 600), and fills in
only what the environment does not already set. Nothing here prints a value read from it.

Sign-in. On loopback (HOST 127.0.0.1, localhost or ::1) it is off unless configured: the laptop is yours. On any
other address the server refuses to start without one of these methods; once configured, either one guards
every page on any address (core/auth.py). Lists are separated by commas or spaces.
    OIDC_ISSUER, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET: an OpenID Connect provider (https://accounts.google.com,
        https://login.microsoftonline.com/<tenant id>/v2.0, ...) and the client registered there, whose redirect
        URI is PUBLIC_URL/signin/callback.
    OIDC_USER_CLAIM: the ID token's claim that names the user: email (the default; refused if email_verified is
        false), preferred_username or sub.
    TRUSTED_PROXIES, PROXY_USER_HEADER: a reverse proxy that signs people in (oauth2-proxy, Caddy, Tailscale) and
        names them in that header, such as X-Forwarded-Email. The header counts only on a request whose peer
        address is in TRUSTED_PROXIES (addresses or networks: 127.0.0.1, 10.0.0.0/8).
    ALLOWED_USERS: who may sign in: names (alice@example.com), domains (@example.com), or * for anyone the
        provider or proxy signs in. Required with a sign-in method; ADMINS may sign in too.
    ADMINS: users who may see everyone's profiles and runs.
    PUBLIC_URL: the address people open, such as https://tools.example.com. Its host name is answered to, https
        makes the session cookie Secure, and OpenID Connect off loopback needs it.
"""
import ipaddress
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

APP_DIR = Path(__file__).resolve().parent
STATIC = APP_DIR / "static"
TOOLS_DIR = APP_DIR / "tools"
ADDONS_DIR = APP_DIR / "addons"


def fail(problem: str):
    sys.exit(f"settings: {problem}")


def load_env_file(path: Path) -> None:
    """NAME=value lines (blank lines, # comments, `export NAME=value` and quoted values too) into os.environ,
    unless the environment sets NAME already. A missing file is no file; a line that is not NAME=value is named by
    its number only, since it may hold a secret."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return
    if mode & 0o077:
        fail(f"{path} holds secrets but others may read it: chmod 600 {path}")
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, equals, value = line.removeprefix("export ").partition("=")
        name, value = name.strip(), value.strip()
        if not equals or not name.isidentifier():
            fail(f"{path} line {number} is not NAME=value")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        os.environ.setdefault(name, value)


# The data folder: data/ beside the code in a checkout; `nix run` sets DATA_DIR to ~/.local/share/<app>
# ($XDG_DATA_HOME). Made absolute and handed on, so a tool's run (whose working folder is its outputs) finds it.
DATA = Path(os.path.abspath(Path(os.environ.get("DATA_DIR") or APP_DIR / "data").expanduser()))
if "DATA_DIR" in os.environ:
    os.environ["DATA_DIR"] = str(DATA)
ENV_FILE = Path(os.path.abspath(Path(os.environ.get("ENV_FILE") or DATA / ".env").expanduser()))
load_env_file(ENV_FILE)
DB_FILE = DATA / "botifython.db"
# Empty: the SQLite file above, no service to run. postgresql://user@host/name (or postgresql:///name?host=/run/postgresql
# for a local socket) runs the same app, with the same tables, on PostgreSQL: a team server's database.
DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL and not DATABASE_URL.startswith(("postgresql://", "postgres://")):
    fail("DATABASE_URL must be empty (SQLite in the data folder) or start with postgresql://")

TITLE = "Botifython"
HOST = os.environ.get("HOST", "127.0.0.1")
try:
    PORT = int(os.environ.get("PORT", "5001"))
except ValueError:
    fail(f"PORT must be a number, such as 5001, not {os.environ['PORT']!r}")
ENV_PREFIX = "BOTIFYTHON"
DEV = os.environ.get(f"{ENV_PREFIX}_ENV", "dev") != "prod"
JUPYTER = True  # notebooks under tools/ are tools only with Jupyter in the venv
BUSY_TIMEOUT = float(os.environ.get(f"{ENV_PREFIX}_BUSY_TIMEOUT", "5"))  # seconds a write waits for another program



# Sign-in, as the docstring above says; checked here for form, and by core/auth.py for whether a server on this
# HOST may start.
def listed(name: str) -> tuple[str, ...]:
    return tuple(os.environ.get(name, "").replace(",", " ").split())


# User names are compared with their ASCII letters' case folded and nothing else: Unicode's folding makes the long
# s (ſ) an s and the Kelvin sign a k, so a name chosen at a provider could fold into an admin's.
ASCII_CASE = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def name_key(name: str) -> str:
    return name.translate(ASCII_CASE)


def is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


LOOPBACK = is_loopback(HOST)
OIDC_ISSUER = os.environ.get("OIDC_ISSUER", "").rstrip("/")
OIDC_CLIENT_ID = os.environ.get("OIDC_CLIENT_ID", "")
OIDC_CLIENT_SECRET = os.environ.get("OIDC_CLIENT_SECRET", "")
OIDC_USER_CLAIM = os.environ.get("OIDC_USER_CLAIM", "email")
OIDC = bool(OIDC_ISSUER or OIDC_CLIENT_ID or OIDC_CLIENT_SECRET)
if OIDC and not (OIDC_ISSUER and OIDC_CLIENT_ID and OIDC_CLIENT_SECRET):
    fail("OpenID Connect needs all three of OIDC_ISSUER, OIDC_CLIENT_ID and OIDC_CLIENT_SECRET")
if OIDC and urlsplit(OIDC_ISSUER).scheme != "https" and not is_loopback(urlsplit(OIDC_ISSUER).hostname or ""):
    fail("OIDC_ISSUER must be an https:// address (http:// only on this machine, for a test provider)")
try:  # strict: a typo such as 10.0.0.5/8 or x/0 must not quietly trust a whole network, or every machine
    TRUSTED_PROXIES = tuple(ipaddress.ip_network(entry) for entry in listed("TRUSTED_PROXIES"))
except ValueError:
    fail("TRUSTED_PROXIES must list addresses or networks, such as 127.0.0.1 or 10.0.0.0/8")
if any(network.prefixlen == 0 for network in TRUSTED_PROXIES):
    fail("TRUSTED_PROXIES must not trust every address (/0): list the proxy's own address")
PROXY_USER_HEADER = os.environ.get("PROXY_USER_HEADER", "").strip().lower()
PROXY = bool(TRUSTED_PROXIES or PROXY_USER_HEADER)
if PROXY and not (TRUSTED_PROXIES and PROXY_USER_HEADER):
    fail("a signing-in proxy needs TRUSTED_PROXIES (its addresses) and PROXY_USER_HEADER (the header naming the user)")
ADMINS = frozenset(name_key(name) for name in listed("ADMINS"))
ALLOWED_USERS = frozenset(name_key(name) for name in listed("ALLOWED_USERS"))
if (OIDC or PROXY) and not (ALLOWED_USERS or ADMINS):
    fail("say who may sign in: ALLOWED_USERS=alice@example.com,@example.com (or * for anyone your sign-in accepts)")
PUBLIC_URL = os.environ.get("PUBLIC_URL", "").rstrip("/")
if PUBLIC_URL and (urlsplit(PUBLIC_URL).scheme not in ("http", "https") or not urlsplit(PUBLIC_URL).hostname):
    fail("PUBLIC_URL must be the address people open, such as https://tools.example.com")
SECURE_COOKIES = PUBLIC_URL.startswith("https://")  # the browser then sends the session cookie over https only
