"""Day-end reconciliation against the platform's own settlement records (offline.md §10).

The centre's statement for [stmt_begndate, stmt_enddate] is made of rows: each settlement is a
positive row dated by its setl_time, each cancellation (2208/2305/2261, a 2601 of a settlement,
or a refund at the centre) a negative row dated by its cancel_time - "the day's net settlements
(settlements minus cancellations)" (§10.1).  Filters: the institution, setl_optins (= the
region of the insurance settled under), clr_type, insutype.

3201 compares medfee_sumamt, fund_pay_sumamt, acct_pay (national) or cash_payamt (Guangzhou),
and fixmedins_setl_cnt (config.recon_count_mode "net" or "rows") with the centre's totals;
stmt_rslt "0" balanced, "1" not (offline.md §6).
9101 stores an uploaded file (`in` as Base64, or a JSON array of bytes, signed as a Java byte[]
gives them or unsigned); 3202 reads its zip of TAB-separated rows (setl_id, mdtrt_id, psn_no,
medfee_sumamt, fund_pay_sumamt, acct_pay, refd_setl_flag; "null" = empty; rows of one setl_id
are summed, so a refunded settlement may come as a positive and a negative row), compares the
net amounts per setl_id with the centre's, and leaves a result zip (member result.txt, ZS) for
9102, whose reply is the zip itself.  Row stmt_rslt codes are not public [U]; this simulator
uses "0" balanced, "1" only the institution has it, "2" only the centre has it, "3" amounts
differ.  Files are written and read in config.recon_file_encoding (UTF-8 by default).

Controls that make the sides disagree (POST /__sim__/reconciliation/mismatch):
* missing_at_centre {setl_id}: the centre's statement leaves the settlement out;
* amount_off {setl_id, field (medfee_sumamt | fund_pay_sumamt | acct_pay), delta}: the centre
  states that amount off by delta (the other amounts stay, so the sum rules break on purpose);
* extra_refund {setl_id}: the centre cancels the settlement on its own (money goes back to the
  account as on 2208), a refund the institution never asked for.
A settlement only the centre has needs no control: settle without telling the hospital side.
POST /__sim__/reconciliation/backdate {setl_id, days} moves a settlement into an earlier day.
"""
from __future__ import annotations

import base64
import io
import itertools
import threading
import time
import zipfile
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Iterator

from .offline import OfflineError
from .split import ZERO
from .wire import MoneyError, yuan

ROW_BALANCED, ROW_INSTITUTION_ONLY, ROW_CENTRE_ONLY, ROW_MISMATCH = "0", "1", "2", "3"
AMOUNT_FIELDS = ("medfee_sumamt", "fund_pay_sumamt", "acct_pay")
NULL = "null"
MISMATCH_KINDS = ("missing_at_centre", "amount_off", "extra_refund")


def _err(message: str) -> Exception:
    return OfflineError(message)


def _amount(v: Any, name: str) -> Decimal:
    try:
        return yuan(v, name)
    except MoneyError as exc:
        raise _err(str(exc)) from None


@dataclass(frozen=True)
class CentreRow:
    settlement: Any
    sign: int                       # +1 settlement, -1 cancellation
    amounts: tuple[Decimal, Decimal, Decimal, Decimal]   # total, fund, acct, cash (unsigned)


