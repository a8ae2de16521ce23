"""The files an administrator installs: the systemd unit (Type=notify with a
watchdog, the directories it writes, hardening rated "OK" or better by
systemd-analyze where it is installed), the example alert rules (promtool where
Debian's prometheus package provides it) and the example config (it loads)."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

INSTALL = Path(__file__).resolve().parents[2] / "install"


def unit() -> dict:
    out: dict = {}
    for line in (INSTALL / "mibridge.service").read_text().splitlines():
        m = re.match(r"^(\w+)=(.*)$", line)
        if m:
            out.setdefault(m.group(1), []).append(m.group(2))
    return out


def test_the_unit_notifies_has_a_watchdog_and_its_directories():
    u = unit()
    assert u["Type"] == ["notify"] and int(u["WatchdogSec"][0]) > 0 and u["NotifyAccess"] == ["main"]
    assert u["StateDirectory"] == ["mibridge"] and u["LogsDirectory"] == ["mibridge"]
    assert u["UMask"] == ["0077"] and u["CapabilityBoundingSet"] == [""] and u["NoNewPrivileges"] == ["yes"]
    assert "@system-service" in u["SystemCallFilter"] and u["ProtectSystem"] == ["strict"]
    assert u["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert "ReadWritePaths" not in u          # StateDirectory/LogsDirectory make and open them


def test_systemd_analyze_rates_the_unit_ok_or_better():
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed here")
    r = subprocess.run([tool, "security", "--offline=true", "--no-pager", str(INSTALL / "mibridge.service")],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: ([\d.]+) (\w+)", r.stdout)
    if m is None:
        pytest.skip(f"systemd-analyze here cannot rate a unit offline: {r.stderr.strip()[:200]}")
    assert float(m.group(1)) <= 4.0 and m.group(2) in ("OK", "SAFE"), r.stdout[-400:]


def test_the_alert_rules_pass_promtool():
    tool = shutil.which("promtool")
    if tool is None:
        pytest.skip("promtool not installed (Debian's prometheus package provides it)")
    r = subprocess.run([tool, "check", "rules", str(INSTALL / "mibridge-alerts.yml")], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    text = (INSTALL / "mibridge-alerts.yml").read_text()
    for metric in ("mibridge_held_requests", "mibridge_oldest_pending_age_seconds", "mibridge_platform_calls_total",
                   "mibridge_ready"):
        assert metric in text


def test_the_example_config_loads_with_the_console_and_metrics_sections():
    from daemon.config import load

    cfg = load(INSTALL / "mibridge.example.toml")
    assert cfg.console.listen.startswith("127.0.0.1:") and cfg.metrics.listen.startswith("127.0.0.1:")
    assert not cfg.console.enabled and not cfg.metrics.enabled
