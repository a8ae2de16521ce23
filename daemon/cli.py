"""mibridge: the command line.

    mibridge demo                         run the engine end to end on SQLite, in one process
    mibridge run -c mibridge.toml         the daemon, in the foreground (systemd, Windows service)
    mibridge status -c mibridge.toml      counts by state, oldest open request, held rows
    mibridge requeue ID --note "..."      put a held row back to work (audited)
    mibridge resolve ID --note "..."      close a held row by hand (audited)
    mibridge enqueue KIND KEY --payload '{...}' [--serial S]
    mibridge db install|upgrade|status|uninstall|grants --url URL
    mibridge flows                        print every flow's state table
    mibridge simulator [--port N]         the platform simulator (centre, gateway, face terminal,
                                          WeChat Pay, Alipay), on loopback; --help for its options
    mibridge doctor -c mibridge.toml      crypto backend, database reachability
    mibridge reconcile --date D [--platform offline|mobilepay|all]   daily reconciliation by hand
    mibridge orders [--date D] [--key K] [--status S] [--channel C] [--json]   the order book
"""
from __future__ import annotations

import argparse
import getpass
import json
import os
import sys


def _config(args):
    from daemon.config import load

    return load(args.config or os.environ.get("MIBRIDGE_CONFIG"))


def _store(args):
    from bridge.db.store import Store

    cfg = _config(args)
    return Store(args.url or cfg.database.url, cfg.database.password_env)


def _actor(args) -> str:
    return args.actor or f"{getpass.getuser()}@cli"


def cmd_demo(args) -> int:
    from daemon.demo import run_demo

    return run_demo(args.db, verbose=args.verbose)


def cmd_run(args) -> int:
    from daemon import logs
    from daemon.app import build_daemon

    cfg = _config(args)
    logs.setup(cfg.logging.level, cfg.logging.file, cfg.logging.rotation, cfg.logging.retention)
    if args.workers:
        cfg.daemon.workers = args.workers
    build_daemon(cfg).run_forever()
    return 0


def cmd_status(args) -> int:
    store = _store(args)
    st = store.status()
    if args.json:
        print(json.dumps(st, default=str, indent=2))
        return 0
    print("requests by state:")
    for state in ("pending", "running", "in_doubt", "held", "done", "failed", "resolved"):
        print(f"  {state:<9} {st['counts'].get(state, 0)}")
    age = st["oldest_open_age_seconds"]
    print(f"oldest open request: {'none' if age is None else f'{age:.0f} s old'}")
    if st["held"]:
        print("held for a human (mibridge requeue ID / mibridge resolve ID --note ...):")
        for h in st["held"]:
            print(f"  #{h['id']} {h['kind']} {h['business_key']}: [{h['reason_code']}] {h['reason']}")
    return 2 if st["held"] else 0


def cmd_requeue(args) -> int:
    state = _store(args).requeue(args.id, _actor(args), args.note)
    print(f"outbox row {args.id} requeued as {state}")
    return 0


def cmd_resolve(args) -> int:
    _store(args).resolve(args.id, _actor(args), args.note)
    print(f"outbox row {args.id} resolved by hand; the HIS gets an inbox row saying so")
    return 0


def cmd_enqueue(args) -> int:
    oid = _store(args).enqueue(args.kind, args.key, args.payload, serial_key=args.serial)
    print(oid)
    return 0


def cmd_db(args) -> int:
    from daemon import dbadmin

    if args.url:
        url, password_env = args.url, "MIBRIDGE_DB_PASSWORD"
    else:
        cfg = _config(args)
        url, password_env = cfg.database.url, cfg.database.password_env
    variables = {}
    for item in args.var or ():
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--var takes NAME=VALUE, not {item!r}")
        variables[name] = value
    try:
        print(dbadmin.run(args.action, url, password_env, force=args.force, variables=variables))
    except dbadmin.DbAdminError as exc:
        print(f"mibridge: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        # A driver error (cannot connect, no rights ...): its first line, not a traceback.
        from loguru import logger

        logger.opt(exception=exc).debug("db {} failed", args.action)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"mibridge: db {args.action} failed: {type(exc).__name__}: {first}", file=sys.stderr)
        return 1
    return 0


def cmd_flows(args) -> int:
    """Every flow mibridge has, whether or not this config switches it on."""
    from bridge.engine.flow import Registry
    from bridge.mobilepay.flows import MobilePaySettings, flows as mobilepay_flows
    from bridge.testflow.flows import TestChargeFlow, TestNoopFlow

    reg = Registry()
    for flow in [TestChargeFlow(), TestNoopFlow(), *mobilepay_flows(MobilePaySettings())]:
        reg.register(flow)
    from bridge.facepay.catalog import every_flow
    from bridge.facepay.flows import FacePaySettings
    for flow in every_flow(FacePaySettings()):
        reg.register(flow)
    for kind in reg.kinds():
        print(describe(reg.get(kind)))
        print()
    return 0


def describe(flow) -> str:
    text = type(flow).describe()
    # PaymentFlow serves two kinds: name the instance's kind, not the class's.
    first, _, rest = text.partition("\n")
    return f"{flow.kind}  (starts at {type(flow).initial})\n{rest}"


def cmd_simulator(args) -> int:
    try:
        from bridge.simulator.__main__ import main as sim_main
    except ImportError as exc:
        print(f"the simulator is not available: {exc}", file=sys.stderr)
        return 1
    return sim_main(args.rest) or 0


