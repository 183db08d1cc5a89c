"""What a run may not do to the app, whatever its tool does: write CSV cells a spreadsheet would run, leave files
others can read, zip a folder into itself, or send results or log lines of any size to the page, or fill the
disk. (Processes that outlive a run: test_run_processes.py.)"""
from __future__ import annotations

import csv
import re
import textwrap
import time
import zipfile
from pathlib import Path

import pytest

from conftest import open_page, wait_until
from tool_runs import one_tool, render, run, toolbox, notebook


# --- (8) CSV cells a spreadsheet would run ----------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "=cmd|' /C calc'!A0", '=HYPERLINK("http://evil.example","x")', "+1+1", "-1+1", "@SUM(A1)", "\t=1", "\r=1",
    "\n=1", "\x00x", " =1", "'=1", '"=1', "\u00a0=1"])
def test_text_that_starts_like_a_formula_gets_a_leading_quote(text):
    assert toolbox.spreadsheet_text(text) == "'" + text


@pytest.mark.parametrize("value, cell", [
    (-3, -3), (-2.5, -2.5), (True, True), (0, 0), ("Weekly crawl", "Weekly crawl"), ("a-b", "a-b"), ("", ""),
    ("x=1", "x=1"), (None, "")])
def test_numbers_stay_numbers_and_ordinary_text_stays_as_it_is(value, cell):
    assert toolbox.spreadsheet_text(value) == cell and type(toolbox.spreadsheet_text(value)) is type(cell)


def test_a_dataframes_csv_disarms_formula_text_in_cells_names_and_index_and_keeps_numbers(tmp_path):
    import pandas as pd

    frame = pd.DataFrame({"=name": ["=cmd|' /C calc'!A0", "@SUM(A1)", "plain"], "n": [-3, 4, 5],
                          "mixed": ["-1", -1, None]}, index=pd.Index(["+a", "b", "\tc"], name="=row"))
    out = tmp_path / "out"
    render(frame, out)
    with open(out / "sales.csv", newline="", encoding="utf-8") as file:
        rows = list(csv.reader(file))
    assert rows == [["'=row", "'=name", "n", "mixed"], ["'+a", "'=cmd|' /C calc'!A0", "-3", "'-1"],
                    ["b", "'@SUM(A1)", "4", "-1"], ["'\tc", "plain", "5", ""]]
    assert pd.read_csv(out / "sales.csv")["n"].tolist() == [-3, 4, 5]  # still numbers a spreadsheet sums


def test_a_dataframe_returned_by_a_run_has_a_disarmed_csv(app):
    tool = one_tool(app, '''
        import pandas as pd


        def links():
            return pd.DataFrame({"url": ['=HYPERLINK("http://evil.example")', "https://example.com"]})
    ''')
    outputs = app / "data" / "outputs" / "1"
    result, _ = run(tool, outputs)
    assert isinstance(result, str), result
    assert (outputs / "links.csv").read_text() == 'url\n"\'=HYPERLINK(""http://evil.example"")"\nhttps://example.com\n'


# --- (9) files others could read --------------------------------------------------------------------------------


def modes(folder: Path) -> dict[str, str]:
    """The permission bits of everything under the folder, by relative path."""
    return {str(path.relative_to(folder)): oct(path.lstat().st_mode & 0o777) for path in sorted(folder.rglob("*"))}


def test_everything_a_run_writes_is_owner_only_whatever_the_umask(app, umask, tmp_path):
    outside = tmp_path / "key"
    outside.write_text("secret")
    outside.chmod(0o644)
    tool = one_tool(app, '''
        import os
        import subprocess
        from pathlib import Path


        def writes(outside: str):
            Path("plain.txt").write_text("x")
            Path("folder/inner").mkdir(parents=True)
            Path("folder/inner/deep.txt").write_text("x")
            os.close(os.open("wide.txt", os.O_CREAT | os.O_WRONLY, 0o666))
            subprocess.run(["touch", "touched.txt"], check=True)
            return Path(outside)
    ''')
    outputs = app / "data" / "outputs" / "1"
    result, _ = run(tool, outputs, {"outside": str(outside)})
    assert result == '<a href="/files/key" download>key</a>'  # copied in
    assert modes(outputs) == {"folder": "0o700", "folder/inner": "0o700", "folder/inner/deep.txt": "0o600",
                              "key": "0o600", "plain.txt": "0o600", "touched.txt": "0o600", "wide.txt": "0o600"}


