"""The console's words, in Chinese and English.  [console] language chooses
"zh+en" (Chinese with English beside it, the default), "zh" or "en"."""
from __future__ import annotations

from markupsafe import Markup, escape

TEXTS: dict[str, tuple[str, str]] = {
    "app": ("医保桥 运维台", "mibridge console"),
    "overview": ("概览", "Overview"),
    "held_rows": ("挂起与存疑", "Held and in doubt"),
    "orders": ("订单", "Orders"),
    "reconciliation": ("对账", "Reconciliation"),
    "search": ("查找", "Find"),
    "search_hint": ("业务号", "business key"),
    "login": ("登录", "Sign in"),
    "logout": ("退出", "Sign out"),
    "user": ("用户名", "User"),
    "password": ("密码", "Password"),
    "role": ("角色", "Role"),
    "viewer": ("只读", "viewer"),
    "operator": ("操作员", "operator"),
    "bad_login": ("用户名或密码错误", "Wrong user name or password"),
    "throttled": ("失败次数过多，请稍后再试", "Too many failed sign-ins; try again later"),
    "signed_out": ("已退出", "Signed out"),
    "session_ended": ("会话已结束，请重新登录", "Your session ended; please sign in again"),
    "counts": ("按状态与类型计数", "Requests by state and kind"),
    "kind": ("类型", "Kind"),
    "state": ("状态", "State"),
    "total": ("合计", "Total"),
    "oldest_open": ("最早的未完成请求", "Oldest open request"),
    "none": ("无", "none"),
    "age": ("已等待", "Age"),
    "seconds": ("秒", "s"),
    "held_with_reasons": ("挂起的请求及原因", "Held requests and their reasons"),
    "reason": ("原因", "Reason"),
    "calls_last_hour": ("近一小时的平台调用", "Platform calls in the last hour"),
    "interface": ("接口", "Interface"),
    "outcome": ("结果", "Outcome"),
    "calls": ("次数", "Calls"),
    "notice_endpoint": ("通知接收端 (6302)", "Notice endpoint (6302)"),
    "not_configured": ("未配置", "not configured"),
    "listening_on": ("监听", "listening on"),
    "last_notice": ("最近一次通知", "last notice"),
    "notices_last_hour": ("近一小时通知数", "notices in the last hour"),
    "jobs": ("定时任务", "Scheduled jobs"),
    "job": ("任务", "Job"),
    "last_run": ("上次运行", "Last run"),
    "next_run": ("下次运行", "Next run"),
    "result": ("结果", "Result"),
    "not_run_yet": ("尚未运行", "not run yet"),
    "no_scheduler": ("控制台未在守护进程内运行", "the console is not running inside the daemon"),
    "id": ("编号", "Id"),
    "business_key": ("业务号", "Business key"),
    "serial_key": ("顺序号", "Serial key"),
    "step": ("步骤", "Step"),
    "attempts": ("尝试次数", "Attempts"),
    "call_in_doubt": ("存疑的调用", "Call in doubt"),
    "resolver_saw": ("查询最近所见", "What the resolver last saw"),
    "updated": ("更新时间", "Updated"),
    "created": ("创建时间", "Created"),
    "nothing_held": ("没有挂起或存疑的请求", "Nothing is held or in doubt"),
    "row": ("请求", "Request"),
    "payload": ("请求内容 (已脱敏)", "Payload (masked)"),
    "flow_data": ("流程数据 (已脱敏)", "Flow data (masked)"),
    "journal": ("调用日志 (已脱敏)", "Call journal (masked)"),
    "inbox": ("返回给 HIS 的结果", "Results for the HIS"),
    "audit": ("人工操作记录", "Audit trail"),
    "actions": ("操作", "Actions"),
    "note": ("备注 (必填: 核实了什么, 决定了什么)", "Note (required: what was checked and decided)"),
    "requeue": ("重新排队", "Requeue"),
    "requeue_help": ("挂起的请求重新处理; 有存疑调用时先查询, 绝不直接重发",
                     "Back to work; a call in doubt is queried first, never simply resent"),
    "resolve": ("人工办结", "Resolve by hand"),
    "resolve_help": ("已在平台核实并人工处理完毕; HIS 会收到一条结果",
                     "Settled by hand after checking the platform; the HIS gets a result row"),
    "cancel": ("撤销", "Cancel"),
    "cancel_help": ("尚未发出任何涉及资金的调用: 结束为失败, HIS 会收到一条结果",
                    "No call that moves money was made yet: ends as failed, the HIS gets a result row"),
    "done_requeue": ("已重新排队, 当前状态", "Requeued; now"),
    "done_resolve": ("已人工办结", "Resolved by hand"),
    "done_cancel": ("已撤销", "Cancelled"),
    "refused": ("未执行", "Not done"),
    "note_required": ("请填写备注", "A note is required"),
    "no_rows_found": ("没有找到该业务号的请求", "No request has this business key"),
    "found": ("查找结果", "Found"),
    "sent": ("发出", "Sent"),
    "ended": ("结束", "Ended"),
    "request": ("请求", "Request"),
    "response": ("应答", "Response"),
    "message": ("说明", "Message"),
    "actor": ("操作人", "Who"),
    "at": ("时间", "When"),
    "action": ("操作", "Action"),
    # -- the Orders page (orders.py) ------------------------------------------------------
    "orders_title": ("订单簿", "Order book"),
    "orders_hint": ("每笔支付一行: 医保统筹、个人账户、现金各部分及其退款; 患者信息已脱敏",
                    "One row per payment: its insurance fund, personal-account and cash parts and their refunds; "
                    "patient data masked"),
    "key_or_order": ("业务号或订单号", "Business key or order number"),
    "patient_no": ("参保人编号", "Insured person number"),
    "day_from": ("从 (结算日)", "From (settle day)"),
    "day_to": ("到 (结算日)", "To (settle day)"),
    "status": ("状态", "Status"),
    "platform": ("平台", "Platform"),
    "channel": ("渠道", "Channel"),
    "per_page": ("每页", "Per page"),
    "any": ("全部", "any"),
    "apply": ("查询", "Search"),
    "reset": ("清除", "Clear"),
    "export_csv": ("导出 CSV", "Export CSV"),
    "settle_day": ("结算日", "Day"),
    "order_no": ("平台订单号", "Platform order"),
    "leg_total": ("总额", "Total"),
    "leg_fund": ("统筹基金", "Fund"),
    "leg_account": ("个人账户", "Account"),
    "leg_cash": ("现金", "Cash"),
    "leg_channel": ("渠道", "Channel"),
    "refunded": ("已退", "refunded"),
    "net": ("净额", "Net"),
    "patient": ("参保人 (脱敏)", "Patient (masked)"),
    "refunds": ("退款", "Refunds"),
    "refund_of": ("退款", "refund"),
    "open_request": ("查看请求", "open the request"),
    "no_orders": ("没有符合条件的订单", "No order matches"),
    "newer": ("← 较新", "← newer"),
    "older": ("较旧 →", "older →"),
    "newest": ("最新", "newest"),
    "unmatched_refunds": ("找不到原支付的退款 / 冲正", "Refunds and reversals whose payment is not in the book"),
    "unmatched_help": ("这些退款在订单簿中没有对应的支付: 请按业务号核实原支付",
                       "These refunds name a payment the book does not have: check the payment by its business key"),
    "refund_day": ("退款日", "Refund day"),
    "refund_type": ("类型", "Type"),
    "too_many_to_export": ("符合条件的订单超过 {n} 笔, 请缩小日期范围后再导出",
                           "More than {n} orders match; narrow the dates, then export"),
    "invalid_search": ("查询条件有误, 请修改后重试", "The search has errors; correct them and search again"),
    # -- validation messages (filters.py) ------------------------------------------------
    "bad_day": ("日期格式应为 yyyy-MM-dd, 例如 2024-03-01", "A day is written yyyy-MM-dd, e.g. 2024-03-01"),
    "bad_choice": ("不是可选的值", "Not one of the choices"),
    "bad_number": ("应为正整数", "A whole number above zero"),
    "bad_key": ("最多 64 个字符, 不能含控制字符", "At most 64 characters, no control characters"),
    "bad_patient": ("参保人编号: 最多 40 个字母或数字", "Insured person number: at most 40 letters or digits"),
    "bad_range": ("开始日期晚于结束日期", "The first day is after the last day"),
    "range_too_long": ("日期范围最多 {n} 天", "At most {n} days at a time"),
    "both_directions": ("不能同时向前和向后翻页", "Page forward or backward, not both"),
    # -- the Reconciliation page (reconciliation.py) ------------------------------------
    "recon_title": ("对账结果", "Reconciliation"),
    "recon_hint": ("每天、每个平台的对账结果 (最近一次完成的运行); 点日期查看差异及处理方法",
                   "Each day's and platform's result (the latest finished run); open a day for its differences "
                   "and what to do"),
    "recon_from": ("从 (对账日)", "From (day)"),
    "recon_to": ("到 (对账日)", "To (day)"),
    "recon_day": ("对账日", "Day"),
    "run": ("运行", "Run"),
    "runs": ("运行记录", "Runs"),
    "items": ("比对项", "Items"),
    "matched": ("一致", "Matched"),
    "differences": ("差异", "Differences"),
    "balanced_q": ("平账", "Balanced"),
    "finished": ("完成时间", "Finished"),
    "started": ("开始时间", "Started"),
    "progress": ("进度", "Progress"),
    "error_message": ("错误", "Error"),
    "not_run": ("未运行", "not run"),
    "no_recon_days": ("该范围内没有对账结果", "No reconciliation result in this range"),
    "recon_job_off": ("未配置每日对账任务 ([reconciliation])", "The daily reconciliation job is not configured "
                      "([reconciliation])"),
    "recon_job_on": ("每日对账任务", "The daily job"),
    "by_class": ("按差异类别", "By class"),
    "what_to_do": ("处理方法", "What to do"),
    "recon_note": ("说明", "Note"),
    "order_key": ("订单", "Order"),
    "leg": ("部分", "Leg"),
    "class": ("类别", "Class"),
    "hospital_amount": ("医院", "Hospital"),
    "platform_amount": ("平台", "Platform"),
    "channel_amount": ("渠道", "Channel"),
    "channel_ref": ("渠道订单号", "Channel order"),
    "no_differences": ("没有差异", "No differences"),
    "no_run_this_day": ("这一天没有完成的对账", "No finished reconciliation on this day"),
    "report_for_his": ("给 HIS 的报告", "Report for the HIS"),
    "rerun_how": ("重新对账 (在服务器上, 需要平台的密钥): ", "To reconcile again (on the server, it needs the "
                  "platforms' keys): "),
    "rerun_why_not": ("控制台不提供重新对账: 它调用平台接口, 由每日任务自动重试或由管理员在命令行执行",
                      "The console does not re-run it: a run calls the platforms; the daily job retries a failed "
                      "run, an administrator runs the command"),
    "all_days": ("返回列表", "All days"),
    "page": ("页", "Page"),
    "previous": ("← 上一页", "← previous"),
    "next": ("下一页 →", "next →"),
    "unknown_day": ("不是有效的日期", "Not a valid day"),
    "error": ("出错了", "Something went wrong"),
    "error_400": ("请求无效", "Bad request"),
    "error_403": ("无权执行此操作", "You may not do this"),
    "error_404": ("页面不存在", "No such page"),
    "error_405": ("不支持的请求方式", "Method not allowed"),
    "error_500": ("内部错误; 详情已写入日志", "Internal error; the details are in the log"),
    "csrf": ("表单已过期或无效, 请刷新页面后重试", "The form expired or is not valid; reload the page and try again"),
    "database_error": ("数据库暂时无法访问; 详情已写入日志", "The database cannot be reached; the details are in the log"),
    "back": ("返回", "Back"),
    "yes": ("是", "yes"),
    "no": ("否", "no"),
}

