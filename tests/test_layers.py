"""The command line and the demo act only through the service layer (decision 28).

Reading views and the ledger is theirs to do; changing a bureau's store or the catalogue
goes through ``agencies.desk`` and ``agencies.justice``.  A grep, since a regression here is
a line someone adds.
"""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: What reaching into a store looks like: a store opened or named, the eventsourcing repository,
#: or a catalogue changed behind 区司法局's and the bureaus' services.
FORBIDDEN = re.compile(
    r"\.store\(|BureauStore|open_store|\.repository\b|\.stores\b"
    r"|\b(cat|catalogue|_registry\(ctx\))\.(apply_adjustment|review|publish|file_with_city|file_memorandum)\(")


def front_modules() -> list[Path]:
    cli = ROOT / "xiezhu" / "cli"
    found = sorted(cli.glob("*.py")) if cli.is_dir() else sorted((ROOT / "xiezhu").glob("cli*.py"))
    return found + sorted((ROOT / "xiezhu").glob("demo*.py"))


def test_the_cli_and_the_demo_never_touch_a_store() -> None:
    modules = front_modules()
    assert len(modules) > 5
    hits = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}" for p in modules
            for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if FORBIDDEN.search(line)]
    assert not hits, "call agencies.desk / agencies.justice instead:\n" + "\n".join(hits)


def test_agencies_never_import_projections() -> None:
    """The services declare Protocols for what they read; the bootstrap wires the views in."""
    for name in ("desk.py", "justice.py", "disclosure.py"):
        text = (ROOT / "agencies" / name).read_text(encoding="utf-8")
        assert not re.search(r"^\s*(from|import) (projections|xiezhu)\b", text, re.M), name


def test_nothing_below_xiezhu_reads_the_environment() -> None:
    hits = []
    for folder in ("schemas", "aggregates", "broker", "agencies", "projections"):
        for p in sorted((ROOT / folder).rglob("*.py")):
            code = "\n".join(line.split("#", 1)[0] for line in p.read_text(encoding="utf-8").splitlines())
            if re.search(r"os\.environ|os\.getenv|getpass\.getuser", code):
                hits.append(str(p.relative_to(ROOT)))
    assert not hits, hits
