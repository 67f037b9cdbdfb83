"""The catalogues (附件8, 附件9) and their 动态调整 procedure: every rule of 一(二)(四) and 附件2 第六条/第七条."""
from __future__ import annotations

import threading
from datetime import UTC, date, datetime
from typing import Any

import msgspec
import pytest

from aggregates import catalogue as cat
from aggregates.clock import SimulatedClock
from aggregates.errors import RuleError
from aggregates.store.catalogue import CatalogueRegistry
from schemas.catalogue import (
    EXCLUDED_DOMAINS,
    AdjustmentApplied,
    AssistanceItem,
    CatalogueFiled,
    CataloguePublished,
    Kind,
    MatterRow,
    Memorandum,
    Row,
    decode_event,
    encode_event,
)
from tests.conftest import StoreLocations

GOVERNMENT = "zhengfuban"  # 区政府办公室, through which 区政府 publishes the 证明事项清单 (一(三))
START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # Monday 09:00 in Shanghai


def matter(code: str = "ZM-gongan-0001", seq: int = 1, owner: str = "gongan", **changes: Any) -> MatterRow:
    fields: dict[str, Any] = dict(
        code=code, seq=seq, service_matter_name="户口迁移登记", service_matter_code="370405-QR-0001",
        certificate_name="无犯罪记录证明", legal_basis="《户口登记条例》第十条", handling_body=owner,
        issuing_unit="区公安分局", mode="可选择", verification_methods=["信息共享平台查询", "部门间行政协助"],
        owner=owner, domains=["户籍管理"],
    )
    return MatterRow(**{**fields, **changes})


def item(code: str = "XZ-0001", seq: int = 1, handling: str = "shichang", assisting: str = "gongan",
         **changes: Any) -> AssistanceItem:
    fields: dict[str, Any] = dict(
        code=code, seq=seq, service_matter_name="食品经营许可", service_matter_code="370405-XK-0001",
        item_name="申请人户籍核查", legal_basis="《食品安全法》第三十五条", handling_body=handling,
        assisting_body=assisting, verification_method="部门间行政协助", checks=["hukou.residence"],
    )
    return AssistanceItem(**{**fields, **changes})


def memo(item_code: str = "XZ-0001", parties: tuple[str, str] = ("shichang", "gongan"),
         **changes: Any) -> Memorandum:
    fields: dict[str, Any] = dict(id=f"BW-{item_code}-{'-'.join(parties)}", parties=list(parties),
                                  item_code=item_code, signed_on=date(2026, 3, 1),
                                  text="双方约定现场协助核查的方式与时限。", filed_with=["sifa", "bianban"])
    return Memorandum(**{**fields, **changes})


def through(reg: CatalogueRegistry, kind: Kind, applicant: str, **changes: Any) -> int:
    """Apply, approve and publish one adjustment; the published version's number."""
    adj = reg.apply_adjustment(kind, applicant, "依据：区政府常务会议纪要", **changes)
    reg.review(adj, True)
    return reg.publish(kind, publisher=cat.publisher_of(kind, len(reg.versions(kind)) + 1))


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(START)


@pytest.fixture
def reg(clock: SimulatedClock) -> CatalogueRegistry:
    return CatalogueRegistry(None, clock)


# -- 一(三)(四): the only way in is the procedure ------------------------------------


def test_version_one_exists_only_after_application_review_and_publication(reg: CatalogueRegistry) -> None:
    assert reg.current("matters") == [] and reg.versions("matters") == []
    adj = reg.apply_adjustment("matters", "gongan", "初次编制：公安系统证明事项通用清单", adds=[matter()])
    assert reg.current("matters") == []
    reg.review(adj, True)
    assert reg.current("matters") == []
    with pytest.raises(cat.NotPublisher):  # 一(三): 区司法局审核后按程序报请由区政府公布实施
        reg.publish("matters")
    assert reg.publish("matters", publisher=GOVERNMENT) == 1
    assert reg.version("matters", 1).published_by == GOVERNMENT
    assert reg.current("matters") == [matter()]
    assert reg.adjustment(adj).status == "published" and reg.adjustment(adj).version == 1


def test_registry_has_no_command_that_edits_or_deletes_a_published_row(reg: CatalogueRegistry) -> None:
    commands = {"apply_adjustment", "review", "publish", "file_with_city", "file_memorandum"}
    queries = {"state", "current", "version", "versions", "item", "matter", "check_request", "check_matter",
               "check_cited", "adjustment", "pending_adjustments", "memoranda", "history"}
    own = {n for n in vars(CatalogueRegistry) if not n.startswith("_") and callable(getattr(CatalogueRegistry, n))}
    assert own - {"construct_env", "register_transcodings"} == commands | queries


