"""mibridge: the command line.

    mibridge demo                         run the engine end to end on SQLite, in one process
    mibridge run -c mibridge.toml         the daemon, in the foreground (systemd, Windows service)
    mibridge status -c mibridge.toml      counts by state, oldest open request, held rows
    mibridge requeue ID --note "..."      put a held row back to work (audited)
    mibridge resolve ID --note "..."      close a held row by hand (audited)
    mibridge cancel ID --note "..."       end a request that made no call that moves money (audited)
    mibridge enqueue KIND KEY --payload '{...}' [--serial S]
    mibridge db install|upgrade|status|uninstall|grants --url URL
    mibridge flows                        print every flow's state table
    mibridge simulator [--port N]         the platform simulator (centre, gateway, face terminal,
                                          WeChat Pay, Alipay), on loopback; --help for its options
    mibridge doctor -c mibridge.toml      everything `run` needs: secrets, keys, URLs, sign-in,
                                          database, schema, clock, grants
    mibridge console-hash                 a password hash for a [console] user
    mibridge regions list|load FILE|refresh|config|enable|disable   the insured regions (docs/identity.md)
    mibridge reconcile --date D [--platform offline|mobilepay|all]   daily reconciliation by hand
    mibridge orders [--date D] [--key K] [--status S] [--channel C] [--json]   the order book

-c/--config works before or after the command.  Every failure is one line on
stderr and a non-zero exit status (1: it failed, 2: it was refused as asked);
-v shows the details (the log at DEBUG, tracebacks included).
"""
from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Optional

from daemon.cliargs import DATABASE_DRIVERS, CliError, Refused, database_words
from daemon.cliargs import config_from as _config
from daemon.cliargs import store_from as _store


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("mibridge")
    except Exception:
        return "unknown"


def _actor(args) -> str:
    return args.actor or f"{getpass.getuser()}@cli"


def cmd_demo(args) -> int:
    from daemon.demo import run_demo

    return run_demo(args.db, verbose=args.verbose)


def cmd_run(args) -> int:
    from daemon import logs
    from daemon.app import build_daemon

    cfg = _config(args)
    logs.setup_from(cfg)
    if args.workers:
        cfg.daemon.workers = args.workers
    _check_schema(cfg)
    from daemon.http_server import ListenError
    try:
        build_daemon(cfg).run_forever()
    except ListenError as exc:          # a port taken (a second daemon): nothing was claimed
        raise CliError(str(exc)) from None
    return 0


