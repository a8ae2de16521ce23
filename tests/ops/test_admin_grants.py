"""Who may run the admin functions (grants.sql as shipped, real logins): the
daemon's login and a person given mibridge_operator may; the HIS's login may
not; the operator role changes no table directly.  PostgreSQL and MariaDB."""
from __future__ import annotations

import secrets

import pytest

from bridge.db.dialects import get_dialect
from bridge.db.store import Store
from bridge.db.url import parse_url
from tests.ops.test_admin_sql import dba_call, held_row
from tests.sql.test_grants import _url_as, logins  # noqa: F401  (the fixture)


def _person(logins) -> tuple[Store, callable]:
    """A person's own login with the mibridge_operator role."""
    name, pw = f"mi_alice_{secrets.token_hex(3)}", "A" + secrets.token_hex(8)
    d = get_dialect(logins.dialect)
    if logins.dialect == "postgresql":
        c = d.connect(logins.admin, autocommit=True)
        c.execute(f'CREATE ROLE "{name}" LOGIN')
        c.execute(f'GRANT mibridge_operator TO "{name}"')
        c.close()
        u = parse_url(_url_as(logins.url, name))

        def drop():
            c = d.connect(logins.admin, autocommit=True)
            c.execute(f'DROP OWNED BY "{name}"')
            c.execute(f'DROP ROLE IF EXISTS "{name}"')
            c.close()
    else:
        c = d.connect(logins.admin)
        with c.cursor() as cur:
            cur.execute(f"CREATE USER '{name}'@'%' IDENTIFIED BY '{pw}'")
            cur.execute(f"GRANT mibridge_operator TO '{name}'@'%'")
            cur.execute(f"SET DEFAULT ROLE mibridge_operator FOR '{name}'@'%'")
        c.close()
        u = parse_url(_url_as(logins.url, name))
        u = type(u)(**{**u.__dict__, "password": pw})

        def drop():
            c = d.connect(logins.admin)
            with c.cursor() as cur:
                cur.execute(f"DROP USER IF EXISTS '{name}'@'%'")
            c.close()
    return Store(u), drop


def test_the_his_may_not_run_them_a_person_with_the_operator_role_may(logins):  # noqa: F811
    owner = Store(logins.url)
    a = held_row(owner, "A", unsafe_call=True)
    b = held_row(owner, "B", unsafe_call=False)
    his = logins.store("his")
    with pytest.raises(Exception) as ei:
        dba_call(his, "requeue", a, "the HIS tries")
    assert "denied" in str(ei.value).lower()
    alice, drop = _person(logins)
    try:
        dba_call(alice, "requeue", a, "checked by alice")
        assert owner.query("SELECT state FROM mi_outbox WHERE id = :i", {"i": a})[0][0] == "in_doubt"
        actor, db_login = owner.query("SELECT actor, db_login FROM mi_audit WHERE outbox_id = :i", {"i": a})[0]
        assert actor.split("@")[0] == alice.url.user and db_login.split("@")[0] == alice.url.user
        assert alice.query("SELECT COUNT(*) FROM mi_v_held")[0][0] == 1
        for sql in ("UPDATE mi_outbox SET state = 'pending'", "DELETE FROM mi_audit",
                    "INSERT INTO mi_audit (outbox_id, action, actor) VALUES (1, 'x', 'y')"):
            with pytest.raises(Exception) as ei:
                alice.execute(sql)
            assert "denied" in str(ei.value).lower(), sql
        # The daemon's login runs them for the CLI and the console.
        daemon = logins.store("daemon")
        assert daemon.requeue(b, "olga@console", "from the console") == "pending"
        daemon.close()
    finally:
        alice.close()
        drop()
        his.close()
        owner.close()
