"""``xiezhu serve``: the HTTP API a bureau's own systems (its 审批 system) call.

Every endpoint needs a bureau's API token (``Authorization: Bearer xzt_…``).  A token acts
only as its bureau (403 for any other); 区司法局's token reads every bureau this process
serves and changes nothing.  What a call commits goes to the bureau's store, and the
bureau's agent relays it, as with the command line.  What arrives for a bureau is kept in
its feed (:mod:`xiezhu.http.feed`): listed at ``/notices``, streamed as Server-Sent Events
at ``/events`` and pushed to the bureau's webhook.  ``/openapi.json`` describes it all and
``/docs`` shows it, from assets served here (the offices may have no internet).
"""


import asyncio
import contextlib
import html
import json
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import httpx
import msgspec
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles

from agencies.desk import Desk, DeskError
from aggregates import assistance
from aggregates.assistance import CaseState
from aggregates.calendar_store import CalendarStore
from aggregates.catalogue import CatalogueError
from aggregates.clock import Clock
from aggregates.commitment import CommitmentState
from aggregates.errors import RuleError
from aggregates.registry import JUSTICE, Registry, zh_name
from aggregates.store import BureauStore, UnknownCase
from schemas import labels
from schemas.assistance import Applicant, CommitmentItem, ItemResult, Matter
from schemas.commitment import PlannedItem
from schemas.envelope import decode_envelope
from schemas.errors import XiezhuError
from schemas.privacy import mask_id, mask_json, mask_name
from xiezhu.bootstrap import System
from xiezhu.deadlines import late_warnings
from xiezhu.http import models as m
from xiezhu.http.alerts import Alerts, MailSettings, alerts_path, mail_once
from xiezhu.http.feed import Feed
from xiezhu.http.tokens import Token, TokenStore
from xiezhu.http.users import UserStore
from xiezhu.running import agent_running
from xiezhu.settings import Settings

T = TypeVar("T")
API_VERSION = "1"
#: How often the feed looks at the store for what arrived, and SSE at the feed.
POLL_S = 0.25
#: An SSE comment this often keeps proxies from closing an idle stream.
HEARTBEAT_S = 15.0


def _docs_assets() -> Path:
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


@dataclass(frozen=True)
class Principal:
    """Who a token says the caller is."""

    bureau: str
    token: Token

    @property
    def read_only(self) -> bool:
        return self.bureau == JUSTICE


class FrontDoor:
    """What ``xiezhu serve`` holds: the served bureaus' stores and feeds, the tokens, the delivery tasks."""

    def __init__(self, settings: Settings, registry: Registry, bureaus: Iterable[str], clock: Clock, *,
                 poll_interval: float = POLL_S, backoff_base: float = 1.0, backoff_cap: float = 600.0,
                 mail: MailSettings | None = None) -> None:
        """``mail``: where deadline alerts are mailed from (default: ``XIEZHU_SMTP_*``; none: no e-mail)."""
        self.settings = settings
        self.registry = registry
        self.bureaus = [registry[b].code for b in bureaus]
        self.clock = clock
        self.poll_interval = poll_interval
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.tokens = TokenStore(settings.tokens_path)
        #: The object graph of the data directory: every action goes through a bureau's desk.
        self.system = System(settings, registry, clock)
        self.feeds = {code: Feed(code, settings.feed_path(code)) for code in self.bureaus}
        self.mail = mail if mail is not None else MailSettings.from_env()
        #: Each bureau's alert recipients and the alerts mailed (:mod:`xiezhu.http.alerts`).
        self.alerts = {code: Alerts(code, alerts_path(settings, code)) for code in self.bureaus}
        #: The console's accounts and sessions (``xiezhu users create``).
        self.users = UserStore(settings.data_dir / "users.db")
        self._locks = {code: threading.Lock() for code in self.bureaus}
        self._open_lock = threading.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        #: Store reads running in worker threads: cancelling the task that awaits one does not stop it, so
        #: :meth:`close` waits for them before closing the files they read (closing under them crashes).
        self._in_threads = 0
        self._closed = False
        self._threads_done = threading.Condition()
        self.stopping = asyncio.Event()
        self._wake = {code: asyncio.Event() for code in self.bureaus}

    # -- stores --------------------------------------------------------------------------

    def store(self, code: str) -> BureauStore:
        """The bureau's store, for reading its log (the feed, a case's history); the agent writes the same file."""
        with self._open_lock:
            return self.system.store(code)

    def desk(self, code: str) -> Desk:
        """The bureau's service layer (:mod:`agencies.desk`): what a clerk does, the API does through it."""
        with self._open_lock:
            self.system.store(code)  # opened here, under the lock, not lazily in some request's thread
            return self.system.desk(code)

    def acting(self, code: str, action: Callable[[Desk], T]) -> T:
        """Run a clerk's action at ``code``'s desk, one at a time per bureau in this process."""
        with self._locks[code]:
            return action(self.desk(code))

    def queued(self, code: str) -> bool:
        """No agent of ``code`` runs on this machine: what was committed waits for it."""
        return not agent_running(self.settings.bureau_dir(code))

    # -- background work -------------------------------------------------------------------

    async def start(self) -> None:
        """Follow each bureau's store into its feed and deliver its webhook, until stopped."""
        if self._tasks:
            return
        self.stopping.clear()
        for code in self.bureaus:
            self._tasks.append(asyncio.create_task(self._follow(code), name=f"feed-{code}"))
            self._tasks.append(asyncio.create_task(self._deliver(code), name=f"webhook-{code}"))
            if self.mail is not None:
                self._tasks.append(asyncio.create_task(self._mail(code), name=f"mail-{code}"))

    async def stop(self) -> None:
        self.stopping.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _off_loop(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker thread, counted until it returns, whether or not its awaiter was cancelled."""
        def counted() -> T:
            # Counted from when the thread starts: a job cancelled while it waited for a thread
            # never runs, and close() does not wait for it (it waited out its 60 s under load).
            with self._threads_done:
                if self._closed:
                    raise RuntimeError("the front door is closed")  # its files are closed: touch nothing
                self._in_threads += 1
            try:
                return fn(*args)
            finally:
                with self._threads_done:
                    self._in_threads -= 1
                    self._threads_done.notify_all()

        return await asyncio.to_thread(counted)

    def close(self) -> None:
        """Close the files (after :meth:`stop`), once no worker thread still reads them."""
        self.stopping.set()
        with self._threads_done:
            self._threads_done.wait_for(lambda: self._in_threads == 0, timeout=60)
            self._closed = True  # a job that starts from now on touches nothing
        for store in self.system.stores.values():
            store.close()
        for feed in self.feeds.values():
            feed.close()
        for alerts in self.alerts.values():
            alerts.close()
        self.users.close()
        self.tokens.close()

    async def _follow(self, code: str) -> None:
        feed = self.feeds[code]
        while not self.stopping.is_set():
            try:
                exists = self.settings.store_exists(code)
                if exists and await self._off_loop(feed.follow, self.store(code)) > 0:
                    self._wake[code].set()
            except Exception as e:  # the store is busy or not there yet: look again
                _log().warning("feed %s: %s", code, e)
            await asyncio.sleep(self.poll_interval)

    async def _deliver(self, code: str) -> None:
        feed = self.feeds[code]
        async with httpx.AsyncClient(timeout=10.0) as client:
            while not self.stopping.is_set():
                try:
                    wait = await feed.deliver_once(client, backoff_base=self.backoff_base,
                                                   backoff_cap=self.backoff_cap)
                except Exception as e:
                    _log().warning("webhook %s: %s", code, e)
                    wait = self.backoff_base
                if wait == 0.0:
                    continue
                self._wake[code].clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake[code].wait(),
                                           timeout=self.poll_interval if wait is None else min(wait, 5.0))


    async def _mail(self, code: str) -> None:
        """Mail the bureau's deadline alerts to its people, each once (:func:`xiezhu.http.alerts.mail_once`)."""
        assert self.mail is not None
        feed, alerts = self.feeds[code], self.alerts[code]

        def name(c: str) -> str:
            return self.registry.name(c) if c in self.registry else c

        while not self.stopping.is_set():
            try:
                wait = await mail_once(feed, alerts, self.mail, name, backoff_base=self.backoff_base,
                                       backoff_cap=self.backoff_cap)
            except Exception as e:
                _log().warning("alerts %s: %s", code, e)
                wait = self.backoff_base
            if wait == 0.0:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(),
                                       timeout=self.poll_interval if wait is None else min(wait, 5.0))


