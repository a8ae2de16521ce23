"""What a site configures for the reconciliation ([reconciliation] in the daemon's TOML file,
daemon/reconcile_job.py).  Every choice the public sources leave open is a setting here, with
the default and its source."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from bridge.reconcile.model import CLASSES, DEFAULT_RESULT_CODES


@dataclass
class ReconcileSettings:
    # 3201: the national input names (setl_optins, acct_pay) or the Guangzhou ones (clr_optins,
    # cash_payamt) (offline.md §10.1, GZ RequestGzsiModel3201.cs).
    offline_api: str = "national"
    # fixmedins_setl_cnt: settlements minus cancellations ("net"), or every row ("rows").  The
    # sources say "number of settlements" only (offline.md §10.1) [uncertain].
    count_mode: str = "net"
    # 3202 detail file: one row per movement (a cancelled settlement as a positive and a negative
    # row, RECON-AI in offline.md §10.2 [uncertain]) or one net row per settlement.
    detail_rows: str = "movements"
    # 3202 result rows' stmt_rslt -> class.  No public source gives the codes (offline.md §13 #4).
    result_codes: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_RESULT_CODES))
    # Groups 3201 is asked about even when the book has no settlement in them, so that the
    # centre's settlements in them show: "setl_optins:insutype:clr_type", e.g. "440100:310:11".
    extra_groups: tuple[str, ...] = ()
    # Mobile pay: ask the centre (6301) about every order of the day ("all") or about none.
    centre_query: str = "all"
    centre_workers: int = 4
    # The channels whose bills are downloaded, when their client is configured.
    channels: tuple[str, ...] = ("wechat", "alipay")
    # A call that was not sent or got no answer is tried this often, this far apart.  None of
    # these calls moves money: a repeat is harmless (a 9101 twice leaves an unused file).
    call_attempts: int = 3
    call_retry_seconds: float = 5.0
    # 9102 may be refused while the centre is still writing the result: asked again this
    # often, then 3202 once more.
    download_attempts: int = 3
    # A run whose heartbeat is older than this (database clock) was killed: the next run of
    # its day takes over and drops its half-written results.
    stale_seconds: float = 600.0
    # The HIS gets at most this many difference rows per run (the rest: mi_v_recon_review).
    report_max_rows: int = 500
    # Rows read and written per round trip (memory stays flat in the number of rows).
    page_size: int = 1000
    # Where the 3202 files and the bills are written while a run needs them ("" = the system's).
    work_dir: str = ""

    def __post_init__(self) -> None:
        if self.offline_api not in ("national", "guangzhou"):
            raise ValueError("offline_api must be national or guangzhou")
        if self.count_mode not in ("net", "rows"):
            raise ValueError("count_mode must be net or rows")
        if self.detail_rows not in ("movements", "net"):
            raise ValueError("detail_rows must be movements or net")
        if self.centre_query not in ("all", "none"):
            raise ValueError("centre_query must be all or none")
        bad = {v for v in self.result_codes.values() if v not in CLASSES}
        if bad:
            raise ValueError(f"result_codes: unknown classes {sorted(bad)}; use {', '.join(CLASSES)}")
        for g in self.extra_groups:
            if len(g.split(":")) != 3 or not all(g.split(":")):
                raise ValueError(f"extra_groups: {g!r} is not setl_optins:insutype:clr_type")
        unknown = set(self.channels) - {"wechat", "alipay"}
        if unknown:
            raise ValueError(f"channels: unknown {sorted(unknown)}; use wechat, alipay")
        if self.centre_workers < 1 or self.call_attempts < 1 or self.download_attempts < 1 or self.page_size < 2:
            raise ValueError("centre_workers, call_attempts and download_attempts must be >= 1, page_size >= 2")
