"""``xiezhu serve`` against real agents on a real nats-server: tokens, requests, answers, webhooks, SSE."""
from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aggregates.clock import SimulatedClock
from aggregates.registry import Registry
from tests.conftest import ITEMS, RESIDENT, bound_socket, eventually
from xiezhu.http.app import FrontDoor, create_app
from xiezhu.http.feed import HDR_DELIVERY, Feed, verify
from xiezhu.node import Node
from xiezhu.settings import Settings

SERVED = ["shenpi", "gongan", "ziran"]


def request_body(assistor: str = "gongan", item: str | None = None, **changes: Any) -> dict[str, Any]:
    body = {
        "assistor": assistor, "catalogue_item": item or ITEMS[assistor],
        "applicant": {"kind": "person", "name": RESIDENT["name"], "id_number": RESIDENT["id_number"]},
        "matter": {"code": "370405-XK-0101", "name": "食品经营许可"}, "applied_on": "2026-09-20",
        "items": [{"no": 1, "text": "本人户籍所在地为运河街道", "check": "hukou.residence",
                   "facts": {"address": "运河街道"}},
                  {"no": 2, "text": "本人无犯罪记录", "check": "police.no-criminal-record"}],
    }
    return body | changes


@dataclass
class Api:
    door: FrontDoor
    client: httpx.AsyncClient
    tokens: dict[str, str] = field(default_factory=dict)

    def auth(self, bureau: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[bureau]}"}

    def state(self) -> dict[str, Any]:
        """Everything a refused call must leave as it was."""
        return {code: self.door.store(code).recorder.max_notification_id() for code in SERVED} | {
            f"{code}-webhook": self.door.feeds[code].webhook() for code in SERVED}


def make_door(settings: Settings, clock: SimulatedClock) -> FrontDoor:
    return FrontDoor(settings, Registry.load(), SERVED, clock, poll_interval=0.05, backoff_base=0.05,
                     backoff_cap=0.4)


@pytest.fixture
async def api(node: Node, settings: Settings, clock: SimulatedClock) -> AsyncIterator[Api]:
    door = make_door(settings, clock)
    tokens = {code: door.tokens.create(code, f"{code}-system")[1] for code in [*SERVED, "sifa"]}
    app = create_app(door)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://xiezhu") as client:
            yield Api(door, client, tokens)
    door.close()


async def test_close_does_not_wait_for_a_worker_job_that_never_started(settings: Settings,
                                                                        clock: SimulatedClock) -> None:
    """A job cancelled while it queued for a worker thread never runs and is not waited for (under
    load it held serve's close, and this module's teardown, for the close's whole 60 s)."""
    import contextlib
    import threading
    from concurrent.futures import ThreadPoolExecutor

    door = make_door(settings, clock)
    loop = asyncio.get_running_loop()
    gate, ran = threading.Event(), threading.Event()
    with ThreadPoolExecutor(max_workers=1) as pool:
        loop.set_default_executor(pool)
        busy = loop.run_in_executor(None, gate.wait)  # the one worker thread is taken
        queued = asyncio.ensure_future(door._off_loop(ran.set))
        await asyncio.sleep(0)  # it is submitted, and waits for the thread
        queued.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await queued
        assert door._in_threads == 0  # nothing to wait for: it never started
        gate.set()
        await busy
        door.close()
        assert not ran.is_set()
        with pytest.raises(RuntimeError, match="closed"):  # a job after close touches no closed file
            await door._off_loop(ran.set)
    loop.set_default_executor(ThreadPoolExecutor())  # the loop goes on to the next tests: a live executor
    assert not ran.is_set()


