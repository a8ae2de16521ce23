"""The channels.unmatched service the callback endpoints call for a callback no open request
matches (bridge/channels/unmatched.py), on each database: one check per channel number
however many deliveries and callbacks (also at the same moment), none when the request's own
record already accounts for the money or the number is not ours."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from bridge.channels import keys
from bridge.channels.notice_check import KIND_CHANNEL_NOTICE_CHECK, check_key
from bridge.channels.notices import ALIPAY_TRADE, WECHAT_MEDINS, WECHAT_REFUND, WECHAT_TRADE, ChannelNotice, Target
from bridge.channels.unmatched import Unmatched
from bridge.db.store import Store
from bridge.mobilepay.kinds import KIND_OUTPATIENT, PAYMENT_KINDS

PAY = "INV-U1"
OTN = keys.out_trade_no(PAY)


def notice(interface: str, key: str, **record) -> ChannelNotice:
    what = "reversal" if interface == WECHAT_REFUND else "payment"
    number = record.get("out_refund_no") or record.get("out_trade_no")
    ref = keys.parse(number)
    return ChannelNotice(interface, key, key, Target(tuple(PAYMENT_KINDS), PAY, what, ref.attempt), record)


def checks(store: Store) -> list[tuple]:
    return [tuple(r) for r in store.query("SELECT business_key, payload FROM mi_outbox WHERE kind = :k",
                                          {"k": KIND_CHANNEL_NOTICE_CHECK})]


def test_one_check_per_number_and_none_when_the_record_accounts_for_it(db_url):
    store = Store(db_url)
    try:
        service = Unmatched({"wechat": "MB", "alipay": "MB"})
        pid = store.enqueue(KIND_OUTPATIENT, PAY, {"x": 1})
        store.execute("UPDATE mi_outbox SET state = 'failed' WHERE id = :i", {"i": pid})
        row = store.find_request(PAYMENT_KINDS, PAY)
        medins = notice(WECHAT_MEDINS, "MIX-1", out_trade_no=OTN, mix_pay_status="MIX_PAY_SUCCESS",
                        wechat_pay_cash_fee="30.00")
        trade = notice(WECHAT_TRADE, OTN, out_trade_no=OTN, trade_state="SUCCESS")
        def deliver(n):
            own = Store(db_url)                         # one connection per delivery thread
            try:
                return service(own, n, row)
            finally:
                own.close()
        with ThreadPoolExecutor(8) as pool:            # deliveries at the same moment
            said = list(pool.map(deliver, [medins, trade] * 6))
        [(key, payload)] = checks(store)
        oid = store.find_request((KIND_CHANNEL_NOTICE_CHECK,), key)["id"]
        # (SQLite's outbox trigger takes the same request again as a no-op, so more than one
        # delivery may say "enqueued"; there is one row either way.)
        assert all(s.startswith(f"notice check #{oid} ") for s in said), said
        assert key == check_key("wechat", OTN) == f"chk:wechat:{OTN}"
        assert service(store, trade, row).endswith("exists")

        # Quiet without a check: the payment ended with its reversal, and this is that reversal.
        rev = notice(WECHAT_REFUND, "REV|SUCCESS", out_refund_no=keys.reversal_no(PAY), out_trade_no=OTN,
                     status="SUCCESS")
        assert "enqueued" in service(store, rev, row)            # no reversal on record yet: checked
        store.execute("""INSERT INTO mi_inbox (outbox_id, kind, business_key, result_type, outcome)
                         VALUES (:i, :k, :b, 'reversal', 'ok')""", {"i": pid, "k": KIND_OUTPATIENT, "b": PAY})
        rev2 = notice(WECHAT_REFUND, "REV1|SUCCESS", out_refund_no=keys.reversal_no(PAY, attempt=1),
                      out_trade_no=OTN, status="SUCCESS")
        store.execute("UPDATE mi_outbox SET flow_data = :f WHERE id = :i",
                      {"f": '{"cash_leg": {"number": "%s"}}' % keys.reversal_no(PAY, attempt=1), "i": pid})
        said = service(store, rev2, store.find_request(PAYMENT_KINDS, PAY))
        assert said.startswith("nothing to check") and "ended with its reversal" in said
        # An order without cash: the centre's; a number not ours: recorded only.
        assert service(store, notice(ALIPAY_TRADE, "x", out_trade_no=keys.out_trade_no(PAY, attempt=2),
                                     trade_status="TRADE_SUCCESS", real_amount="0.00"), row).startswith("nothing")
        foreign = ChannelNotice(WECHAT_TRADE, "OTHER1", "OTHER1", None, {"out_trade_no": "OTHER1"})
        assert "recorded only" in service(store, foreign, None)
        assert len(checks(store)) == 2
        # Done, and the payment names this number: the HIS took it.
        store.execute("UPDATE mi_outbox SET state = 'done', flow_data = :f WHERE id = :i",
                      {"f": '{"out_trade_no": "%s"}' % OTN, "i": pid})
        done = store.find_request(PAYMENT_KINDS, PAY)
        assert "is done (the HIS took it)" in service(store, trade, done)
    finally:
        store.close()
