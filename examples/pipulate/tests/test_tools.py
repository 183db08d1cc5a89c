"""toolbox called directly: discovery and form parsing. (Runs: test_tool_runs.py; results and notebook runs:
test_tool_results.py.)"""
import json
from pathlib import Path

import pytest

from tool_runs import cells_notebook, toolbox, write




EVERY_TYPE = '''
    import datetime
    import enum
    from os.path import join
    from pathlib import Path
    from typing import Literal, Optional


    class Region(enum.Enum):
        NORTH = "n"
        SOUTH = "s"


    def sales(data: Path, country: str, top: int = 5, rate: float | None = None, totals: bool = True,
              unit: Literal["eur", "usd"] = "eur", region: Region = Region.SOUTH,
              since: datetime.date = datetime.date(2024, 1, 31), skip: list[str] = ["x"],
              note: Optional[str] = None, report=None):
        """Sum sales by country.

        Reads the CSV a shop exports.

        Args:
            data: the shop's CSV export
            country (str): the column that
                names the country
            top: how many rows to keep
        """


    def _helper():
        pass
'''


def test_discover_reads_every_parameter_type_and_the_docstring(app):
    write(app, "sales.py", EVERY_TYPE)
    write(app, "_private.py", "def hidden(): pass\n")
    tools, broken = toolbox.discover(app / "tools", jupyter=False)
    assert broken == []
    assert list(tools) == ["sales"]  # not _helper, nor join or Path imported into the module, nor _private.py
    tool = tools["sales"]
    assert (tool.title, tool.help, tool.notebook, tool.source) == (
        "Sales", "Sum sales by country.", False, app / "tools" / "sales.py")
    fields = {field.name: field for field in tool.fields}
    assert "report" not in fields
    assert {name: (field.kind, field.default, field.required, field.choices) for name, field in fields.items()} == {
        "data": ("file", None, True, ()),
        "country": ("text", None, True, ()),
        "top": ("int", 5, False, ()),
        "rate": ("float", None, False, ()),
        "totals": ("bool", True, False, ()),
        "unit": ("choice", "eur", False, ("eur", "usd")),
        "region": ("choice", "SOUTH", False, ("NORTH", "SOUTH")),
        "since": ("date", "2024-01-31", False, ()),
        "skip": ("lines", ["x"], False, ()),
        "note": ("text", None, False, ()),
    }
    assert fields["data"].help == "the shop's CSV export"
    assert fields["country"].help == "the column that names the country"
    assert fields["top"].help == "how many rows to keep"
    assert fields["top"].label == "Top"


def test_discover_reads_postponed_annotations_and_numpy_and_sphinx_docstrings(app):
    write(app, "styles.py", '''
        from __future__ import annotations


        def numpy_style(count: int, name: str = "a"):
            """Count things.

            Parameters
            ----------
            count : int
                How many
                to count.
            name : str
                Whose.
            """


        def sphinx_style(count: int):
            """Count things.

            :param count: how many to count
            """
    ''')
    tools, broken = toolbox.discover(app / "tools", jupyter=False)
    assert broken == []
    assert [(f.name, f.kind, f.help) for f in tools["numpy_style"].fields] == [
        ("count", "int", "How many to count."), ("name", "text", "Whose.")]
    assert [(f.name, f.kind, f.help) for f in tools["sphinx_style"].fields] == [("count", "int", "how many to count")]


def test_a_module_that_fails_to_import_is_a_card_with_its_line_and_the_rest_still_load(app):
    write(app, "broken.py", "import os\n\nvalue = undefined_name + 1\n")
    write(app, "typo.py", "def f(:\n    pass\n")
    write(app, "quits.py", "import sys\n\nsys.exit(2)\n")
    write(app, "fine.py", "def fine():\n    return 1\n")
    tools, broken = toolbox.discover(app / "tools", jupyter=False)
    assert list(tools) == ["fine"]
    assert [(card.source.name, card.problem) for card in broken] == [
        ("broken.py", "broken.py:3: NameError: name 'undefined_name' is not defined"),
        ("quits.py", "quits.py:3: SystemExit: 2"),
        ("typo.py", "typo.py:1: SyntaxError: invalid syntax")]


def test_an_unsupported_parameter_is_a_card_naming_the_function_and_parameter(app):
    write(app, "odd.py", '''
        def options(settings: dict):
            pass


        def many(*names: str):
            pass


        def fine(x: int):
            pass
    ''')
    tools, broken = toolbox.discover(app / "tools", jupyter=False)
    assert list(tools) == ["fine"]
    problems = [card.problem for card in broken]
    assert problems[0].startswith("odd.py: options(): parameter settings: dict is not supported; use one of str, int")
    assert problems[1].startswith("odd.py: many(): parameter names: *args and **kwargs cannot be form fields")


def test_two_tools_with_one_name_are_both_cards_naming_both_files(app):
    write(app, "a.py", "def report_sales():\n    pass\n")
    write(app, "b.py", "def report_sales():\n    pass\n")
    tools, broken = toolbox.discover(app / "tools", jupyter=False)
    assert tools == {}
    assert [card.source.name for card in broken] == ["a.py", "b.py"]
    assert {card.problem for card in broken} == {"Two tools are named report_sales: in a.py and b.py; rename one."}


def test_discover_imports_afresh_so_an_edit_shows(app):
    write(app, "edit.py", "def before():\n    pass\n")
    assert list(toolbox.discover(app / "tools", jupyter=False)[0]) == ["before"]
    write(app, "edit.py", "def after():\n    pass\n")
    assert list(toolbox.discover(app / "tools", jupyter=False)[0]) == ["after"]