def test_the_files_a_result_is_written_to_are_owner_only_even_under_umask_0(umask, tmp_path):
    """As in record(), which renders in a notebook's process, or after a tool that set its own umask."""
    import pandas as pd

    umask(0)
    out, folder = tmp_path / "out", tmp_path / "folder"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    render(pd.DataFrame({"n": [1]}), out)
    render("x" * (toolbox.MAX_TEXT + 1), out)
    render(folder, out)
    render(tmp_path / "folder" / "a.txt", out)
    assert modes(out) == {"a.txt": "0o600", "folder.zip": "0o600", "sales.csv": "0o600", "sales.txt": "0o600"}


# --- (10) zips of a folder into itself --------------------------------------------------------------------------


@pytest.mark.parametrize("returned", ['Path(".")', 'Path("..")', "Path.cwd()", 'Path("/")'])
def test_a_folder_that_holds_the_runs_own_folder_is_refused_with_one_line(app, returned):
    tool = one_tool(app, f'''
        from pathlib import Path


        def everything():
            return {returned}
    ''')
    outputs = app / "data" / "outputs" / "1"
    result, _ = run(tool, outputs, timeout=30)
    assert isinstance(result, str) and "is not zipped: it holds this run&#x27;s own folder" in result, result
    assert "\n" not in result and list(outputs.iterdir()) == []


def test_links_are_left_out_of_a_zip_so_a_loop_or_a_file_elsewhere_never_gets_in(tmp_path):
    folder = tmp_path / "report"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("a")
    (folder / "sub" / "b.txt").write_text("b")
    (folder / "sub" / "loop").symlink_to(folder)
    (tmp_path / "secret").write_text("secret")
    (folder / "secret").symlink_to(tmp_path / "secret")
    out = tmp_path / "out"
    assert render(folder, out) == '<a href="/files/report.zip" download>report.zip</a>'
    assert zipfile.ZipFile(out / "report.zip").namelist() == ["a.txt", "sub/b.txt"]


def test_a_zip_stops_at_its_cap_saying_where_the_whole_folder_is(tmp_path, monkeypatch):
    monkeypatch.setattr(toolbox.downloads, "MAX_ZIP", 2500)
    folder = tmp_path / "report"
    folder.mkdir()
    for name in "abcd":
        (folder / f"{name}.txt").write_bytes(b"x" * 1000)
    out = tmp_path / "out"
    html = render(folder, out)
    assert html == ('<a href="/files/report.zip" download>report.zip</a><p>The zip stops at 2.44 KiB or 100,000 '
                    f'files: c.txt and the files after it are left out. The whole folder is {folder}</p>')
    assert zipfile.ZipFile(out / "report.zip").namelist() == ["a.txt", "b.txt"]
    monkeypatch.setattr(toolbox.downloads, "MAX_ZIP_FILES", 1)
    assert "b.txt and the files after it are left out" in render(folder, out)
    (tmp_path / "big.bin").write_bytes(b"x" * 3000)
    assert render(tmp_path / "big.bin", out) == f"{tmp_path / 'big.bin'} is 2.93 KiB, more than the 2.44 KiB a " \
                                                "download is copied for; it stays where it is."
    assert not (out / "big.bin").exists()


# --- (11) results, log lines and folders of any size ------------------------------------------------------------


class Huge:
    def __repr__(self):
        return "Huge(" + "x" * 1_000_000 + ")"


def huge_component():
    from fasthtml.common import Div

    return Div(*[Div(str(n)) for n in range(100_000)])


@pytest.mark.parametrize("make, whole", [
    (lambda: "x" * 1_000_000, "sales.txt"),
    (lambda: [f"https://example.com/page/{n}" for n in range(200_000)], "sales.txt"),
    (lambda: Huge(), "sales.txt"),
    (huge_component, "sales.html"),
], ids=["text", "list", "repr", "component"])
def test_a_long_result_is_cut_with_a_line_and_all_of_it_as_a_download(tmp_path, make, whole):
    out = tmp_path / "out"
    html = render(make(), out)
    assert len(html) <= toolbox.MAX_HTML
    assert re.search(r"(Cut at 50,000 of [\d,]+ characters|more than the [\d,]+ shown here); all of it: "
                     f'<a href="/files/{whole}" download>{whole}</a></p>$', html), html[-300:]
    assert (out / whole).stat().st_size >= 1_000_000