async def test_a_request_filed_over_http_is_answered_and_its_reply_is_a_notice(api: Api, node: Node) -> None:
    r = await api.client.post("/v1/bureaus/shenpi/requests", json=request_body(), headers=api.auth("shenpi"))
    assert r.status_code == 201, r.text
    filed = r.json()
    assert filed["number"] == "20260001" and filed["queued"] is False  # the node's shenpi agent runs
    await node.settle()
    r = await api.client.get(f"/v1/bureaus/shenpi/requests/shenpi/{filed['number']}", headers=api.auth("shenpi"))
    case = r.json()
    assert case["case"]["status"] == "replied" and case["case"]["answered_by"] == "auto:hukou"
    assert "*" in case["case"]["id_number"] and "*" in case["case"]["applicant"]
    assert [h["type"] for h in case["history"]] == ["assistance.requested", "assistance.received",
                                                     "assistance.replied"]

    async def notices() -> list[dict[str, Any]]:
        return list((await api.client.get("/v1/bureaus/shenpi/notices", headers=api.auth("shenpi"))).json())

    for _ in range(200):
        if len(await notices()) >= 2:
            break
        await asyncio.sleep(0.05)
    got = await notices()
    assert [n["type"] for n in got] == ["assistance.received", "assistance.replied"]
    assert got[1]["data"]["results"][0]["verdict"] == "true" and got[1]["from"] == "gongan"

    # the same notices as Server-Sent Events, from the start
    async with api.client.stream("GET", "/v1/bureaus/shenpi/events", params={"after": 0, "limit": 2},
                                 headers=api.auth("shenpi")) as stream:
        text = "".join([chunk async for chunk in stream.aiter_text()])
    events = [block for block in text.split("\n\n") if block.startswith("id:")]
    assert [e.splitlines()[1] for e in events] == ["event: assistance.received", "event: assistance.replied"]
    assert json.loads(events[1].splitlines()[2].removeprefix("data: "))["id"] == got[1]["id"]
    # a client that saw the first resumes after it with Last-Event-ID
    first_seq = events[0].splitlines()[0].removeprefix("id: ")
    async with api.client.stream("GET", "/v1/bureaus/shenpi/events", params={"limit": 1},
                                 headers=api.auth("shenpi") | {"Last-Event-ID": first_seq}) as stream:
        resumed = "".join([chunk async for chunk in stream.aiter_text()])
    assert "event: assistance.replied" in resumed and "event: assistance.received" not in resumed
    # the NATS side's AsyncAPI is published beside the OpenAPI
    assert "assistance.replied" in (await api.client.get("/asyncapi.json")).json()["channels"]
    # 区司法局 reads it too
    r = await api.client.get("/v1/bureaus/shenpi/notices", headers=api.auth("sifa"))
    assert r.status_code == 200 and len(r.json()) == 2


async def test_an_operator_answers_from_the_inbox_over_http(api: Api, node: Node) -> None:
    r = await api.client.post("/v1/bureaus/shenpi/requests", json=request_body("ziran"), headers=api.auth("shenpi"))
    number = r.json()["number"]
    await node.settle()
    inbox = (await api.client.get("/v1/bureaus/ziran/inbox", headers=api.auth("ziran"))).json()
    assert [c["number"] for c in inbox] == [number]
    bad = await api.client.post(f"/v1/bureaus/ziran/requests/shenpi/{number}/answer", headers=api.auth("ziran"),
                                json={"items": [{"no": 1, "verdict": "unverifiable"}]})
    assert bad.status_code == 422  # 无法证实 needs its reason
    r = await api.client.post(f"/v1/bureaus/ziran/requests/shenpi/{number}/answer", headers=api.auth("ziran"),
                              json={"items": [{"no": 1, "verdict": "true"},
                                              {"no": 2, "verdict": "unverifiable", "reason": "档案未移交"}],
                                    "operator": "王伟"})
    assert r.status_code == 200 and r.json()["status"] == "replied", r.text
    await node.settle()
    st = node.store("shenpi").assistance.case(r.json()["case"]).state
    assert st.status == "replied" and st.answered_by == "operator:王伟"
    again = await api.client.post(f"/v1/bureaus/ziran/requests/shenpi/{number}/decline", headers=api.auth("ziran"),
                                  json={"reasons": "不属于本机关职权范围"})
    assert again.status_code == 409


async def test_an_uncatalogued_request_is_refused_and_changes_nothing(api: Api) -> None:
    before = api.state()
    for body in (request_body(item="XZ-9999"), request_body("gongan", item=ITEMS["ziran"]),
                 request_body(channel="letter", staff=["李明"])):
        r = await api.client.post("/v1/bureaus/shenpi/requests", json=body, headers=api.auth("shenpi"))
        assert r.status_code == 422, r.text
        problem = r.json()  # the stable id and the English for a program, the 中文 beside them for a person
        assert problem["error"] and problem["message"] and problem["message_zh"] != problem["message"]
        assert any("\u4e00" <= c <= "\u9fff" for c in problem["message_zh"]), problem
    assert api.state() == before
    # and the number series did not move: the next request takes the first number
    r = await api.client.post("/v1/bureaus/shenpi/requests", json=request_body(), headers=api.auth("shenpi"))
    assert r.json()["number"] == "20260001"


