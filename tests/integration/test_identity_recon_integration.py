"""The real clients (bridge/offline, bridge/terminal) against the real simulator over HTTP, for
what the identity and reconciliation flows will call: kiosk identification by card and QR,
1101 by ID and region, 2001, 1901, kiosk registration, and 9101 -> 3202 -> 9102 with the
files written and read by bridge/offline/reconfile.py."""
from __future__ import annotations

import time
import uuid
from decimal import Decimal

import pytest

from bridge.calls import Outcome
from bridge.offline import messages as m
from bridge.offline.config import Operator
from bridge.offline.reconfile import DetailRow, read_result_file, write_detail_file
from bridge.terminal import messages as t
from bridge.terminal.client import TerminalClient, TerminalConfig

from .conftest import ZHANG, make_offline

WU = "44010000000000000007"       # 310 in 440100 + 390 in 440300
ZHENG = "44010000000000000008"    # 2001 restriction on outpatient
FENG = "44010000000000000009"     # no insurance
KIOSK = Operator("KIOSK01", "自助机1号", opter_type="2")
NOW = time.strftime("%Y-%m-%d %H:%M:%S")
TODAY = NOW[:10]
QR = t.QrQueryRequest(businessType="01101", operatorId="KIOSK01", operatorName="自助机1号",
                      officeId="01", officeName="门诊", deviceType=t.SELF_SERVICE)


@pytest.fixture
def client(sim, msgid_dir):
    c = make_offline(sim.creds, msgid_dir, face_pay=False, default_operator=KIOSK,
                     region_dictionary_type="admdvs", sign_in=False)
    assert c.sign_in(m.SignInRequest(opter_no=KIOSK.opter, mac="00-16-3E-00-00-02", ip="127.0.0.1")).ok
    yield c
    c.close()


@pytest.fixture
def terminal(sim, client):
    term = sim.creds["terminal"]
    c = TerminalClient(TerminalConfig(url=term["url"], org_id=client.config.fixmedins_code,
                                      card_reader_url=term["card_reader_url"], read_timeout=5.0),
                       client.next_msgid)
    yield c
    c.close()


def test_kiosk_card_then_1101_2001_and_registration(sim, client, terminal):
    no_card = terminal.read_card()
    assert no_card.outcome is Outcome.REJECTED and "社保卡" in no_card.message
    sim.control("POST", "/__sim__/card/present", {"psn_no": WU})
    card = terminal.read_card()
    assert card.ok and card.data.name == "吴十" and card.data.card_sn.startswith(card.data.issuing_area)
    assert "吴十" not in card.response_text and sim.person(WU)["certno"] not in card.response_text
    p = client.person_info(m.PersonInfoRequest.by_card(card.data.card_no, card.data.card_sn,
                                                       psn_name=card.data.name))
    assert p.ok and p.data.psn_no == WU
    assert [(i.insutype, i.insuplc_admdvs) for i in p.data.active_insurances()] == [
        ("310", "440100"), ("390", "440300")]
    chosen = p.data.insurance("390")
    b = client.benefit_check(m.BenefitCheckRequest(psn_no=WU, insutype="390", med_type="11", begntime=NOW,
                                                   insuplc_admdvs=chosen.insuplc_admdvs))
    assert b.ok and b.data.restrictions == ()
    reg = client.register(m.RegisterRequest(
        psn_no=WU, insutype="390", begntime=NOW, mdtrt_cert_type=m.CERT_SSC, mdtrt_cert_no=card.data.card_no,
        ipt_otp_no="K" + uuid.uuid4().hex[:10], atddr_no="D001", dr_name="李医生", dept_code="NK01",
        dept_name="内科", caty="A03", insuplc_admdvs=chosen.insuplc_admdvs))
    assert reg.ok
    # 5201 finds the registration by the person, the day and the outpatient number (how a
    # lost 2201 answer is resolved); the person's ID number and name stay out of the journal text.
    q = client.visit_query(m.VisitQueryRequest(psn_no=WU, begntime=f"{TODAY} 00:00:00",
                                               endtime=f"{TODAY} 23:59:59", med_type="11",
                                               insuplc_admdvs="440300"))
    assert q.ok and reg.data.mdtrt_id in [v.mdtrt_id for v in q.data.visits]
    mine = next(v for v in q.data.visits if v.mdtrt_id == reg.data.mdtrt_id)
    assert (mine.ipt_otp_no, mine.insutype, mine.begntime) == (reg.data.ipt_otp_no, "390", NOW)
    assert sim.person(WU)["certno"] not in q.response_text and "吴十" not in q.response_text
    visit = sim.state()["visit_identity"][reg.data.mdtrt_id]
    assert (visit["opter_type"], visit["insutype"], visit["insuplc_admdvs"]) == ("2", "390", "440300")
    cancel = client.cancel_register(m.CancelRegisterRequest(
        psn_no=WU, mdtrt_id=reg.data.mdtrt_id, ipt_otp_no=reg.data.ipt_otp_no or visit["ipt_otp_no"],
        insuplc_admdvs="440300"))
    assert cancel.ok and not sim.state()["visits"][reg.data.mdtrt_id]["active"]


def test_kiosk_qr_then_1101(sim, client, terminal):
    sim.control("POST", "/__sim__/qrcode/present", {"psn_no": ZHANG})
    ident = terminal.read_qr(QR)
    assert ident.ok and ident.data.ecToken and ident.data.insuOrg == "440100"
    p = client.person_info(m.PersonInfoRequest.by_ecredential(ident.data.ecToken,
                                                              insuplc_admdvs=ident.data.insuOrg))
    assert p.ok and p.data.psn_no == ZHANG
    again = terminal.read_qr(QR, trans_type=t.QRCODE_GET)
    assert again.outcome is Outcome.REJECTED                 # no QR in front of the scanner


