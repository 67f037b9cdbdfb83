"""Notices: signed messages that are not steps of a case (deadline reminders and breaches).

The sender keeps each notice it must send once as a ``Notice`` aggregate whose id comes
from what it is about (e.g. ``breach:<case>:reply``): a second attempt, also after a
restart, cannot be saved.  A receiver keeps what it got as a ``NoticeIn``.
"""
from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import msgspec
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from aggregates.errors import RuleError
from aggregates.registry import zh_name
from aggregates.store.base import BureauApplication, ConcurrentChange, DuplicateEvent, IntakeMarker, topic
from aggregates.workdays import SHANGHAI
from schemas import labels
from schemas.access import DisclosureRecorded
from schemas.catalogue import JUSTICE, ListPublished
from schemas.envelope import LEDGER, Envelope, Signed, decode_envelope, encode_envelope, new_id
from schemas.sla import DISTRICT_GOVERNMENT, BureauCriticised

_NS = uuid.UUID("0b8f5b64-3a0e-4f6e-9d8e-2c61f1d3a7aa")


class Notice(Aggregate):
    """One notice this bureau sent, to one or more recipients."""

    class Sent(Aggregate.Created):
        """The first copy."""

        key: str
        body: bytes
        kid: str
        sig: bytes

    class SentAlso(Aggregate.Event):
        """The same notice to one more recipient."""

        body: bytes
        kid: str
        sig: bytes

        def apply(self, aggregate: Any) -> None:
            aggregate.envelopes.append(Signed(body=self.body, kid=self.kid, sig=self.sig))

    def __init__(self, key: str, body: bytes, kid: str, sig: bytes) -> None:
        self.key = key
        self.envelopes = [Signed(body=body, kid=kid, sig=sig)]

    @staticmethod
    def id_for(key: str) -> uuid.UUID:
        """The aggregate id of the notice about ``key``."""
        return uuid.uuid5(_NS, f"notice:{key}")

    @classmethod
    def send(cls, key: str, copies: list[Signed]) -> Notice:
        """A notice with one signed copy per recipient."""
        first, *rest = copies
        notice = cls._create(cls.Sent, id=cls.id_for(key), key=key, body=first.body, kid=first.kid, sig=first.sig)
        for c in rest:
            notice.trigger_event(cls.SentAlso, body=c.body, kid=c.kid, sig=c.sig)
        return notice


class NoticeIn(Aggregate):
    """A notice another bureau sent here."""

    class Got(Aggregate.Created):
        """It arrived (as sealed and signed, and opened: ``clear``)."""

        body: bytes
        kid: str
        sig: bytes
        clear: bytes
        stream_seq: int

    def __init__(self, body: bytes, kid: str, sig: bytes, clear: bytes, stream_seq: int) -> None:
        self.signed = Signed(body=body, kid=kid, sig=sig)
        self.clear = clear
        self.stream_seq = stream_seq

    @property
    def envelope(self) -> Envelope:
        """The notice as opened on arrival."""
        return decode_envelope(self.clear)

    @staticmethod
    def id_for(event_id: str) -> uuid.UUID:
        """The aggregate id of a received notice."""
        return uuid.uuid5(_NS, f"notice-in:{event_id}")

    @classmethod
    def got(cls, signed: Signed, env: Envelope, stream_seq: int) -> NoticeIn:
        """Record an arrived notice."""
        return cls._create(cls.Got, id=cls.id_for(env.id), body=signed.body, kid=signed.kid, sig=signed.sig,
                           clear=encode_envelope(env), stream_seq=stream_seq)


def list_case(kind: str) -> str:
    """The case id under which the ledger keeps 区政府's publications of a list (one per kind)."""
    return str(uuid.uuid5(_NS, f"list:{kind}"))


def _check_publication(app: BureauApplication, env: Envelope, ev: ListPublished) -> None:
    """一(三): only 区政府 publishes the 证明事项清单, to 区司法局; where the catalogue is here, exactly its rows."""
    if env.sender != DISTRICT_GOVERNMENT or app.bureau != JUSTICE:
        raise RuleError(f"一(三): the 证明事项清单 is published by 区政府 ({DISTRICT_GOVERNMENT}) to {JUSTICE}, "
                        f"not by {env.sender} to {app.bureau}",
                        zh=f"一(三)：证明事项清单由区政府（{DISTRICT_GOVERNMENT}）向{zh_name(JUSTICE)}公布，而不是由{zh_name(env.sender)}向{zh_name(app.bureau)}")
    catalogue = app.catalogue
    if catalogue is None or not hasattr(catalogue, "state"):
        return  # 区司法局's catalogue lives elsewhere: the ledger keeps the signed act
    versions = catalogue.state(ev.kind).versions
    if len(versions) < ev.version or versions[ev.version - 1].digest != ev.digest:
        raise RuleError(f"一(三): 区政府's publication names version {ev.version} of the {ev.kind} list with rows "
                        f"{ev.digest[:12]}…, which {JUSTICE}'s catalogue does not hold as published",
                        zh=f"一(三)：区政府公布的是{labels.CATALOGUE_KIND.get(ev.kind, ev.kind)}第 {ev.version} 版"
                           f"（摘要 {ev.digest[:12]}…），{zh_name(JUSTICE)}的目录中没有这一已公布版本")


