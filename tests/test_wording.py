"""A case's history reads in 中文, bureaus by name (issue 16, point 4: not `shenpi → gongan`).

The session's demo ledger holds every kind of event the demo makes (requests, replies, declines,
withdrawals, commitment steps and consequences, disputes, reminders and breach notices): each is
worded in 中文 wherever the English summary words it, and no line names a bureau by its code.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from rich.text import Text

from aggregates.registry import Registry
from projections.history import summarize
from projections.wording import describe
from tests.helpers import clean_env
from tests.helpers import xiezhu_here as xiezhu
from xiezhu.cli.common import ledger_at
from xiezhu.settings import Settings


def test_every_event_the_demo_signs_is_worded_in_chinese_with_bureau_names(
        demo_run: tuple[Path, dict[str, Any]]) -> None:
    data, _ = demo_run
    reg = Registry.load()
    codes = [b.code for b in reg]
    by_code = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, codes)) + r")(?= →| 与| 回复| 登记|：)")
    ledger = ledger_at(Settings.resolve(data, None))
    worded: set[str] = set()
    try:
        for entry in ledger.entries():
            env, _ = ledger.read(entry.signed.body)
            assert env is not None, entry.pos
            english, chinese = summarize(env), describe(env, reg.name)
            if not english.startswith(env.type):  # the English summary has words for it: so must 中文
                assert not chinese.startswith(env.type), (env.type, chinese)
                assert re.search(r"[\u4e00-\u9fff]", chinese), chinese
                worded.add(env.type)
            assert not by_code.search(chinese), chinese
    finally:
        ledger.close()
    assert {"assistance.requested", "assistance.received", "assistance.replied", "commitment.applied",
            "commitment.approved", "commitment.found-false"} <= worded, sorted(worded)


def test_the_history_table_names_bureaus_and_steps_in_chinese_at_80_columns(
        demo_run: tuple[Path, dict[str, Any]]) -> None:
    data, _ = demo_run
    rows = json.loads(xiezhu("sla", "--json", data_dir=data).stdout)
    replied = next(r for r in rows.values() if r["status"] == "replied")
    args = ("history", replied["number"], "--from", replied["requester"])
    reg = Registry.load()
    table = xiezhu(*args, env=clean_env(data, COLUMNS="80")).stdout
    assert f"{replied['requester']} → {replied['assistor']}" not in table
    assert "行政协助函" in table and "回复" in table and "登记送达" in table
    assert reg.short(replied["requester"]) in table and "…" not in table
    assert max(Text(line).cell_len for line in table.splitlines()) <= 80
    english = xiezhu("--lang", "en", *args, data_dir=data).stdout
    assert f"{replied['requester']} → {replied['assistor']} 行政协助函" in english
