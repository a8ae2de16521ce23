import socket
import threading
from http.server import ThreadingHTTPServer

import pytest

from .offline_stub import Handler, Stub


@pytest.fixture
def stub():
    s = Stub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.stub = s
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    s.base_url = f"http://127.0.0.1:{server.server_address[1]}/ebus/gdyb_inf/poc/hsa/hgs/"
    yield s
    server.shutdown()
    server.server_close()


@pytest.fixture
def free_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port
