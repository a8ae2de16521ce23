"""Request builders for the simulator tests, written from the spec digests, not from the clients.

mobilepay.md §3 (signing string), §4 (SM4 key derivation); offline.md §1.2 (x-tif headers), §2.
Kept deliberately separate from bridge/simulator/mpc_envelope.py so that a shared mistake
cannot make a test pass.
"""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from decimal import Decimal

import httpx

from bridge.crypto import sm2, sm4

MPC = {
    "6201": "/org/local/api/hos/uldFeeInfo",
    "6202": "/org/local/api/hos/pay_order",
    "6203": "/org/local/api/hos/refund_Order",
    "6301": "/org/local/api/hos/query_order_info",
    "6401": "/org/local/api/hos/revoke_order",
}


def _strip(v):
    if isinstance(v, dict):
        kept = {}
        for k, x in v.items():
            x = _strip(x)
            if x is None or x == "" or x == []:
                continue
            kept[k] = x
        return kept
    if isinstance(v, list):
        return [_strip(x) for x in v if x is not None and x != ""]
    return v


def _stringify(v):
    if isinstance(v, dict):
        return {k: _stringify(v[k]) for k in sorted(v)}
    if isinstance(v, list):
        return [_stringify(x) for x in v]
    if v is True or v is False:
        return str(v).lower()
    return str(v)


def sign_text(fields: dict, secret: str) -> str:
    pairs = []
    for k, v in fields.items():
        if k in ("signData", "encData", "extra") or v in (None, "", {}, []):
            continue
        if isinstance(v, (dict, list)):
            v = json.dumps(_stringify(_strip(v)), ensure_ascii=False, separators=(",", ":"))
        elif v is True or v is False:
            v = str(v).lower()        # Java Boolean.toString
        pairs.append(f"{k}={v}&")
    return "".join(sorted(pairs, key=lambda s: s.lower())) + "key=" + secret


def sm4_key(app_id: str, app_secret: str) -> bytes:
    tmp = sm4.encrypt_ecb(app_id[:16].encode(), app_secret.encode())
    return tmp.hex().upper()[:16].encode()


def _json(obj) -> str:
    def default(o):
        if isinstance(o, Decimal):
            return float(o)  # never reached: tests pass amounts as strings
        raise TypeError
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=default)


class MobilePayClient:
    def __init__(self, base_url: str, creds: dict, uid: bytes = sm2.DEFAULT_UID,
                 lower_hex: bool = False) -> None:
        self.base = base_url
        self.c = creds
        self.key = sm2.load_private_key(creds["institution_private_key"])
        self.platform = sm2.load_public_key(creds["platform_public_key"])
        self.uid = uid
        self.lower_hex = lower_hex

    def envelope(self, data: dict, timestamp: str | None = None) -> dict:
        env = {"appId": self.c["app_id"], "encType": "SM4", "signType": "SM2",
               "timestamp": timestamp or str(int(time.time() * 1000)), "version": "2.0.1"}
        sig = self.key.sign(sign_text({**env, "data": data}, self.c["app_secret"]).encode(), self.uid)
        enc = sm4.encrypt_ecb(sm4_key(self.c["app_id"], self.c["app_secret"]), _json(data).encode())
        env["encData"] = enc.hex() if self.lower_hex else enc.hex().upper()
        env["signData"] = base64.b64encode(sig).decode()
        return env

    def post_raw(self, func: str, env: dict, timeout: float = 5.0) -> httpx.Response:
        return httpx.post(self.base + MPC[func], content=json.dumps(env).encode(), timeout=timeout,
                          headers={"Content-Type": "application/json"})

    def open(self, body: bytes) -> tuple[dict, dict | None]:
        """Verify and decrypt a platform message; returns (envelope, data). Raises on bad signature."""
        env = json.loads(body, parse_float=Decimal)
        data = None
        if env.get("encData"):
            plain = sm4.decrypt_ecb(sm4_key(self.c["app_id"], self.c["app_secret"]),
                                    bytes.fromhex(env["encData"]))
            data = json.loads(plain, parse_float=Decimal)
        fields = {k: v for k, v in env.items() if k not in ("encData", "signData")}
        if data is not None:
            fields["data"] = data
        text = sign_text(fields, self.c["app_secret"]).encode()
        if not self.platform.verify(text, base64.b64decode(env["signData"]), sm2.DEFAULT_UID):
            raise AssertionError("platform signature does not verify")
        return env, data

    def call(self, func: str, data: dict, timeout: float = 5.0) -> tuple[dict, dict | None]:
        r = self.post_raw(func, self.envelope(data), timeout)
        assert r.status_code == 200, r.text
        return self.open(r.content)


def tif_headers(paasid: str, secret: str, timestamp: int | None = None) -> dict:
    ts = str(timestamp if timestamp is not None else int(time.time()))
    nonce = secrets.token_hex(8)
    sig = hashlib.sha256((ts + secret + nonce + ts).encode()).hexdigest()
    return {"x-tif-paasid": paasid, "x-tif-timestamp": ts, "x-tif-nonce": nonce,
            "x-tif-signature": sig, "Content-Type": "application/json"}


class OfflineClient:
    def __init__(self, creds: dict, fixmedins_code: str) -> None:
        self.c = creds
        self.code = fixmedins_code
        self.seq = 0

    def msgid(self) -> str:
        self.seq += 1
        return f"{self.code}{time.strftime('%Y%m%d%H%M%S')}{self.seq % 10000:04d}"[:30]

    def envelope(self, infno: str, input_: dict, msgid: str | None = None,
                 insuplc: str = "440100") -> dict:
        return {"infno": infno, "msgid": msgid or self.msgid(), "mdtrtarea_admvs": self.c["mdtrtarea_admvs"],
                "insuplc_admdvs": insuplc, "recer_sys_code": "01", "dev_no": "", "dev_safe_info": "",
                "cainfo": "", "signtype": "SM3", "infver": "V1.0", "opter_type": "1", "opter": "0001",
                "opter_name": "收费员", "inf_time": time.strftime("%Y-%m-%d %H:%M:%S"),
                "fixmedins_code": self.code, "fixmedins_name": self.c["institutions"][self.code],
                "sign_no": "", "input": input_}

    def post(self, infno: str, env: dict, headers: dict | None = None, url: str | None = None,
             timeout: float = 5.0) -> httpx.Response:
        return httpx.post(url or self.c["base_url"] + infno, content=json.dumps(env, ensure_ascii=False).encode(),
                          headers=headers or tif_headers(self.c["paasid"], self.c["secret"]), timeout=timeout)

    def call(self, infno: str, input_: dict, msgid: str | None = None, url: str | None = None,
             insuplc: str = "440100") -> dict:
        r = self.post(infno, self.envelope(infno, input_, msgid, insuplc), url=url)
        assert r.status_code == 200, r.text
        return json.loads(r.content, parse_float=Decimal)
