"""daemon/http_server.py on its own: apps mounted by path on one listener, the JSON
nesting check, a clean stop, and a taken port as a clear error."""
from __future__ import annotations

import socket

import httpx
import pytest

from daemon.http_server import HttpLimits, HttpServer, json_depth_exceeds, parse_listen, respond


def _app(name):
    def app(environ, start_response):
        return respond(start_response, 200, f'{{"app":"{name}","path":"{environ["PATH_INFO"]}"}}'.encode())
    return app


def _boom(environ, start_response):
    raise RuntimeError("secret detail")


def test_apps_are_mounted_by_path_and_errors_stay_in_the_log():
    srv = HttpServer("t", "127.0.0.1", 0, HttpLimits(threads=2))
    closed = []
    srv.mount("/mibridge/mobilepay/notify", _app("6302"), on_stop=lambda: closed.append(1))
    srv.mount("/mibridge/wechatpay", _app("wx"))
    srv.mount("/boom", _boom)
    srv.start()
    base = f"http://127.0.0.1:{srv.port}"
    try:
        assert httpx.post(base + "/mibridge/mobilepay/notify").json()["app"] == "6302"
        assert httpx.post(base + "/mibridge/wechatpay/notify/x").json() == {"app": "wx",
                                                                             "path": "/mibridge/wechatpay/notify/x"}
        assert httpx.post(base + "/mibridge/wechatpayX").status_code == 404
        r = httpx.get(base + "/boom")
        assert r.status_code == 500 and "secret" not in r.text and "Traceback" not in r.text
        with pytest.raises(ValueError, match="cannot listen on 127.0.0.1"):
            HttpServer("u", "127.0.0.1", srv.port, HttpLimits()).start()
    finally:
        srv.stop()
    assert closed == [1]
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()


@pytest.mark.parametrize("body, limit, deeper", [
    (b'{"a":[1,{"b":[]}]}', 4, False), (b'{"a":[1,{"b":[]}]}', 3, True),
    (b'{"a":"[[[[[[[["}', 2, False), (b'{"a":"\\"[[[["}', 1, False), (b"[" * 100 + b"]" * 100, 32, True),
])
def test_json_depth(body, limit, deeper):
    assert json_depth_exceeds(body, limit) is deeper


def test_listen_addresses():
    assert parse_listen("127.0.0.1:8766") == ("127.0.0.1", 8766)
    assert parse_listen("[::1]:8766") == ("::1", 8766)
    for bad in ("8766", "host:", "host:99999", "host:http"):
        with pytest.raises(ValueError):
            parse_listen(bad)