def test_rows_handed_out_cannot_change_the_catalogue(reg: CatalogueRegistry) -> None:
    through(reg, "matters", "gongan", adds=[matter()])
    rows = reg.current("matters")
    rows.clear()
    with pytest.raises(AttributeError):
        reg.current("matters")[0].seq = 2  # type: ignore[misc]
    assert reg.current("matters") == [matter()]


def test_published_version_stays_exactly_as_published(reg: CatalogueRegistry) -> None:
    through(reg, "assistance", "shichang", adds=[item(), item("XZ-0002", 2)])
    v1 = msgspec.json.encode(reg.version("assistance", 1))
    through(reg, "assistance", "shichang", replaces=[item(reply_within=2)], removes=["XZ-0002"])
    through(reg, "assistance", "shichang", adds=[item("XZ-0003", 3)])
    assert msgspec.json.encode(reg.version("assistance", 1)) == v1
    old = reg.version("assistance", 1)
    assert old.digest == cat.rows_digest(old.rows)
    assert [v.number for v in reg.versions("assistance")] == [1, 2, 3]


def test_missing_basis_is_refused(reg: CatalogueRegistry) -> None:
    with pytest.raises(cat.MissingBasis):
        reg.apply_adjustment("matters", "gongan", "   ", adds=[matter()])
    assert reg.history("matters") == []


def test_an_adjustment_that_changes_nothing_is_refused(reg: CatalogueRegistry) -> None:
    with pytest.raises(cat.EmptyAdjustment):
        reg.apply_adjustment("matters", "gongan", "依据")


# -- 一(二): excluded domains -------------------------------------------------------


@pytest.mark.parametrize("domain", EXCLUDED_DOMAINS)
def test_a_matter_in_an_excluded_domain_is_refused_at_application(reg: CatalogueRegistry, domain: str) -> None:
    with pytest.raises(cat.Excluded) as e:
        reg.apply_adjustment("matters", "gongan", "依据", adds=[matter(domains=["户籍管理", domain])])
    assert e.value.code == "rule.catalogue.excluded" and domain in str(e.value)
    assert reg.pending_adjustments() == [] and reg.history("matters") == []


def test_a_matter_whose_name_says_it_is_excluded_is_refused_even_without_domains(reg: CatalogueRegistry) -> None:
    with pytest.raises(cat.Excluded, match="涉密"):
        reg.apply_adjustment("matters", "gongan", "依据",
                             adds=[matter(certificate_name="涉密人员政治审查证明", domains=[])])


def test_replacing_a_matter_into_an_excluded_domain_is_refused(reg: CatalogueRegistry) -> None:
    through(reg, "matters", "gongan", adds=[matter()])
    with pytest.raises(cat.Excluded):
        reg.apply_adjustment("matters", "gongan", "依据", replaces=[matter(domains=["公共安全"])])


def test_ordinary_focus_areas_of_1_2_are_accepted(reg: CatalogueRegistry) -> None:
    row = matter(service_matter_name="健康体检机构备案", domains=["健康体检", "社会保险"])
    assert through(reg, "matters", "gongan", adds=[row]) == 1


# -- who may do what ----------------------------------------------------------------


def test_only_sifa_reviews(reg: CatalogueRegistry) -> None:
    adj = reg.apply_adjustment("matters", "gongan", "依据", adds=[matter()])
    with pytest.raises(cat.NotJustice):
        reg.review(adj, True, reviewer="gongan")
    assert reg.adjustment(adj).status == "pending"


def test_only_sifa_publishes(reg: CatalogueRegistry) -> None:
    reg.review(reg.apply_adjustment("matters", "gongan", "依据", adds=[matter()]), True)
    with pytest.raises(cat.NotJustice):
        reg.publish("matters", publisher="gongan")
    assert reg.versions("matters") == []


def test_only_sifa_files_with_the_city(reg: CatalogueRegistry) -> None:
    through(reg, "matters", "gongan", adds=[matter()])
    with pytest.raises(cat.NotJustice):
        reg.file_with_city("matters", 1, filed_by="gongan")


def test_only_the_owner_applies_to_list_a_row(reg: CatalogueRegistry) -> None:
    with pytest.raises(cat.NotOwner):
        reg.apply_adjustment("matters", "shichang", "依据", adds=[matter(owner="gongan")])
    with pytest.raises(cat.NotOwner):
        reg.apply_adjustment("assistance", "gongan", "依据", adds=[item(handling="shichang")])


