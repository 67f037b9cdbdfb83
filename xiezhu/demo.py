"""``xiezhu demo``: the whole system in one process on a simulated clock, under a mixed workload.

Several bureau pairs exchange a few hundred assistance requests over two simulated weeks
around the 2026 Mid-Autumn and National Day holidays: most are answered automatically from
the assistor's own records, some commitments turn out false, some need a person and wait
in the operator inbox, some are declined in writing, a few are still open at the end; and
a handful of hostile messages (forged, impersonating, misaddressed, malformed, replayed)
are thrown at the agents, which dead-letter them and carry on.
"""
from __future__ import annotations

import asyncio
import fcntl
import os
import random
import shutil
import time as timer
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

import msgspec
import nacl.signing
import nats

from agencies.credit_china import DirectoryCreditChina, deliver_pending
from agencies.desk import CreditStanding, Desk
from aggregates.catalogue import CatalogueError
from aggregates.clock import SimulatedClock
from aggregates.commitment import CommitmentState, latest, pending_items
from aggregates.registry import Registry
from aggregates.store import SHANGHAI
from aggregates.workdays import WorkingCalendar
from broker.auth import ADMIN
from broker.relay import headers_for
from broker.server import server_list
from broker.signing import Signer, decode_checked
from broker.streams import DLQ_STREAM
from schemas.assistance import Applicant, CommitmentItem, ItemResult, Matter, Verdict
from schemas.catalogue import AssistanceItem
from schemas.commitment import PlannedItem, Standing
from schemas.envelope import Envelope, Signed, encode_envelope, new_id, subject_for
from schemas.errors import XiezhuError
from schemas.letters import is_licence
from xiezhu.demo_data import (
    FLOW_OF,
    FLOWS,
    GIVEN,
    SURNAMES,
    Flow,
    Population,
    assistance_row,
    make_items,
    matter_row,
    memorandum,
    seed_bureau_data,
)
from xiezhu.demo_dispute import dispute_a_decline
from xiezhu.node import Node
from xiezhu.settings import Settings

SIM_START = datetime(2026, 9, 21, 9, 0, tzinfo=SHANGHAI)  # a Monday, before Mid-Autumn

PENALTY_BASIS = "，依据《中华人民共和国行政许可法》第七十九条予以处罚。"
#: 书面告知 (三(二)): why 区文化和旅游局 cannot check a 旅游经营备案 — never sending the requester back to itself.
DECLINE_REASONS = ("该企业的旅游经营备案由市文化和旅游局办理，本局未存有其备案信息，无法核实；"
                   "请向市文化和旅游局核实或改以现场检查核查。")


class DemoError(XiezhuError):
    """The demo cannot run with the given data directory or options."""

    code = "demo"


class PublicCreditRecords:
    """四(二) in the demo: the public credit platform's serious cases (the population's), then the credit view."""

    def __init__(self, serious: set[str], view: CreditStanding) -> None:
        self.serious = serious
        self.view = view

    def standing(self, applicant: str, at: datetime | None = None) -> Standing:
        return "serious-bad-credit" if applicant in self.serious else self.view.standing(applicant, at)


