"""grants.sql exactly as shipped, with two real logins (issue 10, item 9):
the HIS's login may enqueue, consume and read its results, and nothing else;
the daemon's login runs every statement the engine runs and a real daemon
finishes a request with it.  PostgreSQL and MariaDB (SQLite has no logins:
its grants.sql is a note about file permissions)."""
from __future__ import annotations

import json
import secrets
from decimal import Decimal

import pytest

from bridge.db.dialects import get_dialect
from bridge.db.store import IdentityRow, InboxRow, Store
from bridge.db.url import parse_url
from bridge.testflow.platform import RunningTestPlatform
from daemon import dbadmin
from tests.conftest import make_database, server_url
from tests.engine.daemonproc import DaemonProcess, wait_until_final
from tests.his_sql import his_consume, his_enqueue

GRANT_DIALECTS = ["postgresql", "mysql"]


def _url_as(url: str, user: str) -> str:
    u = parse_url(url)
    return f"{url.split('://')[0]}://{user}@{u.host}:{u.port}/{u.database}"


class Logins:
    def __init__(self, dialect: str, tmp_path):
        self.dialect = dialect
        self.url, self._drop = make_database(dialect, tmp_path)
        tag = secrets.token_hex(4)
        self.daemon, self.his = f"mi_daemon_{tag}", f"mi_his_{tag}"
        self.daemon_pw, self.his_pw = "D" + secrets.token_hex(10), "H" + secrets.token_hex(10)
        self.admin = parse_url(server_url(dialect))
        d = get_dialect(dialect)
        # The HIS's own login exists before mibridge comes along.
        if dialect == "postgresql":
            c = d.connect(self.admin, autocommit=True)
            c.execute(f'CREATE ROLE "{self.his}" LOGIN')
            c.close()
            self.variables = {"daemon_role": self.daemon, "his_role": self.his}
        else:
            c = d.connect(self.admin)
            with c.cursor() as cur:
                cur.execute(f"CREATE USER '{self.his}'@'%' IDENTIFIED BY '{self.his_pw}'")
            c.close()
            self.variables = {"daemon_user": self.daemon, "daemon_host": "%", "daemon_password": self.daemon_pw,
                              "his_user": self.his, "his_host": "%"}

    def store(self, who: str) -> Store:
        user = self.daemon if who == "daemon" else self.his
        pw = self.daemon_pw if who == "daemon" else self.his_pw
        u = parse_url(_url_as(self.url, user))
        if self.dialect == "mysql":
            u = type(u)(**{**u.__dict__, "password": pw})
        return Store(u)

    def close(self):
        self._drop()
        d = get_dialect(self.dialect)
        if self.dialect == "postgresql":
            c = d.connect(self.admin, autocommit=True)
            for role in (self.daemon, self.his):
                c.execute(f'DROP ROLE IF EXISTS "{role}"')
            c.close()
        else:
            c = d.connect(self.admin)
            with c.cursor() as cur:
                for user in (self.daemon, self.his):
                    cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")
            c.close()


@pytest.fixture(params=GRANT_DIALECTS)
def logins(request, tmp_path):
    server_url(request.param)
    lg = Logins(request.param, tmp_path)
    # As shipped, through the same runner as `mibridge db grants --var ...`.
    dbadmin.run("grants", lg.url, variables=lg.variables)
    yield lg
    lg.close()


def _refused(store: Store, sql: str, params: dict | None = None) -> str:
    with pytest.raises(Exception) as ei:
        store.execute(sql, params)
    text = str(ei.value).lower()
    assert any(w in text for w in ("denied", "must be owner")), text
    return text