def test_only_the_owner_replaces_or_removes_its_rows(reg: CatalogueRegistry) -> None:
    through(reg, "matters", "gongan", adds=[matter()])
    with pytest.raises(cat.NotOwner):
        reg.apply_adjustment("matters", "shichang", "依据", removes=["ZM-gongan-0001"])
    with pytest.raises(cat.NotOwner):
        reg.apply_adjustment("matters", "shichang", "依据", replaces=[matter(owner="shichang")])
    with pytest.raises(cat.NotOwner):  # the owner cannot hand its row to another bureau either
        reg.apply_adjustment("matters", "gongan", "依据", replaces=[matter(owner="shichang")])


def test_the_fold_refuses_an_application_recorded_by_someone_else() -> None:
    ev = AdjustmentApplied(id="matters-0001", kind="matters", applicant="gongan", basis="依据", adds=[matter()],
                           applied_at=START)
    with pytest.raises(cat.NotOwner):
        cat.apply(cat.empty("matters"), ev, actor="shichang", at=START)
    assert cat.apply(cat.empty("matters"), ev, actor="gongan", at=START).adjustments[0].id == "matters-0001"


# -- review ------------------------------------------------------------------------


def test_a_rejection_needs_reasons(reg: CatalogueRegistry) -> None:
    adj = reg.apply_adjustment("matters", "gongan", "依据", adds=[matter()])
    for blank in ("", "  \n"):
        with pytest.raises(cat.MissingReasons):
            reg.review(adj, False, blank)
    done = reg.review(adj, False, "设定依据已废止")
    assert (done.status, done.reasons, done.reviewer) == ("rejected", "设定依据已废止", "sifa")
    with pytest.raises(cat.NothingToPublish):
        reg.publish("matters")


def test_an_adjustment_is_reviewed_once(reg: CatalogueRegistry) -> None:
    adj = reg.apply_adjustment("matters", "gongan", "依据", adds=[matter()])
    reg.review(adj, True)
    with pytest.raises(cat.AlreadyReviewed):
        reg.review(adj, True)
    with pytest.raises(cat.AlreadyReviewed):
        reg.review(adj, False, "改变主意")
    reg.publish("matters", publisher=GOVERNMENT)
    with pytest.raises(cat.AlreadyReviewed):
        reg.review(adj, False, "已公布")


def test_reviewing_an_unknown_adjustment_is_refused(reg: CatalogueRegistry) -> None:
    for bad in ("matters-0009", "nonsense"):
        with pytest.raises(cat.UnknownAdjustment):
            reg.review(bad, True)


# -- codes and 序号 ----------------------------------------------------------------


def test_a_code_twice_in_one_adjustment_is_refused(reg: CatalogueRegistry) -> None:
    with pytest.raises(cat.DuplicateCode):
        reg.apply_adjustment("matters", "gongan", "依据", adds=[matter(), matter(seq=2)])


def test_replacing_and_removing_one_code_in_one_adjustment_is_refused(reg: CatalogueRegistry) -> None:
    through(reg, "matters", "gongan", adds=[matter()])
    with pytest.raises(cat.DuplicateCode):
        reg.apply_adjustment("matters", "gongan", "依据", replaces=[matter(notes="新")], removes=["ZM-gongan-0001"])
    with pytest.raises(cat.DuplicateCode):
        reg.apply_adjustment("matters", "gongan", "依据", replaces=[matter(notes="甲"), matter(notes="乙")])


def test_adding_a_code_already_published_is_refused(reg: CatalogueRegistry) -> None:
    through(reg, "matters", "gongan", adds=[matter()])
    with pytest.raises(cat.DuplicateCode):
        reg.apply_adjustment("matters", "gongan", "依据", adds=[matter(seq=2)])


def test_a_bureau_cannot_list_the_same_seq_twice_in_a_version(reg: CatalogueRegistry) -> None:
    through(reg, "matters", "gongan", adds=[matter()])
    with pytest.raises(cat.DuplicateSeq):
        reg.apply_adjustment("matters", "gongan", "依据", adds=[matter("ZM-gongan-0002", seq=1)])
    with pytest.raises(cat.DuplicateSeq):
        reg.apply_adjustment("matters", "gongan", "依据", adds=[matter("A", seq=7), matter("B", seq=7)])


