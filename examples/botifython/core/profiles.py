"""Profiles: each browser works in one, and everything a user makes (tasks, runs, an add-on's rows) belongs to
one. Deleting a profile deletes all of it. With sign-in on, each profile has an owner: a user sees and works in
their own only (admins in all), so every room that reaches its rows through current_profile() is theirs alone."""
import json
import shutil
from pathlib import Path

from fasthtml.common import first

from core.auth import current_user, is_admin
from core.db import OUTPUTS, SCHEMA, UPLOADS, Profile, by_id, db, profiles, store, transaction

MAX_TEXT = 500
NO_NAME = "Give the profile a name."
GONE = "That profile no longer exists."


def may_use(user: str | None, profile: Profile) -> bool:
    """Whether this user (None: sign-in is off, one person) may see and change the profile."""
    return user is None or profile.owner == user or is_admin(user)


def profiles_of(user: str | None) -> list[Profile]:
    """The profiles the user may choose among, by name."""
    if user is None or is_admin(user):
        return profiles(order_by="name")
    return profiles(where="owner = ?", where_args=[user], order_by="name")


def last_chosen(user: str | None) -> str:
    """The store's key for the profile this user chose last: one per user, so that no choice leaks to another."""
    return "profile_id" if user is None else f"profile_id:{user}"


def current_profile(sess: dict) -> Profile:
    """This browser's profile; a new browser gets the last one its user chose, so the choice survives restarts,
    else the user's first, else a new "Default" of their own. Never a profile the user may not use."""
    user = current_user(sess)
    if (chosen := by_id(profiles, sess.get("profile_id", 0))) and may_use(user, chosen):
        return chosen
    if not ((chosen := by_id(profiles, store.get(last_chosen(user), 0))) and may_use(user, chosen)):
        own = dict(where="owner = ?", where_args=[user]) if user else {}
        chosen = first(profiles(**own, order_by="id", limit=1)) or profiles.insert(name="Default", owner=user)
    sess["profile_id"] = chosen.id
    return chosen


def choose_profile(sess: dict, profile_id: int) -> None:
    sess["profile_id"] = store[last_chosen(current_user(sess))] = profile_id


def missing_profile(sess: dict, profile_id: int) -> str:
    """Why this browser's user cannot have the profile (another user's is as unknown as a missing one), or ''."""
    return "" if (found := by_id(profiles, profile_id)) and may_use(current_user(sess), found) else GONE


def delete_profile(sess: dict, profile_id: int) -> str:
    """Delete the profile with everything it holds: the rows of every table with a profile_id column (its tasks,
    an add-on's rows), its tasks' logs, and the runs' output folders and uploads. Refused for its owner's last
    profile, and while one of its tasks runs. Why not, or ''."""
    with transaction():
        if error := missing_profile(sess, profile_id):
            return error
        if current_user(sess) is None:  # every profile is the one person's
            left = profiles.count
        else:  # each owner keeps one of their own
            left = db.execute("SELECT count(*) FROM profiles WHERE coalesce(owner, '') = ?",
                              [by_id(profiles, profile_id).owner or ""]).fetchone()[0]
        if left == 1:
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
