"""settings.py, the one place settings come from: the environment (DATA_DIR, HOST, PORT), secrets from an env file
that is never in the repo, and every path the app writes under, taken from DATA_DIR and never from the code's own
folder (under `nix run` that folder is in the read-only Nix store)."""
from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import ENV_PREFIX, open_page

SIGNIN = ("OIDC_ISSUER", "OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET", "OIDC_USER_CLAIM", "TRUSTED_PROXIES",
          "PROXY_USER_HEADER", "ALLOWED_USERS", "ADMINS", "PUBLIC_URL")
OURS = ("DATA_DIR", "ENV_FILE", "HOST", "PORT", f"{ENV_PREFIX}_ENV", "SECRET_TOKEN", "OTHER", *SIGNIN)
PATHS = """
import importlib, json, pathlib, settings, core.db
seen = {"DATA": settings.DATA, "DB_FILE": settings.DB_FILE, "ENV_FILE": settings.ENV_FILE,
        "UPLOADS": core.db.UPLOADS, "OUTPUTS": core.db.OUTPUTS}
for folder in ("tools", "addons"):  # every path a tool or an add-on keeps at module level, such as TOKEN_FILE
    for source in sorted((settings.APP_DIR / folder).glob("[!_]*.py")):
        module = importlib.import_module(f"{folder}.{source.stem}")
        seen.update({f"{folder}.{source.stem}.{name}": value for name, value in vars(module).items()
                     if name.isupper() and isinstance(value, pathlib.Path)})
print(json.dumps({name: str(path) for name, path in seen.items()}))
"""
SETTINGS = "import json, settings; print(json.dumps({'HOST': settings.HOST, 'PORT': settings.PORT, " \
           "'DATA': str(settings.DATA)}))"


def python(app_dir: Path, code: str, *, cwd: Path | None = None, check: bool = True,
           **env: str) -> subprocess.CompletedProcess[str]:
    """`code` run in a fresh interpreter importing the app copy, with none of the caller's settings but `env`."""
    clean = {name: value for name, value in os.environ.items() if name not in OURS}
    return subprocess.run([sys.executable, "-B", "-c", f"import sys; sys.path.insert(0, {str(app_dir)!r})\n{code}"],
                          cwd=cwd or app_dir, env={**clean, f"{ENV_PREFIX}_ENV": "prod", **env},
                          capture_output=True, text=True, check=check, timeout=120)


def paths(app_dir: Path, **env: str) -> dict[str, Path]:
    return {name: Path(path) for name, path in json.loads(python(app_dir, PATHS, **env).stdout).items()}


def test_a_checkout_keeps_its_data_beside_the_code(app_dir):
    seen = paths(app_dir)
    assert seen["DATA"] == app_dir / "data" and seen["ENV_FILE"] == app_dir / "data" / ".env"
    assert seen["DB_FILE"] == app_dir / "data" / "pipulate.db"
    assert seen["OUTPUTS"] == app_dir / "data" / "outputs"
    assert json.loads(python(app_dir, SETTINGS).stdout) == {"HOST": "127.0.0.1", "PORT": 5001,
                                                           "DATA": str(app_dir / "data")}


def test_every_path_the_app_writes_under_follows_data_dir(app_dir, tmp_path):
    """Relative is taken from where the app starts, and handed on absolute: a tool's run starts elsewhere."""
    (tmp_path / "start").mkdir()
    seen = paths(app_dir, cwd=tmp_path / "start", DATA_DIR="../state")
    data = tmp_path / "state"
    assert {name: path for name, path in seen.items() if not path.is_relative_to(data)} == {}
    assert not data.exists(), "importing made the data folder"
    handed_on = "import json, os, settings; print(json.dumps(os.environ['DATA_DIR']))"
    assert json.loads(python(app_dir, handed_on, cwd=tmp_path / "start", DATA_DIR="../state").stdout) == str(data)


