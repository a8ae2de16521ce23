"""Reconciliation end to end, on SQLite, PostgreSQL and MariaDB: a day of mixed traffic through a
real daemon and the simulator over HTTP (tests/reconcile/daytraffic.py), then `mibridge
reconcile` run as the administrator runs it (a subprocess).

The tests of a database run in order on the same day:
  a clean day balances -> re-running it changes nothing -> each injected mismatch shows with its
  class and amounts -> a lost 9101, a refused 9102, a SIGKILL and a run already in progress are
  survived without a duplicate row or report.
"""
from __future__ import annotations

import pytest

from tests.conftest import DIALECTS, make_database

from . import daytraffic
from .daytraffic import D

OFFLINE, MOBILEPAY = "offline", "mobilepay"
LEGS = ("total", "fund", "account")

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


def test_a_clean_day_balances_on_both_platforms(day):
    r = day.reconcile(OFFLINE)
    _ok(r, 0)
    assert "balanced" in r.stdout and "yes" in r.stdout
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

    r = day.reconcile(MOBILEPAY)
    _ok(r, 0)
    mp = day.view(MOBILEPAY)
    assert {k: v["diff_class"] for k, v in mp.items()} == {(o, leg): "balanced" for o in day.mobilepay.values()
                                                           for leg in ("total", "fund", "account", "cash")}
    keys = list(day.mobilepay)
    refunded = mp[(day.mobilepay[keys[0]], "cash")]          # 54.00 cash, 10.00 refunded
    assert refunded["hospital_amount"] == refunded["platform_amount"] == D("44.00")
    reversed_ = mp[(day.mobilepay[keys[1]], "total")]        # the 单边账 repair gave everything back
    assert reversed_["hospital_amount"] == reversed_["platform_amount"] == D("0.00")
    # The HIS got one report per platform: a summary saying balanced.
    for platform in (OFFLINE, MOBILEPAY):
        reports = day.reports(platform)
        assert [(x["code"], x["result"]["balanced"]) for x in reports] == [(None, True)]


def test_the_order_book_for_a_finance_clerk(day):
    import json

    def orders(*args):
        return day.cli("orders", *args)
    tag = day.dialect[:2].upper()
    r = orders("--key", f"S{tag}F3", "--json")
    _ok(r, 0)
    [cancelled] = json.loads(r.stdout)
    assert (cancelled["status"], cancelled["total_amount"], cancelled["refunded_total"], cancelled["refund_count"],
            cancelled["last_refund_key"], cancelled["platform"], cancelled["channel"]) == \
        ("cancelled", "30.00", "30.00", 1, f"C{tag}F3", "facepay", "none")
    paid_key = list(day.mobilepay)[0]
    [paid] = json.loads(orders("--key", paid_key, "--json").stdout)
    assert (paid["status"], paid["fund_amount"], paid["cash_amount"], paid["refunded_cash"]) == \
        ("partly_refunded", "66.00", "54.00", "10.00")
    r = orders("--date", day.day, "--platform", "mobilepay", "--status", "reversed")
    _ok(r, 0)
    assert list(day.mobilepay)[1] in r.stdout and paid_key not in r.stdout
    r = orders("--status", "lost")
    assert r.returncode == 2 and "invalid choice" in r.stderr and "Traceback" not in r.stderr
    # A database that cannot be reached: one line, no traceback.
    r = day.cli("orders", "--url", "postgresql://nobody@127.0.0.1:9/none")
    assert r.returncode == 1 and "mibridge: orders failed:" in r.stderr and "Traceback" not in r.stderr
    r = day.cli("reconcile", "--date", day.day, "--url", "postgresql://nobody@127.0.0.1:9/none")
    assert r.returncode == 1 and "mibridge: reconcile failed:" in r.stderr and "Traceback" not in r.stderr


def test_re_running_a_day_changes_nothing_and_sends_no_second_report(day):
    before = {k: {c: v[c] for c in v if c != "run_id"} for k, v in day.view(OFFLINE).items()}
    r = day.reconcile(OFFLINE)
    _ok(r, 0)
    assert "the HIS has them already" in r.stdout
    after = day.view(OFFLINE)
    assert {k: {c: v[c] for c in v if c != "run_id"} for k, v in after.items()} == before
    assert len({v["run_id"] for v in after.values()}) == 1
    assert [x[1] for x in day.runs(OFFLINE)] == ["done", "done"]
    assert len(day.reports(OFFLINE)) == 1
    # The older run keeps its row (the history) and lost its items.
    old = day.runs(OFFLINE)[0][0]
    assert int(day.store.query("SELECT COUNT(*) FROM mi_recon_item WHERE run_id = :r", {"r": old})[0][0]) == 0