async def test_a_token_acts_only_as_its_bureau(api: Api, node: Node) -> None:
    r = await api.client.post("/v1/bureaus/shenpi/requests", json=request_body("ziran"), headers=api.auth("shenpi"))
    number = r.json()["number"]
    await node.settle()
    before = api.state()
    answer = {"items": [{"no": 1, "verdict": "true"}, {"no": 2, "verdict": "true"}]}
    refused = [
        ("post", "/v1/bureaus/shenpi/requests", "gongan", request_body()),
        ("post", f"/v1/bureaus/ziran/requests/shenpi/{number}/answer", "shenpi", answer),
        ("post", f"/v1/bureaus/ziran/requests/shenpi/{number}/answer", "gongan", answer),
        ("post", f"/v1/bureaus/ziran/requests/shenpi/{number}/answer", "sifa", answer),
        ("put", "/v1/bureaus/ziran/webhook", "shenpi", {"url": "http://127.0.0.1:9/x"}),
        ("get", "/v1/bureaus/ziran/inbox", "gongan", None),
        ("get", "/v1/bureaus/shenpi/notices", "ziran", None),
        ("get", f"/v1/bureaus/shenpi/requests/shenpi/{number}", "gongan", None),
        ("get", "/v1/bureaus/shenpi/events", "gongan", None),
    ]
    for method, path, who, body in refused:
        r = await api.client.request(method.upper(), path, json=body, headers=api.auth(who))
        assert r.status_code == 403, (method, path, who, r.text)
    assert (await api.client.get("/v1/bureaus/ziran/inbox")).status_code == 401
    assert (await api.client.get("/v1/bureaus/ziran/inbox", headers={"Authorization": "Bearer xzt_x_y"})
            ).status_code == 401
    assert api.state() == before
    # 区司法局 reads every bureau's data
    assert [c["number"] for c in (await api.client.get("/v1/bureaus/ziran/inbox", headers=api.auth("sifa"))).json()
            ] == [number]
    # a revoked token stops working at once
    token_id = api.tokens["ziran"].split("_")[1]
    api.door.tokens.revoke(token_id, "ziran")
    assert (await api.client.get("/v1/bureaus/ziran/inbox", headers=api.auth("ziran"))).status_code == 401