def test_the_his_login_enqueues_consumes_and_reads_its_results_and_nothing_else(logins):
    his = logins.store("his")
    payload = json.dumps({"patient_id": "P1", "total_amount": "12.50"})
    oid = his_enqueue(his, "test.charge", "INV-1", "V-1", payload)
    assert his_enqueue(his, "test.charge", "INV-1", "V-1", payload) == oid
    # What the daemon would write (as the owner here).
    owner = Store(logins.url)
    owner.execute("""INSERT INTO mi_inbox (outbox_id, kind, business_key, result_type, outcome, total_amount)
                     VALUES (:o, 'test.charge', 'INV-1', 'charge', 'ok', '12.50')""", {"o": oid})
    owner.execute("INSERT INTO mi_identity (his_patient_id, psn_no) VALUES ('P1', 'PSN-1')")
    [(inbox_id, total)] = his.query("SELECT id, total_amount FROM mi_inbox WHERE consumed_at IS NULL")
    assert Decimal(str(total)) == Decimal("12.50")
    assert his.query("SELECT psn_no FROM mi_identity WHERE his_patient_id = 'P1'")[0][0] == "PSN-1"
    his_consume(his, inbox_id, "accepted")
    assert owner.query("SELECT his_ack FROM mi_inbox WHERE id = :i", {"i": inbox_id})[0][0] == "accepted"
    # Nothing else.
    # mi_secret holds the whole ID numbers an identity lookup found (docs/identity.md "Masking").
    for sql in ("SELECT COUNT(*) FROM mi_outbox", "SELECT COUNT(*) FROM mi_journal", "SELECT COUNT(*) FROM mi_audit",
                "SELECT COUNT(*) FROM mi_secret",
                "SELECT COUNT(*) FROM mi_notice", "SELECT COUNT(*) FROM mi_v_pending",
                "INSERT INTO mi_outbox (kind, business_key, serial_key, payload) VALUES ('test.charge', 'X', 'X', '{}')",
                "UPDATE mi_inbox SET his_ack = 'rejected'", "DELETE FROM mi_inbox",
                "UPDATE mi_identity SET psn_no = 'X'", "UPDATE mi_outbox SET state = 'done'",
                "CREATE TABLE mi_his_planted (a INT)", "DROP TABLE mi_notice"):
        _refused(his, sql)
    his.close()
    owner.close()


def _every_engine_statement(s: Store) -> None:
    """Every Store method the daemon's flows, jobs and CLI use, on real rows."""
    s.ping()
    a = s.enqueue("test.charge", "A", {"patient_id": "P1", "total_amount": "1.00"})
    b = s.enqueue("test.charge", "B", {"patient_id": "P2", "total_amount": "2.00"}, serial_key="S")
    [ra] = [r for r in s.claim("w", 30, limit=5) if r.id == a]
    assert s.heartbeat(a, "w", 30)
    s.begin_call(a, "w", "charge", "M-1", "charge", "{}", unsafe=True)
    s.end_call("M-1", "ok", 200, "{}", None)
    assert s.call_age_seconds("M-1") is not None
    s.advance(ra, "w", "notify", {"x": 1}, inbox=[InboxRow("order", "ok", order_id="O-1")],
              identities=[IdentityRow("P1", "PSN-1")])
    s.advance(ra, "w", "notify", {"x": 2}, identities=[IdentityRow("P1", "PSN-2", insutype="390", chosen=True)])
    assert s.chosen_identity("P1") == {"psn_no": "PSN-2", "insutype": "390", "insuplc_admdvs": None, "chosen": True,
                                       "source_kind": "test.charge"}
    assert s.insured_region("440100") is None
    s.finish(ra, "w", "done", {}, [InboxRow("charge", "ok", order_id="O-1", total_amount=Decimal("1.00"))])
    assert s.inbox_state(a, "charge")["consumed"] is False
    assert s.inbox_sums("charge", "O-1")["total"] == Decimal("1.00")
    assert s.find_request(["test.charge"], "A")["id"] == a
    assert s.count_requests("test.charge", "S", ["running", "pending"]) == 1
    s.add_inbox_row(a, "test.charge", "A", InboxRow("notice", "held", error_code="N"))
    rows = s.query("SELECT id FROM mi_inbox WHERE outbox_id = :o AND result_type = 'notice'", {"o": a})
    assert s.withdraw_inbox_row(int(rows[0][0]))
    assert s.poke(["test.charge"], "B") in (0, 1)
    assert s.record_notice("6302", "N-1", "A", a, {"n": 1}) is True
    assert s.record_notice("6302", "N-1", "A", a, {"n": 1}) is False
    assert s.notice("6302", "N-1") == {"n": 1}
    # A lost lease, the rescuer, a held row, requeue and resolve (audited), purge.
    s.execute("UPDATE mi_outbox SET lease_expires_at = created_at, attempts = max_attempts WHERE id = :i", {"i": b})
    assert s.recover_expired_leases() == 1
    assert s.requeue(b, "dba@test", "checked") == "pending"
    [rb] = s.claim("w2", 30, limit=5)
    s.release(rb, "w2", "held", 0, {}, error_code="E", error_message="needs a person", keep_call=False)
    s.resolve(b, "dba@test", "checked by phone")
    s.execute("UPDATE mi_outbox SET finished_at = created_at WHERE id = :i", {"i": a})
    s.execute("UPDATE mi_inbox SET consumed_at = created_at, his_ack = 'accepted' WHERE outbox_id = :o", {"o": a})
    assert s.purge(-1) == 1
    assert s.status()["counts"] == {"resolved": 1}
    assert s.query("SELECT COUNT(*) FROM mi_audit")[0][0] == 2
    s.query("SELECT MAX(version) FROM mi_schema_version")
    for view in ("mi_v_pending", "mi_v_in_flight", "mi_v_held", "mi_v_failed", "mi_v_today"):
        s.query(f"SELECT COUNT(*) FROM {view}")


