"""The one table of 中文 labels for xiezhu's stable English identifiers.

Code and JSON speak the identifiers (``"unverifiable"``); people read the labels (``无法证实``).
Each table maps every value of one identifier vocabulary to its label, as the policy words it;
``docs/glossary.md`` lists the same pairs with a line of meaning each, and a test keeps the two
in step.  Data only: no imports of the rest of xiezhu, no functions.
"""
from __future__ import annotations

#: 三(二): what an assisting bureau's 回复函 says of one committed item (``schemas.assistance.Verdict``).
VERDICT: dict[str, str] = {
    "true": "真实",
    "false": "虚假",
    "unverifiable": "无法证实",
}

#: 附件4/5: how a 行政协助函 travels (``schemas.assistance.Channel``).
CHANNEL: dict[str, str] = {
    "platform": "政务信息资源共享交换平台",
    "letter": "工作人员持书面协助函",
}

#: 四(二): an applicant's credit standing (``schemas.commitment.Standing``).
STANDING: dict[str, str] = {
    "good": "信用良好",
    "serious-bad-credit": "有较严重不良信用记录",
    "unrepaired-false-commitment": "曾作出虚假承诺且未完成信用修复",
}

#: 三(一): how one committed item is verified (``schemas.commitment.Method``).
METHOD: dict[str, str] = {
    "online": "在线核查",
    "assistance": "部门间行政协助",
    "on-site": "现场核查",
}

#: 第八条: how a party's negotiation note leaves the negotiation (``schemas.dispute.Outcome``).
NEGOTIATION: dict[str, str] = {
    "continuing": "协商中",
    "failed": "协商不成",
}

#: 第八条: where a dispute stands (``DisputeState.step``: its status, or ``negotiation-failed``).
DISPUTE_STEP: dict[str, str] = {
    "negotiating": "协商中",
    "negotiation-failed": "协商不成",
    "settled": "协商解决",
    "referred": "区司法局研究中",
    "ruled": "已研究确定",
    "escalated": "已提请区政府决定",
    "decided": "区政府已决定",
    "catalogued": "区政府决定已纳入目录",
}

#: 附件8 / 附件9: the two catalogues (``schemas.catalogue.Kind``).
CATALOGUE_KIND: dict[str, str] = {
    "matters": "证明事项清单",
    "assistance": "行政协助事项清单",
}

#: `projections.sla` ``STATES``: where a request stands against its working-day deadline.
SLA_STATE: dict[str, str] = {
    "in-transit": "在途",
    "on-time": "办理中",
    "due-soon": "即将到期",
    "due-today": "今日到期",
    "overdue": "逾期未答复",
    "answered-on-time": "已按期答复",
    "answered-late": "逾期答复",
    "declined-on-time": "已按期告知不能协助",
    "declined-late": "逾期告知不能协助",
    "withdrawn": "已撤回",
}

#: ``CaseState.status``: an assistance request's lifecycle.
REQUEST_STATUS: dict[str, str] = {
    "requested": "已发出",
    "received": "已收到",
    "replied": "已答复",
    "declined": "已告知不能协助",
    "withdrawn": "已撤回",
}

#: ``CommitmentState.status``: where a commitment case stands.
CASE_STATUS: dict[str, str] = {
    "applied": "已受理",
    "certificate-required": "须提交证明",
    "noticed": "已告知",
    "committing": "选择承诺",
    "signed": "已承诺",
    "approved": "已批准",
    "closed": "已办结",
    "false-commitment": "虚假承诺",
    "terminated": "已终止办理",
    "revoked": "已撤销",
}

#: ``CommitmentState.outcomes``: what 三(三) made of a false commitment.
CONSEQUENCE: dict[str, str] = {
    "terminated": "终止办理",
    "rectification-ordered": "责令限期整改",
    "revoked": "撤销行政决定",
    "penalty": "行政处罚",
    "credit-recorded": "计入信用记录",
    "referred": "移送司法机关",
    "supervisor-notified": "推送监管部门",
}

#: ``schemas.commitment.CreditStatus``: where an applicant's credit record stands.
CREDIT_STATUS: dict[str, str] = {
    "none": "无信用记录",
    "recorded": "已计入信用记录",
    "under-objection": "异议审核中",
    "corrected": "已更正",
    "removed": "已删除",
    "repaired": "已信用修复",
}

#: `projections.credit` ``HISTORY_STEPS``: the steps of an applicant's credit history.
CREDIT_STEP: dict[str, str] = {
    "found-false": "认定虚假承诺",
    "rectification-ordered": "责令限期整改",
    "rectified": "已整改",
    "credit-recorded": "计入信用记录",
    "credit-objection": "提出异议",
    "credit-objection-reviewed": "异议审核",
    "credit-repair-applied": "申请信用修复",
    "credit-repair-approved": "准予信用修复",
    "credit-repair-rejected": "不予信用修复",
}

