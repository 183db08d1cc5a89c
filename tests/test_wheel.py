"""flakewright installed the way people install a CLI: from a wheel (pip, pipx, uv tool), no checkout around."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import yaml

import pytest

from helpers import ANSWERS, GIT_ENV, REPO, commit_all, git

PUBLIC_SRC = "https://github.com/flakewright/flakewright.git"  # when the build has no https origin to record
ORIGIN = "https://builder:wheel-token-q7z@example.invalid/team/flakewright.git"  # the builder's clone, a token in its URL
RECORDED = "https://example.invalid/team/flakewright.git"  # what a render records: the origin, token dropped


def build_wheel(source: Path, wheels: Path, *, via_sdist: bool, env: dict[str, str]) -> None:
    """``pip wheel`` of ``source`` (a checkout), or of the sdist built from it, as ``python -m build`` and
    ``uv build`` do (the sdist's folder has no .git)."""
    if via_sdist:
        dist = source.parent / "sdist"
        subprocess.run([sys.executable, "-c", f"import setuptools.build_meta as b; b.build_sdist({str(dist)!r})"],
                       cwd=source, check=True, capture_output=True, timeout=300, env=env)
        (tarball,) = dist.glob("*.tar.gz")
        with tarfile.open(tarball) as archive:
            archive.extractall(dist, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        (source,) = (p for p in dist.iterdir() if p.is_dir())
        assert not (source / ".git").exists()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(source), "-w", str(wheels)],
                   check=True, capture_output=True, timeout=300, env=env)


@pytest.mark.parametrize("origin, via_sdist, recorded", [
    (None, False, PUBLIC_SRC),  # a copy of the checkout without git: the project's public URL
    (ORIGIN, False, RECORDED),  # a clone: its origin, recorded at build time
    (ORIGIN, True, RECORDED),  # a wheel built from that clone's sdist
], ids=["no-git", "origin", "origin-via-sdist"])
def test_a_wheel_install_renders_and_updates_recording_the_public_source(
    tmp_path: Path, origin: str | None, via_sdist: bool, recorded: str
) -> None:
    source = tmp_path / "source"  # a copy, so the build leaves nothing in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "copier.yml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(REPO / "template", source / "template", ignore=ignore)
    shutil.copytree(REPO / "generator", source / "generator", ignore=ignore)
    env = {**{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FLAKEWRIGHT_TEMPLATE")}, **GIT_ENV}
    if origin:
        git(source, "init", "-q")
        git(source, "remote", "add", "origin", origin)
    wheels = tmp_path / "wheels"
    build_wheel(source, wheels, via_sdist=via_sdist, env=env)
    (wheel,) = wheels.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert not any(b"wheel-token-q7z" in archive.read(name) for name in archive.namelist())  # no token travels
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    # --force-reinstall: the editable install of this checkout, seen through the system site-packages, is the
    # same version
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", wheel],
                   check=True, capture_output=True, timeout=300, env=env)
    where = subprocess.run([python, "-c", "import flakewright; print(flakewright.__file__)"],
                           capture_output=True, text=True, env=env, check=True)
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout  # the wheel, not this checkout

    def flakewright(*args: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run([venv / "bin" / "flakewright", *map(str, args)], capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=300)

    dest = tmp_path / "app"
    made = flakewright("new", "darwinix", dest, "--defaults")
    assert made.returncode == 0, made.stdout + made.stderr
    answers = yaml.safe_load((dest / ANSWERS).read_text())
    version = subprocess.run([python, "-c", "import flakewright; print(flakewright.__version__)"],
                             capture_output=True, text=True, env=env, check=True).stdout.strip()
    assert answers["_src_path"] == recorded and answers["_commit"] == f"v{version}", answers
    git(dest, "init", "-q")
    commit_all(dest, "render")

    updated = flakewright("update", dest, "-d", "app_title=Renamed Lab")  # the URL is out of reach here
    assert updated.returncode == 0, updated.stdout + updated.stderr
    answers = yaml.safe_load((dest / ANSWERS).read_text())
    assert answers["_src_path"] == recorded and answers["_commit"] == f"v{version}", answers
    assert answers["app_title"] == "Renamed Lab"
    assert "Renamed Lab" in (dest / "README.md").read_text()
    checked = flakewright("check", dest)
    assert checked.returncode == 0, checked.stdout + checked.stderr
