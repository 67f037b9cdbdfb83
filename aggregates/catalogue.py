"""The catalogues as a pure fold with the rules of 一(二)(三)(四) and 附件2 第六条/第七条.

Each kind (``matters`` = 附件8, ``assistance`` = 附件9) is one event stream kept by 区司法局.  The
only way a row comes into, changes in or leaves a catalogue is 动态调整: the listing bureau
applies with its 依据, 区司法局 reviews it once, and publishes every approved adjustment as the
next version; version 1 is made the same way, but 区政府 publishes the 证明事项清单's first version
(一(三), decision 51) and only the 证明事项清单 is filed with 市司法局 (一(四)).  A published version never
changes, so a request that names ``(item, version)`` can be checked against exactly what was published years later.
区司法局 keeps them in :class:`aggregates.store.catalogue.CatalogueRegistry`.
"""
from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Literal

import msgspec

from aggregates.errors import RuleError
from aggregates.registry import Registry, zh_name
from schemas import labels
from schemas.assistance import DECLINE_DAYS, REPLY_DAYS
from schemas.catalogue import (
    CITY_JUSTICE,
    DISTRICT_GOVERNMENT,
    EXCLUDED_DOMAINS,
    JUSTICE,
    METHODS,
    STAFFING_OFFICE,
    AdjustmentApplied,
    AdjustmentReviewed,
    AssistanceItem,
    CatalogueEvent,
    CatalogueFiled,
    CataloguePublished,
    Kind,
    MatterRow,
    Memorandum,
    MemorandumFiled,
    Row,
)

KINDS: tuple[Kind, ...] = ("matters", "assistance")
#: A second, cruder net under ``MatterRow.domains``, which is the primary check of 一(二): names that
#: plainly say they touch an excluded domain.  Kept short on purpose, since a long list would refuse
#: ordinary matters; a bureau that leaves ``domains`` empty remains answerable for its list.
EXCLUDED_KEYWORDS: tuple[str, ...] = (
    "国家安全", "国家秘密", "涉密", "公共安全", "审慎监管", "生态环境保护", "人身健康", "生命财产", "涉外",
)

Status = Literal["pending", "approved", "rejected", "published"]


# -- errors --------------------------------------------------------------------------


class CatalogueError(RuleError):
    """A catalogue command or event that breaks a rule of 一(四) or 附件2."""

    code = "rule.catalogue"


class WrongKind(CatalogueError):
    """The event or row belongs to the other catalogue."""

    code = "rule.catalogue.kind"


class Excluded(CatalogueError):
    """一(二): a matter touching 国家安全 … 重要涉外 cannot be under the commitment system."""

    code = "rule.catalogue.excluded"


class NotJustice(CatalogueError):
    """Only 区司法局 reviews, publishes and files the catalogues."""

    code = "rule.catalogue.not-sifa"


class NotPublisher(NotJustice):
    """一(三): 区政府 publishes the 证明事项清单 (its first version) after 区司法局's review; 一(四), 第七条:
    区司法局 publishes its adjustments and the 行政协助目录."""

    code = "rule.catalogue.not-publisher"


class NotOwner(CatalogueError):
    """Only the bureau that lists a row (owner / 承办机构) may apply to add, change or remove it."""

    code = "rule.catalogue.not-owner"


class MissingBasis(CatalogueError):
    """一(四): an adjustment is submitted with its 依据."""

    code = "rule.catalogue.basis"


class EmptyAdjustment(CatalogueError):
    """An adjustment adds, replaces or removes at least one row."""

    code = "rule.catalogue.empty"


class BadRow(CatalogueError):
    """A row is incomplete or inconsistent."""

    code = "rule.catalogue.row"


class BadDeadline(BadRow):
    """三(二): reply_within is 1 to 3 working days and decline_within 1 to 2; the plan's limits are not lengthened."""

    code = "rule.catalogue.deadline"


class DuplicateCode(CatalogueError):
    """A code appears twice in one version, or twice in one adjustment."""

    code = "rule.catalogue.duplicate-code"


class DuplicateSeq(CatalogueError):
    """A bureau's 序号 appears twice in one version."""

    code = "rule.catalogue.duplicate-seq"


class NotPublished(CatalogueError):
    """Only a published row can be replaced or removed."""

    code = "rule.catalogue.not-published"


