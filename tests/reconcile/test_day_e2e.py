"""Reconciliation end to end, on SQLite, PostgreSQL and MariaDB: a day of mixed traffic through a
real daemon and the simulator over HTTP (tests/reconcile/daytraffic.py: face pay, mobile pay
through the centre's cashier, WeChat and Alipay, refunds, a 单边账 repair per channel), then
`mibridge reconcile` run as the administrator runs it (a subprocess), against the centre
(3201/3202, 6301) and the real WeChat and Alipay bills the simulator serves.

The tests of a database run in order on the same day:
  a clean day balances on all three sides -> the order book shows each payment's channel
  numbers and refunds -> re-running changes nothing -> each injected mismatch (the centre, the
  book, both bills) shows with its class and amounts -> a lost 9101, a refused 9102, lost bill
  downloads, a SIGKILL (offline and mobile pay) and a run already in progress are survived
  without a duplicate row or report.
"""
from __future__ import annotations

import json
import time

import pytest

from tests.conftest import DIALECTS, make_database
from tests.simulator.spec_client import MobilePayClient as SpecCentre

from . import daytraffic
from .daytraffic import D

OFFLINE, MOBILEPAY, ALL = "offline", "mobilepay", "all"
LEGS = ("total", "fund", "account")
CENTRE_LEGS = ("total", "fund", "account", "cash")
ZERO = D("0.00")

# One day of traffic, then its reconciliations in order: the tests of a database share the
# module fixture's day, so under xdist (--dist loadgroup) they run on one worker, in order
# (tests/conftest.py groups the tests of a module fixture by its parameter); the three
# databases' days run side by side.


@pytest.fixture(scope="module", params=DIALECTS)
def day(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"recon-{request.param}")
    url, drop = make_database(request.param, tmp)
    e = daytraffic.start(request.param, url, tmp)
    try:
        daytraffic.traffic(e)
        yield e
    finally:
        rc = e.stop()
        drop()
        assert rc == 0, e.proc.tail()


def _ok(r, code: int):
    assert r.returncode == code, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout


def _paid(p) -> dict:
    """What a mobile payment of the day was paid: 120.00, 390 -> fund 66 (M0), 310 -> fund 84."""
    fund = D("66.00") if p.channel is None else D("84.00")
    return {"total": D("120.00"), "fund": fund, "account": ZERO, "cash": D("120.00") - fund}


def _refunded(p) -> dict:
    paid = _paid(p)
    if p.fate in ("refunded", "reversed"):
        return dict(paid)
    cash = D("10.00") if p.fate == "partly" else ZERO
    return {"total": cash, "fund": ZERO, "account": ZERO, "cash": cash}


def test_a_clean_day_balances_on_all_three_sides(day):
    r = day.reconcile(ALL)
    _ok(r, 0)
    assert "balanced" in r.stdout and "yes" in r.stdout and "offline" in r.stdout and "mobilepay" in r.stdout
    view = day.view(OFFLINE)
    assert {k: v["diff_class"] for k, v in view.items()} == {(s, leg): "balanced" for s in day.facepay.values()
                                                             for leg in LEGS}
    tag = day.dialect[:2].upper()
    first = view[(day.facepay[f"{tag}F1"], "total")]
    assert (first["hospital_amount"], first["platform_amount"], first["business_key"]) == \
        (D("100.00"), D("100.00"), f"S{tag}F1")
    # The settlement cancelled that day nets to nothing on both sides.
    cancelled = view[(day.facepay[f"{tag}F3"], "total")]
    assert cancelled["hospital_amount"] == cancelled["platform_amount"] == D("0.00")

    mp = day.view(MOBILEPAY)
    want = {(p.pay_ord_id, leg): "balanced" for p in day.payments.values()
            for leg in CENTRE_LEGS + (("channel",) if p.channel else ())}
    assert {k: v["diff_class"] for k, v in mp.items()} == want
    for name, p in day.payments.items():
        paid, refunded = _paid(p), _refunded(p)
        # The centre holds what is left of the insurance, and of the cash unless a channel gave
        # it back (the centre never moves a channel payment's cash: 6203 HI only).
        for leg in ("fund", "cash"):
            left = paid[leg] - (refunded[leg] if leg == "fund" or p.channel is None else ZERO)
            got = mp[(p.pay_ord_id, leg)]
            assert (got["hospital_amount"], got["platform_amount"]) == (left, left), (name, leg, got)
        if p.channel:
            # The cash that moved in the channel that day: paid minus given back, on both sides.
            got = mp[(p.pay_ord_id, "channel")]
            net = paid["cash"] - refunded["cash"]
            assert (got["hospital_amount"], got["channel_amount"], got["channel"], got["channel_ref"]) == \
                (net, net, p.channel, p.out_trade_no), (name, got)
    # The bills were the channels' real files: every payment, refund and reversal a row.
    run = mp[(day.payments["WX1"].pay_ord_id, "total")]["run_id"]
    bills = {r[0]: int(r[1]) for r in day.store.query(
        "SELECT channel, COUNT(*) FROM mi_channel_bill WHERE run_id = :r GROUP BY channel", {"r": run})}
    moves = {c: sum(1 + len(p.refunds) + (p.fate == "reversed") for p in day.payments.values() if p.channel == c)
             for c in ("wechat", "alipay")}
    assert bills == moves
    # The HIS got one report per platform: a summary saying balanced.
    for platform in (OFFLINE, MOBILEPAY):
        reports = day.reports(platform)
        assert [(x["code"], x["result"]["balanced"]) for x in reports] == [(None, True)]


def test_the_order_book_for_a_finance_clerk(day):
    def orders(*args):
        return day.cli("orders", *args)
    tag = day.dialect[:2].upper()
    r = orders("--date", day.day, "--json")
    _ok(r, 0)
    book = {o["business_key"]: o for o in json.loads(r.stdout)}
    cancelled = book[f"S{tag}F3"]
    assert (cancelled["status"], cancelled["total_amount"], cancelled["refunded_total"], cancelled["refund_count"],
            cancelled["last_refund_key"], cancelled["platform"], cancelled["channel"]) == \
        ("cancelled", "30.00", "30.00", 1, f"C{tag}F3", "facepay", "none")
    status = {"kept": "paid", "partly": "partly_refunded", "refunded": "refunded", "reversed": "reversed"}
    for name, p in day.payments.items():
        o = book[p.key]
        paid, refunded = _paid(p), _refunded(p)
        assert (o["platform_order_id"], o["status"], o["channel"]) == \
            (p.pay_ord_id, status[p.fate], p.channel or "unknown"), (name, o)
        assert [o[f"{leg}_amount"] for leg in ("total", "fund", "account", "cash")] == \
            [str(paid[leg]) for leg in ("total", "fund", "account", "cash")], (name, o)
        assert [o[f"refunded_{leg}"] for leg in ("total", "fund", "account", "cash")] == \
            [str(refunded[leg]) for leg in ("total", "fund", "account", "cash")], (name, o)
        assert o["refund_count"] == (1 if p.fate == "reversed" else len(p.refunds)), (name, o)
        assert o["last_refund_key"] == (p.key if p.fate == "reversed" else (p.refunds or [None])[-1]), (name, o)
        if p.channel is None:
            assert (o["out_trade_no"], o["mix_trade_no"], o["trade_no"]) == (None, None, None)
            continue
        # The channel's numbers, as the settlement row carried them.
        s = p.settlement
        medical, trade = ("mix_trade_no", "transaction_id") if p.channel == "wechat" else ("chnl_ord_sn", "trade_no")
        assert s.get(medical) and s.get(trade), (name, s)
        assert (o["out_trade_no"], o["mix_trade_no"], o["trade_no"]) == (s["out_trade_no"], s[medical], s[trade]), \
            (name, o, s)
    # Each refund and reversal of a channel payment keeps the channel's refund number.
    for name, p in day.payments.items():
        rows = day.store.query("""SELECT business_key, refund_type, out_refund_no FROM mi_v_order_refunds
                                   WHERE payment_key = :k ORDER BY refund_id""", {"k": p.key})
        inbox = {r[0]: json.loads(r[1]) for r in day.store.query(
            "SELECT business_key, result_json FROM mi_inbox WHERE result_type IN ('refund', 'reversal') "
            "AND (business_key = :k OR business_key LIKE :rk)", {"k": p.key, "rk": f"RF%-{p.key}"})}
        want = [(p.key, "reversal")] if p.fate == "reversed" else [(k, "refund") for k in p.refunds]
        assert [(r[0], r[1]) for r in rows] == want, name
        for bkey, _, out_refund_no in rows:
            assert out_refund_no == inbox[bkey].get("out_refund_no"), (name, bkey)
            assert (out_refund_no is not None) == (p.channel is not None), (name, bkey)
    r = orders("--channel", "alipay", "--status", "reversed")
    _ok(r, 0)
    assert day.payments["AL2"].key in r.stdout and day.payments["WX2"].key not in r.stdout
    if day.dialect != "sqlite":
        return          # what follows is the CLI's, not the database's
    r = orders("--status", "lost")
    assert r.returncode == 2 and "invalid choice" in r.stderr and "Traceback" not in r.stderr
    # A database that cannot be reached: one line, no traceback.
    r = day.cli("orders", "--url", "postgresql://nobody@127.0.0.1:9/none")
    assert r.returncode == 1 and "mibridge: orders failed:" in r.stderr and "Traceback" not in r.stderr
    r = day.cli("reconcile", "--date", day.day, "--url", "postgresql://nobody@127.0.0.1:9/none")
    assert r.returncode == 1 and "mibridge: reconcile failed:" in r.stderr and "Traceback" not in r.stderr


