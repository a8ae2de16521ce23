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
    "coming": ("此页面将在对应的视图上线后提供", "This page comes with its database view"),
    "orders_coming": ("订单簿 (按日期、业务号、患者、状态、渠道查询; 医保、个账、现金金额; 退费; 导出 CSV) 基于视图 mi_v_orders",
                      "The order book (by date, business key, patient, status, channel; insurance, "
                      "personal-account and cash amounts; refunds; CSV export) reads the view mi_v_orders"),
    "recon_coming": ("当日对账结果与差异分类 基于视图 mi_v_reconciliation",
                     "The day's reconciliation results and differences by class read the view "
                     "mi_v_reconciliation"),
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

    def plain(self, key: str) -> str:
        """For attributes (placeholder, title): no markup."""
        zh, en = TEXTS.get(key) or STATES.get(key) or (key, key)
        return {"zh": zh, "en": en}.get(self.language, f"{zh} {en}")


__all__ = ["Words", "TEXTS", "STATES", "escape"]
