"""The web console of ``xiezhu serve``: login, the live 期限看板, a bureau's 待办 and its answer form, a case page.

Over real HTTP (uvicorn on a free port) against real agents on a real nats-server; the
browser side (the page's JavaScript) is not exercised here.
"""
from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn

from aggregates.clock import SimulatedClock
from aggregates.registry import Registry
from schemas.envelope import Signed
from tests.conftest import RESIDENT, bound_socket
from tests.test_exchange import _envelope, _publish, _sealed, request
from xiezhu.http.app import FrontDoor, create_app
from xiezhu.http.users import UserStore, password_matches
from xiezhu.node import Node
from xiezhu.settings import Settings

PASSWORD = "correct horse battery"


@contextlib.asynccontextmanager
async def serving(settings: Settings, clock: SimulatedClock) -> AsyncIterator[str]:
    """``xiezhu serve`` for shenpi and ziran on a free port, with three console accounts; yields its URL."""
    users = UserStore(settings.data_dir / "users.db")
    for login, bureau in (("wang", "ziran"), ("li", "shenpi"), ("zhao", "sifa")):
        users.create(login, bureau, PASSWORD)
    users.close()
    door = FrontDoor(settings, Registry.load(), ["shenpi", "ziran"], clock, poll_interval=0.05)
    sock = bound_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(door), host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=5))
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve(sockets=[sock]))  # uvicorn closes it when it stops
    while not server.started:
        assert not task.done(), "the console's server stopped at start"
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        door.close()


@pytest.fixture
async def console(node: Node, settings: Settings, clock: SimulatedClock) -> AsyncIterator[str]:
    async with serving(settings, clock) as url:
        yield url


async def logged_in(base: str, login: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=base)
    form = await client.get("/login")  # the login form's CSRF token, in its cookie and its hidden field
    r = await client.post("/login", data={"login": login, "password": PASSWORD, "next": "/",
                                          "csrf": csrf_of(form.text)})
    assert r.status_code == 303, r.text
    return client


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m
    return m.group(1)


async def next_board_event(lines: Any) -> str:
    async for line in lines:
        if line.startswith("event: board"):
            return str(line)
    raise AssertionError("the stream ended")


async def test_an_operator_answers_from_the_inbox_form_and_the_board_changes_live(console: str, node: Node) -> None:
    request(node, assistor="ziran")
    await node.settle()
    async with httpx.AsyncClient(base_url=console) as anonymous:
        r = await anonymous.get("/")
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
        # A login posted from elsewhere, without the form's token, is refused even with the right password.
        r = await anonymous.post("/login", data={"login": "wang", "password": PASSWORD})
        assert r.status_code == 403 and "CSRF" in r.text and "xiezhu_session" not in r.headers.get("set-cookie", "")
        form = await anonymous.get("/login")
        r = await anonymous.post("/login", data={"login": "wang", "password": "wrong password",
                                                 "csrf": csrf_of(form.text)})
        assert r.status_code == 401 and "账号或密码不正确" in r.text
    wang = await logged_in(console, "wang")
    try:
        board = await wang.get("/")
        assert board.status_code == 200 and "期限看板" in board.text
        assert 'data-number="20260001" data-state="on-time"' in board.text
        inbox = await wang.get("/inbox/ziran")
        assert "张*" in inbox.text and RESIDENT["id_number"] not in inbox.text and RESIDENT["name"] not in inbox.text
        assert (await wang.get("/inbox/shenpi")).status_code == 403  # another bureau's inbox
        shown = await wang.post("/inbox/ziran/reveal", data={"csrf": csrf_of(inbox.text), "reason": "核查户籍"})
        assert shown.status_code == 200 and RESIDENT["id_number"] in shown.text and "已记入查阅记录" in shown.text
        refused = await wang.post("/inbox/ziran/reveal", data={"csrf": csrf_of(inbox.text)})
        # a page for the clerk, in 中文, not the API's JSON
        assert refused.status_code == 422 and refused.headers["content-type"].startswith("text/html")
        assert "未能办理" in refused.text and "须说明理由" in refused.text and '"error"' not in refused.text
        form = {"verdict-1": "true", "verdict-2": "unverifiable", "reason-2": "档案已移交", "reason-1": ""}
        url = "/inbox/ziran/shenpi/20260001/answer"
        assert (await wang.post(url, data=form)).status_code == 403  # no CSRF token
        async with wang.stream("GET", "/board/events", timeout=30) as events:
            lines = events.aiter_lines()
            await next_board_event(lines)  # the board as it is
            r = await wang.post(url, data=form | {"csrf": csrf_of(inbox.text)})
            assert r.status_code == 303, r.text
            await asyncio.wait_for(next_board_event(lines), timeout=20)  # answered: it leaves the board
        rows = await wang.get("/board/rows")
        assert "20260001" not in rows.text
        await node.settle()
        st = next(iter(node.store("shenpi").assistance.cases()))
        assert st.status == "replied" and st.answered_by.endswith("console:wang")
        assert [r.verdict for r in st.results] == ["true", "unverifiable"]
        again = await wang.post(url, data=form | {"csrf": csrf_of(inbox.text)})  # the desk refuses: a page in 中文
        assert again.status_code == 409 and "未能办理" in again.text and "已是“已答复”" in again.text, again.text
        stats = await wang.get("/stats")
        assert stats.status_code == 200 and "按期答复率" in stats.text and "100%" in stats.text
        page = await wang.get(f"/cases/ziran/shenpi/{st.number}")
        assert page.status_code == 200 and "assistance.replied" in page.text and "无法证实" in page.text
        pdf = await wang.get(f"/cases/ziran/shenpi/{st.number}/letters/2?format=pdf")
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")  # the 回复函
    finally:
        await wang.aclose()