class UnknownAdjustment(CatalogueError):
    """No adjustment with that id."""

    code = "rule.catalogue.unknown-adjustment"


class BadAdjustmentId(CatalogueError):
    """Adjustment ids run ``<kind>-0001``, ``<kind>-0002`` … without gaps."""

    code = "rule.catalogue.adjustment-id"


class AlreadyReviewed(CatalogueError):
    """An adjustment is reviewed once."""

    code = "rule.catalogue.reviewed"


class MissingReasons(CatalogueError):
    """A rejection says why."""

    code = "rule.catalogue.reasons"


class NothingToPublish(CatalogueError):
    """A new version needs at least one approved, unpublished adjustment."""

    code = "rule.catalogue.nothing-to-publish"


class BadPublication(CatalogueError):
    """A publication must be the next version, of exactly the approved adjustments, with their rows."""

    code = "rule.catalogue.publication"


class UnknownVersion(CatalogueError):
    """No published version with that number."""

    code = "rule.catalogue.unknown-version"


class BadFiling(CatalogueError):
    """一(四): a version of the 证明事项清单 is filed with 市司法局 (the 行政协助目录 is not)."""

    code = "rule.catalogue.filing"


class AlreadyFiled(CatalogueError):
    """A version is filed once."""

    code = "rule.catalogue.filed"


class BadMemorandum(CatalogueError):
    """第六条: a memorandum is signed by two bureaus and filed with 区司法局 and 区委编办."""

    code = "rule.catalogue.memorandum"


class NotParty(CatalogueError):
    """Only a party to a memorandum files it."""

    code = "rule.catalogue.not-party"


class InvalidEvent(CatalogueError):
    """The event does not match its schema (a length, a pattern, a type)."""

    code = "rule.catalogue.invalid"


class UnknownCode(CatalogueError):
    """No row with that code in the version asked about."""

    code = "rule.catalogue.unknown-code"


class NotCatalogued(CatalogueError):
    """第七条: 未纳入行政协助目录的事项不得请求行政协助."""

    code = "rule.catalogue.not-catalogued"


class NotListed(CatalogueError):
    """一(三): only a matter on the published 证明事项清单 (附件8) is handled on commitment, by its 承办机构."""

    code = "rule.catalogue.not-listed"


class WrongMatter(CatalogueError):
    """第七条: a request is for the 政务服务事项 its catalogued item covers, not another."""

    code = "rule.catalogue.wrong-matter"


class NoMemorandum(CatalogueError):
    """第六条: on-site assistance needs a filed memorandum between exactly the two bureaus."""

    code = "rule.catalogue.no-memorandum"


# -- state ---------------------------------------------------------------------------


class Adjustment(msgspec.Struct, frozen=True, kw_only=True):
    """One application for 动态调整 and what became of it."""

    id: str
    kind: Kind
    applicant: str
    basis: str
    adds: tuple[Row, ...] = ()
    replaces: tuple[Row, ...] = ()
    removes: tuple[str, ...] = ()
    applied_at: datetime
    status: Status = "pending"
    reviewer: str = ""
    reviewed_at: datetime | None = None
    reasons: str = ""
    #: Order of approval (1, 2, …); the order approved adjustments are applied when published.
    approval: int = 0
    #: The version that published it.
    version: int = 0
    #: 附件2 第八条: the dispute whose ruling or decision it carries out ("" for an ordinary adjustment).
    dispute: str = ""


class Version(msgspec.Struct, frozen=True, kw_only=True):
    """One published version of a catalogue, exactly as published."""

    kind: Kind
    number: int
    rows: tuple[Row, ...]
    adjustments: tuple[str, ...]
    digest: str
    published_by: str
    published_at: datetime
    filed_with: str = ""
    filed_by: str = ""
    filed_at: datetime | None = None