def test_a_data_dir_whose_parents_are_missing_is_made_owner_only(app_dir, tmp_path):
    data = tmp_path / "home" / ".local" / "share" / "pipulate"
    python(app_dir, "from core.db import make_data_folders; make_data_folders()", DATA_DIR=str(data))
    for folder in (data, data / "uploads", data / "outputs"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


def test_host_and_port_come_from_the_environment_or_the_env_file(app_dir, tmp_path):
    env_file = tmp_path / "team.env"
    env_file.write_text("# the team's server\nexport HOST=0.0.0.0\nPORT='5123'\n")
    env_file.chmod(0o600)
    assert json.loads(python(app_dir, SETTINGS, ENV_FILE=str(env_file)).stdout)["HOST"] == "0.0.0.0"
    assert json.loads(python(app_dir, SETTINGS, ENV_FILE=str(env_file)).stdout)["PORT"] == 5123
    # The environment wins over the file.
    assert json.loads(python(app_dir, SETTINGS, ENV_FILE=str(env_file), PORT="5200").stdout)["PORT"] == 5200
    refused = python(app_dir, SETTINGS, check=False, PORT="eighty")
    assert refused.returncode == 1 and refused.stderr.strip().splitlines()[-1].startswith("settings: PORT must be")


def test_secrets_come_from_the_data_folders_env_file_into_the_environment_tools_inherit(app_dir, tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / ".env").write_text('SECRET_TOKEN="s3cr3t value"\n\nOTHER=a=b\n')
    (data / ".env").chmod(0o600)
    code = "import json, os, settings; print(json.dumps([os.environ['SECRET_TOKEN'], os.environ['OTHER']]))"
    assert json.loads(python(app_dir, code, DATA_DIR=str(data)).stdout) == ["s3cr3t value", "a=b"]
    assert json.loads(python(app_dir, code, DATA_DIR=str(data), SECRET_TOKEN="mine").stdout) == ["mine", "a=b"]
    # A checkout's file is data/.env, which git ignores: never in the repo.
    assert "data/" in (Path(__file__).resolve().parent.parent / ".gitignore").read_text().split()


def test_an_env_file_others_can_read_is_refused_saying_how_to_fix_it(app_dir, tmp_path):
    env_file = tmp_path / "app.env"
    env_file.write_text("SECRET_TOKEN=s3cr3t\n")
    env_file.chmod(0o640)
    refused = python(app_dir, SETTINGS, check=False, ENV_FILE=str(env_file))
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1] == \
        f"settings: {env_file} holds secrets but others may read it: chmod 600 {env_file}"


def test_a_bad_env_file_line_is_named_by_number_and_never_shown(app_dir, tmp_path):
    env_file = tmp_path / "app.env"
    env_file.write_text("OK=1\nhunter2-is-my-password\n")
    env_file.chmod(0o600)
    refused = python(app_dir, SETTINGS, check=False, ENV_FILE=str(env_file))
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1] == f"settings: {env_file} line 2 is not NAME=value"
    assert "hunter2" not in refused.stdout + refused.stderr


def test_a_missing_env_file_is_no_env_file(app_dir, tmp_path):
    assert python(app_dir, SETTINGS, ENV_FILE=str(tmp_path / "none.env")).returncode == 0


SIGNIN_SETTINGS = "import json, settings; print(json.dumps({name: sorted(value) if isinstance(value, frozenset) " \
                  "else value for name in ('LOOPBACK', 'OIDC', 'PROXY', 'OIDC_CLIENT_SECRET', 'ADMINS', " \
                  "'ALLOWED_USERS', 'SECURE_COOKIES') for value in [getattr(settings, name)]}))"


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("127.0.0.2", True), ("localhost", True),
                                            ("::1", True), ("[::1]", True), ("0.0.0.0", False), ("::", False),
                                            ("192.168.1.20", False), ("my-laptop.local", False)])
def test_loopback_is_this_machine_only(app_dir, host, loopback):
    assert json.loads(python(app_dir, SIGNIN_SETTINGS, HOST=host).stdout)["LOOPBACK"] is loopback


def test_sign_in_settings_come_from_the_environment_or_the_env_file(app_dir, tmp_path):
    assert json.loads(python(app_dir, SIGNIN_SETTINGS).stdout) == {
        "LOOPBACK": True, "OIDC": False, "PROXY": False, "OIDC_CLIENT_SECRET": "", "ADMINS": [], "ALLOWED_USERS": [],
        "SECURE_COOKIES": False}
    env_file = tmp_path / "team.env"
    env_file.write_text("OIDC_CLIENT_SECRET=s3cr3t\nADMINS='Alice@Example.com, bob@example.com'\n")
    env_file.chmod(0o600)
    seen = json.loads(python(app_dir, SIGNIN_SETTINGS, ENV_FILE=str(env_file), OIDC_ISSUER="https://id.example.com",
                             OIDC_CLIENT_ID="app", ALLOWED_USERS="@example.com *",
                             PUBLIC_URL="https://tools.example.com/").stdout)
    assert seen == {"LOOPBACK": True, "OIDC": True, "PROXY": False, "OIDC_CLIENT_SECRET": "s3cr3t",
                    "ADMINS": ["alice@example.com", "bob@example.com"], "ALLOWED_USERS": ["*", "@example.com"],
                    "SECURE_COOKIES": True}


OIDC_APP = dict(OIDC_ISSUER="https://id.example.com", OIDC_CLIENT_ID="app", OIDC_CLIENT_SECRET="s3cr3t")


