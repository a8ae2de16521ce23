"""Day-end reconciliation, written from the digest (offline.md §10): 3201 over the day's net
settlements, 9101 in both byte forms, 3202 and its result file by 9102, the controls that make
the sides disagree, and the faults reconciliation retries must survive."""
from __future__ import annotations

import base64
import io
import time
import zipfile
from decimal import Decimal

import httpx
import pytest

from bridge.simulator import SimulatorConfig, start_simulator

from .conftest import control, state
from .offline_helpers import ADMDVS, LI, ZHANG, ZHAO, cancel_input, ok, outpatient
from .spec_client import OfflineClient

TODAY = time.strftime("%Y-%m-%d")


def settle(gw, psn_no, amount):
    return ok(outpatient(gw, psn_no, [amount])[0])["setlinfo"]


def totals_input(optins, medfee, fund, acct, cnt, insutype="310", clr_type="11"):
    return {"data": {"insutype": insutype, "clr_type": clr_type, "setl_optins": optins, "stmt_begndate": TODAY,
                     "stmt_enddate": TODAY, "medfee_sumamt": medfee, "fund_pay_sumamt": fund, "acct_pay": acct,
                     "fixmedins_setl_cnt": cnt}}


def p3201(gw, *a, **kw):
    return ok(gw.call("3201", totals_input(*a, **kw)))["stmtinfo"]


def detail_zip(lines, encoding="utf-8"):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("detail.txt", "\n".join(lines).encode(encoding))
    return buf.getvalue()


def line(s, flag="0", sign=""):
    return "\t".join([s["setl_id"], s["mdtrt_id"], s["psn_no"], sign + format(s["medfee_sumamt"], "f"),
                      sign + format(s["fund_pay_sumamt"], "f"), sign + format(s["acct_pay"], "f"), flag])


def upload(gw, blob, form="base64", filename="detail.zip"):
    data = base64.b64encode(blob).decode() if form == "base64" else \
        [b - 256 if b > 127 else b for b in blob]                      # a Java byte[]: signed
    return gw.call("9101", {"fsUploadIn": {"in": data, "filename": filename, "fixmedins_code": gw.code}})


def reconcile_details(gw, lines, optins="440100", form="base64", encoding="utf-8"):
    """9101 -> 3202 -> 9102; returns {setl_id: (stmt_rslt, refd_setl_flag, amounts)}."""
    up = ok(upload(gw, detail_zip(lines, encoding), form))
    res = ok(gw.call("3202", {"data": {"setl_optins": optins, "file_qury_no": up["file_qury_no"],
                                       "stmt_begndate": TODAY, "stmt_enddate": TODAY, "medfee_sumamt": "0",
                                       "fund_pay_sumamt": "0", "cash_payamt": "0", "fixmedins_setl_cnt": "0"}}))
    info = res["fileinfo"]
    raw = download(gw, info["file_qury_no"], info["filename"])
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        (name,) = z.namelist()
        text = z.read(name).decode(encoding)
    out = {}
    for row in text.splitlines():
        cols = row.split("\t")
        assert len(cols) == 10, cols          # psn_no .. acct_pay (§10.2 step 5)
        out[cols[2]] = (cols[4], cols[5], tuple(cols[7:]))
    return out


def download(gw, file_qury_no, filename):
    env = gw.envelope("9102", {"fsDownloadIn": {"file_qury_no": file_qury_no, "filename": filename,
                                                 "fixmedins_code": gw.code}})
    r = gw.post("9102", env)
    assert r.status_code == 200 and r.content[:2] == b"PK", r.text
    return r.content


# ------------------------------------------------------------------ 3201

