"""The command line as an administrator uses it, and the demo as README runs it."""
from __future__ import annotations

import re
import subprocess
import sys

from bridge.db.store import Store


def mibridge(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "daemon.cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def test_demo_runs_end_to_end_without_double_charge(tmp_path):
    r = mibridge("demo", "--db", str(tmp_path / "demo.db"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Double charges: none" in r.stdout
    # 5 mobile-pay requests + the refund + 2 channel payments and their 2 refunds + 3 face-pay
    # requests + 4 patient messages + the 3 the channel flows added (2 paid, 1 refunded; WeChat's
    # refund has no template) + the identity part (lookup, choice, kiosk identification,
    # registration, pre-settlement, settlement); INV-1004 refused, INV-1005 reversed
    assert re.search(r"^done\s+24$", r.stdout, re.M) and re.search(r"^failed\s+2$", r.stdout, re.M), r.stdout
    # the channels: both legs of each payment charged once and refunded once, by the flows
    assert "Channel legs not exactly once: none" in r.stdout
    assert re.search(r"^INV-W001\s+cash \(wechat\)\s+\S+ \(1x\)\s+\S+ \(1x\)$", r.stdout, re.M), r.stdout
    assert re.search(r"^INV-A001\s+cash \(alipay\)\s+\S+ \(1x\)\s+\S+ \(1x\)$", r.stdout, re.M), r.stdout
    assert "WeChat told of the insurance refund (/v3/med-ins/refunds/notify): 1 time(s)" in r.stdout
    assert re.search(r"msg:refund_done:\d+\s+alipay\s+RF-A001\s+done\s+sent", r.stdout), r.stdout
    # each message once: sent, refused by a patient who never subscribed, or no template
    assert "Messages sent twice: none" in r.stdout and "USER_REFUSED" in r.stdout and "no_template" in r.stdout
    # The daemon's warnings (the lost 6202 answer) stay out of the tables: they go to the log file.
    assert "WARNING" not in r.stdout and "WARNING" not in r.stderr
    assert "settlement id" in r.stdout and "outbox id" in r.stdout      # the face-pay ids are labelled
    # ... in a table under the face-pay heading, before the next part begins
    out = r.stdout
    assert out.index("Face-pay:") < out.index("facepay.identify") < out.index("Patient messages"), out
    assert "REVERSED" in r.stdout and "BAD_INPUT" in r.stdout
    assert "6202:unknown" in r.stdout           # the lost answer was resolved, not re-sent blindly
    # The identity part (issue 13): the region list, two insurances, the choice written back, a kiosk visit.
    assert "mi_v_insured_regions" in r.stdout and "440300  深圳市" in r.stdout
    assert "2 insurance(s) to choose from" in r.stdout and "identity.choose" in r.stdout
    assert re.search(r"^KREG-\w+\s+kiosk.register\s+registration\s+ok", r.stdout, re.M), r.stdout


def test_db_install_enqueue_status_requeue_resolve(tmp_path):
    url = f"sqlite:///{tmp_path / 'his.db'}"
    r = mibridge("db", "install", "--url", url)
    assert r.returncode == 0 and "schema version" in r.stdout, r.stderr
    r = mibridge("enqueue", "test.charge", "INV-1", "--payload", '{"patient_id":"P","total_amount":"1.00"}', "--url", url)
    assert r.returncode == 0
    oid = int(r.stdout.strip())
    r = mibridge("enqueue", "test.charge", "INV-2", "--payload", '{"total_amount":"-1"}', "--url", url)
    assert r.returncode != 0 and "total_amount" in r.stderr
    store = Store(url)
    [row] = store.claim("w", 30)
    store.release(row, "w", "held", 0, {}, error_code="X1", error_message="platform said no", keep_call=False)
    r = mibridge("status", "--url", url)
    assert r.returncode == 2  # held rows make status exit non-zero, for monitoring scripts
    assert "held" in r.stdout and "platform said no" in r.stdout
    r = mibridge("requeue", str(oid), "--url", url)
    assert r.returncode != 0 and "--note" in r.stderr
    r = mibridge("requeue", str(oid), "--note", "retry after fix", "--actor", "dba1", "--url", url)
    assert r.returncode == 0 and "pending" in r.stdout
    [row] = store.claim("w", 30)
    store.release(row, "w", "held", 0, {}, error_code="X1", error_message="again", keep_call=False)
    r = mibridge("resolve", str(oid), "--note", "refunded at the counter", "--actor", "dba1", "--url", url)
    assert r.returncode == 0
    r = mibridge("resolve", str(oid), "--note", "twice", "--url", url)
    assert r.returncode == 2 and "not held" in r.stderr
    audit = [tuple(a) for a in store.query("SELECT action, actor, note FROM mi_audit ORDER BY id")]
    assert audit == [("requeue", "dba1", "retry after fix"), ("resolve", "dba1", "refunded at the counter")]
    r = mibridge("status", "--url", url)
    assert r.returncode == 0 and re.search(r"^resolved\s+1$", r.stdout, re.M), r.stdout
    store.close()


def test_bad_config_is_a_clear_error(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[daemon]\nworkerz = 3\n")
    r = mibridge("-c", str(cfg), "status")
    assert r.returncode == 2 and "[daemon] workerz: unknown setting" in r.stderr and "Traceback" not in r.stderr


def test_log_lines_mask_id_and_phone_numbers(capsys):
    from loguru import logger

    from daemon import logs

    logs.setup("INFO")
    logger.info("patient 110101199003071234 phone 13812345678 paid")
    cert = "1101011990" + "03071234"   # built at run time: traceback source lines show code, not data
    try:
        raise ValueError(f"row refused: certno {cert}")
    except ValueError:
        logger.exception("step failed")
    err = capsys.readouterr().err
    assert "ValueError: row refused: certno 110101********1234" in err
    assert "110101199003071234" not in err and "13812345678" not in err
    assert "110101********1234" in err and "138****5678" in err