def test_two_bureaus_each_number_their_own_list_from_one(reg: CatalogueRegistry) -> None:
    """附件8/9 are filled in per 部门, so 序号 is unique within a bureau's rows, not district-wide."""
    through(reg, "matters", "gongan", adds=[matter()])
    through(reg, "matters", "shichang", adds=[matter("ZM-shichang-0001", owner="shichang")])
    assert [(r.owner, r.seq) for r in reg.current("matters")] == [("gongan", 1), ("shichang", 1)]


def test_two_approved_adjustments_cannot_both_add_one_code(reg: CatalogueRegistry) -> None:
    first = reg.apply_adjustment("matters", "gongan", "依据", adds=[matter()])
    second = reg.apply_adjustment("matters", "gongan", "依据", adds=[matter(seq=2)])
    reg.review(first, True)
    with pytest.raises(cat.DuplicateCode):
        reg.review(second, True)
    reg.review(second, False, "与 matters-0001 重复")
    assert reg.publish("matters", publisher=GOVERNMENT) == 1


def test_removing_or_replacing_an_unpublished_code_is_refused(reg: CatalogueRegistry) -> None:
    with pytest.raises(cat.NotPublished):
        reg.apply_adjustment("matters", "gongan", "依据", removes=["ZM-gongan-0001"])
    reg.apply_adjustment("matters", "gongan", "依据", adds=[matter()])  # pending is not published
    with pytest.raises(cat.NotPublished):
        reg.apply_adjustment("matters", "gongan", "依据", replaces=[matter(notes="新")])
    with pytest.raises(cat.NotPublished):
        reg.apply_adjustment("matters", "gongan", "依据", removes=["ZM-gongan-0001"])


def test_approving_a_removal_of_a_row_already_removed_meanwhile_is_refused(reg: CatalogueRegistry) -> None:
    through(reg, "matters", "gongan", adds=[matter()])
    first = reg.apply_adjustment("matters", "gongan", "依据一", removes=["ZM-gongan-0001"])
    second = reg.apply_adjustment("matters", "gongan", "依据二", removes=["ZM-gongan-0001"])
    reg.review(first, True)
    reg.publish("matters")
    with pytest.raises(cat.NotPublished):
        reg.review(second, True)


# -- rows ------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "days"), [("reply_within", 0), ("reply_within", 4), ("reply_within", 30),
                                             ("decline_within", 0), ("decline_within", 3)])
def test_an_item_cannot_lengthen_the_plans_3_and_2_working_days(reg: CatalogueRegistry, field: str,
                                                               days: int) -> None:
    """三(二): 被请求协助的行政机关应当在3个工作日内履行协助义务 … 2个工作日内书面告知."""
    with pytest.raises(cat.BadDeadline) as e:
        changes: dict[str, Any] = {field: days}
        reg.apply_adjustment("assistance", "shichang", "依据", adds=[item(**changes)])
    assert e.value.code == "rule.catalogue.deadline"
    assert "三(二)" in str(e.value)


def test_an_item_may_agree_a_shorter_time_than_the_plans(reg: CatalogueRegistry) -> None:
    """第十一条: an agreement within the 办法's principles may ask for a faster answer, never a slower one."""
    through(reg, "assistance", "shichang", adds=[item(reply_within=1, decline_within=1)])
    found, _ = reg.check_request("shichang", "gongan", "XZ-0001")
    assert (found.reply_within, found.decline_within) == (1, 1)


def test_a_bureau_cannot_be_its_own_assistor(reg: CatalogueRegistry) -> None:
    with pytest.raises(cat.BadRow):
        reg.apply_adjustment("assistance", "shichang", "依据", adds=[item(assisting="shichang")])


def test_a_matter_needs_at_least_one_known_verification_method(reg: CatalogueRegistry) -> None:
    with pytest.raises(cat.BadRow):
        reg.apply_adjustment("matters", "gongan", "依据", adds=[matter(verification_methods=[])])


def test_a_row_of_the_other_catalogue_is_refused(reg: CatalogueRegistry) -> None:
    with pytest.raises(cat.WrongKind):
        reg.apply_adjustment("matters", "shichang", "依据", adds=[item()])


def test_a_row_that_breaks_its_schema_is_refused_before_it_is_stored(reg: CatalogueRegistry) -> None:
    with pytest.raises(cat.InvalidEvent, match="code"):
        reg.apply_adjustment("assistance", "shichang", "依据", adds=[item(code="XZ 0001 !")])
    assert reg.history("assistance") == []


# -- publication and filing ---------------------------------------------------------


def test_publishing_with_nothing_approved_is_refused(reg: CatalogueRegistry) -> None:
    with pytest.raises(cat.NothingToPublish):
        reg.publish("matters")
    reg.apply_adjustment("matters", "gongan", "依据", adds=[matter()])
    with pytest.raises(cat.NothingToPublish):
        reg.publish("matters")


