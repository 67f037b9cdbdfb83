"""Deadline alerts reach a bureau's people by e-mail, once each, through a real local SMTP server."""
from __future__ import annotations

import asyncio
import re
import socket
from datetime import datetime
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import Message
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from aggregates.clock import SimulatedClock
from aggregates.registry import Registry
from aggregates.store import SHANGHAI
from tests.conftest import bound_socket, eventually, make_node
from tests.test_exchange import request
from xiezhu.http.alerts import AlertError, Alerts, MailSettings, alerts_path
from xiezhu.http.app import FrontDoor, create_app
from xiezhu.settings import Settings

#: Each wait for the node ends well inside the test's 120 s: one that does not says what it waited for, where
#: the test's timeout would only show the event loop waiting.
SETTLE_S = 45.0


class Inbox:
    """An aiosmtpd handler that keeps what it is sent."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        msg = message_from_bytes(envelope.original_content or envelope.content)
        msg["X-Rcpt"] = ",".join(envelope.rcpt_tos)
        self.messages.append(msg)
        return "250 OK"


class BoundController(Controller):
    """aiosmtpd's SMTP server (in a thread of its own) on a socket bound before: it has no port to lose."""

    def __init__(self, handler: Any, sock: socket.socket) -> None:
        # 30 s to answer its first connection (aiosmtpd's 5 s default ran out on a loaded machine).
        super().__init__(handler, hostname="127.0.0.1", port=sock.getsockname()[1], ready_timeout=30)
        self.sock = sock

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self.sock)


@pytest.fixture
def smtp() -> Any:
    inbox = Inbox()
    controller = BoundController(inbox, bound_socket())
    controller.start()
    yield controller, inbox
    controller.stop()


def door_of(settings: Settings, clock: SimulatedClock, port: int) -> FrontDoor:
    return FrontDoor(settings, Registry.load(), ["shenpi", "ziran"], clock, poll_interval=0.05,
                     backoff_base=0.05, backoff_cap=0.4,
                     mail=MailSettings(host="127.0.0.1", port=port, sender="xiezhu@sifa.example"))


async def test_a_breach_notice_is_mailed_once_to_each_bureaus_people_even_across_a_restart(
        settings: Settings, clock: SimulatedClock, smtp: Any) -> None:
    controller, inbox = smtp
    for code, address in (("ziran", "duty@ziran.example"), ("shenpi", "chief@shenpi.example")):
        alerts = Alerts(code, alerts_path(settings, code))
        alerts.add(address)
        alerts.close()
    node = await make_node(settings, Registry.load(), clock, agents=("shenpi", "ziran", "sifa")).start()
    try:
        door = door_of(settings, clock, controller.port)
        app = create_app(door)
        try:
            async with app.router.lifespan_context(app):
                # ziran has no verifier: the request waits in its inbox past its deadline
                request(node, assistor="ziran")
                await node.settle(timeout=SETTLE_S)
                clock.set(datetime(2026, 9, 28, 9, 0, tzinfo=SHANGHAI))
                assert node.monitor is not None
                node.monitor.tick()
                node.wake_relays()
                await node.settle(timeout=SETTLE_S)
                await eventually(lambda: len(inbox.messages) == 2, timeout=30)
                # and the console shows it to ziran's people
                users = door.users
                users.create("wang", "ziran", "correct horse battery")
                async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://x") as web:
                    form = await web.get("/login")  # the login form's CSRF token, in its cookie and hidden field
                    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
                    assert token is not None
                    r = await web.post("/login", data={"login": "wang", "password": "correct horse battery",
                                                       "csrf": token.group(1)})
                    assert r.status_code == 303
                    page = await web.get("/notices")
                    assert 'data-type="sla.breached"' in page.text and "已逾期" in page.text
        finally:
            door.close()
        # A new serve over the same directory mails nothing again; another tick sends no new notice.
        door = door_of(settings, clock, controller.port)
        app = create_app(door)
        try:
            async with app.router.lifespan_context(app):
                node.monitor.tick()
                await node.settle(timeout=SETTLE_S)
                await asyncio.sleep(0.5)
                assert all(a.mailed() for a in door.alerts.values())
        finally:
            door.close()
    finally:
        await node.stop()
    assert len(inbox.messages) == 2
    by_rcpt = {m["X-Rcpt"]: m for m in inbox.messages}
    assert set(by_rcpt) == {"duty@ziran.example", "chief@shenpi.example"}
    mail = by_rcpt["duty@ziran.example"]
    subject = str(make_header(decode_header(mail["Subject"])))
    assert subject.startswith("【已逾期】协助函 20260001")
    assert mail["Message-ID"] == f"<{mail['X-Xiezhu-Notice']}@xiezhu>"
    body = mail.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert "未在期限内答复" in body and "370405199001011234" not in body


def test_an_address_that_is_not_one_is_refused(settings: Settings) -> None:
    alerts = Alerts("gongan", alerts_path(settings, "gongan"))
    try:
        with pytest.raises(AlertError):
            alerts.add("duty at gongan")
        assert alerts.recipients() == []
    finally:
        alerts.close()