def test_lookup_by_id_and_region_uninsured_and_restricted(sim, client):
    wu = sim.person(WU)
    r = client.person_info(m.PersonInfoRequest.by_id_card(wu["certno"], "吴十", insuplc_admdvs="440300"))
    assert r.ok and [i.insutype for i in r.data.insuinfo] == ["390"]
    r = client.person_info(m.PersonInfoRequest.by_id_card(wu["certno"], "吴十", insuplc_admdvs="442000"))
    assert r.outcome is Outcome.REJECTED
    feng = client.person_info(m.PersonInfoRequest.by_id_card(sim.person(FENG)["certno"], "冯十二"))
    assert feng.ok and feng.data.active_insurances() == ()
    b = client.benefit_check(m.BenefitCheckRequest(psn_no=ZHENG, insutype="390", med_type="11",
                                                   begntime=NOW, insuplc_admdvs="440100"))
    assert b.ok and [x.fund_pay_type for x in b.data.restrictions] == ["390100"]
    assert b.data.restrictions[0].trt_chk_rslt


def test_region_dictionary(sim, client):
    r = client.send(client.prepare_region_dictionary())
    assert r.ok and {e.value for e in r.data.entries} == {"440100", "440300", "440600", "442000"}


@pytest.mark.parametrize("form", ["base64", "signed_array"])
def test_detail_reconciliation_round_trip(sim, client, tmp_path, form):
    s = []
    for amount in ("100.00", "20.00"):
        reg = client.register(m.RegisterRequest(
            psn_no=ZHANG, insutype="310", begntime=NOW, mdtrt_cert_type="02", mdtrt_cert_no="x",
            ipt_otp_no="K" + uuid.uuid4().hex[:10], atddr_no="D001", dr_name="李医生", dept_code="NK01",
            dept_name="内科", caty="A03", insuplc_admdvs="440100"))
        batch = "B" + uuid.uuid4().hex[:8]
        assert client.upload_fee_details([m.FeeDetail(
            feedetl_sn="1", mdtrt_id=reg.data.mdtrt_id, psn_no=ZHANG, fee_ocur_time=NOW, med_list_codg="X",
            medins_list_codg="H", det_item_fee_sumamt=Decimal(amount), cnt=Decimal("1"), pric=Decimal(amount),
            bilg_dept_codg="NK01", bilg_dept_name="内科", bilg_dr_codg="D001", bilg_dr_name="李医生",
            chrg_bchno=batch, rx_circ_flag="0")], insuplc_admdvs="440100").ok
        r = client.settle_outpatient(m.OutpatientSettleRequest(
            psn_no=ZHANG, mdtrt_cert_type="02", mdtrt_cert_no="x", med_type="11", medfee_sumamt=Decimal(amount),
            psn_setlway="01", mdtrt_id=reg.data.mdtrt_id, chrg_bchno=batch, acct_used_flag="1", insutype="310",
            insuplc_admdvs="440100"))
        assert r.ok
        s.append(r.data)
    sim.control("POST", "/__sim__/reconciliation/mismatch",
                {"kind": "amount_off", "setl_id": s[1].setl_id, "field": "acct_pay", "delta": "0.01"})
    path = tmp_path / "detail.zip"
    summary = write_detail_file((DetailRow(x.setl_id, x.mdtrt_id, x.psn_no, x.medfee_sumamt,
                                           x.fund_pay_sumamt, x.acct_pay) for x in s), path)
    up = client.upload_file(path, filename="detail.zip", bytes_form=form)
    assert up.ok, up
    res = client.reconcile_details(m.ReconcileDetailsRequest(
        setl_optins="440100", file_qury_no=up.data.file_qury_no, stmt_begndate=TODAY, stmt_enddate=TODAY,
        medfee_sumamt=summary.medfee_sumamt, fund_pay_sumamt=summary.fund_pay_sumamt,
        cash_payamt=Decimal("0.00"), fixmedins_setl_cnt=summary.rows))
    assert res.ok
    dest = tmp_path / "result.zip"
    got = client.download_file(res.data.file_qury_no, res.data.filename, dest)
    assert got.ok and got.data.size == dest.stat().st_size
    rows = {r.setl_id: r for r in read_result_file(dest)}
    assert rows[s[0].setl_id].stmt_rslt == "0"
    assert rows[s[1].setl_id].stmt_rslt == "3" and rows[s[1].setl_id].acct_pay == s[1].acct_pay + Decimal("0.01")
    assert rows[s[0].setl_id].msgid == s[0].medins_setl_id


def test_lost_upload_and_refused_download_are_retried(sim, client, tmp_path):
    blob_path = tmp_path / "d.zip"
    write_detail_file([DetailRow("S1", "M1", ZHANG, Decimal("1.00"), Decimal("0.70"), Decimal("0.30"))],
                      blob_path)
    sim.arm("9101", "lost_after_commit")
    lost = client.upload_file(blob_path, filename="d.zip")
    assert lost.outcome is Outcome.UNKNOWN
    up = client.upload_file(blob_path, filename="d.zip")
    assert up.ok
    sim.arm("9102", "business_error", message="文件服务忙")
    dest = tmp_path / "back.zip"
    refused = client.download_file(up.data.file_qury_no, "d.zip", dest)
    assert refused.outcome is Outcome.REJECTED and not dest.exists()
    assert client.download_file(up.data.file_qury_no, "d.zip", dest).ok
    assert dest.read_bytes() == blob_path.read_bytes()