def test_a_version_publishes_every_approved_adjustment_in_approval_order(reg: CatalogueRegistry) -> None:
    a = reg.apply_adjustment("matters", "gongan", "依据", adds=[matter()])
    b = reg.apply_adjustment("matters", "shichang", "依据", adds=[matter("ZM-shichang-0001", owner="shichang")])
    c = reg.apply_adjustment("matters", "gongan", "依据", adds=[matter("ZM-gongan-0002", seq=2)])
    reg.review(b, True)
    reg.review(a, True)
    assert reg.publish("matters", publisher=GOVERNMENT) == 1
    v1 = reg.version("matters", 1)
    assert v1.adjustments == (b, a) and len(v1.rows) == 2
    assert [p.id for p in reg.pending_adjustments()] == [c]
    reg.review(c, True)
    assert [p.status for p in reg.pending_adjustments()] == ["approved"]
    with pytest.raises(cat.NotPublisher):  # 一(四): 区司法局统一审核公布 its adjustments
        reg.publish("matters", publisher=GOVERNMENT)
    assert reg.publish("matters") == 2 and len(reg.current("matters")) == 3


def test_a_version_is_filed_with_the_city_once(reg: CatalogueRegistry, clock: SimulatedClock) -> None:
    through(reg, "matters", "gongan", adds=[matter()])
    reg.file_with_city("matters", 1)
    v1 = reg.version("matters", 1)
    assert v1.filed_with == "shi-sifa" and v1.filed_at is not None and v1.filed_at > START
    with pytest.raises(cat.AlreadyFiled):
        reg.file_with_city("matters", 1)
    with pytest.raises(cat.UnknownVersion):
        reg.file_with_city("matters", 2)


def test_only_the_list_of_certification_matters_is_filed_with_the_city(reg: CatalogueRegistry) -> None:
    """一(四) 并报市司法局备案 is the 证明事项清单's; 第七条 has 区司法局 publish the 行政协助目录, unfiled."""
    through(reg, "assistance", "shichang", adds=[item()])
    with pytest.raises(cat.BadFiling, match="not filed with 市司法局"):
        reg.file_with_city("assistance", 1)
    assert reg.version("assistance", 1).filed_at is None


def test_who_publishes_each_version_follows_the_seed(reg: CatalogueRegistry) -> None:
    """一(三) 区政府 the list as first compiled; 一(四) 区司法局 its adjustments; 第七条 区司法局 the 行政协助目录."""
    assert [cat.publisher_of(k, v) for k, v in (("matters", 1), ("matters", 2), ("assistance", 1))] == [
        GOVERNMENT, "sifa", "sifa"]
    reg.review(reg.apply_adjustment("assistance", "shichang", "依据", adds=[item()]), True)
    with pytest.raises(cat.NotPublisher, match="第七条"):
        reg.publish("assistance", publisher=GOVERNMENT)
    assert reg.publish("assistance") == 1


def test_the_fold_refuses_a_filing_anywhere_but_the_city_justice_bureau() -> None:
    st = _published_state()
    ev = CatalogueFiled(kind="matters", version=1, filed_with="bianban", filed_by="sifa", filed_at=START)
    with pytest.raises(cat.BadFiling):
        cat.apply(st, ev, actor="sifa", at=START)


def _published_state() -> cat.CatalogueState:
    reg = CatalogueRegistry(None, SimulatedClock(START))
    through(reg, "matters", "gongan", adds=[matter()])
    return reg.state("matters")


def test_the_fold_refuses_a_publication_whose_rows_do_not_match_its_adjustments() -> None:
    reg = CatalogueRegistry(None, SimulatedClock(START))
    reg.review(reg.apply_adjustment("assistance", "shichang", "依据", adds=[item()]), True)
    st = reg.state("assistance")
    good = dict(kind="assistance", version=1, adjustments=["assistance-0001"], digest=cat.rows_digest([item()]),
                rows=1, published_by="sifa", published_at=START)
    cat.apply(st, CataloguePublished(**good), actor="sifa", at=START)  # type: ignore[arg-type]
    for bad in ({"digest": "0" * 64}, {"version": 2}, {"adjustments": ["assistance-0002"]}, {"rows": 2}):
        with pytest.raises(cat.BadPublication):
            cat.apply(st, CataloguePublished(**{**good, **bad}), actor="sifa", at=START)  # type: ignore[arg-type]