class CatalogueState(msgspec.Struct, frozen=True, kw_only=True):
    """What is known of one catalogue after folding its events."""

    kind: Kind
    adjustments: tuple[Adjustment, ...] = ()
    versions: tuple[Version, ...] = ()
    memoranda: tuple[Memorandum, ...] = ()
    approvals: int = 0
    events: int = 0

    @property
    def latest(self) -> Version | None:
        """The newest published version, if any."""
        return self.versions[-1] if self.versions else None

    @property
    def rows(self) -> tuple[Row, ...]:
        """The rows of the newest published version (none before version 1)."""
        return self.versions[-1].rows if self.versions else ()

    def adjustment(self, adjustment_id: str) -> Adjustment:
        """One adjustment by id."""
        for a in self.adjustments:
            if a.id == adjustment_id:
                return a
        raise UnknownAdjustment(f"no adjustment {adjustment_id} in the {labels.CATALOGUE_KIND[self.kind]}",
                                zh=f"{labels.CATALOGUE_KIND[self.kind]}中没有调整申请 {adjustment_id}",
                                adjustment_id=adjustment_id)

    def queue(self) -> list[Adjustment]:
        """Approved, unpublished adjustments, in the order they were approved."""
        return sorted((a for a in self.adjustments if a.status == "approved"), key=lambda a: a.approval)

    def version(self, number: int) -> Version:
        """One published version by number."""
        if 1 <= number <= len(self.versions):
            return self.versions[number - 1]
        raise UnknownVersion(f"the {labels.CATALOGUE_KIND[self.kind]} has no version {number} "
                             f"(published: {len(self.versions)})",
                             zh=f"{labels.CATALOGUE_KIND[self.kind]}没有第 {number} 版"
                                f"（已公布 {len(self.versions)} 版）", kind=self.kind, version=number)

    def check_cited(self, requester: str, assistor: str, item_code: str, version: int, matter_code: str,
                    matter_name: str) -> AssistanceItem:
        """第七条 and 第六条 as a receiver checks a request: the item it cites is in the published version it
        cites, for this requester and assistor and for the 政务服务事项 it names, and an on-site item has a
        filed memorandum between the two.  Returns the item; raises a :class:`CatalogueError`."""
        if not item_code:
            raise NotCatalogued("第七条: the request names no item of the 行政协助目录; "
                                "未纳入行政协助目录的事项不得请求行政协助",
                                zh="第七条：请求未写明行政协助目录中的事项；未纳入行政协助目录的事项不得请求行政协助")
        cited = self.version(version)
        row = next((r for r in cited.rows if r.code == item_code), None)
        if not isinstance(row, AssistanceItem):
            raise NotCatalogued(f"第七条: {item_code} is not in version {version} of the 行政协助事项清单",
                                zh=f"第七条：{item_code} 不在第 {version} 版行政协助事项清单中",
                                item=item_code, version=version)
        if (row.handling_body, row.assisting_body) != (requester, assistor):
            raise NotCatalogued(f"第七条: {item_code} is catalogued for {row.handling_body}→{row.assisting_body}, "
                                f"not {requester}→{assistor}",
                                zh=f"第七条：{item_code} 列入目录的是"
                                   f"{zh_name(row.handling_body)}→{zh_name(row.assisting_body)}，"
                                   f"而不是{zh_name(requester)}→{zh_name(assistor)}", item=item_code, version=version)
        if matter_code != row.service_matter_code and matter_name != row.service_matter_name:
            raise WrongMatter(f"第七条: {item_code} covers {row.service_matter_name} ({row.service_matter_code}), "
                              f"not {matter_name} ({matter_code})",
                              zh=f"第七条：{item_code} 对应的服务事项是{row.service_matter_name}"
                                 f"（{row.service_matter_code}），而不是{matter_name}"
                                 f"（{matter_code}）", item=item_code, version=version)
        if row.on_site and self.memorandum_for(requester, assistor, item_code) is None:
            raise NoMemorandum(f"第六条: {item_code} is on-site assistance; {requester} and {assistor} have filed "
                               f"no memorandum for it",
                               zh=f"第六条：{item_code} 为现场协助；"
                                  f"{zh_name(requester)}与{zh_name(assistor)}"
                                  "未就此备案备忘录", item=item_code, version=version)
        return row

    def memorandum_for(self, requester: str, assistor: str, item_code: str) -> Memorandum | None:
        """The filed memorandum between exactly these two bureaus for this item, if any."""
        for m in self.memoranda:
            if set(m.parties) == {requester, assistor} and m.item_code == item_code:
                return m
        return None


def empty(kind: Kind) -> CatalogueState:
    """A catalogue with nothing applied and nothing published."""
    if kind not in KINDS:
        raise WrongKind(f"unknown catalogue kind {kind!r}; expected one of {', '.join(KINDS)}",
                        zh=f"未知的清单类别 {kind!r}；应为 {'、'.join(KINDS)} 之一")
    return CatalogueState(kind=kind)


