"""Terminal library client (bridge/terminal): QR read requests (offline.md §7.2), the card
reader's ReadCardBas line, and how answers are classified.  No I/O: prepared calls are
decoded with sample answers in the library's reply wrapper."""
import json

import pytest

from bridge.calls import Outcome
from bridge.terminal import messages as t
from bridge.terminal.client import TerminalClient, TerminalConfig

LINE = ("639900|111111198101011110|X00000019|639900D15600000500BF7C7A48FB4966|张三|"
        "00814E43238697159900BF7C7A|1.00|20101001|20201001|410100813475|MT170701000006|")
QR = t.QrQueryRequest(businessType="01101", operatorId="K1", operatorName="自助机", officeId="01",
                      officeName="门诊", deviceType=t.SELF_SERVICE)


@pytest.fixture
def client():
    ids = iter(range(1, 1000))
    c = TerminalClient(TerminalConfig(url="http://127.0.0.1:9/nationec/trans", org_id="H44010600001",
                                      card_reader_url="http://127.0.0.1:9/heasec/readcardbas"),
                       lambda: f"ID{next(ids):04d}")
    yield c
    c.close()


def reply(code=0, data=None, message="成功"):
    return json.dumps({"code": code, "message": message, "orgId": "H44010600001",
                       "data": data}, ensure_ascii=False).encode()


def test_card_line_parse():
    c = t.CardBasics.parse(LINE)
    assert (c.issuing_area, c.ssn, c.card_no, c.card_sn, c.name) == (
        "639900", "111111198101011110", "X00000019", "639900D15600000500BF7C7A48FB4966", "张三")
    assert c.terminal_device_no == "MT170701000006"
    # the Shenzhen driver appends PSAM chip no., medical certificate no., ...: ignored
    assert t.CardBasics.parse(LINE + "3B7D94|%GALJ?|5f2ab04d|V0.1|").card_no == "X00000019"
    for bad in (LINE.split("|", 5)[0], "a|b|c|d|e|f|g|h|i|j", "639900|1|||张三|r|v|i|e|t|d|"):
        with pytest.raises(ValueError):
            t.CardBasics.parse(bad)
    masked = c.masked()
    assert masked["ssn"] != c.ssn and masked["name"] != "张三" and masked["card_no"] == "X00000019"


def test_read_card_classification(client):
    p = client.prepare_read_card()
    assert p.interface == t.CARD_READ and json.loads(p.body) == {"orgId": "H44010600001"}
    ok = p.decode(200, reply(0, LINE))
    assert ok.ok and ok.data.card_sn.startswith("639900")
    assert "111111198101011110" not in ok.response_text and "张三" not in ok.response_text
    no_card = p.decode(200, reply(-1, None, "未检测到社保卡"))
    assert no_card.outcome is Outcome.REJECTED and no_card.message == "未检测到社保卡"
    assert p.decode(200, reply(0, "639900|short")).outcome is Outcome.UNKNOWN
    assert p.decode(502, b"").outcome is Outcome.UNKNOWN


def test_read_card_needs_a_reader():
    c = TerminalClient(TerminalConfig(url="http://x", org_id="H1"), lambda: "ID")
    with pytest.raises(ValueError):
        c.prepare_read_card()
    c.close()


def test_qr_requests(client):
    p = client.prepare_read_qr(QR)
    body = json.loads(p.body)
    assert body["transType"] == "ec.query" and body["data"]["deviceType"] == "SelfService"
    assert body["data"]["orgId"] == body["orgId"] == "H44010600001" and "outBizNo" not in body["data"]
    p2 = client.prepare_read_qr(QR, trans_type=t.QRCODE_GET)
    assert json.loads(p2.body)["transType"] == "cn.nhsa.qrcode.get"
    assert "deviceType" not in json.loads(p2.body)["data"]      # QrCodeInput.cs has none
    with pytest.raises(ValueError):
        client.prepare_read_qr(QR, trans_type="cn.nhsa.ec.auth")


def test_qr_answers(client):
    p = client.prepare_read_qr(QR)
    ident = {"idNo": "440106198001010019", "idType": "01", "userName": "张三",
             "ecToken": "440100ec7ioqup8p1o0761820a0000f1f8b13d", "insuOrg": "440100", "extra": ""}
    r = p.decode(200, reply(0, json.dumps(ident, ensure_ascii=False)))
    assert r.ok and r.data.ecToken.startswith("440100ec") and r.data.insuOrg == "440100"
    assert "440106198001010019" not in r.response_text
    no_token = dict(ident, ecToken="")
    assert p.decode(200, reply(0, json.dumps(no_token))).outcome is Outcome.UNKNOWN
    assert p.decode(200, reply(-1, None, "未读取到医保电子凭证")).outcome is Outcome.REJECTED
