"""The files a result offers for download: each under a name of its own in the run's folder (unique), readable by
this user only (owner_only), a returned file copied in and a returned folder zipped, within caps. Runs where a
result is made (see results.py), and in a run's child for its long log lines.
"""
from __future__ import annotations

import html
import io
import os
import re
from collections.abc import Callable
from pathlib import Path

from .common import size_text, text_html


def owner_only(path: str, flags: int) -> int:
    """open()'s opener for every file a result is written to: readable by this user only, whatever the umask (a
    run's child sets its own, but a tool may change it, and record() renders in a notebook's process)."""
    return os.open(path, flags, 0o600)


def unique(folder: Path, name: str) -> Path:
    """A path in the folder under that name, or name-1, name-2… when taken. Names keep to safe characters."""
    stem, suffix = os.path.splitext(re.sub(r"[^\w.-]", "_", name).lstrip(".") or "file")
    path, number = folder / f"{stem}{suffix}", 0
    while path.exists():
        number += 1
        path = folder / f"{stem}-{number}{suffix}"
    return path


def link_to(path: Path, download_url: Callable[[str], str]) -> str:
    return f'<a href="{html.escape(download_url(path.name))}" download>{html.escape(path.name)}</a>'


MAX_ZIP = 2**30  # bytes of a returned folder zipped, or of a returned file copied, at most; the rest stays put
MAX_ZIP_FILES = 100_000  # files of a returned folder zipped at most


def path_result(path: Path, outputs: Path, download_url: Callable[[str], str]) -> str:
    """A download link; a file elsewhere is copied into outputs first (downloads come only from there), readable by
    this user only whatever its own mode; a folder is zipped (zip_result)."""
    path = (outputs / path).resolve()  # relative to the cwd the tool ran in, which is outputs
    if path.is_dir():
        return zip_result(path, outputs, download_url)
    if not path.is_file():
        return text_html(f"{path} (no such file)")
    if path.parent != outputs or path.name.startswith("."):
        if (size := path.stat().st_size) > MAX_ZIP:
            return text_html(f"{path} is {size_text(size)}, more than the {size_text(MAX_ZIP)} a download is "
                             "copied for; it stays where it is.")
        copy = unique(outputs, path.name)
        with open(path, "rb") as source, open(copy, "xb", opener=owner_only) as target:
            copy_bytes(source, target, size)
        path = copy
    return link_to(path, download_url)


def zip_result(folder: Path, outputs: Path, download_url: Callable[[str], str]) -> str:
    """A download link to the folder zipped into outputs, with a line saying where a zip past MAX_ZIP bytes or
    MAX_ZIP_FILES files stopped. A folder that holds outputs (`.`, `..`, `/`) is refused with a line: the zip,
    written inside it, would take itself in for as long as it grows."""
    if outputs.is_relative_to(folder):
        return text_html(f"{folder} is not zipped: it holds this run's own folder, and so the zip itself. Return "
                         "a folder inside it instead.")
    zipped = unique(outputs, f"{folder.name}.zip")
    stopped = zip_folder(folder, zipped)
    if stopped is None:
        return link_to(zipped, download_url)
    return f"{link_to(zipped, download_url)}<p>" + text_html(
        f"The zip stops at {size_text(MAX_ZIP)} or {MAX_ZIP_FILES:,} files: {stopped} and the files after it "
        f"are left out. The whole folder is {folder}") + "</p>"


def zip_folder(folder: Path, zipped: Path) -> str | None:
    """Zip the folder's files into `zipped`, in name order, up to MAX_ZIP bytes and MAX_ZIP_FILES files; the first
    file left out (relative to the folder), or None. Links are left out: one may point anywhere, or back up the
    folder, and os.walk does not follow them."""
    import zipfile

    room, files = MAX_ZIP, MAX_ZIP_FILES
    with open(zipped, "xb", opener=owner_only) as file, zipfile.ZipFile(file, "w", zipfile.ZIP_DEFLATED) as archive:
        for top, folders, names in os.walk(folder):
            folders.sort()
            for path in (Path(top, name) for name in sorted(names)):
                if path.is_symlink() or not path.is_file():
                    continue
                inside = str(path.relative_to(folder))
                if (size := path.stat().st_size) > room or not files:
                    return inside
                room, files = room - size, files - 1
                entry = zipfile.ZipInfo.from_file(path, inside)
                entry.compress_type = zipfile.ZIP_DEFLATED
                with open(path, "rb") as source, archive.open(entry, "w") as target:
                    copy_bytes(source, target, size)
    return None


def copy_bytes(source: io.BufferedIOBase, target, size: int) -> None:
    """Copy `size` bytes at most: a file that something keeps writing to is taken as it was when it was looked at."""
    while size > 0 and (chunk := source.read(min(size, 2**20))):
        target.write(chunk)
        size -= len(chunk)
