"""docs/glossary.md and schemas/labels.py say the same: each label table's section lists exactly its pairs."""
from __future__ import annotations

import re
from pathlib import Path

from schemas import labels

GLOSSARY = Path(__file__).resolve().parent.parent / "docs" / "glossary.md"
SECTION = re.compile(r"^## .*\(`labels\.([A-Z_]+)`\)\s*$")
ROW = re.compile(r"^\|\s*([^|]+?)\s*\|\s*`([^`]+)`\s*\|\s*([^|]*?)\s*\|\s*$")


def glossary_tables() -> dict[str, dict[str, tuple[str, str]]]:
    """``labels.NAME`` → identifier → (中文, meaning), from the glossary's marked sections."""
    tables: dict[str, dict[str, tuple[str, str]]] = {}
    current: str | None = None
    for line in GLOSSARY.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            m = SECTION.match(line)
            current = m.group(1) if m else None
            if current is not None:
                assert current not in tables, f"two sections for labels.{current}"
                tables[current] = {}
            continue
        row = ROW.match(line)
        if current is not None and row:
            zh, identifier, meaning = row.groups()
            assert identifier not in tables[current], f"labels.{current}: {identifier} twice"
            tables[current][identifier] = (zh, meaning)
    return tables


def test_every_label_table_has_its_section_with_the_same_pairs() -> None:
    documented = glossary_tables()
    assert set(documented) == set(labels.TABLES), "a label table without a glossary section, or the reverse"
    for name, table in labels.TABLES.items():
        assert {k: zh for k, (zh, _) in documented[name].items()} == table, f"labels.{name}"


def test_every_glossary_line_explains_itself() -> None:
    for name, rows in glossary_tables().items():
        for identifier, (_, meaning) in rows.items():
            assert len(meaning) >= 5, f"labels.{name}: {identifier} needs a line of meaning"


def test_the_tables_are_the_module_tables() -> None:
    """TABLES names every table of the module, so a new one cannot be left out of the glossary."""
    tables = {k: v for k, v in vars(labels).items() if k.isupper() and k != "TABLES" and isinstance(v, dict)}
    assert tables == labels.TABLES


def test_every_rule_of_the_procedure_has_its_label() -> None:
    """A history line names a broken rule by labels.RULE: a new RuleError code needs its 中文."""
    from aggregates import errors

    codes = {c.code for c in vars(errors).values()
             if isinstance(c, type) and issubclass(c, errors.RuleError)}
    assert codes == set(labels.RULE)
