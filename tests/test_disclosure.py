"""The access log of disclosures: append-only, chained, refused when it cannot be written."""
from __future__ import annotations

from pathlib import Path

import pytest

from agencies.disclosure import AccessLog, AccessLogBroken, DisclosureRefused


def record(log: AccessLog, reason: str, subject: str = "shenpi/20260001") -> None:
    log.record(command="replay", subject=subject, reason=reason, operator="王审查", entitled_by="sifa box key")


def test_each_line_names_the_one_before_and_an_edit_anywhere_is_found(tmp_path: Path) -> None:
    log = AccessLog(tmp_path)
    for i in range(3):
        record(log, f"复核第{i}件", subject=f"shenpi/2026000{i}")
    entries = list(log.entries())
    assert [e.subject for e in entries] == ["shenpi/20260000", "shenpi/20260001", "shenpi/20260002"]
    assert entries[0].prev == "" and all(len(e.prev) == 64 for e in entries[1:])
    assert log.path.stat().st_mode & 0o777 == 0o600
    good = log.path.read_bytes()
    lines = good.splitlines(keepends=True)
    for broken in (lines[1:],                                    # the first removed
                   [lines[0], lines[2]],                         # one from the middle removed
                   [lines[1], lines[0], lines[2]],               # two swapped
                   [lines[0], lines[1].replace("复核第1件".encode(), "复核第9件".encode()), lines[2]]):
        log.path.write_bytes(b"".join(broken))
        with pytest.raises(AccessLogBroken):
            list(log.entries())
    log.path.write_bytes(good)
    record(log, "再次复核")  # appending goes on after the last line
    assert len(list(log.entries())) == 4


def test_no_reason_or_no_place_to_write_shows_nothing(tmp_path: Path) -> None:
    log = AccessLog(tmp_path)
    with pytest.raises(DisclosureRefused, match="--reason"):
        record(log, "  看 ")
    assert not log.path.exists()
    log.path.mkdir()  # a log that cannot be opened for writing (whoever runs the test, root included)
    with pytest.raises(DisclosureRefused, match="could not be recorded"):
        record(log, "核查户籍信息")
