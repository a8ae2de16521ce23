"""grants.sql as shipped, for the region list (PostgreSQL and MariaDB; SQLite has no logins):
the daemon's login reads and writes mi_insured_region and never deletes from it; the HIS's
login (and a mini-program backend given the same right) reads the view and nothing else."""
from __future__ import annotations

import pytest

from bridge.regions import storage
from bridge.regions.merge import plan_load, plan_platform, plan_set
from bridge.regions.model import Region
from daemon import dbadmin
from tests.conftest import server_url
from tests.sql.test_grants import GRANT_DIALECTS, Logins, _refused


@pytest.fixture(params=GRANT_DIALECTS)
def logins(request, tmp_path):
    server_url(request.param)
    lg = Logins(request.param, tmp_path)
    dbadmin.run("grants", lg.url, variables=lg.variables)
    yield lg
    lg.close()


def test_the_daemon_writes_the_list_and_the_his_reads_the_view_only(logins):
    daemon = logins.store("daemon")
    storage.run(daemon, lambda cur: plan_load(cur, [Region("440100", "广州市", source="csv"),
                                                    Region("440300", "深圳市", False, source="csv")]))
    storage.run(daemon, lambda cur: plan_platform(cur, [Region("440600", "佛山市", source="1901")]))
    storage.run(daemon, lambda cur: plan_set(cur, "440300", True))
    assert [v["admdvs"] for v in storage.read_view(daemon)] == ["440100", "440300", "440600"]
    _refused(daemon, "DELETE FROM mi_insured_region")
    _refused(daemon, "DROP VIEW mi_v_insured_regions")

    his = logins.store("his")
    assert [r[0] for r in his.query("SELECT admdvs FROM mi_v_insured_regions ORDER BY admdvs")] == [
        "440100", "440300", "440600"]
    for sql in ("SELECT COUNT(*) FROM mi_insured_region",
                "UPDATE mi_insured_region SET enabled = 0",
                "INSERT INTO mi_insured_region (admdvs, name, source) VALUES ('445100', 'x', 'csv')",
                "DELETE FROM mi_insured_region",
                # the view is a simple one, which both databases could write through
                "UPDATE mi_v_insured_regions SET name = 'x'", "DELETE FROM mi_v_insured_regions"):
        _refused(his, sql)
    daemon.close()
    his.close()
