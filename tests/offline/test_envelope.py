import hashlib
import json
import multiprocessing
import threading
import time
from decimal import Decimal

import pytest

from bridge.offline.config import GUANGZHOU_INPUT_NODES, OfflineConfig, Operator
from bridge.offline.envelope import (MsgIdGenerator, build_envelope, dumps, loads, tif_headers,
                                     tif_signature, wrap_input)

CODE = "H44010600001"


def make_config(**kw):
    base = dict(base_url="http://127.0.0.1:1/ebus/gdyb_inf/poc/hsa/hgs/", paas_id="paas1",
                paas_secret="s3cret", fixmedins_code=CODE, fixmedins_name="某医院",
                mdtrtarea_admvs="440100")
    base.update(kw)
    return OfflineConfig(**base)


def test_tif_signature_is_sha256_of_ts_secret_nonce_ts():
    expected = hashlib.sha256(b"1700000000" + b"s3cret" + b"ab12cd" + b"1700000000").hexdigest()
    assert tif_signature("1700000000", "s3cret", "ab12cd") == expected
    h = tif_headers("paas1", "s3cret", timestamp=1700000000, nonce="ab12cd")
    assert h["x-tif-paasid"] == "paas1"
    assert h["x-tif-timestamp"] == "1700000000"
    assert h["x-tif-nonce"] == "ab12cd"
    assert h["x-tif-signature"] == expected and h["x-tif-signature"] == expected.lower()


def test_tif_headers_fresh_nonce_and_seconds_timestamp():
    a, b = tif_headers("p", "s"), tif_headers("p", "s")
    assert a["x-tif-nonce"] != b["x-tif-nonce"]
    assert abs(int(a["x-tif-timestamp"]) - time.time()) < 5      # seconds, not ms


def test_msgid_format(tmp_path):
    t = time.mktime((2026, 3, 4, 5, 6, 7, 0, 0, -1))
    gen = MsgIdGenerator(CODE, lock_dir=str(tmp_path), clock=lambda: t)
    first, second = gen.next(), gen.next()
    assert len(first) == 30
    assert first.startswith(CODE + "20260304050607")
    assert first[-4:] == f"{gen.node}000" and second[-4:] == f"{gen.node}001"
    gen.close()


def test_msgid_unique_across_threads_and_overflow(tmp_path):
    t = 1_800_000_000.0
    gen = MsgIdGenerator(CODE, lock_dir=str(tmp_path), clock=lambda: t)
    out: list[str] = []
    lock = threading.Lock()

    def work():
        ids = [gen.next() for _ in range(1500)]
        with lock:
            out.extend(ids)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(out) == 9000 and len(set(out)) == 9000
    assert all(len(m) == 30 for m in out)
    gen.close()


def _child(lock_dir, q):
    gen = MsgIdGenerator(CODE, lock_dir=lock_dir)
    q.put((gen.node, [gen.next() for _ in range(2000)]))
    # hold the node until the parent has collected both results
    time.sleep(0.5)


def test_msgid_unique_across_processes(tmp_path):
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_child, args=(str(tmp_path), q)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [q.get(timeout=20) for _ in procs]
    for p in procs:
        p.join(timeout=20)
    nodes = {n for n, _ in results}
    ids = [m for _, batch in results for m in batch]
    assert len(nodes) == 2
    assert len(set(ids)) == 4000


def test_msgid_restart_in_same_second_does_not_repeat(tmp_path):
    t = 1_800_000_000.0
    g1 = MsgIdGenerator(CODE, node=3, lock_dir=str(tmp_path), clock=lambda: t)
    before = {g1.next() for _ in range(10)}
    g1.close()
    g2 = MsgIdGenerator(CODE, node=3, lock_dir=str(tmp_path), clock=lambda: t)
    after = {g2.next() for _ in range(10)}
    assert not before & after
    g2.close()


def test_msgid_node_held_elsewhere_is_refused(tmp_path):
    g1 = MsgIdGenerator(CODE, node=5, lock_dir=str(tmp_path))
    with pytest.raises(RuntimeError):
        MsgIdGenerator(CODE, node=5, lock_dir=str(tmp_path))
    other = MsgIdGenerator(CODE, lock_dir=str(tmp_path))
    assert other.node != 5
    g1.close()
    other.close()


def test_config_rejects_long_institution_code():
    with pytest.raises(ValueError):
        make_config(fixmedins_code="H" * 13)


def test_dumps_writes_decimal_as_exact_number_and_refuses_float():
    body = dumps({"medfee_sumamt": Decimal("12.30"), "neg": Decimal("-0.01"), "name": "张三"})
    assert body == '{"medfee_sumamt":12.30,"neg":-0.01,"name":"张三"}'.encode()
    assert loads(body)["medfee_sumamt"] == Decimal("12.30")
    with pytest.raises(TypeError):
        dumps({"x": 1.5})


def test_wrap_input_per_region():
    nat = make_config()
    gz = make_config(input_nodes=GUANGZHOU_INPUT_NODES)
    rec = {"psn_no": "1"}
    assert wrap_input(nat, "2207", rec) == {"data": rec}
    assert wrap_input(gz, "2207", rec) == {"mdtrtinfo": rec}
    assert wrap_input(nat, "9001", rec) == {"signIn": rec}
    assert wrap_input(gz, "2601", rec) == rec
    assert wrap_input(gz, "2302", rec) == {"feeinfo": rec}


def test_build_envelope_fields():
    cfg = make_config(recer_admdvs="440100", recer_admdvs_field="recer_admvs")
    env = build_envelope(cfg, infno="2207", msgid="M" * 30, operator=Operator("001", "王五"),
                         sign_no="SN1", input={"data": {}}, insuplc_admdvs="440300",
                         inf_time="2026-01-02 03:04:05")
    for key in ("infno", "msgid", "mdtrtarea_admvs", "insuplc_admdvs", "recer_sys_code", "dev_no",
                "dev_safe_info", "cainfo", "signtype", "infver", "opter_type", "opter",
                "opter_name", "inf_time", "fixmedins_code", "fixmedins_name", "sign_no", "input"):
        assert key in env
    assert env["recer_admvs"] == "440100" and "recer_admdvs" not in env
    assert env["sign_no"] == "SN1" and env["insuplc_admdvs"] == "440300"
    assert env["fixmedins_code"] == CODE and env["mdtrtarea_admvs"] == "440100"
    assert "recer_admdvs" not in build_envelope(make_config(), infno="1101", msgid="m",
                                                operator=Operator("1", "a"), sign_no=None,
                                                input={})
    assert json.loads(dumps(env))["infno"] == "2207"