def next_adjustment_id(state: CatalogueState) -> str:
    """The id the next adjustment of this catalogue takes."""
    return f"{state.kind}-{len(state.adjustments) + 1:04d}"


def owner_of(row: Row) -> str:
    """The bureau that lists a row and alone may change it."""
    return row.owner if isinstance(row, MatterRow) else row.handling_body


def rows_digest(rows: Iterable[Row]) -> str:
    """SHA-256 of the rows' canonical JSON, as carried by :class:`CataloguePublished`."""
    return hashlib.sha256(msgspec.json.encode(list(rows))).hexdigest()


def exclusion_hits(row: MatterRow) -> list[str]:
    """Why a matter falls under 一(二)'s exclusions: its excluded domains, then keyword hits in its names."""
    hits = [d for d in row.domains if d in EXCLUDED_DOMAINS]
    for text in (row.service_matter_name, row.certificate_name):
        hits += [f"“{text}”含“{k}”" for k in EXCLUDED_KEYWORDS if k in text]
    return hits


def diff_rows(published: Sequence[Row], wanted: Sequence[Row], owner: str) -> tuple[list[Row], list[Row], list[str]]:
    """The ``(adds, replaces, removes)`` that turn ``owner``'s published rows into ``wanted``.

    For a bureau that re-imports its edited spreadsheet: rows are matched by code, and only
    ``owner``'s published rows can be replaced or removed.
    """
    mine = {r.code: r for r in published if owner_of(r) == owner}
    adds = [r for r in wanted if r.code not in mine]
    replaces = [r for r in wanted if r.code in mine and mine[r.code] != r]
    keep = {r.code for r in wanted}
    removes = [code for code in mine if code not in keep]
    return adds, replaces, removes


# -- the fold ------------------------------------------------------------------------


def apply(state: CatalogueState, event: CatalogueEvent, *, actor: str, at: datetime) -> CatalogueState:
    """Fold one more event into the catalogue; raises a :class:`CatalogueError` if it breaks a rule."""
    match event:
        case AdjustmentApplied():
            state = _applied(state, event, actor, at)
        case AdjustmentReviewed():
            state = _reviewed(state, event, actor, at)
        case CataloguePublished():
            state = _published(state, event, actor)
        case CatalogueFiled():
            state = _filed(state, event, actor)
        case MemorandumFiled():
            state = _memorandum(state, event, actor)
        case _:
            raise WrongKind(f"{type(event).__name__} is not a catalogue event",
                            zh=f"{type(event).__name__} 不是清单事件")
    return msgspec.structs.replace(state, events=state.events + 1)


def _applied(state: CatalogueState, ev: AdjustmentApplied, actor: str, at: datetime) -> CatalogueState:
    _same_kind(state, ev.kind)
    expected = next_adjustment_id(state)
    if ev.id != expected:
        raise BadAdjustmentId(f"the next adjustment of the {labels.CATALOGUE_KIND[state.kind]} is {expected}, "
                              f"not {ev.id}",
                              zh=f"{labels.CATALOGUE_KIND[state.kind]}的下一个调整申请编号是 {expected}，"
                                 f"而不是 {ev.id}")
    if actor != ev.applicant:
        raise NotOwner(f"{actor} cannot apply in the name of {ev.applicant}",
                       zh=f"{zh_name(actor)}不能以{zh_name(ev.applicant)}"
                          "的名义申请", actor=actor, applicant=ev.applicant)
    if not ev.basis.strip():
        raise MissingBasis(f"adjustment {ev.id} by {ev.applicant} gives no 依据",
                           zh=f"{zh_name(ev.applicant)}的调整申请 {ev.id} 未写明依据")
    if not (ev.adds or ev.replaces or ev.removes):
        raise EmptyAdjustment(f"adjustment {ev.id} by {ev.applicant} changes nothing",
                              zh=f"{zh_name(ev.applicant)}的调整申请 {ev.id} 没有任何改动")
    rows = [*ev.adds, *ev.replaces]
    # 附件2 第八条: 区司法局 carries out a ruling or decision on a dispute, which may change rows other
    # bureaus list; only then does anyone but the listing bureau change a row.
    by_ruling = ev.applicant == JUSTICE and bool(ev.dispute)
    for row in rows:
        _check_row(state.kind, row, None if by_ruling else ev.applicant)
    _check_exclusions(rows)
    codes = [r.code for r in rows] + list(ev.removes)
    twice = sorted({c for c in codes if codes.count(c) > 1})
    if twice:
        raise DuplicateCode(f"adjustment {ev.id} names {', '.join(twice)} more than once",
                            zh=f"调整申请 {ev.id} 重复列出了 {'、'.join(twice)}", codes=twice)
    published = {r.code: r for r in state.rows}
    for code in [*(r.code for r in ev.replaces), *ev.removes]:
        if code not in published:
            raise NotPublished(f"{code} is not in the published {labels.CATALOGUE_KIND[state.kind]}; "
                               "nothing to replace or remove",
                               zh=f"{code} 不在已公布的{labels.CATALOGUE_KIND[state.kind]}中；无可替换或删除",
                               code=code)
        if owner_of(published[code]) != ev.applicant and not by_ruling:
            raise NotOwner(f"{code} is listed by {owner_of(published[code])}; {ev.applicant} cannot change it",
                           zh=f"{code} 由{zh_name(owner_of(published[code]))}列入；{zh_name(ev.applicant)}不能改动",
                           code=code, owner=owner_of(published[code]), applicant=ev.applicant)
    adjustment = Adjustment(id=ev.id, kind=ev.kind, applicant=ev.applicant, basis=ev.basis, adds=tuple(ev.adds),
                            replaces=tuple(ev.replaces), removes=tuple(ev.removes), applied_at=at,
                            dispute=ev.dispute)
    compose(state.rows, [adjustment])
    return msgspec.structs.replace(state, adjustments=(*state.adjustments, adjustment))


