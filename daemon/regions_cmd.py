"""mibridge regions: the insured-region list from the command line (docs/identity.md).

    mibridge regions list [--all] [--json]         what mi_v_insured_regions shows (--all: every row)
    mibridge regions load FILE [--replace] [--encoding utf-8|gbk] [--dry-run]
    mibridge regions refresh                       ask the platform (1901) now
    mibridge regions config                        apply the config's [[regions.region]] list now
    mibridge regions enable|disable ADMDVS         by hand (the refresh never undoes it)

Every failure is one clear message and a non-zero exit; nothing is half applied (each
command is one transaction).
"""
from __future__ import annotations

import json
import sys
import unicodedata


def add_parser(sub) -> None:
    p = sub.add_parser("regions", help="the insured regions (参保地) the hospital supports (docs/identity.md)")
    rs = p.add_subparsers(dest="regions_action", required=True, metavar="ACTION")
    q = rs.add_parser("list", help="the regions offered (mi_v_insured_regions); --all: every row")
    q.add_argument("--all", action="store_true", help="disabled regions too, with who set each row")
    q.add_argument("--json", action="store_true", help="JSON instead of a table")
    q = rs.add_parser("load", help="load a CSV file (UTF-8 or GBK, a header row) in one transaction")
    q.add_argument("file", help="the CSV file: admdvs,name[,enabled,channels,insutypes,sort_order]")
    q.add_argument("--replace", action="store_true",
                   help="the file is the whole list: regions not in it are disabled (kept, so that the "
                        "platform's refresh does not bring them back)")
    q.add_argument("--encoding", help="the file's encoding (default: UTF-8, else GBK)")
    q.add_argument("--dry-run", action="store_true", help="show what would change; change nothing")
    rs.add_parser("refresh", help="ask the platform's 1901 dictionary now and merge ([offline] "
                                  "region_dictionary_type)")
    rs.add_parser("config", help="apply the config's [[regions.region]] list now, also over rows set by a "
                                 "CSV or by hand")
    for action in ("enable", "disable"):
        q = rs.add_parser(action, help=f"{action} a region by hand (the platform's refresh never undoes it)")
        q.add_argument("admdvs", help="the 6-digit division code")
    for q in rs.choices.values():
        q.add_argument("--url", help="database URL (default: from the config)")
    p.set_defaults(fn=cmd_regions)


def cmd_regions(args) -> int:
    from bridge.regions.csvfile import CsvError
    from bridge.regions.model import RegionError
    from bridge.regions.platform import RefreshError
    from bridge.regions.storage import PlanConflict
    from daemon.config import ConfigError

    try:
        return _ACTIONS[args.regions_action](args)
    except CsvError as exc:
        print(f"mibridge: {len(exc.problems)} problem(s) in the file, nothing was loaded:", file=sys.stderr)
        for p in exc.problems:
            print(f"  {p}", file=sys.stderr)
        if str(exc).endswith("more"):
            print(f"  {str(exc).rsplit('; ', 1)[-1]}", file=sys.stderr)
        return 1
    except (RegionError, RefreshError, PlanConflict, ConfigError, FileNotFoundError) as exc:
        print(f"mibridge: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        # A database error (unreachable, no rights, not upgraded): its first line, not a traceback
        # (loguru's default sink is the terminal: nothing is logged here).
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = " (has 'mibridge db upgrade' been run?)" if "insured_region" in str(exc) else ""
        print(f"mibridge: regions {args.regions_action} failed: {type(exc).__name__}: {first}{hint}", file=sys.stderr)
        return 1


def _config(args):
    from daemon.cliargs import config_from as load

    return load(args)


def _store(args):
    # The CLI's own way to the database (--url, else the config's), so that its rules hold here too.
    from daemon.cliargs import store_from as store

    return store(args)


def _report(plan, dry_run: bool = False) -> None:
    print(("would apply " if dry_run else "") + plan.summary())
    for line in plan.lines():
        print(f"  {line}")
    for note in plan.notes:
        print(f"  note: {note}")


def _list(args) -> int:
    from bridge.regions import storage

    store = _store(args)
    if args.all:
        rows = [{"admdvs": r.admdvs, "name": r.name, "enabled": int(r.enabled),
                 **r.flags(), "insutypes": r.insutypes_text, "sort_order": r.sort_order, "source": r.source}
                for r in storage.read_all(store).values()]
    else:
        rows = storage.read_view(store)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, default=str, indent=2))
        return 0
    if not rows:
        print("no region" + ("" if args.all else " offered (mibridge regions list --all shows disabled ones)"))
        return 0
    cols = ["admdvs", "name"] + (["enabled"] if args.all else []) + ["channels", "insutypes", "sort", "source"]
    table = [cols]
    for r in rows:
        chans = "/".join(c for c in ("wechat", "alipay", "counter", "kiosk") if int(r[f"on_{c}"]) == 1)
        line = [r["admdvs"], r["name"]] + (["yes" if r["enabled"] else "no"] if args.all else [])
        line += [chans or "-", r["insutypes"] or "all", "" if r["sort_order"] is None else str(r["sort_order"]),
                 r["source"]]
        table.append(line)
    widths = [max(_width(str(row[i])) for row in table) for i in range(len(cols))]
    for row in table:
        print("  ".join(str(v) + " " * (w - _width(str(v))) for v, w in zip(row, widths)).rstrip())
    return 0


def _width(text: str) -> int:
    """Columns on a terminal: wide (CJK) characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in text)


def _load(args) -> int:
    from bridge.regions import csvfile, storage
    from bridge.regions.merge import plan_load

    sheet = csvfile.read(args.file, args.encoding)
    store = _store(args)
    print(f"{args.file}: {len(sheet.regions)} region(s) read ({sheet.encoding})")
    if args.dry_run:
        _report(plan_load(storage.read_all(store), sheet.regions, args.replace, sheet.columns), dry_run=True)
        return 0
    plan = storage.run(store, lambda current: plan_load(current, sheet.regions, args.replace, sheet.columns))
    _report(plan)
    return 0


def _refresh(args) -> int:
    from bridge.regions.platform import refresh
    from daemon.regions import offline_client, settings
    from daemon.wiring_offline import wiring as offline_wiring

    cfg = _config(args)
    if not cfg.platforms.get("offline"):
        from daemon.config import ConfigError
        raise ConfigError("the 1901 refresh needs the [offline] section of the config (the gateway it goes through)")
    section = settings(cfg)
    client = offline_client(cfg, offline_wiring(cfg).services)
    try:
        plan, listed = refresh(_store(args), client,
                               section.enable_new_from_platform if section is not None else True)
    finally:
        client.close()
    print(f"1901 listed {len(listed.regions)} region(s)")
    _report(plan)
    return 0


def _apply_config(args) -> int:
    from bridge.regions import storage
    from bridge.regions.merge import plan_config
    from daemon.config import ConfigError
    from daemon.regions import settings

    cfg = _config(args)
    section = settings(cfg)
    if section is None or section.region is None:
        raise ConfigError("the config has no [[regions.region]] list to apply")
    regions = section.regions()
    _report(storage.run(_store(args), lambda current: plan_config(current, regions, explicit=True)))
    return 0


def _set(args) -> int:
    from bridge.regions import storage
    from bridge.regions.merge import plan_set
    from bridge.regions.model import check_admdvs

    code = check_admdvs(args.admdvs)
    _report(storage.run(_store(args), lambda current: plan_set(current, code, args.regions_action == "enable")))
    return 0


_ACTIONS = {"list": _list, "load": _load, "refresh": _refresh, "config": _apply_config, "enable": _set,
            "disable": _set}
