"""Profiles: each browser works in one, and everything a user makes (tasks, runs, an add-on's rows) belongs to
one. Deleting a profile deletes all of it."""
import json
import shutil
from pathlib import Path

from fasthtml.common import first

from core.db import OUTPUTS, SCHEMA, UPLOADS, Profile, by_id, db, profiles, store, transaction

MAX_TEXT = 500
NO_NAME = "Give the profile a name."


def current_profile(sess: dict) -> Profile:
    """This browser's profile; a new browser gets the last one chosen anywhere, so the choice survives restarts."""
    if chosen := profiles.get(sess.get("profile_id", 0), default=None):
        return chosen
    chosen = profiles.get(store.get("profile_id", 0), default=None)
    chosen = chosen or first(profiles(order_by="id", limit=1)) or profiles.insert(name="Default")
    sess["profile_id"] = chosen.id
    return chosen


def choose_profile(sess: dict, profile_id: int) -> None:
    sess["profile_id"] = store["profile_id"] = profile_id


def missing_profile(profile_id: int) -> str:
    return "" if by_id(profiles, profile_id) else "That profile no longer exists."


def delete_profile(profile_id: int) -> str:
    """Delete the profile with everything it holds: the rows of every table with a profile_id column (its tasks,
    an add-on's rows), its tasks' logs, and the runs' output folders and uploads. Refused for the last profile,
    and while one of its tasks runs. Why not, or ''."""
    with transaction():
        if error := missing_profile(profile_id):
            return error
        if profiles.count == 1:
            return "Keep at least one profile: create another first."
        if db.execute("SELECT 1 FROM tasks WHERE profile_id = ? AND status = 'running'", [profile_id]).fetchone():
            return "A task of this profile is running: cancel it or let it end, then delete the profile."
        runs = db.execute("SELECT id, params FROM tasks WHERE profile_id = ?", [profile_id]).fetchall()
        db.execute("DELETE FROM task_lines WHERE task_id IN (SELECT id FROM tasks WHERE profile_id = ?)", [profile_id])
        for name in (name for name, _, columns in SCHEMA if "profile_id" in columns):
            db.execute(f'DELETE FROM "{name}" WHERE profile_id = ?', [profile_id])
        db.execute("DELETE FROM profiles WHERE id = ?", [profile_id])
    for task_id, params in runs:  # after the rows: a file left by a crash here is never shown to anyone
        shutil.rmtree(OUTPUTS / str(task_id), ignore_errors=True)
        for path in uploads_named(json.loads(params or "{}")):
            path.unlink(missing_ok=True)
    return ""


def uploads_named(params: dict) -> list[Path]:
    """The saved answers that are uploads: paths straight inside data/uploads/, and nothing else."""
    return [Path(value) for value in params.values() if isinstance(value, str) and is_upload(value)]


def is_upload(text: str) -> bool:
    path = Path(text)
    try:
        return path.parent == UPLOADS and not path.name.startswith(".") and path.is_file() and not path.is_symlink()
    except (OSError, ValueError):  # a name too long for the file system, or holding a NUL
        return False


def text_error(text: str, *, empty: str) -> str:
    """Why a name or title (of a profile, of an add-on's row) can't be saved, or ''."""
    if not text.strip():
        return empty
    if len(text) > MAX_TEXT:
        return f"Keep it to {MAX_TEXT} characters ({len(text)} now)."
