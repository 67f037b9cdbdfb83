"""docs/fidelity.md maps the seed to code and tests: every test id it names must exist (the suite runs them)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAP = ROOT / "docs" / "fidelity.md"
TEST_ID = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def _tests_in(path: Path) -> set[str]:
    """The test functions a test file defines (read, not imported: collecting must not start anything)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
            and n.name.startswith("test_")}


def test_every_test_id_in_the_fidelity_map_exists() -> None:
    ids = TEST_ID.findall(MAP.read_text(encoding="utf-8"))
    assert len(ids) > 50, "the map names the tests that fail if a clause breaks"
    missing = []
    defined: dict[str, set[str]] = {}
    for file, name in ids:
        if file not in defined:
            defined[file] = _tests_in(ROOT / file) if (ROOT / file).exists() else set()
        if name not in defined[file]:
            missing.append(f"{file}::{name}")
    assert missing == []


def test_every_row_names_tests_or_says_why_not() -> None:
    """A clause is implemented and tested, or plainly 'not software' / 'not yet' with its reason."""
    rows = [line for line in MAP.read_text(encoding="utf-8").splitlines()
            if line.startswith("| ") and not line.startswith(("| clause", "| field", "| column", "| ---"))]
    assert rows
    bare = [r for r in rows if not TEST_ID.search(r) and "**not software**" not in r and "**not yet**" not in r]
    assert bare == []
