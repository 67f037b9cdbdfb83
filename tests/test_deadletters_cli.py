"""``xiezhu dead-letters`` on a finished demo's data directory: the rejections of its hostile messages.

The demo's embedded nats-server has stopped; the command starts one on the data directory's
store to read the dead-letter stream.  Applicants' ID numbers never appear in clear.
"""
from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest

from broker.intake import header_text
from tests.conftest import copy_of_demo
from tests.helpers import clean_env
from tests.helpers import xiezhu_here as run
from xiezhu.cli.deadletters import body_view

#: What the demo's hostile messages are rejected for by gongan, the bureau they are sent to.
HOSTILE_REASONS = {"bad-signature", "wrong-sender", "wrong-recipient", "malformed"}
#: A full 居民身份证号, standing alone.
ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dX](?![0-9A-Za-z])")


@pytest.fixture(scope="module")
def demo(demo_run: tuple[Path, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
         ) -> tuple[Path, dict[str, Any]]:
    """The session's demo, copied: reading the dead letters starts a nats-server on its store."""
    return copy_of_demo(demo_run, tmp_path_factory.mktemp("demo-dlq"))


@pytest.fixture(scope="module")
def letters(demo: tuple[Path, dict[str, Any]]) -> list[dict[str, Any]]:
    data, _ = demo
    rows: list[dict[str, Any]] = json.loads(run("dead-letters", "--json", data_dir=data).stdout)
    return rows


def id_numbers(data: Path) -> set[str]:
    """Every ID number of the demo's population, from the bureaus' own records."""
    found: set[str] = set()
    for path in data.glob("bureaus/*/data.db"):
        db = sqlite3.connect(path)
        try:
            for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
                if "id_number" in [c[1] for c in db.execute(f"PRAGMA table_info('{table}')")]:
                    found |= {r[0] for r in db.execute(f"SELECT id_number FROM '{table}'")}
        finally:
            db.close()
    return found


def assert_no_id_number_in_clear(data: Path, *outputs: str) -> None:
    ids = id_numbers(data)
    assert len(ids) > 100  # the demo's population is there to look for
    for text in outputs:
        assert not [i for i in ids if i in text]
        assert not ID_NUMBER.search(text), ID_NUMBER.search(text)


def test_the_demos_hostile_messages_are_listed_with_their_reasons(demo, letters) -> None:  # type: ignore[no-untyped-def]
    _, summary = demo
    assert len(letters) == summary["rejected_messages"]  # the whole dead-letter stream
    counted = Counter(r["code"] for r in letters if r["code"] != "duplicate")  # a duplicate is not counted
    assert dict(counted) == summary["rejections_by_reason"]
    assert HOSTILE_REASONS <= {r["code"] for r in letters if r["receiver"] == "gongan"}
    assert [r["seq"] for r in letters] == sorted({r["seq"] for r in letters})
    for r in letters:
        assert r["reason"] and r["receiver"] and r["time"], r
        assert r["original_subject"].startswith("xz.") and r["size"] > 0
        assert r["sender"] == r["original_subject"].split(".")[1]
    impersonation = next(r for r in letters if r["code"] == "wrong-sender" and r["receiver"] == "gongan")
    assert (impersonation["sender"], impersonation["kid"].split("-")[0]) == ("shenpi", "gongan")


def test_filters_by_reason_and_receiver(demo, letters) -> None:  # type: ignore[no-untyped-def]
    data, _ = demo
    forged = json.loads(run("dead-letters", "--reason", "bad-signature", "--json", data_dir=data).stdout)
    assert forged and forged == [r for r in letters if r["code"] == "bad-signature"]
    gongan = json.loads(run("dead-letters", "--receiver", "gongan", "--json", data_dir=data).stdout)
    assert gongan == [r for r in letters if r["receiver"] == "gongan"]
    both = json.loads(run("dead-letters", "--receiver", "ledger", "--reason", "malformed", "--json",
                          data_dir=data).stdout)
    assert both and both == [r for r in letters if (r["receiver"], r["code"]) == ("ledger", "malformed")]
    first = json.loads(run("dead-letters", "--limit", "2", "--json", data_dir=data).stdout)
    rest = json.loads(run("dead-letters", "--after", str(first[-1]["seq"]), "--json", data_dir=data).stdout)
    assert first + rest == letters


def test_show_prints_one_dead_letter_with_personal_data_masked(demo, letters) -> None:  # type: ignore[no-untyped-def]
    data, _ = demo
    # The misaddressed request is validly signed: a whole envelope, with the applicant in it.
    misaddressed = next(r for r in letters if r["code"] == "wrong-recipient")
    shown = json.loads(run("dead-letters", "show", str(misaddressed["seq"]), "--json", data_dir=data).stdout)
    assert {k: shown[k] for k in misaddressed} == misaddressed
    assert shown["headers"]["Xz-Reject-Code"] == "wrong-recipient" and shown["headers"]["Xz-Sig"]
    assert shown["envelope"]["recipient"] != "gongan" and shown["envelope"]["type"] == "assistance.requested"
    assert shown["body"]["encoding"] == "json" and shown["body"]["size"] == misaddressed["size"]
    applicant = shown["body"]["content"]["payload"]["applicant"]
    assert "*" in applicant["id_number"] and "*" in applicant["name"]

    forged = next(r for r in letters if r["code"] == "bad-signature")
    table = run("dead-letters", "show", str(forged["seq"]), data_dir=data).stdout
    assert "bad-signature" in table and forged["reason"] in table and '"applicant"' in table
    listing = run("dead-letters", data_dir=data).stdout
    assert f"拒收消息 {len(letters)} 条" in listing
    assert_no_id_number_in_clear(data, json.dumps(shown, ensure_ascii=False), table, listing,
                                 json.dumps(letters, ensure_ascii=False))


def test_mistakes_are_one_clear_line(demo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data, _ = demo
    for args, says in [(("--reason", "forged"), "不是拒收原因"),
                       (("--receiver", "xz.>"), "不是单位代码"),
                       (("show", "99999"), "没有序号为 99999 的死信")]:
        proc = run("dead-letters", *args, data_dir=data, check=False)
        assert proc.returncode == 1 and proc.stderr.startswith("错误：") and says in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    empty = run("dead-letters", data_dir=tmp_path / "nothing-here", check=False)
    assert empty.returncode == 1 and "中没有 NATS 存储" in empty.stderr, empty.stderr
    # A NATS URL nothing listens on: one line at once, not minutes of retries with a traceback each.
    away = run("--lang", "en", "--nats-url", "nats://127.0.0.1:1", "dead-letters", data_dir=data, check=False,
               timeout=30)
    assert away.returncode == 1 and away.stderr.startswith("error: cannot reach NATS at nats://127.0.0.1:1")
    assert "Traceback" not in away.stderr and away.stderr.count("\n") == 1, away.stderr


def test_each_help_shows_an_example(demo) -> None:  # type: ignore[no-untyped-def]
    data, _ = demo
    for args in (("dead-letters", "--help"), ("dead-letters", "show", "--help")):
        assert "示例：xiezhu dead-letters" in run(*args, data_dir=data).stdout


def test_bodies_that_are_no_envelope_are_masked_too() -> None:
    """A body cut short, altered, not JSON or not even text still shows no ID number or name in clear."""
    number = "370405199001011234"
    applicant = {"kind": "person", "name": "张三丰", "id_number": number}
    whole = json.dumps({"payload": {"applicant": applicant, "matter": {"name": "食品经营许可"}}},
                       ensure_ascii=False).encode()
    cut = whole[:whole.index(number.encode()) + 12]  # the number cut short
    for body in (whole, cut, whole[:-3], number.encode(), b"\xff" + whole, b'{"n": %s}' % number.encode(),
                 b"%s,%s" % (number.encode(), number[:-1].encode() + b"X")):
        for full in (True, False):
            view = body_view(body, full=full)
            shown = json.dumps(view, ensure_ascii=False)
            assert number not in shown and number[:12] not in shown and "张三丰" not in shown, shown
            assert number.encode().hex() not in view["content"].replace(" ", "") if view["encoding"] == "hex" else True
    assert body_view(whole, full=False)["content"]["payload"]["matter"]["name"] == "食品经营许可"  # only personal data
    assert "张三丰".encode().hex() not in body_view(b"\xff" + whole, full=True)["content"].replace(" ", "")


def test_a_header_that_is_not_ascii_reads_as_text() -> None:
    # What nats-py's get_msg hands back for a reason quoting 第七条.
    parsed = BytesParser().parsebytes("Xz-Reject-Reason: 第七条：不在目录中\r\n\r\n".encode())
    assert header_text(parsed["Xz-Reject-Reason"]) == "第七条：不在目录中"
    assert header_text("plain") == "plain"


def test_the_dead_letters_read_at_80_columns(demo) -> None:  # type: ignore[no-untyped-def]
    from rich.text import Text

    data, _ = demo
    letters = json.loads(run("dead-letters", "--json", data_dir=data).stdout)
    text = run("dead-letters", env=clean_env(data, COLUMNS="80")).stdout
    assert max(Text(line).cell_len for line in text.splitlines()) <= 80
    assert "…" not in text
    for r in letters:  # the identifying columns whole: sequence and reason code
        assert any(line.split("│")[1].strip() == str(r["seq"]) and r["code"] in line
                   for line in text.splitlines() if line.count("│") > 3), r["seq"]
