"""What every ``xiezhu`` command module shares: options, the settings and system of the run, output, errors.

Every command group (``xiezhu/cli/<group>.py``) imports from here; ``main`` gathers the groups
and nothing imports ``main``, so the package has no import cycle (decision 36).
"""
from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import os
import signal
import sqlite3
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
import typer
from rich.console import Console
from rich.markup import escape

from aggregates.registry import Registry, zh_name
from aggregates.workdays import SHANGHAI
from schemas.errors import XiezhuError
from xiezhu.settings import ENV_DATA_DIR, ENV_DATABASE_URL, ENV_NATS_URL, Settings

if TYPE_CHECKING:  # the ledger, the bootstrap and NATS load on first use: a command's start-up stays light
    from broker.ledger.store import Ledger
    from xiezhu.bootstrap import System

#: Tables and notes for people (stdout); progress, confirmations and errors (stderr).
out = Console()
err = Console(stderr=True)

#: ``--json``: a command that prints a table prints JSON instead with it.
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
DataDir = Annotated[Path | None, typer.Option("--data-dir", envvar=ENV_DATA_DIR, show_envvar=True,
                                              help="The one data directory every command works on.")]
NatsUrl = Annotated[str | None, typer.Option("--nats-url", envvar=ENV_NATS_URL, show_envvar=True,
                                             help="Use this NATS server instead of starting the embedded one.")]
DatabaseUrl = Annotated[str | None, typer.Option(
    "--database-url", envvar=ENV_DATABASE_URL, show_envvar=True,
    help="postgresql://…: keep the bureau stores there, each in its own schema, instead of SQLite files.")]



#: ``--reveal``/``--reason``/``--operator``: personal data in full, for the entitled, on the record.
Reveal = Annotated[bool, typer.Option(
    "--reveal", help="Show applicant names, ID numbers and commitment texts in full: only where this machine "
                     "holds the key that opens them, with --reason, recorded in the access log.")]
Reason = Annotated[str | None, typer.Option("--reason", help="Why the full data is needed (goes to the access log).")]
Operator = Annotated[str | None, typer.Option(
    "--operator", envvar="XIEZHU_OPERATOR", show_envvar=True, help="Who is looking (default: the login name).")]


class CliInputError(XiezhuError):
    """An option's value cannot be used."""

    code = "cli.input"


class State:
    """What the global options resolved to (``ctx.obj`` of the root command)."""

    settings: Settings
    system: System


def settings_of(ctx: typer.Context) -> Settings:
    """The settings the root ``xiezhu`` app resolved (or resolved now, for a sub-app run on its own)."""
    obj = ctx.find_root().obj
    if obj is not None and hasattr(obj, "settings"):
        return obj.settings  # type: ignore[no-any-return]
    return Settings.resolve(None, None)


def system_of(ctx: typer.Context) -> System:
    """The object graph of this run's data directory (built once per command, on the system clock)."""
    from aggregates.clock import SystemClock
    from xiezhu.bootstrap import System

    root = ctx.find_root()
    obj = root.obj
    system = getattr(obj, "system", None)
    if system is None:
        system = System(settings_of(ctx), Registry.load(), SystemClock())
        if obj is not None and hasattr(obj, "settings"):
            obj.system = system
    return system


def ledger_at(settings: Settings, *, read_only: bool = True) -> Ledger:
    """The ledger of the data directory, with 区司法局's box keys where this machine holds them.

    Without them the ledger's signatures and chain can still be audited; what the cases say
    cannot be read (decision 23).  Read-only unless a command appends (``xiezhu checkpoint``):
    reads work on a read-only copy of a data directory too.
    """
    from agencies.trust.keys import KeyStore
    from broker.ledger.store import Ledger

    return Ledger(settings.ledger_location, opener=KeyStore(settings.keys_dir).ledger_opener(), read_only=read_only)


def view_key(settings: Settings) -> bytes:
    """The key the read models encrypt applicants' data with: 区司法局's store key (decision 26)."""
    from agencies.trust.keys import KeyStore
    from aggregates.registry import JUSTICE
    from xiezhu.bootstrap import views_exist

    return KeyStore(settings.keys_dir).store_key(JUSTICE, create=not views_exist(settings))


def operator_name(given: str | None) -> str:
    """The person acting: ``--operator``, else ``XIEZHU_OPERATOR``, else the login name.

    Resolved here, at the entry point, once; the services take the name as given.
    """
    for name in (given, os.environ.get("XIEZHU_OPERATOR")):
        if name and name.strip():
            return name.strip()
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def in_lang(zh: str, en: str) -> str:
    """``zh`` or ``en``: a line for a person in the language of this run (``--lang``, ``XIEZHU_LANG``, else 中文)."""
    from xiezhu.cli.tables import lang

    return zh if lang() == "zh" else en


