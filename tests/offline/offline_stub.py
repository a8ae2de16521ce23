"""A tiny offline-platform stub written from the digest (offline.md §1.2-§5), served on
127.0.0.1 over real HTTP so the client is tested through httpx."""
import hashlib
import json
import socket
import struct
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler

SECRET = "tif-secret"
CODE = "H44010600001"


def tif_ok(headers) -> bool:
    ts, nonce = headers.get("x-tif-timestamp", ""), headers.get("x-tif-nonce", "")
    want = hashlib.sha256((ts + SECRET + nonce + ts).encode()).hexdigest()
    return headers.get("x-tif-paasid") == "paas1" and headers.get("x-tif-signature") == want


def settlement(msgid, *, setl_id="300014497225", cancel=False):
    # Consistent with every §5.8 rule: 100.00 = 10+5+3+82 = 60+38+2; 38 = 20+18; 60 = 50+10
    s = {"mdtrt_id": "310003327436", "setl_id": setl_id, "psn_no": "44030000000001112535",
         "medins_setl_id": msgid, "setl_time": "2026-01-02 10:00:00",
         "medfee_sumamt": 100.00, "fulamt_ownpay_amt": 10.00, "overlmt_selfpay": 5.00,
         "preselfpay_amt": 3.00, "inscp_scp_amt": 82.00, "hifp_pay": 50.00, "cvlserv_pay": 10.00,
         "hifes_pay": 0, "hifmi_pay": 0, "hifob_pay": 0, "maf_pay": 0, "oth_pay": 0,
         "fund_pay_sumamt": 60.00, "psn_part_amt": 38.00, "acct_pay": 20.00,
         "psn_cash_pay": 18.00, "hosp_part_amt": 2.00, "balc": 480.00, "acct_mulaid_pay": 0,
         "clr_type": "11"}
    if cancel:      # like the real 2208 sample (§5.9): negated, two terms null
        s = {k: (-v if isinstance(v, (int, float)) and k != "balc" else v) for k, v in s.items()}
        s["psn_part_amt"] = None
        s["hosp_part_amt"] = None
    return s


class Stub:
    def __init__(self):
        self.requests = []          # (path, headers, json body)
        self.modes = {}             # infno -> mode (or list of modes, consumed in order)
        self.sign_count = 0
        self.uploads = []           # 9101 `in` values as received
        self.lock = threading.Lock()

    def mode_for(self, infno):
        with self.lock:
            mode = self.modes.get(infno, "ok")
            if isinstance(mode, list):
                mode = mode.pop(0) if mode else "ok"
            return mode

    def success_output(self, infno, req):
        msgid = req["msgid"]
        if infno == "9001":
            with self.lock:
                self.sign_count += 1
                n = self.sign_count
            return {"signinoutb": {"sign_no": f"SN{n:06d}", "sign_time": "2026-01-02 08:00:00"}}
        if infno == "1101":
            return {"baseinfo": {"psn_no": "44030000000001112535", "psn_name": "张三丰",
                                 "certno": "440106199001011234", "psn_cert_type": "01"},
                    "insuinfo": [{"insutype": "310", "balc": 500.00,
                                  "insuplc_admdvs": "440300"}], "idetinfo": []}
        if infno == "2201":
            return {"data": {"mdtrt_id": "310003327436", "psn_no": "44030000000001112535",
                             "ipt_otp_no": "MZ1"}}
        if infno in ("2204", "2301"):
            rows = req["input"]["feedetail"]
            return {"result": [{"feedetl_sn": r["feedetl_sn"],
                                "det_item_fee_sumamt": r["det_item_fee_sumamt"],
                                "fulamt_ownpay_amt": 0} for r in rows]}
        if infno in ("2206", "2303"):
            return {"setlinfo": settlement(msgid, setl_id=None), "setldetail": [], "expContent": None}
        if infno in ("2207", "2304"):
            return {"setlinfo": settlement(msgid), "setldetail": [
                {"fund_pay_type": "310100", "fund_payamt": 50.00}]}
        if infno == "2260":
            flag = req["input"]["mdtrtinfo"]["setl_flag"]
            return {"setlInfo": settlement(msgid, setl_id=None if flag == "0" else "300000000009")}
        if infno in ("2208", "2305", "2261"):
            return {"setlinfo": settlement(msgid, cancel=True)}
        if infno == "3201":
            return {"stmtinfo": {"setl_optins": "440300", "stmt_rslt": "0", "stmt_rslt_dscr": "平"}}
        if infno == "3202":
            return {"fileinfo": {"file_qury_no": "F1", "filename": "r.zip"}}
        if infno == "2001":
            return {"trtinfo": [
                {"psn_no": req["input"]["data"]["psn_no"], "trt_chk_type": "01",
                 "fund_pay_type": "310100", "trt_enjymnt_flag": "1", "begndate": "2015-01-01",
                 "enddate": None, "trt_chk_rslt": None},
                {"psn_no": req["input"]["data"]["psn_no"], "trt_chk_type": "01",
                 "fund_pay_type": "510100", "trt_enjymnt_flag": "0", "begndate": "2015-01-01",
                 "enddate": None, "trt_chk_rslt": "未参加生育保险"}]}
        if infno == "1901":        # one camelCase row (SZ) and one snake_case row (NMG)
            return {"list": [
                {"type": "admdvs", "label": "广州市", "value": "440100", "parentValue": "440000",
                 "sort": 1, "valiFlag": "1"},
                {"type": "admdvs", "label": "深圳市", "value": "440300", "parent_value": "440000",
                 "sort": "2", "vali_flag": "1", "create_user": "u", "create_date": "2020-01-01"}]}
        if infno == "9101":
            node = req["input"]["fsUploadIn"]
            self.uploads.append(node["in"])
            return {"file_qury_no": "FQ1", "filename": node["filename"],
                    "dld_endtime": "2026-01-02 23:59:59"}
        if infno == "fpy001":
            return {"stas": "x"}
        if infno == "tgdupc004":
            return {"refStatus": "SUCC"}
        return None


