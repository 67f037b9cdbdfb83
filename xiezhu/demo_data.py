"""The demo's world: bureau pairs, matters and assistance items, applicants and their records."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import sqlite_utils

from schemas.assistance import Applicant, CommitmentItem
from schemas.catalogue import AssistanceItem, MatterRow, Memorandum
from xiezhu.settings import Settings


@dataclass(frozen=True)
class Flow:
    """One kind of application at a handling bureau, verified through one catalogued assistance item."""

    requester: str
    assistor: str
    matter_code: str
    matter_name: str
    certificate: str
    issuing_unit: str
    mode: str  # 必须实行 | 可选择
    kind: str  # person | organisation
    checks: tuple[str, ...]  # verifier keys; "" means only a person can answer
    item_code: str
    item_name: str
    weight: int
    disclose: bool = False
    on_site: bool = False
    basis: str = "《国务院办公厅关于全面推行证明事项告知承诺制的指导意见》（国办发〔2020〕42号）"
    #: The commitment a person checks (a check of ""), in the matter's own words.
    claim: str = ""
    #: 附件6: the 监管部门 a false commitment is pushed to for 惩处 (the matter's 行业监管部门).
    supervisor: str = ""
    #: An organisation applicant's line of business (its name says it): who applies for this matter.
    trades: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


FLOWS = [
    Flow("shenpi", "gongan", "370405-XK-0101", "食品经营许可", "无犯罪记录证明", "区公安分局", "可选择", "person",
         ("hukou.residence", "police.no-criminal-record"), "XZ-0001", "户籍及无犯罪记录核查", 30, disclose=True,
         supervisor="shichang",
         basis="《中华人民共和国食品安全法》第三十五条；《食品经营许可管理办法》"),
    Flow("jiaoti", "gongan", "370405-QR-0203", "教师资格认定", "无犯罪记录证明", "区公安分局", "必须实行", "person",
         ("police.no-criminal-record",), "XZ-0002", "无犯罪记录核查", 12, supervisor="jiaoti",
         basis="《中华人民共和国教师法》第十四条；《教师资格条例》第十八条"),
    Flow("yunhe", "gongan", "370405-GG-0310", "居住登记", "户籍证明", "区公安分局", "必须实行", "person",
         ("hukou.residence",), "XZ-0003", "户籍所在地核查", 10, supervisor="gongan",
         basis="《居住证暂行条例》第二条、第九条"),
    Flow("shenpi", "shichang", "370405-XK-0102", "食品经营许可（企业）", "营业执照", "区市场监管局", "可选择",
         "organisation", ("licence.valid", "licence.scope"), "XZ-0004", "营业执照及经营范围核查", 20,
         supervisor="shichang", trades=("商贸", "餐饮"),
         basis="《中华人民共和国食品安全法》第三十五条；《食品经营许可管理办法》第十二条"),
    Flow("zhujian", "shichang", "370405-XK-0520", "建筑业企业资质", "营业执照", "区市场监管局", "可选择",
         "organisation", ("licence.valid", "licence.name"), "XZ-0005", "营业执照登记信息核查", 8,
         supervisor="zhifa", trades=("建工",),
         basis="《中华人民共和国建筑法》第十三条；《建筑业企业资质管理规定》"),
    Flow("minzheng", "renshe", "370405-JF-0701", "最低生活保障", "社会保险缴费证明", "区人力资源社会保障局",
         "必须实行", "person", ("shebao.months",), "XZ-0006", "社会保险缴费核查", 10, supervisor="minzheng",
         basis="《社会救助暂行办法》第九条至第十一条"),
    Flow("shenpi", "ziran", "370405-QR-0815", "不动产登记", "不动产权属证明", "区自然资源局", "可选择", "person",
         ("",), "XZ-0007", "不动产权属核查", 6, supervisor="ziran", basis="《不动产登记暂行条例》第十六条",
         claim="本人对申请登记的不动产享有合法权属，不存在权属争议"),
    Flow("weijian", "minzheng", "370405-JF-0902", "计划生育家庭特别扶助", "家庭情况证明", "区民政局", "必须实行",
         "person", ("",), "XZ-0008", "家庭情况核查", 4, supervisor="weijian", basis="《山东省人口与计划生育条例》",
         claim="本人家庭成员及生育情况与申报内容一致"),
    Flow("nongye", "wenlv", "370405-XK-1001", "休闲农业经营", "旅游经营备案证明", "区文化和旅游局", "可选择",
         "organisation", ("",), "XZ-0009", "旅游经营备案核查", 3,
         supervisor="wenlv", trades=("农业", "文旅"), basis="《山东省旅游条例》",
         claim="本企业已依法办理旅游经营备案"),
    Flow("zhujian", "yingji", "370405-XK-0530", "建筑施工安全生产许可", "安全生产检查证明", "区应急管理局", "可选择",
         "organisation", ("",), "XZ-0010", "施工现场安全条件现场核查", 2, on_site=True,
         supervisor="zhifa", trades=("建工",),
         basis="《安全生产许可证条例》第六条", claim="本企业施工现场安全生产条件符合法律法规规定"),
]

#: Each flow by its matter's code.
FLOW_OF = {f.matter_code: f for f in FLOWS}

ITEM_TEXT = {
    "hukou.residence": "本人户籍所在地为{address}",
    "police.no-criminal-record": "本人无犯罪记录",
    "licence.valid": "本企业营业执照合法有效",
    "licence.scope": "本企业经营范围包含{scope}",
    "licence.name": "本企业登记名称为{name}",
    "shebao.months": "本人已连续缴纳社会保险满{months}个月",
}
ADDRESSES = ["台儿庄区运河街道", "台儿庄区张山子镇", "台儿庄区涧头集镇",
             "台儿庄区邳庄镇", "台儿庄区马兰屯镇", "台儿庄区泥沟镇"]
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
GIVEN = ["伟", "芳", "娜", "敏", "静", "磊", "洋", "勇", "艳", "杰", "军", "涛", "明", "霞", "平", "刚"]
SCOPES = ["食品销售", "餐饮服务", "建筑工程施工", "农产品初加工", "旅游咨询"]


def matter_row(flow: Flow, seq: int) -> MatterRow:
    """The 附件8 row a handling bureau lists for its matter."""
    return MatterRow(
        code=flow.matter_code, seq=seq, service_matter_name=flow.matter_name,
        service_matter_code=flow.matter_code, certificate_name=flow.certificate, legal_basis=flow.basis,
        handling_body=flow.requester, issuing_unit=flow.issuing_unit, mode=flow.mode,  # type: ignore[arg-type]
        verification_methods=["部门间行政协助", "现场检查"] if flow.on_site else ["部门间行政协助"],
        disclose_commitment=flow.disclose, owner=flow.requester)


def assistance_row(flow: Flow, seq: int) -> AssistanceItem:
    """The 附件9 row the handling bureau lists for its assistance item."""
    return AssistanceItem(
        code=flow.item_code, seq=seq, service_matter_name=flow.matter_name, service_matter_code=flow.matter_code,
        item_name=flow.item_name, legal_basis=flow.basis, handling_body=flow.requester,
        assisting_body=flow.assistor, verification_method="现场检查" if flow.on_site else "部门间行政协助",
        on_site=flow.on_site, checks=[c for c in flow.checks if c])


def memorandum(flow: Flow, signed_on: date) -> Memorandum:
    """第六条: the on-site assistance memorandum between the two bureaus."""
    return Memorandum(id=f"MOU-{flow.item_code}", parties=[flow.requester, flow.assistor], item_code=flow.item_code,
                      signed_on=signed_on, text=f"双方就“{flow.item_name}”现场协助检查的范围、人员与时限达成备忘录。",
                      filed_with=["sifa", "bianban"])


@dataclass
class Population:
    """The applicants the bureaus' own records know (and a few they don't)."""

    persons: list[Applicant]
    organisations: list[Applicant]
    #: 四(二): applicants with serious bad credit or an unrepaired false commitment.
    bad_credit: set[str]

    def in_trade(self, trades: tuple[str, ...]) -> list[Applicant]:
        """The organisations whose line of business (in their name) fits a matter: no 农业 company builds."""
        return [o for o in self.organisations if any(f"{t}有限公司" in o.name for t in trades)] or self.organisations


def _id_number(rng: random.Random) -> str:
    born = date(1960, 1, 1) + timedelta(days=rng.randrange(365 * 40))
    return f"370405{born:%Y%m%d}{rng.randrange(1000):03d}{rng.choice('0123456789X')}"


def _trade_name(i: int) -> str:
    """A company's 字号, different for each of the first 90 (a real register has no "有限公司86")."""
    return "鑫恒福宏金众永祥华天"[i // 9 % 10] + "源泰瑞达禾诚安和兴"[i % 9]


def _uscc(rng: random.Random) -> str:
    return "91370405" + "".join(rng.choice("0123456789ABCDEFGHJKLMNPQRTUWXY") for _ in range(10))


def seed_bureau_data(settings: Settings, rng: random.Random) -> Population:
    """Write each verifying bureau's own records (户籍, 营业执照, 社保) into its data file."""
    persons = [Applicant(kind="person", name=rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN),
                         id_number=_id_number(rng)) for _ in range(260)]
    orgs = [Applicant(kind="organisation",
                      name=f"台儿庄区{rng.choice(['运河', '古城', '兴隆', '鲁南'])}{_trade_name(i)}"
                      f"{rng.choice(['商贸', '餐饮', '建工', '农业', '文旅'])}有限公司", id_number=_uscc(rng))
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
    bad = {a.id_number for a in rng.sample(persons + orgs, 12)}
    return Population(persons, orgs, bad)


def _facts(check: str, applicant: Applicant, settings: Settings, rng: random.Random) -> dict[str, str]:
    honest = rng.random() > 0.12
    if check == "hukou.residence":
        db = sqlite_utils.Database(settings.bureau_data_path("gongan"))
        rows = list(db.table("residents").rows_where("id_number = ?", [applicant.id_number]))
        true_addr = rows[0]["residence"].removeprefix("山东省枣庄市") if rows else rng.choice(ADDRESSES)
        return {"address": true_addr if honest else rng.choice([a for a in ADDRESSES if a != true_addr])}
    if check == "licence.scope":
        return {"scope": rng.choice(SCOPES)}
    if check == "shebao.months":
        return {"months": str(rng.choice([6, 12, 24]))}
    return {}


def make_items(flow: Flow, applicant: Applicant, settings: Settings, rng: random.Random) -> list[CommitmentItem]:
    """The commitments of one application, some of them false."""
    items = []
    for no, check in enumerate(flow.checks, start=1):
        facts = _facts(check, applicant, settings, rng)
        text = flow.claim if not check else ITEM_TEXT[check].format(name=applicant.name, **facts)
        items.append(CommitmentItem(no=no, text=text, check=check, facts=facts))
    return items
