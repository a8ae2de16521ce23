"""MIBRIDGE_SM2_BACKEND chooses the default backend at import (checked in fresh interpreters)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = "from bridge.crypto import sm2; k = sm2.generate_private_key(); " \
        "assert k.public_key().verify(b'm', k.sign(b'm')); print(sm2.backend_name())"


def _probe(value: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MIBRIDGE_SM2_BACKEND"}
    if value is not None:
        env["MIBRIDGE_SM2_BACKEND"] = value
    return subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("value,expected", [
    (None, "openssl-evp"), ("auto", "openssl-evp"), ("openssl", "openssl-evp"), ("pure", "pure-python"),
])
def test_env_selects_backend(value, expected):
    proc = _probe(value)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == expected


def test_unknown_value_is_an_error():
    proc = _probe("fastest")
    assert proc.returncode != 0 and "MIBRIDGE_SM2_BACKEND" in proc.stderr