def said(settings: Settings, bureau: str, what: str, what_zh: str) -> None:
    """Say what was committed, and whether it goes out now or waits for the bureau's agent."""
    from aggregates.registry import zh_name
    from xiezhu.running import agent_running

    if agent_running(settings.bureau_dir(bureau)):
        err.print(in_lang(f"[green]{what_zh}[/]；由{zh_name(bureau)}的代理程序发送",
                          f"[green]{what}[/]; {bureau}'s agent sends it"))
    else:
        err.print(in_lang(f"[green]{what_zh}[/]；已排队，代理程序启动后发送（`xiezhu agent --bureau {bureau}`）",
                          f"[green]{what}[/]; queued: the agent will send it (start `xiezhu agent --bureau {bureau}`)"))


def catalogue_kind(kind: str) -> Literal["matters", "assistance"]:
    if kind not in ("matters", "assistance"):
        raise XiezhuError(f"--kind must be matters (附件8) or assistance (附件9), not {kind!r}",
                          zh=f"--kind 应为 matters（附件8）或 assistance（附件9），而不是 {kind!r}")
    return kind  # type: ignore[return-value]


def print_json(obj: Any) -> None:
    """One JSON document on standard output."""
    sys.stdout.write(msgspec.json.encode(obj).decode() + "\n")


def parse_instant(text: str, option: str, error: type[XiezhuError] = CliInputError) -> datetime:
    """An ISO date or date-time from an option; a naive one is read in Asia/Shanghai."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise error(f"{option} {text!r} is not an ISO date-time, e.g. 2026-09-30T10:00+08:00",
                    zh=f"{option} {text!r} 不是 ISO 日期时间，例如 2026-09-30T10:00+08:00", value=text) from None
    return value if value.utcoffset() is not None else value.replace(tzinfo=SHANGHAI)


def bureau_code(text: str | None) -> str | None:
    """A ``--bureau`` value as a code: it may be the code, the Chinese name, its 简称 or a unique part of the name."""

    return Registry.load().resolve(text) if text else None


def resolve_bureau(value: str | None) -> str | None:
    """A typer callback for ``--bureau`` options: the code of what the person typed (see :func:`bureau_code`)."""
    return bureau_code(value)


class OneLine(logging.Filter):
    """Each log record on one line: a library's error with a traceback (nats-py's on every reconnect
    attempt) becomes its message and the exception; the same line repeated is written once, until
    another line comes (a state change)."""

    def __init__(self) -> None:
        super().__init__()
        self._last: tuple[str, str] | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            record.msg, record.args = f"{record.getMessage()}: {type(exc).__name__}: {exc}", None
            record.exc_info, record.exc_text = None, None
        line = (record.name, " ".join(record.getMessage().split()))
        if line == self._last:
            return False
        self._last = line
        return True


def local_time(iso: str | None) -> str:
    """An ISO time as month-day hour:minute in Asia/Shanghai ("" for none)."""
    if not iso:
        return ""
    return datetime.fromisoformat(iso).astimezone(SHANGHAI).strftime("%m-%d %H:%M")


def history_lines(h: Any) -> list[dict[str, Any]]:
    """A case history's lines for JSON (without the envelopes they were read from)."""
    return [{k: v for k, v in msgspec.structs.asdict(line).items() if k != "envelope"} for line in h.lines]


def print_history(h: Any, title: str) -> None:
    """A case history as a table of its signed events, then its findings."""
    from xiezhu.cli.screens import HISTORY_COLUMNS, Words, history_rows
    from xiezhu.cli.tables import lang, show

    language = lang()
    show(f"{title} — " + (f"{len(h.lines)} 条签名事件" if language == "zh" else f"{len(h.lines)} signed events"),
         HISTORY_COLUMNS, history_rows(h.lines, Words(Registry.load(), language), lambda c: h.numbers.get(c, c)),
         language=language)
    for finding in h.findings_zh if language == "zh" and h.findings_zh else h.findings:
        out.print(f"• {finding}", highlight=False)


def case_history(settings: Settings, number: str, sender: str | None,
                  disclose: Callable[[Any, str], Any] | None = None) -> Any:
    from projections.history import find_cases, history

    if not settings.ledger_exists():
        raise XiezhuError(f"no ledger in {settings.data_dir}; run `xiezhu demo` or start `xiezhu ledger` first",
                          zh=f"{settings.data_dir} 中没有账本；请先运行 `xiezhu demo` 或启动 `xiezhu ledger`")
    ledger_ = ledger_at(settings)
    try:
        found = find_cases(ledger_, number, sender)
        if not found:
            raise XiezhuError(f"no case numbered {number}" + (f" from {sender}" if sender else "") + " in the ledger",
                              zh="账本中没有" + (f"{zh_name(sender)}的" if sender else "") + f"编号为 {number} 的案件")
        if len(found) > 1:
            raise XiezhuError(f"{len(found)} cases are numbered {number}; add --from REQUESTER",
                              zh=f"编号为 {number} 的案件有 {len(found)} 件；请加 --from 提出方")
        from xiezhu.bootstrap import existing_catalogue

        catalogue = existing_catalogue(settings)
        try:
            h = history(ledger_, found[0], catalogue=catalogue)
        finally:
            if catalogue is not None:
                catalogue.close()
        return h, (disclose(ledger_, found[0]) if disclose else None)
    finally:
        ledger_.close()


