"""Regenerate examples/<variant>/: what `nix flake init -t .#<variant>` copies.

Usage: python examples/regenerate.py            (rewrites every examples/<variant>/)
       python examples/regenerate.py --check    (exit 1 when any example is stale)

Each example is the working tree's template rendered with that variant's
default answers. Its .copier-answers.yml then records the template's public git
URL and the release tag it corresponds to (v + the flakewright version), so a
repo made by `nix flake init` can later run `flakewright update`. Regenerate
right before tagging a release: the tag must render exactly these files.
"""
from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import copier

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
VARIANTS = ("darwinix", "pipulate", "botifython")
PUBLIC_SRC = "https://github.com/flakewright/flakewright.git"
ANSWERS = ".copier-answers.yml"


def release_tag() -> str:
    """The release these examples belong to: v + pyproject's version."""
    for line in (REPO / "pyproject.toml").read_text().splitlines():
        if line.startswith("version = "):
            return "v" + line.split("=", 1)[1].strip().strip('"')
    raise SystemExit("pyproject.toml has no version line")


def render_example(variant: str, dest: Path) -> Path:
    """Render ``variant`` with default answers into ``dest`` (must not exist)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        copier.run_copy(
            str(REPO), str(dest), data={"variant": variant}, defaults=True, quiet=True, vcs_ref="HEAD"
        )
    answers = dest / ANSWERS
    lines = [
        f"_commit: {release_tag()}" if line.startswith("_commit:")
        else f"_src_path: {PUBLIC_SRC}" if line.startswith("_src_path:")
        else line
        for line in answers.read_text().splitlines()
    ]
    answers.write_text("\n".join(lines) + "\n")
    return dest


def stale_files(expected: Path, actual: Path) -> list[str]:
    """Relative paths that differ between two trees (missing on either side included)."""
    def files(root: Path) -> set[str]:
        return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} if root.is_dir() else set()

    left, right = files(expected), files(actual)
    differ = {f for f in left & right if not filecmp.cmp(expected / f, actual / f, shallow=False)}
    return sorted(differ | (left ^ right))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale examples")
    args = parser.parse_args()
    stale = 0
    with tempfile.TemporaryDirectory() as tmp:
        for variant in VARIANTS:
            fresh = render_example(variant, Path(tmp) / variant)
            target = EXAMPLES / variant
            if args.check:
                if diff := stale_files(fresh, target):
                    stale += 1
                    print(f"examples/{variant}: stale ({len(diff)} files, e.g. {diff[0]})")
                continue
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(fresh, target, symlinks=True)
            print(f"examples/{variant}: regenerated")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
