"""No token or ID number where the HIS can read it (issue 10 item 7).

A face-identified patient pre-settles, settles (the face terminal is told) and cancels.
Then nothing the HIS can read - mi_inbox, mi_outbox.flow_data - holds the patient's ID
number, name, ecToken or authNo; the identity row carries what the identity writeback
needs and nothing more; the secrets sit in mi_secret, kept only as long as a later
request needs them.  On SQLite, PostgreSQL and MariaDB (mi_secret is new DDL).
"""
from __future__ import annotations

import json

import pytest

from tests.conftest import DIALECTS
from tests.dbclock import Rounds

from .conftest import SUN, His, Sim, daemon_toml, money_invariants, new_database, visit_payload

pytestmark = pytest.mark.slow
OUTP = "facepay.outpatient"
IDENTITY_RESULT = {"psn_no", "psn_cert_type", "insutype", "insuplc_admdvs", "insured", "benefit",
                   "out_biz_no", "insurances"}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_face_identity_secrets_stay_out_of_his_readable_rows(dialect, running, msgid_dir, tmp_path):
    url, drop = new_database(dialect, tmp_path)
    sim = Sim(running)
    sim.reset()
    r = Rounds(tmp_path, url, daemon_toml(sim.creds, msgid_dir))
    his = His(r.store)
    try:
        def final(kind, key):
            def pred():
                his.accept_all()
                return his.state(kind, key) in ("done", "failed", "held")
            r.run_until(pred)
            return his.state(kind, key)

        sim.present(SUN)
        his.enqueue("facepay.identify", "F1", {"his_patient_id": "HIS-1"}, serial="V1")
        assert final("facepay.identify", "F1") == "done"
        ident = his.one("facepay.identify", "F1", "identity")
        assert set(ident["result"]) == IDENTITY_RESULT, ident["result"]
        assert ident["result"]["psn_no"] == SUN
        fid = _id(his, "facepay.identify", "F1")
        kept = r.store.secrets(fid)
        assert set(kept) == {"auth_no", "id_no", "user_name", "ec_token"}   # the pre-settlement needs them

        his.enqueue(f"{OUTP}.presettle", "P1", visit_payload(identify_key="F1"), serial="V1")
        his.enqueue(f"{OUTP}.settle", "S1", {"presettle_key": "P1"}, serial="V1")
        assert final(f"{OUTP}.settle", "S1") == "done", his.row(f"{OUTP}.settle", "S1")
        assert his.one(f"{OUTP}.settle", "S1", "terminal_notice")["outcome"] == "ok"   # told with the identity
        his.enqueue(f"{OUTP}.cancel", "C1", {"settle_key": "S1"}, serial="V1")
        assert final(f"{OUTP}.cancel", "C1") == "done"
        assert money_invariants(sim, {SUN: "3000.00"})["persons"][SUN] == "3000.00"

        # mi_secret: the identify and the pre-settlement keep what a later request needs;
        # the settlement and the cancel keep nothing.
        pid, sid, cid = (_id(his, k, b) for k, b in ((f"{OUTP}.presettle", "P1"), (f"{OUTP}.settle", "S1"),
                                                     (f"{OUTP}.cancel", "C1")))
        assert set(r.store.secrets(pid)) == {"mdtrt_cert_no", "face.auth_no", "face.id_no", "face.user_name"}
        assert r.store.secrets(sid) == {} and r.store.secrets(cid) == {}

        person = sim.person(SUN)
        needles = {person["certno"], person["psn_name"], kept["ec_token"], kept["auth_no"]}
        readable = [x for row in r.store.query("SELECT flow_data FROM mi_outbox") for x in row if x] + \
                   [x for row in r.store.query("SELECT result_json, error_message FROM mi_inbox") for x in row if x]
        for text in readable:
            for n in needles:
                assert n not in text, (n, text)
        for text in r.store.query("SELECT flow_data FROM mi_outbox WHERE state = 'done'"):
            assert not {"id_no", "user_name", "ec_token", "auth_no", "mdtrt_cert_no", "psn_name"} & \
                _keys(json.loads(text[0])), text
    finally:
        r.close()
        drop()


def _id(his: His, kind: str, key: str) -> int:
    return int(his.store.query("SELECT id FROM mi_outbox WHERE kind = :k AND business_key = :b",
                               {"k": kind, "b": key})[0][0])


def _keys(v) -> set:
    if isinstance(v, dict):
        return set(v) | {k for x in v.values() for k in _keys(x)}
    if isinstance(v, list):
        return {k for x in v for k in _keys(x)}
    return set()


def test_an_identification_from_before_the_upgrade_still_serves_its_visit(running, msgid_dir, tmp_path):
    # Before migration 003 a done facepay.identify kept the ID number, name and tokens in
    # flow_data.  A visit enqueued after the upgrade still pre-settles and settles with
    # them (the face terminal is told), and they end up in mi_secret, not in new rows.
    url, drop = new_database("sqlite", tmp_path)
    sim = Sim(running)
    sim.reset()
    r = Rounds(tmp_path, url, daemon_toml(sim.creds, msgid_dir))
    his = His(r.store)
    try:
        sim.present(SUN)
        his.enqueue("facepay.identify", "F2", {"his_patient_id": "HIS-2"}, serial="V2")
        r.run_until(lambda: his.state("facepay.identify", "F2") == "done")
        fid = _id(his, "facepay.identify", "F2")
        fd = his.row("facepay.identify", "F2")["data"]
        fd.update(r.store.secrets(fid))
        r.store.execute("UPDATE mi_outbox SET flow_data = :f WHERE id = :i", {"f": json.dumps(fd), "i": fid})
        r.store.execute("DELETE FROM mi_secret WHERE outbox_id = :i", {"i": fid})      # the old layout

        his.enqueue(f"{OUTP}.presettle", "P2", visit_payload(identify_key="F2"), serial="V2")
        his.enqueue(f"{OUTP}.settle", "S2", {"presettle_key": "P2"}, serial="V2")
        r.run_until(lambda: (his.accept_all(), his.state(f"{OUTP}.settle", "S2") in ("done", "failed", "held"))[1])
        assert his.state(f"{OUTP}.settle", "S2") == "done", his.row(f"{OUTP}.settle", "S2")
        assert his.one(f"{OUTP}.settle", "S2", "terminal_notice")["outcome"] == "ok"
        pid = _id(his, f"{OUTP}.presettle", "P2")
        assert r.store.secrets(pid)["mdtrt_cert_no"] == fd["id_no"]
        assert fd["id_no"] not in his.row(f"{OUTP}.presettle", "P2")["data"].__repr__()
    finally:
        r.close()
        drop()
