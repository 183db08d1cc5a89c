"""Turn ``--data KEY=VALUE`` options into typed copier answers."""
from __future__ import annotations

from collections.abc import Iterable

from ._errors import FlakewrightError
from ._source import Question

_TRUE = {"true", "yes", "y", "on", "1"}
_FALSE = {"false", "no", "n", "off", "0"}


def parse_data(
    items: Iterable[str], *, questions: dict[str, Question] | None
) -> dict[str, object]:
    """Parse ``KEY=VALUE`` pairs, checking names and types against ``questions``.

    ``questions`` is None for remote templates: names and types are then left
    to copier.
    """
    data: dict[str, object] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not _is_utf8(item):
            shown = item.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            raise FlakewrightError(f"--data '{shown}' is not UTF-8 text; give answers as UTF-8")
        if not sep or not key:
            raise FlakewrightError(f"--data {item!r} is not KEY=VALUE (e.g. --data app_title='My App')")
        if questions is None:
            data[key] = raw
            continue
        question = questions.get(key)
        if question is None:
            known = ", ".join(n for n, q in questions.items() if q.asked)
            raise FlakewrightError(f"--data {key}: unknown question; known questions: {known}")
        if not question.asked:
            raise FlakewrightError(f"--data {key}: derived from other answers, it cannot be set")
        data[key] = _cast(question, raw)
    return data


def _cast(question: Question, raw: str) -> object:
    if question.type == "bool":
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise FlakewrightError(f"--data {question.name}={raw}: expected true or false")
    if question.type == "int":
        try:
            return int(raw)
        except ValueError:
            raise FlakewrightError(f"--data {question.name}={raw}: expected a whole number") from None
    if question.choices and raw not in {str(c) for c in question.choices}:
        choices = ", ".join(str(c) for c in question.choices)
        raise FlakewrightError(f"--data {question.name}={raw}: choose one of {choices}")
    return raw


def _is_utf8(text: str) -> bool:
    """False for text holding bytes that were not UTF-8 on the command line (surrogate escapes)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
