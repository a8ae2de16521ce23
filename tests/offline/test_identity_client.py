"""Client side of identity and reconciliation files: 1101 by each certificate, 2001, 1901,
9101 (both byte forms) and 9102 (the reply is the file), against the digest-written stub."""
import base64
import io
import json
import os
import zipfile
from decimal import Decimal

import pytest

from bridge.calls import Outcome
from bridge.offline import messages as m
from bridge.offline.client import OfflineClient, encode_upload_bytes
from bridge.offline.config import OPTER_KIOSK, OfflineConfig, Operator

from .offline_stub import CODE, SECRET

KIOSK = Operator("KIOSK01", "自助机1号", opter_type=OPTER_KIOSK)
PSN = "44030000000001112535"


@pytest.fixture
def client(stub, tmp_path):
    c = OfflineClient(OfflineConfig(
        base_url=stub.base_url, paas_id="paas1", paas_secret=SECRET, fixmedins_code=CODE,
        fixmedins_name="测试医院", mdtrtarea_admvs="440300", default_operator=KIOSK,
        require_sign_no=False, msgid_lock_dir=str(tmp_path), read_timeout=0.5,
        region_dictionary_type="admdvs"))
    yield c
    c.close()


def body_of(stub, infno):
    return [r for r in stub.requests if r[2]["infno"] == infno][-1][2]


# ------------------------------------------------------------------ 1101

@pytest.mark.parametrize("req, expected", [
    (m.PersonInfoRequest.by_id_card("440106199001011234", "张三丰", insuplc_admdvs="440300"),
     {"mdtrt_cert_type": "02", "mdtrt_cert_no": "440106199001011234", "psn_cert_type": "01",
      "certno": "440106199001011234", "psn_name": "张三丰"}),
    (m.PersonInfoRequest.by_ecredential("440300ec123"),
     {"mdtrt_cert_type": "01", "mdtrt_cert_no": "440300ec123"}),
    (m.PersonInfoRequest.by_pay_auth_no("AUTH440300XYZ"),
     {"mdtrt_cert_type": "01", "mdtrt_cert_no": "AUTH440300XYZ"}),
    (m.PersonInfoRequest.by_card("X00000019", "639900D15600000500BF7C7A48FB4966", psn_name="张三丰"),
     {"mdtrt_cert_type": "03", "mdtrt_cert_no": "X00000019",
      "card_sn": "639900D15600000500BF7C7A48FB4966", "psn_name": "张三丰"}),
])
def test_1101_by_each_certificate(stub, client, req, expected):
    r = client.person_info(req)
    assert r.ok and r.data.psn_no == PSN
    body = body_of(stub, "1101")
    assert body["input"] == {"data": expected}
    assert body["insuplc_admdvs"] == (req.insuplc_admdvs or "")
    assert body["opter_type"] == "2" and body["opter"] == "KIOSK01"


def test_1101_constructors_refuse_missing_numbers():
    with pytest.raises(ValueError):
        m.PersonInfoRequest.by_id_card(" ")
    with pytest.raises(ValueError):
        m.PersonInfoRequest.by_card("X1", "")
    assert m.PersonInfoRequest.by_id_card("44010619900101123x").certno == "44010619900101123X"


def test_person_info_reads_every_insurance_and_identity():
    out = {"baseinfo": {"psn_no": "P1", "psn_name": "吴十", "age": 41.0, "naty": "01"},
           "insuinfo": [
               {"insutype": "310", "psn_type": "11", "balc": 800.00, "psn_insu_stas": "1",
                "insuplc_admdvs": "440100"},
               {"insutype": "390", "psn_type": "14", "balc": "0", "psn_insu_stas": "1",
                "insuplc_admdvs": "440300"},
               {"insutype": "510", "psn_type": "11", "psn_insu_stas": "2",
                "insuplc_admdvs": "440100"}],
           "idetinfo": [{"psn_idet_type": "2301", "psn_type_lv": "1", "begntime": "2020-01-01 00:00:00"}]}
    p = m.PersonInfo.from_output(json.loads(json.dumps(out), parse_float=Decimal))
    assert p.age == Decimal("41.0") and p.naty == "01"
    assert [i.insutype for i in p.active_insurances()] == ["310", "390"]
    assert [i.insutype for i in p.active_insurances("440300")] == ["390"]
    assert p.insurance("510").active is False and p.insurance("320") is None
    assert p.insuinfo[0].balc == Decimal("800.00")
    assert p.identities[0].psn_idet_type == "2301" and p.idetinfo[0]["psn_type_lv"] == "1"
    # SZ's model has insuinfo as one object
    single = m.PersonInfo.from_output({"baseinfo": {"psn_no": "P1"},
                                       "insuinfo": {"insutype": "390", "psn_insu_stas": "1"}})
    assert [i.insutype for i in single.insuinfo] == ["390"]
    with pytest.raises(ValueError):
        m.PersonInfo.from_output({"baseinfo": {"psn_no": "P1"}, "insuinfo": ["x"]})


