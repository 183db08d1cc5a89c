"""generator/flakewright/variants.toml is the one list of variants: what cannot read it is checked against it."""
from __future__ import annotations

import re

import jinja2.sandbox
import yaml

from flakewright._variants import DEFAULT_VARIANT, VARIANTS as TABLE
from helpers import REPO


def test_copier_offers_exactly_the_table_s_variants_and_default() -> None:
    question = yaml.safe_load((REPO / "copier.yml").read_text())["variant"]
    assert question["choices"] == {f"{v.name}: {v.label}": v.name for v in TABLE.values()}
    assert list(question["choices"].values()) == list(TABLE)
    assert question["default"] == DEFAULT_VARIANT


def test_copier_derives_each_variant_s_flags_as_the_table_says() -> None:
    questions = yaml.safe_load((REPO / "copier.yml").read_text())
    env = jinja2.sandbox.SandboxedEnvironment()
    for variant in TABLE.values():
        derived: dict[str, object] = {"variant": variant.name}
        for flag in variant.flags:  # web and botify first: jupyter's default reads web
            text = env.from_string(str(questions[flag]["default"])).render(**derived)
            derived[flag] = {"True": True, "False": False}[text]
        assert {flag: derived[flag] for flag in variant.flags} == variant.flags, variant.name
        assert questions["web"]["when"] is questions["botify"]["when"] is False  # derived, never asked


def test_every_variant_builds_on_one_listed_before_it() -> None:
    seen: list[str] = []
    for variant in TABLE.values():
        assert variant.extends is None or variant.extends in seen, variant.name
        seen.append(variant.name)
    assert [v.name for v in TABLE.values() if v.extends is None] == [seen[0]]


def test_the_docs_list_and_describe_every_variant_in_table_order() -> None:
    doc = (REPO / "docs" / "variants.md").read_text()
    header = next(line for line in doc.splitlines() if line.startswith("| |"))
    assert [cell.strip() for cell in header.strip("|").split("|")][1:] == list(TABLE)
    headings = re.findall(r"^## (\w+): ", doc, re.M)
    assert headings == list(TABLE)