def test_each_injected_mismatch_shows_with_its_class_and_amounts(day):
    tag = day.dialect[:2].upper()
    s = {n: day.facepay[f"{tag}F{n}"] for n in range(1, 6)}
    day.mismatch(kind="missing_at_centre", setl_id=s[1])
    day.mismatch(kind="amount_off", setl_id=s[2], field="fund_pay_sumamt", delta="0.01")
    day.mismatch(kind="extra_refund", setl_id=s[4])
    # A settlement the hospital's book does not hold (its booking was lost): only at the platform.
    day.store.execute("DELETE FROM mi_order WHERE platform_order_id = :k", {"k": s[5]})
    r = day.reconcile(OFFLINE)
    _ok(r, 1)
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
    # The HIS: a second report, its summary and one row per difference; the review list too.
    reports = day.reports(OFFLINE)
    assert [x["code"] for x in reports[1:2]] == ["RECON_DIFFERENCES"]
    rows = {(x["order_id"], x["result"]["leg"]): x["code"] for x in reports[2:]}
    assert rows == {k: f"RECON_{v.upper()}" for k, v in day.differences(OFFLINE).items()}
    review = day.store.query("SELECT order_key, leg, action FROM mi_v_recon_review WHERE platform = 'offline'")
    assert len(review) == 8 and all(r[2] for r in review)
    days_ = day.store.query("SELECT balanced, items_differ FROM mi_v_recon_days WHERE recon_day = :d "
                            "AND platform = 'offline'", {"d": day.day})
    assert (int(days_[0][0]), int(days_[0][1])) == (0, 8)

    # Mobile pay: the book's fund leg off by 0.01 against the centre.
    m3 = day.mobilepay[list(day.mobilepay)[2]]
    day.store.execute("UPDATE mi_order SET fund_amount = fund_amount + 0.01 WHERE platform_order_id = :k", {"k": m3})
    r = day.reconcile(MOBILEPAY)
    _ok(r, 1)
    assert day.differences(MOBILEPAY) == {(m3, "fund"): "amount_differs"}


def _calls(day, platform: str) -> list:
    import json
    rows = day.store.query("SELECT detail_json FROM mi_recon_run WHERE recon_day = :d AND platform = :p "
                           "ORDER BY id DESC", {"d": day.day, "p": platform})
    text = rows[0][0] if isinstance(rows[0][0], str) else rows[0][0].read()
    return [(c["call"].split()[0], c["outcome"]) for c in json.loads(text)["calls"]]


def test_a_lost_9101_is_sent_again_without_a_duplicate(day):
    before = day.view(OFFLINE)
    reports = len(day.reports(OFFLINE))
    day.sim.arm("9101", "lost_after_commit")
    r = day.reconcile(OFFLINE)
    _ok(r, 1)
    assert ("9101", "unknown") in _calls(day, OFFLINE) and ("9101", "ok") in _calls(day, OFFLINE)
    after = day.view(OFFLINE)
    assert {k: v["diff_class"] for k, v in after.items()} == {k: v["diff_class"] for k, v in before.items()}
    assert len(day.reports(OFFLINE)) == reports        # the same differences: no second report


def test_a_refused_9102_asks_3202_again(day):
    before = {k: v["diff_class"] for k, v in day.view(OFFLINE).items()}
    day.sim.arm("9102", "business_error", times=3, message="文件不存在")
    r = day.reconcile(OFFLINE)
    _ok(r, 1)
    calls = _calls(day, OFFLINE)
    # One pair (region, clearing type) asked 3202 twice, every other pair once.
    assert calls.count(("9102", "rejected")) == 3
    assert calls.count(("3202", "ok")) == calls.count(("9101", "ok")) + 1
    assert {k: v["diff_class"] for k, v in day.view(OFFLINE).items()} == before


def test_a_killed_run_never_shows_and_the_next_one_takes_over(day):
    before = {k: v["diff_class"] for k, v in day.view(OFFLINE).items()}
    shown_run = next(iter(day.view(OFFLINE).values()))["run_id"]
    # Killed after it wrote the 3202 result's items: they must never show, and must go.
    r = day.reconcile(OFFLINE, env={"MIBRIDGE_CRASH_AT": "recon_after_items"})
    assert r.returncode in (-9, 137), (r.returncode, r.stderr)
    killed = day.runs(OFFLINE)[-1]
    assert killed[1] == "running"
    assert int(day.store.query("SELECT COUNT(*) FROM mi_recon_item WHERE run_id = :r", {"r": killed[0]})[0][0]) > 0
    assert {v["run_id"] for v in day.view(OFFLINE).values()} == {shown_run}      # the killed run never shows
    # While its heartbeat is fresh, another run is refused: one run per day at a time.
    r = day.reconcile(OFFLINE)
    _ok(r, 3)
    assert "in progress" in r.stdout
    # Its heartbeat goes stale (moved back on the database clock instead of waiting).
    d = day.store.dialect
    day.store.execute(f"UPDATE mi_recon_run SET heartbeat_at = {d.after('back')} WHERE id = :id",
                      {"back": d.seconds(-3600), "id": killed[0]})
    r = day.reconcile(OFFLINE)
    _ok(r, 1)
    runs = day.runs(OFFLINE)
    assert [x[1] for x in runs if x[0] == killed[0]] == ["abandoned"] and runs[-1][1] == "done"
    assert int(day.store.query("SELECT COUNT(*) FROM mi_recon_item WHERE run_id = :r",
                               {"r": killed[0]})[0][0]) == 0
    assert {k: v["diff_class"] for k, v in day.view(OFFLINE).items()} == before
