"""Run the simulator on loopback: python -m bridge.simulator --port 8765 (or `mibridge simulator`)

It plays the mobile-pay centre, the offline gateway, the face terminal and the patient's
channels (WeChat Pay 医保 APIv3 and Alipay OpenAPI), all on one port. Prints the URL and the
client-side credentials (SM2 keys and appId/appSecret; gateway paasid/secret; the WeChat merchant
private key, platform public key and serial, APIv3 key, mchid/appid; the Alipay app private key
and Alipay public key) as JSON, then serves until interrupted. The credentials are test material
generated at start unless --config-json points at a saved set. Routes: bridge/simulator/server.py.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from dataclasses import asdict, fields
from decimal import Decimal
from typing import Optional

from .config import SimulatorConfig
from .server import start_simulator


def _load_config(path: str) -> SimulatorConfig:
    with open(path, encoding="utf-8") as f:
        raw = json.load(f, parse_float=Decimal)
    for key in ("fund_ratios",):
        if key in raw:
            raw[key] = {k: Decimal(str(v)) for k, v in raw[key].items()}
    for key in ("facepay_institutions", "sm2_uid_modes", "reversible_infnos", "wechat_template_ids",
                "unknown_operators"):
        if key in raw:
            raw[key] = tuple(raw[key])
    for key in ("default_fund_ratio", "wechat_fee_rate"):
        if key in raw:
            raw[key] = Decimal(str(raw[key]))
    for f in fields(SimulatorConfig):    # seconds are floats; parse_float made them Decimal
        if f.type in ("float", "Optional[float]") and isinstance(raw.get(f.name), Decimal):
            raw[f.name] = float(raw[f.name])
    cfg = SimulatorConfig(**raw)
    cfg.check_channel_settings()
    return cfg


def _save_config(cfg: SimulatorConfig, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(asdict(cfg), f, ensure_ascii=False, indent=2, default=str)


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bridge.simulator",
                                 description="Simulated mobile-pay centre, offline gateway, face terminal, "
                                             "WeChat Pay (医保 mixed orders, refunds, bills, messages) and Alipay")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--host", default="127.0.0.1", help="loopback only (127.0.0.1, localhost, ::1)")
    ap.add_argument("--callback-url", help="hospital URL for 6302 settlement notices")
    ap.add_argument("--timeout-delay", type=float, help="seconds the 'timeout' fault waits")
    ap.add_argument("--wechat-cash-after-6203", choices=("hospital_refunds_cash", "centre_returns_cash"),
                    help="who returns a WeChat mixed order's cash after a 6203 that names cash "
                         "(channels.md §2.7; default hospital_refunds_cash)")
    ap.add_argument("--alipay-order-api", choices=("both", "payment", "trade"),
                    help="which Alipay medical order API is open (channels.md §7.2/§7.3; default both)")
    ap.add_argument("--config-json", help="load this saved configuration instead of generating keys")
    ap.add_argument("--save-config", help="write the configuration (incl. keys) to this file")
    args = ap.parse_args(argv)
    cfg = _load_config(args.config_json) if args.config_json else SimulatorConfig.generate()
    if args.callback_url:
        cfg.callback_url = args.callback_url
    if args.timeout_delay is not None:
        cfg.timeout_delay = args.timeout_delay
    if args.wechat_cash_after_6203:
        cfg.wechat_cash_after_6203 = args.wechat_cash_after_6203
    if args.alipay_order_api:
        cfg.alipay_order_api = args.alipay_order_api
    if args.save_config:
        _save_config(cfg, args.save_config)
    running = start_simulator(cfg, host=args.host, port=args.port)
    print(f"mibridge simulator listening on {running.url}", flush=True)
    print(json.dumps(running.client_credentials(), ensure_ascii=False, indent=2), flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    running.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
