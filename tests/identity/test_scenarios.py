"""The identity and kiosk kinds end to end on SQLite, PostgreSQL and MariaDB: the region
list, lookups by ID + region, payAuthNo, QR and card, the uninsured and the unknown, a
choice among several insurances written back to mi_identity, mobile pay asking for the
choice and then paying under the one written back (its 1101 path, payAuthNo without psn_no,
no insutype in the payment), and a kiosk registration that pays its fee and is cancelled
again."""
from __future__ import annotations

from decimal import Decimal

import pytest

from tests.facepay_flows.conftest import money_invariants

from .conftest import FENG, QIAN, SUN, WU, ZHANG, ZHENG, enqueue_visit, key, mobile_payment, reg_fee, visit

# The scenarios share one daemon per database (the module fixture `t`), and the last one reads
# what all the others left: they run in order on one xdist worker (--dist loadgroup).
pytestmark = pytest.mark.xdist_group("identity_scenarios")

D = Decimal
LOOKUP, CHOOSE = "identity.lookup", "identity.choose"


def test_region_list_lookup_by_id_and_region_then_a_choice_written_back(t):
    dialect, sim, his, proc = t
    assert his.regions_ready() == ["440100", "440300"]
    wu = sim.person(WU)
    # By ID number, name and the region the patient chose: one insurance there, written back.
    k = key("LK")
    assert his.run(LOOKUP, k, {"certno": wu["certno"], "psn_name": wu["psn_name"], "insuplc_admdvs": "440300",
                               "his_patient_id": "P-WU"}) == "done"
    r = his.one(LOOKUP, k, "identity")
    assert (r["outcome"], r["result"]["choices"], r["result"]["written_back"]) == ("ok", 1, True)
    assert [(i["insutype"], i["insuplc_admdvs"], i["region_name"], i["benefit"]["status"])
            for i in r["result"]["insurances"]] == [("390", "440300", "深圳市", "enjoyed")]
    assert r["result"]["certno"] == wu["certno"][:4] + "*" * 10 + wu["certno"][-4:]
    ident = his.identity("P-WU")
    assert (ident["insutype"], ident["insuplc_admdvs"], ident["chosen"], ident["source_kind"]) == \
        ("390", "440300", 0, LOOKUP)

    # By payAuthNo, no region: both insurances; the patient chooses the 310.
    k2 = key("LK")
    assert his.run(LOOKUP, k2, {"pay_auth_no": sim.authorize(WU), "his_patient_id": "P-WU"}, serial=k2) == "done"
    r = his.one(LOOKUP, k2, "identity")["result"]
    assert (r["choices"], r["choose"]) == (2, True) and "written_back" not in r
    assert [(i["insutype"], i["insuplc_admdvs"], i["balc"]) for i in r["insurances"]] == \
        [("310", "440100", "800.00"), ("390", "440300", "0.00")]
    assert his.run(CHOOSE, key("CH"), {"lookup_key": k2}, serial=k2) == "failed"      # none chosen
    c = key("CH")
    assert his.run(CHOOSE, c, {"lookup_key": k2, "insutype": "310"}, serial=k2) == "done"
    row = his.one(CHOOSE, c, "identity_choice")["result"]
    assert (row["insutype"], row["insuplc_admdvs"], row["region_name"], row["psn_no"]) == \
        ("310", "440100", "广州市", WU)
    ident = his.identity("P-WU")
    assert ident == {"psn_no": WU, "insuplc_admdvs": "440100", "insutype": "310", "benefit": "11",
                     "psn_cert_type": "01", "psn_type": "11", "med_type": "11", "benefit_status": "enjoyed",
                     "certno_masked": wu["certno"][:4] + "*" * 10 + wu["certno"][-4:], "psn_name_masked": "吴*",
                     "gend": "1", "chosen": 1, "source_kind": CHOOSE}
    # The whole ID number and the name are nowhere the HIS reads.
    for table, col in (("mi_inbox", "result_json"), ("mi_outbox", "flow_data")):
        text = " ".join(str(v[0]) for v in his.store.query(f"SELECT {col} FROM {table} WHERE business_key IN "
                                                           "(:a, :b)", {"a": k2, "b": c}))
        assert wu["certno"] not in text and "吴十" not in text, (table, text)


