"""The table of field kinds: a new input type for tool forms is one row of toolbox.kinds.KINDS."""
import datetime
import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
import toolbox  # noqa: E402
from toolbox import discovery, kinds  # noqa: E402

ALARM = '''
    import datetime


    def alarm(at: datetime.time, snooze: datetime.time = datetime.time(7, 30)):
        """Rings at a time."""
        return at.strftime("%H h %M")
'''
CLOCK = '''
def clock(text: str, field: Field) -> str:
    try:
        if re.fullmatch(r"[0-9]{2}:[0-9]{2}", text):
            return datetime.time.fromisoformat(text).isoformat("minutes")
    except ValueError:
        pass
    raise ValueError("enter a time as HH:MM.")


'''
TIME_ROW = '''    "time": Kind(named="datetime.time", types=(datetime.time,), parse=clock, input={"type": "time"},
                 form=lambda value: value.isoformat("minutes"),
                 argument=lambda value, hint: datetime.time.fromisoformat(value)),
'''


def time_kind() -> toolbox.Kind:
    """The row TIME_ROW writes, made here."""
    namespace = {"Field": toolbox.Field, "re": re, "datetime": datetime}
    exec(CLOCK, namespace)
    return toolbox.Kind(named="datetime.time", types=(datetime.time,), parse=namespace["clock"], input={"type": "time"},
                        form=lambda value: value.isoformat("minutes"),
                        argument=lambda value, hint: datetime.time.fromisoformat(value))


def test_a_kind_added_at_runtime_makes_fields_parses_answers_and_hands_the_tool_its_type(tmp_path, monkeypatch):
    monkeypatch.setitem(toolbox.KINDS, "time", time_kind())
    path = tmp_path / "tools" / "alarm.py"
    path.parent.mkdir()
    path.write_text(textwrap.dedent(ALARM), encoding="utf-8")
    try:
        (tool,), broken = discovery.module_tools(path)  # what the discovery child does with each module
    finally:
        sys.modules.pop("tools.alarm", None)
    assert broken == []
    at, snooze = tool.fields
    assert (at.kind, at.required, at.default) == ("time", True, None)
    assert (snooze.kind, snooze.required, snooze.default) == ("time", False, "07:30")
    assert toolbox.KINDS[at.kind].input == {"type": "time"} and toolbox.KINDS[at.kind].widget == "input"
    assert toolbox.parse(tool, {"at": "13:45"}) == ({"at": "13:45", "snooze": "07:30"}, {})
    assert toolbox.parse(tool, {"at": "25:00", "snooze": ""}) == ({"snooze": "07:30"},
                                                                 {"at": "At: enter a time as HH:MM."})
    assert toolbox.parse(tool, {})[1] == {"at": "At: fill this in."}
    assert kinds.argument(datetime.time | None, "13:45") == datetime.time(13, 45)
    assert kinds.supported().endswith("list[str], datetime.time, or X | None")


def test_a_kind_written_into_the_table_reaches_discovery_and_the_run_in_their_own_processes(tmp_path):
    app = tmp_path / "app"
    shutil.copytree(REPO / "toolbox", app / "toolbox", ignore=shutil.ignore_patterns("__pycache__"))
    (app / "tools").mkdir()
    (app / "tools" / "alarm.py").write_text(textwrap.dedent(ALARM), encoding="utf-8")
    table = app / "toolbox" / "kinds.py"
    source = table.read_text(encoding="utf-8")
    assert source.count("KINDS: dict[str, Kind] = {\n") == 1
    table.write_text(source.replace("KINDS: dict[str, Kind] = {\n", CLOCK + "KINDS: dict[str, Kind] = {\n" + TIME_ROW),
                     encoding="utf-8")
    script = '''
        import asyncio, json
        from pathlib import Path
        import toolbox

        async def report(*progress):
            pass

        tools, broken = toolbox.discover(Path("tools"), jupyter=False)
        tool = tools["alarm"]
        answers, _ = toolbox.parse(tool, {"at": "13:45"})
        refused = toolbox.parse(tool, {"at": "25:00"})[1]
        shown = asyncio.run(toolbox.run_tool(tool, answers, report=report, outputs=Path("out").resolve(),
                                             download_url=lambda name: name))
        print(json.dumps([[field.kind for field in tool.fields], refused, shown, broken]))
    '''
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=app, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [["time", "time"], {"at": "At: enter a time as HH:MM."}, "13 h 45", []]



def test_a_kind_written_into_the_table_is_an_input_of_its_type_on_the_tool_form(app_dir, request):
    table = app_dir / "toolbox" / "kinds.py"
    source = table.read_text(encoding="utf-8")
    table.write_text(source.replace("KINDS: dict[str, Kind] = {\n", CLOCK + "KINDS: dict[str, Kind] = {\n" + TIME_ROW),
                     encoding="utf-8")
    (app_dir / "tools" / "alarm.py").write_text(textwrap.dedent(ALARM), encoding="utf-8")
    client = request.getfixturevalue("client")  # the app imports the edited table

    form = client.get("/tools/alarm").text

    at = re.search(r'<input[^>]*name="at"[^>]*>', form)[0]
    snooze = re.search(r'<input[^>]*name="snooze"[^>]*>', form)[0]
    assert 'type="time"' in at and "required" in at
    assert 'type="time"' in snooze and 'value="07:30"' in snooze and "required" not in snooze
