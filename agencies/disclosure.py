"""Showing personal data unmasked: only to whoever is entitled, for a stated reason, on the record.

Every view, log and table masks applicant ID numbers and names (370405********1234, 张**).
A command shows them in full only with ``--reveal`` and a ``--reason``, and only where this
machine holds the key that opens them: a bureau's own store key for its inbox, 区司法局's
box key for what the ledger says.  Before anything is shown, the disclosure is appended to
``<data>/access-log.jsonl`` (mode 0600, fsynced): who, when, which command, which case, why.
If it cannot be recorded, nothing is shown.  ``xiezhu access-log`` lists the record for a
司法局 reviewer.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import socket
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Protocol

import msgspec

from broker.signing import Opens
from schemas.access import DisclosureRecorded
from schemas.assistance import Applicant, AssistanceRequested, CommitmentItem
from schemas.commitment import ApplicationReceived
from schemas.errors import XiezhuError

ACCESS_LOG = "access-log.jsonl"
MIN_REASON = 4


class DisclosureRefused(XiezhuError):
    """Personal data is not shown: no reason given, no key on this machine, or no record possible."""

    code = "disclosure.refused"


class AccessLogBroken(XiezhuError):
    """The access log was altered: a line is damaged, or the chain of lines is broken."""

    code = "disclosure.log-broken"


class Disclosure(msgspec.Struct, frozen=True, kw_only=True):
    """One showing of personal data in full, as the access log keeps it."""

    at: datetime
    operator: str
    host: str
    command: str
    #: What was shown: ``<bureau>/<number>`` of a case, or an inbox.
    subject: str
    reason: Annotated[str, msgspec.Meta(min_length=MIN_REASON, max_length=500)]
    #: The key that entitled this machine to read it (a store key, or 区司法局's box key).
    entitled_by: str
    #: SHA-256 (hex) of the line before this one ("" for the first): a removed, changed or
    #: reordered line breaks the chain, which :meth:`AccessLog.entries` checks.
    prev: str = ""


class Revealed(msgspec.Struct, frozen=True, kw_only=True):
    """The personal data of one case, in full."""

    kind: str
    name: str
    id_number: str
    items: list[str] = []


def revealed(applicant: Applicant, items: list[CommitmentItem]) -> Revealed:
    """What ``--reveal`` shows of an applicant and what they committed to."""
    return Revealed(kind=applicant.kind, name=applicant.name, id_number=applicant.id_number,
                    items=[f"{i.no}. {i.text}" for i in items])


def _last_line_digest(path: Path) -> str:
    """SHA-256 (hex) of the last line of ``path`` ("" if it has none)."""
    with path.open("rb") as f:
        size = f.seek(0, os.SEEK_END)
        chunk, pos = b"", size
        while pos > 0 and chunk.count(b"\n") < 2:  # the last line ends with one: find the one before it
            step = min(4096, pos)
            pos -= step
            f.seek(pos)
            chunk = f.read(step) + chunk
    lines = chunk.splitlines()
    return hashlib.sha256(lines[-1]).hexdigest() if lines else ""


class AccessLog:
    """``<data>/access-log.jsonl``: one JSON line per disclosure, appended and fsynced before showing."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / ACCESS_LOG

    def record(self, *, command: str, subject: str, reason: str | None, operator: str,
               entitled_by: str) -> Disclosure:
        """Record a disclosure about to be made; raises :class:`DisclosureRefused` if it may not be.

        ``operator`` is the person's name as the entry point resolved it (``--operator``,
        ``XIEZHU_OPERATOR``, else the login name).
        """
        text = " ".join((reason or "").split())
        if len(text) < MIN_REASON:
            raise DisclosureRefused("--reveal shows personal data in full: say why with --reason "
                                    f"(at least {MIN_REASON} characters); it goes to the access log",
                                    zh="--reveal 会显示完整的个人信息：请用 --reason 说明理由"
                                       f"（至少 {MIN_REASON} 个字），理由记入查阅记录")
        if len(text) > 500:
            raise DisclosureRefused("--reason is longer than 500 characters", zh="--reason 超过 500 个字")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # one writer at a time: each line names the one before
                entry = Disclosure(at=datetime.now(UTC), operator=operator.strip() or "unknown",
                                   host=socket.gethostname(), command=command, subject=subject, reason=text,
                                   entitled_by=entitled_by,
                                   prev=_last_line_digest(self.path))
                os.write(fd, msgspec.json.encode(entry) + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            raise DisclosureRefused(f"the disclosure could not be recorded in {self.path} ({e.strerror}); "
                                    "nothing is shown",
                                    zh=f"无法在 {self.path} 中记录本次查阅（{e.strerror}）；不予显示") from e
        return entry

    def entries(self) -> Iterator[Disclosure]:
        """Every recorded disclosure, oldest first; a damaged line or a broken chain is reported, not skipped.

        The chain shows a line removed, changed, inserted or moved; cutting lines off the end
        it cannot show (keep copies of the log elsewhere, as of any audit trail).
        """
        try:
            lines = self.path.read_bytes().splitlines()
        except FileNotFoundError:
            return
        prev = ""
        for n, raw in enumerate(lines, 1):
            try:
                entry = msgspec.json.decode(raw, type=Disclosure)
            except (msgspec.DecodeError, msgspec.ValidationError) as e:
                raise AccessLogBroken(f"{self.path} line {n} is damaged: {e}",
                                      zh=f"{self.path} 第 {n} 行已损坏：{e}") from e
            if entry.prev != prev:
                raise AccessLogBroken(f"{self.path} line {n} does not follow line {n - 1}: a line was removed, "
                                      "changed, inserted or moved",
                                      zh=f"{self.path} 第 {n} 行与第 {n - 1} 行不相衔接：有一行被删除、修改、"
                                         "插入或移动")
            prev = hashlib.sha256(raw).hexdigest()
            yield entry


class RecordsDisclosures(Protocol):
    """A bureau's store, which tells the ledger of a disclosure (``store.notices`` of a :class:`BureauStore`)."""

    def record_disclosure(self, case: str, number: str, disclosure: DisclosureRecorded) -> None: ...


def to_ledger(store: RecordsDisclosures, case: str, number: str, entry: Disclosure) -> None:
    """Send one disclosure of the access log to the 司法局 ledger, as a notice about ``case``."""
    store.record_disclosure(case, number, DisclosureRecorded(
        at=entry.at, operator=entry.operator[:200], host=entry.host[:200] or "unknown", command=entry.command,
        reason=entry.reason, entitled_by=entry.entitled_by[:200]))


class ReadsLedger(Protocol):
    """The ledger as a disclosure reads it (``broker``'s :class:`Ledger` is one)."""

    @property
    def opener(self) -> Opens | None: ...

    def case(self, case_id: str) -> Sequence[Any]: ...

    def envelope(self, entry: Any) -> Any: ...


def case_disclosure(ledger: ReadsLedger, case_id: str, *, log: AccessLog, command: str, reason: str | None,
                    operator: str, store: RecordsDisclosures | None = None
                    ) -> tuple[Revealed, Disclosure] | None:
    """The applicant and commitments of a ledger case in full, once the disclosure is on record.

    Entitled: the machine holding 区司法局's box key, which opens the ledger.  ``None`` for a
    case that holds no applicant (a dispute); nothing is recorded then.  With ``store`` (区司法局's)
    the disclosure also goes to the ledger as a notice about the case.
    """
    if ledger.opener is None:
        raise DisclosureRefused("this machine does not hold 区司法局's box key (keys/box/), which opens the "
                                "ledger: it is not entitled to see the applicant in full",
                                zh="本机没有区司法局的解密密钥（keys/box/），无法打开账本：无权查看申请人的完整信息")
    entries = ledger.case(case_id)
    if not entries:
        return None
    env = ledger.envelope(entries[0])
    payload = env.payload
    if not isinstance(payload, AssistanceRequested | ApplicationReceived):
        return None
    shown = revealed(payload.applicant, list(payload.items))
    entry = log.record(command=command, subject=f"{env.sender}/{env.number}", reason=reason,
                                       operator=operator, entitled_by=f"{ledger.opener.reader} box key")
    if store is not None:  # and on the district's record: the ledger, through 区司法局's own store
        to_ledger(store, env.case, env.number, entry)
    return shown, entry


def render_disclosure(shown: Revealed, entry: Disclosure) -> str:
    """The text block a command prints under its masked output."""
    lines = [f"Shown in full to {entry.operator} ({entry.reason}); recorded in the access log.",
             f"  applicant: {shown.name} ({shown.kind}) {shown.id_number}"]
    lines += [f"  {item}" for item in shown.items]
    return "\n".join(lines) + "\n"