def _reviewed(state: CatalogueState, ev: AdjustmentReviewed, actor: str, at: datetime) -> CatalogueState:
    _same_kind(state, ev.kind)
    _justice(actor, ev.reviewer, "reviews adjustments", "审核调整申请")
    adj = state.adjustment(ev.adjustment_id)
    if adj.status != "pending":
        outcome = {"approved": "已批准", "rejected": "已驳回"}.get(adj.status, adj.status)
        raise AlreadyReviewed(f"adjustment {adj.id} was already reviewed ({adj.status})",
                              zh=f"调整申请 {adj.id} 已审核（{outcome}）", status=adj.status)
    if not ev.approved and not ev.reasons.strip():
        raise MissingReasons(f"rejecting adjustment {adj.id} needs the reasons", zh=f"驳回调整申请 {adj.id} 须写明理由")
    if ev.approved:
        # The published catalogue and the queue may have moved since the application: the
        # adjustment must still fit on top of them, or it would make publishing impossible.
        compose(state.rows, [*state.queue(), adj])
        done = msgspec.structs.replace(adj, status="approved", reviewer=ev.reviewer, reviewed_at=at,
                                       reasons=ev.reasons, approval=state.approvals + 1)
        return _with(state, done, approvals=state.approvals + 1)
    done = msgspec.structs.replace(adj, status="rejected", reviewer=ev.reviewer, reviewed_at=at, reasons=ev.reasons)
    return _with(state, done)


def publisher_of(kind: Kind, version: int) -> str:
    """Who publishes ``version`` of a catalogue (decision 51).

    一(三): 区直部门……编制本系统实行告知承诺制的证明事项清单，区司法局审核后按程序报请由区政府公布实施 — the
    证明事项清单 as first compiled is 区政府's to publish.  一(四): its adjustments are submitted to 区司法局,
    区司法局统一审核公布.  第七条: 区政府授权区司法局发布本区行政协助目录 — every version of the assistance
    catalogue is 区司法局's.
    """
    return DISTRICT_GOVERNMENT if (kind, version) == ("matters", 1) else JUSTICE


def check_publisher(kind: Kind, version: int, actor: str, named: str) -> None:
    """The one entitled publishes ``version``, in its own name."""
    entitled = publisher_of(kind, version)
    if actor != entitled or named != entitled:
        why = ("一(三): 区司法局审核后按程序报请由区政府公布实施" if entitled == DISTRICT_GOVERNMENT
               else "一(四): 区司法局统一审核公布" if kind == "matters"
               else "第七条: 区政府授权区司法局发布本区行政协助目录")
        raise NotPublisher(f"version {version} of the {labels.CATALOGUE_KIND[kind]} is published by {entitled} "
                           f"({why}); not {actor}",
                           zh=f"{labels.CATALOGUE_KIND[kind]}第 {version} 版由{zh_name(entitled)}公布（{why}）；"
                              f"不是{zh_name(actor)}", actor=actor, publisher=entitled)


