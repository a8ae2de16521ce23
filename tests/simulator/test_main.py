"""python -m bridge.simulator: prints its URL and the client credentials, and serves."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import httpx

from bridge.crypto import sm2


def test_main_prints_url_and_usable_credentials():
    proc = subprocess.Popen([sys.executable, "-m", "bridge.simulator", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    try:
        first = proc.stdout.readline()
        assert first.startswith("mibridge simulator listening on http://127.0.0.1:")
        url = first.rsplit(" ", 1)[1].strip()
        text = ""
        while not text.rstrip().endswith("}") or text.count("{") != text.count("}"):
            text += proc.stdout.readline()
        creds = json.loads(text)
        assert creds["mobilepay"]["base_url"] == url
        sm2.load_private_key(creds["mobilepay"]["institution_private_key"])
        sm2.load_public_key(creds["mobilepay"]["platform_public_key"])
        assert creds["offline"]["paasid"] and creds["offline"]["secret"]
        assert httpx.get(url + "/__sim__/state").status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
