"""[wechatpay] and [alipay]: every mistake stops the daemon at start with a message naming
the section and the key (a misspelt key or section, a wrong type, a secret written inline,
a key file others can read, a missing setting the flows need), and a correct section
becomes the clients, their settings and the callback endpoints on one listener."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.app import build, http_servers
from daemon.config import ConfigError, load, validate_section
from daemon.platforms_channels import alipay_parts, wechatpay_parts

from .conftest import channel_toml, free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "install" / "mibridge.example.toml"


def _cfg(tmp_path, text: str):
    p = tmp_path / "m.toml"
    p.write_text('[database]\nurl = "sqlite:///x.db"\n' + text, encoding="utf-8")
    return load(p)


@pytest.fixture
def good(csim, tmp_path):
    """A correct [wechatpay] + [alipay] text, with its key files."""
    return channel_toml(csim, free_port(), tmp_path)


def _edit(text: str, section: str, **changes) -> str:
    """Set (a TOML value) or, with None, remove keys of one section of `text`."""
    lines, current, header = [], None, None
    for line in text.splitlines():
        m = re.match(r"^\[([a-z.]+)\]$", line)
        if m:
            current = m.group(1)
            if current == section:
                header = len(lines)
        key = line.split(" = ", 1)[0] if " = " in line else None
        if current == section and key in changes:
            value = changes.pop(key)
            if value is not None:
                lines.append(f"{key} = {value}")
            continue
        lines.append(line)
    added = [f"{k} = {v}" for k, v in changes.items() if v is not None]
    lines[header + 1:header + 1] = added
    return "\n".join(lines) + "\n"


def test_the_example_sections_are_valid_once_uncommented():
    """install/mibridge.example.toml's [wechatpay] and [alipay] (commented out there) pass
    the section checks as written."""
    text = EXAMPLE.read_text(encoding="utf-8")
    start = text.index("# [wechatpay]")
    end = text.index("\n\n", text.index("# [alipay]"))      # the channel block ends at a blank line
    block = "\n".join(line[2:] if line.startswith("# ") else "" if line == "#" else line
                      for line in text[start:end].splitlines())
    import tomllib
    raw = tomllib.loads(block)
    assert set(raw) == {"wechatpay", "alipay"}
    w = validate_section("wechatpay", raw["wechatpay"])
    a = validate_section("alipay", raw["alipay"])
    assert w.cash_after_6203 == "hospital_refunds_cash" and w.templates["registration_paid"].fields["thing1"] == \
        "patient_name"
    assert a.order_api == "medical" and a.seller_id == "2088000000000001"


def test_a_correct_config_gives_the_clients_settings_and_one_listener(good, tmp_path):
    cfg = _cfg(tmp_path, good)
    w = build(cfg)
    assert {"wechatpay", "wechatpay.messenger", "wechatpay.settings", "alipay", "alipay.settings"} <= set(w.services)
    assert w.services["wechatpay.settings"].cash_after_6203 == "hospital_refunds_cash"
    assert w.services["alipay"].config.seller_id.startswith("2088")
    assert sorted(m.path for m in w.mounts) == ["/mibridge/alipay", "/mibridge/wechatpay"]
    assert len(http_servers(cfg, w.mounts)) == 1          # one listener for both (and for 6302 when shared)
    assert "PRIVATE KEY" not in repr(w.services["wechatpay"].config)
    for svc in ("wechatpay", "wechatpay.messenger", "alipay"):
        w.services[svc].close()


MISTAKES = [
    ('[wechatpy]\nmchid = "1"\n', "unknown section [wechatpy] (did you mean [wechatpay]?)"),
    (("wechatpay", {"mchidd": '"1900000109"'}), "[wechatpay] mchidd: unknown setting (did you mean mchid?)"),
    (("wechatpay", {"timeout_seconds": '"15"'}), "[wechatpay] timeout_seconds: Input should be a valid number"),
    (("wechatpay", {"med_ins_test_env": '"no"'}), "[wechatpay] med_ins_test_env: Input should be a valid boolean"),
    (("wechatpay", {"apiv3_key": '"0123456789abcdefABCDEF0123456789"'}),
     "[wechatpay] apiv3_key: secrets are not written in the config file; use apiv3_key_env"),
    (("wechatpay", {"platform_public_key": '"-----BEGIN PUBLIC KEY-----"'}),
     "[wechatpay] give exactly one of platform_public_key (inline) and platform_public_key_file"),
    (("wechatpay", {"refund_notify_url": None}), "[wechatpay] refund_notify_url: required"),
    (("wechatpay", {"cash_after_6203": '"centre"'}), "[wechatpay] cash_after_6203"),
    (("wechatpay", {"order_prefix": '"M-B"'}), "[wechatpay] order_prefix: order_prefix must be 1-8 letters or digits"),
    (("wechatpay", {"callback_path": '"mibridge"'}), "[wechatpay] callback_path"),
    (("wechatpay", {"callback_listen": '"8766"'}), "[wechatpay] callback_listen: a listen address is host:port"),
    (("wechatpay", {"templates": '{ registration_payed = { template_id = "T", fields = { a = "amount" } } }'}),
     "[wechatpay] templates: templates.registration_payed: unknown event (did you mean registration_paid?)"),
    (("wechatpay", {"templates": '{ refund_done = { template = "T", fields = { a = "amount" } } }'}),
     "templates.refund_done.template: unknown setting (did you mean template_id?)"),
    (("wechatpay", {"templates": '{ refund_done = { template_id = "T", fields = { a = "amont" } } }'}),
     "templates.refund_done.fields.a: unknown value 'amont' (did you mean amount?)"),
    (("alipay", {"seller_id": None}), "[alipay] seller_id: required (the notifies are checked against it)"),
    (("alipay", {"order_api": '"generic"'}), "[alipay] order_api"),
    (("alipay", {"app_private_key": '"MIIEvQIBADANBg"'}), "[alipay] app_private_key: secrets are not written"),
    (("alipay", {"sellr_id": '"2088000000000001"'}), "[alipay] sellr_id: unknown setting (did you mean seller_id?)"),
]


@pytest.mark.parametrize("mistake, words", MISTAKES, ids=[w.split(":")[0][:40] + str(i) for i, (_, w) in
                                                           enumerate(MISTAKES)])
def test_mistakes_are_refused_with_the_key_named(good, tmp_path, mistake, words):
    text = mistake if isinstance(mistake, str) else _edit(good, mistake[0], **mistake[1])
    with pytest.raises(ConfigError) as ei:
        cfg = _cfg(tmp_path, text)
        wechatpay_parts(cfg)
        alipay_parts(cfg)
    assert words in str(ei.value)
    assert "0123456789abcdefABCDEF" not in str(ei.value) and "MIIEvQ" not in str(ei.value)   # secrets not echoed


def test_secret_files_others_can_read_unset_variables_and_bad_keys_are_refused(good, tmp_path):
    key = re.search(r'merchant_private_key_file = "([^"]+)"', good).group(1)
    os.chmod(key, 0o644)
    with pytest.raises(ConfigError, match=r"\[wechatpay\] merchant_private_key_file: .* can be read by group or "
                                          r"others \(mode 0644\).*chmod 600"):
        wechatpay_parts(_cfg(tmp_path, good))
    os.chmod(key, 0o600)
    text = _edit(good, "wechatpay", apiv3_key_file=None, apiv3_key_env='"MIBRIDGE_TEST_NOT_SET"')
    os.environ.pop("MIBRIDGE_TEST_NOT_SET", None)
    with pytest.raises(ConfigError, match=r"\[wechatpay\] apiv3_key_env: environment variable MIBRIDGE_TEST_NOT_SET "
                                          r"is not set"):
        wechatpay_parts(_cfg(tmp_path, text))
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    os.chmod(bad, 0o600)
    with pytest.raises(ConfigError, match=r"\[wechatpay\]: merchant_private_key: expected PEM text"):
        wechatpay_parts(_cfg(tmp_path, _edit(good, "wechatpay", merchant_private_key_file=f'"{bad}"')))
    with pytest.raises(ConfigError, match=r"\[alipay\] alipay_public_key_file: cannot read /nonexistent"):
        alipay_parts(_cfg(tmp_path, _edit(good, "alipay", alipay_public_key=None,
                                          alipay_public_key_file='"/nonexistent/key.pem"')))
    os.environ["MIBRIDGE_TEST_APIV3"] = "short"
    try:
        text = _edit(good, "wechatpay", apiv3_key_file=None, apiv3_key_env='"MIBRIDGE_TEST_APIV3"')
        with pytest.raises(ConfigError, match=r"\[wechatpay\]: the APIv3 key must be exactly 32 bytes"):
            wechatpay_parts(_cfg(tmp_path, text))
    finally:
        del os.environ["MIBRIDGE_TEST_APIV3"]


def test_the_daemon_stops_at_start_with_the_key_named_not_a_traceback(good, tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[database]\nurl = "sqlite:///x.db"\n' + _edit(good, "wechatpay", tmestamp_window_seconds="300"))
    r = subprocess.run([sys.executable, "-m", "daemon.cli", "-c", str(cfg), "run"], capture_output=True, text=True,
                       timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "[wechatpay] tmestamp_window_seconds: unknown setting (did you mean timestamp_window_seconds?)" in r.stderr
    assert "Traceback" not in r.stderr


def test_the_channel_callbacks_share_the_6302_listener_when_the_address_is_the_same(csim, tmp_path):
    from tests.channel_callbacks.conftest import write_secret

    port = free_port()
    mp = csim.client_credentials()["mobilepay"]
    mobilepay = "\n".join([
        "", "[mobilepay]", f'base_url = "{mp["base_url"]}"', f'app_id = "{mp["app_id"]}"',
        f'app_secret_file = "{write_secret(tmp_path / "mp_secret", mp["app_secret"])}"',
        f'org_private_key_file = "{write_secret(tmp_path / "mp_key", mp["institution_private_key"])}"',
        f'platform_public_key = "{mp["platform_public_key"]}"', f'org_codg = "{mp["org_codes"][0]}"',
        f'callback_listen = "127.0.0.1:{port}"', ""])
    cfg = _cfg(tmp_path, channel_toml(csim, port, tmp_path) + mobilepay)
    w = build(cfg)
    assert sorted(m.path for m in w.mounts) == ["/mibridge/alipay", "/mibridge/mobilepay/notify", "/mibridge/wechatpay"]
    assert {m.listen for m in w.mounts} == {f"127.0.0.1:{port}"}
    assert len(http_servers(cfg, w.mounts)) == 1
    for name in ("mobilepay", "wechatpay", "wechatpay.messenger", "alipay"):
        w.services[name].close()