# ------------------------------------------------------------------ 2001

def test_benefit_check_shape_and_restrictions(stub, client):
    req = m.BenefitCheckRequest(psn_no=PSN, insutype="310", med_type="11",
                                begntime="2026-01-02 09:00:00", insuplc_admdvs="440300")
    r = client.benefit_check(req)
    assert r.ok
    body = body_of(stub, "2001")
    assert body["input"] == {"data": {"psn_no": PSN, "insutype": "310", "med_type": "11",
                                      "begntime": "2026-01-02 09:00:00", "fixmedins_code": CODE}}
    assert body["insuplc_admdvs"] == "440300"
    assert [t.fund_pay_type for t in r.data.trtinfo] == ["310100", "510100"]
    (refused,) = r.data.restrictions
    assert refused.fund_pay_type == "510100" and refused.trt_chk_rslt == "未参加生育保险"
    assert r.data.trtinfo[0].enjoyed


def test_benefit_check_needs_the_region_and_a_trtinfo_node(stub, client):
    req = m.BenefitCheckRequest(psn_no=PSN, insutype="310", med_type="11", begntime="x")
    with pytest.raises(ValueError):
        client.prepare_benefit_check(req)
    assert m.BenefitCheck.from_output({"trtinfo": []}).trtinfo == ()
    with pytest.raises(ValueError):
        m.BenefitCheck.from_output({})
    # an answer without trtinfo is malformed: UNKNOWN, never "no restriction"
    res = client.prepare_benefit_check(
        m.BenefitCheckRequest(psn_no=PSN, insutype="310", med_type="11", begntime="x",
                              insuplc_admdvs="440300")).decode(
        200, json.dumps({"infcode": 0, "output": {"other": 1}}).encode())
    assert res.outcome is Outcome.UNKNOWN


# ------------------------------------------------------------------ 1901

def test_region_dictionary(stub, client):
    r = client.send(client.prepare_region_dictionary(date="2026-01-02"))
    assert r.ok
    body = body_of(stub, "1901")
    assert body["input"] == {"data": {"type": "admdvs", "admdvs": "440300", "date": "2026-01-02",
                                      "valiFlag": "1"}}
    assert [(e.value, e.label, e.parentValue, e.sort, e.valiFlag) for e in r.data.entries] == [
        ("440100", "广州市", "440000", 1, "1"), ("440300", "深圳市", "440000", 2, "1")]
    assert r.data.entries[1].createUser == "u"


def test_region_dictionary_type_must_be_configured(stub, tmp_path):
    c = OfflineClient(OfflineConfig(base_url=stub.base_url, paas_id="p", paas_secret="s",
                                    fixmedins_code=CODE, default_operator=KIOSK,
                                    require_sign_no=False, msgid_lock_dir=str(tmp_path)))
    try:
        with pytest.raises(ValueError, match="region_dictionary_type"):
            c.prepare_region_dictionary()
    finally:
        c.close()


# ------------------------------------------------------------------ 9101

def zip_bytes(text="S1\tM1\tP1\t1.00\t0.70\t0.30\t0") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("d.txt", text)
    return buf.getvalue()


def test_signed_byte_encoding():
    assert encode_upload_bytes(bytes([0, 1, 127, 128, 255]), "signed_array") == b"[0,1,127,-128,-1]"
    assert encode_upload_bytes(b"\x00\xff", "base64") == b'"AP8="'


