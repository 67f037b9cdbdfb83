"""Deadline alerts by e-mail: 区司法局's reminders and breach notices reach a bureau's people.

The same notices reach the bureau's systems through its feed (``/notices``, ``/events``,
the webhook); where an SMTP server is configured (``XIEZHU_SMTP_HOST`` …) ``xiezhu serve``
also mails each one to the addresses the bureau registered (``xiezhu alerts add``).

Each notice is mailed once: ``<bureau dir>/alerts.db`` records every notice id sent, in
the same transaction that moves the mail cursor past it, and a notice whose id is recorded
is never sent again, across restarts.  A send whose SMTP answer was lost before it was
recorded can come twice; it carries ``Message-ID: <notice id@xiezhu>``, so the mail system
shows one.  A failed send is retried with backoff, without skipping.
"""
from __future__ import annotations

import logging
import os
import smtplib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any

from broker.threads import in_thread
from schemas.errors import XiezhuError
from xiezhu.http.shared_db import SharedConnection

log = logging.getLogger(__name__)

#: The feed's event types that are mailed.
ALERT_TYPES = ("sla.reminder", "sla.breached")
ENV_SMTP_HOST = "XIEZHU_SMTP_HOST"
ENV_SMTP_PORT = "XIEZHU_SMTP_PORT"
ENV_SMTP_FROM = "XIEZHU_SMTP_FROM"
ENV_SMTP_USER = "XIEZHU_SMTP_USER"
ENV_SMTP_PASSWORD = "XIEZHU_SMTP_PASSWORD"
ENV_SMTP_STARTTLS = "XIEZHU_SMTP_STARTTLS"


class AlertError(XiezhuError):
    """An alert address or the mail settings are refused."""

    code = "alerts"


@dataclass(frozen=True)
class MailSettings:
    """Where alerts are mailed from: an SMTP server (plain, or STARTTLS), optionally with a login."""

    host: str
    port: int = 25
    sender: str = "xiezhu@localhost"
    user: str = ""
    password: str = ""
    starttls: bool = False

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> MailSettings | None:
        """From ``XIEZHU_SMTP_*``; None when no host is set (no mail)."""
        e = dict(os.environ if env is None else env)
        host = e.get(ENV_SMTP_HOST, "").strip()
        if not host:
            return None
        port = e.get(ENV_SMTP_PORT, "25").strip()
        if not port.isdigit():
            raise AlertError(f"{ENV_SMTP_PORT} must be a port number, not {port!r}",
                             zh=f"{ENV_SMTP_PORT} 须为端口号，而不是 {port!r}")
        return cls(host=host, port=int(port), sender=e.get(ENV_SMTP_FROM, "").strip() or "xiezhu@localhost",
                   user=e.get(ENV_SMTP_USER, ""), password=e.get(ENV_SMTP_PASSWORD, ""),
                   starttls=e.get(ENV_SMTP_STARTTLS, "").lower() in ("1", "true", "yes"))


def alerts_path(settings: Any, code: str) -> Path:
    """``<bureau dir>/alerts.db``."""
    return Path(settings.bureau_dir(code)) / "alerts.db"


def check_address(address: str) -> str:
    """A plausible e-mail address, trimmed; raises :class:`AlertError` otherwise."""
    a = address.strip()
    local, _, domain = a.partition("@")
    if not local or not domain or " " in a or "\n" in a or "," in a or len(a) > 254:
        raise AlertError(f"not an e-mail address: {address!r}", zh=f"不是电子邮件地址：{address!r}")
    return a


