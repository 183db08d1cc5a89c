"""Which template line produced each line of a render.

The template is copied; each file gets an invisible opening tag naming it, and
every line that Jinja passes through untouched (template data only: no
expression, statement or comment on it) an invisible end-of-line tag naming
its file and line. Rendering that copy with
the same answers and reading the tags back gives, for each rendered line,
the template line it is a verbatim copy of. A tag that appears twice (a loop),
sits on a line whose text differs from its source line (whitespace control,
filters), or belongs to another file leaves the line unmapped: Jinja produced
it. A file whose tagged render, tags removed, is not byte-for-byte the plain
render is not traced at all.
"""
from __future__ import annotations

import fnmatch
import re
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import yaml

_OPEN, _CLOSE = "\ue000", "\ue001"  # private-use characters: not whitespace, so no strip eats them
_TAG = re.compile(f"{_OPEN}(\\d+)\\.(\\d+){_CLOSE}")
_FILE_TAG = re.compile(f"{_OPEN}file (\\d+){_CLOSE}")


@dataclass
class TracedFile:
    """One rendered file and where its lines came from."""

    source: str | None  # template path relative to the template root, e.g. template/README.md.jinja
    lines: list[int | None] = field(default_factory=list)  # per rendered line: 1-based template line, or None


@dataclass(frozen=True)
class TemplateConfig:
    subdirectory: str
    suffix: str
    exclude: tuple[str, ...]
    envops: dict[str, object]


def read(path: Path) -> str:
    """A file's text with its line endings as they are (no universal-newline translation)."""
    return path.read_bytes().decode("utf-8")


def write(path: Path, text: str) -> None:
    path.write_bytes(text.encode("utf-8"))


def split_lines(text: str) -> list[str]:
    """Lines split on "\n" only, each keeping it (form feeds and the like stay inside their line)."""
    parts = text.split("\n")
    return [part + "\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def template_config(root: Path) -> TemplateConfig:
    """What the tracer needs from copier.yml: where templates live, their suffix, exclusions, Jinja delimiters."""
    config = yaml.safe_load((root / "copier.yml").read_text(encoding="utf-8")) or {}
    return TemplateConfig(
        subdirectory=str(config.get("_subdirectory", "")),
        suffix=str(config.get("_templates_suffix", ".jinja")),
        exclude=tuple(config.get("_exclude", ())),
        envops=dict(config.get("_envops", {}) or {}),
    )


def template_files(root: Path, config: TemplateConfig) -> list[Path]:
    """Text files of the template that may become rendered files, as paths relative to ``root``."""
    base = root / config.subdirectory
    found = []
    for path in sorted(base.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        relative = path.relative_to(base)
        if any(fnmatch.fnmatch(part, pattern) for part in relative.parts for pattern in config.exclude):
            continue
        found.append(path.relative_to(root))
    return found


def literal_lines(source: str, config: TemplateConfig) -> set[int]:
    """1-based numbers of the lines Jinja copies verbatim into the output."""
    delimiters = {
        key: value
        for key, value in config.envops.items()
        if key.endswith(("_start_string", "_end_string", "_prefix"))
    }
    env = jinja2.Environment(**delimiters)
    lines = source.split("\n")
    touched: set[int] = set()
    for lineno, token, value in env.lexer.tokeniter(source, None):
        if token != "data":
            text = str(value)
            if token.endswith("_end"):  # `-%}` carries the whitespace it strips: that is not the tag's
                text = text.rstrip()
            touched.update(range(lineno, lineno + text.count("\n") + 1))
    block_start = re.escape(str(config.envops.get("block_start_string", "{%")))
    variable_start = re.escape(str(config.envops.get("variable_start_string", "{{")))
    comment_start = re.escape(str(config.envops.get("comment_start_string", "{#")))
    strips_before = re.compile(rf"\s*(?:{block_start}|{variable_start}|{comment_start})-")
    strip_ends = tuple(
        "-" + str(config.envops.get(key, default))
        for key, default in (("block_end_string", "%}"), ("variable_end_string", "}}"), ("comment_end_string", "#}"))
    )
    found = set()
    offset = 0
    for number, text in enumerate(lines, start=1):
        start, offset = offset, offset + len(text) + 1
        if number in touched or (number == len(lines) and not text):
            continue
        # A following `{%-` eats the whitespace before it: blank lines and trailing spaces vanish.
        if (not text.strip() or text != text.rstrip()) and strips_before.match(source, start + len(text)):
            continue
        # A preceding `-%}` may eat a blank line whole.
        if not text.strip() and source[:start].rstrip().endswith(strip_ends):
            continue
        found.add(number)
    return found


def _tagged(source: str, file_id: int, literal: set[int]) -> str:
    lines = source.split("\n")
    body = "\n".join(
        f"{text}{_OPEN}{file_id}.{number}{_CLOSE}" if number in literal else text
        for number, text in enumerate(lines, start=1)
    )
    return f"{_OPEN}file {file_id}{_CLOSE}{body}"


def instrument(root: Path, tagged_root: Path) -> dict[int, str]:
    """Copy the template at ``root`` to ``tagged_root`` with file and line tags; return file ids -> paths."""
    config = template_config(root)
    shutil.copytree(root, tagged_root, dirs_exist_ok=True)
    sources: dict[int, str] = {}
    for file_id, relative in enumerate(template_files(root, config)):
        try:
            source = read(root / relative)
        except UnicodeDecodeError:
            continue
        sources[file_id] = relative.as_posix()
        is_template = relative.name.endswith(config.suffix)
        literal = literal_lines(source, config) if is_template else set(range(1, source.count("\n") + 2))
        write(tagged_root / relative, _tagged(source, file_id, literal))
    return sources


def read_trace(*, template: Path, plain: Path, tagged: Path, sources: dict[int, str], relative: str) -> TracedFile:
    """Map each line of the plain render's ``relative`` back to its template line.

    The tag that opens the tagged render names the template file; a render that
    does not open with one (or whose other text differs) is left untraced.
    """
    try:
        plain_text = read(plain / relative)
        tagged_text = read(tagged / relative)
    except (OSError, UnicodeDecodeError):
        return TracedFile(source=None)
    plain_lines = split_lines(plain_text)
    opening = _FILE_TAG.match(tagged_text)
    source = sources.get(int(opening.group(1))) if opening else None
    if opening:
        tagged_text = tagged_text[opening.end() :]
    if source is None or _FILE_TAG.search(tagged_text) or _TAG.sub("", tagged_text) != plain_text:
        return TracedFile(source=source, lines=[None] * len(plain_lines))
    file_id = next(k for k, v in sources.items() if v == source)
    tagged_lines = split_lines(tagged_text)
    counts = Counter(m.groups() for m in _TAG.finditer(tagged_text))
    template_lines = dict(enumerate(read(template / source).split("\n"), start=1))
    mapped: list[int | None] = []
    for line in tagged_lines:
        tags = _TAG.findall(line)
        number = int(tags[0][1]) if len(tags) == 1 and int(tags[0][0]) == file_id else None
        if number is not None and (
            counts[tags[0]] != 1
            or _TAG.sub("", line).removesuffix("\n") != template_lines.get(number)
            or not line.removesuffix("\n").endswith(_CLOSE)
        ):
            number = None
        mapped.append(number)
    return TracedFile(source=source, lines=mapped)