def _published(state: CatalogueState, ev: CataloguePublished, actor: str) -> CatalogueState:
    _same_kind(state, ev.kind)
    queue = state.queue()
    if not queue:
        raise NothingToPublish(f"no approved adjustment of the {labels.CATALOGUE_KIND[state.kind]} "
                               "waits to be published",
                               zh=f"{labels.CATALOGUE_KIND[state.kind]}没有待公布的已批准调整申请")
    number = len(state.versions) + 1
    check_publisher(state.kind, number, actor, ev.published_by)
    if ev.version != number:
        raise BadPublication(f"the next version of the {labels.CATALOGUE_KIND[state.kind]} is {number}, "
                             f"not {ev.version}",
                             zh=f"{labels.CATALOGUE_KIND[state.kind]}的下一版是第 {number} 版，"
                                f"而不是第 {ev.version} 版")
    ids = [a.id for a in queue]
    if list(ev.adjustments) != ids:
        raise BadPublication(f"version {number} must publish exactly the approved adjustments {ids}, "
                             f"not {list(ev.adjustments)}",
                             zh=f"第 {number} 版须恰好公布已批准的调整申请 {ids}，而不是 {list(ev.adjustments)}")
    rows = compose(state.rows, queue)
    if rows_digest(rows) != ev.digest or len(rows) != ev.rows:
        raise BadPublication(f"version {number}'s digest or row count does not match its adjustments",
                             zh=f"第 {number} 版的摘要或行数与其调整申请不符")
    version = Version(kind=state.kind, number=number, rows=rows, adjustments=tuple(ids), digest=ev.digest,
                      published_by=ev.published_by, published_at=ev.published_at)
    adjustments = tuple(msgspec.structs.replace(a, status="published", version=number) if a.id in ids else a
                        for a in state.adjustments)
    return msgspec.structs.replace(state, versions=(*state.versions, version), adjustments=adjustments)


def _filed(state: CatalogueState, ev: CatalogueFiled, actor: str) -> CatalogueState:
    _same_kind(state, ev.kind)
    _justice(actor, ev.filed_by, "files the catalogues", "报送清单备案")
    if state.kind != "matters":
        raise BadFiling(f"一(四)'s 报市司法局备案 is for the 证明事项清单; the {labels.CATALOGUE_KIND[state.kind]} is "
                        "published by 区司法局 under 区政府's authorization (第七条) and not filed with 市司法局",
                        zh=f"一(四)的报市司法局备案针对证明事项清单；{labels.CATALOGUE_KIND[state.kind]}由区司法局经区政府授权发布（第七条），不报市司法局备案")
    version = state.version(ev.version)
    if ev.filed_with != CITY_JUSTICE:
        raise BadFiling(f"一(四): the catalogue is filed with {CITY_JUSTICE}, not {ev.filed_with}",
                        zh=f"一(四)：清单报{zh_name(CITY_JUSTICE)}备案，而不是 {ev.filed_with}")
    if version.filed_at is not None:
        raise AlreadyFiled(f"version {version.number} of the {labels.CATALOGUE_KIND[state.kind]} was filed at "
                           f"{version.filed_at.isoformat()}",
                           zh=f"{labels.CATALOGUE_KIND[state.kind]}第 {version.number} 版已于 "
                              f"{version.filed_at.isoformat()} 备案")
    filed = msgspec.structs.replace(version, filed_with=ev.filed_with, filed_by=ev.filed_by, filed_at=ev.filed_at)
    versions = tuple(filed if v.number == version.number else v for v in state.versions)
    return msgspec.structs.replace(state, versions=versions)