def _log() -> Any:
    import logging

    return logging.getLogger("xiezhu.http")


# -- presenting cases ----------------------------------------------------------------------


def case_out(st: CaseState) -> m.CaseOut:
    """A case as the API shows it: applicants masked (decision 27), verdicts and reasons in full."""
    req = st.request
    return m.CaseOut(
        number=st.number, case=st.case, requester=st.requester, assistor=st.assistor, status=st.status,
        matter=req.matter.name, applicant=mask_name(req.applicant.name), id_number=mask_id(req.applicant.id_number),
        channel=req.channel, catalogue_item=req.catalogue_item, sent_at=st.sent_at.isoformat(),
        arrived_at=st.arrived_at.isoformat() if st.arrived_at else None,
        answered_at=st.answered_at.isoformat() if st.answered_at else None, answered_by=st.answered_by,
        results=[msgspec.to_builtins(r) for r in st.results], reasons=st.reasons,
        forwarded_to=list(st.forwarded_to),
        items=[mask_json({"no": i.no, "text": i.text, "check": i.check}) for i in req.items])


def history_of(store: BureauStore, case_id: str) -> list[m.HistoryLine]:
    """The case's events as this bureau's store holds them, in order."""
    lines = []
    for pos, stored in enumerate(store.recorder.select_events(uuid.UUID(case_id)), start=1):
        ev = store.mapper.to_domain_event(stored)
        clear = getattr(ev, "clear", None)
        if clear is None:
            continue
        env = decode_envelope(clear)
        lines.append(m.HistoryLine(pos=pos, id=env.id, type=env.type, sender=env.sender, recipient=env.recipient,
                                   time=env.time.isoformat()))
    return lines


def find_case(desk: Desk, requester: str, number: str) -> CaseState:
    """The request ``requester``/``number`` in the bureau's store."""
    for st in desk.requests():
        if st.number == number and st.requester == requester:
            return st
    raise UnknownCase(f"no request {requester}/{number} in {desk.bureau}'s store",
                      zh=f"{zh_name(desk.bureau)}的存储中没有请求 {requester}/{number}")


# -- the application -----------------------------------------------------------------------


class Refusal(HTTPException):
    """A refusal of the API with its 中文 beside the English ``detail`` (the body's ``message_zh``)."""

    def __init__(self, status_code: int, detail: str, zh: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code, detail, headers=headers)
        self.zh = zh


