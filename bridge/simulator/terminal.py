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
            self.auths: dict[str, dict] = {}         # authNo -> {psn_no, outBizNo, orgId}
            self.notices: list[dict] = []

    def present(self, body: dict) -> dict:
        p = self.persons.get(str(body.get("psn_no"))) if body.get("psn_no") else \
            self.persons.by_certno(str(body.get("certno", "")))
        if p is None:
            raise TerminalError("unknown person")
        with self._lock:
            self.present_at[str(body.get("orgId") or "")] = p.psn_no
        return {"present": p.psn_no}

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
        raise TerminalError(f"transType {trans} 不支持")

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
        ec = self.tokens.issue("ecToken", p.psn_no, TOKEN_TTL, p.insuplc_admdvs + "ec")
        return {"authNo": data["authNo"], "idNo": p.certno, "idType": p.psn_cert_type, "userName": p.psn_name,
                "ecToken": ec.value, "insuOrg": p.insuplc_admdvs, "ecIndexNo": p.psn_no,
                "gender": p.gend, "birthday": p.brdy, "nationality": "CHN", "email": None, "extData": None}

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