def test_3201_nets_cancellations_of_the_day(gw, sim):
    s1 = settle(gw, ZHANG, "100.00")
    s2 = settle(gw, ZHANG, "10.00")
    ok(gw.call("2208", cancel_input(ZHANG, s2)))
    assert p3201(gw, "440100", "100.00", "70.00", "30.00", "1")["stmt_rslt"] == "0"
    r = p3201(gw, "440100", "110.00", "77.00", "33.00", "2")          # the cancel forgotten
    assert r["stmt_rslt"] == "1" and "medfee_sumamt" in r["stmt_rslt_dscr"]
    assert p3201(gw, "440100", "100.00", "70.00", "30.00", "2")["stmt_rslt"] == "1"   # count alone
    # per region and insutype: LI's settlement is cleared by 440300
    settle(gw, LI, "10.00")
    assert p3201(gw, "440300", "10.00", "7.00", "0.00", "1")["stmt_rslt"] == "0"
    assert p3201(gw, "440100", "100.00", "70.00", "30.00", "1", insutype="390")["stmt_rslt"] == "1"
    assert s1["setl_id"]


def test_refund_today_of_yesterdays_settlement(gw, sim):
    s1 = settle(gw, ZHANG, "100.00")
    control(sim, "POST", "/__sim__/reconciliation/backdate", {"setl_id": s1["setl_id"], "days": 1})
    ok(gw.call("2208", cancel_input(ZHANG, s1)))
    yesterday = time.strftime("%Y-%m-%d", time.localtime(time.time() - 86400))
    q = totals_input("440100", "100.00", "70.00", "30.00", "1")
    q["data"].update(stmt_begndate=yesterday, stmt_enddate=yesterday)
    assert ok(gw.call("3201", q))["stmtinfo"]["stmt_rslt"] == "0"          # yesterday keeps its settlement
    assert p3201(gw, "440100", "-100.00", "-70.00", "-30.00", "-1")["stmt_rslt"] == "0"   # today nets the refund
    assert p3201(gw, "440100", "0.00", "0.00", "0.00", "0")["stmt_rslt"] == "1"
    rows = reconcile_details(gw, [line(s1, "1", "-")])
    assert rows[s1["setl_id"]] == ("0", "1", ("-100.00", "-70.00", "-30.00"))


def test_3201_guangzhou_names(gw, sim):
    settle(gw, ZHANG, "100.00")
    q = totals_input("440100", "100.00", "70.00", "0", "1")["data"]
    del q["acct_pay"], q["setl_optins"]
    q.update(clr_optins="440100", cash_payamt="0.00")
    assert ok(gw.call("3201", {"data": q}))["stmtinfo"]["stmt_rslt"] == "0"


# ------------------------------------------------------------------ controls

def test_mismatch_missing_at_centre(gw, sim):
    s1, s2 = settle(gw, ZHANG, "100.00"), settle(gw, ZHANG, "20.00")
    control(sim, "POST", "/__sim__/reconciliation/mismatch", {"kind": "missing_at_centre", "setl_id": s2["setl_id"]})
    assert p3201(gw, "440100", "120.00", "84.00", "36.00", "2")["stmt_rslt"] == "1"
    rows = reconcile_details(gw, [line(s1), line(s2)])
    assert rows[s1["setl_id"]][0] == "0" and rows[s2["setl_id"]][0] == "1"     # only the institution has it
    control(sim, "DELETE", "/__sim__/reconciliation/mismatch")
    assert p3201(gw, "440100", "120.00", "84.00", "36.00", "2")["stmt_rslt"] == "0"


def test_mismatch_amount_off_by_one_cent(gw, sim):
    s1 = settle(gw, ZHANG, "100.00")
    control(sim, "POST", "/__sim__/reconciliation/mismatch",
            {"kind": "amount_off", "setl_id": s1["setl_id"], "field": "fund_pay_sumamt", "delta": "0.01"})
    r = p3201(gw, "440100", "100.00", "70.00", "30.00", "1")
    assert r["stmt_rslt"] == "1" and "fund_pay_sumamt" in r["stmt_rslt_dscr"]
    rows = reconcile_details(gw, [line(s1)])
    assert rows[s1["setl_id"]] == ("3", "0", ("100.00", "70.01", "30.00"))
    assert state(sim)["reconciliation"]["amount_off"] == {s1["setl_id"]: {"fund_pay_sumamt": "0.01"}}


