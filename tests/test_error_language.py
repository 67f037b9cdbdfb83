"""A refusal speaks to a person in 中文 and to a log in English (decision 64).

Every error xiezhu raises on purpose carries both texts: the English ``message`` (``str(e)``,
the logs, the HTTP ``message``) and the 中文 ``zh`` the command line prints unless ``--lang en``.
A scan of the source keeps it so: a new ``raise SomeError("…")`` without its 中文 fails here.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import re
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from agencies.trust.keys import KeyStore
from aggregates.registry import Registry, zh_name
from schemas.errors import XiezhuError, zh_of
from tests.conftest import ITEMS, RESIDENT, START, publish_catalogue
from tests.helpers import clean_env
from tests.helpers import xiezhu_here as run
from xiezhu.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
#: The packages whose errors reach a person through the command line or the HTTP API.
PACKAGES = ("schemas", "aggregates", "broker", "agencies", "projections", "xiezhu")
#: 中文: a character, or the full-width punctuation a 中文 sentence is written with (“：”, “；”, “（”).
CJK = re.compile(r"[\u4e00-\u9fff\u3000-\u303f\uff00-\uffef]")


def _modules() -> list[Path]:
    return [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py")) if p.name != "__main__.py"]


def _error_classes() -> dict[str, list[type[XiezhuError]]]:
    """Every XiezhuError subclass by class name (imported, so that none is missed)."""
    for p in _modules():
        importlib.import_module(".".join(p.relative_to(ROOT).with_suffix("").parts))
    found: dict[str, list[type[XiezhuError]]] = {}
    todo: list[type[XiezhuError]] = [XiezhuError]
    while todo:
        cls = todo.pop()
        found.setdefault(cls.__name__, []).append(cls)
        todo += cls.__subclasses__()
    return found


def _says_its_own_chinese(cls: type[XiezhuError]) -> bool:
    """A class whose own ``__init__`` builds the 中文 from its arguments (e.g. an import's problem list)."""
    init = cls.__dict__.get("__init__")
    return init is not None and "zh=" in inspect.getsource(init)


def test_every_error_raised_with_a_message_also_says_it_in_chinese() -> None:
    classes = _error_classes()
    own = {name for name, cs in classes.items() if all(_says_its_own_chinese(c) for c in cs)}
    missing, english, seen = [], [], 0
    for p in _modules():
        src = p.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(src)):
            if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)):
                continue
            func = node.exc.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            # ``error``: parse_instant's parameter, the XiezhuError class its caller chooses
            if (name not in classes and name != "error") or name in own or not node.exc.args:
                continue
            seen += 1
            where = f"{p.relative_to(ROOT)}:{node.lineno}"
            zh = next((k.value for k in node.exc.keywords if k.arg == "zh"), None)
            if zh is None:
                missing.append(where)
            elif isinstance(zh, ast.Constant | ast.JoinedStr | ast.BinOp) and not CJK.search(
                    ast.get_source_segment(src, zh) or ""):
                english.append(where)  # a literal that is no 中文 at all
    assert seen > 500, seen  # the scan sees the raise sites (a refactor that hides them fails here)
    assert not missing, "raise …Error(message, zh=…) — these give no 中文:\n" + "\n".join(missing)
    assert not english, "the zh= of these has no 中文 in it:\n" + "\n".join(english)


def test_an_error_keeps_its_english_for_logs_and_gives_its_chinese_to_people() -> None:
    e = XiezhuError("no ledger in /d", zh="/d 中没有账本", path="/d")
    assert str(e) == e.message == "no ledger in /d" and e.details == {"path": "/d"}
    assert e.text("zh") == "/d 中没有账本" and e.text("en") == "no ledger in /d"
    assert XiezhuError("only English").text("zh") == "only English"  # never an empty line
    assert zh_of(e) == "/d 中没有账本" and zh_of(ValueError("bad")) == "bad"
    assert zh_name("gongan") == "区公安分局" and zh_name("nosuch") == "nosuch"
    with pytest.raises(XiezhuError) as raised:
        Registry.load().resolve("镇人民政府")
    assert "zhangshanzi" in raised.value.text("zh") and "请写出更多名称" in raised.value.text("zh")
    assert "give more of the name" in str(raised.value)


@pytest.fixture
def clerk_dir(tmp_path: Path) -> Settings:
    """A data directory with keys and a published catalogue: a clerk's commands reach the desk."""
    from aggregates.clock import SystemClock
    from xiezhu.bootstrap import open_catalogue

    settings = Settings(data_dir=tmp_path / "data")
    KeyStore(settings.keys_dir).ensure(Registry.load().codes(), valid_from=START - timedelta(days=1))
    publish_catalogue(SimpleNamespace(catalogue=open_catalogue(settings, SystemClock())))  # type: ignore[arg-type]
    return settings


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


