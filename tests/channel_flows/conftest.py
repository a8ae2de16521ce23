from __future__ import annotations

import pytest

from tests.conftest import DIALECTS, make_database
from tests.engine.daemonproc import DaemonProcess

from .harness import Bridge, ChHis, ChSim

HTTP = "\n[http]\nchannel_timeout = 5\nthreads = 4\n"
# The patient messages the flows add (test_channel_payments.py, "told once"): WeChat for
# registrations and refunds (mini-program subscribe messages), Alipay for outpatient payments
# and refunds.  No template for WeChat outpatient payments: most payments here send nothing.
TEMPLATES = """
[wechatpay.templates.registration_paid]
template_id = "TPL-CH-REG"
fields = { thing1 = "patient_name", amount2 = "amount", time3 = "paid_time" }

[wechatpay.templates.refund_done]
template_id = "TPL-CH-REF"
fields = { thing1 = "patient_name", amount2 = "amount", time3 = "refund_time" }

[alipay.templates.outpatient_paid]
template_id = "ATPL-CH-OUT"
fields = { keyword1 = "patient_name", keyword2 = "amount", keyword3 = "paid_time" }

[alipay.templates.refund_done]
template_id = "ATPL-CH-REF"
fields = { keyword1 = "patient_name", keyword2 = "amount", keyword3 = "refund_time" }
"""


@pytest.fixture(scope="session")
def ch_sim():
    sim = ChSim()
    yield sim
    sim.stop()


def start_bridge(dialect: str, tmp_path, sim: ChSim, name: str = "ch", wechat=None, alipay=None,
                 crash_at=None, url=None, **settings):
    """A daemon with [mobilepay], [wechatpay] and [alipay] on one callback listener, and the HIS."""
    drop = lambda: None  # noqa: E731
    if url is None:
        url, drop = make_database(dialect, tmp_path)
    extra, env = sim.daemon_toml(**settings)
    extra += sim.channel_toml(tmp_path, wechat, alipay) + TEMPLATES + HTTP
    daemon = DaemonProcess(tmp_path, url, None, name=name, workers=4, lease=3.0, extra=extra, env=env,
                           crash_at=crash_at)
    his = ChHis(url, sim)
    his.start()
    bridge = Bridge(dialect, url, sim, daemon, his)

    def stop(expect_rc=0):
        his.stop()
        try:
            rc = daemon.terminate()
            if expect_rc is not None:
                assert rc == expect_rc, daemon.tail()
        finally:
            bridge.store.close()
            drop()
    return bridge, stop


@pytest.fixture(scope="module", params=DIALECTS)
def bridge(request, ch_sim, tmp_path_factory):
    # The deadline well past what a loaded machine needs to let the HIS revoke an unpaid order.
    b, stop = start_bridge(request.param, tmp_path_factory.mktemp(f"chf-{request.param}"), ch_sim,
                           payment_deadline_seconds=20)
    yield b
    ch_sim.clear_faults()
    stop()


@pytest.fixture
def sim(ch_sim):
    ch_sim.clear_faults()
    yield ch_sim
    ch_sim.clear_faults()
