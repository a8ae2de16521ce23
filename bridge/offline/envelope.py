"""The common input envelope of the offline interfaces, its msgid, the gateway headers,
and the JSON encoding they travel in (digest offline.md §1.2, §2, §3).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from bridge.offline.config import OfflineConfig, Operator

try:                                    # POSIX
    import fcntl
except ImportError:                     # Windows hosts of legacy HIS installations
    fcntl = None
    import msvcrt


# ---------------------------------------------------------------- JSON with Decimal money

_DEC_MARK = "\x00DEC:"
_DEC_RE = re.compile(r'"\\u0000DEC:(-?[0-9]+(?:\.[0-9]+)?)"')


def _mark_decimals(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        if not obj.is_finite():
            raise ValueError("money must be finite")
        return _DEC_MARK + format(obj, "f")
    if isinstance(obj, float):
        raise TypeError("float in a request: money must be decimal.Decimal")
    if isinstance(obj, str) and "\x00" in obj:
        raise ValueError("NUL character in a request string")
    if isinstance(obj, Mapping):
        return {str(k): _mark_decimals(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_mark_decimals(v) for v in obj]
    return obj


def dumps(obj: Any) -> bytes:
    """UTF-8 JSON in which Decimals are written as exact JSON numbers (SZ/CQ send
    amounts as numbers; the stdlib encoder cannot write a Decimal)."""
    text = json.dumps(_mark_decimals(obj), ensure_ascii=False, separators=(",", ":"))
    return _DEC_RE.sub(lambda m: m.group(1), text).encode("utf-8")


def loads(data: bytes | str) -> Any:
    """Parse a platform answer; every JSON fraction becomes a Decimal, never a float."""
    if isinstance(data, bytes):
        data = data.decode("utf-8")
    return json.loads(data, parse_float=Decimal)


# ---------------------------------------------------------------- gateway headers

def tif_signature(timestamp: str, secret: str, nonce: str) -> str:
    """lowercase hex SHA-256 of timestamp + secret + nonce + timestamp (§1.2, 4 sources)."""
    return hashlib.sha256((timestamp + secret + nonce + timestamp).encode("utf-8")).hexdigest()


def tif_headers(paas_id: str, secret: str, *, timestamp: Optional[int] = None,
                nonce: Optional[str] = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)   # Unix seconds (§1.2)
    # The nonce format is not enforced (§1.2); a dash-less GUID-like hex string is one
    # of the forms seen in GD code.
    nonce = nonce or secrets.token_hex(16)
    return {
        "Content-Type": "application/json;charset=utf-8",
        "x-tif-paasid": paas_id,
        "x-tif-timestamp": ts,
        "x-tif-nonce": nonce,
        "x-tif-signature": tif_signature(ts, secret, nonce),
    }


# ---------------------------------------------------------------- msgid

class MsgIdGenerator:
    """msgid = fixmedins_code + yyyyMMddHHmmss + 4-digit sequence (§2 #2, CQ and SZ).

    Uniqueness:
    * threads: one lock around the counter;
    * processes on one host (two daemons): the first sequence digit is a *node* digit
      0-9 that each process owns through an exclusive OS lock on
      ``<lock_dir>/msgid-<code>-<node>.lock`` held for the generator's lifetime; the other
      three digits count within the second (1000 messages per second per process);
    * hosts: give each host's daemons disjoint ``msgid_node`` values (a lock file
      cannot see another host);
    * restarts: the lock file records the last second used; a new holder of the node
      starts strictly after it, so a crash-and-restart inside one second, or a clock
      stepped backwards, cannot reuse a msgid.  When 1000 ids are used within one
      second, the generator moves on to the next second instead of blocking.
    """

    def __init__(self, fixmedins_code: str, *, node: Optional[int] = None,
                 lock_dir: Optional[str] = None, clock: Callable[[], float] = time.time):
        self._code = fixmedins_code
        self._clock = clock
        self._lock = threading.Lock()
        directory = Path(lock_dir or os.path.join(_tempdir(), "mibridge-msgid"))
        directory.mkdir(parents=True, exist_ok=True)
        self.node, self._file = _claim_node(directory, fixmedins_code, node)
        self._file.seek(0)
        stored = self._file.read().decode("ascii", "replace").strip()
        high_water = int(stored) if stored.isdigit() else 0
        self._second = max(int(clock()), high_water + 1)
        self._seq = 0
        self._record(self._second)

    def _record(self, second: int) -> None:
        self._file.seek(0)
        self._file.truncate()
        self._file.write(str(second).encode("ascii"))
        self._file.flush()

    def next(self) -> str:
        with self._lock:
            now = int(self._clock())
            if now > self._second:
                self._second, self._seq = now, 0
                self._record(now)
            elif self._seq >= 1000:
                self._second, self._seq = self._second + 1, 0
                self._record(self._second)
            seq = self._seq
            self._seq += 1
            stamp = time.strftime("%Y%m%d%H%M%S", time.localtime(self._second))
            return f"{self._code}{stamp}{self.node}{seq:03d}"

    def close(self) -> None:
        """Release the node digit (the OS also releases it when the process ends)."""
        if not self._file.closed:
            self._file.close()


def _tempdir() -> str:
    import tempfile
    return tempfile.gettempdir()


def _try_lock(fh) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            fh.seek(0)
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        return True
    except OSError:
        return False


def _claim_node(directory: Path, code: str, wanted: Optional[int]):
    candidates = [wanted] if wanted is not None else list(range(10))
    for node in candidates:
        fh = open(directory / f"msgid-{code}-{node}.lock", "a+b")
        if _try_lock(fh):
            return node, fh
        fh.close()
    if wanted is not None:
        raise RuntimeError(f"msgid node {wanted} is held by another process")
    raise RuntimeError("all ten msgid nodes are held by other processes")


# ---------------------------------------------------------------- the envelope

def wrap_input(config: OfflineConfig, infno: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """Put a single-record input under the node this region expects (§5 table)."""
    node = config.node_for(infno)
    return dict(record) if node == "" else {node: dict(record)}


def build_envelope(config: OfflineConfig, *, infno: str, msgid: str, operator: Operator,
                   sign_no: Optional[str], input: Mapping[str, Any],
                   insuplc_admdvs: Optional[str] = None,
                   inf_time: Optional[str] = None) -> dict[str, Any]:
    """The common input (§2).  `insuplc_admdvs` is required whenever the input names a
    person (psn_no); it comes from 1101 `insuinfo.insuplc_admdvs`."""
    env: dict[str, Any] = {
        "infno": infno,
        "msgid": msgid,
        "mdtrtarea_admvs": config.mdtrtarea_admvs,
        "insuplc_admdvs": insuplc_admdvs or "",
        "recer_sys_code": config.recer_sys_code,
        "dev_no": config.dev_no,
        "dev_safe_info": config.dev_safe_info,
        "cainfo": "",
        "signtype": config.signtype,
        "infver": config.infver,
        "opter_type": operator.opter_type,
        "opter": operator.opter,
        "opter_name": operator.opter_name,
        "inf_time": inf_time or time.strftime("%Y-%m-%d %H:%M:%S"),
        "fixmedins_code": config.fixmedins_code,
        "fixmedins_name": config.fixmedins_name,
        "sign_no": sign_no or "",
        "input": dict(input),
    }
    if config.recer_admdvs is not None:
        env[config.recer_admdvs_field] = config.recer_admdvs
    return env
