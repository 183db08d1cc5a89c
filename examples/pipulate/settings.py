"""This app's settings: what `flakewright new` was answered, and what the environment overrides.

The one file here the template renders from your answers; everything under core/ is plain Python that reads it.
"""
import os
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent
STATIC = APP_DIR / "static"
TOOLS_DIR = APP_DIR / "tools"
ADDONS_DIR = APP_DIR / "addons"
DATA = APP_DIR / "data"
DB_FILE = DATA / "pipulate.db"

TITLE = "Pipulate"
HOST = os.environ.get("HOST", "127.0.0.1")
PORT = int(os.environ.get("PORT", "5001"))
ENV_PREFIX = "PIPULATE"
DEV = os.environ.get(f"{ENV_PREFIX}_ENV", "dev") != "prod"
JUPYTER = True  # notebooks under tools/ are tools only with Jupyter in the venv
BUSY_TIMEOUT = float(os.environ.get(f"{ENV_PREFIX}_BUSY_TIMEOUT", "5"))  # seconds a write waits for another program
