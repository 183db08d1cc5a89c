"""A 3-way line merge where only true overlaps conflict.

``git merge-file`` (copier's fallback, with its 3 lines of context before it)
treats two changes on neighbouring lines as one conflict even when one side
left the first line as it was: the fork edits TITLE and HOST, the template only
HOST (to the fork's own HOST, after a backport), and TITLE comes out as a
conflict the template never made. Here each side's changes against the base are
hunks of difflib's opcodes, a replacement of n lines by n lines split into n
one-line hunks; hunks of the two sides that overlap in the base form one
region, and a region is a conflict only when both sides changed it, to
different text. A region only one side changed takes that side.
"""
from __future__ import annotations

from dataclasses import dataclass
from difflib import SequenceMatcher


@dataclass(frozen=True)
class _Hunk:
    ours: bool  # which side made it
    i1: int  # base lines [i1, i2) become the side's lines [j1, j2)
    i2: int
    j1: int
    j2: int


def merge_lines(
    *, base: bytes, ours: bytes, theirs: bytes, labels: tuple[str, str] = ("ours", "theirs")
) -> tuple[bytes, bool]:
    """The merge of ``ours`` and ``theirs`` (both changed from ``base``), and whether it holds conflict markers
    (``<<<<<<< labels[0]`` ... ``=======`` ... ``>>>>>>> labels[1]``)."""
    b, o, t = (side.splitlines(keepends=True) for side in (base, ours, theirs))
    if o == t:
        return ours, False
    hunks = sorted(_hunks(b, o, ours=True) + _hunks(b, t, ours=False), key=lambda h: (h.i1, h.i2, not h.ours))
    out: list[bytes] = []
    conflicted = False
    cursor = 0
    for region in _regions(hunks):
        lo, hi = min(h.i1 for h in region), max(h.i2 for h in region)
        out.extend(b[cursor:lo])
        cursor = hi
        mine = _side(b, o, [h for h in region if h.ours], lo, hi)
        other = _side(b, t, [h for h in region if not h.ours], lo, hi)
        if not any(not h.ours for h in region) or mine == other:
            out.extend(mine)
        elif not any(h.ours for h in region):
            out.extend(other)
        else:
            out.extend(_conflict(mine, other, labels))
            conflicted = True
    out.extend(b[cursor:])
    return b"".join(out), conflicted


def _hunks(base: list[bytes], side: list[bytes], *, ours: bool) -> list[_Hunk]:
    found = []
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, base, side, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        if tag == "replace" and i2 - i1 == j2 - j1:
            found.extend(
                _Hunk(ours, i1 + k, i1 + k + 1, j1 + k, j1 + k + 1) for k in range(i2 - i1) if base[i1 + k] != side[j1 + k]
            )
        else:
            found.append(_Hunk(ours, i1, i2, j1, j2))
    return found


def _regions(hunks: list[_Hunk]) -> list[list[_Hunk]]:
    """Hunks sorted by base position, grouped where they overlap (two insertions at one point overlap too)."""
    regions: list[list[_Hunk]] = []
    lo = hi = -1
    for hunk in hunks:
        overlaps = hunk.i1 < hi or (hunk.i1 == hunk.i2 == lo == hi)
        if regions and overlaps:
            regions[-1].append(hunk)
            hi = max(hi, hunk.i2)
        else:
            regions.append([hunk])
            lo, hi = hunk.i1, hunk.i2
    return regions


def _side(base: list[bytes], side: list[bytes], hunks: list[_Hunk], lo: int, hi: int) -> list[bytes]:
    """What one side made of base lines [lo, hi), given its hunks there."""
    out, cursor = [], lo
    for hunk in hunks:
        out.extend(base[cursor:hunk.i1])
        out.extend(side[hunk.j1:hunk.j2])
        cursor = hunk.i2
    out.extend(base[cursor:hi])
    return out


def _conflict(mine: list[bytes], other: list[bytes], labels: tuple[str, str]) -> list[bytes]:
    """Both sides between markers, their common first and last lines outside them (as git's zealous merge)."""
    head = 0
    while head < min(len(mine), len(other)) and mine[head] == other[head]:
        head += 1
    tail = 0
    while tail < min(len(mine), len(other)) - head and mine[-1 - tail] == other[-1 - tail]:
        tail += 1
    inner_mine, inner_other = mine[head:len(mine) - tail], other[head:len(other) - tail]
    out = list(mine[:head])
    out.append(f"<<<<<<< {labels[0]}\n".encode())
    out.extend(_terminated(inner_mine))
    out.append(b"=======\n")
    out.extend(_terminated(inner_other))
    out.append(f">>>>>>> {labels[1]}\n".encode())
    out.extend(mine[len(mine) - tail:])
    return out


def _terminated(lines: list[bytes]) -> list[bytes]:
    if lines and not lines[-1].endswith(b"\n"):
        return [*lines[:-1], lines[-1] + b"\n"]
    return lines
