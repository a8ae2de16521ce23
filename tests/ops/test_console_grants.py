"""The Orders and Reconciliation pages with the rights grants.sql gives the daemon's login
(the console's), as shipped, on PostgreSQL and MariaDB: every page reads what it shows, and
the HIS's login, which may read the views too, cannot read the run history the page also
shows (so the console must not run as the HIS)."""
from __future__ import annotations

from tests.ops.helpers import PSN, fill_book
from tests.ops.test_console_orders import _client, _text
from tests.sql.test_grants import _refused, logins  # noqa: F401  (the fixture)


def test_the_pages_work_with_the_daemons_shipped_grants(logins, monkeypatch):  # noqa: F811
    daemon = logins.store("daemon")
    ids = fill_book(daemon, bulk=3)
    daemon.close()
    c = _client(logins.url, monkeypatch, {"reconciliation": {"platforms": ["offline", "mobilepay"]}},
                new_store=lambda: logins.store("daemon"))
    pages = {
        "/orders": ["INV-MP-1", "INV-BULK-002", "RF-ORPHAN"],
        "/orders?key=RF-MP-1b&size=25": ["INV-MP-1", "RF-MP-1a", "4401************2345"],
        "/orders?day_from=2024-03-01&day_to=2024-03-02&status=cancelled&platform=facepay&channel=none": ["INV-FP-3"],
        f"/orders?patient={PSN}": ["INV-MP-1"],
        "/orders?size=25&before=3": ["INV-MP-2"],
        "/orders.csv?channel=wechat": ["INV-MP-1", "INV-BULK-000"],
        "/reconciliation?day_from=2024-02-28&day_to=2024-03-02": ["2024-03-01", "未运行"],
        "/reconciliation/2024-03-01": ["SETL-Z-7", "3201: connection refused", f"#{ids['run_failed']}"],
        "/reconciliation/2024-03-02?platform=offline": [f"#{ids['run_running']}"],
        "/reconciliation/2024-03-01?platform=offline&diff_class=amount_differs&page=1&size=25": ["SETL-Y-8"],
    }
    for path, wanted in pages.items():
        r = c.get(path)
        body = _text(r)
        assert r.status_code == 200, (path, r.status_code)
        for w in wanted:
            assert w in body, (path, w)
        assert PSN not in body or path.startswith("/orders?patient"), path   # only in the search box it was typed in
    his = logins.store("his")
    _refused(his, "SELECT COUNT(*) FROM mi_recon_run")
    his.close()
