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
import random
import shutil
import time as timer
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import nacl.signing
import nats
import sqlite_utils

from agencies.registry import Registry
from aggregates.clock import SimulatedClock
from aggregates.store import SHANGHAI
from aggregates.workdays import WorkingCalendar
from broker.relay import headers_for
from broker.server import server_list
from broker.signing import Signer
from broker.streams import DLQ_STREAM
from schemas.assistance import Applicant, CommitmentItem, ItemResult, Matter
from schemas.envelope import Envelope, Signed, decode_envelope, encode_envelope, new_id, subject_for
from schemas.errors import XiezhuError
from xiezhu.node import Node
from xiezhu.settings import Settings

SIM_START = datetime(2026, 9, 21, 9, 0, tzinfo=SHANGHAI)  # a Monday, before Mid-Autumn


class DemoError(XiezhuError):
    """The demo cannot run with the given data directory or options."""

    code = "demo"


@dataclass(frozen=True)
class Flow:
    """One kind of request between a bureau pair."""

    requester: str
    assistor: str
    matter: Matter
    kind: str  # person | organisation
    checks: tuple[str, ...]  # verifier keys; "" means only a person can answer
    weight: int


FLOWS = [
    Flow("shenpi", "gongan", Matter(code="370405-XK-0101", name="食品经营许可"), "person",
         ("hukou.residence", "police.no-criminal-record"), 30),
    Flow("jiaoti", "gongan", Matter(code="370405-QR-0203", name="教师资格认定"), "person",
         ("police.no-criminal-record",), 12),
    Flow("yunhe", "gongan", Matter(code="370405-GG-0310", name="居住登记"), "person", ("hukou.residence",), 10),
    Flow("shenpi", "shichang", Matter(code="370405-XK-0102", name="食品经营许可（企业）"), "organisation",
         ("licence.valid", "licence.scope"), 20),
    Flow("zhujian", "shichang", Matter(code="370405-XK-0520", name="建筑业企业资质"), "organisation",
         ("licence.valid", "licence.name"), 8),
    Flow("minzheng", "renshe", Matter(code="370405-JF-0701", name="最低生活保障"), "person", ("shebao.months",), 10),
    Flow("shenpi", "ziran", Matter(code="370405-QR-0815", name="不动产登记"), "person", ("",), 6),
    Flow("weijian", "minzheng", Matter(code="370405-JF-0902", name="计划生育家庭特别扶助"), "person", ("",), 4),
    Flow("nongye", "wenlv", Matter(code="370405-XK-1001", name="休闲农业经营"), "organisation", ("",), 3),
]

ITEM_TEXT = {
    "hukou.residence": "本人户籍所在地为{address}",
    "police.no-criminal-record": "本人无犯罪记录",
    "licence.valid": "本企业营业执照合法有效",
    "licence.scope": "本企业经营范围包含{scope}",
    "licence.name": "本企业登记名称为{name}",
    "shebao.months": "本人已连续缴纳社会保险满{months}个月",
    "": "申请人名下无其他同类登记事项",
}
ADDRESSES = ["台儿庄区运河街道", "台儿庄区张山子镇", "台儿庄区涧头集镇",
             "台儿庄区邳庄镇", "台儿庄区马兰屯镇", "台儿庄区泥沟镇"]
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
GIVEN = ["伟", "芳", "娜", "敏", "静", "磊", "洋", "勇", "艳", "杰", "军", "涛", "明", "霞", "平", "刚"]
SCOPES = ["食品销售", "餐饮服务", "建筑工程施工", "农产品初加工", "旅游咨询"]


@dataclass
class Population:
    """The applicants the bureaus' own records know (and a few they don't)."""

    persons: list[Applicant]
    organisations: list[Applicant]


def _id_number(rng: random.Random) -> str:
    born = date(1960, 1, 1) + timedelta(days=rng.randrange(365 * 40))
    return f"370405{born:%Y%m%d}{rng.randrange(1000):03d}{rng.choice('0123456789X')}"


