"""This app's settings: what `flakewright new` was answered, and what the environment overrides.

The one file here the template renders from your answers; everything under core/ is plain Python that reads it,
and so do tools/ and addons/: every path the app writes under comes from DATA below, never from a file's own
place, because the code may live where nothing can be written (a Nix store path under `nix run`).

Settings come from the environment: DATA_DIR, HOST, PORT, PIPULATE_ENV, PIPULATE_BUSY_TIMEOUT.
Secrets come from an env file that is never in the repo: ENV_FILE, else DATA_DIR/.env (data/.env in a
checkout, which git ignores). It holds NAME=value lines, must be readable by you only (chmod 600), and fills in
only what the environment does not already set. Nothing here prints a value read from it.
"""
import os
import sys
from pathlib import Path

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
DB_FILE = DATA / "pipulate.db"

TITLE = "Pipulate"
HOST = os.environ.get("HOST", "127.0.0.1")
try:
    PORT = int(os.environ.get("PORT", "5001"))
except ValueError:
    fail(f"PORT must be a number, such as 5001, not {os.environ['PORT']!r}")
ENV_PREFIX = "PIPULATE"
DEV = os.environ.get(f"{ENV_PREFIX}_ENV", "dev") != "prod"
JUPYTER = True  # notebooks under tools/ are tools only with Jupyter in the venv
BUSY_TIMEOUT = float(os.environ.get(f"{ENV_PREFIX}_BUSY_TIMEOUT", "5"))  # seconds a write waits for another program
