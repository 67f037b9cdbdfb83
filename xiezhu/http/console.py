"""The web console of ``xiezhu serve`` (Chinese): login, 期限看板 (live), 待办 with the answer form, a case page.

Server-rendered with Jinja2; the only JavaScript (``static/console/console.js``, served here:
the offices may have no internet) listens to ``/board/events`` (Server-Sent Events) and
swaps the board's rows in when they change, without a reload.  A bureau's operator sees and
acts for its own bureau only (403 elsewhere); 区司法局's accounts (``sifa``) see every bureau
the server serves and act for none.  Applicants are masked everywhere (decision 27).
Every POST carries the session's CSRF token.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import msgspec
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates

from aggregates.assistance import OPEN, CaseState, legal_arrival, time_limits
from aggregates.calendar_store import CalendarStore
from aggregates.registry import JUSTICE
from aggregates.store import SHANGHAI
from schemas import labels
from schemas.assistance import ItemResult
from schemas.privacy import mask_id, mask_name
from xiezhu.http.users import Session, UserStore

#: ``xiezhu serve``'s :class:`xiezhu.http.app.FrontDoor` (which mounts this console: no import back).
FrontDoor = Any

HERE = Path(__file__).parent
COOKIE = "xiezhu_session"
#: The login form's own CSRF token (double submit: this cookie and the form's hidden field must agree).
LOGIN_COOKIE = "xiezhu_login"
#: How often the live board looks for a change.
BOARD_POLL_S = 1.0

#: The board's states (the open ones) and the words for them, from the one label table (docs/glossary.md).
STATE_ZH = {k: labels.SLA_STATE[k] for k in ("in-transit", "on-time", "due-soon", "due-today", "overdue")}
STATUS_ZH = labels.REQUEST_STATUS
VERDICT_ZH = labels.VERDICT


def static_dir() -> Path:
    return HERE / "static" / "console"


def board_rows(door: FrontDoor, bureaus: list[str], now: datetime, *, state: str = "", matter: str = "",
               bureau: str = "") -> list[dict[str, Any]]:
    """Every open request the bureaus answer or wait for, with its working days left and SLA state."""
    cal = CalendarStore(door.settings.calendar_dir).calendar()
    today = now.astimezone(SHANGHAI).date()
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for code in bureaus:
        if bureau and code != bureau:
            continue
        if not door.settings.store_exists(code):
            continue
        for st in door.desk(code).requests():
            if st.status not in OPEN or st.case in seen:
                continue
            seen.add(st.case)
            row = _judge(st, cal, now, today)
            row["bureau"] = code
            if state and row["state"] != state or matter and matter not in row["matter"]:
                continue
            out.append(row)
    order = {"overdue": 0, "due-today": 1, "due-soon": 2, "on-time": 3, "in-transit": 4}
    out.sort(key=lambda r: (order[r["state"]], r["due_at"] or "", r["number"]))
    return out


def view_rows(view: Any, served: list[str], now: datetime, cal: Any, *, state: str = "", matter: str = "",
              bureau: str = "") -> list[dict[str, Any]]:
    """区司法局's board from the SLA view on this machine: every open request between any two bureaus."""
    from projections.sla import OPEN_STATES

    today = now.astimezone(SHANGHAI).date()
    out = []
    for r in view.rows(now=now):
        if r["state"] not in OPEN_STATES or r.get("catalogue_flag"):
            continue
        if bureau and bureau not in (r["requester"], r["assistor"]):
            continue
        if state and r["state"] != state or matter and matter not in (r["matter"] or ""):
            continue
        row = {"number": r["number"], "requester": r["requester"], "assistor": r["assistor"], "status": r["status"],
               "matter": r["matter"] or "", "due_at": None, "days_left": None, "state": r["state"],
               "provisional": bool(r["provisional"]),
               "bureau": r["assistor"] if r["assistor"] in served else (r["requester"] if r["requester"] in served
                                                                       else "")}
        if r["due_at"]:
            last_day = (datetime.fromisoformat(r["due_at"]).astimezone(SHANGHAI) - timedelta(days=1)).date()
            row["due_at"] = f"{last_day:%Y-%m-%d} 24:00"
            if r["state"] == "overdue":
                row["days_left"] = 0
            else:
                left, _ = cal.working_days_between(now, datetime.combine(last_day, time(12), tzinfo=SHANGHAI))
                row["days_left"] = left + (1 if cal.is_working_day(today)[0] else 0)
        out.append(row)
    order = {"overdue": 0, "due-today": 1, "due-soon": 2, "on-time": 3, "in-transit": 4}
    out.sort(key=lambda r: (order[r["state"]], r["due_at"] or "", r["number"]))
    return out