def envelope_out(output, infcode=0, err_msg=None):
    return {"infcode": infcode, "inf_refmsgid": "440300202601021000000000000001",
            "refmsg_time": "20260102100000000", "respond_time": "20260102100000001",
            "err_msg": err_msg, "warn_msg": None, "signtype": None, "cainfo": None,
            "output": output}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def _send(self, status, data: bytes):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        stub = self.server.stub
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        try:
            req = json.loads(raw, parse_float=Decimal)
        except ValueError:
            return self._send(400, b"{}")
        stub.requests.append((self.path, dict(self.headers), req))
        infno = req.get("infno", "")
        if not tif_ok(self.headers):      # gateway-level refusal (§1.4)
            return self._send(401, json.dumps({"code": "401", "type": "error",
                                               "message": "signature"}).encode())
        mode = stub.mode_for(infno)
        if isinstance(mode, bytes):       # a raw reply body (9102 answers the file itself)
            return self._send(200, mode)
        if isinstance(mode, tuple) and mode[0] == "truncated":   # the connection drops mid-body
            self.send_response(200)
            self.send_header("Content-Length", str(2 * len(mode[1])))
            self.end_headers()
            self.wfile.write(mode[1])
            self.wfile.flush()
            self.close_connection = True
            return
        if mode == "ok":
            body = envelope_out(stub.success_output(infno, req))
        elif mode == "ok_string_infcode":
            body = dict(envelope_out(stub.success_output(infno, req)), infcode="0")
        elif mode == "wrapped_ok":
            body = {"code": "0", "type": "success", "message": "",
                    "data": envelope_out(stub.success_output(infno, req))}
        elif mode == "gateway_error":
            body = {"code": "-2", "type": "error", "message": "gateway refused", "data": None}
        elif mode == "gateway_signature":     # the gateway's own check, before forwarding (§1.4)
            body = {"code": "-1", "type": "gateway", "message": "x-tif-signature签名校验失败", "data": None}
        elif mode == "in_progress":
            body = envelope_out(None, infcode=-1, err_msg="交易处理中，请稍后查询")
        elif mode == "busy":
            body = envelope_out(None, infcode=-1, err_msg="系统繁忙，请稍后再试")
        elif mode == "timeout_refusal":       # "try again later" over a deduction that may have gone through
            body = envelope_out(None, infcode=-1, err_msg="银联扣款超时，请稍后再试")
        elif mode == "429":
            return self._send(429, b"Too Many Requests")
        elif mode == "error":
            body = envelope_out(None, infcode=-1, err_msg="人员信息不存在")
        elif mode == "signin_invalid":
            body = envelope_out(None, infcode=-1, err_msg="签到信息已失效,请重新签到")
        elif mode == "bad_sum":
            out = stub.success_output(infno, req)
            key = "setlinfo" if "setlinfo" in out else "setlInfo"
            out[key]["acct_pay"] = 25.00          # 25 + 18 != 38
            body = envelope_out(out)
        elif mode == "missing_field":
            out = stub.success_output(infno, req)
            out["setlinfo"].pop("hosp_part_amt")
            body = envelope_out(out)
        elif mode == "500":
            return self._send(500, b"internal error")
        elif mode == "garbage":
            return self._send(200, b"<html>not json")
        elif mode == "timeout":
            time.sleep(1.5)
            body = envelope_out(stub.success_output(infno, req))
        elif mode == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        else:
            raise AssertionError(mode)
        self._send(200, json.dumps(body, default=str, ensure_ascii=False).encode())

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass


