"""The cash leg of a refund: what is sent to the channel, and how its answers are read.

    WeChat   POST /v3/refund/domestic/refunds (channels.md §2.6) on the JSAPI payment with the
             mixed order's out_trade_no; amount.total = the cash paid (wechat_pay_cash_fee);
             query GET /v3/refund/domestic/refunds/{out_refund_no}
    Alipay   alipay.trade.refund on the cash trade (§7.5) by out_trade_no, out_request_no the
             idempotency key; query alipay.trade.fastpay.refund.query

Numbers come from bridge/channels/keys.py, the same on every send (the channels' idempotency
key): a refund the HIS asked for is refund_no(its key, attempt); the full reversal mibridge
makes itself (单边账 repair, a payment whose insurance failed after the cash was taken) is
reversal_no(the payment's key, attempt).  ``attempt`` grows only when WeChat closed a refund
(CLOSED: "retry with a NEW out_refund_no", §2.6); it is kept in flow_data.

Every answer is read into a CashRefund with one of the states

    SUCCESS     the money is on its way back (WeChat SUCCESS; Alipay fund_change=Y or
                refund_status REFUND_SUCCESS)
    PROCESSING  accepted, not finished: ask again (the refund callback wakes the request)
    CLOSED      WeChat closed it, no money moved: a new number
    ABNORMAL    WeChat could not pay it back (a closed bank card ...): a person
                (apply-abnormal-refund, §2.6) - never retried on a guess
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Optional

from bridge.alipay.messages import RefundRequest as AlipayRefundRequest
from bridge.alipay.messages import RefundState
from bridge.alipay.messages import RefundResult
from bridge.wechatpay.messages import Refund as WechatRefund
from bridge.wechatpay.messages import RefundRequest as WechatRefundRequest
from bridge.wechatpay.messages import RefundStatus

from . import keys

SUCCESS, PROCESSING, CLOSED, ABNORMAL = "SUCCESS", "PROCESSING", "CLOSED", "ABNORMAL"
# WeChat refunds closed in a row before a person looks (each one moved no money).
MAX_CLOSED = 3


@dataclass(frozen=True)
class CashRefund:
    state: str
    refund_id: Optional[str] = None      # WeChat refund_id / Alipay trade_no
    success_time: Optional[str] = None   # RFC 3339 (WeChat) or yyyy-MM-dd HH:mm:ss (Alipay)
    amount: Optional[Decimal] = None


def number(tag: str, key: str, prefix: str, attempt: int) -> str:
    """out_refund_no / out_request_no: keys.refund_no for the HIS's refund (tag R), keys.reversal_no
    for mibridge's own full reversal of a payment (tag F)."""
    if tag == keys.REFUND:
        return keys.refund_no(key, prefix, attempt)
    if tag == keys.REVERSAL:
        return keys.reversal_no(key, prefix, attempt)
    raise ValueError(f"not a refund tag: {tag!r}")


def wechat_request(out_refund_no: str, out_trade_no: str, amount: Decimal, paid: Decimal,
                   reason: Optional[str]) -> WechatRefundRequest:
    return WechatRefundRequest(out_refund_no=out_refund_no, refund=amount, total=paid, out_trade_no=out_trade_no,
                               reason=(reason or None) and reason[:80])


def alipay_request(out_request_no: str, out_trade_no: str, amount: Decimal,
                   reason: Optional[str]) -> AlipayRefundRequest:
    return AlipayRefundRequest(out_request_no=out_request_no, refund_amount=amount, out_trade_no=out_trade_no,
                               refund_reason=(reason or None) and reason[:256])


def from_wechat(r: WechatRefund) -> CashRefund:
    state = {RefundStatus.SUCCESS: SUCCESS, RefundStatus.PROCESSING: PROCESSING, RefundStatus.CLOSED: CLOSED,
             RefundStatus.ABNORMAL: ABNORMAL}[r.status]
    return CashRefund(state, r.refund_id, r.success_time.isoformat() if r.success_time else None, r.refund)


def from_alipay_refund(r: RefundResult) -> CashRefund:
    """alipay.trade.refund answered 10000 with fund_change=Y (the client makes anything else
    UNKNOWN, to be confirmed by the query)."""
    return CashRefund(SUCCESS, r.trade_no, r.gmt_refund_pay, None)


def from_alipay_query(r: RefundState) -> CashRefund:
    """§7.5: REFUND_SUCCESS (or the older form without refund_status) is done; another
    status of a refund that exists is taken as still in progress (the enum is not public,
    §10.4 item 13), never as failed."""
    return CashRefund(SUCCESS if r.succeeded else PROCESSING, r.trade_no, r.gmt_refund_pay, r.refund_amount)
