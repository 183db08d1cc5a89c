"""Botify's export as a tool: every analysis of a project, written to a CSV file."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from settings import DATA
from tools import progress
from tools._botify import (
    ANALYSIS_COLUMNS,
    NOT_CONNECTED,
    BotifyApi,
    BotifyError,
    PartialFile,
    analysis_row,
    csv_writer,
    export_name,
    read_token,
)

# The token the Botify card saved.
TOKEN_FILE = DATA / "botify_token"


def botify_export(project: str, report=progress) -> Path:
    """Export every analysis of a Botify project to a CSV file; connect a token on the Botify card first.

    The file lands in the current folder (in the app, the run's own folder), readable by you only, every cell
    quoted and formula-like text disarmed, so a spreadsheet shows it and never runs it.

    Args:
        project: The project's slug, as in its Botify URL; the Botify card's project list fills it in.
    """
    token = read_token(TOKEN_FILE)
    if not token:
        raise BotifyError(NOT_CONNECTED)
    done = total = 0
    with BotifyApi(token, on_retry=lambda line: report(done, total, line)) as api:
        username = api.username()
        report(done, total, f"Signed in to Botify as {username}")
        listing = f"analyses/{quote(username, safe='')}/{quote(project, safe='')}/light"
        with PartialFile(Path.cwd() / export_name(project, datetime.now())) as partial:
            writer = csv_writer(partial.file, ANALYSIS_COLUMNS)
            for page in api.pages(listing):
                writer.writerows([analysis_row(analysis) for analysis in page["results"]])
                done += len(page["results"])
                total = max(page.get("count") or 0, done)
                report(done, total, f"Fetched {done} of {total} analyses")
            return partial.publish_unique()
