"""A notebook tool's form, read from its cell tagged `parameters` without running it: annotated inputs (a file, a
date, a choice), plain literals as papermill takes them, help from comments, and a cell that cannot be read
named line by line in one card."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
import toolbox  # noqa: E402

from tool_runs import notebook, run  # noqa: E402


ANNOTATED = '''\
import datetime
from pathlib import Path
from typing import Literal

orders: Path = Path("orders.csv")  # a CSV of orders
day: datetime.date = datetime.date(2024, 1, 31)  # the day to look at
mode: Literal["fast", "slow"] = "slow"
names: list[str] = ["fr", "de"]
limit: int | None = None
ratio = 0.5  # unannotated: read from the value
since = Path("data/old.csv")'''


def test_annotated_parameters_give_the_fields_a_function_tool_would_have(app):
    notebook(app / "tools" / "report.ipynb", ANNOTATED, "")
    tools, broken = toolbox.discover(app / "tools", jupyter=True)
    assert broken == []
    assert [(f.name, f.kind, f.default, f.required, f.choices, f.help) for f in tools["report"].fields] == [
        ("orders", "file", None, False, (), "a CSV of orders (empty: orders.csv)"),
        ("day", "date", "2024-01-31", False, (), "the day to look at"),
        ("mode", "choice", "slow", False, ("fast", "slow"), ""),
        ("names", "lines", ["fr", "de"], False, (), ""),
        ("limit", "int", None, False, (), ""),
        ("ratio", "float", 0.5, False, (), "unannotated: read from the value"),
        ("since", "file", None, False, (), "(empty: data/old.csv)")]


@pytest.mark.parametrize("cell, problem", [
    ("%matplotlib inline\nn = 1", "line 1: `%matplotlib inline` is an IPython magic or shell command; move it to "
                                  "another cell; it may hold only assignments"),
    ("n = 1\nm = n + 1", "line 2: m = n + 1 is not a literal"),
    ("import os\nstart = datetime.date.today()", "line 2: start = datetime.date.today() is not a literal"),
    ("n = 1\nrows: pd.DataFrame = None", "line 2: rows: pd.DataFrame is not supported; use str, int, float, bool, "
                                         "Literal[...]"),
    ("n: Literal[n] = 1", "line 1: n: Literal[n] is not supported"),
    ("print(1)", "line 1: `print(1)` is not an assignment to a name; it may hold only assignments"),
])
def test_a_parameters_cell_that_cannot_be_read_is_one_line_naming_the_line_and_what_is_allowed(app, cell, problem):
    notebook(app / "tools" / "bad.ipynb", cell, "")
    tools, broken = toolbox.discover(app / "tools", jupyter=True)
    assert tools == {} and len(broken) == 1
    assert broken[0].problem.startswith(f"bad.ipynb: the parameters cell, {problem}"), broken[0].problem
    assert "\n" not in broken[0].problem and "SyntaxError: invalid syntax" not in broken[0].problem


def test_a_parameters_cell_with_several_problems_names_them_all_in_one_line(app):
    notebook(app / "tools" / "bad.ipynb", "%matplotlib inline\nn = 1\nm = n + 1\n!pip install pandas\n"
                                          "rows: pd.DataFrame = None\nprint(1)\nok = 2", "")
    tools, broken = toolbox.discover(app / "tools", jupyter=True)
    assert tools == {} and len(broken) == 1
    problem = broken[0].problem
    assert re.fullmatch(r"bad\.ipynb: the parameters cell, line 1: `%matplotlib inline` is an IPython magic or shell "
                        r"command; move it to another cell; line 3: m = n \+ 1 is not a literal; "
                        r"line 4: `!pip install pandas` is an IPython magic .*; line 5: rows: pd\.DataFrame is not "
                        r"supported; use .*; line 6: `print\(1\)` is not an assignment to a name; a literal is a number, "
                        r"text, .*; it may hold only assignments .*", problem), problem
    assert problem.count("a literal is a number, text") == 1
    assert problem.count("it may hold only") == 1 and "line 2" not in problem and "line 7" not in problem


def test_a_line_that_does_not_parse_is_named_with_the_other_problems_after_it(app):
    # as papermill's own test notebook of complex parameters has them: a broken line after a non-literal
    notebook(app / "tools" / "bad.ipynb", "a: float = 2.25\nd = a == 3\n= 2\nb = [\n    'Hello',\n]\n(", "")
    problem = toolbox.discover(app / "tools", jupyter=True)[1][0].problem
    assert re.fullmatch(r"bad\.ipynb: the parameters cell, line 2: d = a == 3 is not a literal; line 3: `= 2` is "
                        r"SyntaxError: invalid syntax; line 7: `\(` is SyntaxError: .*; a literal is .*",
                        problem), problem


PLAIN = '''\
"""Plain literals, as papermill takes them."""
thresholds = [0.1, 0.5]  # where the bands start
options = {"colour": "red", "size": 2}
pair = (1, "a")
low = high = 3
first, second = -1, "two"
counts: dict[str, int] = {"fr": 1}
declared: int
names = ["fr", "de"]'''


def test_a_plain_literal_papermill_takes_is_a_field_typed_as_python_and_read_back_as_a_literal(app):
    notebook(app / "tools" / "plain.ipynb", PLAIN,
             "print(repr(thresholds), repr(options), repr(pair), low, high, first, second, counts, names)")
    tools, broken = toolbox.discover(app / "tools", jupyter=True)
    assert broken == []
    tool = tools["plain"]
    assert [(f.name, f.kind, f.default, f.help) for f in tool.fields] == [
        ("thresholds", "text", "[0.1, 0.5]", "where the bands start (a Python list)"),
        ("options", "text", "{'colour': 'red', 'size': 2}", "(a Python dict)"),
        ("pair", "text", "(1, 'a')", "(a Python tuple)"),
        ("low", "int", 3, ""), ("high", "int", 3, ""), ("first", "int", -1, ""), ("second", "text", "two", ""),
        ("counts", "text", "{'fr': 1}", "(a Python dict)"), ("names", "lines", ["fr", "de"], "")]
    params, errors = toolbox.parse(tool, {"thresholds": "[0.9]", "options": " {'colour': 'blue'} ", "low": "4"})
    assert errors == {}
    shown, _ = run(tool, app / "data" / "outputs" / "1", params)
    assert "<pre>[0.9] {&#x27;colour&#x27;: &#x27;blue&#x27;} (1, &#x27;a&#x27;) 4 3 -1 two {&#x27;fr&#x27;: 1} " \
           "[&#x27;fr&#x27;, &#x27;de&#x27;]\n</pre>" in shown, shown
    for answer in ("[1]", "__import__('os').system('touch hacked')"):  # read as a literal, never run
        error, _ = run(tool, app / "data" / "outputs" / "2", toolbox.parse(tool, {"options": answer})[0])
        assert isinstance(error, toolbox.ToolFailed), error
        assert str(error) == "Options: enter a Python dict, such as {'colour': 'red', 'size': 2}"
    assert not (app / "tools" / "hacked").exists() and not (app / "data" / "outputs" / "2" / "hacked").exists()


def test_a_comment_above_a_parameter_is_its_help_as_a_trailing_one_is(app):
    notebook(app / "tools" / "helped.ipynb", '''\
# Parameters
# The region to report on
region = "EU"

# how many rows
# to show
rows = 10  # at most 100
#
# region = "US"
limit = 5
since = 2020  # trailing only''', "")
    tool = toolbox.discover(app / "tools", jupyter=True)[0]["helped"]
    assert [(f.name, f.help) for f in tool.fields] == [
        ("region", "The region to report on"), ("rows", "how many rows to show; at most 100"), ("limit", ""),
        ("since", "trailing only")]