class Reconciliation:
    def __init__(self, offline: Any) -> None:
        self.offline = offline
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.files: dict[str, dict] = {}
            self.hidden: set[str] = set()
            self.skews: dict[str, dict[str, Decimal]] = {}

    @property
    def cfg(self):
        return self.offline.cfg

    # --- controls ------------------------------------------------------------------------
    def mismatch(self, body: dict) -> dict:
        kind, setl_id = body.get("kind"), str(body.get("setl_id") or "")
        if kind not in MISMATCH_KINDS:
            raise ValueError(f"kind must be one of {MISMATCH_KINDS}")
        st = self.offline.settlements.get(setl_id)
        if st is None:
            raise ValueError(f"unknown setl_id {setl_id!r}")
        if kind == "missing_at_centre":
            with self._lock:
                self.hidden.add(setl_id)
        elif kind == "amount_off":
            name = body.get("field", "medfee_sumamt")
            if name not in AMOUNT_FIELDS:
                raise ValueError(f"field must be one of {AMOUNT_FIELDS}")
            try:
                delta = yuan(body.get("delta", "0.01"), "delta")
            except MoneyError as exc:
                raise ValueError(str(exc)) from None
            with self._lock:
                self.skews.setdefault(setl_id, {})[name] = delta
        else:
            self.offline.refund_at_centre(setl_id)
        return {"kind": kind, "setl_id": setl_id}

    def backdate(self, body: dict) -> dict:
        """Move a settlement's setl_time `days` back (POST /__sim__/reconciliation/backdate):
        yesterday's settlement refunded today, without waiting a day."""
        setl_id = str(body.get("setl_id") or "")
        try:
            days = int(body.get("days", 1))
        except (TypeError, ValueError):
            raise ValueError("days must be an integer") from None
        with self.offline._lock:
            st = self.offline.settlements.get(setl_id)
            if st is None:
                raise ValueError(f"unknown setl_id {setl_id!r}")
            when = time.mktime(time.strptime(st.setl_time, "%Y-%m-%d %H:%M:%S")) - days * 86400
            st.setl_time = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))
            return {"setl_id": setl_id, "setl_time": st.setl_time}

    def clear_mismatches(self) -> None:
        """Forget the statement controls (a refund at the centre stays: it happened)."""
        with self._lock:
            self.hidden.clear()
            self.skews.clear()

    def public(self) -> dict:
        with self._lock:
            return {"files": [{k: v for k, v in f.items() if k != "blob"} | {"size": len(f["blob"])}
                              for f in self.files.values()],
                    "missing_at_centre": sorted(self.hidden),
                    "amount_off": {k: {f: str(d) for f, d in v.items()} for k, v in self.skews.items()}}

    # --- the centre's statement ----------------------------------------------------------
    @staticmethod
    def _node(inp: dict) -> dict:
        return inp["data"] if isinstance(inp.get("data"), dict) else inp

    @staticmethod
    def _range(node: dict) -> tuple[str, str]:
        begin, end = node.get("stmt_begndate"), node.get("stmt_enddate")
        if begin in (None, "") or end in (None, ""):
            raise _err("stmt_begndate/stmt_enddate不能为空")
        return str(begin)[:10], str(end)[:10]

    def _rows(self, env: dict, node: dict, optins: str, clr_type: Any, insutype: Any) -> list[CentreRow]:
        begin, end = self._range(node)
        with self._lock:
            hidden, skews = set(self.hidden), {k: dict(v) for k, v in self.skews.items()}
        out = []
        for s in list(self.offline.settlements.values()):
            if (s.fixmedins_code != env["fixmedins_code"] or s.insuplc_admdvs != optins
                    or s.setl_id in hidden
                    or (clr_type not in (None, "") and s.clr_type != str(clr_type))
                    or (insutype not in (None, "") and s.insutype != str(insutype))):
                continue
            skew = skews.get(s.setl_id, {})
            amounts = (s.split.total + skew.get("medfee_sumamt", ZERO),
                       s.split.fund + skew.get("fund_pay_sumamt", ZERO),
                       s.split.acct + skew.get("acct_pay", ZERO), s.split.cash)
            if begin <= s.setl_time[:10] <= end:
                out.append(CentreRow(s, 1, amounts))
            if s.cancel_time and begin <= s.cancel_time[:10] <= end:
                out.append(CentreRow(s, -1, amounts))
        return out

    # --- 3201 ------------------------------------------------------------------------------
    def totals(self, env: dict, inp: dict) -> dict:
        node = self._node(inp)
        optins = node.get("setl_optins") or node.get("clr_optins")
        if not optins or node.get("insutype") in (None, "") or node.get("clr_type") in (None, ""):
            raise _err("insutype/clr_type/setl_optins不能为空")
        rows = self._rows(env, node, str(optins), node["clr_type"], node["insutype"])
        ours = {"medfee_sumamt": sum((r.sign * r.amounts[0] for r in rows), ZERO),
                "fund_pay_sumamt": sum((r.sign * r.amounts[1] for r in rows), ZERO)}
        if "acct_pay" in node:
            ours["acct_pay"] = sum((r.sign * r.amounts[2] for r in rows), ZERO)
        else:   # Guangzhou sends cash_payamt instead (offline.md §10.1)
            ours["cash_payamt"] = sum((r.sign * r.amounts[3] for r in rows), ZERO)
        count = sum(r.sign for r in rows) if self.cfg.recon_count_mode == "net" else len(rows)
        diffs = []
        for k, v in ours.items():
            theirs = _amount(node.get(k), k)
            if theirs != v:
                diffs.append(f"{k}: 机构{theirs} 中心{v}")
        try:
            their_count = int(str(node.get("fixmedins_setl_cnt", "")).strip())
        except ValueError:
            raise _err("fixmedins_setl_cnt须为整数") from None
        if their_count != count:
            diffs.append(f"fixmedins_setl_cnt: 机构{their_count} 中心{count}")
        return {"stmtinfo": {"setl_optins": optins, "stmt_rslt": "0" if not diffs else "1",
                             "stmt_rslt_dscr": "平" if not diffs else "不平: " + "; ".join(diffs)}}

    # --- 9101 / 9102 -----------------------------------------------------------------------
    def upload(self, env: dict, inp: dict) -> dict:
        node = inp.get("fsUploadIn")
        if not isinstance(node, dict) or node.get("in") in (None, "", []) or not node.get("filename"):
            raise _err("fsUploadIn.in/filename不能为空")
        raw = node["in"]
        if isinstance(raw, list):
            # A Java byte[] written as numbers is signed (-128..127); accept unsigned too.
            if not all(isinstance(b, int) and not isinstance(b, bool) and -128 <= b <= 255 for b in raw):
                raise _err("文件内容格式错误(字节数组元素须为-128..255的整数)")
            blob = bytes(b & 0xFF for b in raw)
        elif isinstance(raw, str):
            try:
                blob = base64.b64decode(raw, validate=True)
            except ValueError:
                raise _err("文件内容格式错误(Base64)") from None
        else:
            raise _err("文件内容格式错误")
        return self._store(env, str(node["filename"]), blob)

    def _store(self, env: dict, filename: str, blob: bytes) -> dict:
        no = f"FQ{time.strftime('%Y%m%d%H%M%S')}{next(self._seq):06d}"
        info = {"file_qury_no": no, "filename": filename, "fixmedins_code": env["fixmedins_code"],
                "dld_endtime": time.strftime("%Y-%m-%d 23:59:59")}
        with self._lock:
            self.files[no] = {**info, "blob": blob}
        return info

    def _file(self, env: dict, file_qury_no: Any) -> dict:
        with self._lock:
            f = self.files.get(str(file_qury_no))
        if f is None or f["fixmedins_code"] != env["fixmedins_code"]:
            raise _err("文件不存在")
        return f

    def download(self, env: dict, inp: dict) -> bytes:
        node = inp.get("fsDownloadIn")
        if not isinstance(node, dict) or not node.get("file_qury_no") or not node.get("filename"):
            raise _err("fsDownloadIn.file_qury_no/filename不能为空")
        f = self._file(env, node["file_qury_no"])
        if str(node["filename"]) != f["filename"]:
            raise _err("文件名与文件查询号不符")
        return f["blob"]

    # --- 3202 ------------------------------------------------------------------------------
    def _their_rows(self, blob: bytes) -> Iterator[list[str]]:
        try:
            with zipfile.ZipFile(io.BytesIO(blob)) as z:
                names = [i.filename for i in z.infolist() if not i.is_dir()]
                if len(names) != 1:
                    raise _err("对账明细文件须为含一个txt的zip")
                text = z.read(names[0]).decode(self.cfg.recon_file_encoding)
        except (zipfile.BadZipFile, UnicodeDecodeError):
            raise _err(f"对账明细文件不是{self.cfg.recon_file_encoding}文本的zip") from None
        for line in text.splitlines():
            if not line.strip():
                continue
            cols = line.split("\t")
            if len(cols) > 7 and all(c == "" for c in cols[7:]):   # a TAB after every value
                cols = cols[:7]
            if len(cols) < 7:
                raise _err("对账明细行列数不足")
            yield [c.strip() for c in cols]

    def details(self, env: dict, inp: dict) -> dict:
        node = self._node(inp)
        optins = node.get("setl_optins")
        if not optins or node.get("file_qury_no") in (None, ""):
            raise _err("setl_optins/file_qury_no不能为空")
        f = self._file(env, node["file_qury_no"])
        theirs: dict[str, dict] = {}
        for cols in self._their_rows(f["blob"]):
            setl_id = cols[0]
            if setl_id in ("", NULL):
                raise _err("对账明细行结算ID为空")
            row = theirs.setdefault(setl_id, {"mdtrt_id": cols[1], "psn_no": cols[2], "flag": cols[6],
                                              "amounts": [ZERO, ZERO, ZERO]})
            for i, name in enumerate(AMOUNT_FIELDS):
                v = cols[3 + i]
                row["amounts"][i] += ZERO if v in ("", NULL) else _amount(v, name)
        centre: dict[str, dict] = {}
        for r in self._rows(env, node, str(optins), node.get("clr_type"), None):
            c = centre.setdefault(r.settlement.setl_id, {"s": r.settlement, "amounts": [ZERO, ZERO, ZERO],
                                                          "refund": False})
            for i in range(3):
                c["amounts"][i] += r.sign * r.amounts[i]
            c["refund"] = c["refund"] or r.sign < 0
        out_lines = []
        for setl_id in sorted(set(theirs) | set(centre)):
            c, t = centre.get(setl_id), theirs.get(setl_id)
            if t is None:
                if not any(c["amounts"]):
                    continue      # settled and cancelled inside the range: nets to nothing
                rslt, memo, amounts = ROW_CENTRE_ONLY, "中心多", c["amounts"]
            elif c is None:
                rslt, memo, amounts = ROW_INSTITUTION_ONLY, "医药机构多", t["amounts"]
            elif t["amounts"] != c["amounts"]:
                rslt, memo, amounts = ROW_MISMATCH, "数据不一致", c["amounts"]
            else:
                rslt, memo, amounts = ROW_BALANCED, "平", c["amounts"]
            s = c["s"] if c else None
            values = [s.psn_no if s else t["psn_no"], s.mdtrt_id if s else t["mdtrt_id"], setl_id,
                      s.msgid if s else "", rslt,
                      ("1" if c["refund"] else "0") if c else t["flag"], memo,
                      *(format(a, "f") for a in amounts)]
            out_lines.append("\t".join(v if v not in (None, "") else NULL for v in values))
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("result.txt", "\n".join(out_lines).encode(self.cfg.recon_file_encoding))
        return {"fileinfo": self._store(env, "result.zip", buf.getvalue())}