def test_the_fold_refuses_adjustment_ids_out_of_sequence() -> None:
    ev = AdjustmentApplied(id="matters-0002", kind="matters", applicant="gongan", basis="依据", adds=[matter()],
                           applied_at=START)
    with pytest.raises(cat.BadAdjustmentId):
        cat.apply(cat.empty("matters"), ev, actor="gongan", at=START)


# -- 第七条: only catalogued items may be requested ----------------------------------------


def test_an_item_not_in_the_catalogue_cannot_be_requested(reg: CatalogueRegistry) -> None:
    with pytest.raises(cat.NotCatalogued):
        reg.check_request("shichang", "gongan", "XZ-0001")  # nothing published yet
    reg.apply_adjustment("assistance", "shichang", "依据", adds=[item()])
    with pytest.raises(cat.NotCatalogued):
        reg.check_request("shichang", "gongan", "XZ-0001")  # applied, not published
    through(reg, "assistance", "shichang", adds=[item("XZ-0002", 2)])
    with pytest.raises(cat.NotCatalogued):
        reg.check_request("shichang", "gongan", "XZ-0001")
    assert reg.check_request("shichang", "gongan", "XZ-0002")[1] == 1


def test_a_catalogued_item_binds_its_requester_and_assistor(reg: CatalogueRegistry) -> None:
    through(reg, "assistance", "shichang", adds=[item()])
    with pytest.raises(cat.NotCatalogued):
        reg.check_request("renshe", "gongan", "XZ-0001")
    with pytest.raises(cat.NotCatalogued):
        reg.check_request("shichang", "minzheng", "XZ-0001")
    with pytest.raises(cat.NotCatalogued):
        reg.check_request("gongan", "shichang", "XZ-0001")
    assert reg.check_request("shichang", "gongan", "XZ-0001") == (item(), 1)


def test_a_request_can_always_be_told_the_version_it_relied_on(reg: CatalogueRegistry) -> None:
    through(reg, "assistance", "shichang", adds=[item()])
    relied, version = reg.check_request("shichang", "gongan", "XZ-0001")
    through(reg, "assistance", "shichang", replaces=[item(reply_within=2)])
    assert reg.check_request("shichang", "gongan", "XZ-0001") == (item(reply_within=2), 2)
    through(reg, "assistance", "shichang", removes=["XZ-0001"])
    with pytest.raises(cat.NotCatalogued):
        reg.check_request("shichang", "gongan", "XZ-0001")
    with pytest.raises(cat.UnknownCode):
        reg.item("XZ-0001")
    assert reg.item("XZ-0001", version=version) == relied
    assert reg.item("XZ-0001", version=2).reply_within == 2
    with pytest.raises(cat.UnknownVersion):
        reg.item("XZ-0001", version=4)


def test_matter_looks_up_a_row_of_the_latest_or_an_earlier_version(reg: CatalogueRegistry) -> None:
    through(reg, "matters", "gongan", adds=[matter()])
    through(reg, "matters", "gongan", replaces=[matter(mode="必须实行")])
    assert reg.matter("ZM-gongan-0001").mode == "必须实行"
    assert reg.matter("ZM-gongan-0001", version=1).mode == "可选择"


# -- 第六条: on-site assistance and memoranda ------------------------------------------


def test_on_site_assistance_needs_a_memorandum_between_exactly_those_two_bureaus(reg: CatalogueRegistry) -> None:
    through(reg, "assistance", "shichang", adds=[item(on_site=True)])
    with pytest.raises(cat.NoMemorandum):
        reg.check_request("shichang", "gongan", "XZ-0001")
    reg.file_memorandum(memo(parties=("shichang", "weijian")))
    reg.file_memorandum(memo("XZ-0099"))
    with pytest.raises(cat.NoMemorandum):
        reg.check_request("shichang", "gongan", "XZ-0001")
    reg.file_memorandum(memo(parties=("gongan", "shichang")), filed_by="gongan")
    assert reg.check_request("shichang", "gongan", "XZ-0001") == (item(on_site=True), 1)
    assert len(reg.memoranda()) == 3


def test_a_memorandum_is_filed_with_sifa_and_bianban(reg: CatalogueRegistry) -> None:
    with pytest.raises(cat.BadMemorandum, match="bianban"):
        reg.file_memorandum(memo(filed_with=["sifa"]))
    assert reg.memoranda() == []


def test_only_a_party_files_a_memorandum(reg: CatalogueRegistry) -> None:
    with pytest.raises(cat.NotParty):
        reg.file_memorandum(memo(), filed_by="minzheng")


