"""The wheel carries the template: copier.yml and template/ go into the package as flakewright/_template/.

It also records where it was built from: the https URL of the checkout's ``origin`` remote (credentials
dropped), in flakewright/_source_url.txt, which a render from the wheel records as its ``_src_path``
(see _bundle.py). An sdist carries that URL as SOURCE_URL.txt, so a wheel built from the sdist (``python -m
build``, ``uv build``) records it too. Without such a remote (no git, an ssh or local-path origin, a folder that
is not the checkout's top) nothing is recorded and the wheel falls back to the project's public URL. Reading it
is one local git command: no network.

Everything else is in pyproject.toml. An editable install reads the checkout itself, so nothing is copied then.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = Path(__file__).resolve().parent
SDIST_SOURCE = "SOURCE_URL.txt"  # in an sdist: the URL its checkout recorded
RECORDED = "_source_url.txt"  # in the package


def public_url(url: str) -> str | None:
    """``url`` as anyone can fetch it: an https URL without user or password (a token, say); else None."""
    found = re.fullmatch(r"https://(?:[^@/\s]*@)?([A-Za-z0-9.-]+(?::\d+)?/[^\s?#@]+)", url.strip())
    return f"https://{found.group(1)}" if found else None


def origin_url() -> str | None:
    """The public URL of this checkout's origin remote; None when git, the remote or the checkout is missing."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(HERE), *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != HERE:  # not a checkout, or a folder inside another project's
        return None
    url = git("remote", "get-url", "origin")
    return public_url(url) if url else None


def recorded_url() -> str | None:
    """The URL to record: the checkout's origin, or the one an sdist carries."""
    carried = HERE / SDIST_SOURCE
    return origin_url() or (public_url(carried.read_text(encoding="utf-8")) if carried.is_file() else None)


class BuildWithTemplate(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        package = Path(self.build_lib) / "flakewright"
        target = package / "_template"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        shutil.copy2(HERE / "copier.yml", target / "copier.yml")
        shutil.copytree(HERE / "template", target / "template", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        (package / RECORDED).unlink(missing_ok=True)
        if url := recorded_url():
            (package / RECORDED).write_text(url + "\n", encoding="utf-8")


class SdistWithSource(sdist):
    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, files)
        carried = Path(base_dir) / SDIST_SOURCE
        carried.unlink(missing_ok=True)  # a hard link to the checkout's copy, if it has one
        if url := recorded_url():
            carried.write_text(url + "\n", encoding="utf-8")


setup(cmdclass={"build_py": BuildWithTemplate, "sdist": SdistWithSource})