def test_a_wide_frame_of_long_cells_shows_a_small_table_and_says_so(tmp_path):
    import pandas as pd

    frame = pd.DataFrame({f"c{n}": ["y" * 1_000] * 30 for n in range(60)})
    html = render(frame, tmp_path / "out")
    assert html.startswith("<p>30 rows × 60 columns; the first 20 rows and 25 columns shown. ")
    assert len(html) < 80_000 and html.count("<td>") == 20 * 25 and f"<td>{'y' * 100}…</td>" in html


def test_printed_and_reported_lines_are_cut_and_kept_whole_in_a_file(app):
    tool = one_tool(app, '''
        def chatty(report):
            print("a" * 3_000_000)
            print("short")
            report(1, 1, "b" * 5_000)
            for _ in range(3):
                print("c" * 1_000_000, end="")
    ''')
    outputs = app / "data" / "outputs" / "1"
    result, lines = run(tool, outputs)
    assert result == "Done."
    note = "characters; the whole line is in long-lines.txt, among the run's files]"
    assert lines == [f"{'a' * 2000}… [cut at 2,000 of 3,000,000 {note}", "short",
                     f"{'b' * 2000}… [cut at 2,000 of 5,000 {note}",
                     f"{'c' * 2000}… [cut at 2,000 of 2,000,000 {note}",
                     f"{'c' * 2000}… [cut at 2,000 of 1,000,000 {note}"]
    assert (outputs / "long-lines.txt").read_text().split("\n") == [
        "a" * 3_000_000, "b" * 5_000, "c" * 2_000_000, "c" * 1_000_000, ""]


def test_the_page_stays_small_after_a_run_with_a_huge_result_and_log(client, server, app_dir):
    (app_dir / "tools" / "urls.py").write_text(textwrap.dedent('''
        def urls():
            print("u" * 20_000_000)
            return [f"https://example.com/page/{n}" for n in range(1_000_000)]
    '''))
    headers = open_page(client)
    row = client.post("/tools/urls", headers=headers).text
    task_id = int(re.search(r'id="task-(\d+)"', row)[1])
    assert wait_until(client, lambda: task_id not in server.tasks.RUNS)
    assert server.db.tasks[task_id].status == "done"
    page = client.get("/").text
    assert len(page) < 500_000 and "example.com/page/1000" in page and "all of it" in page
    assert len(client.get(f"/tasks/{task_id}/log").text) < 5_000


def test_a_run_whose_folder_grows_past_its_cap_is_stopped_and_fails_saying_so(app, monkeypatch):
    monkeypatch.setattr(toolbox.runner, "MAX_DISK", 2**20)
    monkeypatch.setattr(toolbox.runner, "DISK_EVERY", 0.05)
    tool = one_tool(app, '''
        import os
        import time


        def fills(report):
            with open("big.bin", "wb") as file:
                while True:
                    file.write(os.urandom(2**16))
                    file.flush()
                    report(0, 0)
                    time.sleep(0.005)
    ''')
    started = time.monotonic()
    error, _ = run(tool, app / "data" / "outputs" / "1", timeout=30)
    assert isinstance(error, toolbox.ToolFailed) and str(error) == \
        "the run's folder grew past 1 MiB, so the run was stopped"
    assert time.monotonic() - started < 20


def test_a_notebook_runs_output_is_cut_and_its_files_are_owner_only(app, umask):
    notebook(app / "tools" / "loud.ipynb", "n = 1_000_000", "open('made.txt', 'w').write('x')\nprint('z' * n)")
    tool = toolbox.discover(app / "tools", jupyter=True)[0]["loud"]
    outputs = app / "data" / "outputs" / "1"
    result, _ = run(tool, outputs)
    assert isinstance(result, str) and len(result) < 60_000, str(result)[-300:]
    assert "Cut at 50,000 of 1,000,001 characters; all of it: " in result
    assert modes(outputs) == {"loud.ipynb": "0o600", "loud.txt": "0o600", "made.txt": "0o600"}