def _same(view: dict) -> dict:
    return {k: {c: v[c] for c in v if c != "run_id"} for k, v in view.items()}


def test_re_running_a_day_changes_nothing_and_sends_no_second_report(day):
    before = {platform: _same(day.view(platform)) for platform in (OFFLINE, MOBILEPAY)}
    r = day.reconcile(ALL)
    _ok(r, 0)
    assert r.stdout.count("the HIS has them already") == 2
    for platform in (OFFLINE, MOBILEPAY):
        after = day.view(platform)
        assert _same(after) == before[platform]
        assert len({v["run_id"] for v in after.values()}) == 1
        assert [x[1] for x in day.runs(platform)] == ["done", "done"]
        assert len(day.reports(platform)) == 1
        # The older run keeps its row (the history) and lost its items and bill rows.
        old = day.runs(platform)[0][0]
        for table in ("mi_recon_item", "mi_channel_bill"):
            assert int(day.store.query(f"SELECT COUNT(*) FROM {table} WHERE run_id = :r", {"r": old})[0][0]) == 0


def test_each_injected_mismatch_shows_with_its_class_and_amounts(day):
    """Offline: the centre's statement and the book; mobile pay: the centre, the book and both
    bills.  One `mibridge reconcile --platform all`."""
    tag = day.dialect[:2].upper()
    s = {n: day.facepay[f"{tag}F{n}"] for n in range(1, 6)}
    day.sim.mismatch(kind="missing_at_centre", setl_id=s[1])
    day.sim.mismatch(kind="amount_off", setl_id=s[2], field="fund_pay_sumamt", delta="0.01")
    day.sim.mismatch(kind="extra_refund", setl_id=s[4])
    # A settlement the hospital's book does not hold (its booking was lost): only at the platform.
    day.store.execute("DELETE FROM mi_order WHERE platform_order_id = :k", {"k": s[5]})
    _mobile_mismatches(day)
    requests = _requests(day)
    r = day.reconcile(ALL)
    _ok(r, 1)
    # Differences are reported and listed; no request is held or changed because of them.
    after = _requests(day)
    assert {k: after[k] for k in requests} == requests
    assert [k for k, v in after.items() if v[0] == "held"] == []
    view = day.view(OFFLINE)
    assert day.differences(OFFLINE) == {
        (s[1], "total"): "hospital_only", (s[1], "fund"): "hospital_only", (s[1], "account"): "hospital_only",
        (s[2], "fund"): "amount_differs",
        (s[4], "total"): "amount_differs", (s[4], "fund"): "amount_differs",
        (s[5], "total"): "platform_only", (s[5], "fund"): "platform_only"}
    missing = view[(s[1], "total")]
    assert (missing["hospital_amount"], missing["platform_amount"]) == (D("100.00"), None)
    off = view[(s[2], "fund")]
    assert off["platform_amount"] - off["hospital_amount"] == D("0.01")
    assert view[(s[2], "total")]["diff_class"] == "balanced"
    extra = view[(s[4], "total")]       # the centre cancelled it on its own: nothing left there
    assert (extra["hospital_amount"], extra["platform_amount"]) == (D("100.00"), D("0.00"))
    only = view[(s[5], "total")]
    assert (only["hospital_amount"], only["platform_amount"]) == (None, D("12.30"))
    assert view[(s[5], "account")]["diff_class"] == "balanced"         # 0.00 against nothing
    _reported_and_listed(day, OFFLINE, 8)
    _mobile_mismatches_shown(day)


def _requests(day) -> dict[int, tuple]:
    return {int(r[0]): tuple(r[1:]) for r in day.store.query(
        "SELECT id, state, step, last_error_code FROM mi_outbox WHERE kind <> 'reconciliation.report'")}


