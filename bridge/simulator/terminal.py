"""The face-scan terminal as reached through the e-credential library (offline.md §7).

The real HIS calls NationECCode.dll NationEcTrans(url, inJson); here the library's exchange
is plain HTTP: POST /nationec/trans with {orgId, transType, data, extra}, answered with
{code, message, data: "<JSON string>", orgId} (offline.md §7.1: data is a JSON-encoded string).
The wrapper's non-zero codes are not public [U]; this simulator uses -1.

A face scan is simulated by POST /__sim__/face/present {"psn_no"|"certno"[, "orgId"]}: the next
cn.nhsa.ec.auth for that institution binds its authNo to that person. cn.nhsa.auth.check then
returns the identity and an ecToken usable in 1101 (mdtrt_cert_type 01) and in 6201.
cn.nhsa.settle.notify is recorded per outBizNo (every notice is kept; none is deduplicated,
since no source says the terminal does).

E-credential QR (ec.query / cn.nhsa.qrcode.get, offline.md §7.2): POST /__sim__/qrcode/present
{"psn_no"|"certno"[, "orgId"]} puts the patient's QR in front of that institution's scanner; the
next QR read answers the identity and a fresh ecToken (usable in 1101 type 01) and consumes the
QR.  Without a QR the read is refused.

Social-security card (HeaSecReadInfo.dll ReadCardBas; the HTTP form is the client's choice,
bridge/terminal/client.py): POST /__sim__/card/present {"psn_no"|"certno"[, "orgId"]} inserts
the card; POST /heasec/readcardbas {"orgId"} answers {code, message, data: "<11 fields>|"} and
the card stays in the reader until POST /__sim__/card/remove.  No card: code -1.
"""
from __future__ import annotations

import threading
import time
from .config import SimulatorConfig
from .ledger import Ledger
from .persons import Persons
from .tokens import Tokens
from .wire import MoneyError, yuan

TOKEN_TTL = 1800   # ecToken is short-lived per business (offline.md §7.3; exact TTL not found)


class TerminalError(ValueError):
    pass