def _memorandum(state: CatalogueState, ev: MemorandumFiled, actor: str) -> CatalogueState:
    if state.kind != "assistance":
        raise WrongKind("第六条: memoranda belong to the 行政协助事项清单", zh="第六条：备忘录属于行政协助事项清单")
    m = ev.memorandum
    if len(m.parties) != 2 or m.parties[0] == m.parties[1]:
        raise BadMemorandum(f"memorandum {m.id} must be signed by two different bureaus, not {m.parties}",
                            zh=f"备忘录 {m.id} 须由两个不同单位签订，而不是 {m.parties}")
    if actor != ev.filed_by or actor not in m.parties:
        raise NotParty(f"{actor} is not a party to memorandum {m.id} ({'、'.join(m.parties)})",
                       zh=f"{zh_name(actor)}不是备忘录 {m.id} 的签订方（{'、'.join(zh_name(p) for p in m.parties)}）")
    missing = [b for b in (JUSTICE, STAFFING_OFFICE) if b not in m.filed_with]
    if missing:
        raise BadMemorandum(f"第六条: memorandum {m.id} must be filed with {JUSTICE} and {STAFFING_OFFICE}; "
                            f"missing {', '.join(missing)}",
                            zh=f"第六条：备忘录 {m.id} 须报{zh_name(JUSTICE)}和{zh_name(STAFFING_OFFICE)}备案；"
                               f"缺少{'、'.join(zh_name(x) for x in missing)}")
    if not m.text.strip():
        raise BadMemorandum(f"memorandum {m.id} has no text", zh=f"备忘录 {m.id} 没有正文")
    if any(known.id == m.id for known in state.memoranda):
        raise BadMemorandum(f"memorandum {m.id} was already filed", zh=f"备忘录 {m.id} 已备案")
    return msgspec.structs.replace(state, memoranda=(*state.memoranda, m))


def compose(base: Sequence[Row], adjustments: Sequence[Adjustment]) -> tuple[Row, ...]:
    """The rows after applying ``adjustments`` in order; sorted by owner, then 序号."""
    rows: dict[str, Row] = {r.code: r for r in base}
    for adj in adjustments:
        for code in adj.removes:
            if code not in rows:
                raise NotPublished(f"adjustment {adj.id} removes {code}, which is no longer listed",
                                   zh=f"调整申请 {adj.id} 删除 {code}，但该事项已不在清单中", code=code)
            del rows[code]
        for row in adj.replaces:
            if row.code not in rows:
                raise NotPublished(f"adjustment {adj.id} replaces {row.code}, which is no longer listed",
                                   zh=f"调整申请 {adj.id} 替换 {row.code}，但该事项已不在清单中",
                                   code=row.code)
            rows[row.code] = row
        for row in adj.adds:
            if row.code in rows:
                raise DuplicateCode(f"adjustment {adj.id} adds {row.code}, which is already listed",
                                    zh=f"调整申请 {adj.id} 新增 {row.code}，但该事项已在清单中", code=row.code)
            rows[row.code] = row
    out = sorted(rows.values(), key=lambda r: (owner_of(r), r.seq, r.code))
    # 附件8/9 are filled in per 部门, so a 序号 is unique within its bureau's list.
    for a, b in zip(out, out[1:], strict=False):
        if (owner_of(a), a.seq) == (owner_of(b), b.seq):
            raise DuplicateSeq(f"{owner_of(a)} would list 序号 {a.seq} twice ({a.code}, {b.code})",
                               zh=f"{zh_name(owner_of(a))}的序号 {a.seq} 重复（{a.code}、{b.code}）",
                               owner=owner_of(a), seq=a.seq, codes=[a.code, b.code])
    return tuple(out)


@functools.cache
def _registry() -> Registry:
    return Registry.load()


@functools.cache
def _not_district() -> frozenset[str]:
    """Registered bodies that are not 本区行政机关 (第二条): 市司法局, which only receives filings."""
    return frozenset(b.code for b in _registry() if b.kind == "city")


