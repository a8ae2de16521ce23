"""The daemon's log (daemon/logs.py): safe across threads without pickling, masked,
and one line per platform call (bridge/engine/runner.py)."""
from __future__ import annotations

import re
import threading

from loguru import logger

from daemon import logs


def _file_log(tmp_path):
    path = tmp_path / "d.log"
    logs.setup("INFO", str(path))
    return path


def test_records_are_not_pickled_on_the_way_to_the_file(tmp_path):
    """enqueue=True pickled every record through a multiprocessing queue (issue 11 §2):
    a record carrying something unpicklable then never reached the file."""
    path = _file_log(tmp_path)
    lock = threading.Lock()                         # cannot be pickled
    logger.bind(held=lock).info("row 7 claimed")
    logger.remove()                                 # flushes and closes the sink
    assert "row 7 claimed" in path.read_text()


def test_lines_from_many_threads_are_whole_and_masked(tmp_path):
    path = _file_log(tmp_path)
    per_thread, threads = 300, 8

    def worker(n: int) -> None:
        for i in range(per_thread):
            logger.info("worker {} line {} phone 13812345678 {}", n, i, "x" * (i % 50))

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    logger.remove()
    lines = path.read_text().splitlines()
    pattern = re.compile(r"^\S+ \S+ \| INFO    \| [^|]+ \| worker (\d) line (\d+) phone 138\*\*\*\*5678 x*$")
    seen = {(m.group(1), m.group(2)) for m in map(pattern.match, lines) if m}
    assert len(lines) == threads * per_thread and len(seen) == threads * per_thread
    assert "13812345678" not in path.read_text()


def test_one_log_line_per_platform_call(tmp_path):
    """Every call used to write two lines (the mobile-pay client's and the runner's);
    the runner's line now carries the msg id, code and message, and is the only one."""
    from tests.mobilepay_flows.conftest import start_bridge
    from tests.mobilepay_flows.harness import MpSim, new_key, payment

    from bridge.mobilepay.flows import KIND_OUTPATIENT

    sim = MpSim()
    try:
        bridge, stop = start_bridge("sqlite", tmp_path, sim)
        try:
            key = new_key()
            bridge.enqueue(KIND_OUTPATIENT, key, payment(sim, sim.person("310", "real", "5000.00")))
            assert bridge.wait_final(key)[key]["state"] == "done"
            calls = bridge.q("SELECT msg_id, interface, outcome FROM mi_journal ORDER BY id")
        finally:
            stop()
    finally:
        sim.stop()
    text = bridge.daemon.log.read_text()
    assert len(calls) >= 3                                        # 6201, 6202, 6301 at least
    for msg_id, interface, outcome in calls:
        lines = [line for line in text.splitlines() if msg_id in line]
        assert len(lines) == 1, (msg_id, lines)
        assert f" {interface} {msg_id} -> {outcome} (" in lines[0] and "code=" in lines[0]
    assert len(re.findall(r" -> (?:ok|rejected|unknown) ", text)) == len(calls), text
