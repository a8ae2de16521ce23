"""Plain-text tables for the terminal (`mibridge status`, the demo), aligned for
Chinese text: a Chinese character takes two columns on a terminal, which len()
does not know.  Widths come from wcwidth (https://github.com/jquast/wcwidth),
the library terminals' own width tables follow; long cells wrap at a word
boundary (or between Chinese characters), never in the middle of a word.
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

from wcwidth import wcswidth, wcwidth


def width(text: str) -> int:
    w = wcswidth(text)
    if w >= 0:
        return w
    # A control character somewhere: count what can be shown.
    return sum(max(0, wcwidth(c)) for c in text)


def wrap_text(text: str, limit: int) -> list[str]:
    """Lines of at most `limit` columns, broken at spaces; a word longer than a
    line, or Chinese text without spaces, is broken between characters."""
    if width(text) <= limit:
        return [text]
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        candidate = word if not line else f"{line} {word}"
        if width(candidate) <= limit:
            line = candidate
            continue
        if line:
            lines.append(line)
            line = ""
        while width(word) > limit:             # break a long word between characters
            cut, w = 0, 0
            for cut, ch in enumerate(word):
                if w + max(0, wcwidth(ch)) > limit:
                    break
                w += max(0, wcwidth(ch))
            else:
                cut = len(word)
            lines.append(word[:cut])
            word = word[cut:]
        line = word
    if line:
        lines.append(line)
    return lines


def _pad(text: str, w: int, right: bool) -> str:
    gap = " " * max(0, w - width(text))
    return gap + text if right else text + gap


def table(rows: Iterable[Sequence], headers: Sequence[str], *, align: str = "",
          wrap: Optional[dict[int, int]] = None) -> str:
    """`align`: one letter per column, l or r (numbers: r); `wrap`: {column: columns}."""
    wrap_at = wrap or {}
    cells = [["" if v is None else str(v) for v in r] for r in rows]
    # Each row becomes one or more lines (wrapped cells).
    split_rows: list[list[list[str]]] = []
    for r in cells:
        split_rows.append([wrap_text(v, wrap_at[i]) if i in wrap_at else [v] for i, v in enumerate(r)])
    n = len(headers)
    widths = [width(h) for h in headers]
    for r in split_rows:
        for i, parts in enumerate(r[:n]):
            widths[i] = max(widths[i], *(width(p) for p in parts))
    right = [(align[i] == "r") if i < len(align) else False for i in range(n)]
    out = ["  ".join(_pad(h, widths[i], right[i]) for i, h in enumerate(headers)).rstrip(),
           "  ".join("-" * w for w in widths)]
    for r in split_rows:
        height = max(len(p) for p in r) if r else 1
        for k in range(height):
            out.append("  ".join(_pad(r[i][k] if k < len(r[i]) else "", widths[i], right[i])
                                 for i in range(n)).rstrip())
    return "\n".join(out)