STATES = {"pending": ("等待", "pending"), "running": ("处理中", "running"), "in_doubt": ("存疑", "in doubt"),
          "held": ("挂起", "held"), "done": ("完成", "done"), "failed": ("失败", "failed"),
          "resolved": ("人工办结", "resolved")}

# Values the order book and the reconciliation store, by column: Words.of("status", "paid").
VALUES: dict[str, dict[str, tuple[str, str]]] = {
    "status": {"paid": ("已支付", "paid"), "partly_refunded": ("部分退款", "partly refunded"),
               "refunded": ("已全额退款", "refunded"), "reversed": ("已冲正", "reversed"),
               "cancelled": ("已撤销", "cancelled")},
    "platform": {"mobilepay": ("移动支付", "mobile pay"), "facepay": ("刷脸支付", "face pay"),
                 "kiosk": ("自助机", "kiosk"), "offline": ("线下 (两定)", "offline")},
    "channel": {"wechat": ("微信", "WeChat"), "alipay": ("支付宝", "Alipay"), "none": ("无", "none"),
                "unknown": ("未知", "unknown")},
    "refund_type": {"refund": ("退款", "refund"), "reversal": ("冲正", "reversal"),
                    "cancellation": ("撤销", "cancellation")},
    "refund_state": {"booked": ("已入账", "booked"), "unmatched": ("未匹配", "unmatched")},
    "run_state": {"running": ("进行中", "running"), "done": ("完成", "done"), "failed": ("失败", "failed"),
                  "abandoned": ("已放弃 (进程中断)", "abandoned (killed)")},
    "leg": {"total": ("总额", "total"), "fund": ("统筹基金", "fund"), "account": ("个人账户", "account"),
            "cash": ("现金", "cash"), "channel": ("渠道", "channel")},
    "class": {"balanced": ("一致", "balanced"), "hospital_only": ("医院有, 平台无", "hospital only"),
              "platform_only": ("平台有, 医院无", "platform only"),
              "channel_only": ("渠道有, 医院无", "channel only"),
              "amount_differs": ("金额不符", "amounts differ"), "unchecked": ("未能比对", "not compared")},
    # What a finance clerk does about each class (docs/reconciliation.md, "The classes").
    "todo": {
        "hospital_only": ("医院已记账, 平台或渠道没有。先到平台核实 (3202 明细、中心网页、商户平台): 确未入账则冲销 HIS 账单; "
                          "之后才出现 (账单迟到) 则重新对账。核实之前切勿再次向患者收费。",
                          "Booked by the hospital, missing at the platform or channel. Check there first (3202 memo, "
                          "the centre's web console, the merchant platform): never booked there, reverse the HIS "
                          "bill; appears later (a late bill), reconcile the day again. Never charge the patient "
                          "again before that."),
        "platform_only": ("平台已记账, 医院没有 (单边账)。按业务号 (或订单号) 找到请求, 在 HIS 补记账, 或到平台办理退款。",
                          "Booked at the platform, unknown to the hospital (单边账). Find the request by its "
                          "business key (or the order number), then book it in the HIS or have it refunded at "
                          "the platform."),
        "channel_only": ("微信 / 支付宝当日有资金变动, 医院账中没有。在商户平台查该渠道订单号: 无人申请的退款请询问渠道; "
                         "医院缺的支付请补记账或退款。",
                         "Money moved in WeChat / Alipay that the hospital's book lacks that day. Look the channel "
                         "order up in the merchant platform: a refund nobody asked for, ask the channel; a payment "
                         "the book lacks, book it or refund it."),
        "amount_differs": ("双方都有, 金额 (或退款状态) 不同。对照三列金额和备注, 更正错误的一方 (常见: 在系统外退款, "
                           "或只在一方部分退款)。",
                           "Both sides hold it with different amounts (or refund states). Compare the three amount "
                           "columns and the note; correct the wrong side (usually a refund made outside mibridge, "
                           "or a partial refund on one side only)."),
        "unchecked": ("未能比对 (平台未被询问或未能应答)。阅读备注, 排除原因后重新对账。这还不是差异。",
                      "Not compared (the platform was not asked or could not answer). Read the note, fix the "
                      "cause, then reconcile the day again. This is not a difference yet."),
    },
}


