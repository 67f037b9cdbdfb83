"""What every ``xiezhu`` command module shares: the settings of the run, JSON output, time options."""
from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

import msgspec
import typer

from aggregates.store import SHANGHAI
from schemas.errors import XiezhuError
from xiezhu.settings import Settings


class CliInputError(XiezhuError):
    """An option's value cannot be used."""

    code = "cli.input"


def settings_of(ctx: typer.Context) -> Settings:
    """The settings the root ``xiezhu`` app resolved (or resolved now, for a sub-app run on its own)."""
    obj = ctx.find_root().obj
    if obj is not None and hasattr(obj, "settings"):
        return obj.settings  # type: ignore[no-any-return]
    return Settings.resolve(None, None)


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