class Receiver:
    """A bureau's system that takes webhook deliveries, keeping each id it has seen."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.received: list[str] = []
        self.bad_signatures = 0
        #: Its port, held from the start: while it is down a delivery is refused, and no one else takes it.
        self.sock = bound_socket()
        self.port = self.sock.getsockname()[1]
        self.server: uvicorn.Server | None = None
        self.task: asyncio.Task[None] | None = None

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        if not verify(self.secret, dict(request.headers), body):
            self.bad_signatures += 1
            return JSONResponse({"error": "bad signature"}, status_code=401)
        self.received.append(request.headers[HDR_DELIVERY])
        return JSONResponse({"ok": True})

    async def start(self) -> None:
        app = Starlette(routes=[Route("/hook", self.hook, methods=["POST"])])
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="off"))
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]))  # closed when it stops
        await eventually(lambda: self.server is not None and self.server.started)

    async def stop(self) -> None:
        assert self.server and self.task
        self.server.should_exit = True
        await self.task


async def test_a_webhook_that_is_down_gets_every_notice_once_it_is_back_even_across_a_restart(
        node: Node, settings: Settings, clock: SimulatedClock) -> None:
    receiver = Receiver("s3cret-s3cret-s3cret")
    door = make_door(settings, clock)
    token = door.tokens.create("shenpi")[1]
    auth = {"Authorization": f"Bearer {token}"}
    app = create_app(door)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://xiezhu") as client:
            r = await client.put("/v1/bureaus/shenpi/webhook", headers=auth,
                                 json={"url": f"http://127.0.0.1:{receiver.port}/hook", "secret": receiver.secret})
            assert r.status_code == 200 and r.json()["secret"] == receiver.secret
            for _ in range(2):
                r = await client.post("/v1/bureaus/shenpi/requests", json=request_body(), headers=auth)
                assert r.status_code == 201
            await node.settle()
            feed = door.feeds["shenpi"]
            await eventually(lambda: len(feed.items()) == 4)  # received and replied, twice
            await eventually(lambda: (hook := feed.webhook()) is not None and hook.attempts >= 2)
            assert feed.delivered_ids() == []
            from xiezhu.cli.front import webhook_state

            state = webhook_state(settings, "shenpi")
            assert state is not None and state["pending"] == 4 and state["last_error"]  # what `outbox` shows
    door.close()  # the server stops while the receiver is still down

    await receiver.start()
    door = make_door(settings, clock)
    app = create_app(door)
    try:
        async with app.router.lifespan_context(app):
            feed = door.feeds["shenpi"]
            expected = [item["id"] for _, item in feed.items()]
            await eventually(lambda: len(receiver.received) == len(expected))
            await asyncio.sleep(0.3)  # nothing more comes
    finally:
        door.close()
        await receiver.stop()
    assert receiver.received == expected and len(set(receiver.received)) == 4
    assert receiver.bad_signatures == 0
    assert Feed("shenpi", settings.feed_path("shenpi")).delivered_ids() == expected


async def test_a_requests_letters_come_as_docx_pdf_or_text_under_their_chinese_names(api: Api, node: Node) -> None:
    from urllib.parse import unquote

    r = await api.client.post("/v1/bureaus/shenpi/requests", json=request_body(), headers=api.auth("shenpi"))
    number = r.json()["number"]
    await node.settle()
    base = f"/v1/bureaus/shenpi/requests/shenpi/{number}/letters"
    listed = (await api.client.get(base, headers=api.auth("shenpi"))).json()
    assert [(x["n"], x["kind"]) for x in listed] == [(1, "行政协助函（一）"), (2, "行政协助回复函")]
    assert listed[0]["filename"] == f"{number}-行政协助函（一）"
    docx = await api.client.get(f"{base}/1", params={"format": "docx"}, headers=api.auth("shenpi"))
    assert docx.status_code == 200 and docx.content.startswith(b"PK")
    assert unquote(docx.headers["content-disposition"].split("UTF-8''")[1]) == f"{number}-行政协助函（一）.docx"
    pdf = await api.client.get(f"{base}/2", headers=api.auth("sifa"))  # 区司法局 reads it too; PDF by default
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF-")
    text = await api.client.get(f"{base}/2", params={"format": "txt"}, headers=api.auth("gongan"))
    assert text.status_code == 403  # gongan reads its own store's copy, not shenpi's
    text = await api.client.get(f"/v1/bureaus/gongan/requests/shenpi/{number}/letters/2", params={"format": "txt"},
                                headers=api.auth("gongan"))
    assert text.status_code == 200 and "行政协助回复函" in text.text and f"（编号：{number}）" in text.text
    missing = await api.client.get(f"{base}/3", params={"format": "txt"}, headers=api.auth("shenpi"))
    assert missing.status_code == 404
    # 附件4-2 (by letter, two staff named) and the written decline of 三（二）, from the same API.
    by_letter = (await api.client.post("/v1/bureaus/shenpi/requests", headers=api.auth("shenpi"),
                                       json=request_body(channel="letter", staff=["李明", "王刚"]))).json()["number"]
    [two] = (await api.client.get(f"/v1/bureaus/shenpi/requests/shenpi/{by_letter}/letters",
                                  headers=api.auth("shenpi"))).json()
    assert two["kind"] == "行政协助函（二）" and two["filename"] == f"{by_letter}-行政协助函（二）"
    declined = (await api.client.post("/v1/bureaus/shenpi/requests", json=request_body("ziran"),
                                      headers=api.auth("shenpi"))).json()["number"]
    await node.settle()
    r = await api.client.post(f"/v1/bureaus/ziran/requests/shenpi/{declined}/decline", headers=api.auth("ziran"),
                              json={"reasons": "不属于本机关职权范围"})
    assert r.status_code == 200, r.text
    await node.settle()
    base = f"/v1/bureaus/shenpi/requests/shenpi/{declined}/letters"
    assert [x["kind"] for x in (await api.client.get(base, headers=api.auth("shenpi"))).json()] == [
        "行政协助函（一）", "不能提供行政协助告知书"]
    docx = await api.client.get(f"{base}/2", params={"format": "docx"}, headers=api.auth("shenpi"))
    assert unquote(docx.headers["content-disposition"].split("UTF-8''")[1]) == f"{declined}-不能提供行政协助告知书.docx"
    text = await api.client.get(f"{base}/2", params={"format": "txt"}, headers=api.auth("shenpi"))
    assert "不属于本机关职权范围" in text.text and "区自然资源局" in text.text


async def test_a_missed_deadline_reaches_both_bureaus_feeds_and_a_late_answer_is_warned(
        settings: Settings, clock: SimulatedClock) -> None:
    from datetime import datetime

    from aggregates.registry import Registry
    from aggregates.store import SHANGHAI
    from tests.conftest import make_node

    node = await make_node(settings, Registry.load(), clock, agents=("shenpi", "ziran", "sifa")).start()
    door = make_door(settings, clock)
    tokens = {code: door.tokens.create(code)[1] for code in ("shenpi", "ziran")}
    app = create_app(door)
    try:
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://xiezhu") as client:
                def auth(code: str) -> dict[str, str]:
                    return {"Authorization": f"Bearer {tokens[code]}"}

                r = await client.post("/v1/bureaus/shenpi/requests", json=request_body("ziran"), headers=auth("shenpi"))
                number = r.json()["number"]
                await node.settle()
                clock.set(datetime(2026, 9, 28, 9, 0, tzinfo=SHANGHAI))  # due 09-24 24:00: overdue
                assert node.monitor is not None
                node.monitor.tick()
                node.wake_relays()
                await node.settle()
                for code in ("shenpi", "ziran"):
                    await eventually(lambda code=code: "sla.breached" in [i["type"] for _, i in  # type: ignore[misc]
                                                                         door.feeds[code].items()])
                async with client.stream("GET", "/v1/bureaus/ziran/events", params={"after": 0, "limit": 2},
                                         headers=auth("ziran")) as stream:
                    text = "".join([chunk async for chunk in stream.aiter_text()])
                assert "event: assistance.requested" in text and "event: sla.breached" in text
                r = await client.post(f"/v1/bureaus/ziran/requests/shenpi/{number}/answer", headers=auth("ziran"),
                                      json={"items": [{"no": 1, "verdict": "true"}, {"no": 2, "verdict": "true"}]})
                assert r.status_code == 200 and r.json()["warnings"], r.text
                assert "late" in r.json()["warnings"][0]
    finally:
        door.close()
        await node.stop()


async def test_a_commitment_case_is_opened_and_advanced_over_http(api: Api, node: Node) -> None:
    from tests.test_clerk_cli import MATTER, publish_matters

    publish_matters(node.catalogue)
    auth = api.auth("shenpi")
    body = {"matter": MATTER, "applicant": request_body()["applicant"], "items": request_body()["items"]}
    before = api.state()
    for bad in ({**body, "matter": "ZM-nosuch"}, {**body, "items": []}):
        r = await api.client.post("/v1/bureaus/shenpi/cases", json=bad, headers=auth)
        assert r.status_code == 422, r.text
    assert (await api.client.post("/v1/bureaus/shenpi/cases", json=body, headers=api.auth("gongan"))).status_code == 403
    assert api.state() == before
    r = await api.client.post("/v1/bureaus/shenpi/cases", json=body, headers=auth)
    assert r.status_code == 201, r.text
    number = r.json()["number"]
    base = f"/v1/bureaus/shenpi/cases/{number}"
    for path, payload in (("notice", None), ("commitment", {}),
                          ("plan", {"items": [{"no": 1, "method": "assistance", "detail": ITEMS["gongan"],
                                               "due_on": "2026-09-30"},
                                              {"no": 2, "method": "assistance", "detail": ITEMS["gongan"],
                                               "due_on": "2026-09-30"}]})):
        r = await api.client.post(f"{base}/{path}", json=payload, headers=auth)
        assert r.status_code == 200, (path, r.text)
    early = await api.client.post(f"{base}/conclusion", headers=auth)
    assert early.status_code == 409
    r = await api.client.post("/v1/bureaus/shenpi/requests", headers=auth,
                              json=request_body(commitment_case=number))
    assert r.status_code == 201, r.text
    await node.settle()
    r = await api.client.post(f"{base}/approval", json={"decision_no": "台审批许〔2026〕1号"}, headers=auth)
    assert r.status_code == 200, r.text
    r = await api.client.post(f"{base}/conclusion", headers=auth)
    assert r.status_code == 200 and r.json()["status"] == "closed", r.text
    shown = (await api.client.get(base, headers=api.auth("sifa"))).json()
    assert shown["requests"] == [{"number": "20260001", "assistor": "gongan", "status": "replied"}]
    assert "*" in shown["state"]["applicant"]["id_number"]
    r = await api.client.post(f"{base}/consequences", json={"kind": "revoke", "legal_reason": "无虚假承诺"},
                              headers=auth)
    assert r.status_code == 409  # nothing was found false


async def test_a_commitment_cases_letters_come_over_http(api: Api, node: Node) -> None:
    from urllib.parse import unquote

    from tests.test_clerk_cli import MATTER, publish_matters

    publish_matters(node.catalogue)
    auth = api.auth("shenpi")
    body = {"matter": MATTER, "applicant": request_body()["applicant"], "items": request_body()["items"]}
    number = (await api.client.post("/v1/bureaus/shenpi/cases", json=body, headers=auth)).json()["number"]
    base = f"/v1/bureaus/shenpi/cases/{number}"
    for path, payload in (("notice", None), ("commitment", {})):
        assert (await api.client.post(f"{base}/{path}", json=payload, headers=auth)).status_code == 200
    listed = (await api.client.get(f"{base}/letters", headers=auth)).json()
    assert [(x["kind"], x["filename"]) for x in listed] == [("承诺告知书", f"{number}-承诺告知书"),
                                                            ("申请人承诺书", f"{number}-申请人承诺书")]
    text = await api.client.get(f"{base}/letters/1", params={"format": "txt"}, headers=api.auth("sifa"))
    assert text.status_code == 200 and text.text.startswith("承诺告知书") and "区审批服务局" in text.text
    docx = await api.client.get(f"{base}/letters/2", params={"format": "docx"}, headers=auth)
    assert docx.status_code == 200 and docx.content.startswith(b"PK")
    assert (await api.client.get(f"{base}/letters/3", headers=auth)).status_code == 404
    # Found false after the approval and revoked: the decision and the notice to hand the licence back (三(三)).
    steps = [("plan", {"items": [{"no": 1, "method": "online", "detail": "户籍系统", "due_on": "2026-09-30"},
                                 {"no": 2, "method": "online", "detail": "户籍系统", "due_on": "2026-09-30"}]}),
             ("approval", {"decision_no": "台审批许〔2026〕1号"}),
             ("verifications", {"no": 1, "verdict": "true", "way": "online", "detail": "户籍系统"}),
             ("verifications", {"no": 2, "verdict": "false", "way": "online", "detail": "户籍系统",
                                "reason": "户籍系统查无此人"}),
             ("conclusion", None), ("consequences", {"kind": "revoke", "legal_reason": "承诺的户籍信息不实"})]
    for path, payload in steps:
        r = await api.client.post(f"{base}/{path}", json=payload, headers=auth)
        assert r.status_code == 200, (path, r.text)
    listed = (await api.client.get(f"{base}/letters", headers=auth)).json()
    assert [x["kind"] for x in listed[2:]] == ["撤销行政许可决定书", "交回行政许可证件通知书"]
    assert {x["type"] for x in listed[2:]} == {"letter.consequence"}
    pdf = await api.client.get(f"{base}/letters/4", headers=auth)  # PDF by default
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF-")
    assert unquote(pdf.headers["content-disposition"].split("UTF-8''")[1]) == f"{number}-交回行政许可证件通知书.pdf"
    text = await api.client.get(f"{base}/letters/3", params={"format": "txt"}, headers=auth)
    assert "撤销台审批许〔2026〕1号行政许可决定" in text.text and "户籍系统查无此人" not in text.text