def _problem(status: int, error: str, message: str, message_zh: str | None = None) -> JSONResponse:
    """The body of a refusal: the stable ``error`` id, the English ``message`` and, where the error has
    one, its 中文 in ``message_zh`` (decision 64)."""
    body = {"error": error, "message": message}
    if message_zh:
        body["message_zh"] = message_zh
    return JSONResponse(body, status_code=status)


#: Paths a program calls (the JSON API and its documents, the ops endpoints); every other page is the console's.
_FOR_PROGRAMS = ("/v1/", "/openapi.json", "/asyncapi.json", "/docs", "/redoc", "/static/", "/metrics", "/healthz",
                 "/readyz")


def _for_a_person(request: Request) -> bool:
    """A refusal on a console page is a page a clerk reads, in 中文; the API's stays JSON."""
    return not request.url.path.startswith(_FOR_PROGRAMS)


def _refusal_page(status: int, message: str, headers: Mapping[str, str] | None = None) -> HTMLResponse:
    """The console's page for a refusal: what went wrong in 中文, nothing changed, and the way back."""
    return HTMLResponse(
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>未能办理</title>'
        '<link rel="stylesheet" href="/static/console/console.css"></head><body><main>'
        f"<h1>未能办理</h1><p>{html.escape(message)}</p><p>未作任何改动。</p>"
        '<p><a href="javascript:history.back()">返回上一页</a> · <a href="/">首页</a></p></main></body></html>',
        status_code=status, headers=dict(headers) if headers else None)


def _status_of(e: XiezhuError) -> int:
    if isinstance(e, UnknownCase | DeskError):
        return 404
    if isinstance(e, CatalogueError):
        return 422
    if isinstance(e, RuleError):
        return 409
    return 400


PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"model": m.Problem, "description": "No token, or an unknown or revoked one."},
    403: {"model": m.Problem, "description": "The token's bureau may not do this."},
    404: {"model": m.Problem, "description": "No such bureau here, or no such case."},
    409: {"model": m.Problem, "description": "The case does not allow this now; nothing changed."},
    422: {"model": m.Problem, "description": "The input is refused (the catalogue, a rule, a field); nothing changed."},
}

BureauPath = Annotated[str, PathParam(pattern=r"^[a-z][a-z0-9-]{1,31}$", description="A bureau code.")]
RequesterPath = Annotated[str, PathParam(pattern=r"^[a-z][a-z0-9-]{1,31}$", description="The requesting bureau.")]
NumberPath = Annotated[str, PathParam(pattern=r"^\d{8}$", description="The letter number, e.g. 20260001.")]


def create_app(door: FrontDoor, *, background: bool = True) -> FastAPI:
    """The FastAPI application over ``door``; its lifespan runs the feeds and webhooks (unless not ``background``)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if not background:
            yield
            return
        await door.start()
        try:
            yield
        finally:
            await door.stop()

    app = FastAPI(
        title="xiezhu", version=API_VERSION, lifespan=lifespan, docs_url=None, redoc_url=None,
        description="行政协助 between bureaus, for the bureaus' own systems: file a request, answer and decline "
                    "from the inbox, read a case and its history, hear of replies and deadline notices by "
                    "webhook or Server-Sent Events. Every call needs a bureau's token "
                    "(`xiezhu tokens create --bureau CODE`).")
    app.state.door = door
    app.mount("/static/docs", StaticFiles(directory=_docs_assets()), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="xiezhu API",
                                   swagger_js_url="/static/docs/swagger-ui-bundle.js",
                                   swagger_css_url="/static/docs/swagger-ui.css",
                                   swagger_favicon_url="/static/docs/favicon.png")

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title="xiezhu API",
                              redoc_js_url="/static/docs/redoc.standalone.js",
                              redoc_favicon_url="/static/docs/favicon.png", with_google_fonts=False)

    @app.get("/asyncapi.json", include_in_schema=False)
    def asyncapi() -> JSONResponse:
        """The NATS side's AsyncAPI document (`xiezhu docs asyncapi`), published beside the OpenAPI one."""
        from xiezhu.asyncapi import asyncapi_dict

        return JSONResponse(asyncapi_dict(door.registry))

    @app.exception_handler(XiezhuError)
    async def xiezhu_error(request: Request, e: XiezhuError) -> Response:
        if _for_a_person(request):
            return _refusal_page(_status_of(e), e.text("zh"))
        return _problem(_status_of(e), getattr(e, "code", "error"), str(e), e.zh)

    @app.exception_handler(msgspec.ValidationError)
    async def invalid(_: Request, e: msgspec.ValidationError) -> JSONResponse:
        return _problem(422, "invalid", str(e))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException) -> Response:
        if e.status_code >= 400 and _for_a_person(request):
            return _refusal_page(e.status_code, e.zh if isinstance(e, Refusal) else str(e.detail), e.headers)
        error = {401: "unauthenticated", 403: "forbidden", 404: "not-found"}.get(e.status_code, "http")
        body = {"error": error, "message": str(e.detail)}
        if isinstance(e, Refusal):
            body["message_zh"] = e.zh
        return JSONResponse(body, status_code=e.status_code, headers=e.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_input(_: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()))
        return _problem(422, "invalid", f"{where}: {first.get('msg', 'invalid input')}")

    app.include_router(_router(door))
    from xiezhu.ops import DoorOps, mount

    mount(app, DoorOps(door))  # /healthz, /readyz, /metrics
    from xiezhu.http.console import console_router, static_dir

    app.mount("/static/console", StaticFiles(directory=static_dir()), name="console-assets")
    app.include_router(console_router(door, door.users, find_case=find_case, case_out=case_out,
                                      history_of=history_of))  # the web console at /
    return app