def test_lookup_by_qr_and_by_card_at_the_kiosk(t):
    dialect, sim, his, proc = t
    sim.qr(ZHENG)
    k = key("QR")
    assert his.run(LOOKUP, k, {"terminal": "qr", "his_patient_id": "P-ZHENG"}) == "done"
    r = his.one(LOOKUP, k, "identity")["result"]
    zheng = sim.person(ZHENG)
    # At a kiosk the HIS learns who stands there only from this row: the identity is whole.
    assert (r["route"], r["certno"], r["psn_name"], r["insu_org"]) == ("qr", zheng["certno"], "郑十一", "440100")
    (ins,) = r["insurances"]
    assert ins["benefit"]["status"] == "restricted" and "门诊统筹" in ins["benefit"]["restrictions"][0]["reason"]
    assert his.identity("P-ZHENG")["benefit_status"] == "restricted"
    reads = sim.state()["terminal_reads"]
    assert reads[-1]["kind"] == "ec.query" and reads[-1]["deviceType"] == "SelfService"

    sim.card(WU)
    k = key("CARD")
    assert his.run(LOOKUP, k, {"terminal": "card"}) == "done"
    r = his.one(LOOKUP, k, "identity")["result"]
    assert r["route"] == "card" and [i["insutype"] for i in r["insurances"]] == ["310", "390"]
    # The kiosk ran as a self-service terminal (opter_type 2), signed in as itself.
    assert "KIOSK01" in [s["opter_no"] for s in sim.state()["sign_ins"]]


def test_uninsured_unknown_and_a_region_the_hospital_does_not_offer(t):
    dialect, sim, his, proc = t
    cases = [({"certno": sim.person(FENG)["certno"], "psn_name": "冯十二", "insuplc_admdvs": "440100"}, "NOT_INSURED"),
             ({"pay_auth_no": sim.authorize(QIAN)}, "NOT_INSURED"),
             ({"certno": "440106199912120019", "psn_name": "无此人", "insuplc_admdvs": "440100"}, "PERSON_NOT_FOUND"),
             ({"certno": sim.person(SUN)["certno"], "psn_name": "孙八", "insuplc_admdvs": "442000"},
              "REGION_NOT_OFFERED"),
             ({"pay_auth_no": sim.authorize(SUN)}, "NOT_INSURED")]      # insured only where the hospital is not
    keys = []
    for doc, _ in cases:
        keys.append(key("LK"))
        his.enqueue(LOOKUP, keys[-1], doc)
    for k, (doc, code) in zip(keys, cases):
        assert his.wait(LOOKUP, k) == "failed"
        r = his.one(LOOKUP, k, "identity")
        assert (r["outcome"], r["code"]) == ("failed", code), (doc, r)
    assert "not in the hospital's region list" in his.one(LOOKUP, keys[-1], "identity")["message"]


def test_mobile_pay_asks_for_the_choice_then_pays_under_it(t):
    dialect, sim, his, proc = t
    # payAuthNo without psn_no: 1101 finds two insurances in force, none chosen.
    k = key("MP")
    assert his.run("mobilepay.outpatient", k, mobile_payment(sim, WU)) == "failed"
    r = his.one("mobilepay.outpatient", k, "error")
    assert r["code"] == "CHOOSE_INSURANCE"
    assert [(i["insutype"], i["insuplc_admdvs"]) for i in r["result"]["insurances"]] == \
        [("310", "440100"), ("390", "440300")]
    assert not sim.state()["orders"]                       # nothing was ordered

    # The patient chooses the 390 in the mini-program (a lookup, then identity.choose writes it
    # back to mi_identity); the HIS's next payment names no insurance and is paid under it.
    lk, serial = key("LK"), key("PAT")
    assert his.run(LOOKUP, lk, {"pay_auth_no": sim.authorize(WU), "his_patient_id": f"P{WU[-4:]}"},
                   serial=serial) == "done"
    assert his.run(CHOOSE, key("CH"), {"lookup_key": lk, "insutype": "390"}, serial=serial) == "done"
    k = key("MP")
    his.enqueue("mobilepay.outpatient", k, mobile_payment(sim, WU))
    order = _wait_row(his, "mobilepay.outpatient", k, "order")
    sim.pay(order["result"]["payOrdId"])
    assert his.wait("mobilepay.outpatient", k) == "done"
    s = his.one("mobilepay.outpatient", k, "settlement")
    o = sim.state()["orders"][order["result"]["payOrdId"]]
    assert (o["psnNo"], s["account"]) == (WU, D("0.00"))        # the 390 has no personal account
    (req,) = [r[0] for r in his.store.query(
        "SELECT j.request_masked FROM mi_journal j JOIN mi_outbox o ON o.id = j.outbox_id "
        "WHERE o.business_key = :k AND j.interface = '6201'", {"k": k})]
    assert '"insutype":"390"' in req.replace(" ", "") and '"insuCode":"440300"' in req.replace(" ", ""), req
    ident = his.identity(f"P{WU[-4:]}")
    assert (ident["insutype"], ident["insuplc_admdvs"], ident["chosen"], ident["source_kind"]) == \
        ("390", "440300", 1, "mobilepay.outpatient")


