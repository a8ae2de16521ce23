"""The channels' daily bills in their real formats (channels.md §3, §8), and mismatches on demand.

WeChat (§3): `GET /v3/bill/tradebill?bill_date=&bill_type=ALL|SUCCESS|REFUND&tar_type=GZIP` answers
`{hash_type: SHA1, hash_value, download_url}`; `GET /v3/billdownload/file?token=` (signed request,
unsigned answer) gives the CSV, gzipped with tar_type=GZIP; SHA1 is over the plain CSV. Layout:
27-column detail header, detail rows, summary header, summary row; every field of a detail or
summary row starts with a backtick; `\\n` line ends (v3 fixture); yuan amounts; fees with five
decimals. A payment is a row on its success day (交易状态 SUCCESS); a refund is its own row on its
acceptance day (交易状态 REFUND, 应结订单金额/订单金额 0.00, 退款金额/申请退款金额 the refund, a
negative fee, 退款状态 as at generation). These last points follow a real 2024 bill (W7, index
id 40336414137) and WxJava's test fixtures (ids 583777868, 857945093).

Alipay (§8): `alipay.data.dataservice.bill.downloadurl.query {bill_type: trade, bill_date}` answers
`bill_download_url`, good for `alipay_bill_url_ttl_seconds` (30 s). The file is
`<pid>0156_<yyyyMMdd>.csv.zip` holding `…_业务明细.csv` and `…_业务明细(汇总).csv`, GBK, entry names
GBK too (Java readers open these zips with a GBK charset, A5 ids 29305369121, 9109434876). Detail:
`#` header lines, the 25-column header, rows (业务类型 交易/退款, refunds negative in 商家实收, id
columns ending in a TAB), `#…业务明细列表结束…`, `#交易合计：…`, `#退款合计：…`, `#导出时间：[…]`. The
summary file's columns (门店编号 … 实收净额) come from one parser only (daxpay
`AliReconcileBillTotal`, id 47325246904) [single source]; its dash lines from the same parser.

When a bill exists (§3.1, §8): day D after `bill_ready_hour` (10:00) on D+1, at once for an
earlier day, never for today or later (WeChat 400 NO_STATEMENT_EXIST, Alipay 40004
isp.bill_not_exist; W7 id 68311312877 shows NO_STATEMENT_EXIST), unless a test closes the day
(POST /__sim__/bills/close). A bill is frozen when first generated; a day with no traffic gives a
bill with no rows. Mismatches for reconciliation tests (POST /__sim__/bills/mismatch) apply when the
bill is generated (and regenerate a frozen one): "drop" (the order's rows are missing), "amount"
(the payment row is off by `delta`, default 0.01), "extra_refund" (a refund row that never happened).
"""
from __future__ import annotations

import gzip
import hashlib
import io
import threading
import time
import zipfile
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Optional

from . import channel_clock, channel_crypto
from .alipay import Alipay
from .alipay_wire import AlipayError
from .channel_clock import ChannelClock
from .config import SimulatorConfig
from .split import ZERO
from .wechatpay import WeChatPay
from .wechatpay_wire import WireError

WECHAT_HEADER = ("交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,"
                 "货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,"
                 "商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注")
WECHAT_SUMMARY = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
ALIPAY_HEADER = ("支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,"
                 "订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,"
                 "券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注")
ALIPAY_SUMMARY = ("门店编号,门店名称,交易订单总笔数,退款订单总笔数,订单金额（元）,商家实收（元）,支付宝优惠（元）,"
                  "商家优惠（元）,卡消费金额（元）,服务费（元）,分润（元）,实收净额（元）")
DETAIL_BEGIN = "#" + "-" * 41 + "业务明细列表" + "-" * 40
DETAIL_END = "#" + "-" * 41 + "业务明细列表结束" + "-" * 36
SUMMARY_BEGIN = "#" + "-" * 41 + "业务汇总列表" + "-" * 40
SUMMARY_END = "#" + "-" * 40 + "业务汇总列表结束" + "-" * 37
MISMATCH_KINDS = ("drop", "amount", "extra_refund")


class BillError(ValueError):
    pass