@pytest.mark.parametrize("env, said", [
    (dict(OIDC_ISSUER="https://id.example.com"),
     "OpenID Connect needs all three of OIDC_ISSUER, OIDC_CLIENT_ID and OIDC_CLIENT_SECRET"),
    (dict(OIDC_APP, OIDC_ISSUER="http://id.example.com", ALLOWED_USERS="*"),
     "OIDC_ISSUER must be an https:// address (http:// only on this machine, for a test provider)"),
    (dict(OIDC_APP), "say who may sign in: ALLOWED_USERS=alice@example.com,@example.com (or * for anyone your "
                     "sign-in accepts)"),
    (dict(TRUSTED_PROXIES="10.0.0.0/8"),
     "a signing-in proxy needs TRUSTED_PROXIES (its addresses) and PROXY_USER_HEADER (the header naming the user)"),
    (dict(TRUSTED_PROXIES="proxy.lan", PROXY_USER_HEADER="X-Forwarded-Email"),
     "TRUSTED_PROXIES must list addresses or networks, such as 127.0.0.1 or 10.0.0.0/8"),
    (dict(TRUSTED_PROXIES="10.0.0.5/8", PROXY_USER_HEADER="X-Forwarded-Email"),
     "TRUSTED_PROXIES must list addresses or networks, such as 127.0.0.1 or 10.0.0.0/8"),
    (dict(TRUSTED_PROXIES="127.0.0.1,0.0.0.0/0", PROXY_USER_HEADER="X-Forwarded-Email"),
     "TRUSTED_PROXIES must not trust every address (/0): list the proxy's own address"),
    (dict(TRUSTED_PROXIES="::/0", PROXY_USER_HEADER="X-Forwarded-Email"),
     "TRUSTED_PROXIES must not trust every address (/0): list the proxy's own address"),
    (dict(PUBLIC_URL="tools.example.com"), "PUBLIC_URL must be the address people open, such as "
                                          "https://tools.example.com"),
])
def test_sign_in_settings_that_cannot_work_are_refused_in_one_line(app_dir, env, said):
    refused = python(app_dir, SETTINGS, check=False, **env)
    assert refused.returncode == 1 and refused.stderr.splitlines() == [f"settings: {said}"]
    assert "s3cr3t" not in refused.stderr


WRITER = '''
from pathlib import Path


def write_here(data: Path, report):
    """Copy the upload into the working folder, as a tool writes its results."""
    report(0, 1, "writing")
    Path("copy.txt").write_text(data.read_text())
    return Path("copy.txt")
'''


@pytest.fixture
def data_elsewhere(app_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The app copy with a tool that writes, served from DATA_DIR in a folder whose parent does not exist yet, and
    no bytecode written (as `nix run` starts it: PYTHONDONTWRITEBYTECODE)."""
    (app_dir / "tools" / "writer.py").write_text(textwrap.dedent(WRITER))
    data = tmp_path / "state" / "data"
    monkeypatch.setenv("DATA_DIR", str(data))
    monkeypatch.delenv("ENV_FILE", raising=False)
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    return data


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


def test_serving_and_running_tools_writes_nothing_beside_the_code(data_elsewhere, app_dir, request):
    """The session key, server.lock, the database, uploads, a run's outputs, tool discovery and a notebook's
    record() all land in DATA_DIR: the code's folder is left exactly as it was."""
    before = snapshot(app_dir)
    client, server = request.getfixturevalue("client"), request.getfixturevalue("server")
    headers = open_page(client)
    assert client.get("/tools/write_here").status_code == 200
    started = client.post("/tools/write_here", files={"data": ("in.txt", b"kept")}, headers=headers)
    assert started.status_code == 200, started.text
    task_id = int(started.text.split('id="task-', 1)[1].split('"', 1)[0])
    for _ in range(1200):
        if task_id not in server.tasks.RUNS:
            break
        client.portal.call(asyncio.sleep, 0.05)
    assert (data_elsewhere / "outputs" / str(task_id) / "copy.txt").read_text() == "kept"
    notebook = app_dir.parent / "notebook"
    notebook.mkdir()
    python(app_dir, "from tools import record\nfrom tools.writer import write_here\nfrom pathlib import Path\n"
                    "Path('in.txt').write_text('noted')\nrecord(write_here, data=Path('in.txt'))",
           cwd=notebook, DATA_DIR=str(data_elsewhere))
    assert snapshot(app_dir) == before
    database = [] if os.environ["DATABASE_URL"] else ["pipulate.db"]  # PostgreSQL keeps its own files
    assert {*database, ".sesskey", "server.lock", "uploads", "outputs"} <= {p.name for p in data_elsewhere.iterdir()}
    assert [p.read_bytes() for p in (data_elsewhere / "uploads").iterdir()] == [b"kept"]
    assert sorted(p.name for p in (data_elsewhere / "outputs").iterdir()) == ["1", "2"]  # the app's run, record()'s
    assert stat.S_IMODE(data_elsewhere.stat().st_mode) == 0o700
