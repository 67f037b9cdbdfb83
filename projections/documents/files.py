"""Write a case's letters to a folder as .txt, .docx or .pdf, under the Chinese names a clerk files them by."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec

from projections.documents.letters import render
from projections.documents.paper import Paper, paper
from schemas.letters import Letter

Format = Literal["txt", "docx", "pdf"]
FORMATS: tuple[Format, ...] = ("txt", "docx", "pdf")


@dataclass(frozen=True)
class Written:
    """One letter and the file it went to."""

    letter: Letter
    paper: Paper
    path: Path

    def as_json(self) -> dict[str, Any]:
        """The letter's stable identifiers and its fields, for ``--json``."""
        return {"type": type(self.letter).__struct_config__.tag, "title": self.paper.pages[0].title,
                "kind": self.paper.kind, "number": self.paper.number, "file": str(self.path),
                "letter": msgspec.to_builtins(self.letter)}


def _free(path: Path, taken: set[Path]) -> Path:
    """``path``, or ``stem（2）.suffix`` … when this run already wrote that name (two notices of one kind)."""
    n, candidate = 1, path
    while candidate in taken:
        n += 1
        candidate = path.with_name(f"{path.stem}（{n}）{path.suffix}")
    taken.add(candidate)
    return candidate


def write_letters(letters: Sequence[Letter], number: str, fmt: Format, out_dir: Path) -> list[Written]:
    """Write each letter to ``out_dir`` (created if missing) as ``<number>-<kind>.<fmt>``."""
    from projections.documents.pdf import cjk_font, pdf_bytes
    from projections.documents.word import docx_bytes

    font = cjk_font() if fmt == "pdf" else None  # fail before writing anything when there is no font
    out_dir.mkdir(parents=True, exist_ok=True)
    taken: set[Path] = set()
    written: list[Written] = []
    for letter in letters:
        p = paper(letter, number)
        path = _free(out_dir / f"{p.filename}.{fmt}", taken)
        match fmt:
            case "txt":
                path.write_text(render(letter), encoding="utf-8")
            case "docx":
                path.write_bytes(docx_bytes(p))
            case "pdf":
                path.write_bytes(pdf_bytes(p, font))
        written.append(Written(letter, p, path))
    return written