class Demo:
    """Drives the workload against a running :class:`Node`: clerks, operators and 区司法局."""

    def __init__(self, node: Node, settings: Settings, clock: SimulatedClock, rng: random.Random,
                 requests: int) -> None:
        self.node = node
        self.settings = settings
        self.clock = clock
        self.rng = rng
        self.total = requests
        self.counts: Counter[str] = Counter()
        self.hostile_sent = 0
        self.delivered: tuple[int, int] = (0, 0)
        self.dispute: Any = None

    # -- the run --------------------------------------------------------------------------

    async def run(self, population: Population) -> None:
        """Applications in waves at office hours of working days, with people at work each morning.

        The working days come from the mainland calendar, so the run from SIM_START skips
        the Mid-Autumn holiday.  Halfway through, a bureau has the catalogue adjusted.
        """
        await asyncio.to_thread(self._publish_catalogues)
        slots = office_slots(SIM_START)
        waves = 18
        per_wave = [self.total // waves + (1 if i < self.total % waves else 0) for i in range(waves)]
        day = None
        for wave, n in enumerate(per_wave):
            slot = next(slots)
            self.clock.set(slot)
            if day is not None and slot.date() != day:
                await self._morning(leave_open=0.1)
            day = slot.date()
            if wave == waves // 2:
                await asyncio.to_thread(self._adjust_catalogue)
            await asyncio.to_thread(self._applications, n, population)
            self.node.wake_relays()
            await self.node.settle()
        self.clock.advance(timedelta(minutes=45))
        # The last pass: what arrived today, and a third of the rest, is still open.
        await self._morning(leave_open=0.35, today_open=True)
        await self._hostile()
        await self.node.settle()
        # 第八条: a requester disputes a decline; negotiation fails; 区司法局 rules with 区委编办.
        self.dispute = await dispute_a_decline(self.node)
        # After the National Day holiday the 司法局 monitor reminds of the deadlines that end
        # that day, and the next working day reports the ones missed.
        for day in (datetime(2026, 10, 9, 9, 0, tzinfo=SHANGHAI), datetime(2026, 10, 12, 9, 0, tzinfo=SHANGHAI)):
            self.clock.set(day)
            if self.node.monitor is not None:
                await asyncio.to_thread(self.node.monitor.tick)
            self.node.wake_relays()
            await self.node.settle()
        # The credit records go to 信用中国 (a directory until an endpoint is configured).
        assert self.node.credit is not None
        self.delivered = await asyncio.to_thread(
            deliver_pending, self.node.credit, DirectoryCreditChina(self.settings.credit_china_dir),
            now=self.clock.now())

    # -- 区司法局 and the catalogues ----------------------------------------------------------

    def _publish_catalogues(self) -> None:
        """Each bureau applies to list its matters and items; 区司法局 reviews, publishes, files."""
        justice = self.node.justice()
        for i, flow in enumerate(FLOWS, start=1):
            desk = self.node.desk(flow.requester)
            justice.review(desk.apply_adjustment("matters", flow.basis, adds=[matter_row(flow, i)]), approve=True)
            justice.review(desk.apply_adjustment("assistance", flow.basis, adds=[assistance_row(flow, i)]),
                           approve=True)
        # A matter of public safety cannot be listed (一(二)).
        risky = msgspec.structs.replace(matter_row(FLOWS[0], 99), code="370405-XK-0999",
                                        service_matter_name="烟花爆竹经营许可", domains=["公共安全"])
        try:
            self.node.desk("shenpi").apply_adjustment("matters", FLOWS[0].basis, adds=[risky])
        except CatalogueError:
            self.counts["catalogue_refused_excluded"] += 1
        # An item without a proper basis is rejected by 区司法局, with reasons.
        vague = msgspec.structs.replace(assistance_row(FLOWS[1], 98), code="XZ-0098", item_name="其他情况核查")
        adj = self.node.desk("jiaoti").apply_adjustment("assistance", "工作需要", adds=[vague])
        justice.review(adj, approve=False,
                       reasons="设定依据不明确，核查内容未具体到证明事项，不予列入行政协助事项清单。")
        self.counts["catalogue_adjustments_rejected"] += 1
        onsite = next(f for f in FLOWS if f.on_site)
        justice.file_memorandum(memorandum(onsite, SIM_START.date()))
        # 一(三): 区政府 publishes the 证明事项清单 区司法局 reviewed; 第七条: 区司法局 the 行政协助目录.
        self.node.system.government().publish_list()
        justice.publish("assistance")

    def _adjust_catalogue(self) -> None:
        """动态调整 midway: 区审批服务局 adds a 社保 check; version 2 is published and filed."""
        justice = self.node.justice()
        row = AssistanceItem(code="XZ-0011", seq=11, service_matter_name="食品经营许可",
                             service_matter_code="370405-XK-0101", item_name="从业人员社会保险缴纳核查",
                             legal_basis=FLOWS[0].basis, handling_body="shenpi", assisting_body="renshe",
                             verification_method="部门间行政协助", checks=["shebao.months"])
        shenpi = self.node.desk("shenpi")
        adj = shenpi.apply_adjustment("assistance", "根据食品经营许可审查细则调整核查内容", adds=[row])
        justice.review(adj, approve=True)
        justice.publish("assistance")
        # A request for an item that is not catalogued is refused before it is sent (第七条).
        try:
            shenpi.send_request(
                assistor="gongan", applicant=Applicant(kind="person", name="王伟", id_number="370405199001010000"),
                matter=Matter(code="X", name="未列入事项"), applied_on=self.clock.now().date(),
                items=[CommitmentItem(no=1, text="本人无不良记录")], catalogue_item="XZ-9999")
        except CatalogueError:
            self.counts["requests_refused_not_catalogued"] += 1

    # -- clerks at the handling bureaus --------------------------------------------------------

    def _applications(self, n: int, population: Population) -> None:
        flows = self.rng.choices(FLOWS, weights=[f.weight for f in FLOWS], k=n)
        for flow in flows:
            self.clock.advance(timedelta(seconds=self.rng.randrange(5, 40)))
            pool = population.persons if flow.kind == "person" else population.in_trade(flow.trades)
            self._apply(flow, self.rng.choice(pool))

    def _apply(self, flow: Flow, applicant: Applicant) -> None:
        """One applicant at the counter, from the application to the assistance request."""
        desk, rng = self.node.desk(flow.requester), self.rng
        matter = self.node.catalogue.matter(flow.matter_code)
        items = make_items(flow, applicant, self.settings, rng)
        today = self.clock.now().astimezone(SHANGHAI).date()
        # 四(二): the credit gate reads the public platform's serious cases and the credit view's own
        # record of false commitments found earlier in this run (caught up: applications follow settle()).
        st = desk.open_case(applicant, matter.code, items, applied_on=today)
        case = st.case
        if st.standing != "good":
            self.counts[f"credit_gate_{st.standing}"] += 1
            return
        desk.issue_notice(case)
        if matter.disclose_commitment and rng.random() < 0.08:
            desk.refuse_disclosure(case)
            return
        if matter.mode == "可选择":
            if rng.random() < 0.08:
                desk.choose_route(case, "certificate")
                return
            desk.choose_route(case, "commitment")
        desk.commit(case, today)
        approve_first = rng.random() < 0.75
        if approve_first:
            desk.approve(case, self.node.registry.decision_number(flow.requester, 2026, int(st.number[-4:]),
                                                                  licence=is_licence(flow.matter_code)))
        due = WorkingCalendar().add_working_days(self.clock.now(), 3).last_day
        desk.plan_verification(case, [PlannedItem(no=i.no, method="on-site" if flow.on_site else "assistance",
                                                  due_on=due, detail=flow.item_code) for i in items])
        letter = flow.on_site or rng.random() < 0.1
        desk.send_request(assistor=flow.assistor, applicant=applicant,
                          matter=Matter(code=matter.code, name=matter.service_matter_name), applied_on=today,
                          items=items, channel="letter" if letter else "platform",
                          staff=[rng.choice(SURNAMES) + rng.choice(GIVEN) for _ in range(2)] if letter else [],
                          catalogue_item=flow.item_code, commitment_case=case)
        if not approve_first and rng.random() < 0.12:
            desk.withdraw_case(case, "二(三)：申请人中途退出承诺办理，改为提交证明。")

    async def _morning(self, *, leave_open: float, today_open: bool = False) -> None:
        """Operators answer their inboxes; then clerks act on what came back."""
        await self._operators(leave_open=leave_open, today_open=today_open)
        await asyncio.to_thread(self._clerks)
        self.node.wake_relays()
        await self.node.settle()

    def _clerks(self) -> None:
        for code in sorted({f.requester for f in FLOWS}):
            desk = self.node.desk(code)
            requests: dict[str, list[Any]] = {}
            for a in desk.requests():
                requests.setdefault(a.request.commitment_case, []).append(a)
            for st in list(desk.commitments()):
                self._follow_up(desk, st, requests.get(st.case, []))

    def _follow_up(self, desk: Desk, st: CommitmentState, requests: list[Any]) -> None:
        """A clerk's next step on one case: verify on site, approve, conclude, decide the consequences."""
        if st.status in ("signed", "approved"):
            verdicts = latest(st)
            blocked = any(a.status in ("declined", "withdrawn") for a in requests)
            for no in pending_items(st):
                if blocked or verdicts.get(no) == "unverifiable":
                    verdict: Verdict = "false" if self.rng.random() < 0.1 else "true"
                    officers = [self.rng.choice(SURNAMES) + self.rng.choice(GIVEN) for _ in range(2)]
                    desk.verify_on_site(st.case, no, verdict, officers)
                    self.counts["verified_on_site"] += 1
            st = desk.commitment(st.case)
            if st.status == "signed" and not pending_items(st) and all(v == "true" for v in latest(st).values()):
                desk.approve(st.case, self.node.registry.decision_number(desk.bureau, 2026, int(st.number[-4:]),
                                                                         licence=is_licence(st.service_matter_code)))
            desk.conclude(st.case)
            st = desk.commitment(st.case)
        if st.status == "false-commitment" and not st.supervisor:
            self._consequences(desk, st)

    def _consequences(self, desk: Desk, st: CommitmentState) -> None:
        """三(三): what follows a false commitment, each with its legal reason."""
        flow = FLOW_OF[st.matter_code]
        why = "经核查，申请人承诺不实"  # the letters' 事实和理由, as a clerk writes it
        if st.approved:
            desk.revoke(st.case, why + "，依法撤销已批准事项，限2日内交回证件原件。")
            if self.rng.random() < 0.3 and is_licence(st.service_matter_code):  # 行政许可法第七十九条: licences
                desk.penalise(st.case, "警告并处罚款2000元", why + PENALTY_BASIS)
        elif self.rng.random() < 0.25:
            deadline = self.clock.now().astimezone(SHANGHAI).date() + timedelta(days=15)
            desk.order_rectification(st.case, deadline, why + "，责令限期整改。")
        else:
            desk.terminate(st.case, why + "，依法终止办理。")
        # The 信用中国 record came with the finding (decision 39); the matter's 监管部门 is told (附件6).
        desk.notify_supervisor(st.case, flow.supervisor, why + "，将申请人信息推送监管部门予以惩处。")
        if self.rng.random() < 0.1:
            desk.refer(st.case, "区公安分局", why + f"，涉嫌以虚假承诺骗取{st.matter_name}，依法移送司法机关。")

    # -- operators at the assisting bureaus -------------------------------------------------------

    async def _operators(self, *, leave_open: float, today_open: bool = False) -> None:
        """People at the assisting bureaus work through their inboxes."""
        today = self.clock.now().astimezone(SHANGHAI).date()
        for code in sorted({f.assistor for f in FLOWS}):
            desk = self.node.desk(code)
            for st in await asyncio.to_thread(desk.inbox):
                arrived_today = st.arrived_at is not None and st.arrived_at.astimezone(SHANGHAI).date() == today
                if self.rng.random() < leave_open or (today_open and arrived_today):
                    continue
                self.clock.advance(timedelta(minutes=self.rng.randrange(5, 90)))
                await asyncio.to_thread(self._answer, desk, st)
        self.node.wake_relays()
        await self.node.settle()

    def _answer(self, desk: Desk, st: Any) -> None:
        who = f"{self.node.registry.name(desk.bureau)}值班员"
        if desk.bureau == "wenlv":
            desk.decline(st.case, DECLINE_REASONS, who)
            self.counts["operator_declined"] += 1
            return
        on_behalf = ""
        if desk.bureau == "ziran" and self.rng.random() < 0.4:
            # 第五条: the records predate the reform and sit with the archive; ask it and answer for it.
            on_behalf = "区不动产登记档案室"
            desk.forward(st.case, on_behalf, "机构改革前的不动产登记档案由该单位代管")
            self.counts["forwarded_to_archives"] += 1
        results = [self._human_verdict(i.no) for i in st.request.items]
        desk.answer(st.case, results, who, on_behalf_of=on_behalf)
        self.counts["operator_answered"] += 1

    def _human_verdict(self, no: int) -> ItemResult:
        r = self.rng.random()
        if r < 0.1:
            return ItemResult(no=no, verdict="false")
        if r < 0.2:
            return ItemResult(no=no, verdict="unverifiable",
                              reason="机构改革前档案未移交本机关，已转代管事业单位核实，暂无法证实。")
        return ItemResult(no=no, verdict="true")

    async def _hostile(self) -> None:
        """Messages a careless or hostile party might publish; each must be dead-lettered."""
        # As shenpi's NATS user: every hostile message below is on xz.shenpi.* (a forgery, a
        # replay, a misaddressed or malformed one), which the server lets shenpi publish.
        nc = await nats.connect(servers=server_list(self.node.nats_url), **self.node.credentials("shenpi"))
        js = nc.jetstream()
        shenpi, gongan = self.node.keys.signer("shenpi"), self.node.keys.signer("gongan")
        st = next(iter(self.node.desk("shenpi").requests()))

        def env(sender: str, recipient: str) -> Envelope:
            return Envelope(id=new_id(), sender=sender, recipient=recipient, case=new_id(), number=st.number,
                            time=self.clock.now(), payload=st.request)

        forger = Signer("shenpi", shenpi.kid, nacl.signing.SigningKey.generate())
        to_gongan = "xz.shenpi.gongan.assistance.requested"
        cases: list[tuple[str, Signed, str]] = []
        forged = forger.sign(env("shenpi", "gongan"))
        cases.append((subject_for(decode_checked(forged.body)), forged, "forged signature"))
        body = encode_envelope(env("shenpi", "gongan"))
        cases.append((to_gongan, Signed(body=body, kid=gongan.kid, sig=gongan.sign_bytes(body)),
                      "gongan's key used to speak as shenpi"))
        misaddressed = shenpi.sign(env("shenpi", "shichang"))
        cases.append((to_gongan, misaddressed, "addressed to shichang, sent to gongan"))
        cases.append((to_gongan, shenpi.sign(env("shenpi", "gongan")), "well signed, but not sealed"))
        junk = b'{"v":1,"id":"not-a-uuid","payload":{}}'
        cases.append((to_gongan, Signed(body=junk, kid=shenpi.kid, sig=shenpi.sign_bytes(junk)),
                      "malformed payload"))
        for subject, signed, _why in cases:
            await js.publish(subject, signed.body, headers=headers_for(signed, new_id()))
            self.hostile_sent += 1
        # A replayed copy of a valid request, under a new message id so JetStream keeps it.
        original = self.node.desk("shenpi").signed_events(st.case)[0]
        await js.publish(subject_for(decode_checked(original.body)), original.body,
                         headers=headers_for(original, new_id()))
        self.hostile_sent += 1
        await nc.close()


def office_slots(start: datetime) -> Iterator[datetime]:
    """09:00, 11:00 and 15:00 (Asia/Shanghai) of each working day from ``start``."""
    calendar = WorkingCalendar()
    day = start.astimezone(SHANGHAI).date()
    while True:
        if calendar.is_working_day(day)[0]:
            for hh, mm in ((9, 0), (11, 0), (15, 0)):
                yield datetime.combine(day, time(hh, mm), tzinfo=SHANGHAI)
        day += timedelta(days=1)


def held_locks(directory: Path) -> list[Path]:
    """The lock files under ``directory`` that a running process holds (agents, an embedded nats-server)."""
    held = []
    for path in sorted(directory.rglob("*.lock")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            held.append(path)
        finally:
            os.close(fd)
    return held


def prepare_data_dir(settings: Settings) -> None:
    """Start from an empty demo directory; never wipe a directory the demo did not make."""
    d = settings.data_dir
    if d.exists() and any(d.iterdir()):
        if not settings.demo_marker.exists():
            raise DemoError(f"{d} holds data that is not a demo's; choose another with --data-dir "
                            f"or XIEZHU_DATA_DIR (the demo starts from an empty directory)",
                            zh=f"{d} 中有不属于演示的数据；请用 --data-dir 或 XIEZHU_DATA_DIR 另选目录"
                               "（演示从空目录开始）")
        busy = held_locks(d)
        if busy:  # an agent or an embedded nats-server runs on it: never pull the floor from under it
            raise DemoError(f"{d} is in use by a running service ({busy[0].relative_to(d)} is held); stop it "
                            f"or run the demo with another --data-dir",
                            zh=f"{d} 正被运行中的服务使用（{busy[0].relative_to(d)} 被占用）；请停止该服务，"
                               "或用另一个 --data-dir 运行演示")
        shutil.rmtree(d)
    d.mkdir(parents=True, exist_ok=True)
    settings.demo_marker.write_text("made by `xiezhu demo`; the next demo run replaces this directory\n")
    if settings.database_url:
        prepare_schemas(settings.database_url)


def prepare_schemas(database_url: str) -> None:
    """Start from no schemas under the URL's prefix; never drop schemas a demo did not make.

    A demo marks its schemas with an empty one, ``<prefix>__demo``; schemas under the prefix
    without that mark are a deployment's, and the demo refuses to touch them.
    """
    from aggregates.database import create_schema, drop_schemas, schema_location, schema_prefix, schemas_with_prefix

    prefix = schema_prefix(database_url)
    marker = f"{prefix}__demo"
    found = schemas_with_prefix(database_url, prefix)
    if found and marker not in found:
        raise DemoError(f"the database already holds xiezhu's schemas {', '.join(found[:3])}…, not a demo's; "
                        f"give the demo a prefix of its own (?schema=demo on XIEZHU_DATABASE_URL)",
                        zh=f"数据库中已有 xiezhu 的模式 {', '.join(found[:3])}…，不是演示用的；请给演示单独的前缀"
                           "（在 XIEZHU_DATABASE_URL 上加 ?schema=demo）")
    if found:
        drop_schemas(database_url, prefix)
    create_schema(schema_location(database_url, "_demo"))


async def run_demo(settings: Settings, registry: Registry, *, requests: int = 300, seed: int = 2026) -> dict[str, Any]:
    """Run the demo and return its summary."""
    if requests < 1:
        raise DemoError("--requests must be at least 1", zh="--requests 至少为 1")
    prepare_data_dir(settings)
    rng = random.Random(seed)
    clock = SimulatedClock(SIM_START)
    population = seed_bureau_data(settings, rng)
    started = timer.perf_counter()
    node = Node(settings, registry, clock, agents=registry.codes(), ledger=True, projection=True,
                simulated=True, generate_keys=True, key_valid_from=SIM_START - timedelta(days=30))
    await node.start()
    try:
        assert node.credit is not None
        node.system.credit = PublicCreditRecords(population.bad_credit, node.credit)
        demo = Demo(node, settings, clock, rng, requests)
        await demo.run(population)
        return await summarize(node, demo, timer.perf_counter() - started)
    finally:
        await node.stop()


async def summarize(node: Node, demo: Demo, wall: float) -> dict[str, Any]:
    """The demo's figures, from the read models, the ledger and the agents' counters."""
    assert node.sla is not None and node.commitments is not None
    assert node.ledger is not None and node.ledger_service is not None
    rows = node.sla.rows()
    status = Counter(r["status"] for r in rows)
    outcome = Counter(r["outcome"] for r in rows if r["outcome"])
    nc = await nats.connect(servers=server_list(node.nats_url), **node.credentials(ADMIN))
    dlq = (await nc.jetstream().stream_info(DLQ_STREAM)).state.messages
    await nc.close()
    agent_stats = [a.intake.stats for a in node.agents.values() if a.intake]
    rejected_by: Counter[str] = Counter()
    for s in agent_stats + [node.ledger_service.stats]:
        rejected_by.update(s.rejected_by_code)
    cases = node.commitments.rows()
    return {
        "applications": len(cases),
        "cases_by_outcome": node.commitments.outcomes(),
        "requests": len(rows),
        "replied": status["replied"],
        "declined": status["declined"],
        "withdrawn": status["withdrawn"],
        "pending": status["requested"] + status["received"],
        "rejected_messages": dlq,
        "ledger_events": len(node.ledger),
        "signatures_verified": sum(s.signatures_verified for s in agent_stats)
        + node.ledger_service.stats.signatures_verified,
        "auto_answered": sum(a.auto_answered for a in node.agents.values()),
        "operator_answered": demo.counts["operator_answered"],
        "operator_declined": demo.counts["operator_declined"],
        "forwarded_to_archives": demo.counts["forwarded_to_archives"],
        "verified_on_site": demo.counts["verified_on_site"],
        "false_commitments": outcome["false"],
        "unverifiable": outcome["unverifiable"],
        "all_true": outcome["true"],
        "letters": sum(1 for r in rows if r["channel"] == "letter"),
        "catalogue_versions": {k: len(node.catalogue.versions(k)) for k in ("matters", "assistance")},
        "catalogue_refused_excluded": demo.counts["catalogue_refused_excluded"],
        "catalogue_adjustments_rejected": demo.counts["catalogue_adjustments_rejected"],
        "requests_refused_not_catalogued": demo.counts["requests_refused_not_catalogued"],
        "credit_gate": {k.removeprefix("credit_gate_"): v for k, v in demo.counts.items()
                        if k.startswith("credit_gate_")},
        "credit_records_pushed": demo.delivered[0],
        "deadline_breaches": node.monitor.stats.breaches if node.monitor else 0,
        "deadline_reminders": node.monitor.stats.reminders if node.monitor else 0,
        "sla_states": dict(Counter(r["state"] for r in node.sla.rows(now=node.clock.now()))),
        "dispute": demo.dispute,
        "hostile_messages_sent": demo.hostile_sent,
        "rejections_by_reason": dict(sorted(rejected_by.items())),
        "duplicates_ignored": sum(s.duplicates for s in agent_stats),
        "bureau_pairs": len({(r["requester"], r["assistor"]) for r in rows}),
        "simulated_from": SIM_START.isoformat(),
        "simulated_to": node.clock.now().astimezone(SHANGHAI).isoformat(timespec="seconds"),
        "wall_seconds": round(wall, 2),
        "data_dir": str(node.settings.data_dir),
    }


def run(settings: Settings, registry: Registry, **kwargs: Any) -> dict[str, Any]:
    """Synchronous entry for the CLI."""
    return asyncio.run(run_demo(settings, registry, **kwargs))

