"""`pytest --postgres`: every test against a real PostgreSQL that this run starts, each in a database of its own.

The server is Debian's, or any other whose initdb and pg_ctl are on PATH or in /usr/lib/postgresql/<version>/bin;
it listens on a socket in a fresh folder only (no TCP port to collide with), and is thrown away at the end. As
root (PostgreSQL refuses to run as root) it runs as the `postgres` user. The app reaches it the way a team server
does, through DATABASE_URL, which the test's servers, tool runs and notebooks inherit. Tests of SQLite's own file
and locks carry the `sqlite` mark and are left out of such a run; tests that need PostgreSQL itself (moving
an SQLite data folder into it) carry `postgres` and run only in it.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from itertools import count
from pathlib import Path

import pytest

MARKS = ["sqlite: a test of SQLite's own file and locks, left out of a --postgres run",
         "postgres: a test that needs the run's PostgreSQL, left out of a run without --postgres"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--postgres", action="store_true",
                     help="run every test against a PostgreSQL this run starts (see tests/postgres.py)")


def pytest_configure(config: pytest.Config) -> None:
    for mark in MARKS:
        config.addinivalue_line("markers", mark)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    other = "sqlite" if config.getoption("--postgres") else "postgres"
    config.hook.pytest_deselected(items=[item for item in items if item.get_closest_marker(other)])
    items[:] = [item for item in items if not item.get_closest_marker(other)]


def postgres_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        pytest.fail(f"--postgres needs PostgreSQL's {name}: apt-get install postgresql (or put its bin/ on PATH)")
    return found


class Postgres:
    """A throwaway PostgreSQL cluster serving on a Unix socket in its own folder."""

    def __init__(self):
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        # As root, in /tmp itself: TMPDIR may be a folder of root's that the postgres user cannot enter.
        self.folder = Path(tempfile.mkdtemp(prefix="app-postgres-", dir="/tmp" if self.as_user else None))
        if self.as_user:
            shutil.chown(self.folder, pwd.getpwnam("postgres").pw_uid)
        self.data, self.names = self.folder / "data", count(1)
        self.run(postgres_bin("initdb"), "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                 "--no-sync")
        # Durability is not what these tests are about: without fsync a cluster starts and writes many times faster.
        self.run(postgres_bin("pg_ctl"), "-D", self.data, "-w", "-l", self.folder / "server.log", "start", "-o",
                 f"-k {self.folder} -c listen_addresses='' -c fsync=off -c synchronous_commit=off "
                 "-c full_page_writes=off -c max_connections=300")

    def run(self, *command) -> None:
        subprocess.run([*self.as_user, *map(str, command)], check=True, capture_output=True, cwd=self.folder)

    def url(self, name: str = "postgres") -> str:
        return f"postgresql://postgres@/{name}?host={self.folder}"

    def new_database(self) -> str:
        import psycopg

        name = f"test_{next(self.names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        subprocess.run([*self.as_user, postgres_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres(request: pytest.FixtureRequest):
    """The run's PostgreSQL, or None without --postgres."""
    if not request.config.getoption("--postgres"):
        yield None
        return
    cluster = Postgres()
    yield cluster
    cluster.stop()


@pytest.fixture(autouse=True)
def database_url(postgres, monkeypatch: pytest.MonkeyPatch) -> str:
    """The test's DATABASE_URL: a fresh PostgreSQL database under --postgres, else empty (SQLite in data/)."""
    url = postgres.new_database() if postgres else ""
    monkeypatch.setenv("DATABASE_URL", url)
    return url
