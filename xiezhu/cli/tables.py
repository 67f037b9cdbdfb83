"""Tables for people: Chinese by default, readable at 80 columns, whole when redirected to a file.

A command describes its columns once (:class:`Col`: a stable key, a 中文 and an English header,
a priority, whether it identifies the row) and hands rows of plain strings to :func:`show`.

- Language: 中文 unless ``--lang en`` or ``XIEZHU_LANG=en`` (:func:`lang`); JSON never changes.
- Width: the terminal's; ``COLUMNS`` when set (as tests and scripts do); and when stdout is not
  a terminal and ``COLUMNS`` is not set, the table's own full width — a file gets every cell
  whole, never the 80 columns a pipe would otherwise be assumed to have.
- Narrow: cells wrap (never "…"); columns are dropped lowest priority first (the largest
  ``drop`` number) until the table fits, and a footnote names what was left out. Identifying
  columns (``ident``) are never dropped and never wrapped, so no two printed rows become ones
  that cannot be told apart; if they alone do not fit, they fold rather than shorten.
"""
from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from rich.console import Console
from rich.table import Table
from rich.text import Text

from schemas.errors import XiezhuError

ENV_LANG = "XIEZHU_LANG"
Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = ("zh", "en")
#: What one cell costs beyond its text: the separator and padding of rich's default box.
_CELL_OVERHEAD = 3


def lang(given: str | None = None) -> Lang:
    """The interface language: ``given`` (``--lang``), else ``XIEZHU_LANG``, else 中文."""
    value = (given or os.environ.get(ENV_LANG) or "zh").strip().lower()
    if value.startswith("zh") or value in ("cn", "中文"):
        return "zh"
    if value.startswith("en"):
        return "en"
    raise XiezhuError(f"--lang must be zh or en, not {value!r}", zh=f"--lang 应为 zh 或 en，而不是 {value!r}")


@dataclass(frozen=True)
class Col:
    """One column: its key in the row dicts, its headers, and how it gives way at narrow widths."""

    key: str
    zh: str
    en: str
    #: Identifies the row (number, parties): never dropped, never wrapped.
    ident: bool = False
    #: Dropped first when the table does not fit: the largest number goes first; 0 is never dropped.
    drop: int = 0
    justify: Literal["left", "right", "center"] = "left"
    #: A shorter form of the same cell (e.g. bureaus' 简称), used before any column is dropped.
    short: str = ""
    #: Never wrapped either (a date, a time, a count): dropped whole rather than broken.
    keep: bool = False

    def header(self, language: Lang) -> str:
        return self.zh if language == "zh" else self.en


def _display_width(text: str) -> int:
    return max((Text(line).cell_len for line in text.splitlines() or [""]), default=0)


def target_width(console: Console | None = None) -> int | None:
    """The width to fit, or None for "the table's own full width" (redirected, COLUMNS unset)."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    stream = console.file if console is not None else sys.stdout
    if hasattr(stream, "isatty") and stream.isatty():
        return shutil.get_terminal_size((80, 24)).columns
    return None


def fit(columns: Sequence[Col], rows: Sequence[Mapping[str, str]], width: int | None,
        language: Lang = "zh") -> tuple[list[Col], list[Col]]:
    """The columns that fit ``width`` (all when None) and those dropped, by priority.

    First the columns with a short form switch to it (returned with ``key`` set to the short
    key), then columns are dropped, the largest ``drop`` first.
    """
    def natural_of(c: Col) -> int:
        return max([_display_width(c.header(language)), *(_display_width(r.get(c.key, "")) for r in rows)])

    natural = {c.key: natural_of(c) for c in columns}

    def needed(cols: Sequence[Col]) -> int:
        # Wrappable columns can shrink to about 10 cells; identifying and kept ones keep their width.
        return 1 + sum((natural[c.key] if c.ident or c.keep else min(natural[c.key], 10)) + _CELL_OVERHEAD
                       for c in cols)

    shown = list(columns)
    dropped: list[Col] = []
    if width is None:
        return shown, dropped
    if needed(shown) > width:
        shown = [replace(c, key=c.short, short="") if c.short else c for c in shown]
        natural |= {c.key: natural_of(c) for c in shown}
    for c in sorted((c for c in shown if c.drop and not c.ident), key=lambda c: -c.drop):
        if needed(shown) <= width:
            break
        shown.remove(c)
        dropped.append(c)
    # Never two rows that read the same: give back dropped columns (last dropped first) until they differ.
    while dropped and _alike(shown, rows):
        back = dropped.pop()
        shown.insert(min(len(shown), [c.key for c in columns].index(back.key) if back in columns else len(shown)),
                     back)
    return shown, dropped


def _alike(columns: Sequence[Col], rows: Sequence[Mapping[str, str]]) -> bool:
    seen = [tuple(r.get(c.key, "") for c in columns) for r in rows]
    return len(set(seen)) != len(seen)


def table(title: str, columns: Sequence[Col], rows: Sequence[Mapping[str, str]], *, language: Lang = "zh",
          width: int | None = None) -> tuple[Table, list[Col]]:
    """The rich Table of ``rows`` fitted to ``width``, and the columns left out."""
    shown, dropped = fit(columns, rows, width, language)
    t = Table(title=title, expand=False)
    for c in shown:
        t.add_column(c.header(language), justify=c.justify, no_wrap=c.ident or c.keep, overflow="fold")
    for r in rows:
        t.add_row(*(r.get(c.key, "") for c in shown))
    return t, dropped


def show(title: str, columns: Sequence[Col], rows: Sequence[Mapping[str, str]], *, language: Lang = "zh",
         console: Console | None = None, footer: str = "") -> None:
    """Print the table to stdout (or ``console``) at the width of where it goes."""
    width = target_width(console)
    t, dropped = table(title, columns, rows, language=language, width=width)
    if width is None:
        # Redirected: as wide as the table needs, so that every cell is printed whole.
        out = Console(file=console.file if console is not None else sys.stdout, width=10_000,
                      no_color=True, highlight=False)
        out.print(t, crop=False)
    else:
        out = console or Console(width=width, highlight=False)
        out.width = width
        out.print(t)
    notes = []
    if dropped:
        names = "、".join(c.header(language) for c in dropped)
        notes.append(f"（窄屏省略：{names}；--json 或更宽的终端可见）" if language == "zh"
                     else f"(left out at this width: {names}; see --json or a wider terminal)")
    if footer:
        notes.append(footer)
    for note in notes:
        out.print(note, highlight=False)