def test_a_memorandum_is_between_two_different_bureaus_and_filed_once(reg: CatalogueRegistry) -> None:
    with pytest.raises(cat.BadMemorandum):
        reg.file_memorandum(memo(parties=("shichang", "shichang")))
    reg.file_memorandum(memo())
    with pytest.raises(cat.BadMemorandum, match="already"):
        reg.file_memorandum(memo())


# -- audit, storage, concurrency ----------------------------------------------------


def test_history_keeps_every_event_with_its_actor_and_clock_time(reg: CatalogueRegistry) -> None:
    through(reg, "matters", "gongan", adds=[matter()])
    reg.file_with_city("matters", 1)
    history = reg.history("matters")
    assert [(type(h.event).__name__, h.actor) for h in history] == [
        ("AdjustmentApplied", "gongan"), ("AdjustmentReviewed", "sifa"), ("CataloguePublished", GOVERNMENT),
        ("CatalogueFiled", "sifa")]
    assert all(START < h.at for h in history) and [h.at for h in history] == sorted(h.at for h in history)
    for h in history:
        assert decode_event(encode_event(h.event)) == h.event


def test_catalogues_survive_reopening_the_store(store_location: StoreLocations, clock: SimulatedClock) -> None:
    first = CatalogueRegistry(store_location("catalogue"), clock)
    through(first, "assistance", "shichang", adds=[item(on_site=True)])
    first.file_memorandum(memo())
    pending = first.apply_adjustment("assistance", "shichang", "依据", removes=["XZ-0001"])
    again = CatalogueRegistry(store_location("catalogue"), clock)
    assert again.versions("assistance") == first.versions("assistance")
    assert again.check_request("shichang", "gongan", "XZ-0001")[1] == 1
    assert [a.id for a in again.pending_adjustments()] == [pending]


