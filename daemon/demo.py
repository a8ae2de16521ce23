"""`mibridge demo`: the whole engine on the embedded default, in one process.

Creates a SQLite database file, installs the mi_ tables from
sql/sqlite/install.sql, starts the built-in test platform and the daemon,
enqueues requests as an HIS would (including one whose answer is lost after
the platform booked it, and two bad ones), waits until every request is
final, and prints the inbox, the state counts and the platform's counters.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from bridge.db.store import Store
from bridge.testflow.platform import RunningTestPlatform
from daemon import dbadmin, logs
from daemon.app import build_registry, build_services
from daemon.config import Config
from daemon.service import Daemon


def _table(rows, headers) -> str:
    rows = [["" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in rows]
    return "\n".join(out)


def run_demo(db_path: str = "mibridge-demo.db", verbose: bool = False) -> int:
    logs.setup("INFO" if verbose else "WARNING")
    for suffix in ("", "-wal", "-shm"):
        Path(db_path + suffix).unlink(missing_ok=True)
    url = f"sqlite:///{db_path}"
    print(dbadmin.run("install", url))

    platform = RunningTestPlatform(timeout_delay=1.0)
    cfg = Config()
    cfg.database.url = url
    cfg.testplatform.url = platform.url
    cfg.testplatform.timeout = 0.5
    cfg.testplatform.settle_seconds = 1.6
    cfg.daemon.workers = 2
    cfg.daemon.poll_interval = 0.1
    cfg.daemon.lease_seconds = 3
    cfg.daemon.recovery_interval = 0.5
    cfg.daemon.retry_base_seconds = 0.2
    daemon = Daemon(cfg, build_registry(cfg), build_services(cfg))
    daemon.start()
    store = Store(url)
    try:
        # The platform will book INV-1003's charge and then drop the connection:
        # the daemon must find that charge by querying, not charge twice.
        import httpx
        httpx.post(platform.url + "/__faults__",
                   json={"path": "/charge", "fault": "lost_after_commit", "times": 1})
        requests = [
            ("test.charge", "INV-1003", "VISIT-7", {"patient_id": "P0007", "total_amount": "88.00"}),
            ("test.charge", "INV-1001", "VISIT-1", {"patient_id": "P0001", "total_amount": "12.50"}),
            ("test.charge", "INV-1002", "VISIT-1", {"patient_id": "P0001", "total_amount": "30.00"}),
            ("test.charge", "INV-1004", "VISIT-9", {"total_amount": "5.00"}),          # no patient_id
            ("test.refund", "RF-1", "VISIT-9", {"total_amount": "5.00"}),              # no such kind
        ]
        print("\nThe HIS enqueues:")
        for kind, key, serial, payload in requests:
            oid = store.enqueue(kind, key, payload, serial_key=serial)
            print(f"  outbox {oid}: {kind} {key} (serial {serial}) {json.dumps(payload)}")
        # A row the database refuses outright (negative amount) never enters the outbox.
        try:
            store.enqueue("test.charge", "INV-BAD", {"patient_id": "P1", "total_amount": "-3"})
        except Exception as exc:
            print(f"  refused by the database: {str(exc).splitlines()[0]}")

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            open_rows = store.query("SELECT COUNT(*) FROM mi_outbox WHERE state NOT IN ('done','failed','resolved','held')")[0][0]
            if open_rows == 0:
                break
            time.sleep(0.2)
        print("\nInbox (what the HIS reads back):")
        rows = store.query("""SELECT i.id, i.outbox_id, i.business_key, i.result_type, i.outcome,
                                     i.order_id, i.total_amount, i.error_code, i.error_message
                                FROM mi_inbox i ORDER BY i.id""")
        print(_table(rows, ["id", "outbox", "business_key", "type", "outcome", "order_id", "total",
                            "error", "message"]))
        print("\nCall journal:")
        rows = store.query("""SELECT outbox_id, step, interface, outcome, http_status,
                                     substr(COALESCE(error_message, ''), 1, 60)
                                FROM mi_journal ORDER BY id""")
        print(_table(rows, ["outbox", "step", "interface", "outcome", "http", "error"]))
        st = store.status()
        print("\nStates:", json.dumps(st["counts"]))
        counters = platform.platform.state()
        print("Platform charges per request:", json.dumps(counters["charges"], sort_keys=True))
        doubles = {k: v for k, v in counters["charges"].items() if v != 1}
        print("Double charges:", doubles or "none")
        return 1 if doubles or st["counts"].get("pending") or st["counts"].get("running") else 0
    finally:
        daemon.stop()
        store.close()
        platform.stop()
