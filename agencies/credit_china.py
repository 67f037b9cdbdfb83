"""信用中国: where the credit view's outbox sends credit records (三(三): 推送至信用中国计入诚信档案).

``CreditChina`` is the one method an endpoint needs.  ``DirectoryCreditChina`` writes each
record as a JSON file (the default for demos and offline sites: a directory can be shipped
or pointed at a real endpoint later); ``HttpCreditChina`` POSTs it as JSON.  Every record
carries a stable ``record_id`` (the ledger event that caused it), sent as the
``Idempotency-Key`` header and used as the file name, so a re-push after a crash between
the push and its bookkeeping is recognisable as the same record.
"""
from __future__ import annotations

import http.client
import logging
import re
import urllib.error
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import msgspec

from broker.files import write_private
from schemas.errors import XiezhuError

log = logging.getLogger(__name__)

_RECORD_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class CreditChinaError(XiezhuError):
    """A record could not be delivered to 信用中国 (network, non-2xx answer, or the directory)."""

    code = "credit-china"


class CreditChina(Protocol):
    """An endpoint that accepts one credit record and returns its receipt id."""

    def push(self, record: dict[str, Any]) -> str: ...


def _record_id(record: Mapping[str, Any]) -> str:
    rid = record.get("record_id")
    if not isinstance(rid, str) or not _RECORD_ID.match(rid):
        raise CreditChinaError(f"a credit record needs a record_id (a UUID), not {rid!r}",
                               zh=f"信用记录须有 record_id（UUID），而不是 {rid!r}")
    return rid


class DirectoryCreditChina:
    """One ``<record_id>.json`` per record in a directory (mode 0600: it holds full ID numbers)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def push(self, record: dict[str, Any]) -> str:
        rid = _record_id(record)
        data = msgspec.json.format(msgspec.json.encode(record), indent=2) + b"\n"
        path = self.directory / f"{rid}.json"
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            if path.exists():  # pushed before a crash: the same record again is fine
                if path.read_bytes() != data:
                    raise CreditChinaError(f"{path} already holds a different record {rid}",
                                           zh=f"{path} 中已有另一条记录 {rid}")
                return f"file:{path.name}"
            write_private(path, data)
        except OSError as e:
            raise CreditChinaError(f"cannot write {path}: {e}", zh=f"无法写入 {path}：{e}") from e
        return f"file:{path.name}"


class HttpCreditChina:
    """POST each record as JSON to ``url``; a 2xx answer is delivery, anything else an error."""

    def __init__(self, url: str, timeout: float = 10.0, *, headers: Mapping[str, str] | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise CreditChinaError(f"信用中国 endpoint must be an http(s) URL, not {url!r}",
                                   zh=f"信用中国接口地址须为 http(s) 网址，而不是 {url!r}")
        self.url = url
        self.timeout = timeout
        self.headers = dict(headers or {})

    def push(self, record: dict[str, Any]) -> str:
        rid = _record_id(record)
        req = urllib.request.Request(self.url, data=msgspec.json.encode(record), method="POST", headers={
            "Content-Type": "application/json; charset=utf-8", "Accept": "application/json",
            "Idempotency-Key": rid, **self.headers})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                status, body = resp.status, resp.read(64 * 1024)
        except urllib.error.HTTPError as e:
            with e:
                detail = e.read(300).decode("utf-8", "replace").strip()
            raise CreditChinaError(f"{self.url} answered {e.code} {e.reason}" + (f": {detail}" if detail else ""),
                                   zh=f"{self.url} 返回 {e.code} {e.reason}" + (f"：{detail}" if detail else ""),
                                   status=e.code, record_id=rid) from e
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            reason = getattr(e, "reason", e)
            raise CreditChinaError(f"cannot reach {self.url}: {reason}",
                                   zh=f"无法连接 {self.url}：{reason}", record_id=rid) from e
        if not 200 <= status < 300:
            raise CreditChinaError(f"{self.url} answered {status}",
                                   zh=f"{self.url} 返回 {status}", status=status, record_id=rid)
        return _receipt(body, rid)


def _receipt(body: bytes, rid: str) -> str:
    """The endpoint's receipt id if it gives one (``{"receipt": …}``), else the record id itself."""
    try:
        answer = msgspec.json.decode(body) if body.strip() else None
    except msgspec.DecodeError:
        return rid
    if isinstance(answer, dict) and isinstance(answer.get("receipt"), str) and answer["receipt"]:
        return str(answer["receipt"])
    return rid


class CreditOutbox(Protocol):
    """The records waiting for 信用中国 and their delivery state.

    :class:`projections.credit.CreditView` is one; ``xiezhu`` wires it in (agencies never import projections).
    """

    def pending(self, limit: int | None = None) -> list[dict[str, Any]]: ...

    def mark_delivered(self, record_id: str, receipt: str, at: datetime) -> None: ...

    def mark_failed(self, record_id: str, error: str, at: datetime) -> None: ...


def deliver_pending(view: CreditOutbox, adapter: CreditChina, *, limit: int = 100,
                    now: datetime | None = None) -> tuple[int, int]:
    """Push pending outbox records, oldest first; returns (delivered, failed).

    A failure keeps its row pending with one more attempt and the error, and holds back
    the later records of the same case in this run, so that 信用中国 never gets a
    correction or repair before the record it refers to.  Only :class:`CreditChinaError`
    counts as a failed delivery; anything else is a bug and propagates, leaving the row
    pending as it was.
    """
    at = now or datetime.now(UTC)
    delivered = failed = 0
    held: set[str] = set()
    for row in view.pending(limit):
        if row["case_id"] in held:
            continue
        try:
            receipt = adapter.push(row["record"])
        except CreditChinaError as e:
            log.warning("信用中国 push of %s failed (attempt %d): %s", row["record_id"], row["attempts"] + 1, e)
            view.mark_failed(row["record_id"], str(e), at)
            held.add(row["case_id"])
            failed += 1
            continue
        view.mark_delivered(row["record_id"], receipt, at)
        delivered += 1
    return delivered, failed