def _wait_row(his, kind, k, result_type, timeout=20.0):
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = [r for r in his.inbox(kind, k) if r["type"] == result_type]
        if rows:
            return rows[0]
        time.sleep(0.1)
    raise AssertionError(f"no {result_type} row for {k}: {his.inbox(kind, k)} {his.row(kind, k)}")


def kiosk_visit(his, sim, psn_no: str, *, face_pay=None, amount="10.00"):
    """Card read -> lookup -> register -> presettle -> settle, one serial key; returns the keys."""
    serial = key("VISIT")
    sim.card(psn_no)
    ks = {n: key(n.upper()) for n in ("lookup", "register", "pre", "settle")}
    assert his.run(LOOKUP, ks["lookup"], {"terminal": "card"}, serial=serial) == "done"
    insutype = sim.person(psn_no)["insutype"]
    assert his.run("kiosk.register", ks["register"], {"lookup_key": ks["lookup"], "insutype": insutype,
                                                      "visit": visit(serial[-6:])}, serial=serial) == "done"
    pre = dict(reg_fee("B" + serial[-8:], amount), register_key=ks["register"])
    if face_pay is not None:
        pre["face_pay"] = face_pay
    assert his.run("kiosk.presettle", ks["pre"], pre, serial=serial) == "done"
    assert his.run("kiosk.settle", ks["settle"], {"presettle_key": ks["pre"]}, serial=serial) == "done"
    return serial, ks


def test_kiosk_registration_pays_its_fee_and_is_cancelled(t):
    dialect, sim, his, proc = t
    serial, ks = kiosk_visit(his, sim, ZHANG)
    reg = his.one("kiosk.register", ks["register"], "registration")["result"]
    st = sim.state()
    assert st["visit_identity"][reg["mdtrt_id"]] == {"insutype": "310", "insuplc_admdvs": "440100",
                                                     "ipt_otp_no": f"OP{serial[-6:]}", "opter_type": "2"}
    s = his.one("kiosk.settle", ks["settle"], "settlement")
    assert s["result"]["platform"] == "kiosk" and s["result"]["face_pay"] is True     # the real account
    assert (s["total"], s["account"]) == (D("10.00"), D("3.00"))
    assert st["persons"][ZHANG] == "997.00"
    # Booked like a face-pay outpatient settlement, with what 3201/3202 group and list it by.
    (b,) = his.store.query("SELECT platform, kind, channel, psn_no, mdtrt_id, insutype, clr_type, setl_optins, "
                           "settle_day, total_amount, account_amount FROM mi_order WHERE platform_order_id = :s",
                           {"s": s["setl_id"]})
    setl = st["settlements"][s["setl_id"]]
    assert tuple(b[:9]) == ("kiosk", "kiosk.settle", "none", ZHANG, reg["mdtrt_id"], "310", setl["clr_type"],
                            "440100", setl["setl_time"][:10]), b
    assert (D(str(b[9])), D(str(b[10]))) == (D("10.00"), D("3.00"))
    assert (s["result"]["psn_no"], s["result"]["insutype"], s["result"]["clr_type"]) == \
        (ZHANG, "310", setl["clr_type"])

    # The registration cannot go while its fee is settled: cancel the settlement first.
    k = key("REGX")
    assert his.run("kiosk.register_cancel", k, {"register_key": ks["register"]}, serial=serial) == "failed"
    assert his.one("kiosk.register_cancel", k, "error")["code"] == "SETTLEMENT_STANDS"
    k = key("CANCEL")
    assert his.run("kiosk.cancel", k, {"settle_key": ks["settle"]}, serial=serial) == "done"
    c = his.one("kiosk.cancel", k, "cancellation")
    assert (c["setl_id"], c["result"]["platform"], c["result"]["account_refund"]) == (s["setl_id"], "kiosk", "core")
    k = key("REGX")
    assert his.run("kiosk.register_cancel", k, {"register_key": ks["register"]}, serial=serial) == "done"
    assert his.one("kiosk.register_cancel", k, "registration_cancellation")["result"]["mdtrt_id"] == reg["mdtrt_id"]
    st = sim.state()
    assert st["persons"][ZHANG] == "1000.00" and not st["visits"][reg["mdtrt_id"]]["active"]
    assert not st["settlements"][s["setl_id"]]["valid"]
    refunds = his.store.query("SELECT kind, platform FROM mi_order_refund WHERE platform_order_id = :s",
                              {"s": s["setl_id"]})
    assert [tuple(r) for r in refunds] == [("kiosk.cancel", "kiosk")]

    if dialect == "sqlite":
        # Without the real account (face_pay false): the plain settlement, the account untouched.
        serial, ks = kiosk_visit(his, sim, WU, face_pay=False)
        s = his.one("kiosk.settle", ks["settle"], "settlement")
        assert (s["result"]["face_pay"], s["account"], s["cash"]) == (False, D("0.00"), D("3.00"))
        assert sim.state()["persons"][WU] == "800.00"