def statistics(door: FrontDoor, bureaus: list[str], now: datetime, *, weeks: int = 12) -> dict[str, Any]:
    """On-time rate per bureau, deadline breaches per week, declines by reason, over the requests each bureau
    received (as its own store holds them)."""
    from collections import Counter

    cal = CalendarStore(door.settings.calendar_dir).calendar()
    per: list[dict[str, Any]] = []
    breaches: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    monday = (now.astimezone(SHANGHAI) - timedelta(days=now.astimezone(SHANGHAI).weekday())).date()
    starts = [monday - timedelta(weeks=k) for k in range(weeks - 1, -1, -1)]
    for code in bureaus:
        if not door.settings.store_exists(code):
            continue
        b: dict[str, Any] = {"bureau": code, "received": 0, "answered": 0, "on_time": 0, "declined": 0, "open": 0,
                             "overdue": 0}
        for st in door.desk(code).requests():
            arrived = legal_arrival(st)
            if st.assistor != code or arrived is None or st.status == "withdrawn":
                continue
            b["received"] += 1
            reply_within, decline_within = time_limits(st.request)
            within = decline_within if st.status == "declined" else reply_within
            due = cal.add_working_days(arrived, within).ends_at
            missed_at: datetime | None = None
            if st.status in OPEN:
                b["open"] += 1
                if now >= due:
                    b["overdue"] += 1
                    missed_at = due
            else:
                b["answered"] += 1
                answered = st.answered_at or now
                if answered < due:
                    b["on_time"] += 1
                else:
                    missed_at = due
                if st.status == "declined":
                    b["declined"] += 1
                    reasons[(st.reasons or "（未写明）").strip()[:40]] += 1
            if missed_at is not None:
                day = missed_at.astimezone(SHANGHAI).date()
                week = day - timedelta(days=day.weekday())
                breaches[week.isoformat()] += 1
        b["rate"] = b["on_time"] / b["answered"] if b["answered"] else None
        per.append(b)
    weekly: list[dict[str, Any]] = [
        {"week": w.isoformat(), "label": f"{w:%m-%d}", "breaches": breaches.get(w.isoformat(), 0)} for w in starts]
    return {"per_bureau": per, "weeks": weekly, "reasons": reasons.most_common(10),
            "max_week": max([w["breaches"] for w in weekly] + [1]),
            "max_reason": max([n for _, n in reasons.most_common(1)] + [1])}


def _judge(st: CaseState, cal: Any, now: datetime, today: Any) -> dict[str, Any]:
    arrived = legal_arrival(st)
    row: dict[str, Any] = {"number": st.number, "requester": st.requester, "assistor": st.assistor,
                           "status": st.status, "matter": st.request.matter.name, "due_at": None,
                           "days_left": None, "state": "in-transit", "provisional": False}
    if arrived is None:
        return row
    within, _ = time_limits(st.request)
    due = cal.add_working_days(arrived, within)
    row["due_at"] = f"{due.last_day:%Y-%m-%d} 24:00"  # as the plan says it: the last working day, to its end
    row["provisional"] = due.provisional
    if now >= due.ends_at:
        row["state"], row["days_left"] = "overdue", 0
        return row
    left, _ = cal.working_days_between(now, datetime.combine(due.last_day, time(12), tzinfo=SHANGHAI))
    if cal.is_working_day(today)[0]:
        left += 1
    row["days_left"] = left
    if due.last_day == today:
        row["state"] = "due-today"
    elif due.last_day == cal.add_working_days(now, 1).last_day:
        row["state"] = "due-soon"
    else:
        row["state"] = "on-time"
    return row