def _check_row(kind: Kind, row: Row, applicant: str | None) -> None:
    """A row's own rules; with ``applicant``, also that it is that bureau's row (None: a dispute's ruling)."""
    wanted = MatterRow if kind == "matters" else AssistanceItem
    if not isinstance(row, wanted):
        raise WrongKind(f"{row.code} is a {type(row).__name__}; the {labels.CATALOGUE_KIND[kind]} "
                        f"holds {wanted.__name__} rows",
                        zh=f"{row.code} 是 {type(row).__name__}；"
                           f"{labels.CATALOGUE_KIND[kind]}只收 {wanted.__name__} 行")
    if applicant is not None and owner_of(row) != applicant:
        raise NotOwner(f"{row.code} is listed by {owner_of(row)}; only that bureau may apply for it, "
                       f"not {applicant}",
                       zh=f"{row.code} 由{zh_name(owner_of(row))}列入；只有该单位可以申请调整，"
                          f"{zh_name(applicant)}不能", code=row.code, owner=owner_of(row), applicant=applicant)
    if isinstance(row, MatterRow):
        methods = list(row.verification_methods)
        if not methods or len(set(methods)) != len(methods) or any(m not in METHODS for m in methods):
            raise BadRow(f"{row.code}: 核查方式 must be one or more of {'、'.join(METHODS)}, each once; "
                         f"got {methods}",
                         zh=f"{row.code}：核查方式应为 {'、'.join(METHODS)} 中的一项或多项，各一次；"
                            f"实为 {methods}", code=row.code)
        return
    if row.handling_body == row.assisting_body:
        raise BadRow(f"{row.code}: a bureau cannot be its own 协助机构",
                     zh=f"{row.code}：单位不能是自己的协助机构", code=row.code)
    for role, code in (("承办机构", row.handling_body), ("协助机构", row.assisting_body)):
        if code in _not_district():
            raise BadRow(f"{row.code}: 第二条: assistance is between 本区行政机关; {code} is not one and cannot be "
                         f"the {role}",
                         zh=f"{row.code}：第二条：行政协助在本区行政机关之间进行；{zh_name(code)}不是本区行政机关，"
                            f"不能作为{role}", code=row.code, field=role)
        if code == DISTRICT_GOVERNMENT:
            raise BadRow(f"{row.code}: 第二条: assistance is between bodies 无隶属关系; {code} acts for 区政府, which "
                         f"every unit of the district belongs to, and cannot be the {role}",
                         zh=f"{row.code}：第二条：行政协助在无隶属关系的机关之间进行；{zh_name(code)}代表区政府，"
                            f"区内各单位均隶属于区政府，不能作为{role}", code=row.code, field=role)
    if _registry().subordinate(row.handling_body, row.assisting_body):
        raise BadRow(f"{row.code}: 第二条: {row.handling_body} and {row.assisting_body} 有隶属关系 (one belongs to the "
                     "other); assistance is between bodies 无隶属关系",
                     zh=f"{row.code}：第二条：{zh_name(row.handling_body)}与{zh_name(row.assisting_body)}有隶属关系；"
                        "行政协助在无隶属关系的机关之间进行", code=row.code, field="协助机构")
    for name, days, most in (("reply_within", row.reply_within, REPLY_DAYS),
                             ("decline_within", row.decline_within, DECLINE_DAYS)):
        if not 1 <= days <= most:
            raise BadDeadline(f"{row.code}: {name} is {days}; 三(二) fixes it at {most} working days "
                              f"(an item may agree a shorter time, never a longer one)",
                              zh=f"{row.code}：{name} 为 {days}；三(二)规定为 {most} 个工作日（事项可约定更短的期限，"
                                 "不得更长）",
                              code=row.code, field=name, value=days)


def _check_exclusions(rows: Sequence[Row]) -> None:
    hits = {r.code: exclusion_hits(r) for r in rows if isinstance(r, MatterRow)}
    bad = {code: h for code, h in hits.items() if h}
    if bad:
        why = "; ".join(f"{code}: {'、'.join(h)}" for code, h in bad.items())
        raise Excluded(f"一(二): these matters are not under the commitment system: {why}",
                       zh=f"一(二)：以下事项不适用告知承诺制：{why}", rows=bad)


def _same_kind(state: CatalogueState, kind: str) -> None:
    if kind != state.kind:
        raise WrongKind(f"a {kind} event cannot change the {labels.CATALOGUE_KIND[state.kind]}",
                        zh=f"{kind} 事件不能改动{labels.CATALOGUE_KIND[state.kind]}")


def _justice(actor: str, named: str, what: str, what_zh: str) -> None:
    if actor != JUSTICE or named != JUSTICE:
        raise NotJustice(f"only {JUSTICE} {what}; not {actor}",
                         zh=f"只有{zh_name(JUSTICE)}{what_zh}；{zh_name(actor)}不能", actor=actor)


def _with(state: CatalogueState, adj: Adjustment, **changes: Any) -> CatalogueState:
    adjustments = tuple(adj if a.id == adj.id else a for a in state.adjustments)
    return msgspec.structs.replace(state, adjustments=adjustments, **changes)