class Notices:
    """The notices of one bureau's store: those it sends once, and those it received."""

    def __init__(self, app: BureauApplication) -> None:
        self._app = app

    def send(self, key: str, case: str, number: str, copies: Sequence[tuple[str, Any]]) -> bool:
        """Sign and commit a notice about ``key`` to each recipient, once; ``False`` if it was sent before."""
        app = self._app
        if app.has(Notice.id_for(key)):
            return False
        now = app.clock.now()
        signed = [app.sign(Envelope(id=new_id(), sender=app.bureau, recipient=recipient, case=case,
                                    number=number, time=now, payload=payload)) for recipient, payload in copies]
        try:
            app.save(Notice.send(key, signed))
        except IntegrityError:
            return False  # another monitor (or this one before a restart) sent it meanwhile
        return True

    def record_disclosure(self, case: str, number: str, disclosure: DisclosureRecorded) -> None:
        """Tell the 司法局 ledger that personal data of ``case`` was shown in full here (decision 27).

        A notice about the case, sealed and signed like every event; the relay sends it.
        """
        self.send(f"disclosure:{new_id()}", case, number, [(LEDGER, disclosure)])

    def criticise(self, bureau: str, measure: str, about: Sequence[tuple[str, str]], reasons: str,
                  correct_by: date) -> None:
        """附件2 第十二条: 区政府 educates or criticises ``bureau`` for the breaches of the requests ``about``
        ((case id, number) pairs), and orders it to correct them by ``correct_by``; the ledger records it."""
        app = self._app
        if app.bureau != DISTRICT_GOVERNMENT:
            raise RuleError(f"第十二条: only 区政府 ({DISTRICT_GOVERNMENT}) educates or criticises a bureau, "
                            f"not {app.bureau}",
                            zh=f"第十二条：只有区政府（{DISTRICT_GOVERNMENT}）可以对单位进行教育或通报批评，{zh_name(app.bureau)}不能")
        if not about:
            raise RuleError("第十二条: a criticism names the breaches it is about",
                            zh="第十二条：通报批评须写明所针对的违规情形")
        if correct_by <= app.clock.now().date():
            raise RuleError(f"第十二条: 责令其限期改正 — the date {correct_by} is already past",
                            zh=f"第十二条：责令其限期改正——日期 {correct_by} 已过")
        notice = msgspec.convert(msgspec.to_builtins(BureauCriticised(
            bureau=bureau, measure=measure, about=[c for c, _ in about], reasons=reasons,  # type: ignore[arg-type]
            correct_by=correct_by)), BureauCriticised)
        case, number = about[0]
        self.send(f"criticism:{bureau}:{new_id()}", case, number, [(bureau, notice)])

    def publish_list(self, kind: str, version: int, digest: str, rows: int, published_at: datetime) -> bool:
        """一(三): 区政府's signed publication of ``version`` of the 证明事项清单, to 区司法局, which keeps the
        list; once per version (``False`` if it was sent before)."""
        app = self._app
        if app.bureau != DISTRICT_GOVERNMENT:
            raise RuleError(f"一(三): 区政府 ({DISTRICT_GOVERNMENT}) publishes the 证明事项清单, not {app.bureau}",
                            zh=f"一(三)：证明事项清单由区政府（{DISTRICT_GOVERNMENT}）公布，而不是{zh_name(app.bureau)}")
        notice = msgspec.convert(msgspec.to_builtins(ListPublished(
            kind=kind, version=version, digest=digest, rows=rows, published_at=published_at)),  # type: ignore[arg-type]
            ListPublished)
        number = f"L{published_at.astimezone(SHANGHAI).year}{version:04d}"
        return self.send(f"list-published:{kind}:{version}", list_case(kind), number, [(JUSTICE, notice)])

    def accept(self, signed: Signed, env: Envelope, marker: IntakeMarker, *, stream_seq: int) -> None:
        """Keep a received notice as it came, with its intake marker, in one transaction."""
        app = self._app
        if isinstance(env.payload, BureauCriticised) and (
                env.sender != DISTRICT_GOVERNMENT or env.payload.bureau != app.bureau):
            raise RuleError(f"第十二条: a criticism of {env.payload.bureau} comes from 区政府, not {env.sender}",
                            zh=f"第十二条：对{zh_name(env.payload.bureau)}的通报批评来自区政府，而不是{zh_name(env.sender)}")
        if isinstance(env.payload, ListPublished):
            _check_publication(app, env, env.payload)
        try:
            app.save(NoticeIn.got(signed, env, stream_seq), marker)
        except IntegrityError as e:
            if app.has(IntakeMarker.id_for(env.id)):
                known: NoticeIn = app.repository.get(NoticeIn.id_for(env.id))
                raise DuplicateEvent(f"notice {env.id} was already received", zh=f"通知 {env.id} 已收到",
                                     same_bytes=known.signed.body == signed.body) from e
            raise ConcurrentChange(f"could not record notice {env.id}; retry",
                                   zh=f"未能记录通知 {env.id}；请重试") from e

    def received(self) -> list[Envelope]:
        """Notices received here (reminders, breaches), oldest first."""
        out = []
        for n in self._app.notifications([topic(NoticeIn.Got)]):
            got: NoticeIn = self._app.repository.get(n.originator_id)
            out.append(got.envelope)
        return out

    @staticmethod
    def outgoing_topics() -> list[str]:
        """Notification topics of the notices this bureau signed, which the relay sends."""
        return [topic(Notice.Sent), topic(Notice.SentAlso)]