def _uscc(rng: random.Random) -> str:
    return "91370405" + "".join(rng.choice("0123456789ABCDEFGHJKLMNPQRTUWXY") for _ in range(10))


def seed_bureau_data(settings: Settings, rng: random.Random) -> Population:
    """Write each verifying bureau's own records (户籍, 营业执照, 社保) into its data file."""
    persons = [Applicant(kind="person", name=rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN),
                         id_number=_id_number(rng)) for _ in range(260)]
    orgs = [Applicant(kind="organisation", name=f"台儿庄区{rng.choice(['运河', '古城', '兴隆', '鲁南'])}"
                      f"{rng.choice(['商贸', '餐饮', '建工', '农业', '文旅'])}有限公司{i}", id_number=_uscc(rng))
            for i in range(90)]
    known_p, known_o = persons[:240], orgs[:80]  # the rest: no record, a person must look
    records: list[tuple[str, str, list[dict[str, Any]]]] = [
        ("gongan", "residents", [{"id_number": p.id_number, "name": p.name,
                                  "residence": "山东省枣庄市" + rng.choice(ADDRESSES),
                                  "criminal_record": int(rng.random() < 0.06)} for p in known_p]),
        ("shichang", "businesses", [{"id_number": o.id_number, "name": o.name, "licence_no": o.id_number,
                                     "status": "存续" if rng.random() > 0.08 else "吊销",
                                     "scope": "、".join(rng.sample(SCOPES, 3))} for o in known_o]),
        ("renshe", "insured", [{"id_number": p.id_number, "employer": "台儿庄区某单位", "months": rng.randrange(0, 60)}
                               for p in known_p]),
    ]
    for code, table, rows in records:
        settings.bureau_dir(code).mkdir(parents=True, exist_ok=True)
        db = sqlite_utils.Database(settings.bureau_data_path(code))
        db.table(table).insert_all(rows, pk="id_number", replace=True)
    return Population(persons, orgs)


def _facts(check: str, applicant: Applicant, settings: Settings, rng: random.Random) -> dict[str, str]:
    honest = rng.random() > 0.12
    if check == "hukou.residence":
        db = sqlite_utils.Database(settings.bureau_data_path("gongan"))
        rows = list(db["residents"].rows_where("id_number = ?", [applicant.id_number]))
        true_addr = rows[0]["residence"].removeprefix("山东省枣庄市") if rows else rng.choice(ADDRESSES)
        return {"address": true_addr if honest else rng.choice([a for a in ADDRESSES if a != true_addr])}
    if check == "licence.scope":
        return {"scope": rng.choice(SCOPES)}
    if check == "shebao.months":
        return {"months": str(rng.choice([6, 12, 24]))}
    return {}


def make_items(flow: Flow, applicant: Applicant, settings: Settings, rng: random.Random) -> list[CommitmentItem]:
    """The commitments of one request, some of them false."""
    items = []
    for no, check in enumerate(flow.checks, start=1):
        facts = _facts(check, applicant, settings, rng)
        text = ITEM_TEXT[check].format(name=applicant.name, **facts)
        items.append(CommitmentItem(no=no, text=text, check=check, facts=facts))
    return items