async def test_sifa_sees_every_bureau_but_acts_for_none(console: str, node: Node) -> None:
    request(node, assistor="ziran")
    await node.settle()
    zhao = await logged_in(console, "zhao")
    li = await logged_in(console, "li")
    try:
        inbox = await zhao.get("/inbox/ziran")
        assert inbox.status_code == 200 and "区司法局只读" in inbox.text and 'name="csrf"' in inbox.text
        r = await zhao.post("/inbox/ziran/shenpi/20260001/decline",
                            data={"reasons": "x", "csrf": csrf_of(inbox.text)})
        assert r.status_code == 403
        board = await zhao.get("/")
        assert 'data-source="view"' in board.text and 'data-number="20260001" data-state="on-time"' in board.text
        unsigned = Signed(body=_sealed(node, _envelope(node, recipient="ziran")).body, kid="", sig=b"")
        await _publish(node, "xz.shenpi.ziran.assistance.requested", unsigned)
        await node.settle()
        dead = await zhao.get("/dead-letters")
        assert dead.status_code == 200 and 'data-code="unsigned"' in dead.text, dead.text
        assert 'data-code="unsigned"' not in (await li.get("/dead-letters")).text  # ziran's, not shenpi's
        case = await zhao.get("/cases/ziran/shenpi/20260001")
        assert case.status_code == 200 and "区司法局账本回放" in case.text, case.text
        assert 'data-signature="valid"' in case.text and 'data-deadline="reply-open"' in case.text
        assert node.ledger_service is not None
        await node.ledger_service._checkpoint()  # as every 1000 entries and at stop
        zipped = await zhao.get("/cases/ziran/shenpi/20260001/bundle")
        assert zipped.status_code == 200 and zipped.content.startswith(b"PK"), zipped.text
        assert (await li.get("/cases/shenpi/shenpi/20260001/bundle")).status_code == 403
        metrics = await zhao.get("/metrics")  # serve beside 区司法局's SLA view exposes its gauges too
        assert 'xiezhu_open_requests{bureau="ziran",state="on-time"} 1.0' in metrics.text
        stats = await zhao.get("/stats")
        assert stats.status_code == 200 and 'data-bureau="ziran"' in stats.text and 'data-bureau="shenpi"' in stats.text
        assert (await li.get("/inbox/ziran")).status_code == 403
    finally:
        await zhao.aclose()
        await li.aclose()


def test_passwords_are_kept_as_scrypt_hashes(settings: Settings) -> None:
    users = UserStore(settings.data_dir / "users.db")
    try:
        users.create("wang", "ziran", PASSWORD)
        stored = users._db.execute("SELECT password FROM users").fetchone()[0]
        assert stored.startswith("scrypt$") and PASSWORD not in stored and password_matches(PASSWORD, stored)
        assert users.login("wang", "nope nope nope") is None
    finally:
        users.close()