class Alerts:
    """A bureau's alert recipients and what was mailed to them (``<bureau dir>/alerts.db``)."""

    def __init__(self, bureau: str, path: Path) -> None:
        self.bureau = bureau
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = SharedConnection(path)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript("""
            CREATE TABLE IF NOT EXISTS recipients (address TEXT PRIMARY KEY, added_at TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS cursor (one INTEGER PRIMARY KEY CHECK (one = 1), seq INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS mailed (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, type TEXT NOT NULL,
                recipients TEXT NOT NULL, at TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS failure (one INTEGER PRIMARY KEY CHECK (one = 1), attempts INTEGER NOT NULL,
                last_error TEXT NOT NULL);
        """)

    def _tx(self) -> AbstractContextManager[SharedConnection]:
        return self._db.transaction()

    # -- recipients ------------------------------------------------------------------------

    def add(self, address: str) -> bool:
        """Mail alerts to ``address`` too; False if it was there."""
        a = check_address(address)
        with self._tx() as db:
            return bool(db.execute("INSERT OR IGNORE INTO recipients (address, added_at) VALUES (?, ?)",
                                   (a, datetime.now(UTC).isoformat(timespec="seconds"))).rowcount)

    def remove(self, address: str) -> bool:
        with self._tx() as db:
            return bool(db.execute("DELETE FROM recipients WHERE address = ?", (address.strip(),)).rowcount)

    def recipients(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT address FROM recipients ORDER BY address")]

    # -- what was mailed -------------------------------------------------------------------

    def cursor(self, head: int) -> int:
        """The feed row mailing continues after; the first time, the feed's head (no backlog mailed)."""
        row = self._db.execute("SELECT seq FROM cursor").fetchone()
        if row is not None:
            return int(row[0])
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO cursor (one, seq) VALUES (1, ?)", (head,))
        return int(self._db.execute("SELECT seq FROM cursor").fetchone()[0])

    def sent(self, event_id: str) -> bool:
        return self._db.execute("SELECT 1 FROM mailed WHERE id = ?", (event_id,)).fetchone() is not None

    def mailed(self) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT id, seq, type, recipients, at FROM mailed ORDER BY seq")
        return [{"id": i, "seq": s, "type": t, "recipients": r.split(","), "at": at} for i, s, t, r, at in rows]

    def advance(self, seq: int, mailed: tuple[str, str, list[str]] | None = None) -> None:
        """Move past feed row ``seq``, recording the notice mailed for it (id, type, recipients) if any."""
        with self._tx() as db:
            if mailed is not None:
                event_id, kind, to = mailed
                db.execute("INSERT OR IGNORE INTO mailed (id, seq, type, recipients, at) VALUES (?, ?, ?, ?, ?)",
                           (event_id, seq, kind, ",".join(to), datetime.now(UTC).isoformat()))
            db.execute("UPDATE cursor SET seq = ? WHERE seq < ?", (seq, seq))
            db.execute("DELETE FROM failure")

    def failed(self, error: str) -> int:
        """Count a failed send; returns how many in a row."""
        with self._tx() as db:
            db.execute("INSERT INTO failure (one, attempts, last_error) VALUES (1, 1, ?) ON CONFLICT(one) DO "
                       "UPDATE SET attempts = attempts + 1, last_error = excluded.last_error", (error[:500],))
        return int(self._db.execute("SELECT attempts FROM failure").fetchone()[0])

    def pending(self, feed_rows: list[tuple[int, dict[str, Any]]]) -> int:
        """Of ``feed_rows`` (after the cursor), the alerts still to mail."""
        if not self.recipients():
            return 0
        return sum(1 for _, item in feed_rows if item["type"] in ALERT_TYPES and not self.sent(item["id"]))

    def close(self) -> None:
        self._db.close()


# -- the letter ---------------------------------------------------------------------------------


def _local(iso: str | None) -> str:
    if not iso:
        return ""
    from aggregates.store import SHANGHAI

    return datetime.fromisoformat(iso).astimezone(SHANGHAI).strftime("%Y年%m月%d日 %H:%M")


def message_of(item: dict[str, Any], bureau: str, name: Callable[[str], str], settings: MailSettings,
               to: list[str]) -> EmailMessage:
    """The e-mail of one feed notice, in Chinese; routing and ids as the feed has them (already masked)."""
    data = item.get("data") or {}
    number = item.get("number") or ""
    kind = "答复" if data.get("kind") == "reply" else "书面告知不予协助"
    requester, assistor = name(data.get("requester", "")), name(data.get("assistor", ""))
    if item["type"] == "sla.breached":
        late = data.get("working_days_late") or 0
        subject = f"【已逾期】协助函 {number}：{kind}期限已过" + (f"（逾期 {late} 个工作日）" if late else "")
        lines = [f"{requester}发给{assistor}的行政协助函（编号：{number}）未在期限内{kind}。",
                 f"期限：{_local(data.get('due_at'))}"]
        if data.get("answered_at"):
            lines.append(f"实际{kind}时间：{_local(data.get('answered_at'))}")
        lines.append(f"发现时间：{_local(data.get('detected_at'))}")
    else:
        subject = f"【期限提醒】协助函 {number}：{kind}期限将至"
        lines = [f"{requester}发给{assistor}的行政协助函（编号：{number}）尚未{kind}。",
                 f"期限：{_local(data.get('due_at'))}（附件2 第五条）"]
    if data.get("provisional"):
        lines.append("注：期限按临时工作日历计算，以正式公布的节假日安排为准。")
    lines += ["", "本邮件由 xiezhu 根据区司法局的期限通知自动发送，请勿回复。", f"通知编号：{item['id']}"]
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = settings.sender
    msg["To"] = ", ".join(to)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = f"<{item['id']}@xiezhu>"
    msg["X-Xiezhu-Notice"] = item["id"]
    msg["X-Xiezhu-Bureau"] = bureau
    msg.set_content("\n".join(lines))
    return msg


def send(settings: MailSettings, msg: EmailMessage) -> None:
    """One message through the SMTP server (blocking: run it in a thread)."""
    with smtplib.SMTP(settings.host, settings.port, timeout=10) as smtp:
        if settings.starttls:
            smtp.starttls()
        if settings.user:
            smtp.login(settings.user, settings.password)
        smtp.send_message(msg)


async def mail_once(feed: Any, alerts: Alerts, settings: MailSettings, name: Callable[[str], str], *,
                    backoff_base: float = 1.0, backoff_cap: float = 600.0) -> float | None:
    """Mail the next alert after the cursor, or move past what is not one.

    Returns None when nothing waits, 0 after progress, else the seconds until the next try.
    """
    after = await in_thread(alerts.cursor, feed.head)
    rows: list[tuple[int, dict[str, Any]]] = await in_thread(feed.items, after, 50)
    if not rows:
        return None
    to = await in_thread(alerts.recipients)
    for seq, item in rows:
        if item["type"] not in ALERT_TYPES or not to or await in_thread(alerts.sent, item["id"]):
            await in_thread(alerts.advance, seq)
            continue
        msg = message_of(item, alerts.bureau, name, settings, to)
        try:
            await in_thread(send, settings, msg)
        except (OSError, smtplib.SMTPException) as e:
            attempts = await in_thread(alerts.failed, f"{type(e).__name__}: {e}")
            delay = float(min(backoff_cap, backoff_base * 2 ** min(attempts - 1, 30)))
            log.warning("%s alerts: mailing %s failed (%s); next try in %.1fs", alerts.bureau, item["id"], e, delay,
                        extra={"bureau": alerts.bureau, "number": item.get("number") or "",
                               "event_id": item["id"], "event_type": item["type"]})
            return delay
        await in_thread(alerts.advance, seq, (item["id"], item["type"], to))
        log.info("%s alerts: mailed %s to %d address(es)", alerts.bureau, item["type"], len(to),
                 extra={"bureau": alerts.bureau, "number": item.get("number") or "", "event_id": item["id"],
                        "event_type": item["type"]})
        return 0.0
    return 0.0
