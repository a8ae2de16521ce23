"""A callback endpoint under the load a server facing a network gets: clients that connect
and stall (half of them inside a request body), and a burst of parallel posts.  The same
check as the 6302 endpoint's (tests/mobilepay_flows/test_notices.py), for any endpoint."""
from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Callable


def stalled_and_parallel(port: int, path: str, post: Callable[[int], object], *, stalled: int = 200,
                         parallel: int = 100) -> list:
    """Open `stalled` connections that send nothing or a request head and then stall inside
    the body, then run `post(i)` for i in range(parallel) on as many threads at once;
    returns the posts' results once every stalled connection has been closed by the server
    (its idle timeout, [http] channel_timeout) - a server that kept them for ever would make
    this wait until the socket timeout and fail."""
    sockets = []
    try:
        for i in range(stalled):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            if i % 2:
                s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{{\"a\":".encode())
            sockets.append(s)
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            answers = list(pool.map(post, range(parallel)))
        for s in sockets:
            try:
                assert s.recv(1024) == b"", "a stalled connection got an answer instead of being closed"
            except ConnectionResetError:
                pass
        return answers
    finally:
        for s in sockets:
            s.close()