#: The 信用中国 outbox: what a record tells 信用中国 (``kind``) …
CREDIT_PUSH: dict[str, str] = {
    "recorded": "新增失信记录",
    "corrected": "更正记录",
    "removed": "删除记录",
    "repaired": "信用修复",
}

#: … and whether it has been delivered (``status``).
PUSH_STATUS: dict[str, str] = {
    "pending": "待报送",
    "delivered": "已报送",
}

#: `agencies.trust.trust_list.KeyState`: a signing key of the trust list, now.
KEY_STATE: dict[str, str] = {
    "valid": "有效",
    "expiring": "有效（定期失效）",
    "expired": "已失效",
    "revoked": "已吊销",
    "not-yet-valid": "尚未生效",
}

#: `broker.intake` ``REASONS``: why a receiver rejected a message (a dead letter).
DEAD_LETTER_REASON: dict[str, str] = {
    "unsigned": "无签名",
    "unknown-key": "未知密钥",
    "bad-signature": "签名无效",
    "key-not-valid": "密钥不在有效期",
    "wrong-sender": "发送方不符",
    "wrong-recipient": "接收方不符",
    "not-sealed": "未加密",
    "cannot-open": "无法解密",
    "malformed": "格式错误",
    "oversized": "超出大小限制",
    "duplicate": "重复事件",
    "rule-violation": "违反办理规则",
    "handler-failed": "多次处理失败",
}

#: `aggregates.errors`: the rule of the procedure a signed event broke (``RuleError.code``), as a
#: history line names it to a person; the English message keeps the detail.
RULE: dict[str, str] = {
    "rule": "违反办理规则",
    "rule.case-start": "案件应当以请求开始，且只能开始一次",
    "rule.wrong-party": "无权办理此步骤的机关",
    "rule.order": "步骤与案件当前状态不符",
    "rule.not-yet": "所需的前一步骤尚未记录",
    "rule.request-hash": "回复所附请求摘要与原请求不符",
    "rule.channel": "回复方式与提出方式不一致",
    "rule.items": "回复事项与请求事项不一致（第十条）",
    "rule.reason": "无法核实的事项未说明理由",
    "rule.request": "请求不完整或前后矛盾",
    "rule.credit-gate": "申请人信用状况不适用告知承诺，应当提交证明",
    "rule.route": "该事项必须实行告知承诺",
    "rule.commitment-items": "不属于申请人承诺的事项",
    "rule.not-false": "尚未查实虚假承诺",
    "rule.deadline": "期限已过或超出规定期限",
    "rule.credit": "信用记录步骤不符合规则",
    "rule.credit.no-record": "没有有效的信用记录",
    "rule.credit.objection": "异议办理顺序不符",
    "rule.credit.repair": "信用修复顺序不符",
    "rule.dispute": "争议步骤不符合第八条",
    "rule.dispute.not-party": "非争议当事机关",
    "rule.dispute.not-sifa": "此步骤只能由区司法局办理",
    "rule.dispute.case": "争议所涉案件与原案件不符",
    "rule.dispute.order": "争议处理顺序不符",
    "rule.dispute.closed": "争议已办结，不得再有步骤",
    "rule.dispute.co-deciders": "裁定未会同区委编办",
    "rule.dispute.amendment": "调整目录的裁定未注明调整事项",
    "rule.dispute.invalid": "争议内容不符合格式要求",
}

#: `projections.history.Kind`: what kind of case a history, replay or bundle is of.
CASE_KIND: dict[str, str] = {
    "assistance": "行政协助",
    "commitment": "告知承诺",
    "dispute": "争议",
    "list": "清单公布",
}

#: Every table above by its name, as docs/glossary.md names them.
TABLES: dict[str, dict[str, str]] = {
    "VERDICT": VERDICT,
    "CHANNEL": CHANNEL,
    "STANDING": STANDING,
    "METHOD": METHOD,
    "NEGOTIATION": NEGOTIATION,
    "DISPUTE_STEP": DISPUTE_STEP,
    "CATALOGUE_KIND": CATALOGUE_KIND,
    "SLA_STATE": SLA_STATE,
    "REQUEST_STATUS": REQUEST_STATUS,
    "CASE_STATUS": CASE_STATUS,
    "CONSEQUENCE": CONSEQUENCE,
    "CREDIT_STATUS": CREDIT_STATUS,
    "CREDIT_STEP": CREDIT_STEP,
    "CREDIT_PUSH": CREDIT_PUSH,
    "PUSH_STATUS": PUSH_STATUS,
    "KEY_STATE": KEY_STATE,
    "DEAD_LETTER_REASON": DEAD_LETTER_REASON,
    "RULE": RULE,
    "CASE_KIND": CASE_KIND,
}
