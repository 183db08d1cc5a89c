"""A rendered Botifython in Chromium against its own fake Botify API (tests/fake_botify.py).

Connect a token, then export a project's analyses to a CSV (a run of the botify_export tool) and download it
through the page.
"""
from __future__ import annotations

import csv
import re
import shutil
import stat

import pytest
from playwright.sync_api import expect

from .harness import free_port, htmx_idle, load_module, screenshot, start_server

ANALYSES = 10  # four pages of three on the fake; the third page is answered 429 once
RETRY_AFTER = "3"  # seconds the task holds at 6 of 10: the window for the mid-task checks

RECORD_PROGRESS = """() => {
    window.__progress = [];
    const list = document.querySelector("#task-list");
    new MutationObserver(() => {
        for (const bar of list.querySelectorAll("progress")) window.__progress.push(Number(bar.value) / Number(bar.max));
    }).observe(list, {subtree: true, childList: true, attributes: true});
}"""


@pytest.fixture(scope="module")
def project(render, tmp_path_factory):
    return shutil.copytree(render("botifython"), tmp_path_factory.mktemp("botifython") / "app")


@pytest.fixture(scope="module")
def botify(project):
    module = load_module(project / "tests" / "fake_botify.py", "botifython_e2e_fake_botify")
    fake, httpd = module.serve()
    fake.analyses["site-1"] = module.make_analyses("site-1", ANALYSES)
    yield fake, module
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def server(project, botify, tmp_path_factory):
    fake, _ = botify
    env = {
        "BOTIFYTHON_ENV": "prod",
        "BOTIFY_API_BASE": f"{fake.base}/v1",
        "OLLAMA_HOST": f"http://127.0.0.1:{free_port()}",
    }
    running = start_server(project, log=tmp_path_factory.mktemp("logs") / "botifython.log", env=env)
    yield running
    running.stop()


def connect(page, token: str) -> None:
    card = page.locator("#botify")
    card.get_by_label("Botify API token").fill(token)
    card.get_by_role("button", name="Connect", exact=True).or_(card.get_by_role("button", name="Replace token")).click()


def test_connect_export_and_download(context, server, botify, project):
    fake, module = botify
    token_file = project / "data" / "botify_token"
    page = context.new_page()
    page.goto(server.url + "/")
    card = page.locator("#botify")

    connect(page, "not-a-real-token-0000")
    expect(card.get_by_role("alert")).to_have_text("Botify rejected that token; the saved connection is unchanged.")
    htmx_idle(page)
    assert not token_file.exists()
    expect(card.get_by_role("button", name="Load projects")).to_have_count(0)

    connect(page, module.VALID_TOKEN)
    expect(card.get_by_role("status")).to_have_text(f"Connected to Botify as {module.USERNAME}.")
    htmx_idle(page)
    expect(card.locator("code")).to_have_text("••••" + module.VALID_TOKEN[-4:])
    assert module.VALID_TOKEN not in page.content()
    assert token_file.read_text() == module.VALID_TOKEN
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    card.scroll_into_view_if_needed()
    screenshot(page, "botifython-connect", docs=True)

    page.reload()
    expect(card.locator("code")).to_have_text("••••" + module.VALID_TOKEN[-4:])
    htmx_idle(page)
    assert module.VALID_TOKEN not in page.content()
    connect(page, "still-wrong-token-1111")
    expect(card.get_by_role("alert")).to_have_text("Botify rejected that token; the saved connection is unchanged.")
    assert token_file.read_text() == module.VALID_TOKEN, "a refused token replaced the saved one"
    htmx_idle(page)

    card.get_by_role("button", name="Load projects").click()
    card.get_by_label("Botify project").select_option("site-1")
    htmx_idle(page)
    page.evaluate(RECORD_PROGRESS)
    fake.fail(f"/v1/analyses/{module.USERNAME}/site-1/light?page=3", 429, retry_after=RETRY_AFTER)
    card.get_by_role("button", name="Export analyses to CSV").click()

    row = page.locator("#task-list > article").first
    expect(row).to_contain_text(f"retrying in {RETRY_AFTER}s", timeout=15_000)
    expect(row.locator("progress")).to_have_attribute("value", "6")
    row.scroll_into_view_if_needed()
    screenshot(page, "task-progress", docs=True)

    expect(row).to_have_class("task done", timeout=20_000)
    fractions = page.evaluate("window.__progress")
    assert any(0.5 < f < 1 for f in fractions) and fractions[-1] == 1, fractions
    task_id = row.get_attribute("id").removeprefix("task-")
    link = row.locator(".result a")
    expect(link).to_have_attribute("href", re.compile(rf"^/tasks/{task_id}/files/site-1-analyses-"))
    expect(row).to_contain_text(f"Fetched {ANALYSES} of {ANALYSES} analyses")

    with page.expect_download() as caught:
        link.click()
    download = caught.value
    assert download.suggested_filename.startswith("site-1-analyses-") and download.suggested_filename.endswith(".csv")
    with open(download.path(), newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert [int(r["id"]) for r in rows] == [1000 + n for n in range(1, ANALYSES + 1)]
    assert rows[0]["name"] == "site-1 crawl 1" and rows[0]["status"] == "success"
    screenshot(page, "botifython-export-done")

    outputs = project / "data" / "outputs" / task_id
    assert [p.name for p in outputs.iterdir()] == [download.suggested_filename], "a partial CSV was left"
    assert stat.S_IMODE(outputs.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in outputs.iterdir()} == {0o600}
    assert not (project / "data" / "exports").exists()
