"""Answers: the answers file a render records, the questions copier.yml asks, and ``--data KEY=VALUE``."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ._errors import FlakewrightError
from ._source import is_local

ANSWERS_FILE = ".copier-answers.yml"


def read_answers(dest: Path) -> dict[str, object]:
    """Load ``dest``'s answers file, or explain that ``dest`` was not rendered by flakewright."""
    import yaml

    path = dest / ANSWERS_FILE
    try:
        answers = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FlakewrightError(
            f"{dest} has no {ANSWERS_FILE}; run this inside a repo made by `flakewright new` or `nix flake init`"
        ) from None
    except (OSError, yaml.YAMLError) as exc:
        raise FlakewrightError(f"cannot read {path}: {exc}; restore it from git") from None
    if not isinstance(answers, dict) or not answers.get("_src_path") or not answers.get("_commit"):
        raise FlakewrightError(f"{path} lacks _src_path or _commit; restore it from git")
    for key in ("_src_path", "_commit"):
        if str(answers[key]).startswith("-"):  # git would read it as an option
            raise FlakewrightError(f"{path} has {key}: {answers[key]}, which is no template or commit; restore it from git")
    return answers


@dataclass(frozen=True, kw_only=True)
class Question:
    """What copier.yml declares about one question, as far as --data needs it."""

    name: str
    type: str
    choices: tuple[object, ...]
    asked: bool


def questions(src: str) -> dict[str, Question] | None:
    """Questions of a local template, or None when ``src`` is remote."""
    if not is_local(src):
        return None
    import yaml

    config_path = Path(src).expanduser() / "copier.yml"
    try:
        config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise FlakewrightError(f"cannot read {config_path}: {exc}; check --template") from None
    found: dict[str, Question] = {}
    for name, spec in config.items():
        if name.startswith("_"):
            continue
        spec = spec if isinstance(spec, dict) else {"default": spec}
        choices = spec.get("choices") or ()
        found[name] = Question(
            name=name,
            type=str(spec.get("type", "str")),
            choices=tuple(choices.values() if isinstance(choices, dict) else choices),
            asked=spec.get("when", True) is not False,
        )
    return found


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
