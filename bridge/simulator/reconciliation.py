"""Day-end reconciliation against the platform's own settlement records (offline.md §10).

3201 compares totals per (insutype, clr_type, setl_optins) over the net settlements in the
date range (valid settlements; a cancelled one nets to zero). stmt_rslt "0" balanced, "1" not
(offline.md §6). Guangzhou's variant names clr_optins / cash_payamt are accepted.
9101 stores an uploaded file (`in` as a byte array or Base64); 3202 reads its zip of TAB-separated
rows (setl_id, mdtrt_id, psn_no, medfee_sumamt, fund_pay_sumamt, acct_pay, refd_setl_flag),
compares per setl_id, and leaves a result zip for 9102, whose reply is the zip itself.
Row stmt_rslt codes are not public [U]; this simulator uses
"0" balanced, "1" only the institution has it, "2" only the centre has it, "3" amounts differ.
"""
from __future__ import annotations

import base64
import io
import itertools
import time
import zipfile
from decimal import Decimal
from typing import Any

from .offline import OfflineError
from .split import ZERO
from .wire import MoneyError, yuan

ROW_BALANCED, ROW_INSTITUTION_ONLY, ROW_CENTRE_ONLY, ROW_MISMATCH = "0", "1", "2", "3"


def _err(message: str) -> Exception:
    return OfflineError(message)


def _amount(v: Any, name: str) -> Decimal:
    try:
        return yuan(v, name)
    except MoneyError as exc:
        raise _err(str(exc)) from None


