"""Which files each variant ships, and that the white-label answers reach the running app."""
from __future__ import annotations

import hashlib
import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ANSWERS, VARIANTS, WEB, flags

BOTIFY_FILES = ("addons/botify.py", "tools/botify_export.py", "tools/_botify.py", "tests/test_botify.py",
                "tests/fake_botify.py")
TITLE = 'Acme "Q&A" \\ Tools <β> 😀 ${x}'
# sha256 of the files in the npm packages (`npm pack`): htmx.org@2.0.7 dist/htmx.min.js,
# htmx-ext-ws@2.0.3 dist/ws.js, @anyblades/pico@2.5.0 css/pico.min.css.
UPSTREAM_ASSETS = {
    "vendor/htmx.min.js": "60231ae6ba9db3825eb15a261122d5f55921c4d53b66bf637dc18b4ee27c79f9",
    "vendor/ws.js": "be13d89d7b18491f5bf0dd356be6f5ec5d0a0036d93af737af368dac28707948",
    "vendor/pico.min.css": "21ec49a99501e2e21d2c6152df6915f5c89d71195c77c2397953d332d8a5b6c1",
}

# Imports the rendered server in its own folder, the way ./scripts/run does, and fetches the page.
PROBE = """
import json, server
from starlette.testclient import TestClient
print(json.dumps(TestClient(server.create_app(), base_url="http://127.0.0.1").get("/").text))
"""


def rendered_files(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): path.read_text(encoding="utf-8", errors="replace")
        for path in root.rglob("*")
        if path.is_file()
    }


@pytest.mark.parametrize("variant", [v for v in VARIANTS if not flags({"variant": v})["botify"]])
def test_other_variants_ship_nothing_of_botifython(render, variant):
    files = rendered_files(render(variant))
    assert not [name for name in BOTIFY_FILES if name in files]
    assert not [name for name, text in files.items() if "botify" in name.lower() or "botify" in text.lower()]


@pytest.mark.parametrize("variant", VARIANTS)
def test_web_variants_ship_the_upstream_browser_assets_byte_for_byte(render, variant):
    assets = UPSTREAM_ASSETS if variant in WEB else {}
    static = render(variant) / "static"
    shipped = {path.relative_to(static).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
               for path in static.rglob("*") if path.is_file()}
    own = ("app.css", "app.js", "tables.js", "live-reload.js", "favicon.svg")  # the page's own files; upstream's are in vendor/
    assert {name: digest for name, digest in shipped.items() if name not in own} == assets
    assert all((name in shipped) == bool(assets) for name in own)


def test_botifython_differs_by_added_files_only(render):
    root = render("botifython")
    assert [name for name in BOTIFY_FILES if (root / name).is_file()] == list(BOTIFY_FILES)
    template = Path(__file__).resolve().parent.parent / "template"
    app = [template / "{% if web %}server.py{% endif %}", *(template / "{% if web %}core{% endif %}").glob("*.py")]
    assert len(app) > 5 and not [path.name for path in app if "botify" in path.read_text(encoding="utf-8").lower()]


def test_git_ignores_the_token_and_exports(render, tmp_path):
    root = shutil.copytree(render("botifython"), tmp_path / "app")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    secrets = ["data/botify_token", "data/.botify_token.1a2b3c4d", "data/exports/site-1-analyses-20240101-000000.csv",
               "data/outputs/7/site-1-analyses-20240101-000000.csv"]
    ignored = subprocess.run(["git", "check-ignore", *secrets], cwd=root, capture_output=True, text=True)
    assert ignored.stdout.split() == secrets


def test_white_label_answers_name_the_database_and_every_title(render, tmp_path):
    root = shutil.copytree(render("botifython", project_name="acme-tools", app_title=TITLE), tmp_path / "app")
    run = subprocess.run([sys.executable, "-c", PROBE], cwd=root, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    page = html.unescape(json.loads(run.stdout.strip().splitlines()[-1]))

    assert sorted(path.name for path in (root / "data").glob("*.db")) == ["acme-tools.db"]
    titles = re.findall(r"<title>(.*?)</title>", page, re.S)
    assert titles and {title.strip() for title in titles} == {TITLE}
    assert re.search(rf"<h1>\s*(<a href=\"/\">)?{re.escape(TITLE)}(</a>)?\s*</h1>", page)
    assert f"Connect {TITLE} to Botify" in page
    for name in ("server.py", *BOTIFY_FILES[:3]):
        assert "botifython" not in (root / name).read_text(encoding="utf-8").lower(), name


def test_template_tests_feature_flags_never_variant_names() -> None:
    """Files and conditions key on web/botify/jupyter; only copier.yml maps a variant to its flags."""
    template = Path(__file__).resolve().parent.parent / "template"
    named = re.compile(r"variant\s*(==|!=|in\b)")
    offenders = [str(p.relative_to(template)) for p in template.rglob("*")
                 if named.search(str(p.relative_to(template)))
                 or (p.is_file() and named.search(p.read_text(encoding="utf-8", errors="replace")))]
    assert offenders == []


def test_the_demo_is_whole_files(render):
    """-d demo=false differs from the default render only by whole files (the demo's add-ons, tool and tests), save
    the two documents that describe it."""
    with_demo, without = rendered_files(render("pipulate")), rendered_files(render("pipulate", demo=False))
    assert sorted(set(without) - set(with_demo)) == []
    assert {"addons/todos.py", "addons/chat.py", "tests/fake_ollama.py"} <= set(with_demo) - set(without)
    describes_it = {ANSWERS, "README.md", "notebooks/starter.ipynb"}
    assert [name for name in without if name not in describes_it and without[name] != with_demo[name]] == []