def _y(fen_or_yuan: Any) -> Decimal:
    return fen_or_yuan if isinstance(fen_or_yuan, Decimal) else (Decimal(fen_or_yuan) / 100).quantize(Decimal("0.01"))


def _f2(d: Decimal) -> str:
    return str(d.quantize(Decimal("0.01")))


def _gbk_name(name: str) -> zipfile.ZipInfo:
    """A zip entry whose name is stored in GBK, without the UTF-8 flag (see the module note)."""
    class GbkInfo(zipfile.ZipInfo):
        def _encodeFilenameFlags(self):   # noqa: N802 (zipfile's own name)
            return self.filename.encode("gbk"), self.flag_bits & ~0x800
    info = GbkInfo(name, date_time=time.localtime()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


class Bills:
    def __init__(self, cfg: SimulatorConfig, wechat: WeChatPay, alipay: Alipay, clock: ChannelClock) -> None:
        self.cfg = cfg
        self.wechat = wechat
        self.alipay = alipay
        self.clock = clock
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.frozen: dict[tuple[str, str], Any] = {}       # (channel, yyyy-MM-dd) -> rows
            self.closed: set[tuple[str, str]] = set()
            self.mismatches: dict[tuple[str, str], list[dict]] = {}
            self.wechat_tokens: dict[str, tuple[str, str, bool]] = {}
            self.alipay_tokens: dict[str, tuple[str, float]] = {}

    # --- controls ----------------------------------------------------------------------
    def close(self, body: dict) -> dict:
        """POST /__sim__/bills/close {"channel": wechat|alipay|all, "date"}: the day's bill exists now."""
        day = self._day(body.get("date"))
        channels = self._channels(body.get("channel"))
        with self._lock:
            for ch in channels:
                self.closed.add((ch, day))
                self.frozen.pop((ch, day), None)
        return {"closed": channels, "date": day}

    def mismatch(self, body: dict) -> dict:
        """POST /__sim__/bills/mismatch {"channel", "date", "kind", "out_trade_no", "delta"?}."""
        day = self._day(body.get("date"))
        channels = self._channels(body.get("channel"))
        kind = body.get("kind")
        if kind not in MISMATCH_KINDS or not body.get("out_trade_no"):
            raise BillError(f"kind must be one of {MISMATCH_KINDS}, and out_trade_no is required")
        try:
            delta = Decimal(str(body.get("delta", "0.01")))
        except ArithmeticError:
            raise BillError("delta must be an amount") from None
        with self._lock:
            for ch in channels:
                self.mismatches.setdefault((ch, day), []).append(
                    {"kind": kind, "out_trade_no": str(body["out_trade_no"]), "delta": delta})
                self.frozen.pop((ch, day), None)
        return {"channels": channels, "date": day, "kind": kind}

    @staticmethod
    def _day(value: Any) -> str:
        try:
            return date.fromisoformat(str(value)).isoformat()
        except ValueError:
            raise BillError("date must be yyyy-MM-dd") from None

    @staticmethod
    def _channels(value: Any) -> list[str]:
        if value in (None, "all"):
            return ["wechat", "alipay"]
        if value not in ("wechat", "alipay"):
            raise BillError("channel must be wechat, alipay or all")
        return [str(value)]

    def _ready(self, channel: str, day: date) -> bool:
        if (channel, day.isoformat()) in self.closed:
            return True
        now = datetime.now()
        if day >= now.date():
            return False
        return day < now.date() - timedelta(days=1) or now.hour >= self.cfg.bill_ready_hour

    def _rows(self, channel: str, day: str) -> list[dict]:
        key = (channel, day)
        if key not in self.frozen:
            rows = self._wechat_rows(day) if channel == "wechat" else self._alipay_rows(day)
            self.frozen[key] = self._apply_mismatches(day, rows, self.mismatches.get(key, []))
        return self.frozen[key]

    @staticmethod
    def _apply_mismatches(day: str, rows: list[dict], mismatches: list[dict]) -> list[dict]:
        for m in mismatches:
            otn = m["out_trade_no"]
            if m["kind"] == "drop":
                rows = [r for r in rows if r["out_trade_no"] != otn]
            elif m["kind"] == "amount":
                for r in rows:
                    if r["out_trade_no"] == otn and r["type"] == "pay":
                        r["amount"] += m["delta"]
                        break
            else:
                base = next((r for r in rows if r["out_trade_no"] == otn and r["type"] == "pay"), {})
                at = datetime.combine(date.fromisoformat(day), datetime.min.time()) + timedelta(hours=23)
                rows.append({"type": "refund", "out_trade_no": otn, "amount": m["delta"], "at": at,
                             "created": base.get("created", at),
                             "trade_no": base.get("trade_no") or "4200000000" + channel_crypto.random_digits(18),
                             "refund_no": "EXTRA" + channel_crypto.random_digits(10),
                             "refund_id": "50" + channel_crypto.random_digits(27), "status": "SUCCESS",
                             "openid": base.get("openid", ""), "subject": base.get("subject", ""), "attach": "",
                             "order_total": base.get("amount", m["delta"]), "buyer": base.get("buyer", "")})
        return rows

    # --- WeChat ------------------------------------------------------------------------
    def _wechat_rows(self, day: str) -> list[dict]:
        rows: list[dict] = []
        w = self.wechat
        with w.lock:
            for p in w.prepays.values():
                if p.success_at is not None and p.success_at.date().isoformat() == day:
                    rows.append({"type": "pay", "at": p.success_at, "trade_no": p.transaction_id,
                                 "out_trade_no": p.out_trade_no, "openid": p.openid, "amount": _y(p.total),
                                 "subject": p.description, "attach": p.attach})
            for r in w.refunds.values():
                if r.created_at.date().isoformat() == day:
                    p = w.prepays[r.out_trade_no]
                    rows.append({"type": "refund", "at": r.created_at, "trade_no": r.transaction_id,
                                 "out_trade_no": r.out_trade_no, "openid": p.openid, "amount": _y(r.refund),
                                 "refund_id": r.refund_id, "refund_no": r.out_refund_no, "status": r.status,
                                 "subject": p.description, "attach": p.attach, "order_total": _y(p.total)})
        rows.sort(key=lambda r: r["at"])
        return rows

    def _fee(self, amount: Decimal) -> Decimal:
        return (amount * self.cfg.wechat_fee_rate).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)

    def wechat_csv(self, day: str, bill_type: str) -> bytes:
        rate = f"{(self.cfg.wechat_fee_rate * 100).quantize(Decimal('0.01'))}%"
        lines = [WECHAT_HEADER]
        count, settle, refunded, fees, order_total, asked = 0, ZERO, ZERO, ZERO, ZERO, ZERO
        for r in self._rows("wechat", day):
            if bill_type == "SUCCESS" and r["type"] != "pay" or bill_type == "REFUND" and r["type"] != "refund":
                continue
            at = channel_clock.text(r["at"])
            common = [at, self.cfg.wechat_appid, self.cfg.wechat_mchid, "0", "", r["trade_no"], r["out_trade_no"],
                      r["openid"], "JSAPI"]
            if r["type"] == "pay":
                fee = self._fee(r["amount"])
                fields = common + ["SUCCESS", "OTHERS", "CNY", _f2(r["amount"]), "0.00", "0", "0", "0.00", "0.00",
                                   "", "", r["subject"], r["attach"], f"{fee:.5f}", rate, _f2(r["amount"]), "0.00", ""]
                settle += r["amount"]
                order_total += r["amount"]
            else:
                fee = -self._fee(r["amount"])
                fields = common + ["REFUND", "OTHERS", "CNY", "0.00", "0.00", r["refund_id"], r["refund_no"],
                                   _f2(r["amount"]), "0.00", "ORIGINAL", r["status"], r["subject"], r["attach"],
                                   f"{fee:.5f}", rate, "0.00", _f2(r["amount"]), ""]
                refunded += r["amount"]
                asked += r["amount"]
            fees += fee
            count += 1
            lines.append("`" + ",`".join(fields))
        lines.append(WECHAT_SUMMARY)
        lines.append("`" + ",`".join([str(count), _f2(settle), _f2(refunded), "0.00", f"{fees:.5f}",
                                     _f2(order_total), _f2(asked)]))
        return ("\n".join(lines) + "\n").encode("utf-8")

    def wechat_apply(self, query: dict, base_url: str, hash_mismatch: bool = False) -> dict:
        raw = str(query.get("bill_date") or "")
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            raise WireError(400, "PARAM_ERROR", "bill_date格式须为yyyy-MM-DD",
                            detail={"location": "query", "field": "bill_date"}) from None
        bill_type = str(query.get("bill_type") or "ALL")
        if bill_type not in ("ALL", "SUCCESS", "REFUND"):
            raise WireError(400, "PARAM_ERROR", "bill_type取值错误", detail={"location": "query", "field": "bill_type"})
        tar = query.get("tar_type")
        if tar not in (None, "", "GZIP"):
            raise WireError(400, "PARAM_ERROR", "tar_type取值错误", detail={"location": "query", "field": "tar_type"})
        if day < datetime.now().date() - timedelta(days=92):
            raise WireError(400, "PARAM_ERROR", "只能下载三个月以内的账单")
        with self._lock:
            if not self._ready("wechat", day):
                raise WireError(400, "NO_STATEMENT_EXIST", "账单文件不存在")
            csv = self.wechat_csv(day.isoformat(), bill_type)
            token = channel_crypto.random_text(40)
            self.wechat_tokens[token] = (day.isoformat(), bill_type, tar == "GZIP")
        digest = hashlib.sha1(csv).hexdigest()
        if hash_mismatch:
            digest = hashlib.sha1(csv + b"x").hexdigest()
        return {"hash_type": "SHA1", "hash_value": digest,
                "download_url": f"{base_url}/v3/billdownload/file?token={token}"}

    def wechat_download(self, query: dict) -> bytes:
        with self._lock:
            got = self.wechat_tokens.get(str(query.get("token") or ""))
            if got is None:
                raise WireError(400, "INVALID_REQUEST", "token无效或已过期")
            day, bill_type, gz = got
            csv = self.wechat_csv(day, bill_type)
        return gzip.compress(csv) if gz else csv

    # --- Alipay ------------------------------------------------------------------------
    def _alipay_rows(self, day: str) -> list[dict]:
        rows: list[dict] = []
        a = self.alipay
        with a.lock:
            for t in a.trades.values():
                if t.paid_at is not None and t.paid_at.date().isoformat() == day:
                    rows.append({"type": "pay", "at": t.paid_at, "created": t.created_at, "trade_no": t.trade_no,
                                 "out_trade_no": t.out_trade_no, "amount": t.total, "subject": t.subject,
                                 "buyer": t.buyer_id})
            for r in a.refunds.values():
                if r.at.date().isoformat() == day:
                    t = a.trades[r.trade_no]
                    rows.append({"type": "refund", "at": r.at, "created": t.created_at, "trade_no": t.trade_no,
                                 "out_trade_no": t.out_trade_no, "amount": r.amount, "subject": t.subject,
                                 "buyer": t.buyer_id, "refund_no": r.out_request_no, "order_total": t.total})
        rows.sort(key=lambda r: r["at"])
        return rows

    def alipay_zip(self, day: str) -> tuple[str, bytes]:
        d = date.fromisoformat(day)
        account = self.cfg.alipay_pid + "0156"
        stem = f"{account}_{d.strftime('%Y%m%d')}"
        start = f"{d.strftime('%Y年%m月%d日')} 00:00:00"
        end = f"{(d + timedelta(days=1)).strftime('%Y年%m月%d日')} 00:00:00"
        exported = datetime.now().strftime("[%Y年%m月%d日 %H:%M:%S]")
        head = ["#支付宝业务明细查询", f"#账号：[{account}]", f"#起始日期：[{start}]   终止日期：[{end}]", DETAIL_BEGIN,
                ALIPAY_HEADER]
        pays = refunds = 0
        pay_sum = refund_sum = order_sum = fee_sum = ZERO
        for r in self._rows("alipay", day):
            fee = self._fee(r["amount"])
            if r["type"] == "pay":
                pays += 1
                pay_sum += r["amount"]
                order_sum += r["amount"]
                received, batch, kind, order_amount, fee_text = r["amount"], "", "交易", r["amount"], -fee
            else:
                refunds += 1
                refund_sum += r["amount"]
                received, batch, kind = -r["amount"], r["refund_no"] + "\t", "退款"
                order_amount, fee_text = r.get("order_total", r["amount"]), fee
            fee_sum += fee_text
            head.append(",".join([
                r["trade_no"] + "\t", r["out_trade_no"] + "\t", kind, r["subject"],
                channel_clock.text(r["created"]) if r.get("created") else channel_clock.text(r["at"]),
                channel_clock.text(r["at"]), "", "", "", "", r.get("buyer", ""), _f2(order_amount), _f2(received),
                "0.00", "0.00", "0.00", "0.00", "0.00", "", "0.00", "0.00", batch, _f2(fee_text), "0.00", ""]))
        head += [DETAIL_END, f"#交易合计：{pays}笔，商家实收共{_f2(pay_sum)}元，商家优惠共0.00元",
                 f"#退款合计：{refunds}笔，商家实收退款共{_f2(-refund_sum)}元，商家优惠退款共0.00元",
                 f"#导出时间：{exported}"]
        net = pay_sum - refund_sum
        total_row = [str(pays), str(refunds), _f2(order_sum), _f2(net), "0.00", "0.00", "0.00", _f2(fee_sum), "0.00",
                     _f2(net + fee_sum)]
        summary = ["#支付宝业务汇总查询", f"#账号：[{account}]", f"#起始日期：[{start}]   终止日期：[{end}]",
                   SUMMARY_BEGIN, ALIPAY_SUMMARY, ",".join(["", ""] + total_row), ",".join(["合计", ""] + total_row),
                   SUMMARY_END, f"#导出时间：{exported}"]
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr(_gbk_name(f"{stem}_业务明细.csv"), ("\r\n".join(head) + "\r\n").encode("gbk"))
            z.writestr(_gbk_name(f"{stem}_业务明细(汇总).csv"), ("\r\n".join(summary) + "\r\n").encode("gbk"))
        return f"{stem}.csv.zip", buf.getvalue()

    def alipay_url(self, biz: dict, base_url: str) -> dict:
        bill_type, raw = biz.get("bill_type"), str(biz.get("bill_date") or "")
        if bill_type not in ("trade", "signcustomer"):
            raise AlipayError("40002", "isv.invalid-parameter", "bill_type参数不合法")
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            raise AlipayError("40004", "isp.bill_not_exist", "账单不存在（仅模拟日账单 yyyy-MM-dd）") from None
        with self._lock:
            if day >= datetime.now().date() and ("alipay", day.isoformat()) not in self.closed:
                raise AlipayError("40002", "isv.invalid-parameter", "参数不合法")
            if bill_type != "trade" or not self._ready("alipay", day):
                raise AlipayError("40004", "isp.bill_not_exist", "账单不存在")
            name, _ = self.alipay_zip(day.isoformat())
            token = channel_crypto.random_text(32)
            self.alipay_tokens[token] = (day.isoformat(), time.time() + self.cfg.alipay_bill_url_ttl_seconds)
        stem = name.split(".")[0]
        return {"bill_download_url": f"{base_url}/downloadBillFile.resource?bizType=trade&userId={stem[:20]}"
                                     f"&fileType=csv.zip&bizDates={stem[-8:]}&downloadFileName={name}&token={token}"}

    def alipay_download(self, query: dict) -> Optional[bytes]:
        """The zip, or None when the link is unknown or expired (the caller answers the text)."""
        with self._lock:
            got = self.alipay_tokens.get(str(query.get("token") or ""))
            if got is None or got[1] < time.time():
                return None
            return self.alipay_zip(got[0])[1]

    def public(self) -> dict:
        with self._lock:
            return {"closed": sorted(f"{c}:{d}" for c, d in self.closed),
                    "frozen": sorted(f"{c}:{d}" for c, d in self.frozen),
                    "mismatches": {f"{c}:{d}": [dict(m, delta=str(m["delta"])) for m in ms]
                                   for (c, d), ms in self.mismatches.items()}}
