"""What a derived repo looked like right after its last render."""
from __future__ import annotations

import filecmp
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory

from ._answers import ANSWERS_FILE
from ._errors import copier_errors

@contextmanager
def pristine_render(dest: Path, *, answers: dict[str, object], ref: str | None = None) -> Iterator[Path]:
    """Re-render the recorded template commit (or ``ref``, the same commit by hash) with the recorded answers."""
    import copier

    data = {k: v for k, v in answers.items() if not k.startswith("_")}
    with TemporaryDirectory(prefix="flakewright-pristine-") as tmp:
        with copier_errors(action="re-rendering the last template version"):
            copier.run_copy(
                str(answers["_src_path"]),
                tmp,
                data=data,
                defaults=True,
                quiet=True,
                vcs_ref=ref or str(answers["_commit"]),
                skip_tasks=True,
            )
        yield Path(tmp)


def rendered_files(root: Path) -> list[str]:
    """Relative paths of every file in a render, answers file excluded."""
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if (p.is_file() or p.is_symlink()) and p.relative_to(root).as_posix() != ANSWERS_FILE
    )


def differing_files(pristine: Path, dest: Path) -> list[str]:
    """Files of the pristine render that ``dest`` no longer holds unchanged."""
    return [
        rel
        for rel in rendered_files(pristine)
        if not (dest / rel).is_file() or not filecmp.cmp(pristine / rel, dest / rel, shallow=False)
    ]
