"""What every ``xiezhu`` command module shares: the settings of the run, JSON output, time options."""
from __future__ import annotations

import getpass
import logging
import os
import sys
from datetime import datetime
from typing import Annotated, Any

import msgspec
import typer

from aggregates.store import SHANGHAI
from broker.ledger.store import Ledger
from schemas.errors import XiezhuError
from xiezhu.bootstrap import System
from xiezhu.settings import Settings

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


def settings_of(ctx: typer.Context) -> Settings:
    """The settings the root ``xiezhu`` app resolved (or resolved now, for a sub-app run on its own)."""
    obj = ctx.find_root().obj
    if obj is not None and hasattr(obj, "settings"):
        return obj.settings  # type: ignore[no-any-return]
    return Settings.resolve(None, None)


def system_of(ctx: typer.Context) -> System:
    """The object graph of this run's data directory (built once per command, on the system clock)."""
    from aggregates.clock import SystemClock
    from aggregates.registry import Registry

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

    return Ledger(settings.ledger_path, opener=KeyStore(settings.keys_dir).ledger_opener(), read_only=read_only)


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


def print_json(obj: Any) -> None:
    """One JSON document on standard output."""
    sys.stdout.write(msgspec.json.encode(obj).decode() + "\n")


def parse_instant(text: str, option: str, error: type[XiezhuError] = CliInputError) -> datetime:
    """An ISO date or date-time from an option; a naive one is read in Asia/Shanghai."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise error(f"{option} {text!r} is not an ISO date-time, e.g. 2026-09-30T10:00+08:00", value=text) from None
    return value if value.utcoffset() is not None else value.replace(tzinfo=SHANGHAI)


def bureau_code(text: str | None) -> str | None:
    """A ``--bureau`` value as a code: it may be the code, the Chinese name, its 简称 or a unique part of the name."""
    from aggregates.registry import Registry

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