def test_the_daemon_login_runs_every_engine_statement_and_nothing_more(logins):
    daemon = logins.store("daemon")
    _every_engine_statement(daemon)
    for sql in ("UPDATE mi_audit SET note = 'x'", "DELETE FROM mi_audit", "DELETE FROM mi_notice",
                "CREATE TABLE mi_planted (a INT)", "DROP TABLE mi_notice", "ALTER TABLE mi_outbox ADD x INT",
                "DROP VIEW mi_v_today"):
        _refused(daemon, sql)
    name = logins.dialect
    with pytest.raises(Exception) as ei:     # the HIS's calls are the HIS's
        his_enqueue(daemon, "test.charge", "Z", "Z", '{"patient_id": "P", "total_amount": "1.00"}')
    assert "denied" in str(ei.value).lower(), (name, str(ei.value))
    daemon.close()


def test_a_real_daemon_finishes_a_request_with_the_daemon_login(logins, tmp_path):
    platform = RunningTestPlatform()
    his = logins.store("his")
    his_enqueue(his, "test.charge", "INV-7", "V-7", json.dumps({"patient_id": "P7", "total_amount": "7.00"}))
    url = _url_as(logins.url, logins.daemon)
    env = {"MIBRIDGE_DB_PASSWORD": logins.daemon_pw} if logins.dialect == "mysql" else {}
    proc = DaemonProcess(tmp_path, url, platform.url, env=env)
    try:
        owner = Store(logins.url)
        assert wait_until_final(owner, 60, proc) == {"done": 1}
        [(outcome, total)] = his.query("SELECT outcome, total_amount FROM mi_inbox WHERE business_key = 'INV-7'")
        assert outcome == "ok" and Decimal(str(total)) == Decimal("7.00")
        owner.close()
    finally:
        proc.terminate()
        platform.stop()
        his.close()


def test_grants_sql_says_what_is_missing(tmp_path):
    """Run without its variables it stops with a clear message and grants nothing."""
    for dialect in GRANT_DIALECTS:
        server_url(dialect)
        url, drop = make_database(dialect, tmp_path)
        try:
            with pytest.raises(dbadmin.DbAdminError) as ei:
                dbadmin.run("grants", url, variables={})
            assert ("daemon_role" in str(ei.value)) or ("set @daemon_user and @his_user" in str(ei.value))
            with pytest.raises(dbadmin.DbAdminError) as ei:
                dbadmin.run("grants", url, variables={"daemon_role": "mi_nobody_d", "his_role": "mi_nobody_h",
                                                      "daemon_user": "mi_nobody_d", "his_user": "mi_nobody_h",
                                                      "daemon_password": "x"})
            assert "not an existing account" in str(ei.value) or "does not exist" in str(ei.value)
        finally:
            drop()