def _reported_and_listed(day, platform: str, n: int) -> None:
    """The HIS got a second report (its summary, one row per difference); the review list and
    the day's check say the same."""
    reports = day.reports(platform)
    assert [x["code"] for x in reports[1:2]] == ["RECON_DIFFERENCES"]
    rows = {(x["order_id"], x["result"]["leg"]): x["code"] for x in reports[2:]}
    assert rows == {k: f"RECON_{v.upper()}" for k, v in day.differences(platform).items()}
    review = day.store.query("SELECT order_key, leg, action FROM mi_v_recon_review WHERE platform = :p",
                             {"p": platform})
    assert len(review) == n and all(r[2] for r in review)
    days_ = day.store.query("SELECT balanced, items_differ FROM mi_v_recon_days WHERE recon_day = :d "
                            "AND platform = :p", {"d": day.day, "p": platform})
    assert (int(days_[0][0]), int(days_[0][1])) == (0, n)


def _mobile_mismatches(day) -> None:
    p = day.payments
    # The channels' bills: WX1's rows missing, AL4's payment 0.01 more, a refund of AL1 nobody asked for.
    day.sim.bill_mismatch(channel="wechat", date=day.day, kind="drop", out_trade_no=p["WX1"].out_trade_no)
    day.sim.bill_mismatch(channel="alipay", date=day.day, kind="amount", out_trade_no=p["AL4"].out_trade_no,
                          delta="0.01")
    day.sim.bill_mismatch(channel="alipay", date=day.day, kind="extra_refund", out_trade_no=p["AL1"].out_trade_no,
                          delta="2.00")
    # The centre: WX4's insurance refunded there, not by the hospital (a 6203 of its own).
    env, _ = SpecCentre(day.sim.url, day.sim.creds).call("6203", {
        "payOrdId": p["WX4"].pay_ord_id, "appRefdSn": f"EXTRA{p['WX4'].key}",
        "appRefdTime": time.strftime("%Y%m%d%H%M%S"), "totlRefdAmt": "84.00", "psnAcctRefdAmt": "0.00",
        "fundRefdAmt": "84.00", "cashRefdAmt": "0.00", "payAuthNo": "AUTHX", "refdType": "HI"})
    assert env["code"] == 0, env
    # The book: M0's fund leg off by 0.01; WX5's booking lost (the centre and WeChat have it).
    day.store.execute("UPDATE mi_order SET fund_amount = fund_amount + 0.01 WHERE platform_order_id = :k",
                      {"k": p["M0"].pay_ord_id})
    day.store.execute("DELETE FROM mi_order WHERE platform_order_id = :k", {"k": p["WX5"].pay_ord_id})


def _mobile_mismatches_shown(day) -> None:
    p = day.payments
    wx1, wx4, wx5, al1, al4, m0 = (p[n].pay_ord_id for n in ("WX1", "WX4", "WX5", "AL1", "AL4", "M0"))
    otn5 = p["WX5"].out_trade_no
    diffs = {k: (v["diff_class"], v["hospital_amount"], v["platform_amount"], v["channel_amount"])
             for k, v in day.view(MOBILEPAY).items() if v["diff_class"] != "balanced"}
    assert diffs == {
        (wx1, "channel"): ("hospital_only", D("26.00"), None, None),                  # dropped from the bill
        (al4, "channel"): ("amount_differs", D("36.00"), None, D("36.01")),           # paid 0.01 more
        (al1, "channel"): ("amount_differs", D("26.00"), None, D("24.00")),           # a refund nobody asked for
        (wx4, "fund"): ("amount_differs", D("84.00"), D("0.00"), None),               # refunded at the centre
        (wx4, "total"): ("amount_differs", D("120.00"), D("36.00"), None),
        (m0, "fund"): ("amount_differs", D("66.01"), D("66.00"), None),               # the book 0.01 off
        (wx5, "total"): ("platform_only", None, D("120.00"), None),                   # the book lost it
        (wx5, "fund"): ("platform_only", None, D("84.00"), None),
        (wx5, "cash"): ("platform_only", None, D("36.00"), None),
        (otn5, "channel"): ("channel_only", None, None, D("36.00"))}
    view = day.view(MOBILEPAY)
    assert view[(wx5, "total")]["business_key"] == p["WX5"].key         # found through its request
    assert view[(otn5, "channel")]["channel"] == "wechat"
    _reported_and_listed(day, MOBILEPAY, len(diffs))


def _calls(day, platform: str) -> list:
    rows = day.store.query("SELECT detail_json FROM mi_recon_run WHERE recon_day = :d AND platform = :p "
                           "ORDER BY id DESC", {"d": day.day, "p": platform})
    text = rows[0][0] if isinstance(rows[0][0], str) else rows[0][0].read()
    return [(c["call"], c["outcome"]) for c in json.loads(text)["calls"]]