def test_mismatch_extra_refund_at_the_centre(gw, sim):
    s1 = settle(gw, ZHAO, "100.00")
    assert state(sim)["persons"][ZHAO] == "470.00"
    control(sim, "POST", "/__sim__/reconciliation/mismatch", {"kind": "extra_refund", "setl_id": s1["setl_id"]})
    st = state(sim)
    assert st["persons"][ZHAO] == "500.00" and st["settlements"][s1["setl_id"]]["valid"] is False
    assert st["counts"]["offline.cancellation"] == 1
    assert p3201(gw, "440600", "100.00", "70.00", "30.00", "1")["stmt_rslt"] == "1"
    assert p3201(gw, "440600", "0.00", "0.00", "0.00", "0")["stmt_rslt"] == "0"
    rows = reconcile_details(gw, [line(s1)], optins="440600")
    assert rows[s1["setl_id"]] == ("3", "1", ("0.00", "0.00", "0.00"))
    # the institution that knows of the refund sends both rows and balances
    rows = reconcile_details(gw, [line(s1), line(s1, "1", "-")], optins="440600")
    assert rows[s1["setl_id"]][0] == "0"
    with pytest.raises(httpx.HTTPStatusError):
        httpx.post(sim.url + "/__sim__/reconciliation/mismatch",
                   json={"kind": "extra_refund", "setl_id": s1["setl_id"]}).raise_for_status()


def test_settlement_only_the_centre_has(gw, sim):
    s1, s2 = settle(gw, ZHANG, "100.00"), settle(gw, ZHANG, "20.00")   # s2: the hospital lost the answer
    rows = reconcile_details(gw, [line(s1)])
    assert rows[s2["setl_id"]][0] == "2" and rows[s2["setl_id"]][2] == ("20.00", "14.00", "6.00")


def test_mismatch_control_refusals(sim):
    for body in ({"kind": "nope", "setl_id": "x"}, {"kind": "missing_at_centre", "setl_id": "unknown"}):
        assert httpx.post(sim.url + "/__sim__/reconciliation/mismatch", json=body).status_code == 400


# ------------------------------------------------------------------ 9101 / 9102

@pytest.mark.parametrize("form", ["base64", "signed_array"])
def test_upload_both_byte_forms(gw, sim, form):
    s1 = settle(gw, ZHANG, "12.34")
    blob = detail_zip([line(s1)])
    assert max(blob) > 127
    rows = reconcile_details(gw, [line(s1)], form=form)
    assert rows[s1["setl_id"]][0] == "0"
    up = ok(upload(gw, blob, form, filename="again.zip"))
    assert up["filename"] == "again.zip" and up["file_qury_no"] and up["dld_endtime"]
    assert download(gw, up["file_qury_no"], "again.zip") == blob


def test_upload_refusals(gw, sim):
    assert upload(gw, b"", "signed_array")["infcode"] == -1
    bad = gw.call("9101", {"fsUploadIn": {"in": [1, 2, 300], "filename": "x.zip", "fixmedins_code": gw.code}})
    assert bad["infcode"] == -1
    assert gw.call("9101", {"fsUploadIn": {"in": "***", "filename": "x.zip"}})["infcode"] == -1
    up = ok(upload(gw, b"not a zip"))
    r = gw.call("3202", {"data": {"setl_optins": "440100", "file_qury_no": up["file_qury_no"],
                                  "stmt_begndate": TODAY, "stmt_enddate": TODAY}})
    assert r["infcode"] == -1


def test_download_refusals(gw, sim):
    up = ok(upload(gw, detail_zip(["S1\tM1\tP1\t1.00\t0.70\t0.30\t0"])))
    env = gw.envelope("9102", {"fsDownloadIn": {"file_qury_no": up["file_qury_no"], "filename": "other.zip",
                                                 "fixmedins_code": gw.code}})
    assert gw.post("9102", env).json()["infcode"] == -1                    # wrong filename
    env["input"]["fsDownloadIn"].update(file_qury_no="FQunknown", filename="detail.zip")
    env["msgid"] = gw.msgid()
    assert gw.post("9102", env).json()["infcode"] == -1
    other = OfflineClient(sim.client_credentials()["offline"], "H44010600002")   # another institution
    env = other.envelope("9102", {"fsDownloadIn": {"file_qury_no": up["file_qury_no"], "filename": "detail.zip",
                                                    "fixmedins_code": other.code}})
    assert other.post("9102", env).json()["infcode"] == -1


