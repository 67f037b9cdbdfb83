"""Imports run one way between the top-level folders: schemas → aggregates → broker → (agencies | projections) → xiezhu.

Function-level imports count too; agencies and projections never import each other (a service
that reads a view declares a Protocol, and xiezhu wires the view in).
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Each folder and the folders it may import (itself included).
ALLOWED = {
    "schemas": {"schemas"},
    "aggregates": {"schemas", "aggregates"},
    "broker": {"schemas", "aggregates", "broker"},
    "agencies": {"schemas", "aggregates", "broker", "agencies"},
    "projections": {"schemas", "aggregates", "broker", "projections"},
    "xiezhu": {"schemas", "aggregates", "broker", "agencies", "projections", "xiezhu"},
}


def imported_folders(path: Path) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return [(line, top) for line, top in found if top in ALLOWED]


def test_every_import_runs_one_way_between_the_folders() -> None:
    wrong = [f"{path.relative_to(ROOT)}:{line} imports {top}"
             for folder, allowed in ALLOWED.items() for path in sorted((ROOT / folder).rglob("*.py"))
             for line, top in imported_folders(path) if top not in allowed]
    assert not wrong, "\n".join(wrong)