REQUEST = ["request", "--bureau", "shenpi", "--to", "gongan", "--applicant-name", RESIDENT["name"],
           "--applicant-id", RESIDENT["id_number"], "--matter-code", "370405-XK-0101", "--matter-name", "食品经营许可",
           "--item", "本人无犯罪记录|police.no-criminal-record"]

#: A refusal from each layer a person meets: the command line's own checks, the registry, the
#: catalogue behind the desk (第七条), the calendar, the services' runner, the ledger's absence.
REFUSALS = [
    ([*REQUEST, "--catalogue-item", "XZ-9999"], "第七条：XZ-9999 不在已公布的行政协助事项清单中",
     "第七条: XZ-9999 is not in the published 行政协助事项清单"),
    ([*REQUEST, "--catalogue-item", ITEMS["gongan"], "--channel", "fax"], "--channel 'fax'：应为 platform",
     "--channel 'fax': platform or letter"),
    ([*REQUEST[:1], "--bureau", "镇人民政府", *REQUEST[3:]], "个单位相符", "bureaus: "),
    (["history", "20260001"], "中没有账本；请先运行 `xiezhu demo`", "run `xiezhu demo` or start `xiezhu ledger`"),
    (["calendar", "load", "none.toml"], "节假日安排文件 none.toml：无法读取", "schedule file none.toml: cannot"),
    (["run"], "没有可运行的服务：请指定 --bureau 或 --ledger", "nothing to run: name a --bureau, or --ledger"),
    (["keys", "publish"], "keys publish 需要 --nats-url", "keys publish needs --nats-url"),
    (["--lang", "fr", "cases"], "--lang 应为 zh 或 en，而不是 'fr'", "--lang must be zh or en, not 'fr'"),
]


@pytest.mark.parametrize(("args", "zh", "en"), REFUSALS, ids=[" ".join(r[0][:2]) for r in REFUSALS])
def test_a_refusal_is_one_chinese_line_by_default_and_english_with_lang_en(
        clerk_dir: Settings, args: list[str], zh: str, en: str) -> None:
    data = clerk_dir.data_dir
    before = _files(data)
    answers = {
        "zh": run(*args, data_dir=data, check=False),
        "en": run("--lang", "en", *args, data_dir=data, check=False) if args[0] != "--lang" else None,
        "env": run(*args, env=clean_env(data, XIEZHU_LANG="en"), check=False)
        if args[0] != "--lang" else None,
    }
    for language, proc in answers.items():
        if proc is None:
            continue
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        [line] = proc.stderr.strip().splitlines()  # one line, whatever the width
        if language == "zh":
            assert line.startswith("错误：") and zh in line and en not in line, line
        else:
            assert line.startswith("error: ") and en in line and zh not in line, line
    after = _files(data)
    # nothing changed: no file made, none written (a reader leaves SQLite's shared-memory index and an empty WAL)
    assert {k: v for k, v in after.items() if not k.endswith("-shm") and (v or not k.endswith("-wal"))} == before


def test_a_usage_mistake_says_clicks_sentence_in_chinese_too(tmp_path: Path) -> None:
    for args, zh, en in [(["sla", "--since", "x"], "没有选项 --since", "No such option: --since"),
                         (["history"], "缺少参数 'number'。", "Missing argument 'number'."),
                         (["init"], "没有命令 'init'。", "No such command 'init'."),
                         (["sla", "stat"], "没有命令 'stat'。是否想用 'stats'？", "Did you mean 'stats'?")]:
        chinese = run(*args, data_dir=tmp_path, check=False)
        english = run("--lang", "en", *args, data_dir=tmp_path, check=False)
        assert chinese.returncode == english.returncode == 2
        assert zh in chinese.stderr and en not in chinese.stderr and en in english.stderr, chinese.stderr


def test_the_http_api_keeps_its_english_message_and_adds_the_chinese_beside_it() -> None:
    from xiezhu.http.app import _problem

    body = _problem(409, "rule.order", "case 20260001 is already replied", "案件 20260001 已经是已答复").body
    assert body == '{"error":"rule.order","message":"case 20260001 is already replied",' \
                   '"message_zh":"案件 20260001 已经是已答复"}'.encode()
    assert b"message_zh" not in _problem(422, "invalid", "text: too long").body  # none where there is none