def cmd_doctor(args) -> int:
    ok = True
    try:
        from bridge.crypto import sm2
        print(f"SM2 backend: {sm2.backend_name()}")
    except Exception as exc:
        ok = False
        print(f"SM2: unavailable ({exc})")
    try:
        store = _store(args)
        store.ping()
        print(f"database: reachable ({store.url.redacted()}), mi_ tables present")
    except Exception as exc:
        ok = False
        print(f"database: NOT reachable or not installed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
    return 0 if ok else 1


def cmd_reconcile(args) -> int:
    from daemon.reconcile_cmd import cmd_reconcile as run, one_line
    from bridge.db.store import Store

    from daemon import logs

    cfg = _config(args)
    # Masked logs; on the terminal only warnings (the progress line and the tables say the rest).
    lc = cfg.logging
    logs.setup(lc.level if lc.file else "WARNING", lc.file, lc.rotation, lc.retention)
    url = args.url or cfg.database.url
    return one_line("reconcile", lambda: run(args, cfg, lambda: Store(url, cfg.database.password_env)))


def cmd_orders(args) -> int:
    from daemon.reconcile_cmd import cmd_orders as run, one_line
    from daemon import logs

    lc = _config(args).logging
    logs.setup(lc.level if lc.file else "WARNING", lc.file, lc.rotation, lc.retention)
    return one_line("orders", lambda: run(args, _store(args)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="mibridge", description="Medical-insurance payment bridge for HIS databases")
    ap.add_argument("-c", "--config", help="TOML config file (default: $MIBRIDGE_CONFIG)")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="run the engine end to end on SQLite with the built-in platform")
    p.add_argument("--db", default="mibridge-demo.db")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(fn=cmd_demo)

    p = sub.add_parser("run", help="run the daemon in the foreground")
    p.add_argument("--workers", type=int)
    p.set_defaults(fn=cmd_run)

    for name, fn, helptext in (("status", cmd_status, "counts by state and held rows"),
                               ("doctor", cmd_doctor, "check crypto and database")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--url", help="database URL (default: from the config)")
        if name == "status":
            p.add_argument("--json", action="store_true")
        p.set_defaults(fn=fn)

    for name, fn, helptext in (("requeue", cmd_requeue, "put a held row back to work"),
                               ("resolve", cmd_resolve, "close a held row by hand")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("id", type=int)
        p.add_argument("--note", required=True, help="what was checked and decided (kept in mi_audit)")
        p.add_argument("--actor", help="who (default: the OS user)")
        p.add_argument("--url")
        p.set_defaults(fn=fn)

    p = sub.add_parser("enqueue", help="enqueue a request as the HIS would")
    p.add_argument("kind")
    p.add_argument("key")
    p.add_argument("--payload", required=True)
    p.add_argument("--serial")
    p.add_argument("--url")
    p.set_defaults(fn=cmd_enqueue)

    p = sub.add_parser("db", help="install, upgrade or uninstall the mi_ objects (docs/migrations.md)")
    p.add_argument("action", choices=["install", "upgrade", "status", "uninstall", "grants"],
                   help="install: a new database; upgrade: run the migrations it misses; status: its "
                        "schema version; uninstall: remove everything (refused while requests are open); "
                        "grants: run grants.sql")
    p.add_argument("--url")
    p.add_argument("--force", action="store_true", help="uninstall even while requests are open")
    p.add_argument("--var", action="append", metavar="NAME=VALUE",
                   help="a grants.sql variable (e.g. daemon_role=mibridge_daemon), as the "
                        "dialect's own client would pass it")
    p.set_defaults(fn=cmd_db)

    p = sub.add_parser("reconcile", help="reconcile a day with the platforms and channels (docs/reconciliation.md)")
    p.add_argument("--date", help="the day, yyyy-MM-dd (default: [reconciliation] days_back before today)")
    p.add_argument("--platform", choices=["offline", "mobilepay", "all"], default="all",
                   help="offline: face-pay and kiosk settlements (3201/3202); mobilepay: the centre and the "
                        "channels' bills; all: those [reconciliation] platforms names")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.add_argument("--url", help="database URL (default: from the config)")
    p.set_defaults(fn=cmd_reconcile)

    p = sub.add_parser("orders", help="the order book: payments with their insurance, account and cash parts "
                                      "and refunds")
    p.add_argument("--date", help="settled on this day, yyyy-MM-dd")
    p.add_argument("--key", help="the HIS's business key of the payment")
    p.add_argument("--status", choices=["paid", "partly_refunded", "refunded", "reversed", "cancelled"],
                   help="the payment's status")
    p.add_argument("--channel", choices=["wechat", "alipay", "none", "unknown"], help="the cash channel")
    p.add_argument("--platform", choices=["mobilepay", "facepay", "kiosk"], help="the platform")
    p.add_argument("--limit", type=int, default=100, help="at most this many, newest first (default 100)")
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    p.add_argument("--url", help="database URL (default: from the config)")
    p.set_defaults(fn=cmd_orders)

    p = sub.add_parser("flows", help="print the flows' state tables")
    p.set_defaults(fn=cmd_flows)

    p = sub.add_parser("simulator", help="run the platform simulator on loopback: mobile-pay centre, "
                                         "offline gateway, face terminal, WeChat Pay and Alipay "
                                         "(mibridge simulator --help for its options)")
    p.set_defaults(fn=cmd_simulator, rest=[])

    argv = list(sys.argv[1:] if argv is None else argv)
    if "simulator" in argv:
        # Everything after "simulator" belongs to the simulator's own parser.
        i = argv.index("simulator")
        args = ap.parse_args(argv[:i + 1])
        args.rest = argv[i + 1:]
    else:
        args = ap.parse_args(argv)
    try:
        return args.fn(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from daemon.config import ConfigError

        if isinstance(exc, (ValueError, ConfigError, FileNotFoundError)):
            print(f"mibridge: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
