"""Domain rule errors: one class per rule, each with a stable code."""
from __future__ import annotations

from schemas.errors import XiezhuError


class RuleError(XiezhuError):
    """A command or event that breaks a rule of the procedure."""

    code = "rule"


class NotFirst(RuleError):
    """A case must start with a request, and only once."""

    code = "rule.case-start"


class WrongParty(RuleError):
    """Only the requester asks and withdraws; only the assistor receives, replies and declines."""

    code = "rule.wrong-party"


class WrongOrder(RuleError):
    """The step does not fit the case's current status."""

    code = "rule.order"


class NotYet(WrongOrder):
    """The step needs an earlier event that has not been recorded yet (it may still arrive)."""

    code = "rule.not-yet"


class HashMismatch(RuleError):
    """A reply must carry the hash of the exact request it answers."""

    code = "rule.request-hash"


class ChannelMismatch(RuleError):
    """回复方式应当和提出方式一致: the reply uses the request's channel."""

    code = "rule.channel"


class ItemsMismatch(RuleError):
    """第十条: the assistor answers exactly the items asked, no more and no fewer."""

    code = "rule.items"


class MissingReason(RuleError):
    """附件5 备注: an item that cannot be verified needs the reasons."""

    code = "rule.reason"


class BadRequest(RuleError):
    """The request itself is incomplete or inconsistent."""

    code = "rule.request"


class CreditGate(RuleError):
    """四(二): an applicant with serious bad credit or an unrepaired false commitment must bring the certificate."""

    code = "rule.credit-gate"


class RouteNotOptional(RuleError):
    """附件8 必须实行: the matter takes the commitment route; 可选择 lets the applicant choose."""

    code = "rule.route"


class NotCommitted(RuleError):
    """An item, plan or verification that is not among the applicant's committed items."""

    code = "rule.commitment-items"


class NotFalse(RuleError):
    """三(三): the consequences of a false commitment need a verified false commitment first."""

    code = "rule.not-false"


class Deadline(RuleError):
    """A deadline that is already past, or longer than the rule allows."""

    code = "rule.deadline"


# -- 四(一) 信用修复 / 异议处理 (credit steps of a commitment case) --------------------------------


class CreditRule(RuleError):
    """A credit step (objection, review, rectification, repair) that breaks a rule of its own."""

    code = "rule.credit"


class NoCreditRecord(CreditRule):
    """Objection and repair need a credit record in force: recorded, and neither removed nor repaired."""

    code = "rule.credit.no-record"


class ObjectionOrder(CreditRule):
    """异议: one objection under review at a time; a review only of an objection under review."""

    code = "rule.credit.objection"


class RepairOrder(CreditRule):
    """信用修复: after an ordered rectification is confirmed, one application at a time, then a decision."""

    code = "rule.credit.repair"


# -- 附件2 第八条: disputes between a requester and an assistor --------------------------------------


class DisputeRule(RuleError):
    """A dispute step that breaks a rule of 第八条."""

    code = "rule.dispute"


class NotDisputeParty(DisputeRule):
    """Only the requester and the assistor of the case raise, negotiate and settle; neither is 区司法局."""

    code = "rule.dispute.not-party"


class NotDisputeAuthority(DisputeRule):
    """区司法局 alone keeps the dispute file, takes a dispute up, rules, escalates and records the decision."""

    code = "rule.dispute.not-sifa"


class DisputeCaseMismatch(DisputeRule):
    """A dispute names its assistance case as it is: its number and its requester and assistor."""

    code = "rule.dispute.case"


class DisputeOrder(DisputeRule):
    """协商 first; 协商不成 before 区司法局 takes it up; a ruling or an escalation, and a decision only after one."""

    code = "rule.dispute.order"


class DisputeClosed(DisputeOrder):
    """A dispute settled, ruled or decided takes no further step."""

    code = "rule.dispute.closed"


class MissingCoDecider(DisputeRule):
    """会同区委编办: a ruling names 区司法局 and 区委编办 among its deciders; both ask 区政府 to decide."""

    code = "rule.dispute.co-deciders"


class CatalogueAmendment(DisputeRule):
    """A ruling that amends the catalogue names its adjustment; a decision is 纳入行政协助目录 through one."""

    code = "rule.dispute.amendment"


class InvalidDispute(DisputeRule):
    """A dispute payload that does not match its schema (a length, a pattern, a list)."""

    code = "rule.dispute.invalid"