def _router(door: FrontDoor) -> APIRouter:
    bearer = HTTPBearer(auto_error=False, description="A bureau's API token: `xiezhu tokens create --bureau CODE`.")
    r = APIRouter(prefix="/v1", responses=PROBLEMS)

    def principal(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Principal:
        token = door.tokens.check(creds.credentials) if creds is not None else None
        if token is None:
            raise Refusal(401, "a valid API token is needed: Authorization: Bearer xzt_…",
                          "需要有效的 API 令牌：Authorization: Bearer xzt_…", headers={"WWW-Authenticate": "Bearer"})
        return Principal(token.bureau, token)

    Who = Annotated[Principal, Depends(principal)]

    def served(bureau: str) -> None:
        if bureau not in door.bureaus:
            raise Refusal(404, f"this server does not serve {bureau!r} (it serves {', '.join(door.bureaus)})",
                          f"本服务不负责 {bureau!r}（负责：{'、'.join(zh_name(b) for b in door.bureaus)}）")

    def reader(bureau: BureauPath, who: Who) -> Principal:
        if who.bureau not in (bureau, JUSTICE):
            raise Refusal(403, f"a token of {who.bureau} cannot read {bureau}'s data",
                          f"{zh_name(who.bureau)}的令牌不能读取{zh_name(bureau)}的数据")
        served(bureau)
        return who

    def actor(bureau: BureauPath, who: Who) -> Principal:
        if who.read_only:
            raise Refusal(403, f"{JUSTICE}'s token reads; it cannot act for a bureau",
                          f"{zh_name(JUSTICE)}的令牌只能读取，不能代单位办理")
        if who.bureau != bureau:
            raise Refusal(403, f"a token of {who.bureau} cannot act as {bureau}",
                          f"{zh_name(who.bureau)}的令牌不能代{zh_name(bureau)}办理")
        served(bureau)
        return who

    Reader = Annotated[Principal, Depends(reader)]
    Actor = Annotated[Principal, Depends(actor)]

    def operator(who: Principal, given: str | None) -> str:
        """The person acting, as the signed record carries it: the body's operator, else the token's label."""
        return given or who.token.label or f"api-{who.token.id}"

    def acted(bureau: str, st: CaseState, warnings: list[str] | None = None) -> m.Acted:
        queued = door.queued(bureau)
        return m.Acted(number=st.number, case=st.case, requester=st.requester, assistor=st.assistor,
                       status=st.status, queued=queued, warnings=warnings or [])

    @r.get("/whoami", tags=["tokens"])
    def whoami(who: Who) -> m.WhoAmI:
        """The bureau the token acts as, and the bureaus this server serves."""
        return m.WhoAmI(bureau=who.bureau, token=who.token.id, read_only=who.read_only, serves=door.bureaus)

    # -- assistance requests -------------------------------------------------------------

    @r.get("/bureaus/{bureau}/inbox", tags=["assistance"])
    def inbox(bureau: BureauPath, who: Reader) -> list[m.CaseOut]:
        """Requests addressed to the bureau that wait for an answer (applicants masked)."""
        return [case_out(st) for st in door.desk(bureau).inbox()]

    @r.get("/bureaus/{bureau}/requests", tags=["assistance"])
    def requests(bureau: BureauPath, who: Reader,
                 role: Annotated[str | None, Query(pattern="^(sent|received)$")] = None,
                 status: Annotated[str | None, Query(pattern="^(requested|received|replied|declined|withdrawn)$")]
                 = None) -> list[m.CaseOut]:
        """Every request the bureau sent or received, oldest first."""
        out = []
        for st in door.desk(bureau).requests():
            if role == "sent" and st.requester != bureau or role == "received" and st.assistor != bureau:
                continue
            if status and st.status != status:
                continue
            out.append(case_out(st))
        return out

    @r.post("/bureaus/{bureau}/requests", tags=["assistance"], status_code=201)
    def file_request(bureau: BureauPath, who: Actor, body: m.RequestIn) -> m.Acted:
        """Send a 行政协助函 for an item of the published catalogue (第七条); refused before anything is stored
        if the item is not catalogued for this pair, or an on-site item has no memorandum (第六条)."""
        if body.channel == "letter" and len(body.staff) != 2:
            raise Refusal(422, "协助函（二） (channel letter) names the two staff sent",
                          "协助函（二）须写明派出的两名工作人员")
        if body.channel == "platform" and body.staff:
            raise Refusal(422, "staff are named only for channel letter (协助函（二）)",
                          "只有协助函（二）才写明工作人员")
        items = [msgspec.convert(i.model_dump(), CommitmentItem) for i in body.items]
        applicant = msgspec.convert(body.applicant.model_dump(), Applicant)
        matter = msgspec.convert(body.matter.model_dump(), Matter)

        def send(desk: Desk) -> CaseState:
            link = desk.find_commitment(body.commitment_case) if body.commitment_case else ""
            return desk.send_request(assistor=body.assistor, applicant=applicant, matter=matter,
                                     applied_on=body.applied_on, items=items, channel=body.channel,
                                     staff=body.staff, catalogue_item=body.catalogue_item, commitment_case=link)

        return acted(bureau, door.acting(bureau, send))

    @r.get("/bureaus/{bureau}/requests/{requester}/{number}", tags=["assistance"])
    def read_case(bureau: BureauPath, requester: RequesterPath, number: NumberPath, who: Reader) -> m.CaseDetail:
        """One request and its history as the bureau's store holds it."""
        st = find_case(door.desk(bureau), requester, number)
        return m.CaseDetail(case=case_out(st), history=history_of(door.store(bureau), st.case))

    def _inbox_case(desk: Desk, bureau: str, requester: str, number: str) -> CaseState:
        st = find_case(desk, requester, number)
        if st.assistor != bureau:
            raise Refusal(409, f"{requester}/{number} is {bureau}'s own request, not one to answer",
                          f"{requester}/{number} 是{zh_name(bureau)}自己发出的请求，无需答复")
        return st

    @r.post("/bureaus/{bureau}/requests/{requester}/{number}/answer", tags=["assistance"])
    def answer(bureau: BureauPath, requester: RequesterPath, number: NumberPath, who: Actor,
               body: m.AnswerIn) -> m.Acted:
        """Reply with a 回复函: 真实 / 虚假 / 无法证实 (with the reason) for every item asked."""
        results = [msgspec.convert(i.model_dump(), ItemResult) for i in body.items]
        if any(r.verdict == "unverifiable" and not r.reason.strip() for r in results):
            raise Refusal(422, "无法证实 needs the reason (附件5 备注)", "无法证实须写明理由（附件5 备注）")

        def reply(desk: Desk) -> tuple[CaseState, list[str]]:
            st = _inbox_case(desk, bureau, requester, number)
            warnings = late_warnings(CalendarStore(door.settings.calendar_dir), st, door.clock.now(), "reply")
            return desk.answer(st.case, results, operator(who, body.operator)), warnings

        st, warnings = door.acting(bureau, reply)
        return acted(bureau, st, warnings)

    @r.post("/bureaus/{bureau}/requests/{requester}/{number}/decline", tags=["assistance"])
    def decline(bureau: BureauPath, requester: RequesterPath, number: NumberPath, who: Actor,
                body: m.DeclineIn) -> m.Acted:
        """Decline in writing (书面告知), with the reasons."""
        def do(desk: Desk) -> tuple[CaseState, list[str]]:
            st = _inbox_case(desk, bureau, requester, number)
            warnings = late_warnings(CalendarStore(door.settings.calendar_dir), st, door.clock.now(), "decline")
            return desk.decline(st.case, body.reasons, operator(who, body.operator)), warnings

        st, warnings = door.acting(bureau, do)
        return acted(bureau, st, warnings)

    @r.post("/bureaus/{bureau}/requests/{requester}/{number}/forward", tags=["assistance"])
    def forward(bureau: BureauPath, requester: RequesterPath, number: NumberPath, who: Actor,
                body: m.ForwardIn) -> m.Acted:
        """第五条: ask the institution holding pre-reform archives; the answer comes later, on its behalf."""
        def do(desk: Desk) -> CaseState:
            st = _inbox_case(desk, bureau, requester, number)
            return desk.forward(st.case, body.institution, body.note)

        return acted(bureau, door.acting(bureau, do))

    @r.post("/bureaus/{bureau}/requests/{requester}/{number}/withdraw", tags=["assistance"])
    def withdraw(bureau: BureauPath, requester: RequesterPath, number: NumberPath, who: Actor,
                 body: m.WithdrawIn) -> m.Acted:
        """The requester withdraws a request it no longer needs, while it is open."""
        if requester != bureau:
            raise Refusal(409, f"only {requester} can withdraw its request {number}",
                          f"只有{zh_name(requester)}可以撤回其请求 {number}")

        def do(desk: Desk) -> CaseState:
            st = find_case(desk, requester, number)
            if st.status not in assistance.OPEN:
                raise Refusal(409, f"request {number} is {st.status}; nothing to withdraw",
                              f"请求 {number} 为“{labels.REQUEST_STATUS.get(st.status, st.status)}”；无可撤回")
            return desk.withdraw_request(st.case, body.reason)

        return acted(bureau, door.acting(bureau, do))

    # -- commitment cases (告知承诺) ------------------------------------------------------------

    CasePath = Annotated[str, PathParam(pattern=r"^C\d{8}$", description="The commitment case, e.g. C20260001.")]

    def commitment_out(desk: Desk, st: CommitmentState) -> m.CommitmentOut:
        return m.CommitmentOut(
            number=st.number, case=st.case, status=st.status, outcomes=list(st.outcomes),
            state=mask_json(msgspec.to_builtins(st)),
            requests=[{"number": r.number, "assistor": r.assistor, "status": r.status}
                      for r in desk.requests_for(st.case)])

    def stepped(bureau: str, number: str, step: Callable[[Desk, str], CommitmentState | None]) -> m.CommitmentOut:
        def do(desk: Desk) -> m.CommitmentOut:
            case = desk.find_commitment(number)
            st = step(desk, case)
            return commitment_out(desk, st if st is not None else desk.commitment(case))
        return door.acting(bureau, do)

    @r.get("/bureaus/{bureau}/cases", tags=["commitment cases"])
    def cases(bureau: BureauPath, who: Reader) -> list[m.CommitmentOut]:
        """The bureau's commitment cases, oldest first."""
        desk = door.desk(bureau)
        return [commitment_out(desk, st) for st in desk.commitments()]

    @r.post("/bureaus/{bureau}/cases", tags=["commitment cases"], status_code=201)
    def open_case(bureau: BureauPath, who: Actor, body: m.CaseOpenIn) -> m.CommitmentOut:
        """Open a commitment case for a matter of the published 附件8 list; an applicant of poor credit is
        refused the commitment route at once, with the reason (四(二))."""
        items = [msgspec.convert(i.model_dump(), CommitmentItem) for i in body.items]
        applicant = msgspec.convert(body.applicant.model_dump(), Applicant)

        def do(desk: Desk) -> m.CommitmentOut:
            return commitment_out(desk, desk.open_case(applicant, body.matter, items, body.applied_on))
        return door.acting(bureau, do)

    @r.get("/bureaus/{bureau}/cases/{number}", tags=["commitment cases"])
    def read_commitment(bureau: BureauPath, number: CasePath, who: Reader) -> m.CommitmentOut:
        """One commitment case, its steps so far and the assistance requests made for it."""
        desk = door.desk(bureau)
        return commitment_out(desk, desk.commitment(desk.find_commitment(number)))

    @r.post("/bureaus/{bureau}/cases/{number}/notice", tags=["commitment cases"])
    def case_notice(bureau: BureauPath, number: CasePath, who: Actor) -> m.CommitmentOut:
        """Give the applicant the 承诺告知书 (附件6)."""
        return stepped(bureau, number, lambda desk, case: desk.issue_notice(case))

    @r.post("/bureaus/{bureau}/cases/{number}/refuse-disclosure", tags=["commitment cases"])
    def case_refuse_disclosure(bureau: BureauPath, number: CasePath, who: Actor) -> m.CommitmentOut:
        """二(四): the applicant does not consent to making the commitment public; the certificate is needed."""
        return stepped(bureau, number, lambda desk, case: desk.refuse_disclosure(case))

    @r.post("/bureaus/{bureau}/cases/{number}/route", tags=["commitment cases"])
    def case_route(bureau: BureauPath, number: CasePath, who: Actor, body: m.RouteIn) -> m.CommitmentOut:
        """For a 可选择 matter: the applicant commits, or brings the certificate."""
        return stepped(bureau, number, lambda desk, case: desk.choose_route(case, body.route))

    @r.post("/bureaus/{bureau}/cases/{number}/commitment", tags=["commitment cases"])
    def case_commit(bureau: BureauPath, number: CasePath, who: Actor, body: m.CommitIn) -> m.CommitmentOut:
        """The applicant signs the 申请人承诺书 (附件7)."""
        return stepped(bureau, number, lambda desk, case: desk.commit(case, body.signed_on))

    @r.post("/bureaus/{bureau}/cases/{number}/approval", tags=["commitment cases"])
    def case_approve(bureau: BureauPath, number: CasePath, who: Actor, body: m.ApproveIn) -> m.CommitmentOut:
        """Approve on the commitment (before or after the verification)."""
        return stepped(bureau, number, lambda desk, case: desk.approve(case, body.decision_no))

    @r.post("/bureaus/{bureau}/cases/{number}/withdrawal", tags=["commitment cases"])
    def case_withdraw(bureau: BureauPath, number: CasePath, who: Actor, body: m.ReasonIn) -> m.CommitmentOut:
        """二(三): the applicant leaves the commitment route midway (before the decision)."""
        return stepped(bureau, number, lambda desk, case: desk.withdraw_case(case, body.reason))

    @r.post("/bureaus/{bureau}/cases/{number}/plan", tags=["commitment cases"])
    def case_plan(bureau: BureauPath, number: CasePath, who: Actor, body: m.PlanIn) -> m.CommitmentOut:
        """The verification plan: how and by when each committed item is verified."""
        planned = [msgspec.convert(p.model_dump(mode="json"), PlannedItem) for p in body.items]
        return stepped(bureau, number, lambda desk, case: desk.plan_verification(case, planned))

    @r.post("/bureaus/{bureau}/cases/{number}/verifications", tags=["commitment cases"])
    def case_verify(bureau: BureauPath, number: CasePath, who: Actor, body: m.VerifyIn) -> m.CommitmentOut:
        """Record one committed item's verification (online, by an assistance reply, on site by two officers)."""
        if body.verdict != "true" and not body.reason.strip():
            raise Refusal(422, f"a verdict of {body.verdict} needs the reason",
                          f"结论为{labels.VERDICT.get(body.verdict, body.verdict)}时须写明理由")
        if body.way == "on-site":
            officers = [o.strip() for o in body.officers if o.strip()]
            if len(officers) < 2:
                raise Refusal(422, "an on-site check is made by at least two officers",
                              "现场核查须由至少两名工作人员进行")
            return stepped(bureau, number, lambda desk, case: desk.verify_on_site(
                case, body.no, body.verdict, officers, body.reason))
        if not body.detail.strip():
            raise Refusal(422, "detail: the system checked (online) or the 协助函 number (assistance)",
                          "detail：写明核查所用的系统（online）或协助函编号（assistance）")
        source = f"online:{body.detail.strip()}" if body.way == "online" else \
            f"assistance:{bureau}/{body.detail.strip()}"
        return stepped(bureau, number, lambda desk, case: desk.verify_item(
            case, body.no, body.verdict, source, body.reason))

    @r.post("/bureaus/{bureau}/cases/{number}/conclusion", tags=["commitment cases"])
    def case_conclude(bureau: BureauPath, number: CasePath, who: Actor) -> m.CommitmentOut:
        """Close the verification once every item has its verdict; a false item records the false commitment
        (and its 信用中国 record) (三(三))."""
        def do(desk: Desk) -> m.CommitmentOut:
            case = desk.find_commitment(number)
            st = desk.conclude(case)
            if st is None:
                raise Refusal(409, f"{number} cannot be concluded now: an item waits for its verdict, "
                                   f"or it needs its decision first",
                              f"{number} 现在不能办结：有事项在等待核查结论，或须先作出决定")
            return commitment_out(desk, st)
        return door.acting(bureau, do)

    @r.post("/bureaus/{bureau}/cases/{number}/consequences", tags=["commitment cases"])
    def case_consequence(bureau: BureauPath, number: CasePath, who: Actor, body: m.ConsequenceIn) -> m.CommitmentOut:
        """One consequence of a false commitment (三(三), 附件6): terminate, rectify (by ``deadline``),
        rectified (``evidence``), revoke, penalise (``penalty``), notify the supervising ``department``, refer
        (``to``); each but rectified with its ``legal_reason``."""
        reason = body.legal_reason or ""
        needs = {"rectify": body.deadline, "rectified": body.evidence.strip(), "penalise": body.penalty.strip(),
                 "notify": body.department, "refer": body.to.strip()}
        if body.kind in needs and not needs[body.kind]:
            field = {"rectify": "deadline", "rectified": "evidence", "penalise": "penalty", "notify": "department",
                     "refer": "to"}[body.kind]
            raise Refusal(422, f"{body.kind} needs {field}", f"{body.kind} 须有 {field}")
        if body.kind != "rectified" and not reason:
            raise Refusal(422, f"{body.kind} needs its legal_reason", f"{body.kind} 须写明法律依据（legal_reason）")
        if body.kind == "notify" and body.department not in door.registry:
            raise Refusal(422, f"no bureau {body.department!r}", f"没有单位 {body.department!r}")

        def step(desk: Desk, case: str) -> CommitmentState:
            match body.kind:
                case "terminate":
                    return desk.terminate(case, reason)
                case "rectify":
                    assert body.deadline is not None
                    return desk.order_rectification(case, body.deadline, reason)
                case "rectified":
                    return desk.confirm_rectification(case, body.evidence.strip())
                case "revoke":
                    return desk.revoke(case, reason)
                case "penalise":
                    return desk.penalise(case, body.penalty.strip(), reason)
                case "notify":
                    assert body.department is not None
                    return desk.notify_supervisor(case, body.department, reason)
                case _:
                    return desk.refer(case, body.to.strip(), reason)
        return stepped(bureau, number, step)

    # -- what arrived ----------------------------------------------------------------------

    def feed_items(bureau: str, after: int, limit: int) -> list[m.FeedItem]:
        return [m.FeedItem(seq=seq, **item) for seq, item in door.feeds[bureau].items(after, limit)]

    @r.get("/bureaus/{bureau}/notices", tags=["notices"])
    def notices(bureau: BureauPath, who: Reader, after: Annotated[int, Query(ge=0, le=2**62)] = 0,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[m.FeedItem]:
        """What arrived for the bureau (requests, replies, declines, deadline reminders and breaches), in order;
        page with ``after`` = the last ``seq`` seen."""
        return feed_items(bureau, after, limit)

    @r.get("/bureaus/{bureau}/events", tags=["notices"], response_class=StreamingResponse,
           responses={200: {"content": {"text/event-stream": {}},
                            "description": "`id: <seq>`, `event: <type>`, `data: <the notice as JSON>`"}})
    async def events(request: Request, bureau: BureauPath, who: Reader,
                     after: Annotated[int | None, Query(ge=0, le=2**62)] = None,
                     limit: Annotated[int | None, Query(ge=1, le=100000)] = None,
                     last_event_id: Annotated[str | None, Header(max_length=20)] = None) -> StreamingResponse:
        """The same notices as a Server-Sent Events stream; it resumes after ``Last-Event-ID`` (or ``after``),
        else starts with what arrives from now on.  ``limit`` ends the stream after so many events."""
        feed = door.feeds[bureau]
        if after is not None:
            start = after
        elif last_event_id is not None and last_event_id.isdigit():
            start = int(last_event_id)
        else:
            start = feed.head

        async def stream() -> AsyncIterator[bytes]:
            position, sent = start, 0
            idle = 0.0
            yield b"retry: 2000\n\n"
            while not door.stopping.is_set():
                rows = await asyncio.to_thread(feed.items, position, 100)
                for seq, item in rows:
                    data = json.dumps(item, ensure_ascii=False)
                    yield f"id: {seq}\nevent: {item['type']}\ndata: {data}\n\n".encode()
                    position, sent = seq, sent + 1
                    if limit is not None and sent >= limit:
                        return
                if rows:
                    idle = 0.0
                    continue
                if await request.is_disconnected():
                    return
                await asyncio.sleep(door.poll_interval)
                idle += door.poll_interval
                if idle >= HEARTBEAT_S:
                    idle = 0.0
                    yield b": keep-alive\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    # -- letters ---------------------------------------------------------------------------

    def names(code: str) -> str:
        return door.registry.name(code) if code in door.registry else code

    def request_letters(bureau: str, requester: str, number: str) -> list[Any]:
        from projections.documents.case_letters import assistance_letters

        return assistance_letters(find_case(door.desk(bureau), requester, number), names)

    def commitment_letters(bureau: str, number: str) -> list[Any]:
        """附件6, 附件7 and the consequence notices, folded from the case's envelopes in the bureau's store."""
        import hashlib

        from projections.documents.case_letters import letters_of

        case_id = door.desk(bureau).find_commitment(number)
        store = door.store(bureau)
        envelopes = []
        for stored in store.recorder.select_events(uuid.UUID(case_id)):
            clear = getattr(store.mapper.to_domain_event(stored), "clear", None)
            if clear is not None:
                envelopes.append((decode_envelope(clear), hashlib.sha256(clear).hexdigest()))
        return letters_of("commitment", envelopes, names)

    def listed(letters: list[Any], number: str) -> list[dict[str, Any]]:
        from projections.documents.paper import paper

        out = []
        for n, letter in enumerate(letters, start=1):
            p = paper(letter, number)
            out.append({"n": n, "type": type(letter).__struct_config__.tag, "kind": p.kind,
                        "title": p.pages[0].title, "filename": p.filename, "letter": msgspec.to_builtins(letter)})
        return out

    def letter_file(letters: list[Any], n: int, number: str, format: str) -> Response:
        from urllib.parse import quote

        from projections.documents.letters import render
        from projections.documents.paper import paper
        from projections.documents.pdf import pdf_bytes
        from projections.documents.word import docx_bytes

        if n > len(letters):
            raise Refusal(404, f"{number} has {len(letters)} letter(s), not {n}",
                          f"{number} 有 {len(letters)} 份文书，没有第 {n} 份")
        p = paper(letters[n - 1], number)
        match format:
            case "docx":
                body, media = docx_bytes(p), "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            case "pdf":
                body, media = pdf_bytes(p), "application/pdf"
            case _:
                body, media = render(letters[n - 1]).encode(), "text/plain; charset=utf-8"
        name = f"{p.filename}.{format}"
        return Response(body, media_type=media, headers={
            "Content-Disposition": f"attachment; filename=\"{number}.{format}\"; filename*=UTF-8''{quote(name)}"})

    LetterNo = Annotated[int, PathParam(ge=1, le=20, description="The letter's place in the list.")]
    LetterFormat = Annotated[str, Query(pattern="^(txt|docx|pdf)$")]
    docx_type = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    FILES: dict[int | str, dict[str, Any]] = {
        200: {"content": {docx_type: {}, "application/pdf": {}, "text/plain": {}}}}

    @r.get("/bureaus/{bureau}/requests/{requester}/{number}/letters", tags=["letters"])
    def list_letters(bureau: BureauPath, requester: RequesterPath, number: NumberPath,
                     who: Reader) -> list[dict[str, Any]]:
        """The request's letters (附件4 协助函, then the 附件5 回复函 or the written decline), each with its
        Chinese file name; fetch one as txt, docx or pdf at ``…/letters/{n}?format=``."""
        return listed(request_letters(bureau, requester, number), number)

    @r.get("/bureaus/{bureau}/requests/{requester}/{number}/letters/{n}", tags=["letters"],
           response_class=Response, responses=FILES)
    def get_letter(bureau: BureauPath, requester: RequesterPath, number: NumberPath, who: Reader, n: LetterNo,
                   format: LetterFormat = "pdf") -> Response:
        """One letter as a file named as a clerk files it, e.g. ``20260007-行政协助函（一）.pdf``: PDF with
        its CJK font embedded, DOCX to edit in WPS or Word, or plain text."""
        return letter_file(request_letters(bureau, requester, number), n, number, format)

    @r.get("/bureaus/{bureau}/cases/{number}/letters", tags=["letters"])
    def list_case_letters(bureau: BureauPath, number: CasePath, who: Reader) -> list[dict[str, Any]]:
        """A commitment case's letters: 承诺告知书 (附件6), 申请人承诺书 (附件7), and the notices of what
        followed a false commitment (终止办理, 责令限期整改, 撤销, 交回证件)."""
        return listed(commitment_letters(bureau, number), number)

    @r.get("/bureaus/{bureau}/cases/{number}/letters/{n}", tags=["letters"], response_class=Response,
           responses=FILES)
    def get_case_letter(bureau: BureauPath, number: CasePath, who: Reader, n: LetterNo,
                        format: LetterFormat = "pdf") -> Response:
        """One of the case's letters as a file, e.g. ``C20260001-承诺告知书.docx``."""
        return letter_file(commitment_letters(bureau, number), n, number, format)

    # -- the webhook -------------------------------------------------------------------------

    def webhook_out(feed: Feed, secret: str | None = None) -> m.WebhookOut:
        hook = feed.webhook()
        if hook is None:
            raise Refusal(404, f"{feed.bureau} has no webhook; PUT one",
                          f"{zh_name(feed.bureau)}没有 webhook；请先 PUT 一个")
        return m.WebhookOut(**hook.public(), pending=feed.pending(), secret=secret)

    @r.get("/bureaus/{bureau}/webhook", tags=["notices"])
    def get_webhook(bureau: BureauPath, who: Reader) -> m.WebhookOut:
        """The bureau's webhook and how its deliveries stand (without the secret)."""
        return webhook_out(door.feeds[bureau])

    @r.put("/bureaus/{bureau}/webhook", tags=["notices"])
    def put_webhook(bureau: BureauPath, who: Actor, body: m.WebhookIn) -> m.WebhookOut:
        """Register (or replace) the URL notices are POSTed to, each signed with HMAC-SHA256 under the secret:
        ``X-Xiezhu-Signature: sha256=hex(HMAC(secret, X-Xiezhu-Timestamp + "." + body))``; ``X-Xiezhu-Delivery`` is
        the notice's id (a receiver keeps the ids it has seen: a delivery whose 2xx was lost comes again)."""
        feed = door.feeds[bureau]
        hook = feed.register(body.url, body.secret, since=body.since)
        return webhook_out(feed, hook.secret)

    @r.delete("/bureaus/{bureau}/webhook", tags=["notices"], status_code=204)
    def delete_webhook(bureau: BureauPath, who: Actor) -> None:
        """Stop pushing notices (they stay readable at /notices and /events)."""
        if not door.feeds[bureau].unregister():
            raise Refusal(404, f"{bureau} has no webhook", f"{zh_name(bureau)}没有 webhook")

    return r
