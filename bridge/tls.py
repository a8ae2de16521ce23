"""The TLS context the platform clients verify servers with, built once per process.

It is httpx's own default (`httpx.create_ssl_context()`: SSL_CERT_FILE / SSL_CERT_DIR
when set, else certifi's bundle).  httpx builds a new one for every Client, loading the
whole CA bundle: about 30 ms of CPU each time, several times at every daemon start and
every CLI command (one client per platform).  A context may serve any number of
clients and threads as long as nobody changes it (encode/httpx#3053); nothing here does.
"""
from __future__ import annotations

import ssl
import threading

_lock = threading.Lock()
_context: ssl.SSLContext | None = None


def client_context() -> ssl.SSLContext:
    """For httpx.Client(verify=...): the same verification as httpx's default."""
    global _context
    with _lock:
        if _context is None:
            import httpx

            _context = httpx.create_ssl_context()
        return _context
