"""Notices: signed messages that are not steps of a case (deadline reminders and breaches).

The sender keeps each notice it must send once as a ``Notice`` aggregate whose id comes
from what it is about (e.g. ``breach:<case>:reply``): a second attempt, also after a
restart, cannot be saved.  A receiver keeps what it got as a ``NoticeIn``.
"""
from __future__ import annotations

import uuid
from typing import Any

from eventsourcing.domain import Aggregate

from schemas.envelope import Envelope, Signed, decode_envelope, encode_envelope

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