def test_lost_9101_answer_then_retry(gw, sim):
    s1 = settle(gw, ZHANG, "50.00")
    control(sim, "POST", "/__sim__/faults", {"interface": "9101", "fault": "lost_after_commit"})
    with pytest.raises(httpx.HTTPError):
        upload(gw, detail_zip([line(s1)]))
    assert len(state(sim)["reconciliation"]["files"]) == 1                 # it was stored
    rows = reconcile_details(gw, [line(s1)])                               # a fresh upload works
    assert rows[s1["setl_id"]][0] == "0"


def test_refused_9102_then_retry(gw, sim):
    s1 = settle(gw, ZHANG, "50.00")
    up = ok(upload(gw, detail_zip([line(s1)])))
    info = ok(gw.call("3202", {"data": {"setl_optins": "440100", "file_qury_no": up["file_qury_no"],
                                        "stmt_begndate": TODAY, "stmt_enddate": TODAY}}))["fileinfo"]
    control(sim, "POST", "/__sim__/faults", {"interface": "9102", "fault": "business_error", "message": "文件服务忙"})
    env = gw.envelope("9102", {"fsDownloadIn": {"file_qury_no": info["file_qury_no"],
                                                 "filename": info["filename"], "fixmedins_code": gw.code}})
    refused = gw.post("9102", env).json()
    assert refused["infcode"] != 0 and refused["err_msg"] == "文件服务忙"
    assert download(gw, info["file_qury_no"], info["filename"])[:2] == b"PK"


# ------------------------------------------------------------------ the other choices

@pytest.fixture(scope="module")
def rows_gbk():
    """A simulator counting rows (ZS) and writing GBK files."""
    cfg = SimulatorConfig.generate(recon_count_mode="rows", recon_file_encoding="gbk")
    running = start_simulator(cfg)
    yield running
    running.stop()


def test_rows_count_mode_and_gbk_files(rows_gbk):
    gw = OfflineClient(rows_gbk.client_credentials()["offline"], "H44010600001")
    s1 = settle(gw, ZHANG, "100.00")
    s2 = settle(gw, ZHANG, "10.00")
    ok(gw.call("2208", cancel_input(ZHANG, s2), insuplc=ADMDVS[ZHANG]))
    assert p3201(gw, "440100", "100.00", "70.00", "30.00", "3")["stmt_rslt"] == "0"   # 2 settlements + 1 cancel
    assert p3201(gw, "440100", "100.00", "70.00", "30.00", "1")["stmt_rslt"] == "1"
    rows = reconcile_details(gw, [line(s1), line(s2), line(s2, "1", "-")], encoding="gbk")
    assert rows[s1["setl_id"]][0] == "0" and rows[s2["setl_id"]][:2] == ("0", "1")
    # the result file is GBK: its memo "数据不一致" is not UTF-8
    httpx.post(rows_gbk.url + "/__sim__/reconciliation/mismatch",
               json={"kind": "amount_off", "setl_id": s1["setl_id"]}).raise_for_status()
    up = ok(upload(gw, detail_zip([line(s1)], "gbk")))
    info = ok(gw.call("3202", {"data": {"setl_optins": "440100", "file_qury_no": up["file_qury_no"],
                                        "stmt_begndate": TODAY, "stmt_enddate": TODAY}}))["fileinfo"]
    with zipfile.ZipFile(io.BytesIO(download(gw, info["file_qury_no"], info["filename"]))) as z:
        raw = z.read(z.namelist()[0])
    assert "数据不一致" in raw.decode("gbk")
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