@pytest.mark.parametrize("form", ["base64", "signed_array"])
def test_upload_in_both_byte_forms(stub, client, tmp_path, form):
    data = zip_bytes()
    assert max(data) > 127                    # the signed form really has negative numbers
    path = tmp_path / "d.zip"
    path.write_bytes(data)
    p = client.prepare_upload_file(path, filename="d.zip", bytes_form=form)
    assert "S1\t" not in p.masked_request and f"{len(data)} bytes" in p.masked_request
    assert p.keys["filename"] == "d.zip" and len(p.keys["file_sha256"]) == 64
    r = client.send(p)
    assert r.ok and r.data.file_qury_no == "FQ1" and r.data.dld_endtime
    sent = stub.uploads[-1]
    got = base64.b64decode(sent) if form == "base64" else bytes(b & 0xFF for b in sent)
    assert got == data
    if form == "signed_array":
        assert min(sent) < 0
    node = body_of(stub, "9101")["input"]["fsUploadIn"]
    assert node["filename"] == "d.zip" and node["fixmedins_code"] == CODE


def test_upload_form_comes_from_config(stub, tmp_path):
    cfg = OfflineConfig(base_url=stub.base_url, paas_id="paas1", paas_secret=SECRET,
                        fixmedins_code=CODE, default_operator=KIOSK, require_sign_no=False,
                        msgid_lock_dir=str(tmp_path), upload_bytes_form="signed_array")
    with OfflineClient(cfg) as c:
        assert c.send(c.prepare_upload_file(zip_bytes(), filename="d.zip")).ok
    assert isinstance(stub.uploads[-1], list)
    with pytest.raises(ValueError):
        OfflineConfig(base_url="x", paas_id="p", paas_secret="s", fixmedins_code=CODE,
                      upload_bytes_form="hex")


# ------------------------------------------------------------------ 9102

def test_download_streams_the_file(stub, client, tmp_path):
    data = zip_bytes("x" * 300_000)
    stub.modes["9102"] = data
    dest = tmp_path / "result.zip"
    p = client.prepare_download_file("FQ9", "result.zip")
    node = json.loads(p.body)["input"]["fsDownloadIn"]
    assert node == {"file_qury_no": "FQ9", "filename": "result.zip", "fixmedins_code": CODE}
    r = client.download(p, dest)
    assert r.ok and r.data.size == len(data) and dest.read_bytes() == data
    import hashlib
    assert r.data.sha256 == hashlib.sha256(data).hexdigest()
    assert "bytes" in r.response_text and not os.path.exists(str(dest) + ".part")


@pytest.mark.parametrize("mode, outcome", [("error", Outcome.REJECTED),
                                           ("garbage", Outcome.UNKNOWN),
                                           ("500", Outcome.UNKNOWN),
                                           ("ok", Outcome.UNKNOWN)])   # JSON success, no file
def test_download_without_a_file_leaves_no_file(stub, client, tmp_path, mode, outcome):
    stub.modes["9102"] = mode
    dest = tmp_path / "result.zip"
    r = client.download(client.prepare_download_file("FQ9", "result.zip"), dest)
    assert r.outcome is outcome and r.data is None
    assert not dest.exists() and not os.path.exists(str(dest) + ".part")


def test_download_cut_off_leaves_no_partial_file(stub, client, tmp_path):
    stub.modes["9102"] = ("truncated", zip_bytes("y" * 100_000))
    dest = tmp_path / "result.zip"
    r = client.download(client.prepare_download_file("FQ9", "result.zip"), dest)
    assert r.outcome is Outcome.UNKNOWN and r.data is None
    assert not dest.exists() and not os.path.exists(str(dest) + ".part")


def test_download_not_sent_is_safe_to_retry(client, tmp_path, free_port):
    p = client.prepare_download_file("FQ9", "r.zip")
    import dataclasses
    p = dataclasses.replace(p, url=f"http://127.0.0.1:{free_port}/9102")
    r = client.download(p, tmp_path / "r.zip")
    assert r.outcome is Outcome.NOT_SENT
