"""The template a wheel carries (flakewright/_template/, put there by setup.py), and what a render from it records.

A wheel install (`pip install <checkout>`, pipx, uv tool) has no checkout to
point at, and its site-packages copy is no place to record: it moves or goes
with the next upgrade. A repo rendered from it records the template's git URL
(the https origin of the checkout the wheel was built from, which setup.py
records at build time, else the project's public URL) and the release tag of
this flakewright instead (as examples/ do), so
`update` and `check` can reach the template a year later. When that URL cannot
be reached (offline, a mirror) and the repo records this installation's own
release, the wheel's copy stands in for it: a throwaway git repo tagged with
the release, which git fetches in the URL's place for that one run.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory

from ._version import __version__

DEFAULT_SRC = "https://github.com/flakewright/flakewright.git"  # the project's public URL


def _recorded_src() -> str:
    """The https URL of the checkout this wheel was built from (setup.py writes it), else the project's."""
    try:
        recorded = (Path(__file__).resolve().parent / "_source_url.txt").read_text(encoding="utf-8").strip()
    except OSError:  # an editable install, or a build without an https origin
        return DEFAULT_SRC
    return recorded or DEFAULT_SRC


PUBLIC_SRC = _recorded_src()
RELEASE_TAG = f"v{__version__}"
_REACH_TIMEOUT = 20  # seconds for `git ls-remote` to answer


def bundled() -> Path | None:
    """The template inside this installation, or None (an editable install or a checkout has none)."""
    here = Path(__file__).resolve().parent / "_template"
    return here if (here / "copier.yml").is_file() and (here / "template").is_dir() else None


def is_bundled(src: str) -> bool:
    found = bundled()
    return found is not None and Path(src).expanduser().resolve() == found


def record_public_source(answers_file: Path) -> None:
    """Make a render from the wheel's copy record the public URL and this release, never a site-packages path."""
    lines = [line for line in answers_file.read_text(encoding="utf-8").splitlines() if not line.startswith("_commit:")]
    out = []
    for line in lines:
        if line.startswith("_src_path:"):
            out += [f"_commit: {RELEASE_TAG}", f"_src_path: {PUBLIC_SRC}"]
        else:
            out.append(line)
    answers_file.write_text("\n".join(out) + "\n", encoding="utf-8")


@contextmanager
def offline_stand_in(*, recorded: str, commit: str, template: str | None) -> Iterator[str | None]:
    """``template``, or the wheel's copy as a tagged git repo when the repo records this release at the public
    URL and the URL does not answer; else None (copier fetches the recorded source)."""
    source = bundled()
    if template or source is None or recorded != PUBLIC_SRC or commit != RELEASE_TAG or _reachable(recorded):
        yield template
        return
    with TemporaryDirectory(prefix="flakewright-bundled-") as tmp:
        repo = Path(tmp) / "flakewright"
        shutil.copytree(source, repo)
        env = ["-c", "user.name=flakewright", "-c", "user.email=flakewright@localhost", "-c", "commit.gpgsign=false"]
        for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", RELEASE_TAG], ["tag", RELEASE_TAG]):
            subprocess.run(["git", *env, *args], cwd=repo, capture_output=True, check=True)
        yield str(repo)


def _reachable(url: str) -> bool:
    try:
        done = subprocess.run(
            ["git", "ls-remote", "--tags", "--", url], capture_output=True, timeout=_REACH_TIMEOUT, check=False,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0
