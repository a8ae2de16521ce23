"""The configuration refuses mistakes at start, naming the section and the key
(issue 10 #10): misspelt sections and settings, values of the wrong type, a
password inside the database URL, a secret file others can read."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from daemon import config as daemon_config
from daemon.config import ConfigError, load

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "install" / "mibridge.example.toml"


def _load(tmp_path, text: str):
    p = tmp_path / "m.toml"
    p.write_text(text, encoding="utf-8")
    return load(p)


def test_the_example_config_loads():
    cfg = load(EXAMPLE)
    assert cfg.daemon.workers == 4 and cfg.http.channel_timeout == 15 and cfg.platforms == {}
    assert cfg.database.password_env == "MIBRIDGE_DB_PASSWORD"


def test_a_misspelt_section_stops_the_daemon_and_says_which(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown section \[mobilpay\] \(did you mean \[mobilepay\]\?\)"):
        _load(tmp_path, '[mobilpay]\nbase_url = "https://mpc"\n')


@pytest.mark.parametrize("text, words", [
    ('[daemon]\nworkers = "two"\n', "[daemon] workers: Input should be a valid integer (given 'two')"),
    ('[daemon]\nworkers = "4"\n', "[daemon] workers"),
    ('[daemon]\nworkers = 0\n', "[daemon] workers"),
    ('[daemon]\nwokers = 2\n', "[daemon] wokers: unknown setting (did you mean workers?)"),
    ('[logging]\nlevel = "LOUD"\n', "[logging] level"),
    ('[http]\nmax_body_bytes = "64k"\n', "[http] max_body_bytes"),
    ('[mobilepay]\nbase_url = "x"\napp_id = "A"\nplatform_public_key = "k"\norg_codg = "H"\n'
     'timeout_seconds = "30"\n', "[mobilepay] timeout_seconds"),
    ('[mobilepay]\nbase_url = "x"\napp_id = "A"\nplatform_public_key = "k"\norg_codg = "H"\n'
     'on_deadline = "wait"\n', "[mobilepay] on_deadline"),
    ('[mobilepay]\nbase_url = "x"\n', "[mobilepay] app_id: required"),
    ('[offline]\nbase_url = "x"\npaas_id = "p"\noperator = "op"\nread_timeout = true\n', "[offline] read_timeout"),
    ('[offline]\nbase_url = "x"\npaas_id = "p"\noperator = "op"\ninput_nodes = "beijing"\n', "[offline] input_nodes"),
    ('[facepay]\nnotify_attempts = 2.5\n', "[facepay] notify_attempts"),
    ('[facepay]\nrefund_retry_delays = [60, "later"]\n', "[facepay] refund_retry_delays"),
    ('[facepay]\nterminal_url = 8080\n', "[facepay] terminal_url"),
    ('[daemon]\nname = 1979-05-27T07:32:00Z\n', "[daemon] name"),
])
def test_wrong_settings_are_refused_with_the_key_named(tmp_path, text, words):
    with pytest.raises(ConfigError) as ei:
        _load(tmp_path, text)
    assert words in str(ei.value)


def test_the_daemon_stops_at_start_with_a_message_not_a_traceback(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[database]\nurl = "sqlite:///x.db"\n\n[daemon]\nworkers = "two"\n')
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "daemon.cli", "-c", str(cfg), "run"], capture_output=True,
                       text=True, timeout=60, env=env, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "[daemon] workers" in r.stderr and "Traceback" not in r.stderr


def test_a_password_inside_the_database_url_is_refused_and_not_repeated(tmp_path):
    with pytest.raises(ConfigError) as ei:
        _load(tmp_path, '[database]\nurl = "postgresql://mibridge:S3cret-pw@db/his"\n')
    assert "[database] url" in str(ei.value) and "password" in str(ei.value)
    assert "S3cret-pw" not in str(ei.value)
    assert _load(tmp_path, '[database]\nurl = "postgresql://mibridge@db/his"\n').database.url.endswith("/his")


@pytest.mark.skipif(os.name != "posix", reason="mode bits are POSIX; Windows is skipped with a logged note")
def test_a_secret_file_others_can_read_is_refused(tmp_path, monkeypatch):
    from bridge.crypto import sm2
    from daemon.platforms import mobilepay_parts

    key = tmp_path / "mp.key"
    key.write_text(sm2.generate_private_key().to_base64())
    monkeypatch.setenv("MP_SECRET", "s" * 32)
    cfg = _load(tmp_path, f'[mobilepay]\nbase_url = "http://127.0.0.1:1"\napp_id = "{"A" * 32}"\n'
                          f'app_secret_env = "MP_SECRET"\norg_private_key_file = "{key}"\n'
                          f'platform_public_key = "{sm2.generate_private_key().public_key().to_base64()}"\n'
                          f'org_codg = "H1"\n')
    for mode in (0o644, 0o640, 0o604):
        key.chmod(mode)
        with pytest.raises(ConfigError, match=r"\[mobilepay\] org_private_key_file: .* can be read by group or "
                                              r"others"):
            mobilepay_parts(cfg)
    key.chmod(0o600)
    client, _ = mobilepay_parts(cfg)
    assert client.org_codg == "H1"


def test_later_sections_register_a_model(tmp_path, monkeypatch):
    class Example(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        listen: str = "127.0.0.1:8780"

    monkeypatch.setitem(daemon_config.SECTIONS, "example", Example)
    cfg = _load(tmp_path, '[example]\nlisten = "127.0.0.1:9000"\n')
    assert cfg.platforms["example"] == {"listen": "127.0.0.1:9000"}
    with pytest.raises(ConfigError, match=r"\[example\] lisen"):
        _load(tmp_path, '[example]\nlisen = "x"\n')


@pytest.mark.parametrize("text, words", [
    ('[identity]\nregistration_query = "5202"\n', "[identity] registration_query must be one of 5201, none"),
    ('[identity]\nqr_trans_type = "qr"\n', "[identity] qr_trans_type"),
])
def test_identity_settings_are_checked(tmp_path, text, words):
    from daemon.wiring_identity import identity_parts

    with pytest.raises(ConfigError) as ei:
        identity_parts(_load(tmp_path, text))
    assert words in str(ei.value)


def test_a_registration_window_shorter_than_the_read_timeout_is_refused(tmp_path):
    from daemon.wiring_identity import identity_parts, wiring

    parts = identity_parts(_load(tmp_path, '[identity]\nregistration_window_seconds = 5\n'))
    with pytest.raises(ConfigError, match=r"registration_window_seconds \(5.0\) must be longer than"):
        wiring(parts, None, read_timeout=10.0)


def test_the_example_identity_and_regions_sections_load():
    """install/mibridge.example.toml's [identity] and [regions], uncommented as an
    administrator would, pass the daemon's checks."""
    import re
    import tomllib

    from daemon import regions
    from daemon.wiring_identity import identity_parts

    text = EXAMPLE.read_text(encoding="utf-8")
    i, j = text.index("# Before the payment"), text.index("# The patient's channels")
    raw = tomllib.loads(re.sub(r"^# (\[|[a-z_]+ = )", r"\1", text[i:j], flags=re.M))
    cfg = daemon_config.Config()
    cfg.platforms = {"identity": raw["identity"], "regions": raw["regions"]}
    parts = identity_parts(cfg)
    assert (parts.settings.registration_query, parts.settings.kiosk_operator_id) == ("5201", "KIOSK01")
    assert [r.admdvs for r in regions.settings(cfg).region] == ["440100"]