class Demo:
    """Drives the workload against a running :class:`Node`."""

    def __init__(self, node: Node, settings: Settings, clock: SimulatedClock, rng: random.Random,
                 requests: int) -> None:
        self.node = node
        self.settings = settings
        self.clock = clock
        self.rng = rng
        self.total = requests
        self.operator_answered = 0
        self.operator_declined = 0
        self.hostile_sent = 0

    async def run(self, population: Population) -> None:
        """Send the requests in waves at office hours of working days, with operators at work.

        The working days come from the mainland calendar, so the two weeks from SIM_START
        skip the Mid-Autumn holiday; operators clear their inboxes each morning, and leave
        some requests open at the end.
        """
        slots = office_slots(SIM_START)
        waves = 18
        per_wave = [self.total // waves + (1 if i < self.total % waves else 0) for i in range(waves)]
        day = None
        for n in per_wave:
            slot = next(slots)
            self.clock.set(slot)
            if day is not None and slot.date() != day:
                await self._operators(leave_open=0.1)
            day = slot.date()
            await asyncio.to_thread(self._send_wave, n, population)
            self.node.wake_relays()
            await self.node.settle()
        self.clock.advance(timedelta(minutes=45))
        # The last pass: what arrived today, and a third of the rest, is still open.
        await self._operators(leave_open=0.35, today_open=True)
        await self._hostile()
        await self.node.settle()

    def _send_wave(self, n: int, population: Population) -> None:
        flows = self.rng.choices(FLOWS, weights=[f.weight for f in FLOWS], k=n)
        for flow in flows:
            self.clock.advance(timedelta(seconds=self.rng.randrange(5, 40)))
            pool = population.persons if flow.kind == "person" else population.organisations
            applicant = self.rng.choice(pool)
            letter = self.rng.random() < 0.1
            self.node.store(flow.requester).request(
                assistor=flow.assistor, applicant=applicant, matter=flow.matter,
                applied_on=self.clock.now().astimezone(SHANGHAI).date(),
                items=make_items(flow, applicant, self.settings, self.rng),
                channel="letter" if letter else "platform",
                staff=[self.rng.choice(SURNAMES) + self.rng.choice(GIVEN) for _ in range(2)] if letter else [],
                catalogue_item=flow.matter.code,
            )

    async def _operators(self, *, leave_open: float, today_open: bool = False) -> None:
        """People at the assisting bureaus work through their inboxes."""
        today = self.clock.now().astimezone(SHANGHAI).date()
        for code in sorted({f.assistor for f in FLOWS}):
            store = self.node.store(code)
            for st in await asyncio.to_thread(store.inbox):
                arrived_today = st.arrived_at is not None and st.arrived_at.astimezone(SHANGHAI).date() == today
                if self.rng.random() < leave_open or (today_open and arrived_today):
                    continue
                self.clock.advance(timedelta(minutes=self.rng.randrange(5, 90)))
                if code == "wenlv":
                    await asyncio.to_thread(store.decline, st.case,
                                            "所请求核查事项不属于本机关职权范围，本机关未掌握相关登记信息，请向区农业农村局核实。",
                                            "operator:文旅局值班员")
                    self.operator_declined += 1
                    continue
                results = [self._human_verdict(i.no) for i in st.request.items]
                who = f"operator:{self.node.registry.name(code)}值班员"
                await asyncio.to_thread(store.reply, st.case, results, who)
                self.operator_answered += 1
        self.node.wake_relays()
        await self.node.settle()

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
        nc = await nats.connect(servers=server_list(self.node.nats_url))
        js = nc.jetstream()
        shenpi, gongan = self.node.keys.signer("shenpi"), self.node.keys.signer("gongan")
        st = next(iter(self.node.store("shenpi").cases()))
        template = Signed(body=self.node.store("shenpi").case(st.case).envelopes[0].body, kid="", sig=b"")
        req = decode_envelope(template.body)

        def env(sender: str, recipient: str) -> Envelope:
            return Envelope(id=new_id(), sender=sender, recipient=recipient, case=new_id(), number=req.number,
                            time=self.clock.now(), payload=req.payload)

        forger = Signer("shenpi", shenpi.kid, nacl.signing.SigningKey.generate())
        to_gongan = "xz.shenpi.gongan.assistance.requested"
        cases: list[tuple[str, Signed, str]] = []
        forged = forger.sign(env("shenpi", "gongan"))
        cases.append((subject_for(decode_envelope(forged.body)), forged, "forged signature"))
        body = encode_envelope(env("shenpi", "gongan"))
        cases.append((to_gongan, Signed(body=body, kid=gongan.kid, sig=gongan.sign_bytes(body)),
                      "gongan's key used to speak as shenpi"))
        misaddressed = shenpi.sign(env("shenpi", "shichang"))
        cases.append((to_gongan, misaddressed, "addressed to shichang, sent to gongan"))
        junk = b'{"v":1,"id":"not-a-uuid","payload":{}}'
        cases.append((to_gongan, Signed(body=junk, kid=shenpi.kid, sig=shenpi.sign_bytes(junk)),
                      "malformed payload"))
        for subject, signed, _why in cases:
            await js.publish(subject, signed.body, headers=headers_for(signed, new_id()))
            self.hostile_sent += 1
        # A replayed copy of a valid request, under a new message id so JetStream keeps it.
        original = self.node.store("shenpi").case(st.case).envelopes[0]
        await js.publish(subject_for(req), original.body, headers=headers_for(original, new_id()))
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


def prepare_data_dir(settings: Settings) -> None:
    """Start from an empty demo directory; never wipe a directory the demo did not make."""
    d = settings.data_dir
    if d.exists() and any(d.iterdir()):
        if not settings.demo_marker.exists():
            raise DemoError(f"{d} holds data that is not a demo's; choose another with --data-dir "
                            f"or XIEZHU_DATA_DIR (the demo starts from an empty directory)")
        shutil.rmtree(d)
    d.mkdir(parents=True, exist_ok=True)
    settings.demo_marker.write_text("made by `xiezhu demo`; the next demo run replaces this directory\n")


async def run_demo(settings: Settings, registry: Registry, *, requests: int = 300, seed: int = 2026) -> dict[str, Any]:
    """Run the demo and return its summary."""
    if requests < 1:
        raise DemoError("--requests must be at least 1")
    prepare_data_dir(settings)
    rng = random.Random(seed)
    clock = SimulatedClock(SIM_START)
    population = seed_bureau_data(settings, rng)
    started = timer.perf_counter()
    node = Node(settings, registry, clock, agents=registry.codes(), ledger=True, projection=True,
                simulated=True, generate_keys=True, key_valid_from=SIM_START - timedelta(days=30))
    await node.start()
    try:
        demo = Demo(node, settings, clock, rng, requests)
        await demo.run(population)
        return await summarize(node, demo, timer.perf_counter() - started)
    finally:
        await node.stop()


async def summarize(node: Node, demo: Demo, wall: float) -> dict[str, Any]:
    """The demo's figures, from the SLA view, the ledger and the agents' counters."""
    assert node.sla is not None and node.ledger is not None and node.ledger_service is not None
    rows = node.sla.rows()
    status = Counter(r["status"] for r in rows)
    outcome = Counter(r["outcome"] for r in rows if r["outcome"])
    nc = await nats.connect(servers=server_list(node.nats_url))
    dlq = (await nc.jetstream().stream_info(DLQ_STREAM)).state.messages
    await nc.close()
    agent_stats = [a.intake.stats for a in node.agents.values() if a.intake]
    rejected_by: Counter[str] = Counter()
    for s in agent_stats + [node.ledger_service.stats]:
        rejected_by.update(s.rejected_by_code)
    return {
        "requests": len(rows),
        "replied": status["replied"],
        "declined": status["declined"],
        "pending": status["requested"] + status["received"],
        "rejected_messages": dlq,
        "ledger_events": len(node.ledger),
        "signatures_verified": sum(s.signatures_verified for s in agent_stats)
        + node.ledger_service.stats.signatures_verified,
        "auto_answered": sum(a.auto_answered for a in node.agents.values()),
        "operator_answered": demo.operator_answered,
        "operator_declined": demo.operator_declined,
        "false_commitments": outcome["false"],
        "unverifiable": outcome["unverifiable"],
        "all_true": outcome["true"],
        "letters": sum(1 for r in rows if r["channel"] == "letter"),
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