#: Seconds a service stopped while starting gets to end its start and stop, before it leaves without them.
STOP_GRACE_S = 10.0


def run_forever(start: Callable[[], Any], stop: Callable[[], Any], what: str, what_zh: str = "") -> None:
    """Run async services until SIGINT/SIGTERM, then stop them cleanly."""
    from xiezhu.cli.common import OneLine
    from xiezhu.logs import configure

    # One line per record, the same failure (nats-py's on every reconnect attempt) said once until it changes.
    configure().addFilter(OneLine())

    async def body() -> None:
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, done.set)
        # A signal while starting (NATS not reachable yet: connecting retries) stops at once.
        starting, signalled = asyncio.create_task(start()), asyncio.create_task(done.wait())
        await asyncio.wait({starting, signalled}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            # Bounded: a start that swallows its cancellation (a client library's retry loop) or a
            # worker thread stuck in a call must not keep a stopped service alive for minutes.
            await asyncio.wait({starting}, timeout=STOP_GRACE_S)
            stopped = starting.done()
            if stopped:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await starting
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(stop(), STOP_GRACE_S)
            else:
                logging.getLogger("xiezhu").warning("%s: its start did not end within %.0f s of the signal; "
                                                    "leaving without it", what, STOP_GRACE_S)
            err.print(in_lang(f"{what_zh or what + ' '}在启动完成前已停止", f"{what} stopped before it had started"))
            if not stopped:  # nothing was started, nothing is half-written: SQLite commits are atomic
                logging.shutdown()
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(0)
            return
        signalled.cancel()
        starting.result()  # a start that failed says why
        err.print(in_lang(f"[green]{what_zh or what + ' '}正在运行[/]；按 Ctrl-C 停止",
                          f"[green]{what} running[/]; Ctrl-C to stop"))
        await done.wait()
        await stop()

    asyncio.run(body())


def _nats_errors() -> tuple[type[BaseException], ...]:
    """nats-py's error class if a command loaded nats-py (one that did not cannot have raised it)."""
    errors = sys.modules.get("nats.errors")
    return (errors.Error,) if errors is not None else ()


def failed(language: str, en: str, zh: str) -> None:
    """The one line a failed command prints: ``错误：`` and the 中文, or ``error:`` and the English.

    One line whatever the width (soft_wrap), and a message quoting "[…]" is not taken for markup.
    """
    line = f"[red]错误：[/]{escape(zh)}" if language == "zh" else f"[red]error:[/] {escape(en)}"
    err.print(line, highlight=False, markup=True, soft_wrap=True)


def _postgres_error(e: BaseException) -> BaseException | None:
    """psycopg's error behind ``e`` (itself, or what eventsourcing's recorder wrapped), if psycopg was loaded."""
    psycopg = sys.modules.get("psycopg")
    if psycopg is None:
        return None
    found: BaseException | None = next((c for c in (e, e.__cause__, e.__context__)
                                        if isinstance(c, psycopg.Error)), None)
    return found


def one_line_errors(app: typer.Typer) -> None:
    """Run ``app``: a mistake becomes one clear ``error:`` (``错误：``) line and exit 1, never a traceback.

    The line is in the language of the run (``--lang``, ``XIEZHU_LANG``, else 中文); ``str(e)``, the
    logs and the HTTP API keep the English (decision 64).
    """
    from xiezhu.cli.helptext import language_of

    try:
        app(standalone_mode=True)  # Click prints usage errors itself (exit code 2)
    except XiezhuError as e:
        failed(language_of(sys.argv[1:]), str(e), e.text("zh"))
        sys.exit(1)
    except Exception as e:
        language = language_of(sys.argv[1:])
        if (pg := _postgres_error(e)) is not None:  # unreachable, refused, no such database or role, no room
            first = " ".join(str(pg).split())
            failed(language, f"cannot use the PostgreSQL database: {first}", f"无法使用 PostgreSQL 数据库：{first}")
            sys.exit(1)
        if isinstance(e, (OSError, *_nats_errors())):
            failed(language, f"cannot reach NATS or a file: {e}", f"无法连接 NATS 或读写文件：{e}")
            sys.exit(1)
        if not isinstance(e, sqlite3.DatabaseError):
            raise
        if "readonly" in str(e):
            # A command that writes (a store, a view's catch-up) on a read-only copy of a data directory.
            failed(language, f"this command writes to the data directory, which is read-only here: {e}",
                   f"此命令需要写入数据目录，而这里的数据目录是只读的：{e}")
        elif isinstance(e, sqlite3.OperationalError) and "malformed" not in str(e):
            raise
        else:  # "file is not a database", "database disk image is malformed"
            failed(language, f"a data file is damaged: {e}; `xiezhu audit` checks the ledger, "
                   "`xiezhu projections rebuild` rebuilds the views",
                   f"数据文件已损坏：{e}；`xiezhu audit` 检查账本，`xiezhu projections rebuild` 重建视图")
        sys.exit(1)