class Reconciliation:
    def __init__(self, offline: Any) -> None:
        self.offline = offline
        self.files: dict[str, dict] = {}
        self._seq = itertools.count(1)

    def reset(self) -> None:
        self.files.clear()

    def _in_range(self, env: dict, node: dict, optins: str, clr_type: Any, insutype: Any) -> list:
        try:
            begin, end = str(node["stmt_begndate"])[:10], str(node["stmt_enddate"])[:10]
        except KeyError:
            raise _err("stmt_begndate/stmt_enddate不能为空") from None
        out = []
        for s in self.offline.settlements.values():
            p = self.offline.persons.get(s.psn_no)
            if (s.fixmedins_code == env["fixmedins_code"] and begin <= s.setl_time[:10] <= end
                    and p is not None and p.insuplc_admdvs == optins
                    and (clr_type in (None, "") or s.clr_type == str(clr_type))
                    and (insutype in (None, "") or s.insutype == str(insutype))):
                out.append(s)
        return out

    @staticmethod
    def _node(inp: dict) -> dict:
        return inp["data"] if isinstance(inp.get("data"), dict) else inp

    def totals(self, env: dict, inp: dict) -> dict:
        node = self._node(inp)
        optins = node.get("setl_optins") or node.get("clr_optins")
        if not optins or node.get("insutype") in (None, "") or node.get("clr_type") in (None, ""):
            raise _err("insutype/clr_type/setl_optins不能为空")
        valid = [s for s in self._in_range(env, node, optins, node["clr_type"], node["insutype"]) if s.valid]
        ours = {"medfee_sumamt": sum((s.split.total for s in valid), ZERO),
                "fund_pay_sumamt": sum((s.split.fund for s in valid), ZERO),
                "fixmedins_setl_cnt": Decimal(len(valid))}
        if "acct_pay" in node:
            ours["acct_pay"] = sum((s.split.acct for s in valid), ZERO)
        else:   # Guangzhou sends cash_payamt instead (offline.md §10.1)
            ours["cash_payamt"] = sum((s.split.cash for s in valid), ZERO)
        diffs = []
        for k, v in ours.items():
            theirs = Decimal(str(node.get(k, "0"))) if k == "fixmedins_setl_cnt" else _amount(node.get(k), k)
            if theirs != v:
                diffs.append(f"{k}: 机构{theirs} 中心{v}")
        return {"stmtinfo": {"setl_optins": optins, "stmt_rslt": "0" if not diffs else "1",
                             "stmt_rslt_dscr": "平" if not diffs else "不平: " + "; ".join(diffs)}}

    def upload(self, env: dict, inp: dict) -> dict:
        node = inp.get("fsUploadIn")
        if not isinstance(node, dict) or node.get("in") in (None, "") or not node.get("filename"):
            raise _err("fsUploadIn.in/filename不能为空")
        raw = node["in"]
        try:
            blob = bytes(raw) if isinstance(raw, list) else base64.b64decode(raw, validate=True)
        except (ValueError, TypeError):
            raise _err("文件内容格式错误") from None
        return self._store(env, str(node["filename"]), blob)

    def _store(self, env: dict, filename: str, blob: bytes) -> dict:
        no = f"FQ{time.strftime('%Y%m%d%H%M%S')}{next(self._seq):06d}"
        info = {"file_qury_no": no, "filename": filename,
                "dld_endtime": time.strftime("%Y-%m-%d 23:59:59")}
        self.files[no] = {**info, "blob": blob, "fixmedins_code": env["fixmedins_code"]}
        return info

    def download(self, env: dict, inp: dict) -> bytes:
        node = inp.get("fsDownloadIn") or {}
        f = self.files.get(str(node.get("file_qury_no")))
        if f is None or f["fixmedins_code"] != env["fixmedins_code"]:
            raise _err("文件不存在")
        return f["blob"]

    def details(self, env: dict, inp: dict) -> dict:
        node = self._node(inp)
        optins = node.get("setl_optins")
        f = self.files.get(str(node.get("file_qury_no")))
        if not optins or f is None or f["fixmedins_code"] != env["fixmedins_code"]:
            raise _err("setl_optins/file_qury_no无效")
        try:
            with zipfile.ZipFile(io.BytesIO(f["blob"])) as z:
                text = z.read(z.namelist()[0]).decode("utf-8")
        except (zipfile.BadZipFile, IndexError, UnicodeDecodeError):
            raise _err("对账明细文件不是UTF-8文本的zip") from None
        theirs: dict[str, dict] = {}
        for line in text.splitlines():
            if not line.strip():
                continue
            cols = line.split("\t")
            if len(cols) < 7:
                raise _err("对账明细行列数不足")
            row = theirs.setdefault(cols[0], {"mdtrt_id": cols[1], "psn_no": cols[2], "flag": cols[6],
                                              "amounts": [ZERO, ZERO, ZERO]})
            for i, name in enumerate(("medfee_sumamt", "fund_pay_sumamt", "acct_pay")):
                v = cols[3 + i]
                row["amounts"][i] += ZERO if v in ("", "null") else _amount(v, name)
        centre = {s.setl_id: s for s in self._in_range(env, node, optins, node.get("clr_type"), None)}
        out_lines = []
        for setl_id in sorted(set(theirs) | set(centre)):
            s, t = centre.get(setl_id), theirs.get(setl_id)
            ours = [s.split.total, s.split.fund, s.split.acct] if s is not None and s.valid else [ZERO] * 3
            if t is None:
                if s is None or not s.valid:
                    continue
                rslt, memo, amounts = ROW_CENTRE_ONLY, "中心多", ours
            elif s is None:
                rslt, memo, amounts = ROW_INSTITUTION_ONLY, "医药机构多", t["amounts"]
            elif t["amounts"] != ours:
                rslt, memo, amounts = ROW_MISMATCH, "数据不一致", ours
            else:
                rslt, memo, amounts = ROW_BALANCED, "平", ours
            psn = s.psn_no if s else t["psn_no"]
            mdtrt = s.mdtrt_id if s else t["mdtrt_id"]
            flag = ("0" if s.valid else "1") if s else t["flag"]
            out_lines.append("\t".join([psn, mdtrt, setl_id, s.msgid if s else "", rslt, flag, memo,
                                        *(format(a, "f") for a in amounts)]))
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("result.txt", "\n".join(out_lines))
        return {"fileinfo": self._store(env, "result.zip", buf.getvalue())}