def console_router(door: FrontDoor, users: UserStore, *, find_case: Callable[..., CaseState],
                   case_out: Callable[[CaseState], Any], history_of: Callable[..., Any]) -> APIRouter:
    """The console's pages; ``find_case``, ``case_out`` and ``history_of`` are the API's own (from the app)."""
    r = APIRouter(include_in_schema=False)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals.update(STATE_ZH=STATE_ZH, STATUS_ZH=STATUS_ZH, VERDICT_ZH=VERDICT_ZH)

    def name(code: str) -> str:
        return door.registry.name(code) if code in door.registry else code

    templates.env.filters["bureau_name"] = name
    templates.env.filters["local_time"] = local_time

    def session_of(request: Request) -> Session | None:
        return users.session(request.cookies.get(COOKIE))

    def need(request: Request) -> Session:
        s = session_of(request)
        if s is None:
            raise HTTPException(303, "login", headers={"Location": "/login?next=" + quote(request.url.path)})
        return s

    def visible(s: Session) -> list[str]:
        return list(door.bureaus) if s.user.bureau == JUSTICE else [b for b in door.bureaus if b == s.user.bureau]

    def may_see(s: Session, bureau: str) -> None:
        if bureau not in door.bureaus:
            raise HTTPException(404, f"本服务不负责 {bureau}")
        if s.user.bureau not in (bureau, JUSTICE):
            raise HTTPException(403, f"{name(s.user.bureau)}的账号不能查看{name(bureau)}的数据")

    def may_act(s: Session, bureau: str) -> None:
        may_see(s, bureau)
        if s.user.bureau != bureau:
            raise HTTPException(403, f"{name(s.user.bureau)}的账号只能查看，不能代{name(bureau)}办理")

    async def form_of(request: Request, s: Session) -> dict[str, list[str]]:
        form = parse_qs((await request.body()).decode("utf-8", errors="replace"), keep_blank_values=True)
        token = (form.get("csrf") or [""])[0]
        if not hmac.compare_digest(token, s.csrf):
            raise HTTPException(403, "表单已过期（CSRF 校验失败），请刷新页面后重试")
        return form

    def page(request: Request, template: str, s: Session | None, **ctx: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, template, {"session": s, "bureaus": door.bureaus, **ctx})

    def login_page(request: Request, nxt: str, error: str, status: int = 200) -> HTMLResponse:
        """The login form with a fresh CSRF token, in the form and in a cookie of its own (no session yet)."""
        token = secrets.token_urlsafe(32)
        resp = page(request, "login.html", None, next=nxt, error=error, csrf=token)
        resp.status_code = status
        resp.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict", secure=request.url.scheme == "https",
                        max_age=3600)
        return resp

    @r.get("/login")
    def login_form(request: Request, next: str = "/") -> HTMLResponse:
        return login_page(request, next if next.startswith("/") else "/", "")

    @r.post("/login")
    async def login(request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", errors="replace"))
        login_, password = (form.get("login") or [""])[0], (form.get("password") or [""])[0]
        nxt = (form.get("next") or ["/"])[0]
        # Login CSRF: a page elsewhere must not log this browser in as someone else.
        expected, given = request.cookies.get(LOGIN_COOKIE, ""), (form.get("csrf") or [""])[0]
        if not expected or not hmac.compare_digest(expected, given):
            return login_page(request, nxt, "登录表单已过期（CSRF 校验失败），请重新登录", 403)
        got = await asyncio.to_thread(users.login, login_, password)
        if got is None:
            return login_page(request, nxt, "账号或密码不正确", 401)
        sid, _ = got
        resp = RedirectResponse(nxt if nxt.startswith("/") and not nxt.startswith("//") else "/", status_code=303)
        resp.set_cookie(COOKIE, sid, httponly=True, samesite="strict", secure=request.url.scheme == "https",
                        max_age=12 * 3600)
        resp.delete_cookie(LOGIN_COOKIE)
        return resp

    @r.post("/logout")
    async def logout(request: Request) -> Response:
        s = need(request)
        await form_of(request, s)
        users.logout(request.cookies.get(COOKIE, ""))
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(COOKIE)
        return resp

    def filters(request: Request, s: Session) -> dict[str, str]:
        q = request.query_params
        f = {"bureau": q.get("bureau", ""), "state": q.get("state", ""), "matter": q.get("matter", "")}
        if f["state"] and f["state"] not in STATE_ZH:
            f["state"] = ""
        if f["bureau"] and f["bureau"] not in visible(s) and not (s.user.bureau == JUSTICE
                                                                 and f["bureau"] in door.registry):
            f["bureau"] = ""
        return f

    views: list[Any] = []

    def sla_view() -> Any:
        """The SLA view of 区司法局's machine, if this serve runs on it (opened once)."""
        if not views and door.settings.view_exists(door.settings.sla_location):
            from projections.sla import SlaView

            views.append(SlaView(door.settings.sla_location, CalendarStore(door.settings.calendar_dir)))
        return views[0] if views else None

    def rows_now(s: Session, f: dict[str, str]) -> list[dict[str, Any]]:
        view = sla_view() if s.user.bureau == JUSTICE else None
        if view is not None:
            bureau = f["bureau"]
            return view_rows(view, list(door.bureaus), door.clock.now(),
                             CalendarStore(door.settings.calendar_dir).calendar(), state=f["state"],
                             matter=f["matter"], bureau=bureau)
        return board_rows(door, visible(s), door.clock.now(), **f)

    async def rows_for(s: Session, f: dict[str, str]) -> list[dict[str, Any]]:
        return await asyncio.to_thread(rows_now, s, f)

    @r.get("/")
    async def board(request: Request) -> HTMLResponse:
        s = need(request)
        f = filters(request, s)
        rows = await rows_for(s, f)
        source = "view" if s.user.bureau == JUSTICE and sla_view() is not None else "stores"
        return page(request, "board.html", s, rows=rows, f=f, visible=visible(s), query=request.url.query,
                    source=source)

    @r.get("/board/rows")
    async def board_fragment(request: Request) -> HTMLResponse:
        s = need(request)
        return page(request, "board_rows.html", s, rows=await rows_for(s, filters(request, s)))

    @r.get("/board/events")
    async def board_events(request: Request) -> StreamingResponse:
        """An SSE ``board`` event whenever the board's rows change (arrive, answered, go overdue)."""
        s = need(request)
        f = filters(request, s)

        def changes() -> tuple[object, ...]:
            """What the rows depend on, cheap to read: the stores' and the view's positions, and the minute."""
            marks: list[object] = [door.clock.now().replace(second=0, microsecond=0)]
            for code in visible(s):
                if door.settings.store_exists(code):
                    marks.append(door.store(code).recorder.max_notification_id())
            sla = sla_view() if s.user.bureau == JUSTICE else None
            if sla is not None and door.settings.database_url:  # in PostgreSQL: the view's position
                marks.append(sla.position)
            else:
                view = door.settings.sla_path
                for path in (view, view.with_name(view.name + "-wal")):
                    marks.append(path.stat().st_mtime_ns if path.exists() else None)
            return tuple(marks)

        async def stream() -> AsyncIterator[bytes]:
            last, seen = "", None
            yield b"retry: 2000\n\n"
            while not door.stopping.is_set():
                now_marks = await asyncio.to_thread(changes)
                if now_marks != seen:  # recompute the rows only when something they depend on moved
                    seen = now_marks
                    rows = await rows_for(s, f)
                    digest = hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()[:16]
                    if digest != last:
                        counts = {k: sum(1 for x in rows if x["state"] == k) for k in STATE_ZH}
                        yield f"event: board\nid: {digest}\ndata: {json.dumps(counts)}\n\n".encode()
                        last = digest
                if await request.is_disconnected():
                    return
                await asyncio.sleep(BOARD_POLL_S)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    def inbox_page(request: Request, s: Session, bureau: str, cases: list[CaseState], *,
                   revealed: str = "") -> HTMLResponse:
        now = door.clock.now()
        cal = CalendarStore(door.settings.calendar_dir).calendar()
        items = [{"st": st,
                  "applicant": st.request.applicant.name if revealed else mask_name(st.request.applicant.name),
                  "id_number": st.request.applicant.id_number if revealed else mask_id(st.request.applicant.id_number),
                  "sla": _judge(st, cal, now, now.astimezone(SHANGHAI).date())} for st in cases]
        return page(request, "inbox.html", s, bureau=bureau, items=items, revealed=revealed,
                    can_act=s.user.bureau == bureau, done=request.query_params.get("done", ""))

    @r.get("/stats")
    async def stats(request: Request) -> HTMLResponse:
        """统计: on-time rate per bureau, breaches per week, declines by reason, as bars."""
        s = need(request)
        data = await asyncio.to_thread(statistics, door, visible(s), door.clock.now())
        return page(request, "stats.html", s, **data)

    @r.get("/notices")
    async def notices(request: Request) -> HTMLResponse:
        """通知: what arrived for the bureau (its feed): 区司法局's reminders and breach notices first of all."""
        s = need(request)
        only_alerts = request.query_params.get("all", "") != "1"
        items: list[dict[str, Any]] = []
        for code in visible(s):
            feed = door.feeds[code]
            start = max(0, feed.head - 500)
            for seq, item in await asyncio.to_thread(feed.items, start, 500):
                if only_alerts and not item["type"].startswith(("sla.", "notice.")):
                    continue
                items.append(item | {"bureau": code, "seq": seq})
        items.sort(key=lambda i: i.get("received_at") or i["time"], reverse=True)
        return page(request, "notices.html", s, items=items[:100], only_alerts=only_alerts)

    @r.get("/dead-letters")
    async def dead_letters(request: Request) -> HTMLResponse:
        """死信: what the receivers rejected, with the reason (read as admin from the dead-letter stream);
        a bureau's operators see their own bureau's, 区司法局's every receiver's."""
        import nats

        from broker.auth import ADMIN
        from broker.intake import read_dead_letters
        from broker.server import server_list
        from xiezhu.node import nats_credentials

        s = need(request)
        rows: list[Any] = []
        error = ""
        url = door.settings.nats_url
        if not url:
            error = "本服务未配置 NATS 地址（--nats-url），无法读取死信。"
        else:
            try:
                nc = await nats.connect(servers=server_list(url), allow_reconnect=False, connect_timeout=3,
                                        **nats_credentials(door.settings, ADMIN))
                try:
                    rows = await read_dead_letters(nc.jetstream(), limit=1000)
                finally:
                    await nc.close()
            except Exception as e:
                error = f"无法读取死信：{e}"
        if s.user.bureau != JUSTICE:
            rows = [d for d in rows if d.rejected_by == s.user.bureau]
        return page(request, "dead_letters.html", s, letters=list(reversed(rows))[:200], error=error)

    @r.get("/inbox/{bureau}")
    async def inbox(request: Request, bureau: str) -> HTMLResponse:
        s = need(request)
        may_see(s, bureau)
        cases = await asyncio.to_thread(lambda: door.desk(bureau).inbox()
                                        if door.settings.store_exists(bureau) else [])
        return inbox_page(request, s, bureau, cases)

    @r.post("/inbox/{bureau}/reveal")
    async def reveal(request: Request, bureau: str) -> HTMLResponse:
        """显示完整信息: the inbox with applicants in full, once the access log and the ledger notice have it
        (as ``xiezhu inbox --reveal --reason``); only the bureau's own operators, who hold its store key."""
        s = need(request)
        may_act(s, bureau)
        form = await form_of(request, s)
        reason = (form.get("reason") or [""])[0].strip()
        if not reason:
            raise HTTPException(422, "显示完整信息须说明理由（记入查阅记录并报区司法局）")
        operator = f"console:{s.user.login}"
        cases, _ = await asyncio.to_thread(
            door.acting, bureau, lambda desk: desk.reveal_inbox(reason, operator, command="console"))
        return inbox_page(request, s, bureau, cases, revealed=reason)

    def _case(bureau: str, requester: str, number: str) -> CaseState:
        return find_case(door.desk(bureau), requester, number)

    @r.post("/inbox/{bureau}/{requester}/{number}/answer")
    async def answer(request: Request, bureau: str, requester: str, number: str) -> Response:
        s = need(request)
        may_act(s, bureau)
        form = await form_of(request, s)
        st = await asyncio.to_thread(_case, bureau, requester, number)
        results = []
        for item in st.request.items:
            verdict = (form.get(f"verdict-{item.no}") or [""])[0]
            reason = (form.get(f"reason-{item.no}") or [""])[0].strip()
            if verdict not in VERDICT_ZH:
                raise HTTPException(422, f"第 {item.no} 项：请选择 真实 / 虚假 / 无法证实")
            if verdict != "true" and not reason:
                raise HTTPException(422, f"第 {item.no} 项：{VERDICT_ZH[verdict]}须写明理由")
            results.append(msgspec.convert({"no": item.no, "verdict": verdict, "reason": reason}, ItemResult))
        operator = f"console:{s.user.login}"
        await asyncio.to_thread(door.acting, bureau, lambda desk: desk.answer(st.case, results, operator))
        return RedirectResponse(f"/inbox/{bureau}?done={number}", status_code=303)

    @r.post("/inbox/{bureau}/{requester}/{number}/decline")
    async def decline(request: Request, bureau: str, requester: str, number: str) -> Response:
        s = need(request)
        may_act(s, bureau)
        form = await form_of(request, s)
        reasons = (form.get("reasons") or [""])[0].strip()
        if not reasons:
            raise HTTPException(422, "不予协助须书面说明理由")
        st = await asyncio.to_thread(_case, bureau, requester, number)
        operator = f"console:{s.user.login}"
        await asyncio.to_thread(door.acting, bureau, lambda desk: desk.decline(st.case, reasons, operator))
        return RedirectResponse(f"/inbox/{bureau}?done={number}", status_code=303)

    @r.get("/cases/{bureau}/{requester}/{number}")
    async def case_page(request: Request, bureau: str, requester: str, number: str) -> HTMLResponse:
        s = need(request)
        may_see(s, bureau)
        st = await asyncio.to_thread(_case, bureau, requester, number)
        history = await asyncio.to_thread(history_of, door.store(bureau), st.case)
        now = door.clock.now()
        cal = CalendarStore(door.settings.calendar_dir).calendar()
        letters = await asyncio.to_thread(_letters, st)
        ledger_replay, replay_error = None, ""
        if s.user.bureau == JUSTICE and door.settings.ledger_exists():
            try:
                ledger_replay = await asyncio.to_thread(_replay, st.case, now)
            except Exception as e:  # no 区司法局 box key on this machine, or not recorded yet
                replay_error = str(e)
        return page(request, "case.html", s, bureau=bureau, case=case_out(st), history=history,
                    sla=_judge(st, cal, now, now.astimezone(SHANGHAI).date()), letters=letters,
                    replay=ledger_replay, replay_error=replay_error)

    def _replay(case_id: str, now: datetime) -> Any:
        """The case as 区司法局's ledger on this machine shows it: signatures, times, deadlines, findings."""
        from agencies.trust.keys import KeyStore
        from broker.ledger.store import Ledger
        from projections.replay import replay
        from xiezhu.bootstrap import existing_catalogue

        keys = KeyStore(door.settings.keys_dir)
        ledger = Ledger(door.settings.ledger_location, opener=keys.ledger_opener())
        catalogue = existing_catalogue(door.settings)  # 第七条, 第六条 flagged as `xiezhu replay` flags them
        try:
            return replay(ledger, case_id, keys.ring(), CalendarStore(door.settings.calendar_dir).calendar(),
                          now=now, catalogue=catalogue)
        finally:
            ledger.close()
            if catalogue is not None:
                catalogue.close()

    def _letters(st: CaseState) -> list[dict[str, Any]]:
        from projections.documents.case_letters import assistance_letters
        from projections.documents.paper import paper

        out = []
        for n, letter in enumerate(assistance_letters(st, name), start=1):
            p = paper(letter, st.number)
            out.append({"n": n, "title": p.pages[0].title, "filename": p.filename, "letter": letter})
        return out

    @r.get("/cases/{bureau}/{requester}/{number}/bundle")
    async def bundle(request: Request, bureau: str, requester: str, number: str) -> Response:
        """区司法局's evidence bundle of the case (as ``xiezhu replay --bundle``): its signed events, their chain
        proof to a signed checkpoint, the trust list entries, signed by 区司法局 where its key is here."""
        import tempfile

        from agencies.trust.keys import KeyStore
        from broker.ledger.store import Ledger
        from projections.bundle import write_bundle
        from xiezhu.bootstrap import existing_catalogue

        s = need(request)
        may_see(s, bureau)
        if s.user.bureau != JUSTICE or not door.settings.ledger_exists():
            raise HTTPException(403, "证据包由区司法局在账本所在的机器上出具")
        st = await asyncio.to_thread(_case, bureau, requester, number)

        def make() -> bytes:
            keys = KeyStore(door.settings.keys_dir)
            signer = keys.signer(JUSTICE) if (door.settings.keys_dir / f"{JUSTICE}.ed25519").exists() else None
            ledger = Ledger(door.settings.ledger_location, opener=keys.ledger_opener())
            catalogue = existing_catalogue(door.settings)
            try:
                with tempfile.TemporaryDirectory() as tmp:
                    path = Path(tmp) / f"{number}.zip"
                    write_bundle(ledger, st.case, keys.trust_list().entries, path,
                                 calendar=CalendarStore(door.settings.calendar_dir).calendar(), signer=signer,
                                 created_at=door.clock.now(), catalogue=catalogue)
                    return path.read_bytes()
            finally:
                ledger.close()
                if catalogue is not None:
                    catalogue.close()

        body = await asyncio.to_thread(make)
        return Response(body, media_type="application/zip", headers={
            "Content-Disposition": f"attachment; filename=\"{number}-evidence.zip\"; "
                                   f"filename*=UTF-8''{quote(number + '-证据包.zip')}"})

    @r.get("/cases/{bureau}/{requester}/{number}/letters/{n}")
    async def letter_file(request: Request, bureau: str, requester: str, number: str, n: int,
                          format: str = "pdf") -> Response:
        """One of the request's letters as PDF or DOCX, named as a clerk files it."""
        from projections.documents.paper import paper
        from projections.documents.pdf import pdf_bytes
        from projections.documents.word import docx_bytes

        s = need(request)
        may_see(s, bureau)
        if format not in ("pdf", "docx"):
            raise HTTPException(422, "格式只能是 pdf 或 docx")
        st = await asyncio.to_thread(_case, bureau, requester, number)
        letters = await asyncio.to_thread(_letters, st)
        if not 1 <= n <= len(letters):
            raise HTTPException(404, f"协助函 {number} 没有第 {n} 份文书")
        p = paper(letters[n - 1]["letter"], number)
        if format == "pdf":
            body, media = await asyncio.to_thread(pdf_bytes, p), "application/pdf"
        else:
            body = await asyncio.to_thread(docx_bytes, p)
            media = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        return Response(body, media_type=media, headers={
            "Content-Disposition": f"attachment; filename=\"{number}.{format}\"; "
                                   f"filename*=UTF-8''{quote(p.filename + '.' + format)}"})

    return r


def local_time(iso: str | None) -> str:
    if not iso:
        return ""
    return datetime.fromisoformat(iso).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
