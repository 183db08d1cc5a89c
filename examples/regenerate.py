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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# This checkout's generator, whatever flakewright is installed: its version names the release tag recorded below.
sys.path.insert(0, str(REPO / "generator"))
for _loaded in [name for name in sys.modules if name == "flakewright" or name.startswith("flakewright.")]:
    if not Path(getattr(sys.modules[_loaded], "__file__", "") or "").resolve().is_relative_to(REPO / "generator"):
        del sys.modules[_loaded]  # an installed copy imported earlier in this process must not answer for the checkout

import flakewright  # noqa: E402
from flakewright._answers import ANSWERS_FILE  # noqa: E402
from flakewright._pristine import differing_files  # noqa: E402

EXAMPLES = REPO / "examples"
VARIANTS = tuple(flakewright.VARIANTS)
PUBLIC_SRC = "https://github.com/flakewright/flakewright.git"


def release_tag() -> str:
    """The release these examples belong to: v + the flakewright version."""
    return f"v{flakewright.__version__}"


def render_example(variant: str, dest: Path) -> Path:
    """Render ``variant`` with default answers into ``dest`` (must not exist), as `flakewright new` does.

    DEST's folder name is the default project_name, so ``dest`` should be named after the variant.
    """
    flakewright.new(variant=variant, dest=dest, defaults=True, template=str(REPO), vcs_ref="HEAD")
    answers = dest / ANSWERS_FILE
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
    if not actual.is_dir():
        return differing_files(expected, actual) + [ANSWERS_FILE]
    differ = set(differing_files(expected, actual)) | set(differing_files(actual, expected))
    if not (actual / ANSWERS_FILE).is_file() or not filecmp.cmp(expected / ANSWERS_FILE, actual / ANSWERS_FILE, shallow=False):
        differ.add(ANSWERS_FILE)
    return sorted(differ)


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