def test_faults_on_every_call_of_a_kiosk_visit(t):
    """Faults on every call of a kiosk visit (lookup by card, registration, fee, cancels)."""
    dialect, sim, his, proc = t
    sim.card(ZHANG)
    # Reads: a busy 1101, a gateway refusing our signature (never forwarded), 2001 and the
    # card reader failing once.  None of them may end the lookup as "person not found".
    sim.arm("ReadCardBas", "http500")
    sim.arm("1101", "business_error", message="系统繁忙,请稍后再试")
    sim.arm("1101", "bad_signature")
    sim.arm("2001", "http500")
    # 2201: the first one fails before the centre books it, the second is booked and its
    # answer lost; the query that resolves them (5201) fails once too.
    sim.arm("2201", "http500")
    sim.arm("2201", "lost_after_commit")
    sim.arm("5201", "http500")
    # Every other call that changes something loses its answer once after the platform booked it.
    for iface in ("2207", "2202"):
        sim.arm(iface, "lost_after_commit")
    sim.arm("2208", "timeout")
    ks = enqueue_visit(his, key("VISIT"))
    for kind, k in (("kiosk.settle", ks["settle"]), ("kiosk.register_cancel", ks["unreg"])):
        assert his.wait(kind, k, timeout=60) == "done", (his.row(kind, k), proc.tail())
    st = money_invariants(sim, {ZHANG: "1000.00"})
    fired = {f["interface"] for f in st["faults_fired"]}
    assert {"ReadCardBas", "1101", "2001", "2201", "5201", "2207", "2208", "2202"} <= fired, fired
    # Neither lost 2201 was sent again blind: 5201 found nothing for the first (so, after the
    # window, the second was a first send) and the visit of the second: one registration.
    reg = his.one("kiosk.register", ks["register"], "registration")["result"]
    assert "5201" in reg["confirmed_by"] and "lost_msgids" not in reg
    visits = [k for k, v in st["visit_identity"].items() if v["ipt_otp_no"] == reg["ipt_otp_no"]]
    assert visits == [reg["mdtrt_id"]]
    calls = [r[0] for r in his.store.query(
        "SELECT j.interface FROM mi_journal j JOIN mi_outbox o ON o.id = j.outbox_id "
        "WHERE o.business_key = :k ORDER BY j.id", {"k": ks["register"]})]
    # 2201, then 5201 until the window passed (the first failed), 2201 again, 5201 found it.
    assert calls.count("2201") == 2 and calls[0] == "2201" and calls[-2:] == ["2201", "5201"], calls
    assert set(calls[1:-2]) == {"5201"} and len(calls[1:-2]) >= 2, calls
    # The lost 2207 was reversed by 2601 and settled again: one settlement row for the HIS,
    # one settlement valid at the centre until the cancel, none after it.
    assert [r["type"] for r in his.inbox("kiosk.settle", ks["settle"])] == ["settlement_reversed", "settlement"]
    assert st["persons"][ZHANG] == "1000.00" and not [s for s in st["settlements"].values() if s["valid"]]
    # The lost 2202 was asked again; the repeat's "already cancelled" confirms it.
    unreg = his.one("kiosk.register_cancel", ks["unreg"], "registration_cancellation")["result"]
    assert "confirmed_by" in unreg and not st["visits"][reg["mdtrt_id"]]["active"]
    assert his.one(LOOKUP, ks["lookup"], "identity")["outcome"] == "ok"


def test_no_whole_id_number_or_name_in_the_log_the_journal_or_mi_identity(t):
    """Last in the module: after every scenario above ran on this daemon.  The log and the
    journal (mi_journal, which the HIS cannot read) carry ID numbers, names and phones masked;
    mi_identity only the masked columns.  (A kiosk's identity row carries them whole on
    purpose: docs/identity.md "Masking".)"""
    dialect, sim, his, proc = t
    people = [p for p in sim.control("GET", "/__sim__/persons")["persons"] if p.get("certno")]
    log = proc.log.read_text(encoding="utf-8", errors="replace")
    journal = " ".join(f"{a} {b}" for a, b in his.store.query(
        "SELECT request_masked, response_masked FROM mi_journal"))
    identity = " ".join(" ".join(str(v) for v in r) for r in his.store.query("SELECT * FROM mi_identity"))
    assert "certno" in journal and len(his.store.query("SELECT 1 FROM mi_identity")) >= 3
    for p in people:
        for where, text in (("log", log), ("mi_journal", journal), ("mi_identity", identity)):
            assert p["certno"] not in text, (where, p["psn_no"])
            assert len(p["psn_name"]) < 2 or p["psn_name"] not in text, (where, p["psn_no"])
