"""Merges copier's update gets wrong, redone after it: false conflicts, renamed files, and notebooks.

- A file copier's merge left conflicted is merged again line by line from the
  old version's render, the fork's file and the new version's render (see
  ``_linemerge``): changes on neighbouring lines, one side's each, no longer
  conflict, so only lines both sides changed differently keep markers.
- A generated file the fork renamed gets the template's change at its new
  path (a 3-way merge: the old version's render, the fork's file, the new
  version's render); copier alone drops the change without a word.
- A notebook the fork edited is merged cell by cell with nbdime (base: the old
  version's render, local: the fork's, remote: the new version's). Outputs
  follow the fork's and never conflict; a conflicted cell holds both sides
  between nbdime's <<<<<<< local / >>>>>>> remote markers inside its source, so
  the notebook stays valid JSON that Jupyter opens. copier's line merge would
  write its markers into the JSON itself.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ._linemerge import merge_lines
from ._outcomes import FileOutcome, Tree, pristine_bytes
from ._renames import renames

NOTEBOOK_CONFLICT = "conflicting cells side by side between <<<<<<< local and >>>>>>> remote"


def follow_renames(
    *, tree: Tree, old: Path, new: Callable[[], Path], files: dict[str, FileOutcome], notes: dict[str, str]
) -> None:
    """Bring the template's changes to each file the fork renamed since its render to the file's new name."""
    head_files = tree.head_files()
    present = set(head_files)
    gone = {p: old / p for p in _rendered(old) if p not in present}
    added = {p: (lambda p=p: tree.head(p)) for p in head_files if not (old / p).exists()}
    for before, after in renames(gone=gone, added=added).items():
        base, theirs = pristine_bytes(old, before), pristine_bytes(new(), before)
        ours = tree.head(after)
        if files.get(before) == "new":  # copier brought the old name back: the fork moved it
            (tree.dest / before).unlink(missing_ok=True)
            del files[before]
        if base is None or ours is None or theirs is None or theirs == base:
            continue
        merged, conflicted = merge_text(base=base, ours=ours, theirs=theirs)
        (tree.dest / after).write_bytes(merged)
        files[after] = "conflict" if conflicted else "merged"
        notes[after] = f"the template's change to {before}, which you renamed"
        if conflicted:
            tree.mark_conflict(after, base=base, ours=ours, theirs=theirs)


def merge_text(*, base: bytes, ours: bytes, theirs: bytes) -> tuple[bytes, bool]:
    """The 3-way merge of a renamed file: the result, and whether it holds conflict markers."""
    return merge_lines(base=base, ours=ours, theirs=theirs, labels=("yours", "template"))


def remerge_conflicts(
    *, tree: Tree, old: Path, new: Callable[[], Path], files: dict[str, FileOutcome], notes: dict[str, str],
    inline: bool,
) -> None:
    """Merge each file copier left conflicted again, line by line: only lines both sides changed conflict.

    A file that merges cleanly now loses its markers (or its .rej) and its conflict stages; one that still
    conflicts keeps fewer, narrower markers (inline), or copier's .rej (``inline`` false).
    """
    for path, outcome in sorted(files.items()):
        if outcome != "conflict" or path.endswith(".ipynb"):
            continue
        ours, theirs = tree.head(path), pristine_bytes(new(), path)
        if ours is None or theirs is None:
            continue
        base = pristine_bytes(old, path) or b""
        merged, conflicted = merge_lines(base=base, ours=ours, theirs=theirs, labels=("before updating", "after updating"))
        if conflicted and not inline:
            continue
        (tree.dest / path).write_bytes(merged)
        if conflicted:
            tree.mark_conflict(path, base=base, ours=ours, theirs=theirs)
            continue
        (tree.dest / f"{path}.rej").unlink(missing_ok=True)
        files[path] = "merged" if ours != base else "clean"
        notes.pop(path, None)
        tree.unmark(path)


def merge_notebooks(
    *, tree: Tree, old: Path, new: Callable[[], Path], files: dict[str, FileOutcome], notes: dict[str, str]
) -> None:
    """Redo copier's line merge of each notebook the fork edited as nbdime's cell merge."""
    for path, outcome in sorted(files.items()):
        if not path.endswith(".ipynb") or outcome not in ("merged", "conflict"):
            continue
        base, local, remote = pristine_bytes(old, path), tree.head(path), pristine_bytes(new(), path)
        if base is None or local is None or remote is None:
            continue
        merged = _merge_notebook(base=base, local=local, remote=remote)
        if merged is None:
            continue
        text, conflicted = merged
        (tree.dest / path).write_bytes(text)
        (tree.dest / f"{path}.rej").unlink(missing_ok=True)
        files[path] = "conflict" if conflicted else "merged"
        if conflicted:
            notes[path] = NOTEBOOK_CONFLICT
            tree.mark_conflict(path, base=base, ours=local, theirs=remote)
        else:
            notes.pop(path, None)
            tree.unmark(path)


def _merge_notebook(*, base: bytes, local: bytes, remote: bytes) -> tuple[bytes, bool] | None:
    """The merged notebook as Jupyter saves one, and whether a cell conflicts; None when a side is no notebook."""
    from types import SimpleNamespace

    import nbformat
    from nbdime.merging import merge_notebooks as nbdime_merge

    try:
        sides = [nbformat.reads(side.decode("utf-8"), as_version=4) for side in (base, local, remote)]
    except (ValueError, UnicodeDecodeError, nbformat.reader.NotJSONError):
        return None
    args = SimpleNamespace(
        merge_strategy="inline", input_strategy=None, output_strategy="use-local", ignore_transients=True,
        log_level="WARNING",
    )
    merged, decisions = nbdime_merge(*sides, args)
    text = nbformat.writes(nbformat.from_dict(merged), version=4)
    return (text if text.endswith("\n") else text + "\n").encode("utf-8"), any(d.conflict for d in decisions)


def _rendered(root: Path) -> list[str]:
    from ._pristine import rendered_files

    return rendered_files(root)