def test_a_notebook_with_a_parameters_cell_is_a_tool_and_needs_jupyter(app):
    cells_notebook(app, "Monthly Report.ipynb",
             ("markdown", "# Monthly report\n\nSales of one month, by country.", []),
             ("code", "import pandas as pd", []),
             ("code", "month = 3  # which month\nname = 'all'\nratio = 0.5\nfull = False\ncountries = ['fr']\n"
                      "nothing = None", ["parameters"]))
    cells_notebook(app, "untagged.ipynb", ("code", "x = 1", []))
    tools, broken = toolbox.discover(app / "tools", jupyter=True)
    tool = tools["monthly_report"]
    assert (tool.title, tool.help, tool.notebook) == ("Monthly report", "Sales of one month, by country.", True)
    assert [(f.name, f.kind, f.default, f.required, f.help) for f in tool.fields] == [
        ("month", "int", 3, False, "which month"), ("name", "text", "all", False, ""),
        ("ratio", "float", 0.5, False, ""), ("full", "bool", False, False, ""),
        ("countries", "lines", ["fr"], False, ""), ("nothing", "text", None, False, "")]
    assert [card.problem.split(";")[0] for card in broken] == ["untagged.ipynb: no cell is tagged parameters"]
    tools, broken = toolbox.discover(app / "tools", jupyter=False)
    assert tools == {}
    assert broken[0].problem == f"Monthly Report.ipynb: {toolbox.NEED_JUPYTER}"


def form_tool(app: Path):
    write(app, "form.py", EVERY_TYPE)
    return toolbox.discover(app / "tools", jupyter=False)[0]["sales"]


def test_parse_turns_a_filled_form_into_json_ready_values(app):
    upload = app / "upload.csv"
    upload.write_text("a\n1\n")
    params, errors = toolbox.parse(form_tool(app), {
        "data": str(upload), "country": " fr ", "top": "12", "rate": "2.5", "totals": "on", "unit": "usd",
        "region": "NORTH", "since": "2024-02-29", "skip": "a\n\n  b \r\n", "note": ""})
    assert errors == {}
    assert params == {"data": str(upload), "country": "fr", "top": 12, "rate": 2.5, "totals": True, "unit": "usd",
                      "region": "NORTH", "since": "2024-02-29", "skip": ["a", "b"], "note": None}
    assert json.loads(json.dumps(params)) == params


def test_parse_fills_defaults_and_names_each_missing_required_field(app):
    params, errors = toolbox.parse(form_tool(app), {"country": "   "})
    assert errors == {"data": "Data: choose a file.", "country": "Country: fill this in."}
    assert (params["top"], params["rate"], params["totals"], params["unit"], params["since"], params["skip"]) == (
        5, None, False, "eur", "2024-01-31", ["x"])  # an unticked box is absent from a form: False


@pytest.mark.parametrize("field, value, error", [
    ("top", "1.5", "Top: enter a whole number."),
    ("top", "1e3", "Top: enter a whole number."),
    ("top", "٣", "Top: enter a whole number."),
    ("top", "1_000", "Top: enter a whole number."),
    ("top", "9" * 5000, "Top: enter a whole number."),
    ("top", "9223372036854775808", "Top: enter a number between -9223372036854775807 and 9223372036854775807."),
    ("rate", "nan", "Rate: enter a number, such as 2.5."),
    ("rate", "-inf", "Rate: enter a number, such as 2.5."),
    ("rate", "1e999", "Rate: enter a number, such as 2.5."),
    ("rate", "٣.٥", "Rate: enter a number, such as 2.5."),
    ("rate", "\ud800", "Rate: enter a number, such as 2.5."),
    ("totals", "maybe", "Totals: tick the box or leave it empty."),
    ("unit", "gbp", "Unit: choose one of eur, usd."),
    ("unit", "\ud800", "Unit: choose one of eur, usd."),
    ("region", "n", "Region: choose one of NORTH, SOUTH."),
    ("since", "2023-02-29", "Since: enter a date as YYYY-MM-DD."),
    ("since", "2024-1-1", "Since: enter a date as YYYY-MM-DD."),
    ("since", "20240101", "Since: enter a date as YYYY-MM-DD."),
    ("since", "２０２４-01-01", "Since: enter a date as YYYY-MM-DD."),
    ("data", "/no/such/file", "Data: the uploaded file is missing; choose it again."),
], ids=lambda value: ascii(value)[:24])
def test_parse_answers_bad_input_with_one_line_naming_the_field(app, field, value, error):
    _, errors = toolbox.parse(form_tool(app), {"country": "fr", field: value})
    assert errors[field] == error


@pytest.mark.parametrize("value", ["", " ", "\x00", "\ud800", "\udfff\ud800", "𝟙", "1" * 100_000, "\u202e", "on\n"],
                         ids=lambda value: ascii(value)[:12])
def test_parse_never_raises_on_any_string_a_browser_can_send(app, value):
    tool = form_tool(app)
    params, errors = toolbox.parse(tool, {field.name: value for field in tool.fields})
    for message in errors.values():
        assert "\n" not in message and message.split(":")[0] in {field.label for field in tool.fields}
    json.dumps(params).encode()  # storable: lone surrogates are gone
    assert all("\ud800" not in str(value) for value in params.values())