def test_concurrent_applications_each_get_their_own_adjustment_id(store_location: StoreLocations,
                                                                  clock: SimulatedClock) -> None:
    stores = [CatalogueRegistry(store_location("catalogue"), clock) for _ in range(2)]
    ids: list[str] = []
    lock = threading.Lock()

    def apply_many(store: CatalogueRegistry, bureau: str) -> None:
        for n in range(1, 6):
            adj = store.apply_adjustment("matters", bureau, "依据", adds=[matter(f"ZM-{bureau}-{n}", n, bureau)])
            with lock:
                ids.append(adj)

    threads = [threading.Thread(target=apply_many, args=(s, b)) for s, b in zip(stores, ("gongan", "minzheng"),
                                                                               strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(ids) == [f"matters-{n:04d}" for n in range(1, 11)]


def test_diff_rows_turns_an_edited_list_into_an_adjustment(reg: CatalogueRegistry) -> None:
    through(reg, "matters", "gongan", adds=[matter(), matter("ZM-gongan-0002", 2)])
    through(reg, "matters", "shichang", adds=[matter("ZM-shichang-0001", owner="shichang")])
    wanted: list[Row] = [matter(notes="改为线上核查"), matter("ZM-gongan-0003", 3)]
    adds, replaces, removes = cat.diff_rows(reg.current("matters"), wanted, "gongan")
    assert ([r.code for r in adds], [r.code for r in replaces], removes) == (
        ["ZM-gongan-0003"], ["ZM-gongan-0001"], ["ZM-gongan-0002"])
    through(reg, "matters", "gongan", adds=adds, replaces=replaces, removes=removes)
    assert [r.code for r in reg.current("matters")] == ["ZM-gongan-0001", "ZM-gongan-0003", "ZM-shichang-0001"]


def test_every_catalogue_error_is_a_rule_error_with_a_stable_code() -> None:
    codes = {
        cat.Excluded: "rule.catalogue.excluded", cat.NotJustice: "rule.catalogue.not-sifa",
        cat.NotOwner: "rule.catalogue.not-owner", cat.MissingBasis: "rule.catalogue.basis",
        cat.MissingReasons: "rule.catalogue.reasons", cat.AlreadyReviewed: "rule.catalogue.reviewed",
        cat.DuplicateCode: "rule.catalogue.duplicate-code", cat.DuplicateSeq: "rule.catalogue.duplicate-seq",
        cat.NotPublished: "rule.catalogue.not-published", cat.BadDeadline: "rule.catalogue.deadline",
        cat.NotCatalogued: "rule.catalogue.not-catalogued", cat.NoMemorandum: "rule.catalogue.no-memorandum",
        cat.NothingToPublish: "rule.catalogue.nothing-to-publish", cat.AlreadyFiled: "rule.catalogue.filed",
    }
    for cls, code in codes.items():
        assert issubclass(cls, RuleError) and cls.code == code


def test_a_request_as_it_arrives_is_checked_against_the_version_it_cites(reg: CatalogueRegistry) -> None:
    """第七条 and 第六条 at the receiver: the cited version holds the item, for this pair and matter,
    and an on-site item has its memorandum."""
    from schemas.assistance import Applicant, AssistanceRequested, CommitmentItem, Matter

    through(reg, "assistance", "shichang", adds=[item(), item("XZ-0002", 2, on_site=True)])
    through(reg, "assistance", "shichang", removes=["XZ-0001"])

    def req(code: str, version: int, *, assistor: str = "gongan", matter: str = "370405-XK-0001",
            name: str = "食品经营许可") -> AssistanceRequested:
        return AssistanceRequested(
            requester="shichang", assistor=assistor, applicant=Applicant(kind="person", name="张三",
                                                                         id_number="370405199001011234"),
            matter=Matter(code=matter, name=name), applied_on=date(2026, 9, 21),
            items=[CommitmentItem(no=1, text="本人无犯罪记录")], channel="platform", catalogue_item=code,
            catalogue_version=version)

    assert reg.check_cited(req("XZ-0001", 1)).code == "XZ-0001"  # sent under version 1: still good
    assert reg.check_cited(req("XZ-0001", 1, matter="别的编码")).code == "XZ-0001"  # named by its name
    with pytest.raises(cat.NotCatalogued):
        reg.check_cited(req("XZ-0001", 2))  # removed in version 2
    with pytest.raises(cat.UnknownVersion):
        reg.check_cited(req("XZ-0001", 3))
    with pytest.raises(cat.NotCatalogued):
        reg.check_cited(req("", 1))
    with pytest.raises(cat.NotCatalogued):
        reg.check_cited(req("XZ-0001", 1, assistor="minzheng"))
    with pytest.raises(cat.WrongMatter):
        reg.check_cited(req("XZ-0001", 1, matter="370405-XK-0999", name="建筑工程施工许可"))
    with pytest.raises(cat.NoMemorandum):
        reg.check_cited(req("XZ-0002", 1))
    reg.file_memorandum(memo("XZ-0002"))
    assert reg.check_cited(req("XZ-0002", 2)).on_site


@pytest.mark.parametrize("role", ["handling", "assisting"])
def test_only_bureaus_of_the_district_can_be_catalogued_for_assistance(reg: CatalogueRegistry, role: str) -> None:
    """第二条: 向无隶属关系的本区行政机关提出协助请求 — 市司法局 receives filings; it is not asked to assist."""
    with pytest.raises(cat.BadRow, match="第二条"):
        reg.apply_adjustment("assistance", "shi-sifa" if role == "handling" else "shichang", "依据",
                             adds=[item(**{role: "shi-sifa"})])


@pytest.mark.parametrize("role", ["handling", "assisting"])
def test_the_district_government_is_no_party_to_assistance(reg: CatalogueRegistry, role: str) -> None:
    """第二条 无隶属关系: every unit of the district belongs to 区政府, so 区政府办公室, which acts for it, is
    neither 承办机构 nor 协助机构."""
    with pytest.raises(cat.BadRow, match="无隶属关系"):
        reg.apply_adjustment("assistance", GOVERNMENT if role == "handling" else "shichang", "依据",
                             adds=[item(**{role: GOVERNMENT})])


def test_a_unit_and_the_unit_it_belongs_to_are_subordinate_either_way() -> None:
    """第二条 有隶属关系 from the registry's ``parent``: a 派出所 and its 区公安分局 (not in the shipped registry)."""
    from aggregates.registry import Bureau, Registry, RegistryError

    reg = Registry([Bureau(code="gongan", name="区公安分局", kind="department"),
                    Bureau(code="gongan-yunhe", name="区公安分局运河派出所", kind="department", parent="gongan"),
                    Bureau(code="gongan-yunhe-1", name="运河派出所一警务室", kind="department", parent="gongan-yunhe"),
                    Bureau(code="shichang", name="区市场监管局", kind="department")])
    assert reg.subordinate("gongan-yunhe", "gongan") and reg.subordinate("gongan", "gongan-yunhe-1")
    assert not reg.subordinate("gongan-yunhe", "shichang") and not reg.subordinate("gongan", "gongan")
    assert not any(Registry.load().subordinate(a.code, b.code) for a in Registry.load() for b in Registry.load())
    with pytest.raises(RegistryError, match="not registered"):
        Registry([Bureau(code="gongan-yunhe", name="派出所", kind="department", parent="gongan")])