class Words:
    def __init__(self, language: str = "zh+en"):
        self.language = language

    def __call__(self, key: str) -> Markup:
        zh, en = TEXTS.get(key) or STATES.get(key) or (key, key)
        return self.pair(zh, en)

    def state(self, state: str) -> Markup:
        zh, en = STATES.get(state, (state, state))
        return self.pair(zh, en)

    def pair(self, zh: str, en: str) -> Markup:
        if self.language == "zh":
            return Markup('<span lang="zh">{}</span>').format(zh)
        if self.language == "en":
            return Markup('<span lang="en">{}</span>').format(en)
        return Markup('<span lang="zh">{}</span> <span lang="en" class="en">{}</span>').format(zh, en)

    def of(self, column: str, value) -> Markup:
        """A stored value in words (VALUES), or the value itself when it has none."""
        zh, en = VALUES.get(column, {}).get(value) or (str(value or ""), str(value or ""))
        return self.pair(zh, en) if zh != en else Markup('<span>{}</span>').format(zh)

    def plain_of(self, column: str, value) -> str:
        """Words.of without markup (for an <option>)."""
        zh, en = VALUES.get(column, {}).get(value) or (str(value or ""), str(value or ""))
        return zh if zh == en else {"zh": zh, "en": en}.get(self.language, f"{zh} {en}")

    def message(self, text: str, **n) -> Markup:
        """A validation message: a key of TEXTS (with {n}-style numbers), else the text as it is."""
        if text in TEXTS:
            zh, en = TEXTS[text]
            return self.pair(zh.format(**n), en.format(**n))
        return Markup('<span>{}</span>').format(text)

    def plain(self, key: str) -> str:
        """For attributes (placeholder, title): no markup."""
        zh, en = TEXTS.get(key) or STATES.get(key) or (key, key)
        return {"zh": zh, "en": en}.get(self.language, f"{zh} {en}")


__all__ = ["Words", "TEXTS", "STATES", "VALUES", "escape"]
