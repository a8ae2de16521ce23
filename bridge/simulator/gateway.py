"""The Guangdong gateway in front of the offline interfaces (offline.md §1-§3).

Requests: POST <base>/<infno> with x-tif-paasid / x-tif-timestamp / x-tif-nonce /
x-tif-signature = lowercase hex SHA-256 of (timestamp + secret + nonce + timestamp) (§1.2).
A request that fails this check never reaches the platform: the gateway answers with its own
wrapper {"code", "type", "message", "data"} (§1.4). The wrapper's code values are not public
[U]; this gateway uses code "-1" and type "gateway".
Responses: the common output envelope of §3, infcode 0 / -1 as integers (§12).
"""
from __future__ import annotations

import hashlib
import hmac
import itertools
import threading
import time
from typing import Any, Optional

from .config import SimulatorConfig


class GatewayError(ValueError):
    pass


def check_tif(headers: Any, cfg: SimulatorConfig) -> None:
    paasid = headers.get("x-tif-paasid")
    ts = headers.get("x-tif-timestamp")
    nonce = headers.get("x-tif-nonce")
    sig = headers.get("x-tif-signature")
    if not (paasid and ts and nonce and sig):
        raise GatewayError("缺少x-tif请求头")
    if paasid != cfg.paasid:
        raise GatewayError("paasid不存在")
    expected = hashlib.sha256((ts + cfg.tif_secret + nonce + ts).encode("utf-8")).hexdigest()
    if not hmac.compare_digest(expected, sig.lower()):
        raise GatewayError("x-tif-signature签名校验失败")
    if cfg.tif_max_skew_seconds is not None:
        try:
            skew = abs(time.time() - int(ts))
        except ValueError:
            raise GatewayError("x-tif-timestamp格式错误") from None
        if skew > cfg.tif_max_skew_seconds:
            raise GatewayError("x-tif-timestamp超出允许范围")


def wrapper_error(message: str, code: str = "-1") -> dict:
    return {"code": code, "type": "gateway", "message": message, "data": None}


_serial = itertools.count(1)
_serial_lock = threading.Lock()


def _ms17() -> str:
    t = time.time()
    return time.strftime("%Y%m%d%H%M%S", time.localtime(t)) + f"{int(t * 1000) % 1000:03d}"


def response(cfg: SimulatorConfig, output: Optional[dict], received: str,
             error: Optional[str] = None, infcode: int = -1) -> dict:
    """The common output envelope (offline.md §3): inf_refmsgid = admdvs(6)+time(14)+serial(10)."""
    with _serial_lock:
        serial = next(_serial)
    env: dict[str, Any] = {
        "infcode": 0 if error is None else infcode,
        "inf_refmsgid": f"{cfg.admdvs}{time.strftime('%Y%m%d%H%M%S')}{serial:010d}",
        "refmsg_time": received, "respond_time": _ms17(),
        "err_msg": error, "warn_msg": None, "signtype": None, "cainfo": None, "enctype": None,
    }
    if error is None:
        env["output"] = output if output is not None else {}
    return env


def received_time() -> str:
    return _ms17()
