"""Two daemons racing on the same 5,000 rows: every row processed exactly once."""
from __future__ import annotations

import json

import pytest

from bridge.db.store import Store

from .daemonproc import DaemonProcess, wait_until_final

pytestmark = pytest.mark.slow
N = 5000


def bulk_enqueue(store: Store, n: int) -> None:
    payload = json.dumps({"total_amount": "1.00"})

    def go(cur):
        rows = [dict(k="test.noop", b=f"R{i:05d}", s=f"S{i % 97}", p=payload) for i in range(n)]
        sql = "INSERT INTO mi_outbox (kind, business_key, serial_key, payload) VALUES (:k, :b, :s, :p)"
        text, _ = store.dialect.convert(sql, rows[0])
        cur.executemany(text, [store.dialect.convert(sql, r)[1] for r in rows])
    store._tx(go)


def test_two_daemons_process_every_row_exactly_once(db_url, tmp_path):
    store = Store(db_url)
    try:
        bulk_enqueue(store, N)
        a = DaemonProcess(tmp_path, db_url, "http://127.0.0.1:9", name="a", workers=3, lease=10)
        b = DaemonProcess(tmp_path, db_url, "http://127.0.0.1:9", name="b", workers=3, lease=10)
        try:
            counts = wait_until_final(store, 240, a)
        finally:
            assert a.terminate() == 0, a.tail()
            assert b.terminate() == 0, b.tail()
        assert counts == {"done": N}
        total, distinct = store.query("SELECT COUNT(*), COUNT(DISTINCT outbox_id) FROM mi_inbox")[0]
        assert (int(total), int(distinct)) == (N, N)
        # Both daemons did a share of the work: the race was real.
        pids = {json.loads(r[0])["by"].split(":")[1] for r in store.query("SELECT result_json FROM mi_inbox")}
        assert pids == {str(a.proc.pid), str(b.proc.pid)}
        # The serial-key order held: within a key, finish times follow ids.
        rows = store.query("SELECT serial_key, id, finished_at FROM mi_outbox ORDER BY serial_key, id")
        last: dict = {}
        for key, _id, finished in rows:
            if key in last:
                assert str(finished) >= str(last[key])
            last[key] = finished
    finally:
        store.close()
