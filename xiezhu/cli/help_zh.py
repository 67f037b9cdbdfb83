"""The 中文 help of every ``xiezhu`` command and option, by stable id (see :mod:`xiezhu.cli.helptext`).

Ids: a command's path (``"sla stats"``, the root ``"xiezhu"``); an option, the path and its first
long name (``"sla stats --csv"``); an argument, the path and its name in capitals (``"letter NUMBER"``).
The English texts are the code's own docstrings and ``help=``; examples are taken from them.
Data only.  Where an option recurs with the same meaning, its text is one constant below.
"""
from __future__ import annotations

#: Typer's own words on a help screen (``typer.rich_utils``), in 中文.
TYPER_WORDS: dict[str, str] = {
    "ARGUMENTS_PANEL_TITLE": "参数",
    "OPTIONS_PANEL_TITLE": "选项",
    "COMMANDS_PANEL_TITLE": "命令",
    "ERRORS_PANEL_TITLE": "错误",
    "DEFAULT_STRING": "[默认：{}]",
    "ENVVAR_STRING": "[环境变量：{}]",
    "REQUIRED_LONG_STRING": "[必填]",
    "DEPRECATED_STRING": "（已弃用）",
    "ABORTED_TEXT": "已中止。",
    "RICH_HELP": "用 [blue]'{command_path} {help_option}'[/] 查看帮助。",
}

#: Click's ``--help`` of every command.
HELP_OPTION = "显示本帮助并退出。"

JSON = "输出 JSON，而非表格。"
JSON_ONLY = "输出 JSON。"
YOUR_BUREAU = "本部门：代码、名称或其中唯一的一部分（shenpi、审批）。"
CASE_NO = "告知承诺案件编号，如 C20260001。"
CREDIT_CASE_NO = "告知承诺案件编号，如 C20260012。"
DISPUTE_NO = "争议编号，如 D20260001。"
RAISED_BY = "提出争议的部门（编号重复时指明）。"
BUREAU_CODE = "部门代码，如 gongan。"
KIND = "matters（附件8，证明事项清单）或 assistance（附件9，行政协助事项清单）。"
LEGAL_REASON = "法律依据（全文）。"
OPERATOR = "查看或经办的人（默认：登录名）。"
RECORD_BUREAU = "作出该信用记录的部门（本部门）。"
REVEAL = ("完整显示申请人姓名、证件号码和承诺内容：仅限本机持有解密密钥时，须同时给出 --reason，"
          "并记入查阅记录。")
REVEAL_REASON = "为何需要查看完整信息（记入查阅记录）。"
REQUESTER_CLASH = "请求部门（文号重复时指明）。"
REQUESTER_OR_HANDLER = "请求部门 / 承办部门。"
PARTY = "当事一方（本部门）：请求部门或协助部门。"
LETTER_OR_CASE = "函件文号（20260001）或告知承诺案件编号（C20260001）。"
VERDICT = "true、false 或 unverifiable（真实 / 虚假 / 无法证实）。"
CSV = "将表格写为 CSV 文件（UTF-8 带 BOM，Excel 可直接打开）；- 表示标准输出。"
XLSX = "将表格写为 XLSX 工作簿。"
APPLIED_ON = "申请人提出申请的日期（默认：今天）。"
APPLICANT_ID = "申请人的身份证件号码或统一社会信用代码。"
RECORD_KIND = "记录种类（一个部门有多种记录时指明）。"
ITEM = "承诺事项的序号。"
ASSISTOR = "协助部门（本部门）：代码或名称。"
ORGANISATION = "申请人是法人或其他组织。"
OPS_PORT = "在此端口提供 /healthz、/readyz 和 /metrics。"
OPS_HOST = "运维端点的监听地址。"
UNLESS_TRUE = "结果不是“真实”时必填。"
NOW = ("以此 ISO 时间判断未办结的请求（不带时区按 Asia/Shanghai）。默认：系统时钟；"
       "演示数据则取演示账本的最后时间。")
PERIOD_FROM = "统计期第一天（ISO 日期）。"
PERIOD_TO = "统计期最后一天（ISO 日期，含当天）。"
REQUEST_NO = "请求的文号。"
CHECKPOINT = ("将账本当前末端签为区司法局的检查点（为比上一个检查点更新的案件生成证据包时用）。\n\n"
              "账本服务每 1000 条、有新条目时每 10 秒及停止时各签一次，并发布供各部门见证；"
              "本命令在持有区司法局密钥的机器上立即签一次。"
              "（旧名 ``xiezhu seal`` 仍可用。）")

ZH: dict[str, str] = {
    # -- the root ------------------------------------------------------------------------------
    "xiezhu": "xiezhu —— 部门间行政协助的签名、事件溯源消息系统，附区司法局账本。",
    "xiezhu --data-dir": "所有命令共用的数据目录。",
    "xiezhu --nats-url": "使用此 NATS 服务器，而不启动内置的 nats-server。",
    "xiezhu --lang": "zh（默认）或 en：帮助、表格、状态等给人看的文字所用的语言。",
    "xiezhu --database-url": ("postgresql://…：各部门的存储放在该 PostgreSQL 中（各占一个 schema），"
                              "而不用 SQLite 文件。"),
    "xiezhu --log-json": "长期运行的服务每行输出一个 JSON 对象作为日志。",

    # -- cases, letters, the inbox (xiezhu/cli/cases.py) ---------------------------------------
    "access-log": "本机每一次完整显示个人信息（--reveal）的记录：谁、何时、看了什么、为什么。",
    "access-log --json": JSON,
    "answer": "答复收件箱中的请求（回复函）；由运行中的部门代理发出。",
    "answer NUMBER": "请求的文号，如 20260001。",
    "answer --bureau": ASSISTOR,
    "answer --item": "N=true|false|unverifiable[:理由]；每个事项一次。",
    "answer --operator": OPERATOR,
    "answer --from": REQUESTER_CLASH,
    "bureaus": "参与部门（附件1）及其代码、简称。",
    "bureaus --json": JSON,
    "disclosed": "二(四)：公开告知承诺书的事项中已签署的承诺书，供区级部门向社会公开（申请人姓名与证件号码遮蔽）。",
    "disclosed --bureau": "只看此承办部门的承诺书：代码、名称或其中唯一的一部分（shenpi、审批）。",
    "disclosed --json": JSON,
    "disclosed --csv": CSV,
    "disclosed --xlsx": XLSX,
    "government": "区政府通过区政府办公室作出的行为，由区政府办公室签名：公布证明事项清单、第十二条通报批评。",
    "government publish": "一(三)：区司法局审核后，由区政府公布证明事项清单；区政府办公室签名后送区司法局。",
    "government criticise": "附件2 第十二条：区政府对部门予以教育或通报批评，并责令其限期改正。",
    "government criticise BUREAU": "被批评的部门（代码、名称或简称）。",
    "government criticise --request": "所涉行政协助请求，写作 请求部门/文号；可重复。",
    "government criticise --reasons": "该部门违反本办法的情形。",
    "government criticise --correct-by": "责令其限期改正：改正期限，YYYY-MM-DD。",
    "government criticise --measure": "通报批评（criticism）或教育（education）。",
    "cases": "告知承诺案件及其所处环节或结果（取自账本）。",
    "cases --bureau": "只看此承办部门的案件：代码、名称或其中唯一的一部分（shenpi、审批）。",
    "cases --json": JSON,
    "decline": "书面告知不能协助，并说明理由。",
    "decline NUMBER": REQUEST_NO,
    "decline --bureau": ASSISTOR,
    "decline --reason": "书面告知的理由（书面告知并说明理由）。",
    "decline --operator": OPERATOR,
    "decline --from": REQUESTER_CLASH,
    "history": "案件经过（仅凭账本）：谁向谁请求了什么、每次答复、每个环节，以及发现的问题。",
    "history NUMBER": LETTER_OR_CASE,
    "history --from": REQUESTER_OR_HANDLER,
    "history --json": JSON,
    "history --reveal": REVEAL,
    "history --reason": REVEAL_REASON,
    "history --operator": OPERATOR,
    "inbox": ("待经办人答复的行政协助请求。\n\n"
              "申请人信息已遮蔽；确需查看的经办人可用 --reveal --reason 完整显示"
              "（本部门存储密钥所在的机器才能打开，查阅记录会记下）。"),
    "inbox --bureau": "要查看其收件箱的部门：代码、名称或其中唯一的一部分（ziran、自然资源）。",
    "inbox --json": JSON,
    "inbox --reveal": REVEAL,
    "inbox --reason": REVEAL_REASON,
    "inbox --operator": OPERATOR,
    "letter": ("案件的函件（附件4–7、不予协助告知书、各项后果通知书）：文本、DOCX 或 PDF。\n\n"
               "文件按经办人归档的方式命名：20260007-行政协助函（一）.docx、C20260001-承诺告知书.pdf。"),
    "letter NUMBER": LETTER_OR_CASE,
    "letter --from": REQUESTER_OR_HANDLER,
    "letter --format": "txt、docx（可在 WPS / Word 中编辑）或 pdf。",
    "letter --out": "每封函件写成一个文件放在此目录（docx / pdf 默认：当前目录）。",
    "letter --json": JSON,

    # -- the clerk's steps (xiezhu/cli/clerk.py) -----------------------------------------------
    "case": "承办部门的告知承诺案件，逐步办理。",
    "case approve": "依承诺作出审批决定（核查之前或之后）。",
    "case approve NUMBER": CASE_NO,
    "case approve --bureau": YOUR_BUREAU,
    "case approve --decision-no": "决定文号，如 台审批许〔2026〕1号。",
    "case approve --json": JSON,
    "case choose": "可选择实行的事项：申请人选择承诺，或改为提交证明。",
    "case choose NUMBER": CASE_NO,
    "case choose --bureau": YOUR_BUREAU,
    "case choose --route": "commitment（承诺）或 certificate（提交证明）。",
    "case choose --json": JSON,
    "case commit": "申请人签署申请人承诺书（附件7）；可选择事项须先 `case choose --route commitment`。",
    "case commit NUMBER": CASE_NO,
    "case commit --bureau": YOUR_BUREAU,
    "case commit --signed-on": "签署日期（默认：今天）。",
    "case commit --json": JSON,
    "case conclude": "每个事项都有核查结论后结束核查；有虚假事项的，记录虚假承诺（三(三)）。",
    "case conclude NUMBER": CASE_NO,
    "case conclude --bureau": YOUR_BUREAU,
    "case conclude --json": JSON,
    "case licence-returned": "附件6：撤销后许可证件原件已交回（应于撤销之日起2日内）。",
    "case licence-returned NUMBER": CASE_NO,
    "case licence-returned --bureau": YOUR_BUREAU,
    "case licence-returned --at": "交回时间（默认：现在），如 2026-09-30T10:00。",
    "case licence-returned --note": "备注。",
    "case licence-returned --json": JSON,
    "case notice": "向申请人出具承诺告知书（附件6）。",
    "case notice NUMBER": CASE_NO,
    "case notice --bureau": YOUR_BUREAU,
    "case notice --json": JSON,
    "case notify": ("附件6：将虚假承诺推送监管部门予以惩处。\n\n"
                    "信用中国的记录已随虚假承诺的认定一并作出（三(三)）；本命令以签名消息告知监管部门。"),
    "case notify NUMBER": CASE_NO,
    "case notify --bureau": YOUR_BUREAU,
    "case notify --department": "监管部门的代码，如 shichang。",
    "case notify --legal-reason": LEGAL_REASON,
    "case notify --json": JSON,
    "case open": "为已公布的附件8清单中的事项立告知承诺案件；由信用情况决定能否适用承诺（四(二)）。",
    "case open --bureau": YOUR_BUREAU,
    "case open --matter": "事项在已公布附件8清单中的编码，如 ZM-shenpi-0001。",
    "case open --applicant-name": "申请人。",
    "case open --applicant-id": APPLICANT_ID,
    "case open --item": "一项承诺：内容[|核查项[|键=值;…]]，每项一次。",
    "case open --organisation": ORGANISATION,
    "case open --applied-on": APPLIED_ON,
    "case open --json": JSON,
    "case penalise": "记录对虚假承诺作出的行政处罚。",
    "case penalise NUMBER": CASE_NO,
    "case penalise --bureau": YOUR_BUREAU,
    "case penalise --penalty": "作出的处罚。",
    "case penalise --legal-reason": LEGAL_REASON,
    "case penalise --json": JSON,
    "case plan": "核查计划：每个承诺事项以何种方式、在何日前核查（三(一)）。\n\n未给日期的事项，10 日内核查。",
    "case plan NUMBER": CASE_NO,
    "case plan --bureau": YOUR_BUREAU,
    "case plan --item": "N=online|assistance|on-site[:说明][@日期]，或 N=exempt；每个承诺事项一次。",
    "case plan --json": JSON,
    "case rectified": "确认已整改，附整改证据。",
    "case rectified NUMBER": CASE_NO,
    "case rectified --bureau": YOUR_BUREAU,
    "case rectified --evidence": "证明已整改的材料。",
    "case rectified --json": JSON,
    "case rectify": "责令限期整改，指明期限。",
    "case rectify NUMBER": CASE_NO,
    "case rectify --bureau": YOUR_BUREAU,
    "case rectify --by": "整改期限，如 2026-10-30。",
    "case rectify --legal-reason": LEGAL_REASON,
    "case rectify --json": JSON,
    "case refer": "将虚假承诺移送监管部门或司法机关。",
    "case refer NUMBER": CASE_NO,
    "case refer --bureau": YOUR_BUREAU,
    "case refer --to": "移送给谁（监管部门、公安机关 …）。",
    "case refer --legal-reason": LEGAL_REASON,
    "case refer --json": JSON,
    "case refuse-disclosure": "二(四)：申请人不同意公开承诺内容，须提交证明。",
    "case refuse-disclosure NUMBER": CASE_NO,
    "case refuse-disclosure --bureau": YOUR_BUREAU,
    "case refuse-disclosure --json": JSON,
    "case revoke": "三(三) 审批之后：撤销行政决定；许可证件应于2日内交回（附件6）。",
    "case revoke NUMBER": CASE_NO,
    "case revoke --bureau": YOUR_BUREAU,
    "case revoke --legal-reason": LEGAL_REASON,
    "case revoke --json": JSON,
    "case show": ("本部门存储中的一个告知承诺案件（申请人已遮蔽）：所处环节、承诺事项、后果和行政协助请求；"
                  "--json 输出完整状态。"),
    "case show --json": JSON,
    "case show NUMBER": CASE_NO,
    "case show --bureau": YOUR_BUREAU,
    "case supervise": "三(三) 事中事后监管：审批之后的监管对某一承诺事项的发现。",
    "case supervise NUMBER": CASE_NO,
    "case supervise --bureau": YOUR_BUREAU,
    "case supervise --item": ITEM,
    "case supervise --verdict": VERDICT,
    "case supervise --way": "发现的方式：双随机、一公开，重点监管，互联网＋监管，或智慧监管。",
    "case supervise --reason": UNLESS_TRUE,
    "case supervise --json": JSON,
    "case terminate": "三(三) 作出决定之前：对虚假承诺终止办理。",
    "case terminate NUMBER": CASE_NO,
    "case terminate --bureau": YOUR_BUREAU,
    "case terminate --legal-reason": LEGAL_REASON,
    "case terminate --json": JSON,
    "case verify": "记录一个事项的核查结果：在线核查，或依行政协助的回复（现场核查用 `xiezhu onsite`）。",
    "case verify NUMBER": CASE_NO,
    "case verify --bureau": YOUR_BUREAU,
    "case verify --item": ITEM,
    "case verify --verdict": VERDICT,
    "case verify --online": "在本系统中在线核查（电子证照库 …）。",
    "case verify --assistance": "依此文号协助函的回复。",
    "case verify --reason": UNLESS_TRUE,
    "case verify --json": JSON,
    "case withdraw": "二(三)：申请人在作出决定前中途退出承诺方式。",
    "case withdraw NUMBER": CASE_NO,
    "case withdraw --bureau": YOUR_BUREAU,
    "case withdraw --reason": "申请人退出承诺方式的原因。",
    "case withdraw --json": JSON,
    "forward": "第五条：向保存改革前档案的机构询问；之后代其答复。",
    "forward NUMBER": REQUEST_NO,
    "forward --bureau": YOUR_BUREAU,
    "forward --institution": "保存改革前档案的机构（第五条）。",
    "forward --note": "向其询问的内容。",
    "forward --from": REQUESTER_CLASH,
    "onsite": "第六条：记录由两名以上工作人员对一个承诺事项进行的现场核查。",
    "onsite NUMBER": CASE_NO,
    "onsite --bureau": YOUR_BUREAU,
    "onsite --item": "现场核查的承诺事项。",
    "onsite --verdict": "true（真实）、false（虚假）或 unverifiable（无法证实）。",
    "onsite --officer": "每一名到场的工作人员（至少两名）。",
    "onsite --reason": "发现的情况（结果不是“真实”时必填）。",
    "onsite --json": JSON,
    "request": "为清单中的协助事项发出行政协助函（附件4）；不在清单中的，存储之前即被拒绝。",
    "request --bureau": YOUR_BUREAU,
    "request --to": "被请求协助的部门（协助机构）：代码或名称。",
    "request --catalogue-item": "已公布的附件9清单中的事项（第七条）：只能请求清单中的事项。",
    "request --case": "申请人、事项和承诺内容取自此告知承诺案件（C20260001）。",
    "request --items": "与 --case 同用：只请求这些事项，如 1,2。",
    "request --applicant-name": "申请人（不用 --case 时）。",
    "request --applicant-id": APPLICANT_ID,
    "request --organisation": ORGANISATION,
    "request --matter-code": "政务服务事项编码（不用 --case 时）。",
    "request --matter-name": "政务服务事项名称（不用 --case 时）。",
    "request --item": "一项待核查的承诺：内容[|核查项[|键=值;…]]，每项一次（不用 --case 时）。",
    "request --applied-on": APPLIED_ON,
    "request --channel": "platform（协助函（一））或 letter（协助函（二），须两个 --staff）。",
    "request --staff": "协助函（二）：派出的两名工作人员，各一次。",
    "request --json": JSON,
    "withdraw": "撤回本部门发出、尚未办结的请求。",
    "withdraw NUMBER": "本部门请求的文号，如 20260001。",
    "withdraw --bureau": YOUR_BUREAU,
    "withdraw --reason": "不再需要答复的原因。",

    # -- catalogues (xiezhu/cli/catalogue.py) --------------------------------------------------
    "catalogue": "附件8（证明事项）和附件9（行政协助事项）两个清单。",
    "catalogue adjustments": "待审核或待公布的动态调整。",
    "catalogue adjustments --json": JSON,
    "catalogue apply": "依电子表格申请动态调整：与本部门已公布各行的差异。",
    "catalogue apply FILE": "本部门填好的 .csv 或 .xlsx。",
    "catalogue apply --bureau": "申请调整的部门（只含其本部门的行）：代码或名称。",
    "catalogue apply --basis": "调整的依据（一(四)）。",
    "catalogue apply --kind": KIND,
    "catalogue export": ("按附件8 / 附件9 导出清单：XLSX 按附件原样排版（标题、部门名称（公章）、填报人、联系电话、"
                         "两行表头及必须实行 / 可选择勾选列、填写说明行），或 CSV。"),
    "catalogue export FILE": "要写的 .csv 或 .xlsx 文件。",
    "catalogue export --kind": KIND,
    "catalogue export --bureau": "只导出此部门的行（单独一张表）：代码或名称。",
    "catalogue export --filler": "XLSX 部门名称行上的填报人。",
    "catalogue export --phone": "XLSX 部门名称行上的联系电话。",
    "catalogue memorandum": "第六条：备案两个部门为现场协助签订的备忘录（或第十一条的协议）。",
    "catalogue memorandum --item": "现场协助事项的编码。",
    "catalogue memorandum --parties": "请求部门和协助部门。",
    "catalogue memorandum --text": "两个部门约定的内容。",
    "catalogue memorandum --signed-on": "签订日期，如 2026-09-01。",
    "catalogue memorandum --form": "备忘录或协议。",
    "catalogue publish": ("区司法局将所有已批准的调整作为新版本公布（证明事项清单并报市司法局备案）；"
                          "证明事项清单的第一版由区政府公布（xiezhu government publish）。"),
    "catalogue publish --kind": KIND,
    "catalogue publish --file": "同时记录报市司法局备案。",
    "catalogue review": "区司法局批准或驳回（说明理由）一项调整。",
    "catalogue review ADJUSTMENT": "调整的编号。",
    "catalogue review --approve": "审核决定。",
    "catalogue review --reasons": "驳回时必填。",
    "catalogue show": "已公布的附件8 / 附件9 清单（含备注）：最新版本或任一早先版本。",
    "catalogue show --kind": KIND,
    "catalogue show --version": "早先的某一版本（默认：最新版本）。",
    "catalogue show --json": JSON,
    "catalogue versions": "每一个已公布版本：何时、由谁、含哪些调整，以及报市司法局备案情况。",
    "catalogue versions --kind": KIND,
    "catalogue versions --json": JSON,

    # -- credit (xiezhu/cli/credit.py) ---------------------------------------------------------
    "credit": "申请人的信用情况（四(二)）及报送信用中国的待发记录。",
    "credit approve-repair": "批准信用修复：申请人的信用情况自即时起恢复。",
    "credit approve-repair NUMBER": CREDIT_CASE_NO,
    "credit approve-repair --bureau": RECORD_BUREAU,
    "credit approve-repair --reasons": "批准修复的理由。",
    "credit object": "记录申请人对信用记录提出的异议；由作出记录的部门审核。",
    "credit object NUMBER": CREDIT_CASE_NO,
    "credit object --bureau": RECORD_BUREAU,
    "credit object --grounds": "申请人的异议理由。",
    "credit outbox": "报送信用中国的信用记录及其报送状态（申请人已遮蔽）。",
    "credit outbox --status": "只看待报送（pending）或已报送（delivered）的记录。",
    "credit outbox --json": JSON,
    "credit push": "将待报送记录报送信用中国；失败的仍为待报送并记下错误，下次再送。",
    "credit push --url": "将每条记录以 JSON POST 到此信用中国接口。",
    "credit push --dir": "将每条记录写成一个 JSON 文件放在此目录（默认：DATA_DIR/credit-china）。",
    "credit push --timeout": "每个 HTTP 请求的秒数上限。",
    "credit push --limit": "一次最多报送的条数。",
    "credit reject-repair": "不予信用修复，并说明理由。",
    "credit reject-repair NUMBER": CREDIT_CASE_NO,
    "credit reject-repair --bureau": RECORD_BUREAU,
    "credit reject-repair --reasons": "不予修复的理由。",
    "credit repair": "记录申请人的信用修复申请（在完成责令的整改之后）。",
    "credit repair NUMBER": CREDIT_CASE_NO,
    "credit repair --bureau": RECORD_BUREAU,
    "credit repair --evidence": "申请人完成整改的证明（整改证明）。",
    "credit review": "审核异议：维持、更正或删除该记录。",
    "credit review NUMBER": CREDIT_CASE_NO,
    "credit review --bureau": RECORD_BUREAU,
    "credit review --outcome": "confirm（维持）、correct（更正）或 remove（删除）。",
    "credit review --reasons": "审核理由。",
    "credit review --record": "更正后的记录内容（correct 时）。",
    "credit show": "申请人的信用情况、能否适用告知承诺、其案件和信用记录。",
    "credit show APPLICANT": "申请人的身份证件号码或统一社会信用代码。",
    "credit show --at": "查看此时刻的信用情况（ISO；不带时区按 Asia/Shanghai）。",
    "credit show --json": JSON,

    # -- dead letters (xiezhu/cli/deadletters.py) ----------------------------------------------
    "dead-letters": "拒收消息，从早到晚：谁拒收了什么、为什么，以及它自称来自谁。",
    "dead-letters --receiver": "只看此接收方拒收的（部门代码，或 ledger）。",
    "dead-letters --reason": ("只看此原因：unsigned、unknown-key、bad-signature、key-not-valid、wrong-sender、"
                              "wrong-recipient、not-sealed、cannot-open、malformed、oversized、duplicate、"
                              "rule-violation、handler-failed。"),
    "dead-letters --after": "只看此序号之后的拒收消息。",
    "dead-letters --limit": "最多显示的条数。",
    "dead-letters --json": JSON,
    "dead-letters show": "一条拒收消息的全文：消息头，以及遮蔽了申请人个人信息的消息体。",
    "dead-letters show SEQ": "拒收消息的序号（见列表）。",
    "dead-letters show --full": "显示整个消息体，而不只是前 8192 字节。",
    "dead-letters show --json": JSON,

    # -- disputes (xiezhu/cli/dispute.py) ------------------------------------------------------
    "dispute": "请求部门与协助部门之间的争议（附件2 第八条）。",
    "dispute amend": ("区司法局以争议编号作出裁定或决定所需的清单调整。\n\n"
                      "FILE 中编码已公布的行替换原行，其余的行新增。任何部门的行都可调整。"
                      "之后照常审核、公布（xiezhu catalogue review / publish）。"),
    "dispute amend NUMBER": DISPUTE_NO,
    "dispute amend FILE": "要新增或修改的行，.csv 或 .xlsx。",
    "dispute amend --basis": "依据：所执行的研究确定意见或决定。",
    "dispute amend --kind": KIND,
    "dispute amend --remove": "要删去的行的编码；可重复。",
    "dispute amend --from": RAISED_BY,
    "dispute decide": "区政府对提请其决定的争议作出决定，由区政府办公室签名并送区司法局。",
    "dispute decide NUMBER": DISPUTE_NO,
    "dispute decide --decision": "区政府的决定。",
    "dispute decide --decision-no": "区政府的文号。",
    "dispute decide --from": RAISED_BY,
    "dispute take-in": "决定作出后纳入行政协助目录：区司法局指明将区政府决定纳入目录的清单调整，争议即告办结。",
    "dispute take-in NUMBER": DISPUTE_NO,
    "dispute take-in --adjustment": "将区政府决定纳入行政协助目录的清单调整（assistance-…）。",
    "dispute take-in --from": RAISED_BY,
    "dispute escalate": "必要时：区司法局会同区委编办提请区政府决定已受理、尚未研究确定的争议。",
    "dispute escalate NUMBER": DISPUTE_NO,
    "dispute escalate --reasons": "为何提请区政府决定。",
    "dispute escalate --from": RAISED_BY,
    "dispute list": "区司法局受理的每一件争议及其所处环节。",
    "dispute list --json": JSON,
    "dispute negotiate": "记录双方的协商情况；--failed 记为协商不成，区司法局即可受理。",
    "dispute negotiate NUMBER": DISPUTE_NO,
    "dispute negotiate --bureau": PARTY,
    "dispute negotiate --note": "本方对协商情况的说明。",
    "dispute negotiate --failed": "协商不成。",
    "dispute negotiate --from": RAISED_BY,
    "dispute raise": "就一项行政协助请求向区司法局提出争议（第八条）；争议编号以 D 开头。",
    "dispute raise NUMBER": "争议所涉行政协助函的文号。",
    "dispute raise --bureau": PARTY,
    "dispute raise --claim": "争议的内容，以及提出方的请求。",
    "dispute raise --evidence": "一项证据；可重复。",
    "dispute raise --requester": "该请求的请求部门（文号重复时指明）。",
    "dispute refer": "区司法局受理协商不成的争议，会同区委编办研究确定。",
    "dispute refer NUMBER": DISPUTE_NO,
    "dispute refer --reasons": "区司法局受理的理由。",
    "dispute refer --from": RAISED_BY,
    "dispute rule": "区司法局会同区委编办研究确定：记录研究确定意见；争议随之办结。",
    "dispute rule NUMBER": DISPUTE_NO,
    "dispute rule --ruling": "研究确定意见。",
    "dispute rule --co-decider": "与区司法局、区委编办共同研究确定的其他单位（等有关部门）；可重复。",
    "dispute rule --adjustment": "研究确定意见带来的清单调整（如有）。",
    "dispute rule --from": RAISED_BY,
    "dispute settle": "协商解决：记录双方达成的一致意见；争议随之办结。",
    "dispute settle NUMBER": DISPUTE_NO,
    "dispute settle --bureau": PARTY,
    "dispute settle --agreement": "双方协商一致的内容（协商解决）。",
    "dispute settle --from": RAISED_BY,
    "dispute show": "争议的签名经过（仅凭账本）：提出、每次协商、区司法局的各环节、发现的问题。",
    "dispute show NUMBER": DISPUTE_NO,
    "dispute show --from": RAISED_BY,
    "dispute show --json": JSON,

    # -- keys and the trust list (xiezhu/cli/keys.py) ------------------------------------------
    "keys": "部门签名密钥，以及由根机构（区大数据局）签名的信任列表。",
    "keys export": ("只给一台机器它自己的密钥：其所运行部门的私钥、信任锚和信任列表。\n\n"
                    "在所有密钥所在处运行（根机构的机器，或 compose 的 `keys` 卷）。其他部门的私钥和根私钥"
                    "都不会带出，该机器只能读自己的消息。"),
    "keys export CODES": "该机器运行的部门（账本的为 sifa）。",
    "keys export --out": "该机器的数据目录，keys/（及 nats-keys/）写入其中。",
    "keys export --nats-user": "同时复制此 NATS 用户的种子（其部门代码、ledger 或 admin）；可重复。",
    "keys export --signing-only": "只导出签名密钥，不含可打开该部门邮件和存储的封装密钥与存储密钥"
                                  "（供 `xiezhu checkpoint-signer` 使用）。",
    "keys init": ("为信任列表中还没有密钥的每个部门生成签名密钥，并以根密钥签署信任列表。\n\n"
                  "首次运行还会生成根密钥（[bold]keys/root.ed25519[/]，只在本机）和每台机器都要固定的信任锚"
                  "（[bold]keys/root.pub[/]）。再次运行不会改变任何东西。"),
    "keys list": ("信任列表中的每一把密钥：所属部门、有效期、吊销情况和当前状态。\n\n"
                  "先核验列表的根签名；核验不通过的列表不予采用。"),
    "keys list --bureau": "只看此部门的密钥。",
    "keys list --json": JSON,
    "keys publish": ("将本数据目录的信任列表发送到 NATS（在未给 --nats-url 时作出的修改之后）。\n\n"
                     "NATS 上已有的不再发送；NATS 上的列表更新时报错。"),
    "keys revoke": ("自即时起吊销一把密钥：此后用它签的一律拒收；此前签的仍可核验。\n\n"
                    "以根密钥签署；给了 --nats-url 时发布给各代理。唯一的密钥被吊销的部门，在用 "
                    "[bold]xiezhu keys rotate[/] 获得新密钥之前不能签署任何东西。"),
    "keys revoke KID": "密钥编号，见 `xiezhu keys list`。",
    "keys revoke --reason": "原因，如 私钥泄露（记入信任列表）。",
    "keys rotate": ("给部门一把自即时起有效的新密钥；旧密钥在重叠期内仍有效，之后失效。\n\n"
                    "以根密钥签署；给了 --nats-url 时发布给各代理。"),
    "keys rotate CODE": "要更换密钥的部门。",
    "keys rotate --overlap-days": "旧密钥与新密钥并存有效的天数。",
    "keys rotate --public-key": "列入这把在该部门自己机器上生成的 base64 Ed25519 公钥，而不在此处生成密钥。",
    "keys rotate --box-key": "与 --public-key 同用：同时生成的 base64 X25519 公钥，发给该部门的内容以它加密。",
    "keys rotate-root": ("在根机构（区大数据局）的机器上将根密钥移交给新的根密钥。\n\n"
                         "当前根密钥签署一个写明新密钥的信任列表版本；每个接收它的代理从此固定新密钥"
                         "（并替换其 [bold]keys/root.pub[/]），拒收旧密钥签署的内容。随后新密钥再签一次同一列表。"
                         "旧种子保存在 [bold]keys/retired-root/[/]，不再使用。给了 --nats-url 时发布；"
                         "之后新装的机器请复制新的 [bold]keys/root.pub[/]。"),

    # -- the ledger and replay (xiezhu/cli/ledger.py) ------------------------------------------
    "checkpoint": CHECKPOINT,
    "checkpoint --json": JSON,
    "seal": CHECKPOINT,
    "seal --json": JSON,
    "replay": ("仅凭账本重放一个案件：每个签名事件、它带来的变化、每个时限是否遵守。\n\n"
               "签名按事件发生时各密钥的状态核验。用 --as-of 则显示区司法局当时（按到达账本的时间）所知的案件。"),
    "replay NUMBER": LETTER_OR_CASE,
    "replay --from": REQUESTER_OR_HANDLER,
    "replay --as-of": ("显示案件当时的样子：账本到此 ISO 时间（不带时区按 Asia/Shanghai）为止收到的条目；"
                       "未办结的时限以此时间判断。"),
    "replay --json": JSON,
    "replay --bundle": "同时写出证据包（ZIP），可用 `xiezhu verify-bundle` 离线核验。",
    "replay --all-links": "同时列出告知承诺案件尚未答复的请求（需扫描全部请求）。",
    "replay --reveal": REVEAL,
    "replay --reason": REVEAL_REASON,
    "replay --operator": OPERATOR,
    "verify-bundle": ("离线、不用账本核验证据包：摘要、签名、叶子、哈希链、检查点。\n\n"
                      "任何一项不通过，即以状态 1 退出，并用一行说明原因。"),
    "verify-bundle FILE": "`xiezhu replay --bundle` 写出的证据包。",
    "verify-bundle --json": JSON,
    "verify-bundle --trust": "已发布的信任列表（trust.json）：用其中的密钥、有效期和吊销情况，而不用证据包自带的副本。",
    "verify-bundle --anchor": "根机构的公钥（keys/root.pub）：--trust 列表须有其签名，否则不核验任何东西。",

    # -- services (xiezhu/cli/services.py) -----------------------------------------------------
    "agent": ("运行部门代理：接收其消息，能答复的答复，并转发其发出的消息。\n\n"
              "给了 --ops-port 时在该端口提供 /healthz、/readyz 和 Prometheus /metrics。"),
    "agent --bureau": "运行此部门的代理（可重复）。",
    "agent --ops-port": OPS_PORT,
    "agent --ops-host": OPS_HOST,
    "checkpoint-signer": "在账本主机之外保管区司法局的检查点密钥，为账本请求的链头签名（决定 49）。\n\n"
                         "只有当账本自它上次签名的链头以来的条目确实通向所请求的链头时才签名，因此被回滚或改写的账本"
                         "得不到新签名；每个链头都发布给各部门见证。在存有区司法局密钥目录和 NATS 种子 signer 的机器上"
                         "运行，账本以 --remote-signer 启动。",
    "audit": "检查整个账本：每个签名、哈希链和已签名的检查点；指出第一个问题。有见证方时，还能发现仅凭账本文件"
             "看不出的回滚、分叉，以及用区司法局密钥改写并重新签名的历史（决定 49）。",
    "audit --workers": "核验签名的进程数（默认：每个 CPU 核一个）。",
    "audit --witnesses": "见证方保存的链头：部门代码（本数据目录中该部门的见证文件）、witness.db 或 "
                         "`xiezhu witnesses 代码 --export` 导出的文件；可重复。",
    "audit --witness-stream": "同时比对 NATS 上 XZ_WITNESS 中的每个链头和副署"
                              "（--nats-url，或本数据目录自带的 NATS 存储）。",
    "audit --platform": "以账本的 NATS 用户，将最后一个已见证链头之后的每个条目与平台记录"
                        "（XZ 流中的序号、字节和存储时间）比对，"
                        "并指出账本消费者已确认、账本却没有的事件（末尾被截去）；"
                        "适用于按真实时钟记录到达时间的账本（不适用于模拟时钟的演示）。",
    "audit --json": JSON,
    "witnesses": "某部门代理程序见到、按区司法局密钥核验并副署的账本链头（决定 49）。",
    "witnesses BUREAU": "保存这些链头的部门（代码）。",
    "witnesses --export": "写成 JSON 行文件，供另一台机器上的 `xiezhu audit --witnesses 文件` 使用。",
    "witnesses --json": JSON,
    "demo": "在内置 NATS 上运行所有部门代理、账本和时限视图，处理一批混合的请求。",
    "demo --requests": "请求的数量。",
    "demo --seed": "生成请求所用的随机种子。",
    "demo --json": JSON,
    "ledger": ("运行区司法局账本：核验并按同一条哈希链的顺序记录每一个签名事件。\n\n"
               "给了 --ops-port 时在该端口提供 /healthz、/readyz 和 Prometheus /metrics。"),
    "ledger --projection": "同时保持时限视图为最新。",
    "ledger --remote-signer": "由另一台主机上的 `xiezhu checkpoint-signer`（持有区司法局检查点密钥）签署检查点，"
                              "而不是用本机上的密钥（决定 49）。",
    "ledger --ops-port": OPS_PORT,
    "ledger --ops-host": OPS_HOST,
    "nats-config": ("为每个部门（及账本、预配置用户）生成一个 NKey 用户和 nats-server 的授权配置。\n\n"
                    "每个部门只能以自己的身份发布、只能读自己的持久消费者和收件箱；任何部门都不能创建消费者、"
                    "读取流、删除或清空。种子写入 <data>/nats-keys/<name>.nk，权限 0600；配置中只有公钥。"
                    "只有预配置用户（--provisioner）能创建流和消费者；`xiezhu provision` 运行后删除其种子，"
                    "此后生成的配置不再包含它：用它重新加载服务器后，任何人都不能再修改消费者。"),
    "nats-config --out": "将配置写到此处（默认：标准输出）。",
    "nats-config --cluster": "只输出授权部分，供集群的配置使用。",
    "nats-config --provisioner": "同时生成一次性的预配置用户，供 `xiezhu provision` 使用，用后删除其种子。",
    "nats-server": ("在前台以本数据目录运行内置的 nats-server（JetStream）。\n\n"
                    "它使用生成的授权配置（每个部门一个 NKey 用户，种子在 <data>/nats-keys），"
                    "与演示和各代理自行启动的服务器相同。"),
    "nats-server --port": "客户端端口。",
    "nats-server --host": "监听地址。",
    "nats-server --monitor-port": "同时在此端口提供 NATS 的监控端点（/varz、/jsz、/healthz）。",
    "projections": "由账本生成的读模型。",
    "projections rebuild": "删除读模型（时限视图、告知承诺案件），并由账本重新生成。",
    "provision": ("在 --nats-url 指定的 NATS 上创建各个流和每个部门的持久消费者。\n\n"
                  "每个部门发布到自己的发送流，服务器按该部门的限额（消息大小、字节数、消息数；满时拒收新消息）"
                  "管住它，其中的消息不能清除；XZ 汇集所有发送流（决定 50）。"
                  "已存在的只检查、从不修改：设置不同（如副本数、限额）的流或消费者是错误，由 NATS 运维人员处理。"
                  "创建需要一次性预配置用户的种子（`xiezhu nats-config --provisioner`），运行后即删除；"
                  "没有种子时 `provision` 只以 admin 身份检查。"),
    "provision --replicas": "流的副本数：3 节点集群为 3。",
    "provision --bureau-max-bytes": "每个部门的发送流最多可存的字节数（默认 128 MiB）。",
    "provision --bureau-max-msgs": "每个部门的发送流最多可存的消息数（默认 1,000,000）。",
    "provision --witness-max-bytes": "每个部门的见证流最多可存的字节数（默认 64 MiB）。",
    "provision --witness-max-msgs": "每个部门的见证流最多可存的副署数（默认 100,000）。",
    "run": ("在一台主机上运行其各项服务，每项一个进程，退出即重启（单主机部署）。\n\n"
            "未给 --nats-url 时先启动内置 nats-server。Ctrl-C 停止所有服务。"),
    "run --bureau": "在单独的进程中运行此部门的代理（可重复）。",
    "run --ledger": "在单独的进程中运行区司法局的账本及其视图、时限监测和 sifa 的代理。",
    "run --ops-port-base": ("每项服务在自己的端口提供 /healthz、/readyz 和 /metrics："
                            "从此端口起，按启动时所列服务的顺序递增。"),

    # -- SLA, calendar, report (xiezhu/cli/sla.py, report.py) -----------------------------------
    "sla": ("行政协助时限：每个请求的送达、以工作日计的期限、答复和时限状态。\n\n"
            "状态：未办结的请求在 --now 时为 在途、办理中、即将到期（下一个工作日 24 时到期）、今日到期 或 "
            "逾期未答复；已办结的为 已按期答复、逾期答复、已按期告知不能协助、逾期告知不能协助（超过 2 个"
            "工作日）或 已撤回。期限带 * 的为暂定（该年节假日安排尚未载入：见 [bold]xiezhu calendar load[/]）。"),
    "sla --bureau": "只看此部门发出或收到的请求。",
    "sla --state": ("只看此时限状态：in-transit（在途）、on-time（办理中）、due-soon（即将到期）、"
                    "due-today（今日到期）、"
                    "overdue（逾期未答复）、answered-on-time（已按期答复）、answered-late（逾期答复）、"
                    "declined-on-time（已按期告知不能协助）、declined-late（逾期告知不能协助）、withdrawn（已撤回）。"
                    "也接受办理状态（requested、received、replied、declined）。"),
    "sla --status": ("只看此办理状态：requested（已发出）、received（已收到）、replied（已答复）、"
                     "declined（已告知不能协助）、withdrawn（已撤回）。"),
    "sla --now": NOW,
    "sla --json": JSON,
    "sla --csv": CSV,
    "sla --xlsx": XLSX,
    "sla stats": ("按部门统计一段时间：发出和收到的请求、按期率、答复用时（工作日）、逾期。\n\n"
                  "请求按送达日（Asia/Shanghai）归入统计期。按期率和不能协助率是占已答复请求的比例；"
                  "P90 为最近秩法的第 90 百分位数；逾期指逾期答复、逾期告知不能协助，"
                  "或在 --now 时仍未办结且已逾期的请求。"),
    "sla stats --from": PERIOD_FROM,
    "sla stats --to": PERIOD_TO,
    "sla stats --now": NOW,
    "sla stats --json": JSON,
    "sla stats --csv": CSV,
    "sla stats --xlsx": XLSX,
    "calendar": "工作日日历：载入国务院节假日安排，计算期限。",
    "calendar due": ("自送达起 N 个工作日的期限止于何时：最后一个工作日的 24 时。\n\n"
                     "送达当日不计入。使用随包日历和每一个已载入的安排；两者都不涵盖的年份按周一至周五计算，并标为暂定。"),
    "calendar due --from": "送达时间，ISO 日期时间（不带时区按 Asia/Shanghai）。",
    "calendar due --working-days": "工作日数。",
    "calendar due --json": JSON,
    "calendar load": ("载入某一年的国务院节假日安排；该年的期限不再是暂定。\n\n"
                      "先检查文件（有误的文件不改变任何东西），再保存为数据目录中的 calendar/<year>.toml；"
                      "再次载入同一年则替换。时限视图在下次读取时重新计算期限。"),
    "calendar load FILE": "TOML 文件：year、holidays、workdays（调休上班日）、source。",
    "report": ("区司法局报区政府的统计（XLSX / PDF / JSON）。\n\n"
               "一段时间的统计：按部门和事项的告知承诺案件、按部门的行政协助、每周逾期、不能协助及其理由、"
               "未交回的许可证件；XLSX 和 PDF 附图表。"),
    "report --from": PERIOD_FROM,
    "report --to": PERIOD_TO,
    "report --format": "json（输出到标准输出）、xlsx 或 pdf。",
    "report --out": "要写的文件（默认：当前目录下的 告知承诺制工作情况统计-FROM-TO.xlsx|pdf）。",
    "report --now": "以此 ISO 时间判断未办结的请求。",
    "report --json": "同 --format json。",

    # -- the front door: serve, outbox, tokens, records, docs (xiezhu/cli/front.py) ------------
    "serve": ("为各部门自己的系统运行 HTTP API：请求、收件箱、答复，以及经 webhook 和 SSE 推送的通知。\n\n"
              "每次调用都需要令牌（`xiezhu tokens create --bureau CODE`）；API 说明见 /openapi.json，"
              "界面见 /docs。/healthz、/readyz 和 Prometheus /metrics 不需要令牌。"),
    "serve --bureau": "为此部门提供服务（可重复）。",
    "serve --host": "监听地址（除非确有需要，请用本机回环地址）。",
    "serve --port": "监听端口。",
    "outbox": ("已提交、尚未得到 JetStream 确认的消息：部门代理运行时即发出。\n\n"
               "还包括部门 webhook 尚未确认的通知（`xiezhu serve` 会重试）。"),
    "outbox --bureau": "只看此部门（默认：本机所有部门）。",
    "outbox --json": JSON,
    "tokens": "`xiezhu serve` 的 API 令牌，每个部门一个或多个，以哈希保存。",
    "tokens create": ("为部门的系统生成一个令牌；只显示一次，请妥善保管。\n\n"
                      "令牌只能代表其部门；区司法局的（sifa）可读取所有部门，不能修改任何东西。"),
    "tokens create --bureau": BUREAU_CODE,
    "tokens create --label": "令牌的用途；也是用它所作操作的默认经办人。",
    "tokens list": "令牌（从不显示密文）：部门、标签、生成时间、最近使用、是否吊销。",
    "tokens list --bureau": "只看此部门的令牌。",
    "tokens list --json": JSON,
    "tokens revoke": "吊销部门的一个令牌：立即失效。",
    "tokens revoke TOKEN_ID": "令牌编号（见 `xiezhu tokens list`）。",
    "tokens revoke --bureau": BUREAU_CODE,
    "records": "部门自己的记录（户籍、营业执照、社保），其核查程序据以答复。",
    "records load": ("将部门的记录载入其核查程序读取的表；先逐行检查。\n\n"
                     "格式（英文或中文表头；* 为必填）：\n"
                     "户籍（gongan）：id_number/公民身份号码*、name/姓名*、residence/户籍地址*、"
                     "criminal_record/有无犯罪记录（0/1，无/有）。\n"
                     "营业执照（shichang）：id_number/统一社会信用代码*、name/名称*、status/登记状态*、"
                     "scope/经营范围*、licence_no。\n"
                     "社保（renshe）：id_number/公民身份号码*、months/累计缴费月数*、employer/参保单位、name/姓名。"),
    "records load FILE": "带表头行的 .csv（UTF-8）或 .xlsx 文件。",
    "records load --bureau": BUREAU_CODE,
    "records load --kind": RECORD_KIND,
    "records load --replace": "删除不在此文件中的记录。",
    "records show": "部门核查程序可据以答复的记录数，以及前几行（姓名和号码已遮蔽）。",
    "records show --bureau": BUREAU_CODE,
    "records show --kind": RECORD_KIND,
    "records show --id": "只看此号码的记录。",
    "records show --limit": "最多显示的行数。",
    "records show --json": JSON,
    "docs": "生成的文档。",
    "docs asyncapi": "NATS 一侧的 AsyncAPI 文档（主题、信封、每种事件），由代码生成。",
    "docs asyncapi --out": "写到此处（默认：标准输出）。",
    "docs asyncapi --yaml": "输出 YAML 而非 JSON。",

    # -- alerts and console accounts (xiezhu/cli/alerts.py, users.py) --------------------------
    "alerts": "期限提醒邮件：部门中谁会收到其期限提醒和逾期通知。",
    "alerts add": "此后也将部门的期限提醒发到 ADDRESS（从下一条通知起）。",
    "alerts add ADDRESS": "电子邮件地址。",
    "alerts add --bureau": "部门：代码、名称或其中唯一的一部分（gongan、区公安分局、公安）。",
    "alerts list": "部门的提醒邮件地址，以及已发出的提醒。",
    "alerts list --bureau": "部门：代码、名称或其中唯一的一部分（gongan、区公安分局、公安）。",
    "alerts list --json": JSON_ONLY,
    "alerts remove": "不再将部门的提醒发到 ADDRESS。",
    "alerts remove ADDRESS": "列表中的一个电子邮件地址。",
    "alerts remove --bureau": "部门：代码、名称或其中唯一的一部分（gongan、区公安分局、公安）。",
    "database": "XIEZHU_DATABASE_URL 所指的 PostgreSQL 数据库：每个部门一个角色。",
    "database roles": ("为每个部门建立自己的角色，只对本部门的 schema 有权限"
                       "（区司法局的角色另有账本、目录和读模型的 schema）。\n\n"
                       "默认输出 SQL（可阅读，或用 psql 执行）；--apply 直接执行。之后为每个角色设置密码，"
                       "并让每台机器使用其部门角色的 URL。"),
    "database roles --bureau": "要建立角色的部门（代码、名称或简称）；可重复。默认：所有部门。",
    "database roles --prefix": "schema 的前缀（URL 的 ?schema=）。",
    "database roles --apply": "以数据库所有者身份在 XIEZHU_DATABASE_URL 上执行该 SQL，而不是输出。",
    "users": "控制台账号：`xiezhu serve` 网页控制台的账号，每个账号属于一个部门。",
    "users create": "建立控制台账号；密码（至少 10 个字符）以 scrypt 哈希保存。",
    "users create LOGIN": "登录名，如 wang.li。",
    "users create --bureau": "账号所属部门；sifa 可看所有部门。",
    "users create --name": "本人姓名，控制台上显示。",
    "users create --password-stdin": "从标准输入读取密码，而不提示输入。",
    "users disable": "停用账号，并结束其所有会话。",
    "users disable LOGIN": "登录名。",
    "users list": "控制台的账号（从不显示密码）。",
    "users list --json": JSON_ONLY,
}