def _check_schema(cfg) -> None:
    """Refuse to start on a database whose schema this mibridge does not match; a
    database that cannot be reached now is left to the workers, which retry."""
    from bridge.db import schema
    from bridge.db.store import Store
    from loguru import logger

    store = Store(cfg.database.url, cfg.database.password_env)
    try:
        have = schema.installed_version(store.conn, store.dialect.name)
    except Exception as exc:
        logger.warning("database not reachable at start ({}: {}); the workers will keep trying",
                       type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        return
    finally:
        store.close()
    latest = schema.latest_version(store.dialect.name)
    if have is None:
        raise CliError(f"mibridge is not installed in {store.url.redacted()}: run 'mibridge db install'")
    if have != latest:
        raise CliError(f"the database has mibridge schema version {have}, this mibridge needs {latest}: "
                       + ("run 'mibridge db upgrade' (docs/migrations.md)" if have < latest
                          else "install the matching mibridge"))


def cmd_status(args) -> int:
    store = _store(args)
    st = store.status()
    if args.json:
        print(json.dumps(st, default=str, indent=2, ensure_ascii=False))
        return 2 if st["held"] else 0
    from daemon.tables import table

    states = ("pending", "running", "in_doubt", "held", "done", "failed", "resolved")
    print(table([(s, st["counts"].get(s, 0)) for s in states], ["state", "requests"], align="lr"))
    age = st["oldest_open_age_seconds"]
    print(f"\noldest open request: {'none' if age is None else f'{age:.0f} s old'}")
    if st["held"]:
        print("\nheld for a person:")
        print(table([(f"#{h['id']}", h["kind"], h["business_key"], h["reason_code"] or "", h["reason"] or "")
                     for h in st["held"]], ["id", "kind", "business key", "code", "reason"], wrap={4: 60}))
        print("\nafter checking: mibridge requeue ID --note \"what was checked\"  (back to work; a call in "
              "doubt is queried first)\n            or: mibridge resolve ID --note \"what was decided\"  "
              "(closed by hand; the HIS gets a result row)")
    return 2 if st["held"] else 0


def _admin(args, action: str, done: str) -> int:
    from bridge.db.store import AdminRefused

    try:
        result = getattr(_store(args), action)(args.id, _actor(args), args.note)
    except AdminRefused as exc:
        raise Refused(f"{action} {args.id} refused: {exc}") from None
    print(done.format(id=args.id, state=result))
    return 0


def cmd_requeue(args) -> int:
    return _admin(args, "requeue", "outbox row {id} requeued as {state}")


def cmd_resolve(args) -> int:
    return _admin(args, "resolve", "outbox row {id} resolved by hand; the HIS gets an inbox row saying so")


def cmd_cancel(args) -> int:
    return _admin(args, "cancel", "outbox row {id} cancelled (now {state}); the HIS gets a 'cancelled' inbox row")


def cmd_enqueue(args) -> int:
    store = _store(args)
    try:
        oid = store.enqueue(args.kind, args.key, args.payload, serial_key=args.serial)
    except Exception as exc:
        text = str(exc)
        i = text.find("mibridge: ")
        if i >= 0:          # the database's own validation: its words
            msg = text[i + len("mibridge: "):].splitlines()[0].rstrip("')\"")
            raise Refused(f"the database refused the request: {msg}") from None
        raise
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
            raise Refused(f"--var takes NAME=VALUE, not {item!r}")
        variables[name] = value
    try:
        print(dbadmin.run(args.action, url, password_env, force=args.force, variables=variables))
    except dbadmin.DbAdminError as exc:
        raise CliError(str(exc)) from None
    except Exception as exc:
        raise CliError(f"db {args.action} failed: {_first(exc)}") from exc
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
        raise CliError(f"the simulator is not available: {exc}") from None
    return sim_main(args.rest) or 0


def cmd_doctor(args) -> int:
    from daemon.doctor import run_checks

    cfg = _config(args)
    checks = run_checks(cfg, args.url, sign_in=not args.no_sign_in)
    width = max(len(c.name) for c in checks)
    for c in checks:
        print(f"{'ok ' if c.ok else 'BAD'}  {c.name:<{width}}  {c.detail}")
    bad = [c for c in checks if not c.ok]
    print(f"\n{len(bad)} problem(s)" if bad else "\nall checks passed")
    return 1 if bad else 0


def cmd_reconcile(args) -> int:
    from daemon.reconcile_cmd import cmd_reconcile as run, one_line
    from bridge.db.store import Store

    from daemon import logs

    cfg = _config(args)
    # Masked logs; on the terminal only warnings (the progress line and the tables say the rest).
    lc = cfg.logging
    logs.setup(lc.level if lc.file else "WARNING", lc.file, lc.rotation, lc.retention)
    url = _store(args).url      # refuses a SQLite file that does not exist
    return one_line("reconcile", lambda: run(args, cfg, lambda: Store(url, cfg.database.password_env)))


def cmd_orders(args) -> int:
    from daemon.reconcile_cmd import cmd_orders as run, one_line
    from daemon import logs

    lc = _config(args).logging
    logs.setup(lc.level if lc.file else "WARNING", lc.file, lc.rotation, lc.retention)
    return one_line("orders", lambda: run(args, _store(args)))


def cmd_console_hash(args) -> int:
    from werkzeug.security import generate_password_hash

    if sys.stdin.isatty():
        pw = getpass.getpass("console password: ")
        if pw != getpass.getpass("again: "):
            raise Refused("the two passwords differ")
    else:
        pw = sys.stdin.readline().rstrip("\n")
    if len(pw) < 10:
        raise Refused("use at least 10 characters")
    print(generate_password_hash(pw))
    return 0


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


# -- arguments -----------------------------------------------------------------

def _common(p: argparse.ArgumentParser, url: bool = True) -> None:
    # SUPPRESS: given after the command it overrides; absent, the global one stays.
    p.add_argument("-c", "--config", default=argparse.SUPPRESS,
                   help="TOML config file (default: $MIBRIDGE_CONFIG); also accepted before the command")
    if url:
        p.add_argument("--url", help="database URL instead of the config's [database] url "
                                     "(the password comes from $MIBRIDGE_DB_PASSWORD)")


def _count(low: int, high: int):
    """An argparse type: a whole number in [low, high], else the parser's own one-line error
    (run --workers -2 started a daemon with no worker at all)."""
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= n <= high:
            raise argparse.ArgumentTypeError(f"{n} is not between {low} and {high}")
        return n
    return parse


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="mibridge", description="Medical-insurance payment bridge for HIS databases")
    ap.add_argument("-c", "--config", help="TOML config file (default: $MIBRIDGE_CONFIG)")
    ap.add_argument("-v", "--verbose", action="store_true", help="show the details of a failure (log at DEBUG)")
    ap.add_argument("--version", action="version", version=f"mibridge {_version()}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="run the engine end to end on SQLite with the built-in simulator")
    p.add_argument("--db", default="mibridge-demo.db", help="the demo's SQLite file (recreated each run)")
    p.add_argument("-v", "--verbose", action="store_true", help="show the daemon's log")
    p.set_defaults(fn=cmd_demo, needs_config=False)

    p = sub.add_parser("run", help="run the daemon in the foreground")
    _common(p, url=False)
    p.add_argument("--workers", type=_count(1, 256), help="worker threads, 1 to 256 (default: [daemon] workers)")
    p.set_defaults(fn=cmd_run)

    p = sub.add_parser("status", help="counts by state, the oldest open request and the held rows "
                                      "(exit status 2 while rows are held)")
    _common(p)
    p.add_argument("--json", action="store_true", help="the same as JSON")
    p.set_defaults(fn=cmd_status)

    p = sub.add_parser("doctor", help="check everything 'run' needs (exit status 1 on any problem)")
    _common(p)
    p.add_argument("--no-sign-in", action="store_true", help="skip the 9001 sign-in test call")
    p.set_defaults(fn=cmd_doctor)

    for name, fn, helptext in (("requeue", cmd_requeue, "put a held row back to work (a call in doubt is "
                                                        "queried first)"),
                               ("resolve", cmd_resolve, "close a held row by hand, after checking the platform"),
                               ("cancel", cmd_cancel, "end a pending or held row that made no call that moves "
                                                      "money (the HIS gets a 'cancelled' row)")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("id", type=int, help="the mi_outbox id (mibridge status lists the held ones)")
        p.add_argument("--note", required=True, help="what was checked and decided (kept in mi_audit)")
        p.add_argument("--actor", help="who (default: the OS user, as USER@cli)")
        _common(p)
        p.set_defaults(fn=fn)

    p = sub.add_parser("enqueue", help="enqueue a request as the HIS would")
    p.add_argument("kind", help="the request kind (mibridge flows lists them)")
    p.add_argument("key", help="the business key (unique per kind)")
    p.add_argument("--payload", required=True, help="the request as a JSON object")
    p.add_argument("--serial", help="serial key: requests with the same one run in order (default: the key)")
    _common(p)
    p.set_defaults(fn=cmd_enqueue)

    p = sub.add_parser("db", help="install, upgrade or uninstall the mi_ objects (docs/migrations.md)")
    p.add_argument("action", choices=["install", "upgrade", "status", "uninstall", "grants"],
                   help="install: a new database; upgrade: run the migrations it misses; status: its "
                        "schema version; uninstall: remove everything (refused while requests are open); "
                        "grants: run grants.sql")
    _common(p)
    p.add_argument("--force", action="store_true", help="uninstall even while requests are open")
    p.add_argument("--var", action="append", metavar="NAME=VALUE",
                   help="a grants.sql variable (e.g. daemon_role=mibridge_daemon), as the "
                        "dialect's own client would pass it")
    p.set_defaults(fn=cmd_db)

    from daemon.regions_cmd import add_parser as add_regions_parser
    add_regions_parser(sub)

    p = sub.add_parser("reconcile", help="reconcile a day with the platforms and channels (docs/reconciliation.md)")
    p.add_argument("--date", help="the day, yyyy-MM-dd (default: [reconciliation] days_back before today)")
    p.add_argument("--platform", choices=["offline", "mobilepay", "all"], default="all",
                   help="offline: face-pay and kiosk settlements (3201/3202); mobilepay: the centre and the "
                        "channels' bills; all: those [reconciliation] platforms names")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    _common(p)
    p.set_defaults(fn=cmd_reconcile)

    p = sub.add_parser("orders", help="the order book: payments with their insurance, account and cash parts "
                                      "and refunds")
    p.add_argument("--date", help="settled on this day, yyyy-MM-dd")
    p.add_argument("--key", help="the HIS's business key of the payment")
    p.add_argument("--status", choices=["paid", "partly_refunded", "refunded", "reversed", "cancelled"],
                   help="the payment's status")
    p.add_argument("--channel", choices=["wechat", "alipay", "none", "unknown"], help="the cash channel")
    p.add_argument("--platform", choices=["mobilepay", "facepay", "kiosk"], help="the platform")
    p.add_argument("--limit", type=_count(1, 100_000), default=100,
                   help="at most this many, newest first (default 100)")
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    _common(p)
    p.set_defaults(fn=cmd_orders)

    p = sub.add_parser("flows", help="print the flows' state tables")
    p.set_defaults(fn=cmd_flows, needs_config=False)

    p = sub.add_parser("simulator", help="run the platform simulator on loopback: mobile-pay centre, "
                                         "offline gateway, face terminal, WeChat Pay and Alipay "
                                         "(mibridge simulator --help for its options)")
    p.set_defaults(fn=cmd_simulator, rest=[], needs_config=False)

    p = sub.add_parser("console-hash", help="print a password hash for a [console] user (reads the password "
                                            "from the terminal or one line of stdin)")
    p.set_defaults(fn=cmd_console_hash, needs_config=False)

    # Other commands (reconcile, orders) are added here by their modules.
    return ap


def _command_index(argv: list[str]) -> Optional[int]:
    """Where the command is: the first word that is not a global option or its value."""
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("-c", "--config"):
            i += 2
            continue
        if a.startswith("-"):
            i += 1
            continue
        return i
    return None


def main(argv=None) -> int:
    ap = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    i = _command_index(argv)
    if i is not None and argv[i] == "simulator":
        # Everything after "simulator" belongs to the simulator's own parser.
        args = ap.parse_args(argv[:i + 1])
        args.rest = argv[i + 1:]
    else:
        args = ap.parse_args(argv)
    _quiet_log(args.verbose)
    try:
        return args.fn(args)
    except KeyboardInterrupt:
        return 130
    except (CliError, Refused) as exc:
        print(f"mibridge: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, Refused) else 1
    except Exception as exc:
        return _explain(exc, args)


def _quiet_log(verbose: bool) -> None:
    """Before `run` sets the log up from the config: warnings only, or everything with -v."""
    from loguru import logger

    from daemon import logs

    logs.setup("DEBUG" if verbose else "WARNING")
    if not verbose:
        logger.remove()
        logger.add(sys.stderr, level="ERROR", format="{message}", backtrace=False, diagnose=False)


def _explain(exc: BaseException, args) -> int:
    """One line for the user, the details in the log (shown with -v)."""
    from loguru import logger

    from daemon.config import ConfigError

    logger.opt(exception=exc).debug("mibridge {} failed", getattr(args, "command", ""))
    if isinstance(exc, (ConfigError, FileNotFoundError)):
        print(f"mibridge: {exc}", file=sys.stderr)
        return 2
    if isinstance(exc, ValueError) and type(exc).__module__.split(".")[0] in ("daemon", "bridge", "builtins"):
        print(f"mibridge: {exc}", file=sys.stderr)
        return 2
    module = type(exc).__module__.split(".")[0]
    if module in DATABASE_DRIVERS:
        print(f"mibridge: database error: {database_words(exc)}", file=sys.stderr)
        return 1
    print(f"mibridge: {getattr(args, 'command', '')} failed: {_first(exc)} (-v shows the details)", file=sys.stderr)
    return 1



if __name__ == "__main__":
    sys.exit(main())