class FaceTerminal:
    def __init__(self, cfg: SimulatorConfig, persons: Persons, tokens: Tokens, ledger: Ledger) -> None:
        self.cfg = cfg
        self.persons = persons
        self.tokens = tokens
        self.ledger = ledger
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.present_at: dict[str, str] = {}     # orgId ("" = any) -> psn_no
            self.qr_at: dict[str, str] = {}          # orgId ("" = any) -> psn_no of the QR shown
            self.card_at: dict[str, str] = {}        # orgId ("" = any) -> psn_no of the card inserted
            self.auths: dict[str, dict] = {}         # authNo -> {psn_no, outBizNo, orgId}
            self.notices: list[dict] = []
            self.reads: list[dict] = []              # QR and card reads answered

    def _who(self, body: dict):
        p = self.persons.get(str(body.get("psn_no"))) if body.get("psn_no") else \
            self.persons.by_certno(str(body.get("certno", "")))
        if p is None:
            raise TerminalError("unknown person")
        return p

    def present(self, body: dict) -> dict:
        p = self._who(body)
        with self._lock:
            self.present_at[str(body.get("orgId") or "")] = p.psn_no
        return {"present": p.psn_no}

    def present_qr(self, body: dict) -> dict:
        p = self._who(body)
        with self._lock:
            self.qr_at[str(body.get("orgId") or "")] = p.psn_no
        return {"qr": p.psn_no}

    def insert_card(self, body: dict) -> dict:
        p = self._who(body)
        with self._lock:
            self.card_at[str(body.get("orgId") or "")] = p.psn_no
        return {"card": p.psn_no, "card_no": p.card_no}

    def remove_card(self, body: dict) -> dict:
        with self._lock:
            self.card_at.pop(str(body.get("orgId") or ""), None)
        return {"removed": True}

    def handle(self, req: dict) -> dict:
        trans = req.get("transType")
        data = req.get("data")
        if not isinstance(data, dict):
            raise TerminalError("data不能为空")
        org = str(req.get("orgId") or data.get("orgId") or "")
        if org not in self.cfg.institutions:
            raise TerminalError("机构编码不存在")
        if trans == "cn.nhsa.ec.auth":
            return self._auth(org, data)
        if trans == "cn.nhsa.auth.check":
            return self._check(org, data)
        if trans == "cn.nhsa.settle.notify":
            return self._notify(org, data)
        if trans in ("ec.query", "cn.nhsa.qrcode.get"):
            return self._qr(org, trans, data)
        raise TerminalError(f"transType {trans} 不支持")

    def _identity(self, p) -> dict:
        ec = self.tokens.issue("ecToken", p.psn_no, TOKEN_TTL, (p.insuplc_admdvs or "440100") + "ec")
        return {"idNo": p.certno, "idType": p.psn_cert_type, "userName": p.psn_name,
                "ecToken": ec.value, "insuOrg": p.insuplc_admdvs, "ecIndexNo": p.psn_no,
                "gender": p.gend, "birthday": p.brdy, "nationality": "CHN", "email": None}

    def _qr(self, org: str, trans: str, data: dict) -> dict:
        # EcQueryInput.cs / QrCodeInput.cs: businessType, operator and office are the inputs.
        for k in ("businessType", "operatorId", "operatorName"):
            if data.get(k) in (None, ""):
                raise TerminalError(f"{k}不能为空")
        with self._lock:
            psn_no = self.qr_at.pop(org, None) or self.qr_at.pop("", None)
        if psn_no is None:
            raise TerminalError("未读取到医保电子凭证,请出示电子凭证二维码")
        p = self.persons.get(psn_no)
        out = self._identity(p)
        out["extra" if trans == "ec.query" else "extData"] = None
        with self._lock:
            self.reads.append({"kind": trans, "orgId": org, "psn_no": psn_no,
                               "deviceType": data.get("deviceType")})
        return out

    def read_card(self, req: dict) -> str:
        """ReadCardBas: the card's 11 '|'-separated fields (bridge/terminal/messages.py order,
        NMG DllHelper.cs), with the trailing '|' the library writes."""
        org = str(req.get("orgId") or "")
        if org not in self.cfg.institutions:
            raise TerminalError("机构编码不存在")
        with self._lock:
            psn_no = self.card_at.get(org) or self.card_at.get("")
        if psn_no is None:
            raise TerminalError("未检测到社保卡,请插卡")
        p = self.persons.get(psn_no)
        fields = [p.card_sn[:6], p.certno, p.card_no, p.card_sn, p.psn_name,
                  "00814E43238697159900" + p.card_sn[-6:], "3.00", "20200101", "20300101",
                  "440100813475", "SIM0001"]
        with self._lock:
            self.reads.append({"kind": "ReadCardBas", "orgId": org, "psn_no": psn_no})
        return "|".join(fields) + "|"

    def _auth(self, org: str, data: dict) -> dict:
        if not data.get("outBizNo"):
            raise TerminalError("outBizNo不能为空")
        with self._lock:
            psn_no = self.present_at.pop(org, None) or self.present_at.pop("", None)
            if psn_no is None:
                raise TerminalError("未检测到人脸,请重新刷脸")
            tok = self.tokens.issue("authNo", psn_no, TOKEN_TTL, "ano")
            self.auths[tok.value] = {"psn_no": psn_no, "outBizNo": data["outBizNo"], "orgId": org}
        return {"authNo": tok.value, "outBizNo": data["outBizNo"], "extData": None}

    def _check(self, org: str, data: dict) -> dict:
        auth = self.auths.get(str(data.get("authNo")))
        if auth is None or auth["orgId"] != org or self.tokens.peek("authNo", data["authNo"]) is None:
            raise TerminalError("authNo无效或已过期")
        p = self.persons.get(auth["psn_no"])
        return {"authNo": data["authNo"], **self._identity(p), "extData": None}

    def _notify(self, org: str, data: dict) -> dict:
        for k in ("outBizNo", "medicalSettleState", "totalFee"):
            if data.get(k) in (None, ""):
                raise TerminalError(f"{k}不能为空")
        if data["medicalSettleState"] not in ("SUCCESS", "FAIL"):
            raise TerminalError("medicalSettleState须为SUCCESS或FAIL")
        known = any(a["outBizNo"] == data["outBizNo"] for a in self.auths.values())
        if not known:
            raise TerminalError("outBizNo与刷脸授权不匹配")
        try:
            total = yuan(data["totalFee"], "totalFee")
        except MoneyError as exc:
            raise TerminalError(str(exc)) from None
        with self._lock:
            self.notices.append({"orgId": org, "outBizNo": data["outBizNo"],
                                 "medicalSettleState": data["medicalSettleState"], "totalFee": str(total),
                                 "medicalSettleNo": data.get("medicalSettleNo"),
                                 "at": time.strftime("%Y-%m-%d %H:%M:%S")})
        self.ledger.record("terminal.notice", str(data["outBizNo"]), total)
        return {"outBizNo": data["outBizNo"], "extData": None}

    def public(self) -> list[dict]:
        with self._lock:
            return [dict(n) for n in self.notices]

    def public_reads(self) -> list[dict]:
        with self._lock:
            return [dict(r) for r in self.reads]