def _bill_rows(day) -> dict:
    run = next(iter(day.view(MOBILEPAY).values()))["run_id"]
    return {r[0]: int(r[1]) for r in day.store.query(
        "SELECT channel, COUNT(*) FROM mi_channel_bill WHERE run_id = :r GROUP BY channel", {"r": run})}


def test_lost_calls_are_made_again_without_a_duplicate(day):
    """A 9101 whose answer is lost after the centre stored the file, a WeChat bill download
    reset, an Alipay bill address whose answer is lost: each asked again, the same results, no
    duplicate bill row, no second report."""
    before = {p: _same(day.view(p)) for p in (OFFLINE, MOBILEPAY)}
    reports = {p: len(day.reports(p)) for p in (OFFLINE, MOBILEPAY)}
    bills = _bill_rows(day)
    day.sim.arm("9101", "lost_after_commit")
    day.sim.arm("wechat.billdownload", "reset")
    day.sim.arm("alipay.data.dataservice.bill.downloadurl.query", "lost_after_commit")
    r = day.reconcile(ALL)
    _ok(r, 1)
    calls = [(c.split()[0], o) for c, o in _calls(day, OFFLINE)]
    assert ("9101", "unknown") in calls and ("9101", "ok") in calls
    calls = _calls(day, MOBILEPAY)
    for channel in ("wechat", "alipay"):
        mine = [o for c, o in calls if c == f"bill {channel}"]
        assert mine[-1] == "ok" and len(mine) == 2 and mine[0] != "ok", calls
    for p in (OFFLINE, MOBILEPAY):
        assert _same(day.view(p)) == before[p]
        assert len(day.reports(p)) == reports[p]        # the same differences: no second report
    assert _bill_rows(day) == bills


def test_a_refused_9102_asks_3202_again(day):
    before = {k: v["diff_class"] for k, v in day.view(OFFLINE).items()}
    day.sim.arm("9102", "business_error", times=3, message="文件不存在")
    r = day.reconcile(OFFLINE)
    _ok(r, 1)
    calls = [(c.split()[0], o) for c, o in _calls(day, OFFLINE)]
    # One pair (region, clearing type) asked 3202 twice, every other pair once.
    assert calls.count(("9102", "rejected")) == 3
    assert calls.count(("3202", "ok")) == calls.count(("9101", "ok")) + 1
    assert {k: v["diff_class"] for k, v in day.view(OFFLINE).items()} == before


@pytest.mark.parametrize("platform, point, table", [(OFFLINE, "recon_after_items", "mi_recon_item"),
                                                    (MOBILEPAY, "recon_after_bills", "mi_channel_bill")])
def test_a_killed_run_never_shows_and_the_next_one_takes_over(day, platform, point, table):
    before = {k: v["diff_class"] for k, v in day.view(platform).items()}
    shown_run = next(iter(day.view(platform).values()))["run_id"]
    # Killed after it wrote rows (the 3202 result's items; the bills' rows): they must never
    # show, and must go.
    r = day.reconcile(platform, env={"MIBRIDGE_CRASH_AT": point})
    assert r.returncode in (-9, 137), (r.returncode, r.stderr)
    killed = day.runs(platform)[-1]
    assert killed[1] == "running"
    assert int(day.store.query(f"SELECT COUNT(*) FROM {table} WHERE run_id = :r", {"r": killed[0]})[0][0]) > 0
    assert {v["run_id"] for v in day.view(platform).values()} == {shown_run}      # the killed run never shows
    # While its heartbeat is fresh, another run is refused: one run per day at a time.  (The
    # heartbeat is set on the database clock, a minute ahead: the CLI may take longer to start
    # than stale_seconds on a loaded machine; then an hour back: stale.)
    d = day.store.dialect

    def beat(seconds: float) -> None:
        day.store.execute(f"UPDATE mi_recon_run SET heartbeat_at = {d.after('at')} WHERE id = :id",
                          {"at": d.seconds(seconds), "id": killed[0]})
    if platform == OFFLINE:         # (the same code for both platforms: runs.start)
        beat(60)
        r = day.reconcile(platform)
        _ok(r, 3)
        assert "in progress" in r.stdout
    beat(-3600)
    r = day.reconcile(platform)
    _ok(r, 1)
    runs = day.runs(platform)
    assert [x[1] for x in runs if x[0] == killed[0]] == ["abandoned"] and runs[-1][1] == "done"
    for t in ("mi_recon_item", "mi_channel_bill"):
        assert int(day.store.query(f"SELECT COUNT(*) FROM {t} WHERE run_id = :r", {"r": killed[0]})[0][0]) == 0
    assert {k: v["diff_class"] for k, v in day.view(platform).items()} == before
